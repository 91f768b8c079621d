//! End to end: the real `dnsfilter run` daemon attached in native mode to the edge end of a veth
//! pair, in front of a real resolver (Unbound), with real clients (dig, kdig, dnsperf) in a
//! client namespace; the testbed crate builds it. Unbound answers every name itself and logs
//! every query, so a blocked query that reaches it cannot go unnoticed.
//!
//! Each test has its own testbed (namespaces, pins, folders), so they run in parallel; the two
//! load tests take turns, so that their loss figures do not depend on each other.

use std::{
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
    thread,
    time::Duration,
};

use filter_tests::privileged;
use testbed::{
    Client, EDGE_IF, EDGE_V4, EDGE_V6, Lab, Opts, RESOLVER_V4, RESOLVER_V6, Reply, Who,
    dig::FILTER_MNAME,
    dnsperf::{Dnsperf, Load, Summary},
};

const STOP_V4: &str = "192.0.2.80";
const STOP_V6: &str = "2001:db8::80";
const CENSORED: &str = "16 (Censored)";

/// The debug `dnsfilter`, built once per test process (a no-op when fresh).
fn dnsfilter_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(&cargo)
            .args(["build", "-p", "filter-user", "--bin", "dnsfilter"])
            .current_dir(&root)
            .status()
            .unwrap_or_else(|e| panic!("run {cargo}: {e}"));
        assert!(status.success(), "cargo build -p filter-user --bin dnsfilter failed: {status}");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d));
        target.join("debug").join("dnsfilter")
    })
}

/// One `[[order]]` of a test orders file; `extra` holds more `key = value` lines.
fn order(id: &str, action: &str, names: &[&str], extra: &str) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "[[order]]\nid = {id:?}\nauthority = \"Test court\"\nreference = \"RG {id}\"\ndecided = 2020-01-02\n\
         action = {action:?}\nnames = [{}]\n{extra}\n",
        names.join(", ")
    )
}

/// An orders file with the stop pages and `orders`.
fn orders_file(orders: &[String]) -> String {
    format!("[settings]\nstop_v4 = {STOP_V4:?}\nstop_v6 = {STOP_V6:?}\n\n{}", orders.concat())
}

/// A testbed of its own with the daemon running on `orders`.
fn lab(tag: &str, orders: &str) -> Lab {
    Lab::unique(tag, dnsfilter_binary(), orders, &[]).expect("start the testbed")
}

/// What a name should get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Nxdomain,
    Nodata,
    Refused,
    Truncate,
    Redirect,
    Drop,
    /// Unbound's answer: an allowed name, an allow exception, a monitored name.
    Resolver,
}

/// The names of the action test, typed in mixed case (0x20), and the counter each one moves.
const NAMES: &[(&str, Expect, &str)] = &[
    ("AlLoStReAmInG.CoM", Expect::Nxdomain, "answer_nxdomain"),
    ("www.AlLoShOwTv.CoM", Expect::Nodata, "answer_nodata"),
    ("AlLoShArE.cOm", Expect::Refused, "answer_refused"),
    ("AlLoMoViEs.CoM", Expect::Truncate, "answer_truncate"),
    ("AlLoFiLmS.eXaMpLe", Expect::Redirect, "answer_redirect"),
    ("AlLoDrOp.ExAmPlE", Expect::Drop, "drop"),
    ("StAtUs.AlLoStReAmInG.CoM", Expect::Resolver, "hit_allow"),
    ("AlLoMoNiToR.eXaMpLe", Expect::Resolver, "hit_monitor"),
    ("ExAmPlE.CoM", Expect::Resolver, "pass_no_match"),
];

/// One order per action, an allow exception and a monitored order.
fn every_action() -> String {
    orders_file(&[
        order("nxdomain", "nxdomain", &["allostreaming.com"], "allow = [\"status.allostreaming.com\"]"),
        order("nodata", "nodata", &["alloshowtv.com"], ""),
        order("refused", "refused", &["alloshare.com"], ""),
        order("truncate", "truncate", &["allomovies.com"], ""),
        order("redirect", "redirect", &["allofilms.example"], ""),
        order("drop", "drop", &["allodrop.example"], ""),
        order("monitor", "nxdomain", &["allomonitor.example"], "mode = \"monitor\""),
    ])
}

/// One query of the action test.
#[derive(Clone, Copy, Debug)]
struct Case {
    client: Client,
    server: &'static str,
    name: &'static str,
    expect: Expect,
    opts: Opts,
}

impl Case {
    /// A over IPv4, AAAA over IPv6.
    fn rtype(&self) -> &'static str {
        if self.server == EDGE_V4 { "A" } else { "AAAA" }
    }

    /// Every name × both families × {no EDNS, EDNS, EDNS with a cookie} × {dig, kdig}.
    fn all() -> Vec<Case> {
        let mut cases = Vec::new();
        for &(name, expect, _) in NAMES {
            for server in [EDGE_V4, EDGE_V6] {
                for (edns, cookie) in [(false, false), (true, false), (true, true)] {
                    for client in [Client::Dig, Client::Kdig] {
                        // Show TC=1 instead of retrying over TCP (which reaches Unbound); a
                        // dropped query is waited for one second.
                        let opts =
                            Opts { edns, cookie, ignore_tc: true, time: if expect == Expect::Drop { 1 } else { 2 } };
                        cases.push(Case { client, server, name, expect, opts });
                    }
                }
            }
        }
        cases
    }

    /// What is wrong with `r` as the answer to this query, if anything.
    fn check(&self, r: &Reply) -> Result<(), String> {
        if self.expect == Expect::Drop {
            return match &r.status {
                None => Ok(()),
                Some(s) => Err(format!("a dropped query got an answer ({s})")),
            };
        }
        let warnings = r.warnings();
        if !warnings.is_empty() {
            return Err(format!("the client warned: {warnings:?}"));
        }
        // 0x20: the answer repeats the question as sent. kdig lowercases names before sending
        // them, so only dig's question keeps the mixed case.
        let sent = format!("{}.", self.name);
        let echoed = r.question.as_deref().unwrap_or("");
        let same = match self.client {
            Client::Dig => echoed == sent,
            Client::Kdig => echoed.eq_ignore_ascii_case(&sent),
        };
        if !same {
            return Err(format!("question {echoed:?} does not repeat {sent:?}"));
        }
        if self.expect == Expect::Resolver {
            let want = if self.rtype() == "A" { RESOLVER_V4 } else { RESOLVER_V6 };
            if r.who(&[STOP_V4, STOP_V6]) != Who::Resolver
                || r.status.as_deref() != Some("NOERROR")
                || r.addresses() != [want]
            {
                return Err(format!("expected Unbound's {want}"));
            }
            return Ok(());
        }
        let want_ede = self.opts.edns.then_some(CENSORED);
        if r.edns != self.opts.edns || r.ede.as_deref() != want_ede {
            return Err(format!(
                "EDNS {} with EDE {:?}; expected EDNS {} with EDE {want_ede:?}",
                r.edns, r.ede, self.opts.edns
            ));
        }
        let filter_soa = r.soa().is_some_and(|s| s.data.split(' ').next() == Some(FILTER_MNAME));
        let stop = if self.rtype() == "A" { STOP_V4 } else { STOP_V6 };
        let (status, ok) = match self.expect {
            Expect::Nxdomain => ("NXDOMAIN", r.answer.is_empty() && filter_soa),
            Expect::Nodata => ("NOERROR", r.answer.is_empty() && filter_soa),
            Expect::Refused => ("REFUSED", r.answer.is_empty() && r.authority.is_empty()),
            Expect::Truncate => ("NOERROR", r.flag("tc") && r.answer.is_empty()),
            Expect::Redirect => (
                "NOERROR",
                r.addresses() == [stop] && r.answer.iter().all(|rr| echoed == rr.name && rr.ttl.parse::<u32>().is_ok()),
            ),
            Expect::Drop | Expect::Resolver => unreachable!("handled above"),
        };
        if r.status.as_deref() != Some(status) || !ok {
            return Err(format!("not the filter's {:?} answer", self.expect));
        }
        Ok(())
    }
}

/// Runs `cases` on `workers` threads; what each client printed, in order.
fn ask_all(lab: &Lab, cases: &[Case], workers: usize) -> Vec<Reply> {
    let chunk = cases.len().div_ceil(workers);
    thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(chunk.max(1))
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|c| {
                            c.client
                                .query(&lab.net.client, c.server, c.name, c.rtype(), &c.opts)
                                .expect("run the client")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("query thread")).collect()
    })
}

#[test]
fn every_action_over_both_families_with_and_without_edns_from_dig_and_kdig() {
    if !privileged("e2e actions") {
        return;
    }
    let lab = lab("e2e-act", &every_action());
    let cases = Case::all();
    let replies = ask_all(&lab, &cases, 12);
    let failures: Vec<String> = cases
        .iter()
        .zip(&replies)
        .filter_map(|(c, r)| {
            c.check(r).err().map(|e| {
                format!("{} @{} {} {} {:?}: {e}\n{}", c.client.name(), c.server, c.name, c.rtype(), c.opts, r.raw)
            })
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} answers are wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));

    // The resolver received the allowed queries and nothing else.
    let per_name = cases.len() / NAMES.len();
    let allowed: Vec<&str> = NAMES.iter().filter(|n| n.1 == Expect::Resolver).map(|n| n.0).collect();
    assert_eq!(
        lab.unbound.total_queries().expect("unbound stats"),
        (allowed.len() * per_name) as u64,
        "Unbound's query count"
    );
    for &(name, expect, _) in NAMES {
        let want = if expect == Expect::Resolver { per_name } else { 0 };
        assert_eq!(lab.unbound.count(name).expect("unbound log"), want, "{name} in Unbound's query log");
    }

    // Each query moved the counter of its outcome once.
    let stats = lab.filter.stats().expect("dnsfilter stats");
    for &(name, _, counter) in NAMES {
        assert_eq!(stats["outcomes"][counter].as_u64(), Some(per_name as u64), "counter {counter} ({name}): {stats:#}");
    }
    assert_eq!(stats["outcomes"]["answer_failed"].as_u64(), Some(0), "answer_failed: {stats:#}");
}

/// dnsperf rate per stream: modest, so that veth and CPU limits cause no loss of their own.
const QPS: u32 = 1000;
/// Length of each dnsperf run.
const SECONDS: u32 = 4;

/// The load tests run one at a time.
static LOAD: Mutex<()> = Mutex::new(());

/// Names blocked in every version of the list of the load tests.
const ALWAYS_BLOCKED: &[&str] = &["allostreaming.com", "alloshowtv.com", "alloshare.com", "allomovies.com"];
/// Queries of the blocked stream: names at or under an always-blocked name, in any case, and
/// the two names that are blocked in every other version.
const BLOCKED_QUERIES: &str = "allostreaming.com A\nwww.AlLoShOwTv.com AAAA\nALLOSHARE.COM A\nm.allomovies.com A\nflip-a.example A\nflip-b.example A\n";
/// Queries of the allowed stream (no version of the list blocks them).
const ALLOWED_QUERIES: &str = "example.com A\nwww.example.org AAAA\nnotallostreaming.com A\nallowed.example A\n";

/// The orders of the load tests: the always-blocked names, and `flip-a.example` in even
/// versions, `flip-b.example` in odd ones.
fn load_version(version: u32) -> String {
    let flip = if version.is_multiple_of(2) { "flip-a.example" } else { "flip-b.example" };
    orders_file(&[order("always", "nxdomain", ALWAYS_BLOCKED, ""), order("flip", "nxdomain", &[flip], "")])
}

/// The allowed stream (to the IPv4 server) and the blocked stream (to the IPv6 server), each
/// at [`QPS`] from the client.
struct Streams {
    allowed: Dnsperf,
    blocked: Dnsperf,
    seconds: u32,
}

impl Streams {
    fn start(lab: &Lab, seconds: u32) -> Streams {
        let dnsperf = |stream: &str, data: &str, server: &str| {
            let file = lab.work.write(&format!("{stream}.queries"), data).expect("write the queries");
            let load = Load { server, data: &file, seconds, qps: QPS, clients: 4 };
            Dnsperf::start(&lab.net.client, &load, &lab.work.file(&format!("{stream}.dnsperf.log")))
                .expect("start dnsperf")
        };
        Streams {
            allowed: dnsperf("allowed", ALLOWED_QUERIES, EDGE_V4),
            blocked: dnsperf("blocked", BLOCKED_QUERIES, EDGE_V6),
            seconds,
        }
    }

    /// Waits for both to end: (allowed, blocked).
    fn finish(self) -> (Summary, Summary) {
        let wait = Duration::from_secs(u64::from(self.seconds) + 10);
        (self.allowed.finish(wait).expect("allowed stream"), self.blocked.finish(wait).expect("blocked stream"))
    }
}

/// Asserts that no always-blocked name reached Unbound.
#[track_caller]
fn assert_no_leak(lab: &Lab) {
    for name in ALWAYS_BLOCKED {
        let leaked = lab.unbound.queries_under(name).expect("unbound log");
        assert!(
            leaked.is_empty(),
            "{} queries for {name} reached Unbound: {:?}",
            leaked.len(),
            &leaked[..leaked.len().min(5)]
        );
    }
}

/// The allowed losses one run may have over another: a few queries, or 0.2 %.
fn tolerance(s: &Summary) -> u64 {
    5 + s.sent / 500
}

#[test]
fn reloads_under_load_leak_no_blocked_name_and_lose_no_more_than_without() {
    if !privileged("e2e reload under load") {
        return;
    }
    let _turn = LOAD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab("e2e-reload", &load_version(0));

    let (quiet, quiet_blocked) = Streams::start(&lab, SECONDS).finish();
    let flip_a_quiet = lab.unbound.count("flip-a.example").expect("unbound log");
    let before = lab.filter.generation().expect("status").expect("a generation");
    let streams = Streams::start(&lab, SECONDS);
    for version in 1..=SECONDS {
        testbed::sleep(Duration::from_secs(1)).expect("sleep");
        lab.rewrite_orders(&load_version(version)).expect("rewrite the orders");
    }
    let (busy, busy_blocked) = streams.finish();
    testbed::sleep(Duration::from_millis(800)).expect("sleep");
    let after = lab.filter.generation().expect("status").expect("a generation");
    eprintln!("without reloads: allowed {quiet:?}, blocked {quiet_blocked:?}");
    eprintln!("with {} reloads: allowed {busy:?}, blocked {busy_blocked:?}", after - before);

    assert!(
        after >= before + u64::from(SECONDS) - 1,
        "the list changed {SECONDS} times but the generation went {before} -> {after}"
    );
    assert_no_leak(&lab);
    // The versions really took turns in the kernel: flip-a.example, blocked in version 0,
    // reached Unbound only once an odd version was in force.
    assert_eq!(flip_a_quiet, 0, "flip-a.example leaked while version 0 was in force");
    assert!(
        lab.unbound.count("flip-a.example").expect("unbound log") > 0,
        "no odd version of the list came into force"
    );
    for run in [quiet, busy] {
        assert!(run.sent >= u64::from(QPS * SECONDS) * 9 / 10, "dnsperf sent too little: {run:?}");
    }
    assert!(
        busy.lost <= quiet.lost + tolerance(&quiet),
        "reloads lost allowed queries: {} with reloads, {} without",
        busy.lost,
        quiet.lost
    );
    assert!(busy_blocked.lost <= quiet_blocked.lost + tolerance(&quiet_blocked), "reloads lost blocked queries");
}

#[test]
fn blocking_holds_while_the_daemon_is_killed_and_restarted_under_load() {
    if !privileged("e2e kill under load") {
        return;
    }
    let _turn = LOAD.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = lab("e2e-kill", &load_version(0));
    let seconds = SECONDS + 2;
    let streams = Streams::start(&lab, seconds);
    testbed::sleep(Duration::from_millis(1500)).expect("sleep");
    let killed = lab.filter.kill().expect("the daemon was running");
    assert_eq!(killed.signal(), Some(libc::SIGKILL), "{killed}");
    testbed::sleep(Duration::from_millis(1500)).expect("sleep");
    let down = lab.filter.status().expect("status");
    let orders = lab.orders();
    lab.filter.run(&lab.net.edge, EDGE_IF, &orders, &[]).expect("restart the daemon");
    let (allowed, blocked) = streams.finish();
    eprintln!("allowed {allowed:?}, blocked {blocked:?}");

    // Without its daemon the filter stayed attached, and the blocked names never leaked.
    assert!(down["daemon_pid"].is_null(), "a daemon after SIGKILL: {down:#}");
    assert_eq!(down["interfaces"][0]["attached"], true, "the filter left with its daemon: {down:#}");
    assert_no_leak(&lab);
    for run in [&allowed, &blocked] {
        assert!(run.sent >= u64::from(QPS * seconds) * 9 / 10, "dnsperf sent too little: {run:?}");
        assert!(run.lost <= tolerance(run), "queries lost across the kill and restart: {run:?}");
    }
}

#[test]
fn the_filter_outlives_its_daemon_and_detach_restores_the_resolver() {
    if !privileged("e2e detach") {
        return;
    }
    let mut lab = lab("e2e-detach", &orders_file(&[order("court", "nxdomain", &["allostreaming.com"], "")]));
    let ask = |lab: &Lab, server: &str, rtype: &str| {
        Client::Dig.query(&lab.net.client, server, "www.allostreaming.com", rtype, &Opts::default()).expect("dig")
    };
    let filtered = |r: &Reply| r.status.as_deref() == Some("NXDOMAIN") && matches!(r.who(&[]), Who::Filter(_));
    let r = ask(&lab, EDGE_V4, "A");
    assert!(filtered(&r), "expected the filter's NXDOMAIN:\n{}", r.raw);

    // SIGTERM: a clean exit that leaves the filter attached and blocking.
    let exit = lab.filter.stop().expect("stop the daemon");
    assert!(exit.success(), "dnsfilter exited with {exit} after SIGTERM:\n{}", lab.filter.log());
    let r = ask(&lab, EDGE_V6, "AAAA");
    assert!(filtered(&r), "the filter stopped blocking with its daemon:\n{}", r.raw);

    // detach: the resolver answers again.
    let out = lab.filter.cli(&["detach", "--iface", EDGE_IF]).expect("dnsfilter detach");
    assert!(out.contains(&format!("detached from {EDGE_IF}")), "{out}");
    let link = lab.net.edge.exec(&["ip", "link", "show", EDGE_IF]).expect("ip link show");
    assert!(!link.contains("xdp"), "an XDP program is still attached:\n{link}");
    for (server, rtype, want) in [(EDGE_V4, "A", RESOLVER_V4), (EDGE_V6, "AAAA", RESOLVER_V6)] {
        let r = ask(&lab, server, rtype);
        assert!(r.who(&[]) == Who::Resolver && r.addresses() == [want], "expected Unbound's {want}:\n{}", r.raw);
    }
    assert_eq!(lab.unbound.count("www.allostreaming.com").expect("unbound log"), 2, "queries Unbound received");
    assert!(
        !lab.filter.pin_dir().exists(),
        "detach of the last interface left pins in {}",
        lab.filter.pin_dir().display()
    );
}
