//! The fleet tier: the daemon as a secondary of policy zones, against a scripted primary that
//! answers what real ones rarely do (tests/src/primary.rs) and against real primaries (Knot
//! DNS and BIND 9, tests/tests/fleet_primaries.rs). Each test runs its daemon and primaries
//! in a namespace of its own; after every case the test checks which list the kernel
//! enforces (through the pinned program), not only what the daemon says.

use std::time::Duration;

use domain::{base::iana::Rcode, tsig::Algorithm};
use filter_tests::{
    fleet::Node,
    primary::{Fault, ReplyTsig, ScriptedPrimary, Transport, TsigKey},
    privileged,
};

const ZONE: &str = "rpz.example";
const WAIT: Duration = Duration::from_secs(20);

fn key() -> TsigKey {
    TsigKey::new(Algorithm::Sha256, "xfr-key", b"0123456789abcdef0123456789abcdef")
}

/// The Allostreaming zone at its first serial.
fn v1() -> Vec<String> {
    vec![
        "allostreaming.com.rpz.example. 300 IN CNAME .".into(),
        "*.allostreaming.com.rpz.example. 300 IN CNAME .".into(),
        "alloshowtv.com.rpz.example. 300 IN CNAME .".into(),
        "alloshare.com.rpz.example. 300 IN CNAME .".into(),
    ]
}

/// v1 with a mirror added.
fn v2() -> Vec<String> {
    let mut v = v1();
    v.push("allomovies.com.rpz.example. 300 IN CNAME .".into());
    v
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A primary in the node's namespace, on a free port.
fn primary(node: &Node, serial: u32, records: &[String], key: Option<TsigKey>) -> ScriptedPrimary {
    let mut b = ScriptedPrimary::builder(ZONE, serial, &refs(records)).netns(&node.ns).records_per_message(2);
    if let Some(k) = key {
        b = b.key(k);
    }
    b.start("127.0.0.1:0".parse().expect("address"))
}

/// A node started as the secondary of `p`, with v1 enforced.
fn started(p: &ScriptedPrimary, node: &mut Node, extra: &str) {
    let fleet = node.fleet_toml(ZONE, p.addr(), p.key(), extra);
    node.configure(&fleet);
    node.start();
    node.wait_serial(ZONE, p.serial(), WAIT);
}

/// The v1 names are blocked and the v2 mirror is not.
#[track_caller]
fn enforces_v1(node: &Node) {
    node.sandbox.expect_nxdomain("allostreaming.com");
    node.sandbox.expect_nxdomain("www.allostreaming.com");
    node.sandbox.expect_nxdomain("alloshare.com");
    node.sandbox.expect_pass("allomovies.com");
    node.sandbox.expect_pass("example.org");
}

#[track_caller]
fn enforces_v2(node: &Node) {
    node.sandbox.expect_nxdomain("allostreaming.com");
    node.sandbox.expect_nxdomain("allomovies.com");
}

#[test]
fn axfr_with_tsig_then_ixfr_on_a_signed_notify_over_udp_and_tcp() {
    if !privileged("fleet") {
        return;
    }
    let mut node = Node::new();
    let p = primary(&node, 1, &v1(), Some(key()));
    started(&p, &mut node, "");
    enforces_v1(&node);
    let axfr = p.wait_for(WAIT, |r| r.qtype == domain::base::iana::Rtype::AXFR).expect("an AXFR");
    assert!(axfr.signed && axfr.rcode == Rcode::NOERROR, "{axfr:?}");

    // A change, announced by a signed NOTIFY over UDP: fetched by IXFR from serial 1.
    p.set_records(2, &refs(&v2()));
    let reply = p.notify(node.notify_addr(), Transport::Udp, Some(&key())).expect("a NOTIFY reply");
    assert_eq!((reply.rcode, reply.aa, &reply.tsig), (Rcode::NOERROR, true, &ReplyTsig::Verified), "{reply:?}");
    node.wait_serial(ZONE, 2, WAIT);
    enforces_v2(&node);
    let ixfr = p.wait_for(WAIT, |r| r.qtype == domain::base::iana::Rtype::IXFR).expect("an IXFR");
    assert_eq!(ixfr.ixfr_serial, Some(1), "{ixfr:?}");
    assert!(ixfr.signed, "{ixfr:?}");

    // Over TCP too, answered signed.
    let mut v3 = v2();
    v3.retain(|r| !r.starts_with("alloshare.com"));
    p.set_records(3, &refs(&v3));
    let reply = p.notify(node.notify_addr(), Transport::Tcp, Some(&key())).expect("a NOTIFY reply over TCP");
    assert_eq!((reply.rcode, &reply.tsig), (Rcode::NOERROR, &ReplyTsig::Verified), "{reply:?}");
    node.wait_serial(ZONE, 3, WAIT);
    node.sandbox.expect_pass("alloshare.com");
    node.sandbox.expect_nxdomain("allomovies.com");

    // Unsigned, or signed with another key: refused, counted, and nothing fetched.
    p.clear_received();
    let unsigned = p.notify(node.notify_addr(), Transport::Udp, None).expect("a reply");
    assert_eq!(unsigned.rcode, Rcode::REFUSED, "{unsigned:?}");
    let wrong = p.notify(node.notify_addr(), Transport::Tcp, Some(&key().with_wrong_secret())).expect("a reply");
    assert_eq!(wrong.rcode, Rcode::NOTAUTH, "{wrong:?}");
    let s = node.zone_status(ZONE);
    assert_eq!((s["notify_accepted"].as_u64(), s["notify_refused"].as_u64()), (Some(2), Some(2)), "{s:#}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.received().iter().all(|r| r.qtype != domain::base::iana::Rtype::IXFR), "{:?}", p.received());
    // Transfers as the metrics and status count them.
    assert_eq!(s["transfers"]["axfr_ok"], 1, "{s:#}");
    assert_eq!(s["transfers"]["ixfr_ok"], 2, "{s:#}");
    let audit = node.sandbox.audit_events("zone_enforced");
    assert_eq!(audit.iter().map(|r| r["serial"].as_u64().unwrap_or(0)).collect::<Vec<_>>(), [1, 2, 3]);
    let applied = node.sandbox.audit_events("applied");
    assert!(
        applied.iter().any(|r| r["reason"] == "transfer" && r["added"][0]["name"] == "allomovies.com"),
        "{applied:?}"
    );
}

/// Every bad transfer is refused whole: the list in force stays, the error is reported, and
/// once the primary behaves the zone converges.
#[test]
fn bad_transfers_leave_the_list_in_force() {
    if !privileged("fleet") {
        return;
    }
    let mut node = Node::new();
    let p = primary(&node, 1, &v1(), Some(key()));
    started(&p, &mut node, "idle_timeout = 2\n");
    let faults = [
        Fault::RecordAfterFinalSoa,
        Fault::MissingFinalSoa,
        Fault::UnsignedLastMessage,
        Fault::SoaClassCh,
        Fault::NoSoa,
        Fault::CloseMidStream,
        Fault::PauseMidStream(Duration::from_secs(4)),
        Fault::WrongKey,
        Fault::WrongKeyName,
        Fault::WrongAlgorithm,
        Fault::Refuse,
    ];
    p.set_records(2, &refs(&v2()));
    for fault in faults {
        p.set_fault(Some(fault.clone()));
        // resync: an AXFR now, whatever the serial.
        let out = node.cli(&["zone", "resync", ZONE]);
        assert_ne!(out.code, Some(0), "{fault:?}: resync succeeded: {}{}", out.stdout, out.stderr);
        let s = node.zone_status(ZONE);
        assert_eq!(s["serial_enforced"], 1, "{fault:?}: {s:#}");
        assert!(s["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{fault:?}: {s:#}");
        enforces_v1(&node);
        eprintln!("{fault:?}: {}", out.stderr.trim());
    }
    p.set_fault(None);
    let out = node.cli(&["zone", "resync", ZONE]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    node.wait_serial(ZONE, 2, WAIT);
    enforces_v2(&node);
}

/// An IXFR whose chain of serials is broken, or that the primary refuses, falls back to AXFR.
#[test]
fn a_broken_or_refused_ixfr_falls_back_to_axfr() {
    if !privileged("fleet") {
        return;
    }
    let mut node = Node::new();
    let p = primary(&node, 1, &v1(), Some(key()));
    started(&p, &mut node, "");
    for (serial, fault) in [(2, Fault::BrokenSerialChain), (3, Fault::NotImpIxfr)] {
        let mut v = v2();
        v.push(format!("mirror{serial}.example.rpz.example. 300 IN CNAME ."));
        p.set_records(serial, &refs(&v));
        p.set_fault(Some(fault.clone()));
        p.clear_received();
        p.notify(node.notify_addr(), Transport::Udp, Some(&key())).expect("a NOTIFY reply");
        node.wait_serial(ZONE, serial, WAIT);
        node.sandbox.expect_nxdomain(&format!("mirror{serial}.example"));
        let kinds: Vec<_> = p.received().iter().map(|r| r.qtype).collect();
        assert!(
            kinds.contains(&domain::base::iana::Rtype::IXFR) && kinds.contains(&domain::base::iana::Rtype::AXFR),
            "{fault:?}: {kinds:?}"
        );
    }
    let s = node.zone_status(ZONE);
    assert_eq!(s["transfers"]["ixfr_fallback"], 2, "{s:#}");
}

/// A primary whose serial goes backwards is held: ours stays, the hold is counted, logged and
/// audited, and `dnsfilter zone resync` accepts theirs.
#[test]
fn a_serial_going_backwards_is_held_until_resync() {
    if !privileged("fleet") {
        return;
    }
    let mut node = Node::new();
    let p = primary(&node, 10, &v2(), Some(key()));
    started(&p, &mut node, "");
    enforces_v2(&node);
    p.set_records(5, &refs(&v1()));
    p.notify(node.notify_addr(), Transport::Udp, Some(&key())).expect("a NOTIFY reply");
    let s = node.wait_status(ZONE, "held", WAIT, |s| s["held"].as_str().is_some());
    assert!(s["held"].as_str().is_some_and(|h| h.contains("older")), "{s:#}");
    assert_eq!((s["serial_enforced"].as_u64(), s["serial_primary"].as_u64()), (Some(10), Some(5)), "{s:#}");
    assert_eq!(s["transfers"]["held_backwards"], 1, "{s:#}");
    enforces_v2(&node);
    assert_eq!(node.sandbox.audit_events("zone_held").len(), 1);
    let out = node.cli(&["zone", "resync", ZONE]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    node.wait_serial(ZONE, 5, WAIT);
    enforces_v1(&node);
}

/// A transfer that would remove most of the list is held by the change-share guard until
/// forced; an empty zone is such a transfer.
#[test]
fn an_empty_zone_is_held_by_the_change_guard_until_forced() {
    if !privileged("fleet") {
        return;
    }
    let mut node = Node::new();
    let many: Vec<String> = (0..40).map(|i| format!("site{i}.example.rpz.example. 300 IN CNAME .")).collect();
    let p = primary(&node, 1, &many, Some(key()));
    started(&p, &mut node, "");
    node.sandbox.expect_nxdomain("site7.example");
    p.set_records(2, &[]);
    p.notify(node.notify_addr(), Transport::Udp, Some(&key())).expect("a NOTIFY reply");
    let s = node.wait_status(ZONE, "held", WAIT, |s| s["held"].as_str().is_some());
    assert!(s["held"].as_str().is_some_and(|h| h.contains("refused")), "{s:#}");
    assert_eq!(s["serial_enforced"], 1, "{s:#}");
    node.sandbox.expect_nxdomain("site7.example");
    // The same serial is not fetched again on every retry.
    let out = node.cli(&["zone", "resync", ZONE]);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    let out = node.cli(&["zone", "resync", ZONE, "--force"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    node.wait_serial(ZONE, 2, WAIT);
    node.sandbox.expect_pass("site7.example");
}

/// A transfer over a cap is refused without reading the rest: 10⁷ records against
/// max_records = 100000.
#[test]
fn ten_million_records_are_refused_at_the_cap() {
    if !privileged("fleet") {
        return;
    }
    let mut node = Node::new();
    let p = primary(&node, 1, &v1(), Some(key()));
    started(&p, &mut node, "max_records = 100000\n");
    p.set_records(2, &refs(&v2()));
    p.set_fault(Some(Fault::Huge(10_000_000)));
    let out = node.cli(&["zone", "resync", ZONE]);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stderr.contains("max_records"), "{}", out.stderr);
    enforces_v1(&node);
}

/// The last good copy is enforced at start before any primary answers, and a primary that is
/// away makes the zone stale, never unloaded.
#[test]
fn the_last_good_copy_survives_restarts_and_a_primary_away() {
    if !privileged("fleet") {
        return;
    }
    let mut node = Node::new();
    let p = primary(&node, 1, &v1(), Some(key()));
    started(&p, &mut node, "stale_after = 2\nretry_min = 1\nretry_max = 1\n");
    let addr = p.addr();
    drop(p);
    let s = node.wait_status(ZONE, "stale", WAIT, |s| s["stale"] == true);
    assert_eq!(s["serial_enforced"], 1, "{s:#}");
    enforces_v1(&node);
    assert_eq!(node.sandbox.audit_events("zone_stale").len(), 1);
    // Restart with the primary away: the stored copy is in force at once.
    node.stop();
    node.start();
    enforces_v1(&node);
    let s = node.zone_status(ZONE);
    assert_eq!(s["serial_enforced"], 1, "{s:#}");
    // The primary comes back with a change: fetched by IXFR from the stored copy.
    let p = ScriptedPrimary::builder(ZONE, 1, &refs(&v1())).netns(&node.ns).key(key()).start(addr);
    p.set_records(2, &refs(&v2()));
    p.notify(node.notify_addr(), Transport::Udp, Some(&key())).expect("a NOTIFY reply");
    node.wait_serial(ZONE, 2, WAIT);
    enforces_v2(&node);
    // Without its state folder, a restarted node enforces nothing until the first transfer.
    node.stop();
    std::fs::remove_dir_all(node.sandbox.path("state")).expect("remove the state folder");
    node.start();
    node.wait_serial(ZONE, 2, WAIT);
    enforces_v2(&node);
    let axfrs = p.received().iter().filter(|r| r.qtype == domain::base::iana::Rtype::AXFR).count();
    assert_eq!(axfrs, 1, "{:?}", p.received());
}
