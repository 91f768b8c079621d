//! Object tests: the real object loads, its maps match filter-common, and the verifier's work
//! stays under a recorded budget (a regression guard for verifier complexity).

use filter_common::{counters::Counter, dns::Scratch, maps};
use filter_tests::privileged;
use filter_user::loader::Filter;

/// Instructions the 6.18 verifier processes for the program, with headroom. The limit is
/// 1,000,000; 282,372 when this budget was set (Linux 6.18); the test prints the current value.
const VERIFIED_INSNS_BUDGET: u32 = 320_000;

#[test]
fn object_loads_with_expected_maps_under_the_verifier_budget() {
    if !privileged("object") {
        return;
    }
    let mut f = Filter::load().expect("load");
    let info = f.program().unwrap().info().unwrap();
    let verified = info.verified_instruction_count().expect("kernel reports verified_insns");
    eprintln!("verified instructions: {verified} (budget {VERIFIED_INSNS_BUDGET})");
    assert!(verified > 0 && verified <= VERIFIED_INSNS_BUDGET, "verified {verified} > budget {VERIFIED_INSNS_BUDGET}");

    let counters = f.counters().unwrap();
    assert_eq!(counters.len(), Counter::COUNT as usize);
    assert!(counters.iter().all(|(_, v)| *v == 0));
    let last = filter_common::GROUPS_DEFAULT - 1;
    assert_eq!(f.group_hits(last).unwrap(), 0, "GROUP_HITS holds GROUPS_DEFAULT groups");
    assert!(f.group_hits(last + 1).is_err(), "GROUP_HITS has exactly GROUPS_DEFAULT groups");

    // Map value sizes agree with the shared types.
    let show = std::process::Command::new("bpftool").args(["-j", "map", "show"]).output().expect("bpftool");
    let json = String::from_utf8_lossy(&show.stdout);
    for (name, size) in [
        (maps::CONFIG, size_of::<filter_common::config::Config>()),
        (maps::SCRATCH, size_of::<Scratch>()),
        (maps::COUNTERS, 8),
    ] {
        let needle = format!("\"name\":\"{name}\"");
        let at = json.find(&needle).unwrap_or_else(|| panic!("map {name} not found by bpftool"));
        let rest = &json[at..];
        let vs = rest.split("\"bytes_value\":").nth(1).and_then(|s| s.split(',').next()).unwrap();
        assert_eq!(vs.trim().parse::<usize>().unwrap(), size, "{name} value size");
    }
}
