//! Resolver parity: the XDP filter sees queries over UDP only; a query over TCP (or DoT, or one
//! that `truncate` sent to TCP) goes to the node's resolver. Deployed as docs/fleet-deploy.md
//! says, the resolver is itself a secondary of the same RPZ zone from the same primary, so a
//! client gets the same answer whichever way it asks.
//!
//! Each test builds one node of the testbed (client and edge namespaces, `testbed::fleet`): a
//! Knot DNS primary in a namespace of its own serving `rpz.isp.example` (the Allostreaming
//! sites, and a `rpz-passthru` hole), the daemon as its secondary under TSIG with XDP on the
//! edge interface, and the node's resolver as a second secondary of the zone:
//! - BIND 9 (`response-policy`, a secondary zone transferred under the same TSIG key);
//! - Unbound 1.17 (an `rpz:` clause), which has no TSIG: Knot allows its address without a key
//!   and sends it an unsigned NOTIFY, beside the signed ones to the daemon.
//!
//! Then, from the client namespace, every name is asked over UDP and over TCP: a blocked name
//! gets NXDOMAIN from the filter over UDP (the resolver never sees it: its query log and the
//! filter's counters say so) and NXDOMAIN from the resolver over TCP; a name in the hole and
//! an unlisted name get the resolver's answer both ways. A commit on the primary changes the
//! zone; both secondaries converge (polled) and the answers are again the same. Last, with the
//! primary stopped, both keep their copies: the answers do not change.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use filter_tests::{daemon::dnsfilter_binary, fleet::LogsOnPanic, privileged};
use testbed::{
    EDGE_V4, EDGE_V6, Knot, KnotZone, PrimaryNet, RESOLVER_V4, RESOLVER_V6, Reply, Testbed, TsigKey, WorkDir,
    dig::FILTER_MNAME,
    fleet::{
        self, KEY_NAME, NOTIFY_PORT, NodeConf, ResolverKind, RpzResolver, Secondary, ZONE, allostreaming_zone,
        node_addr, primary_addr,
    },
};

/// How long a secondary may take to follow the primary.
const CONVERGE: Duration = Duration::from_secs(30);
/// The EDE of the filter's answers for a fleet zone (its default, `ede = "blocked"`).
const BLOCKED: &str = "15 (Blocked)";
/// Where the daemon serves its metrics, in the edge namespace.
const METRICS: &str = "127.0.0.1:9553";
/// The hole in the first version of the zone.
const HOLE: &str = "status.allostreaming.com 3600 CNAME rpz-passthru.";

/// What a name should get, over UDP and TCP alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// NXDOMAIN: from the filter over UDP, from the resolver over TCP.
    Blocked,
    /// The resolver's own data, both ways.
    Resolved,
}

/// One node and its primary, torn down in field order: the resolver, the daemon (and its
/// pins), knotd, the primary's namespace, the node's namespaces, the folder.
struct Bed {
    resolver: RpzResolver,
    filter: Secondary,
    knot: Knot,
    _primary: PrimaryNet,
    net: Testbed,
    _logs: LogsOnPanic,
    _work: WorkDir,
}

impl Bed {
    fn new(tag: &str, kind: ResolverKind) -> Bed {
        let base = testbed::unique_name(tag);
        let work = WorkDir::create(std::env::temp_dir().join(&base)).expect("scratch folder");
        let logs = LogsOnPanic(vec![
            work.file("dnsfilter").join("dnsfilter.log"),
            work.file("knot").join("knot.log"),
            work.file("resolver").join("resolver.log"),
        ]);
        let net = Testbed::create(&base).expect("client and edge namespaces");
        let primary = PrimaryNet::create(&base, &net.edge, 1).expect("the primary's namespace");
        let key = TsigKey::generate(KEY_NAME, "hmac-sha256");
        let daemon_notify = SocketAddr::new(node_addr(1), NOTIFY_PORT);
        let resolver_notify = SocketAddr::new(node_addr(1), 53);
        // BIND checks the key of a signed NOTIFY; Unbound cannot: it gets an unsigned one (below).
        let signed: Vec<SocketAddr> = match kind {
            ResolverKind::Bind => vec![daemon_notify, resolver_notify],
            ResolverKind::Unbound => vec![daemon_notify],
        };
        let knot = Knot::start(
            &primary.ns,
            &work.file("knot"),
            primary_addr(1),
            Some(&key),
            &signed,
            &[KnotZone::new(ZONE, &allostreaming_zone(1, &[HOLE]))],
        )
        .expect("start knotd");
        if kind == ResolverKind::Unbound {
            fleet::knot_allow_unsigned(&work.file("knot"), "resolver", node_addr(1), Some(resolver_notify))
                .expect("allow the resolver's address");
        }
        let mut conf = NodeConf::on_link(1, Some(&key));
        conf.extra = format!("metrics = {METRICS:?}\n");
        let pins = PathBuf::from(format!("/sys/fs/bpf/{base}"));
        let filter = Secondary::start(dnsfilter_binary(), &pins, &work.file("dnsfilter"), &net.edge, &conf)
            .expect("start the daemon");
        let dir = work.file("resolver");
        std::fs::create_dir_all(&dir).expect("the resolver's folder");
        let listen: [IpAddr; 3] = [EDGE_V4.parse().expect("v4"), EDGE_V6.parse().expect("v6"), node_addr(1)];
        let resolver = match kind {
            ResolverKind::Bind => RpzResolver::bind(&net.edge, &dir, &listen, primary_addr(1), &key),
            ResolverKind::Unbound => RpzResolver::unbound(&net.edge, &dir, &listen, primary_addr(1)),
        }
        .expect("start the resolver");
        let mut bed = Bed { resolver, filter, knot, _primary: primary, net, _logs: logs, _work: work };
        bed.converge(1, "allostreaming.com", "NXDOMAIN");
        bed
    }

    /// Waits until the daemon enforces `serial`, and the resolver holds it and answers `probe`
    /// (a name, over TCP) with `rcode`: holding a version of the zone is not applying it
    /// (named waits `min-update-interval` between two versions of a policy zone).
    fn converge(&mut self, serial: u32, probe: &str, rcode: &str) {
        let took = self.filter.wait_serial(ZONE, serial, CONVERGE).expect("the daemon follows the primary");
        let kind = self.resolver.kind;
        let held = self.resolver.wait_serial(serial, CONVERGE).expect("the resolver follows the primary");
        let start = std::time::Instant::now();
        testbed::wait_for(CONVERGE, &format!("{kind} to answer {probe} with {rcode}"), || {
            let (_, r) = fleet::dig(&self.net.client, EDGE_V4, probe, "A", true)?;
            Ok(r.status.as_deref() == Some(rcode))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", testbed::tail(&self.resolver.log(), 30)));
        println!(
            "serial {serial}: enforced by dnsfilter after {took:?}; {kind} held it {held:?} later and applied it {:?} after that",
            start.elapsed()
        );
    }

    /// `answer_nxdomain` of the filter's counters.
    fn filter_nxdomain(&self) -> u64 {
        let stats = self.filter.filter().stats().expect("dnsfilter stats");
        stats["outcomes"]["answer_nxdomain"].as_u64().expect("answer_nxdomain")
    }

    /// Asks `name` over UDP, then over TCP, and checks that both get the answer `expect`
    /// says, from whom it says.
    #[track_caller]
    fn same_answers(&self, name: &str, rtype: &str, expect: Expect) {
        let kind = self.resolver.kind;
        let logged_before = self.resolver.queries_for(name).len();
        let nxdomain_before = self.filter_nxdomain();
        let (udp_line, udp) = fleet::dig(&self.net.client, EDGE_V4, name, rtype, false).expect("dig");
        let (tcp_line, tcp) = fleet::dig(&self.net.client, EDGE_V4, name, rtype, true).expect("dig +tcp");
        let context = format!("{udp_line}:\n{}\n{tcp_line}:\n{}", udp.raw, tcp.raw);
        assert_eq!(udp.transport.as_deref(), Some("UDP"), "{context}");
        assert_eq!(tcp.transport.as_deref(), Some("TCP"), "{context}");
        // The same rcode and the same addresses, whichever way the client asks.
        assert_eq!(udp.status, tcp.status, "{name}: UDP and TCP differ\n{context}");
        assert_eq!(udp.addresses(), tcp.addresses(), "{name}: UDP and TCP differ\n{context}");
        // The resolver answered over TCP: not the filter's SOA or EDE.
        assert!(!from_filter(&tcp), "{name}: the filter cannot answer over TCP\n{context}");
        // The resolver logged the TCP query, and the UDP one only if the filter let it through.
        let mut logged = Vec::new();
        testbed::wait_for(Duration::from_secs(5), &format!("{kind} to log {name}"), || {
            logged = self.resolver.queries_for(name).split_off(logged_before);
            Ok(logged.len() >= if expect == Expect::Blocked { 1 } else { 2 })
        })
        .expect("the resolver logs what it receives");
        let nxdomain = self.filter_nxdomain() - nxdomain_before;
        match expect {
            Expect::Blocked => {
                assert_eq!(udp.status.as_deref(), Some("NXDOMAIN"), "{context}");
                assert!(from_filter(&udp), "{name} over UDP: not the filter's answer\n{context}");
                assert_eq!(udp.ede.as_deref(), Some(BLOCKED), "{context}");
                assert_eq!(nxdomain, 1, "{name}: the filter answered the UDP query, and only that one");
                assert_eq!(logged.len(), 1, "{name}: {kind} should see the TCP query only: {logged:?}");
                assert_ne!(logged[0].tcp, Some(false), "{name}: {kind} saw the UDP query: {logged:?}");
            }
            Expect::Resolved => {
                let data = if rtype == "AAAA" { RESOLVER_V6 } else { RESOLVER_V4 };
                assert_eq!(udp.status.as_deref(), Some("NOERROR"), "{context}");
                assert_eq!(udp.addresses(), [data], "{name}: not the resolver's data\n{context}");
                assert!(!from_filter(&udp), "{context}");
                assert_eq!(nxdomain, 0, "{name}: the filter should let it through");
                assert_eq!(logged.len(), 2, "{name}: {kind} should see both queries: {logged:?}");
                if kind == ResolverKind::Bind {
                    assert_eq!(logged.iter().map(|q| q.tcp).collect::<Vec<_>>(), [Some(false), Some(true)]);
                }
            }
        }
        println!(
            "  {name:<26} {rtype:<4}  UDP {:<8} by {:<8}  TCP {:<8} by {kind}",
            udp.status.as_deref().unwrap_or("-"),
            if from_filter(&udp) { "dnsfilter" } else { "resolver" },
            tcp.status.as_deref().unwrap_or("-"),
        );
    }

    /// The daemon's metrics page.
    fn metrics(&self) -> String {
        let addr: SocketAddr = METRICS.parse().expect("address");
        Secondary::http_get(&self.net.edge, addr, "/metrics").expect("GET /metrics")
    }
}

/// Whether the filter gave this answer: its SOA, or an EDE (the resolvers here send none).
fn from_filter(r: &Reply) -> bool {
    r.soa().is_some_and(|s| s.data.starts_with(FILTER_MNAME)) || r.ede.is_some()
}

/// The metric line `NAME{zone="rpz.isp.example"}`'s value.
fn zone_metric(metrics: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}{{zone=\"{ZONE}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map(str::to_string)
}

/// The whole scenario with the resolver `kind`.
fn parity(tag: &str, kind: ResolverKind) {
    let mut bed = Bed::new(tag, kind);
    println!("{kind}: the first version of {ZONE}");
    bed.same_answers("allostreaming.com", "A", Expect::Blocked);
    bed.same_answers("www.allostreaming.com", "AAAA", Expect::Blocked);
    bed.same_answers("alloshare.com", "A", Expect::Blocked);
    bed.same_answers("status.allostreaming.com", "A", Expect::Resolved);
    bed.same_answers("allomovies.com", "A", Expect::Resolved);
    bed.same_answers("example.net", "AAAA", Expect::Resolved);

    // A change on the primary: allomovies.com joins, the hole closes.
    let serial = bed
        .knot
        .commit(ZONE, &["allomovies.com 3600 CNAME .", "*.allomovies.com 3600 CNAME ."], &[HOLE])
        .expect("knotc commit");
    bed.converge(serial, "allomovies.com", "NXDOMAIN");
    println!("{kind}: serial {serial}");
    bed.same_answers("allomovies.com", "A", Expect::Blocked);
    bed.same_answers("www.allomovies.com", "A", Expect::Blocked);
    bed.same_answers("status.allostreaming.com", "A", Expect::Blocked);
    bed.same_answers("allostreaming.com", "A", Expect::Blocked);
    bed.same_answers("example.net", "A", Expect::Resolved);
    let metrics = bed.metrics();
    assert_eq!(zone_metric(&metrics, "dnsfilter_zone_serial_enforced"), Some(serial.to_string()), "{metrics}");
    assert_eq!(zone_metric(&metrics, "dnsfilter_zone_serial_primary"), Some(serial.to_string()), "{metrics}");
    assert_eq!(zone_metric(&metrics, "dnsfilter_zone_stale").as_deref(), Some("0"), "{metrics}");
    assert_eq!(zone_metric(&metrics, "dnsfilter_zone_held").as_deref(), Some("0"), "{metrics}");

    // The primary goes away: both secondaries keep their copies; a resync fails and says why.
    bed.knot.stop();
    let out = bed.filter.filter().cli(&["zone", "resync", ZONE]);
    assert!(out.is_err(), "a resync without a primary must fail: {out:?}");
    let status = bed.filter.zone_status(ZONE).expect("zone status");
    assert_eq!(status["serial_enforced"], serial, "{status:#}");
    assert!(status["last_error"].is_string(), "the failed check is reported: {status:#}");
    assert_eq!(status["stale"], false, "stale only after stale_after (the SOA expire): {status:#}");
    println!("{kind}: the primary stopped");
    bed.same_answers("allomovies.com", "A", Expect::Blocked);
    bed.same_answers("alloshowtv.com", "A", Expect::Blocked);
    bed.same_answers("example.net", "A", Expect::Resolved);
    assert_eq!(bed.resolver.serial().expect("SOA query"), Some(serial), "{kind} keeps its copy until it expires");
}

#[test]
fn bind_resolver_with_tsig_gives_tcp_what_the_filter_gives_udp() {
    if !privileged("fleet_resolver") {
        return;
    }
    parity("fres-bind", ResolverKind::Bind);
}

#[test]
fn unbound_resolver_without_tsig_gives_tcp_what_the_filter_gives_udp() {
    if !privileged("fleet_resolver") {
        return;
    }
    parity("fres-unb", ResolverKind::Unbound);
}
