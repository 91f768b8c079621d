//! Generation swaps are atomic for packets: while one thread keeps pushing queries through the
//! real program (BPF_PROG_TEST_RUN on the loaded program's fd), the main thread swaps between
//! two lists hundreds of times. A name both lists block is answered every single time, a name
//! neither lists passes every time, and names in one list only get one of the two legal
//! verdicts: never anything else.

use std::{
    os::fd::{AsFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use filter_common::{
    dns::parse_text_name,
    table::{Action, Ede},
};
use filter_tests::{
    Fixture, XDP_PASS, XDP_TX,
    frames::{Frame, Ip, Query},
    privileged,
};
use filter_user::{
    config::Settings,
    table::{self, Rule, Scope},
};

fn rules(names: &[&str]) -> Vec<Rule> {
    names
        .iter()
        .map(|n| Rule {
            labels: parse_text_name(n).unwrap(),
            scope: Scope::Subtree,
            action: Action::Nxdomain,
            ede: Ede::Censored,
            group: 0,
            stop: None,
        })
        .collect()
}

/// One BPF_PROG_TEST_RUN (repeat 1) on a program fd; returns the XDP verdict.
fn verdict(prog: &OwnedFd, frame: &[u8]) -> u32 {
    let mut out = vec![0u8; frame.len() + 1024];
    filter_tests::test_run_fd(prog.as_fd(), frame, 1, &mut out).expect("BPF_PROG_TEST_RUN").verdict
}

#[test]
fn no_packet_sees_a_half_swapped_list() {
    if !privileged("no_packet_sees_a_half_swapped_list") {
        return;
    }
    let old = rules(&["both.example", "old-only.example"]);
    let new = rules(&["both.example", "new-only.example"]);
    let mut fx = Fixture::new(&old, &Settings::default());
    let prog = fx.filter.program().unwrap().fd().unwrap().as_fd().try_clone_to_owned().unwrap();
    let q = |n: &str| Frame::new(Ip::v4(), Query::new(n, 1).build()).build();
    let (both, old_only, new_only, neither) =
        (q("www.both.example"), q("old-only.example"), q("new-only.example"), q("neither.example"));

    let done = Arc::new(AtomicBool::new(false));
    let pusher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = [0u64; 4];
            while !done.load(Ordering::Relaxed) {
                assert_eq!(verdict(&prog, &both), XDP_TX, "a name both lists block was not answered");
                assert_eq!(verdict(&prog, &neither), XDP_PASS, "a name neither list blocks was answered");
                for (i, f) in [&old_only, &new_only].into_iter().enumerate() {
                    match verdict(&prog, f) {
                        XDP_TX => seen[i] += 1,
                        XDP_PASS => seen[i + 2] += 1,
                        v => panic!("verdict {v} during a swap"),
                    }
                }
            }
            seen
        })
    };
    for i in 0..400u64 {
        let list = if i % 2 == 0 { &new } else { &old };
        let built = table::build(list, table::random_seed(), i + 2, 100).unwrap();
        fx.filter.install(&built).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let seen = pusher.join().expect("a packet saw a wrong verdict");
    // Both one-list names were seen blocked and passed: the swaps really interleaved.
    assert!(seen.iter().all(|n| *n > 0), "swaps did not interleave with packets: {seen:?}");
}
