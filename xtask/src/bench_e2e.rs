//! Issue 5 part 3, end to end on the testbed: dnsperf and kxdpgun in the client namespace
//! against the edge namespace, in four cases:
//!
//! - (a) blocked names answered by the filter (XDP_TX);
//! - (b) the same names blocked by Unbound (`local-zone: "NAME." always_nxdomain`), no filter;
//! - (c) allowed names answered by Unbound, with the filter attached;
//! - (d) allowed names answered by Unbound, without the filter.
//!
//! Each case runs under three loads: dnsperf at its maximum rate, dnsperf at a fixed rate well
//! under saturation (with `-v`, for latency percentiles), and kxdpgun (AF_XDP, a stronger
//! client) at a high rate. The cases alternate within each round, and every ratio is taken
//! between measurements of the same round; the report gives medians over rounds.
//!
//! Where work runs: NAPI is threaded on both veth ends (so receive work runs in kernel threads
//! `napi/veth-*`, not on the sender's CPU), the edge's NAPI thread, Unbound and the daemon are
//! pinned to CPU 1, the client's NAPI thread and the load generator to CPU 0. Edge-side CPU is
//! the run time (`/proc/PID/task/*/schedstat`, ns) of the edge NAPI thread, Unbound and the
//! daemon over the run.
//!
//! The result is a JSON object that `dnsfilter-bench --e2e FILE` merges into the report:
//! `summary` (Markdown), `table` (`columns`, `rows`), `rows` (the targets: `metric`, `value`,
//! `target`, `met`), and the raw `samples`.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use testbed::{CLIENT_IF, DnsFilter, EDGE_IF, EDGE_V4, Netns, Testbed, Unbound, WorkDir, cpu, dnsperf, kxdpgun};

/// The testbed's fixed name, so that a run removes what a killed run left.
const BASE: &str = "dnsf-bench-e2e";
/// CPU of the load generator and the client's NAPI thread.
const CLIENT_CPU: usize = 0;
/// CPU of the edge: its NAPI thread, Unbound and the daemon.
const EDGE_CPU: usize = 1;
/// The blocked domains (the Allostreaming judgment of `cargo xtask demo`).
const BLOCKED: &[&str] = &["allostreaming.com", "alloshowtv.com", "alloshare.com", "allomovies.com"];
/// Queries for names at or below [`BLOCKED`].
const BLOCKED_QUERIES: &str = "allostreaming.com. A\nwww.allostreaming.com. A\nalloshowtv.com. A\n\
                               www.alloshare.com. A\nm.allomovies.com. A\nallomovies.com. A\n";
/// Queries for names that nothing blocks; Unbound answers them from local data.
const ALLOWED_QUERIES: &str = "example.com. A\nwww.example.org. A\nnotallostreaming.com. A\n\
                               allowed.example. A\nwww.wikipedia.org. A\nmail.example.net. A\n";

/// How long and how hard.
#[derive(Clone, Debug)]
pub struct Params {
    /// Length of each load run.
    pub seconds: u32,
    /// Rounds; every case and load runs once per round.
    pub rounds: usize,
    /// dnsperf's fixed rate, well under Unbound's saturation.
    pub fixed_qps: u32,
    /// kxdpgun's rate (it sends as fast as it can up to this).
    pub kx_qps: u32,
    /// Whether targets are judged (not in quick mode).
    pub judge: bool,
}

impl Params {
    pub fn full() -> Params {
        Params { seconds: 5, rounds: 3, fixed_qps: 10_000, kx_qps: 200_000, judge: true }
    }

    pub fn quick() -> Params {
        Params { seconds: 1, rounds: 1, fixed_qps: 2_000, kx_qps: 50_000, judge: false }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    A,
    B,
    C,
    D,
}

impl Case {
    const ALL: [Case; 4] = [Case::A, Case::B, Case::C, Case::D];

    fn filter_attached(self) -> bool {
        matches!(self, Case::A | Case::C)
    }

    fn blocked(self) -> bool {
        matches!(self, Case::A | Case::B)
    }

    fn label(self) -> &'static str {
        match self {
            Case::A => "(a) blocked, filter",
            Case::B => "(b) blocked, Unbound local-zone",
            Case::C => "(c) allowed, filter attached",
            Case::D => "(d) allowed, no filter",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Load {
    /// dnsperf as fast as it goes.
    Max,
    /// dnsperf at `Params::fixed_qps`, with every latency.
    Fixed,
    /// kxdpgun at `Params::kx_qps`.
    Kx,
}

impl Load {
    const ALL: [Load; 3] = [Load::Max, Load::Fixed, Load::Kx];

    fn label(self, p: &Params) -> String {
        match self {
            Load::Max => "dnsperf, max".into(),
            Load::Fixed => format!("dnsperf, {} qps", p.fixed_qps),
            Load::Kx => format!("kxdpgun, -Q {}", p.kx_qps),
        }
    }
}

/// One run of one case under one load.
#[derive(Clone, Debug)]
struct Sample {
    case: Case,
    load: Load,
    round: usize,
    sent: u64,
    answers: u64,
    seconds: f64,
    /// Latencies in ms (dnsperf only; percentiles with the fixed load).
    avg_ms: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// CPU seconds of the edge's NAPI thread, Unbound and the daemon.
    napi_s: f64,
    unbound_s: f64,
    daemon_s: f64,
    /// CPU time of the client's tasks (generator, NAPI thread) and of the edge's (NAPI thread,
    /// Unbound, daemon), as a fraction of the run.
    client_busy: f64,
    edge_busy: f64,
    /// Busy fraction of the client's and the edge's CPU from /proc/stat: everything that ran
    /// there, other processes of the machine included.
    client_cpu_busy: f64,
    edge_cpu_busy: f64,
    /// Queries Unbound counted.
    unbound_queries: u64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.answers as f64 / self.seconds
    }

    fn edge_s(&self) -> f64 {
        self.napi_s + self.unbound_s + self.daemon_s
    }

    /// Edge-side CPU per answer, µs.
    fn edge_us(&self) -> f64 {
        self.edge_s() * 1e6 / self.answers.max(1) as f64
    }

    /// Edge NAPI CPU per query sent, µs.
    fn napi_us_per_query(&self) -> f64 {
        self.napi_s * 1e6 / self.sent.max(1) as f64
    }

    fn lost(&self) -> f64 {
        1.0 - self.answers as f64 / self.sent.max(1) as f64
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "case": format!("{:?}", self.case).to_lowercase(), "load": format!("{:?}", self.load).to_lowercase(),
            "round": self.round, "sent": self.sent, "answers": self.answers, "seconds": self.seconds,
            "avg_ms": self.avg_ms, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
            "edge_napi_s": self.napi_s, "unbound_s": self.unbound_s, "daemon_s": self.daemon_s,
            "client_tasks_busy": self.client_busy, "edge_tasks_busy": self.edge_busy,
            "client_cpu_busy": self.client_cpu_busy, "edge_cpu_busy": self.edge_cpu_busy,
            "unbound_queries": self.unbound_queries,
        })
    }
}

/// The testbed, torn down in field order when dropped (also on error and Ctrl-C).
struct Bed {
    filter: DnsFilter,
    unbound: Unbound,
    net: Testbed,
    work: WorkDir,
    list: PathBuf,
    attached: bool,
}

impl Bed {
    fn start(bin: &Path) -> Result<Bed> {
        remove_leftovers(bin);
        let work = WorkDir::create(std::env::temp_dir().join(BASE)).map_err(|e| anyhow!(e))?;
        let net = Testbed::create(BASE).map_err(|e| anyhow!(e))?;
        // NAPI on the edge in every case, also without an XDP program: else, without the
        // filter, receive work would run in the sender's softirq on the client's CPU. GRO on
        // gives the edge NAPI, but veth uses it for a UDP frame of a socket only when the
        // sender has no TSO (veth_skb_is_eligible_for_gro, Linux 5.13+): TSO off on the client.
        net.edge.exec(&["ethtool", "-K", EDGE_IF, "gro", "on"]).map_err(|e| anyhow!(e))?;
        net.client.exec(&["ethtool", "-K", CLIENT_IF, "tso", "off"]).map_err(|e| anyhow!(e))?;
        let zones: String = BLOCKED.iter().map(|d| format!("  local-zone: \"{d}.\" always_nxdomain\n")).collect();
        let unbound = Unbound::start_with(&net.edge, work.path(), false, &zones).map_err(|e| anyhow!(e))?;
        cpu::pin(unbound.pid(), EDGE_CPU).map_err(|e| anyhow!(e))?;
        let names: Vec<String> = BLOCKED.iter().map(|n| format!("{n:?}")).collect();
        let orders = format!(
            "[[order]]\nid = \"bench\"\nauthority = \"Bench court\"\nreference = \"RG bench\"\n\
             decided = 2020-01-02\naction = \"nxdomain\"\nnames = [{}]\n",
            names.join(", ")
        );
        let list = work.write("orders.toml", &orders).map_err(|e| anyhow!(e))?;
        let pins = PathBuf::from(format!("/sys/fs/bpf/{BASE}"));
        let filter = DnsFilter::new(bin, &pins, &work.file("dnsfilter")).map_err(|e| anyhow!(e))?;
        let mut bed = Bed { filter, unbound, net, work, list, attached: false };
        bed.set_filter(true)?;
        Ok(bed)
    }

    /// Attaches the filter (starts the daemon) or detaches it (stops the daemon, `detach --all`).
    fn set_filter(&mut self, on: bool) -> Result<()> {
        if on == self.attached {
            return Ok(());
        }
        if on {
            self.filter.run(&self.net.edge, EDGE_IF, &self.list, &[]).map_err(|e| anyhow!(e))?;
            if let Some(c) = self.filter.child() {
                cpu::pin(c.pid(), EDGE_CPU).map_err(|e| anyhow!(e))?;
            }
        } else {
            self.filter.stop().map_err(|e| anyhow!(e))?;
            self.filter.cli(&["detach", "--all"]).map_err(|e| anyhow!(e))?;
        }
        self.attached = on;
        Ok(())
    }

    fn daemon_pid(&mut self) -> Option<i32> {
        self.filter.child().map(|c| c.pid())
    }

    fn measure(&mut self, p: &Params, case: Case, load: Load, round: usize) -> Result<Sample> {
        testbed::check_interrupt().map_err(|e| anyhow!(e))?;
        self.set_filter(case.filter_attached())?;
        let e = |e: String| anyhow!(e);
        // kxdpgun brings its own XDP program to the client's end.
        self.net.set_client_xdp(load != Load::Kx).map_err(e)?;
        let edge_napi = cpu::threaded_napi(&self.net.edge, EDGE_IF).map_err(e)?;
        let client_napi = cpu::threaded_napi(&self.net.client, CLIENT_IF).map_err(e)?;
        for &t in &edge_napi {
            cpu::pin(t, EDGE_CPU).map_err(e)?;
        }
        for &t in &client_napi {
            cpu::pin(t, CLIENT_CPU).map_err(e)?;
        }
        let data = self
            .work
            .write(if case.blocked() { "blocked.queries" } else { "allowed.queries" }, queries(case))
            .map_err(e)?;
        let daemon = self.daemon_pid();
        let napi_s = || -> Result<f64> { edge_napi.iter().map(|&t| cpu::run_seconds(t).map_err(e)).sum() };
        let unbound_pid = self.unbound.pid();
        let daemon_s = || -> Result<f64> { daemon.map_or(Ok(0.0), |d| cpu::run_seconds(d).map_err(e)) };
        let client_napi_s = || -> Result<f64> { client_napi.iter().map(|&t| cpu::run_seconds(t).map_err(e)).sum() };
        // The client's own tasks (the generator, reaped within the run, and its NAPI thread),
        // and every task on the two CPUs (other load on the machine included).
        let busy = || -> Result<(f64, f64, f64)> {
            let t = cpu::cpu_times().map_err(e)?;
            let get = |c: usize| t.get(c).map(|x| x.0).ok_or_else(|| anyhow!("no CPU {c} in /proc/stat"));
            Ok((cpu::children_seconds() + client_napi_s()?, get(CLIENT_CPU)?, get(EDGE_CPU)?))
        };
        let queries0 = self.unbound.total_queries().map_err(e)?;
        let (napi0, unbound0, daemon0, busy0) =
            (napi_s()?, cpu::run_seconds(unbound_pid).map_err(e)?, daemon_s()?, busy()?);

        let out = self.work.file("load.log");
        let (sent, answers, seconds, latency) = match load {
            Load::Kx => {
                let l =
                    kxdpgun::Load { server: EDGE_V4, data: &data, seconds: p.seconds, qps: p.kx_qps, cpu: CLIENT_CPU };
                let t = kxdpgun::run(&self.net.client, &l, &out).map_err(e)?;
                (t.sent, t.replies, f64::from(p.seconds), None)
            }
            Load::Max | Load::Fixed => {
                let s = run_dnsperf(&self.net.client, &data, p, load, &out)?;
                let ms = |x: Option<f64>| x.map(|v| v * 1e3);
                let lat = (Some(s.avg_latency * 1e3), ms(s.quantile(0.5)), ms(s.quantile(0.99)));
                (s.summary.sent, s.summary.completed, s.run_seconds, Some(lat))
            }
        };

        let (napi1, unbound1, daemon1, busy1) =
            (napi_s()?, cpu::run_seconds(unbound_pid).map_err(e)?, daemon_s()?, busy()?);
        let unbound_queries = self.unbound.total_queries().map_err(e)? - queries0;
        let frac = |b: f64| (b / seconds).clamp(0.0, 1.0);
        let (avg_ms, p50_ms, p99_ms) = latency.unwrap_or((None, None, None));
        let s = Sample {
            case,
            load,
            round,
            sent,
            answers,
            seconds,
            avg_ms,
            p50_ms: if load == Load::Fixed { p50_ms } else { None },
            p99_ms: if load == Load::Fixed { p99_ms } else { None },
            napi_s: napi1 - napi0,
            unbound_s: unbound1 - unbound0,
            daemon_s: daemon1 - daemon0,
            client_busy: frac(busy1.0 - busy0.0),
            edge_busy: frac(napi1 - napi0 + unbound1 - unbound0 + daemon1 - daemon0),
            client_cpu_busy: frac(busy1.1 - busy0.1),
            edge_cpu_busy: frac(busy1.2 - busy0.2),
            unbound_queries,
        };
        // Who answered: the filter alone in (a), Unbound in the other cases.
        if case == Case::A && unbound_queries > 0 {
            bail!("{}: {unbound_queries} blocked queries reached Unbound", case.label());
        }
        if case != Case::A && unbound_queries < answers {
            bail!("{}: {answers} answers but Unbound counted only {unbound_queries} queries", case.label());
        }
        if answers == 0 {
            bail!("{} under {}: no answers", case.label(), load.label(p));
        }
        println!(
            "  round {round} {:<34} {:<20} {:>9.0} answers/s  lost {:>5.1}%  edge {:>6.2} us/answer  \
             (NAPI {:.2} s, Unbound {:.2} s)  tasks busy client {:>3.0}% edge {:>3.0}%  \
             (CPUs {:>3.0}% {:>3.0}%)",
            case.label(),
            load.label(p),
            s.rate(),
            s.lost() * 100.0,
            s.edge_us(),
            s.napi_s,
            s.unbound_s,
            s.client_busy * 100.0,
            s.edge_busy * 100.0,
            s.client_cpu_busy * 100.0,
            s.edge_cpu_busy * 100.0
        );
        Ok(s)
    }
}

fn queries(case: Case) -> &'static str {
    if case.blocked() { BLOCKED_QUERIES } else { ALLOWED_QUERIES }
}

/// dnsperf pinned to the client's CPU: at most `-Q fixed_qps` (with `-v`) or as fast as it can.
fn run_dnsperf(ns: &Netns, data: &Path, p: &Params, load: Load, out: &Path) -> Result<dnsperf::Stats> {
    let mut c = ns.command("taskset");
    c.args(["-c", &CLIENT_CPU.to_string(), "dnsperf", "-s", EDGE_V4, "-l", &p.seconds.to_string()])
        .args(["-c", "4", "-q", "500", "-t", "1", "-d"])
        .arg(data);
    if load == Load::Fixed {
        c.args(["-Q", &p.fixed_qps.to_string(), "-v"]);
    }
    let _ = std::fs::remove_file(out);
    let mut child = Netns::spawn(&mut c, out).map_err(|e| anyhow!(e))?;
    let mut status = None;
    testbed::wait_for(Duration::from_secs(u64::from(p.seconds) + 20), "dnsperf to finish", || {
        status = child.exited();
        Ok(status.is_some())
    })
    .map_err(|e| anyhow!(e))?;
    let text = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    if !status.is_some_and(|s| s.success()) {
        bail!("dnsperf failed ({status:?}):\n{}", testbed::tail(&text, 20));
    }
    dnsperf::Stats::parse(&text).map_err(|e| anyhow!(e))
}

/// Removes what a killed run left: the namespaces (with their processes), pins, scratch folder.
fn remove_leftovers(bin: &Path) {
    Testbed::remove(BASE, Path::new("/nonexistent"));
    drop(DnsFilter::new(
        bin,
        Path::new(&format!("/sys/fs/bpf/{BASE}")),
        &std::env::temp_dir().join(BASE).join("dnsfilter"),
    ));
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(BASE));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Runs every case under every load, `rounds` times, on a testbed of its own (as root, with
/// `bin` the release `dnsfilter`), writes the JSON to `out` and returns it.
pub fn run(p: &Params, bin: &Path, out: &Path) -> Result<serde_json::Value> {
    let started = Instant::now();
    let kx = which::which("kxdpgun").is_ok();
    if !kx {
        eprintln!("bench e2e: kxdpgun not found (package knot-dnsutils): its runs are skipped");
    }
    testbed::catch_interrupts();
    let mut samples = Vec::new();
    {
        let mut bed = Bed::start(bin).context("starting the testbed (everything it started is removed)")?;
        println!("bench e2e: testbed {BASE} up; {} s per run, {} rounds", p.seconds, p.rounds);
        for round in 1..=p.rounds {
            // Alternate which half (filter attached or not) comes first.
            let mut cases = Case::ALL.to_vec();
            cases.sort_by_key(|c| c.filter_attached() == (round % 2 == 0));
            for case in cases {
                for load in Load::ALL.into_iter().filter(|&l| l != Load::Kx || kx) {
                    let sample = bed.measure(p, case, load, round);
                    samples.push(sample.context("bench e2e stopped (everything it started is removed)")?);
                }
            }
        }
    }
    let left = testbed::Lab::leftovers(BASE);
    if !left.is_empty() {
        bail!("bench e2e: teardown left {}", left.join(", "));
    }
    let value = report(p, &samples, started.elapsed().as_secs_f64());
    std::fs::write(out, serde_json::to_string_pretty(&value)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("bench e2e: wrote {} in {:.0} s", out.display(), started.elapsed().as_secs_f64());
    Ok(value)
}

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() { format!("{x:.digits$}") } else { "–".into() }
}

/// The JSON for the report: summary, table of medians, targets, samples.
fn report(p: &Params, samples: &[Sample], seconds: f64) -> serde_json::Value {
    let of = |case: Case, load: Load| -> Vec<&Sample> {
        samples.iter().filter(|s| s.case == case && s.load == load).collect()
    };
    let med =
        |case: Case, load: Load, g: &dyn Fn(&Sample) -> f64| median(of(case, load).iter().map(|s| g(s)).collect());
    // Median over rounds of the ratio x/y of two cases measured in the same round.
    let ratio = |x: Case, y: Case, load: Load, g: &dyn Fn(&Sample) -> f64| -> f64 {
        let ys: BTreeMap<usize, f64> = of(y, load).iter().map(|s| (s.round, g(s))).collect();
        median(of(x, load).iter().filter_map(|s| ys.get(&s.round).map(|v| g(s) / v)).collect())
    };

    let columns = [
        "case",
        "client",
        "answers/s",
        "lost",
        "latency avg / p50 / p99 (ms)",
        "edge NAPI s",
        "Unbound s",
        "edge CPU µs/answer",
        "busy: client tasks / edge tasks (whole CPUs)",
        "limited by",
    ];
    let mut rows = Vec::new();
    for case in Case::ALL {
        for load in Load::ALL {
            if of(case, load).is_empty() {
                continue;
            }
            let m = |g: &dyn Fn(&Sample) -> f64| med(case, load, g);
            let opt = |g: fn(&Sample) -> Option<f64>| m(&|s| g(s).unwrap_or(f64::NAN));
            let (client, edge) = (m(&|s| s.client_busy), m(&|s| s.edge_busy));
            let (client_cpu, edge_cpu) = (m(&|s| s.client_cpu_busy), m(&|s| s.edge_cpu_busy));
            let limit = if edge >= 0.9 {
                "edge CPU"
            } else if client >= 0.9 {
                "client CPU"
            } else if load == Load::Fixed {
                "offered load"
            } else if client_cpu >= 0.9 || edge_cpu >= 0.9 {
                "CPU time: a CPU was full with other processes too"
            } else {
                "neither CPU full (client window, wake-ups)"
            };
            let latency = match load {
                Load::Kx => "–".to_string(),
                Load::Max => f(opt(|s| s.avg_ms), 3),
                Load::Fixed => {
                    format!("{} / {} / {}", f(opt(|s| s.avg_ms), 3), f(opt(|s| s.p50_ms), 3), f(opt(|s| s.p99_ms), 3))
                }
            };
            rows.push(vec![
                case.label().to_string(),
                load.label(p),
                f(m(&Sample::rate), 0),
                format!("{}%", f(m(&|s| s.lost() * 100.0), 2)),
                latency,
                f(m(&|s| s.napi_s), 2),
                f(m(&|s| s.unbound_s), 2),
                f(m(&Sample::edge_us), 2),
                format!(
                    "{}% / {}% ({}% / {}%)",
                    f(client * 100.0, 0),
                    f(edge * 100.0, 0),
                    f(client_cpu * 100.0, 0),
                    f(edge_cpu * 100.0, 0)
                ),
                limit.to_string(),
            ]);
        }
    }

    let judge = |met: bool| if p.judge { serde_json::Value::Bool(met) } else { serde_json::Value::Null };
    let mut targets = Vec::new();
    let mut blocking_met = false;
    for load in [Load::Max, Load::Kx, Load::Fixed] {
        if of(Case::A, load).is_empty() {
            continue;
        }
        if load != Load::Fixed {
            let r = ratio(Case::A, Case::B, load, &Sample::rate);
            blocking_met |= r >= 10.0;
            targets.push(serde_json::json!({
                "metric": format!("(a)/(b) answers per second, {}", load.label(p)),
                "value": format!("{}× ({} vs {} /s)", f(r, 2), f(med(Case::A, load, &Sample::rate), 0), f(med(Case::B, load, &Sample::rate), 0)),
                "target": "≥ 10× (or the CPU target below)", "met": judge(r >= 10.0),
            }));
        }
        let r = ratio(Case::A, Case::B, load, &Sample::edge_us);
        blocking_met |= load != Load::Fixed && r <= 0.1;
        targets.push(serde_json::json!({
            "metric": format!("(a)/(b) edge CPU per answer, {}", load.label(p)),
            "value": format!("{}× ({} vs {} µs)", f(r, 3), f(med(Case::A, load, &Sample::edge_us), 2), f(med(Case::B, load, &Sample::edge_us), 2)),
            "target": if load == Load::Fixed { "– (light load: no batching)" } else { "≤ 0.1× (or the rate target above)" },
            "met": if load == Load::Fixed { serde_json::Value::Null } else { judge(r <= 0.1) },
        }));
    }
    targets.push(serde_json::json!({
        "metric": "**Blocked names: 10× the rate or 0.1× the edge CPU of Unbound's local-zone**",
        "value": if blocking_met { "at least one of the above" } else { "neither" },
        "target": "either, at max load", "met": judge(blocking_met),
    }));
    let mut allowed_met = true;
    for load in [Load::Fixed, Load::Max, Load::Kx] {
        if of(Case::C, load).is_empty() {
            continue;
        }
        let r = ratio(Case::C, Case::D, load, &Sample::rate);
        allowed_met &= r >= 0.95;
        targets.push(serde_json::json!({
            "metric": format!("(c)/(d) answers per second, {}", load.label(p)),
            "value": format!("{} ({} vs {} /s; lost {}% vs {}%)", f(r, 3), f(med(Case::C, load, &Sample::rate), 0), f(med(Case::D, load, &Sample::rate), 0),
                f(med(Case::C, load, &|s| s.lost() * 100.0), 2), f(med(Case::D, load, &|s| s.lost() * 100.0), 2)),
            "target": "≥ 0.95", "met": judge(r >= 0.95),
        }));
    }
    targets.push(serde_json::json!({
        "metric": "**Allowed names: at most 5% throughput lost with the filter attached**",
        "value": if allowed_met { "at every load" } else { "not at every load" },
        "target": "fixed load and max rate", "met": judge(allowed_met),
    }));
    if !of(Case::C, Load::Fixed).is_empty() {
        let p99 = |s: &Sample| s.p99_ms.unwrap_or(f64::NAN);
        targets.push(serde_json::json!({
            "metric": format!("(c)/(d) p99 latency, {}", Load::Fixed.label(p)),
            "value": format!("{} ({} vs {} ms)", f(ratio(Case::C, Case::D, Load::Fixed, &p99), 2), f(med(Case::C, Load::Fixed, &p99), 3), f(med(Case::D, Load::Fixed, &p99), 3)),
            "target": "–", "met": null,
        }));
        for load in [Load::Fixed, Load::Max] {
            let r = ratio(Case::C, Case::D, load, &Sample::edge_us);
            targets.push(serde_json::json!({
                "metric": format!("(c)/(d) edge CPU per answer, {}", load.label(p)),
                "value": format!("{} ({} vs {} µs)", f(r, 3), f(med(Case::C, load, &Sample::edge_us), 2), f(med(Case::D, load, &Sample::edge_us), 2)),
                "target": "≤ 1.05 (plan M8; not an issue target)", "met": null,
            }));
        }
    }
    for load in [Load::Max, Load::Kx] {
        if of(Case::A, load).is_empty() {
            continue;
        }
        // The filter's answer path against the plain receive path of an allowed query.
        let napi_a = med(Case::A, load, &|s| s.napi_s * 1e6 / s.answers.max(1) as f64);
        let napi_d = med(Case::D, load, &Sample::napi_us_per_query);
        targets.push(serde_json::json!({
            "metric": format!("(a) edge NAPI µs/answer − (d) edge NAPI µs/query, {}", load.label(p)),
            "value": format!("{} − {} = {} µs", f(napi_a, 2), f(napi_d, 2), f(napi_a - napi_d, 2)),
            "target": "–", "met": null,
        }));
    }

    let mut summary = String::new();
    let _ = write!(
        summary,
        "Method: `cargo xtask bench` (xtask/src/bench_e2e.rs) builds the testbed `{BASE}`: client and edge \
         network namespaces joined by a veth pair, Unbound 1 thread in the edge answering every name from local \
         data plus `local-zone: \"NAME.\" always_nxdomain` for the {} blocked domains, and the dnsfilter daemon \
         with the same domains as an NXDOMAIN order. Threaded NAPI on both veth ends (GRO on at the edge, so \
         that it has NAPI also without XDP); the edge NAPI thread, Unbound and the daemon pinned to CPU {EDGE_CPU}, \
         the client NAPI thread and the load generator to CPU {CLIENT_CPU}. Edge CPU per answer = run time \
         (scheduler ns from /proc/PID/task/*/schedstat: exact, where the utime+stime of /proc/PID/stat are \
         sampled at 10 ms ticks) of the edge NAPI thread + Unbound + the daemon over the run, divided by answers. \
         It includes the veth receive (skb, GRO, for the filter the skb-to-XDP conversion) and the transmit to \
         the peer (XDP_TX, or Unbound's sendmsg); it excludes the client's NAPI receive of the answers. Loads: \
         dnsperf (`-c 4 -q 500 -t 1`) as fast as it goes, dnsperf at {} qps with `-v` for percentiles, \
         kxdpgun (AF_XDP on the client end) at `-Q {}`; {} s each, {} rounds with the cases alternating; medians \
         over rounds, ratios between cases of the same round. IPv4, A queries, no EDNS. `limited by`: the \
         side whose own tasks took ≥ 90% of a CPU over the run (client: the generator's user+system time from \
         getrusage plus its NAPI thread's run time; edge: NAPI thread, Unbound, daemon); the whole CPUs' busy time from \
         /proc/stat is shown in parentheses (the VM is shared: other processes run there too). Run time {:.0} s.",
        BLOCKED.len(),
        p.fixed_qps,
        p.kx_qps,
        p.seconds,
        p.rounds,
        seconds
    );
    if !p.judge {
        summary.push_str(" Quick mode: no target judged.");
    }
    serde_json::json!({
        "summary": summary,
        "params": {"seconds": p.seconds, "rounds": p.rounds, "fixed_qps": p.fixed_qps, "kx_qps": p.kx_qps,
                   "client_cpu": CLIENT_CPU, "edge_cpu": EDGE_CPU, "run_seconds": seconds},
        "table": {"columns": columns, "rows": rows},
        "rows": targets,
        "samples": samples.iter().map(Sample::json).collect::<Vec<_>>(),
    })
}
