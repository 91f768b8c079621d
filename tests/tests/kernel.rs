//! BPF_PROG_TEST_RUN fixture table: the real object, real frames, verdicts, bytes and counter
//! deltas. Every answer is parsed by the `domain` crate and its checksums recomputed.

use domain::base::iana::Rcode;
use filter_common::config::Config;
use filter_common::{
    counters::Counter,
    dns::parse_text_name,
    table::{Action, Ede},
};
use filter_tests::{
    Fixture, Run, XDP_DROP, XDP_PASS, XDP_TX,
    frames::{Edns, Frame, Ip, Query, Said, check_answer, read_answer, wire},
    privileged,
};
use filter_user::{
    canary::{self, CanaryError, Expect, Listed, Rig, Sent, Tamper},
    config::Settings,
    table::{Rule, Scope, Stop},
};
use std::net::IpAddr;

const A: u16 = 1;
const AAAA: u16 = 28;
const MX: u16 = 15;

fn rule(name: &str, scope: Scope, action: Action, ede: Ede, group: u32) -> Rule {
    Rule { labels: parse_text_name(name).unwrap(), scope, action, ede, group, stop: None }
}

fn settings() -> Settings {
    Settings {
        stop_v4: Some("192.0.2.80".parse().unwrap()),
        stop_v6: Some("2001:db8::80".parse().unwrap()),
        ..Settings::default()
    }
}

/// The Allostreaming rules: four court-ordered sites, a mirror, a redirect, a hole.
fn rules() -> Vec<Rule> {
    let c = Ede::Censored;
    vec![
        rule("allostreaming.com", Scope::Subtree, Action::Nxdomain, c, 1),
        rule("alloshowtv.com", Scope::Subtree, Action::Nodata, c, 2),
        rule("alloshare.com", Scope::Subtree, Action::Refused, c, 3),
        rule("allomovies.com", Scope::Subtree, Action::Truncate, c, 4),
        rule("allomovies.stop", Scope::Subtree, Action::Redirect, c, 5),
        rule("dropped.example", Scope::Subtree, Action::Drop, c, 6),
        rule("watch.example", Scope::Subtree, Action::Monitor, c, 7),
        rule("ok.allostreaming.com", Scope::Subtree, Action::Allow, c, 8),
        rule("exact.example", Scope::Exact, Action::Nxdomain, Ede::Blocked, 9),
        rule("quiet.example", Scope::Subtree, Action::Nxdomain, Ede::None, 10),
        rule("below.example", Scope::Below, Action::Nxdomain, c, 11),
    ]
}

/// The fixture of [`rules`].
fn fixture() -> Fixture {
    Fixture::new(&rules(), &settings())
}

/// Runs a query in `frame` and, for XDP_TX, checks and parses the answer.
fn ask(fx: &mut Fixture, frame: &Frame) -> (Run, Option<Said>) {
    let bytes = frame.build();
    let run = fx.run(&bytes);
    let said = (run.verdict == XDP_TX).then(|| {
        let a = check_answer(&bytes, &run.out);
        assert_eq!(a.vlans, frame.vlans);
        read_answer(&frame.payload, &a.dns)
    });
    (run, said)
}

fn v4(q: &Query) -> Frame {
    Frame::new(Ip::v4(), q.build())
}

#[test]
fn every_action() {
    if !privileged("every_action") {
        return;
    }
    let mut fx = fixture();

    let (run, said) = ask(&mut fx, &v4(&Query::new("allostreaming.com", A)));
    run.expect(XDP_TX, Counter::AnswerNxdomain);
    let s = said.unwrap();
    assert_eq!((s.rcode, s.qr, s.ra, s.rd, s.tc, s.id), (Rcode::NXDOMAIN, true, true, true, false, 0xbeef));
    assert!(s.answers.is_empty());
    assert_eq!(s.authority.len(), 1, "{s:?}");
    assert!(
        s.authority[0].starts_with("allostreaming.com SOA dnsfilter.invalid. hostmaster.dnsfilter.invalid."),
        "{s:?}"
    );
    assert!(!s.opt, "no OPT in the answer to a query without one");

    let (run, said) = ask(&mut fx, &v4(&Query::new("www.alloshowtv.com", AAAA)));
    run.expect(XDP_TX, Counter::AnswerNodata);
    let s = said.unwrap();
    assert_eq!(s.rcode, Rcode::NOERROR);
    assert!(s.answers.is_empty());
    assert!(s.authority[0].starts_with("alloshowtv.com SOA"), "SOA owned by the matched name: {s:?}");

    let (run, said) = ask(&mut fx, &v4(&Query::new("alloshare.com", A)));
    run.expect(XDP_TX, Counter::AnswerRefused);
    let s = said.unwrap();
    assert_eq!(s.rcode, Rcode::REFUSED);
    assert!(s.answers.is_empty() && s.authority.is_empty());

    let (run, said) = ask(&mut fx, &v4(&Query::new("a.allomovies.com", A)));
    run.expect(XDP_TX, Counter::AnswerTruncate);
    let s = said.unwrap();
    assert!(s.tc);
    assert_eq!(s.rcode, Rcode::NOERROR);
    assert!(s.answers.is_empty() && s.authority.is_empty());

    let (run, said) = ask(&mut fx, &v4(&Query::new("allomovies.stop", A)));
    run.expect(XDP_TX, Counter::AnswerRedirect);
    assert_eq!(said.unwrap().answers, ["allomovies.stop A 192.0.2.80"]);
    let (run, said) = ask(&mut fx, &v4(&Query::new("www.allomovies.stop", AAAA)));
    run.expect(XDP_TX, Counter::AnswerRedirect);
    assert_eq!(said.unwrap().answers, ["www.allomovies.stop AAAA 2001:db8::80"]);
    let (run, said) = ask(&mut fx, &v4(&Query::new("allomovies.stop", MX)));
    run.expect(XDP_TX, Counter::AnswerRedirect);
    let s = said.unwrap();
    assert!(s.answers.is_empty() && s.authority.len() == 1, "other types get NODATA: {s:?}");

    let (run, _) = ask(&mut fx, &v4(&Query::new("x.dropped.example", A)));
    run.expect(XDP_DROP, Counter::Drop);

    let (run, _) = ask(&mut fx, &v4(&Query::new("watch.example", A)));
    run.expect(XDP_PASS, Counter::HitMonitor);
    assert_eq!(run.out, v4(&Query::new("watch.example", A)).build(), "monitor passes untouched");

    let (run, _) = ask(&mut fx, &v4(&Query::new("a.ok.allostreaming.com", A)));
    run.expect(XDP_PASS, Counter::HitAllow);
    let (run, said) = ask(&mut fx, &v4(&Query::new("notok.allostreaming.com", A)));
    run.expect(XDP_TX, Counter::AnswerNxdomain);
    assert!(said.unwrap().authority[0].starts_with("allostreaming.com SOA"));

    for g in 1..=8 {
        assert!(fx.filter.group_hits(g).unwrap() >= 1, "group {g} counted");
    }
    assert_eq!(fx.filter.group_hits(9).unwrap(), 0);
}

#[test]
fn suffix_matching_is_on_label_boundaries_and_case_insensitive() {
    if !privileged("suffix_matching") {
        return;
    }
    let mut fx = fixture();
    for name in ["AlLoStReAmInG.CoM", "ALLOSTREAMING.COM", "a.b.c.d.AlloStreaming.com", "x-y.allostreaming.com"] {
        let (run, said) = ask(&mut fx, &v4(&Query::new(name, A)));
        run.expect(XDP_TX, Counter::AnswerNxdomain);
        assert_eq!(said.unwrap().rcode, Rcode::NXDOMAIN, "{name}");
    }
    for name in ["notallostreaming.com", "allostreaming.com.evil.net", "allostreaming.co", "com", "allostreamingcom"] {
        let (run, _) = ask(&mut fx, &v4(&Query::new(name, A)));
        run.expect(XDP_PASS, Counter::PassNoMatch);
    }
    // Exact-only and below-only entries.
    ask(&mut fx, &v4(&Query::new("exact.example", A))).0.expect(XDP_TX, Counter::AnswerNxdomain);
    ask(&mut fx, &v4(&Query::new("a.exact.example", A))).0.expect(XDP_PASS, Counter::PassNoMatch);
    ask(&mut fx, &v4(&Query::new("below.example", A))).0.expect(XDP_PASS, Counter::PassNoMatch);
    ask(&mut fx, &v4(&Query::new("a.below.example", A))).0.expect(XDP_TX, Counter::AnswerNxdomain);
    // The root name matches nothing.
    let mut q = Query::new("", A);
    q.qname = vec![0];
    ask(&mut fx, &v4(&q)).0.expect(XDP_PASS, Counter::PassNoMatch);
}

#[test]
fn every_frame_shape() {
    if !privileged("every_frame_shape") {
        return;
    }
    let mut fx = fixture();
    let q = Query::new("www.allostreaming.com", A);
    let shapes: Vec<(&str, Frame)> = vec![
        ("ipv4", v4(&q)),
        ("ipv6", Frame::new(Ip::v6(), q.build())),
        ("vlan", Frame { vlans: vec![(0x8100, 42)], ..v4(&q) }),
        ("qinq", Frame { vlans: vec![(0x88a8, 100), (0x8100, 42)], ..v4(&q) }),
        ("qinq ipv6", Frame { vlans: vec![(0x88a8, 100), (0x8100, 42)], ..Frame::new(Ip::v6(), q.build()) }),
        ("ipv4 options", Frame::new(Ip::V4 { options: vec![1, 1, 1, 0], frag: 0, proto: 17 }, q.build())),
        (
            "ipv4 40 octets of options",
            Frame::new(Ip::V4 { options: [vec![1; 39], vec![0]].concat(), frag: 0, proto: 17 }, q.build()),
        ),
        ("ethernet padding", Frame { trailer: 20, ..v4(&q) }),
    ];
    for (what, frame) in shapes {
        let (run, said) = ask(&mut fx, &frame);
        assert_eq!(run.verdict, XDP_TX, "{what}: {:?}", run.deltas);
        assert_eq!(said.unwrap().rcode, Rcode::NXDOMAIN, "{what}");
    }
    // Passed untouched, with their reason.
    let passes: Vec<(&str, Frame, Counter)> = vec![
        (
            "ipv4 fragment (MF)",
            Frame::new(Ip::V4 { options: vec![], frag: 0x2000, proto: 17 }, q.build()),
            Counter::PassIpFragment,
        ),
        (
            "ipv4 fragment (offset)",
            Frame::new(Ip::V4 { options: vec![], frag: 0x0010, proto: 17 }, q.build()),
            Counter::PassIpFragment,
        ),
        (
            "ipv6 extension header",
            Frame::new(Ip::V6 { next: 0, ext: vec![17, 0, 1, 4, 0, 0, 0, 0] }, q.build()),
            Counter::PassIpv6ExtHeader,
        ),
        ("tcp", Frame::new(Ip::V4 { options: vec![], frag: 0, proto: 6 }, q.build()), Counter::PassNotUdp),
        ("other port", Frame { dport: 5353, ..v4(&q) }, Counter::PassNotDnsPort),
        (
            "three vlan tags (not parsed)",
            Frame { vlans: vec![(0x88a8, 1), (0x8100, 2), (0x8100, 3)], ..v4(&q) },
            Counter::PassNotIp,
        ),
    ];
    for (what, frame, counter) in passes {
        let bytes = frame.build();
        let run = fx.run(&bytes);
        assert_eq!((run.verdict, run.deltas.clone()), (XDP_PASS, vec![(counter, 1)]), "{what}");
        assert_eq!(run.out, bytes, "{what}: untouched");
    }
    let arp = [vec![0xff; 6], vec![2; 6], vec![0x08, 0x06], vec![0; 28]].concat();
    let run = fx.run(&arp);
    assert_eq!((run.verdict, run.deltas), (XDP_PASS, vec![(Counter::PassNotIp, 1)]));
    let runt = fx.run(&[vec![0u8; 12], vec![0x08, 0x00], vec![0x45, 0]].concat());
    assert_eq!((runt.verdict, runt.deltas), (XDP_PASS, vec![(Counter::PassBadHeader, 1)]));
}

#[test]
fn edns_and_extended_errors() {
    if !privileged("edns_and_extended_errors") {
        return;
    }
    let mut fx = fixture();
    let cases: Vec<(&str, Edns, Option<u16>)> = vec![
        ("allostreaming.com", Edns::default(), Some(16)),
        ("allostreaming.com", Edns { dnssec_ok: true, cookie: true }, Some(16)),
        ("exact.example", Edns { dnssec_ok: false, cookie: true }, Some(15)),
        ("quiet.example", Edns::default(), None),
    ];
    for (name, e, ede) in cases {
        for ip in [Ip::v4(), Ip::v6()] {
            let q = Query::new(name, A).with_edns(e);
            let (run, said) = ask(&mut fx, &Frame::new(ip.clone(), q.build()));
            run.expect(XDP_TX, Counter::AnswerNxdomain);
            let s = said.unwrap();
            assert!(s.opt, "{name}: OPT echoed");
            assert_eq!(s.ede, ede, "{name}");
            assert_eq!(s.dnssec_ok, e.dnssec_ok, "{name}: DO copied");
        }
    }
    // A non-OPT additional record: answered, without OPT.
    let mut m = Query::new("allostreaming.com", A).build();
    m[11] = 1;
    m.extend([0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
    let (run, said) = ask(&mut fx, &Frame::new(Ip::v4(), m));
    run.expect(XDP_TX, Counter::AnswerNxdomain);
    assert!(!said.unwrap().opt);
}

/// A change made to a query's DNS message.
type Mutation = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn headers_that_are_not_standard_queries_pass() {
    if !privileged("headers_that_are_not_standard_queries_pass") {
        return;
    }
    let mut fx = fixture();
    let base = Query::new("allostreaming.com", A).build();
    let cases: Vec<(&str, Mutation, Counter)> = vec![
        ("response", Box::new(|m| m[2] |= 0x80), Counter::PassNotQuery),
        ("opcode notify", Box::new(|m| m[2] |= 4 << 3), Counter::PassNotQuery),
        ("qdcount 0", Box::new(|m| m[5] = 0), Counter::PassQdcount),
        ("qdcount 2", Box::new(|m| m[5] = 2), Counter::PassQdcount),
        ("ancount", Box::new(|m| m[7] = 1), Counter::PassHasRecords),
        ("nscount", Box::new(|m| m[9] = 1), Counter::PassHasRecords),
        ("arcount 2", Box::new(|m| m[11] = 2), Counter::PassArcount),
        (
            "class CH",
            Box::new(|m| {
                let n = m.len();
                m[n - 1] = 3;
            }),
            Counter::PassNotClassIn,
        ),
        ("short header", Box::new(|m| m.truncate(11)), Counter::PassShortDns),
    ];
    for (what, edit, counter) in cases {
        let mut m = base.clone();
        edit(&mut m);
        let bytes = Frame::new(Ip::v4(), m).build();
        let run = fx.run(&bytes);
        assert_eq!((run.verdict, run.deltas.clone()), (XDP_PASS, vec![(counter, 1)]), "{what}");
        assert_eq!(run.out, bytes, "{what}: untouched");
    }
}

#[test]
fn malformed_names_pass_and_are_counted() {
    if !privileged("malformed_names_pass_and_are_counted") {
        return;
    }
    let mut fx = fixture();
    let with_name = |qname: Vec<u8>| {
        let mut q = Query::new("x", A);
        q.qname = qname;
        Frame::new(Ip::v4(), q.build()).build()
    };
    let long_label = [vec![64], vec![b'a'; 64], wire("allostreaming.com")].concat();
    let pointer = vec![0xc0, 12];
    let ext_label = [vec![0x41], vec![b'a'; 1], wire("com")].concat();
    let cases = vec![
        ("64-octet label", long_label, Counter::PassMalformedName),
        ("compression pointer", pointer, Counter::PassCompressedName),
        ("pointer after a label", [vec![3], b"www".to_vec(), vec![0xc0, 12]].concat(), Counter::PassCompressedName),
        ("reserved label type", ext_label, Counter::PassMalformedName),
    ];
    for (what, qname, counter) in cases {
        let bytes = with_name(qname);
        let run = fx.run(&bytes);
        assert_eq!((run.verdict, run.deltas.clone()), (XDP_PASS, vec![(counter, 1)]), "{what}");
        assert_eq!(run.out, bytes);
    }
    // A 256-octet name: over the limit by one.
    let mut long = Vec::new();
    for len in [63u8, 63, 63, 62] {
        long.push(len);
        long.extend(std::iter::repeat_n(b'a', usize::from(len)));
    }
    long.push(0);
    assert_eq!(long.len(), 256);
    let run = fx.run(&with_name(long));
    assert_eq!((run.verdict, run.deltas), (XDP_PASS, vec![(Counter::PassNameTooLong, 1)]));

    // Truncation at every offset of a blocked query: never answered, never dropped.
    let full = Query::new("www.allostreaming.com", A).build();
    for cut in 12..full.len() {
        let bytes = Frame::new(Ip::v4(), full[..cut].to_vec()).build();
        let run = fx.run(&bytes);
        assert_eq!(run.verdict, XDP_PASS, "cut at {cut}");
        assert_eq!(run.deltas, vec![(Counter::PassTruncatedName, 1)], "cut at {cut}");
    }
}

#[test]
fn longest_legal_names() {
    if !privileged("longest_legal_names") {
        return;
    }
    // 127 one-octet labels ("a.a....a", the last one "z"): 255 octets with the root.
    let deep: Vec<&str> = std::iter::repeat_n("a", 126).chain(["z"]).collect();
    let deep_name = deep.join(".");
    assert_eq!(wire(&deep_name).len(), 255);
    // 4 labels of 63, 62, 63, 63 octets: 255 octets.
    let wide_name = format!("{}.{}.{}.{}", "b".repeat(63), "c".repeat(61), "d".repeat(63), "e".repeat(63));
    assert_eq!(wire(&wide_name).len(), 255);
    let sub_of_wide = format!("{}.{}.{}", "c".repeat(61), "d".repeat(63), "e".repeat(63));
    let mut fx = Fixture::new(
        &[
            rule("z", Scope::Subtree, Action::Nxdomain, Ede::Censored, 1),
            rule(&deep[1..].join("."), Scope::Exact, Action::Refused, Ede::Censored, 2),
            rule(&sub_of_wide, Scope::Subtree, Action::Nodata, Ede::Censored, 3),
        ],
        &settings(),
    );
    // The most specific entry at depth 126 wins over the TLD for its exact name...
    let (run, said) = ask(&mut fx, &v4(&Query::new(&deep[1..].join("."), A)));
    run.expect(XDP_TX, Counter::AnswerRefused);
    assert_eq!(said.unwrap().rcode, Rcode::REFUSED);
    // ...and the 127-label name falls back to the TLD entry.
    let (run, said) = ask(&mut fx, &v4(&Query::new(&deep_name, A)));
    run.expect(XDP_TX, Counter::AnswerNxdomain);
    assert!(said.unwrap().authority[0].starts_with("z SOA"));
    let (run, said) = ask(&mut fx, &v4(&Query::new(&wide_name.to_uppercase(), A)));
    run.expect(XDP_TX, Counter::AnswerNodata);
    assert_eq!(said.unwrap().rcode, Rcode::NOERROR);
    // Every label count from 1 to 127 under a listed TLD matches.
    for n in 1..=127usize {
        let name: Vec<&str> = std::iter::repeat_n("q", n - 1).chain(["z"]).collect();
        let (run, _) = ask(&mut fx, &v4(&Query::new(&name.join("."), A)));
        assert_eq!(run.verdict, XDP_TX, "{n} labels");
    }
}

#[test]
fn generation_swap_changes_behaviour() {
    if !privileged("generation_swap_changes_behaviour") {
        return;
    }
    let mut fx = fixture();
    let q = v4(&Query::new("allostreaming.com", A));
    ask(&mut fx, &q).0.expect(XDP_TX, Counter::AnswerNxdomain);
    let next = filter_user::table::build(
        &[rule("other.example", Scope::Subtree, Action::Drop, Ede::Censored, 1)],
        filter_user::table::random_seed(),
        2,
        10,
    )
    .unwrap();
    fx.filter.install(&next).unwrap();
    ask(&mut fx, &q).0.expect(XDP_PASS, Counter::PassNoMatch);
    ask(&mut fx, &v4(&Query::new("www.other.example", A))).0.expect(XDP_DROP, Counter::Drop);
}

#[test]
fn no_table_passes() {
    if !privileged("no_table_passes") {
        return;
    }
    // A loaded program with no generation installed.
    let bytes = v4(&Query::new("allostreaming.com", A)).build();
    let mut fx = Fixture {
        filter: filter_user::loader::Filter::load().unwrap(),
        built: filter_user::table::build(&[], 1, 1, 1).unwrap(),
        config: Default::default(),
    };
    fx.run(&bytes).expect(XDP_PASS, Counter::PassNoTable);
}

fn redirect(name: &str, group: u32, v4: Option<&str>, v6: Option<&str>) -> Rule {
    let stop = (v4.is_some() || v6.is_some())
        .then(|| Stop { v4: v4.map(|a| a.parse().unwrap()), v6: v6.map(|a| a.parse().unwrap()) });
    Rule { stop, ..rule(name, Scope::Subtree, Action::Redirect, Ede::Blocked, group) }
}

/// Asks `name` with `qtype` over IPv4 and IPv6; both must be answered by a redirect with the
/// same records. Returns the answer records, or `None` for NODATA (no answer, the SOA).
fn redirected(fx: &mut Fixture, name: &str, qtype: u16) -> Option<Vec<String>> {
    let mut seen = vec![];
    for ip in [Ip::v4(), Ip::v6()] {
        let (run, said) = ask(fx, &Frame::new(ip, Query::new(name, qtype).build()));
        run.expect(XDP_TX, Counter::AnswerRedirect);
        let s = said.unwrap();
        assert_eq!(s.rcode, Rcode::NOERROR, "{name}");
        if s.answers.is_empty() {
            assert_eq!(s.authority.len(), 1, "NODATA carries the SOA: {s:?}");
        }
        seen.push(s.answers);
    }
    assert_eq!(seen[0], seen[1], "{name}: same answer over IPv4 and IPv6");
    let answers = seen.swap_remove(0);
    (!answers.is_empty()).then_some(answers)
}

#[test]
fn per_entry_stop_pages() {
    if !privileged("per_entry_stop_pages") {
        return;
    }
    let mut fx = Fixture::new(
        &[
            redirect("both.stop", 1, Some("203.0.113.1"), Some("2001:db8:1::1")),
            redirect("v4only.stop", 2, Some("203.0.113.2"), None),
            redirect("v6only.stop", 3, None, Some("2001:db8:3::3")),
            redirect("global.stop", 4, None, None),
            // The same addresses as both.stop: shares its record.
            redirect("same.stop", 5, Some("203.0.113.1"), Some("2001:db8:1::1")),
        ],
        &settings(),
    );
    assert_eq!(fx.built.header.stops, 3, "one record per distinct address set");

    let a = |v: &str| Some(vec![v.to_string()]);
    assert_eq!(redirected(&mut fx, "both.stop", A), a("both.stop A 203.0.113.1"));
    assert_eq!(redirected(&mut fx, "www.both.stop", AAAA), a("www.both.stop AAAA 2001:db8:1::1"));
    assert_eq!(redirected(&mut fx, "both.stop", MX), None, "other types get NODATA");
    assert_eq!(redirected(&mut fx, "v4only.stop", A), a("v4only.stop A 203.0.113.2"));
    assert_eq!(redirected(&mut fx, "v4only.stop", AAAA), None, "a v4-only record: NODATA to AAAA");
    assert_eq!(redirected(&mut fx, "v6only.stop", A), None, "a v6-only record: NODATA to A");
    assert_eq!(redirected(&mut fx, "v6only.stop", AAAA), a("v6only.stop AAAA 2001:db8:3::3"));
    assert_eq!(redirected(&mut fx, "global.stop", A), a("global.stop A 192.0.2.80"), "no stop: the global one");
    assert_eq!(redirected(&mut fx, "global.stop", AAAA), a("global.stop AAAA 2001:db8::80"));
    assert_eq!(redirected(&mut fx, "x.same.stop", A), a("x.same.stop A 203.0.113.1"));
    // With EDNS the answer grows an OPT after the address record.
    let (run, said) = ask(&mut fx, &v4(&Query::new("v6only.stop", AAAA).with_edns(Edns::default())));
    run.expect(XDP_TX, Counter::AnswerRedirect);
    let s = said.unwrap();
    assert_eq!((s.answers, s.ede), (vec!["v6only.stop AAAA 2001:db8:3::3".to_string()], Some(15)));

    // Without a global stop page, entries with their own still answer with it; the others NODATA.
    let cfg = Settings::default().to_config().unwrap();
    fx.filter.set_config(&cfg).unwrap();
    assert_eq!(redirected(&mut fx, "both.stop", A), a("both.stop A 203.0.113.1"));
    assert_eq!(redirected(&mut fx, "global.stop", A), None);
    assert_eq!(redirected(&mut fx, "global.stop", AAAA), None);
}

#[test]
fn stop_pages_swap_with_their_generation() {
    if !privileged("stop_pages_swap_with_their_generation") {
        return;
    }
    let mut fx = Fixture::new(
        &[redirect("a.stop", 1, Some("203.0.113.1"), None), redirect("b.stop", 2, Some("203.0.113.2"), None)],
        &settings(),
    );
    assert_eq!(redirected(&mut fx, "a.stop", A), Some(vec!["a.stop A 203.0.113.1".into()]));
    // The next generation numbers its records differently: a.stop's record is now record 2.
    let next = filter_user::table::build(
        &[
            redirect("c.stop", 3, Some("203.0.113.3"), None),
            redirect("a.stop", 1, Some("203.0.113.11"), None),
            redirect("b.stop", 2, None, None),
        ],
        filter_user::table::random_seed(),
        2,
        10,
    )
    .unwrap();
    fx.filter.install(&next).unwrap();
    assert_eq!(redirected(&mut fx, "a.stop", A), Some(vec!["a.stop A 203.0.113.11".into()]));
    assert_eq!(redirected(&mut fx, "b.stop", A), Some(vec!["b.stop A 192.0.2.80".into()]));
    assert_eq!(redirected(&mut fx, "c.stop", A), Some(vec!["c.stop A 203.0.113.3".into()]));
}

#[test]
fn resolver_scope() {
    if !privileged("resolver_scope") {
        return;
    }
    let resolvers = |list: &[&str]| -> Settings {
        Settings { resolvers: list.iter().map(|a| a.parse().unwrap()).collect(), ..settings() }
    };
    let mut fx =
        Fixture::new(&[rule("blocked.example", Scope::Subtree, Action::Nxdomain, Ede::Censored, 1)], &resolvers(&[]));
    let q = Query::new("blocked.example", A).build();
    let ip = |a: &str| -> IpAddr { a.parse().unwrap() };
    let v4_to = |a: &str| Frame::new(Ip::v4(), q.clone()).to(ip(a));
    let v6_to = |a: &str| Frame::new(Ip::v6(), q.clone()).to(ip(a));
    let answered = |fx: &mut Fixture, f: &Frame| {
        let (run, said) = ask(fx, f);
        run.expect(XDP_TX, Counter::AnswerNxdomain);
        assert_eq!(said.unwrap().rcode, Rcode::NXDOMAIN);
    };
    let passed = |fx: &mut Fixture, f: &Frame, counter: Counter| {
        let bytes = f.build();
        let run = fx.run(&bytes);
        run.expect(XDP_PASS, counter);
        assert_eq!(run.out, bytes, "untouched");
    };

    // No list: every destination.
    answered(&mut fx, &v4_to("198.51.100.53"));
    answered(&mut fx, &v4_to("203.0.113.200"));
    answered(&mut fx, &v6_to("2001:db8::53"));
    answered(&mut fx, &v6_to("2001:db8:ffff::1"));

    // IPv4 resolvers only: other IPv4 destinations pass, and so does every IPv6 query.
    fx.filter.set_config(&resolvers(&["198.51.100.53", "198.51.100.54"]).to_config().unwrap()).unwrap();
    answered(&mut fx, &v4_to("198.51.100.53"));
    answered(&mut fx, &v4_to("198.51.100.54"));
    passed(&mut fx, &v4_to("198.51.100.55"), Counter::PassNotResolver);
    passed(&mut fx, &v4_to("203.0.113.200"), Counter::PassNotResolver);
    passed(&mut fx, &v6_to("2001:db8::53"), Counter::PassNotResolver);
    // The port check comes first.
    passed(&mut fx, &Frame { dport: 5353, ..v4_to("203.0.113.200") }, Counter::PassNotDnsPort);
    // Behind VLAN tags and IPv4 options the destination is found all the same.
    answered(&mut fx, &Frame { vlans: vec![(0x88a8, 100), (0x8100, 42)], ..v4_to("198.51.100.54") });
    let opts = Frame::new(Ip::V4 { options: vec![1, 1, 1, 0], frag: 0, proto: 17 }, q.clone());
    answered(&mut fx, &opts.clone().to(ip("198.51.100.53")));
    passed(&mut fx, &opts.to(ip("198.51.100.99")), Counter::PassNotResolver);

    // IPv6 resolvers only: the mirror image.
    fx.filter.set_config(&resolvers(&["2001:db8::53"]).to_config().unwrap()).unwrap();
    answered(&mut fx, &v6_to("2001:db8::53"));
    passed(&mut fx, &v6_to("2001:db8::54"), Counter::PassNotResolver);
    passed(&mut fx, &v6_to("2001:db9::53"), Counter::PassNotResolver);
    passed(&mut fx, &v4_to("198.51.100.53"), Counter::PassNotResolver);
    answered(&mut fx, &Frame { vlans: vec![(0x8100, 7)], ..v6_to("2001:db8::53") });

    // Full lists of both families: the last address of each is compared too.
    let mut full: Vec<String> = (1..=16).map(|i| format!("198.51.100.{i}")).collect();
    full.extend((1..=16).map(|i| format!("2001:db8::{i:x}")));
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    fx.filter.set_config(&resolvers(&full).to_config().unwrap()).unwrap();
    answered(&mut fx, &v4_to("198.51.100.1"));
    answered(&mut fx, &v4_to("198.51.100.16"));
    passed(&mut fx, &v4_to("198.51.100.17"), Counter::PassNotResolver);
    answered(&mut fx, &v6_to("2001:db8::1"));
    answered(&mut fx, &v6_to("2001:db8::10"));
    passed(&mut fx, &v6_to("2001:db8::11"), Counter::PassNotResolver);

    // An emptied list enforces on all destinations again.
    fx.filter.set_config(&resolvers(&[]).to_config().unwrap()).unwrap();
    answered(&mut fx, &v4_to("203.0.113.200"));
    answered(&mut fx, &v6_to("2001:db8::54"));
}

#[test]
fn a_stop_record_the_generation_lacks_passes() {
    if !privileged("a_stop_record_the_generation_lacks_passes") {
        return;
    }
    let mut fx = Fixture::new(&[redirect("a.stop", 1, Some("203.0.113.1"), None)], &settings());
    // A corrupt generation: the entry names stop 1, the header says there are no records.
    let mut bad = filter_user::table::build(
        &[redirect("a.stop", 1, Some("203.0.113.1"), None)],
        filter_user::table::random_seed(),
        2,
        10,
    )
    .unwrap();
    bad.header.stops = 0;
    bad.buckets[0] = filter_common::table::Bucket::from_header(&bad.header);
    fx.filter.install(&bad).unwrap();
    let bytes = v4(&Query::new("a.stop", A)).build();
    let run = fx.run(&bytes);
    run.expect(XDP_PASS, Counter::PassBadTable);
    assert_eq!(run.out, bytes, "untouched");
}

#[test]
fn the_kernel_has_every_helper_the_program_needs() {
    if !privileged("the_kernel_has_every_helper_the_program_needs") {
        return;
    }
    let missing = filter_user::probe::missing();
    assert!(missing.is_empty(), "{} lacks {missing:?}", filter_user::probe::kernel_release());
    filter_user::probe::check().expect("the cached probe agrees");
}

/// A canary instance of the program, checked against `fx`'s program, running the canaries of
/// `rules` with `fx`'s generation and `config`.
fn run_canaries(
    fx: &mut Fixture,
    rules: &[Rule],
    config: &Config,
    tamper: Option<Tamper>,
) -> Result<usize, CanaryError> {
    let mut rig = Rig::load().expect("load the canary instance");
    rig.same_program(&mut fx.filter).expect("the verifier makes the same program twice");
    rig.set_tamper(tamper);
    let canaries = canary::plan(rules.iter().map(Listed::from), &fx.built, config)?;
    let generation = rig.filter().prepare(&fx.built).expect("create the generation");
    rig.check(&generation, config, &canaries).map(|()| canaries.len())
}

/// What each entry canary stands for and the name it asks.
fn covered(rules: &[Rule], config: &Config, built: &filter_user::table::Built) -> Vec<(String, String)> {
    let canaries = canary::plan(rules.iter().map(Listed::from), built, config).unwrap();
    canaries
        .iter()
        .filter_map(|c| match &c.sent {
            Sent::Query { labels, .. } if c.what.contains(" entry ") => {
                Some((c.what.clone(), filter_common::dns::to_text(labels)))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_canaries_pass_for_every_action_on_the_real_object() {
    if !privileged("the_canaries_pass_for_every_action_on_the_real_object") {
        return;
    }
    let rules = rules();
    let mut fx = fixture();
    let config = fx.config;
    let n = run_canaries(&mut fx, &rules, &config, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 8 * 2 + 2 + 2, "every action over IPv4 and IPv6, an unlisted name twice, two non-DNS frames");
    let actions = covered(&rules, &config, &fx.built);
    for a in Action::ALL {
        assert_eq!(
            actions.iter().filter(|(w, _)| w.starts_with(&format!("{} entry", a.name()))).count(),
            2,
            "{actions:?}"
        );
    }
    // The live instance saw nothing.
    assert!(fx.filter.counters().unwrap().iter().all(|(_, v)| *v == 0), "the fixture's counters moved");
    assert!((1..=11).all(|g| fx.filter.group_hits(g).unwrap() == 0), "the fixture's group hits moved");

    // Another port, resolvers of both families, no global stop page.
    let other = Settings {
        ports: vec![5353, 53],
        resolvers: vec!["198.51.100.7".parse().unwrap(), "2001:db8::7".parse().unwrap()],
        ..Settings::default()
    }
    .to_config()
    .unwrap();
    run_canaries(&mut fx, &rules, &other, None).unwrap_or_else(|e| panic!("{e}"));

    // Below-only and exact entries, and a redirect with an IPv6-only stop page of its own.
    let mut rules = vec![
        rule("below.example", Scope::Below, Action::Nxdomain, Ede::Censored, 1),
        rule("exact.example", Scope::Exact, Action::Refused, Ede::Blocked, 2),
        redirect("v6only.stop", 3, None, Some("2001:db8:3::3")),
        rule("ok.below.example", Scope::Exact, Action::Allow, Ede::None, 4),
    ];
    // A child of the below-only entry that is listed itself: the canary asks another.
    rules.push(rule("canary.below.example", Scope::Subtree, Action::Drop, Ede::Censored, 5));
    let mut fx = Fixture::new(&rules, &settings());
    let config = fx.config;
    run_canaries(&mut fx, &rules, &config, None).unwrap_or_else(|e| panic!("{e}"));
    let actions = covered(&rules, &config, &fx.built);
    let below = ("nxdomain entry *.below.example".to_string(), "canary-1.below.example".to_string());
    assert!(actions.contains(&below), "{actions:?}");
}

#[test]
fn a_wrong_expectation_makes_the_check_refuse_naming_the_canary() {
    if !privileged("a_wrong_expectation_makes_the_check_refuse_naming_the_canary") {
        return;
    }
    let rules = rules();
    let mut fx = fixture();
    let config = fx.config;
    // NXDOMAIN answers are expected to say REFUSED.
    let wrong: Tamper = |c| {
        if let Expect::Answer { counter: Counter::AnswerNxdomain, rcode, .. } = &mut c.expect {
            *rcode = 5;
        }
    };
    let e = run_canaries(&mut fx, &rules, &config, Some(wrong)).expect_err("a wrong expectation must fail");
    let text = e.to_string();
    let kernel = filter_user::probe::kernel_release();
    assert!(matches!(e, CanaryError::Failed { .. }), "{e:?}");
    assert!(text.starts_with(&format!("canary failed on this kernel ({kernel}): ")), "{text}");
    assert!(text.contains("the canary for nxdomain entry allostreaming.com: allostreaming.com A over IPv4"), "{text}");
    assert!(text.contains("expected XDP_TX with answer_nxdomain, rcode REFUSED"), "{text}");
    assert!(text.ends_with("got XDP_TX with answer_nxdomain, but the answer has rcode NXDOMAIN"), "{text}");

    // A blocked name expected to pass (as the 6.1 program did) is refused too.
    let passes: Tamper = |c| {
        if c.what.starts_with("drop entry") {
            c.expect = Expect::Pass { counter: Counter::PassNoMatch, group: None };
        }
    };
    let text = run_canaries(&mut fx, &rules, &config, Some(passes)).expect_err("must fail").to_string();
    assert!(text.contains("the canary for drop entry dropped.example"), "{text}");
    assert!(text.ends_with("expected XDP_PASS with pass_no_match; got XDP_DROP with drop"), "{text}");
}

#[test]
fn a_generation_that_cannot_answer_fails_its_canaries() {
    if !privileged("a_generation_that_cannot_answer_fails_its_canaries") {
        return;
    }
    let rules = vec![redirect("a.stop", 1, Some("203.0.113.1"), None)];
    let mut fx = Fixture::new(&rules, &settings());
    // A corrupt generation: the entry names stop record 1, the header says there is none.
    fx.built.header.stops = 0;
    fx.built.buckets[0] = filter_common::table::Bucket::from_header(&fx.built.header);
    let config = fx.config;
    let text = run_canaries(&mut fx, &rules, &config, None).expect_err("must fail").to_string();
    assert!(text.contains("the canary for redirect entry a.stop: a.stop A over IPv4"), "{text}");
    assert!(text.contains("expected XDP_TX with answer_redirect, rcode NOERROR, A 203.0.113.1"), "{text}");
    assert!(text.ends_with("got XDP_PASS with pass_bad_table"), "{text}");
}
