//! The measurements: part 1 (per-packet cost of each packet class against calibration
//! programs) and part 2 (scale: cost hot and cold, kernel memory, load time, changes, swaps).

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context as _, Result, bail, ensure};
use filter_common::counters::Counter;
use filter_tests::frames::{check_answer, read_answer};
use filter_user::{
    config::Settings,
    loader::Filter,
    table::{self, Built, Rule},
};
use serde::Serialize;

use crate::{
    calib::{self, Calib},
    measure::{self, Stat, Variant, median, timed},
    sys,
    workload::{self, Cold, Rng},
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// Sizes and iteration counts of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    pub quick: bool,
    /// `repeat` of the large-repeat measurements.
    pub repeat: u32,
    /// Rounds of every measurement (figures are medians over rounds).
    pub rounds: usize,
    /// Calls per variant and round at `repeat = 1` (answer paths).
    pub calls: usize,
    /// Calls (distinct names) per variant and round for the cold measurements.
    pub cold_calls: usize,
    /// Table sizes of part 2.
    pub sizes: Vec<usize>,
    /// Runs of each load-time measurement (median).
    pub load_runs: usize,
    /// The list that receives changes, and how many.
    pub change_base: usize,
    pub changes: usize,
    /// Generation swaps while canaries run.
    pub swaps: usize,
    /// Entries of the hot table of part 1.
    pub hot_entries: usize,
    /// Seed of the generated lists.
    pub seed: u64,
}

impl Params {
    pub fn full() -> Params {
        Params {
            quick: false,
            repeat: 1_000_000,
            rounds: 7,
            calls: 20_000,
            cold_calls: 10_000,
            sizes: vec![1_000, 100_000, 1_000_000, 10_000_000],
            load_runs: 5,
            change_base: 1_000_000,
            changes: 1_000,
            swaps: 40,
            hot_entries: 1_000,
            seed: 0x5eed_d0d0,
        }
    }

    pub fn quick() -> Params {
        Params {
            quick: true,
            repeat: 10_000,
            rounds: 3,
            calls: 300,
            cold_calls: 300,
            sizes: vec![1_000, 10_000],
            load_runs: 2,
            change_base: 10_000,
            changes: 100,
            swaps: 10,
            hot_entries: 1_000,
            seed: 0x5eed_d0d0,
        }
    }
}

/// The settings every loaded filter gets: a stop page for `redirect`.
pub fn settings() -> Settings {
    Settings {
        stop_v4: Some(workload::STOP_V4.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)),
        stop_v6: Some(workload::STOP_V6.parse().unwrap_or(std::net::Ipv6Addr::UNSPECIFIED)),
        ..Settings::default()
    }
}

/// A loaded filter with a table, and its program's descriptor.
pub struct Loaded {
    pub filter: Filter,
    pub prog: OwnedFd,
    pub built: Built,
}

/// Loads the real object with its own maps and installs `rules`.
pub fn load(rules: &[Rule], seed: u64) -> Result<Loaded> {
    let mut filter = Filter::load().context("loading the XDP object")?;
    filter.set_config(&settings().to_config()?)?;
    let built = table::build(rules, seed, 1, rules.len())?;
    filter.install(&built)?;
    let prog = filter.program()?.fd()?.as_fd().try_clone_to_owned()?;
    Ok(Loaded { filter, prog, built })
}

/// One packet class of part 1.
struct Class {
    id: &'static str,
    what: &'static str,
    frame: Vec<u8>,
    verdict: u32,
    counter: Counter,
}

/// A figure of part 1.
#[derive(Clone, Debug, Serialize)]
pub struct ClassResult {
    pub id: String,
    pub what: String,
    /// ns per packet and ratio to the floor of the same rounds.
    pub stat: Stat,
    /// Ratio to the hot-lookup calibration program.
    pub vs_hot: f64,
}

/// Part 1.
#[derive(Clone, Debug, Serialize)]
pub struct PerPacket {
    pub entries: usize,
    /// Large `repeat`.
    pub repeated: Vec<ClassResult>,
    /// `repeat = 1`, one call per frame.
    pub single: Vec<ClassResult>,
    /// What the answers were checked to be.
    pub checked: Vec<String>,
}

fn allowed(labels: usize) -> String {
    let base = "allowed-name.com";
    let extra = ["www", "a", "b", "c", "d", "e"];
    let mut parts: Vec<&str> = extra[..labels.saturating_sub(2)].to_vec();
    parts.reverse();
    parts.push(base);
    parts.join(".")
}

fn classes() -> Vec<Class> {
    let q = workload::query_v4;
    let a3 = allowed(3);
    vec![
        Class {
            id: "non_dns_tcp",
            what: "TCP SYN (not DNS)",
            frame: workload::tcp_syn(),
            verdict: XDP_PASS,
            counter: Counter::PassNotUdp,
        },
        // Where the time goes: queries that leave the program at successive stages.
        Class {
            id: "stage_udp_other_port",
            what: "stage: UDP to port 80 (Ethernet, IP, UDP, config read)",
            frame: workload::stage_frame("udp_other_port"),
            verdict: XDP_PASS,
            counter: Counter::PassNotDnsPort,
        },
        Class {
            id: "stage_dns_response",
            what: "stage: a DNS response (+ message copy, header check)",
            frame: workload::stage_frame("dns_response"),
            verdict: XDP_PASS,
            counter: Counter::PassNotQuery,
        },
        Class {
            id: "stage_compressed_name",
            what: "stage: a compressed question name (+ table header, label loop, 1 step)",
            frame: workload::stage_frame("compressed_name"),
            verdict: XDP_PASS,
            counter: Counter::PassCompressedName,
        },
        Class {
            id: "stage_root_name",
            what: "stage: the root name (+ question tail; no walk)",
            frame: workload::stage_frame("root_name"),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "allowed_2",
            what: "allowed, 2 labels",
            frame: q(&allowed(2)),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "allowed_3",
            what: "allowed, 3 labels",
            frame: q(&a3),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "allowed_4",
            what: "allowed, 4 labels",
            frame: q(&allowed(4)),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "allowed_8",
            what: "allowed, 8 labels",
            frame: q(&allowed(8)),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "allowed_sibling",
            what: "allowed, sibling of a listed name (3 labels, 3 probes)",
            frame: q("www.sibling-parent.com"),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "vlan",
            what: "allowed, 3 labels, 802.1Q tag",
            frame: workload::class_frame("vlan", &a3),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "qinq",
            what: "allowed, 3 labels, QinQ (802.1ad + 802.1Q)",
            frame: workload::class_frame("qinq", &a3),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "ipv6",
            what: "allowed, 3 labels, IPv6",
            frame: workload::class_frame("ipv6", &a3),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "edns_cookie",
            what: "allowed, 3 labels, EDNS with a cookie",
            frame: workload::class_frame("edns_cookie", &a3),
            verdict: XDP_PASS,
            counter: Counter::PassNoMatch,
        },
        Class {
            id: "blocked_drop",
            what: "blocked, dropped (3 labels)",
            frame: q(&format!("www.{}", workload::BLOCKED_DROP)),
            verdict: XDP_DROP,
            counter: Counter::Drop,
        },
        Class {
            id: "blocked_nxdomain",
            what: "blocked, NXDOMAIN answer (3 labels)",
            frame: q(&format!("www.{}", workload::BLOCKED_NX)),
            verdict: XDP_TX,
            counter: Counter::AnswerNxdomain,
        },
        Class {
            id: "blocked_redirect",
            what: "blocked, redirect answer A (3 labels)",
            frame: q(&format!("www.{}", workload::BLOCKED_REDIRECT)),
            verdict: XDP_TX,
            counter: Counter::AnswerRedirect,
        },
        Class {
            id: "blocked_nxdomain_v6_cookie",
            what: "blocked, NXDOMAIN answer, IPv6 + EDNS cookie",
            frame: workload::class_frame("ipv6_edns_cookie", &format!("www.{}", workload::BLOCKED_NX)),
            verdict: XDP_TX,
            counter: Counter::AnswerNxdomain,
        },
    ]
}

/// Runs `frame` once through the filter and checks verdict, counter and, for answers, the
/// answer itself (addresses, ports, lengths, checksums, and the DNS message read by an
/// independent parser). Returns what was checked.
fn check_class(l: &mut Loaded, c: &Class) -> Result<String> {
    let before = l.filter.counters()?;
    let mut out = vec![0u8; 4096];
    let ran = sys::test_run(l.prog.as_fd(), &c.frame, 1, &mut out)?;
    let after = l.filter.counters()?;
    let deltas: Vec<(Counter, u64)> =
        after.iter().zip(&before).filter(|(a, b)| a.1 != b.1).map(|(a, b)| (a.0, a.1 - b.1)).collect();
    ensure!(ran.verdict == c.verdict, "{}: verdict {} instead of {}", c.id, ran.verdict, c.verdict);
    ensure!(deltas == vec![(c.counter, 1)], "{}: counters moved {deltas:?}, expected {:?} by one", c.id, c.counter);
    if c.verdict != XDP_TX {
        return Ok(format!("{}: verdict {}, counter {:?}", c.id, ran.verdict, c.counter));
    }
    out.truncate(ran.out_len);
    let frame = c.frame.clone();
    let dns = query_dns(&frame).with_context(|| format!("{}: no DNS message in the frame", c.id))?.to_vec();
    // The frames module checks by asserting: a malformed answer panics, which is caught here.
    let said = std::panic::catch_unwind(move || {
        let a = check_answer(&frame, &out);
        read_answer(&dns, &a.dns)
    })
    .map_err(|_| anyhow::anyhow!("{}: the answer is malformed (see the panic above)", c.id))?;
    let rcode = said.rcode.to_string();
    match c.counter {
        Counter::AnswerNxdomain => {
            ensure!(rcode == "NXDOMAIN" && said.qr && said.authority.len() == 1, "{}: {said:?}", c.id)
        }
        Counter::AnswerRedirect => ensure!(
            said.answers.len() == 1 && said.answers[0].ends_with(&format!("A {}", workload::STOP_V4)),
            "{}: {said:?}",
            c.id
        ),
        _ => {}
    }
    Ok(format!(
        "{}: a valid answer: {rcode}, answer {:?}, authority {}, OPT {}, checksums and lengths correct",
        c.id,
        said.answers,
        said.authority.len(),
        if said.opt { "echoed" } else { "none" }
    ))
}

/// The DNS message of a query frame: after Ethernet, tags, IP and UDP.
fn query_dns(frame: &[u8]) -> Option<&[u8]> {
    let mut off = 12;
    loop {
        let t = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        if t == 0x8100 || t == 0x88a8 {
            off += 4;
            continue;
        }
        let ip = off + 2;
        let udp = if t == 0x86dd { ip + 40 } else { ip + usize::from(frame.get(ip)? & 0x0f) * 4 };
        return frame.get(udp + 8..);
    }
}

/// The filter of part 1: `hot_entries` entries, small enough to stay in cache.
pub fn hot_filter(p: &Params) -> Result<Loaded> {
    load(&workload::list(p.seed, p.hot_entries), table::random_seed())
}

/// Part 1: every class against the floor and the hot lookup, on the hot filter.
pub fn per_packet(p: &Params, l: &mut Loaded) -> Result<PerPacket> {
    let floor = calib::floor()?;
    let hot = calib::hot(1000)?;
    let classes = classes();
    let mut checked = Vec::new();
    for c in &classes {
        checked.push(check_class(l, c)?);
    }
    let single_frame = |f: &[u8]| vec![f.to_vec()];
    let floor_frames = single_frame(&classes[2].frame);

    // Large repeat: everything that does not rewrite the frame.
    let repeated: Vec<&Class> = classes.iter().filter(|c| c.verdict != XDP_TX).collect();
    let frames: Vec<Vec<Vec<u8>>> = repeated.iter().map(|c| single_frame(&c.frame)).collect();
    let mut variants = vec![
        Variant { prog: floor.prog.as_fd(), frames: &floor_frames, verdict: XDP_PASS },
        Variant { prog: hot.prog.as_fd(), frames: &floor_frames, verdict: XDP_PASS },
    ];
    for (c, f) in repeated.iter().zip(&frames) {
        variants.push(Variant { prog: l.prog.as_fd(), frames: f, verdict: c.verdict });
    }
    eprintln!("part 1: {} variants at repeat {} x {} rounds", variants.len(), p.repeat, p.rounds);
    let r = measure::repeat_rounds(&variants, p.repeat, p.rounds)?;
    let mut rep = vec![
        ClassResult {
            id: "floor".into(),
            what: "calibration: empty XDP_PASS program".into(),
            stat: Stat::new(&r[0], &r[0]),
            vs_hot: Stat::new(&r[0], &r[1]).ratio,
        },
        ClassResult {
            id: "hot_lookup".into(),
            what: "calibration: one hit in a 1k-entry BPF hash map".into(),
            stat: Stat::new(&r[1], &r[0]),
            vs_hot: 1.0,
        },
    ];
    for (i, c) in repeated.iter().enumerate() {
        let s = &r[i + 2];
        rep.push(ClassResult {
            id: c.id.into(),
            what: c.what.into(),
            stat: Stat::new(s, &r[0]),
            vs_hot: Stat::new(s, &r[1]).ratio,
        });
    }

    // repeat = 1: the answer paths (each call gets the original frame), with the floor, the
    // hot lookup, an allowed name and the dropped name measured the same way.
    let single: Vec<&Class> =
        classes.iter().filter(|c| c.verdict == XDP_TX || c.id == "allowed_3" || c.id == "blocked_drop").collect();
    let frames: Vec<Vec<Vec<u8>>> = single.iter().map(|c| single_frame(&c.frame)).collect();
    let mut variants = vec![
        Variant { prog: floor.prog.as_fd(), frames: &floor_frames, verdict: XDP_PASS },
        Variant { prog: hot.prog.as_fd(), frames: &floor_frames, verdict: XDP_PASS },
    ];
    for (c, f) in single.iter().zip(&frames) {
        variants.push(Variant { prog: l.prog.as_fd(), frames: f, verdict: c.verdict });
    }
    eprintln!("part 1: {} variants at repeat 1, {} calls x {} rounds", variants.len(), p.calls, p.rounds);
    let mut per = vec![Vec::new(); variants.len()];
    for _ in 0..p.rounds {
        for (acc, v) in per.iter_mut().zip(measure::per_call_round(&variants, p.calls)?) {
            acc.push(v);
        }
    }
    let mut one = vec![
        ClassResult {
            id: "floor".into(),
            what: "calibration: empty XDP_PASS program".into(),
            stat: Stat::new(&per[0], &per[0]),
            vs_hot: Stat::new(&per[0], &per[1]).ratio,
        },
        ClassResult {
            id: "hot_lookup".into(),
            what: "calibration: one hit in a 1k-entry BPF hash map".into(),
            stat: Stat::new(&per[1], &per[0]),
            vs_hot: 1.0,
        },
    ];
    for (i, c) in single.iter().enumerate() {
        let s = &per[i + 2];
        one.push(ClassResult {
            id: c.id.into(),
            what: c.what.into(),
            stat: Stat::new(s, &per[0]),
            vs_hot: Stat::new(s, &per[1]).ratio,
        });
    }
    Ok(PerPacket { entries: l.built.header.entries as usize, repeated: rep, single: one, checked })
}

/// Kernel memory of one map.
#[derive(Clone, Debug, Serialize)]
pub struct MapMem {
    pub name: String,
    pub memlock: u64,
}

/// Kernel memory of every map the filter uses (its program's maps and the table generation
/// in force, which is not bound to the program), from fdinfo `memlock:`.
pub fn filter_memory(l: &mut Loaded) -> Result<Vec<MapMem>> {
    let info = l.filter.program()?.info()?;
    let ids = info.map_ids()?.context("the kernel does not report the program's maps")?;
    let mut out = Vec::new();
    for id in ids {
        let mi = aya::maps::MapInfo::from_id(id)?;
        let name = mi.name_as_str().unwrap_or("?").to_string();
        let fd = sys::map_fd_by_id(id)?;
        out.push(MapMem { name: name.clone(), memlock: sys::memlock(fd.as_fd())? });
        if name == filter_common::maps::TABLE {
            let inner = sys::map_fd_by_id(sys::inner_map_id(fd.as_fd())?)?;
            out.push(MapMem { name: "table generation (inner array)".into(), memlock: sys::memlock(inner.as_fd())? });
        }
    }
    Ok(out)
}

/// Seconds, the median over runs and every run.
#[derive(Clone, Debug, Serialize)]
pub struct Secs {
    pub median: f64,
    pub runs: Vec<f64>,
}

impl Secs {
    fn new(runs: Vec<f64>) -> Secs {
        Secs { median: median(&runs), runs }
    }
}

/// A cold-path figure at one size.
#[derive(Clone, Debug, Serialize)]
pub struct ColdClass {
    pub id: String,
    pub what: String,
    pub ns: f64,
    /// (this - floor) / (one cold array read - floor): the cost in cold misses.
    pub cold_misses: f64,
    /// The same against the hash-map miss.
    pub hash_misses: f64,
    /// (this - the same names against a 1k table) / (cold array read - hot array read): cold
    /// probes the walk made (allowed classes only).
    pub cold_probes: Option<f64>,
}

/// Part 2, one size.
#[derive(Clone, Debug, Serialize)]
pub struct Scale {
    pub entries: usize,
    /// Why this size was not measured.
    pub skipped: Option<String>,
    pub slots_used: u64,
    pub array_elements: u64,
    pub parse: Option<Secs>,
    pub build: Option<Secs>,
    pub install: Option<Secs>,
    /// build + install of the same run.
    pub load: Option<Secs>,
    pub maps: Vec<MapMem>,
    pub memlock_total: u64,
    pub bytes_per_entry: f64,
    /// The hash-map anchor: its memlock per entry, and its BPF_MAP_UPDATE_BATCH fill time.
    pub hash_anchor_bytes_per_entry: f64,
    pub hash_anchor_fill_s: f64,
    /// Large repeat, same name every time.
    pub hot_floor: Option<Stat>,
    pub hot_allowed_3: Option<Stat>,
    /// repeat = 1, a distinct name every call.
    pub cold_floor_ns: f64,
    pub cold_array_ns: f64,
    pub hot_array_ns: f64,
    pub cold_hash_ns: f64,
    pub cold: Vec<ColdClass>,
}

impl Scale {
    fn skipped(entries: usize, why: String) -> Scale {
        Scale {
            entries,
            skipped: Some(why),
            slots_used: 0,
            array_elements: 0,
            parse: None,
            build: None,
            install: None,
            load: None,
            maps: vec![],
            memlock_total: 0,
            bytes_per_entry: f64::NAN,
            hash_anchor_bytes_per_entry: f64::NAN,
            hash_anchor_fill_s: f64::NAN,
            hot_floor: None,
            hot_allowed_3: None,
            cold_floor_ns: f64::NAN,
            cold_array_ns: f64::NAN,
            hot_array_ns: f64::NAN,
            cold_hash_ns: f64::NAN,
            cold: vec![],
        }
    }
}

/// Memory a size needs in this process and the kernel: rules, list text, the parsed list, the
/// builder's records, two generations and the hash-map anchor. At 10M entries the bench peaked
/// at about 6 GiB resident plus about 1.2 GB of kernel memory (BENCHMARKS.md), 730 B per entry.
pub const BYTES_PER_ENTRY_NEEDED: u64 = 1_000;

/// Part 2 at one size. `hot_ref` is the part-1 filter (1k entries): the same cold names run
/// against it give the cost of the walk without cache misses.
pub fn scale(p: &Params, n: usize, hot_ref: &Loaded) -> Result<Scale> {
    let need_mb = n as u64 * BYTES_PER_ENTRY_NEEDED / (1 << 20);
    let avail_mb = crate::env::meminfo_mb("MemAvailable");
    if need_mb > avail_mb {
        return Ok(Scale::skipped(
            n,
            format!("needs about {need_mb} MiB of memory, {avail_mb} MiB available (`free -m`)"),
        ));
    }
    let runs = p.load_runs;
    eprintln!("part 2: {n} entries: generating");
    let rules = workload::list(p.seed, n);

    // Parse time of the same list as a plain-list file, separately.
    let text = workload::plain_text(p.seed, n);
    let mut parse = Vec::new();
    for _ in 0..runs {
        let (s, parsed) = timed(|| {
            filter_user::lists::plain::parse(Path::new("bench.list"), &text, filter_user::lists::Defaults::default())
        });
        let parsed = parsed.map_err(|e| anyhow::anyhow!("the generated list does not parse: {}", e[0]))?;
        ensure!(parsed.entries.len() == n, "parsed {} entries of {n}", parsed.entries.len());
        drop(parsed);
        parse.push(s);
    }
    drop(text);
    eprintln!("part 2: {n} entries: parse {:.3} s", median(&parse));

    // Load time: from rules in memory to installed, into a fresh generation each run.
    let mut filter = Filter::load()?;
    filter.set_config(&settings().to_config()?)?;
    let (mut build, mut install, mut load) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for generation in 0..runs {
        let (b, built) = timed(|| table::build(&rules, table::random_seed(), generation as u64 + 1, rules.len()));
        let built = built?;
        let (i, r) = timed(|| filter.install(&built));
        r?;
        build.push(b);
        install.push(i);
        load.push(b + i);
        last = Some(built);
    }
    let built = last.context("no load run")?;
    eprintln!("part 2: {n} entries: build {:.3} s, install {:.3} s", median(&build), median(&install));
    let prog = filter.program()?.fd()?.as_fd().try_clone_to_owned()?;
    let mut l = Loaded { filter, prog, built };
    let maps = filter_memory(&mut l)?;
    let memlock_total: u64 = maps.iter().map(|m| m.memlock).sum();
    let elements = l.built.buckets.len() as u32;

    // Calibration programs of this size.
    let floor = calib::floor()?;
    let cold_array = calib::cold_array(elements)?;
    let hot_array = calib::cold_array(64)?;
    let (fill_s, cold_hash) = timed(|| calib::cold_hash(n as u32));
    let cold_hash = cold_hash?;
    let hash_mem = sys::memlock(cold_hash.map.as_ref().context("hash anchor map")?.as_fd())?;

    // Hot: the same name every time, large repeat.
    let a3 = vec![workload::query_v4(&allowed(3))];
    let v = [
        Variant { prog: floor.prog.as_fd(), frames: &a3, verdict: XDP_PASS },
        Variant { prog: l.prog.as_fd(), frames: &a3, verdict: XDP_PASS },
    ];
    let r = measure::repeat_rounds(&v, p.repeat, p.rounds)?;
    let hot_floor = Stat::new(&r[0], &r[0]);
    let hot_allowed_3 = Stat::new(&r[1], &r[0]);

    // Cold: a distinct name every call, repeat = 1.
    let cold = cold_rounds(p, n, &l, hot_ref, &floor, &cold_array, &hot_array, &cold_hash)?;
    drop(rules);
    Ok(Scale {
        entries: n,
        skipped: None,
        slots_used: l.built.header.slots_used,
        array_elements: u64::from(elements),
        parse: Some(Secs::new(parse)),
        build: Some(Secs::new(build)),
        install: Some(Secs::new(install)),
        load: Some(Secs::new(load)),
        maps,
        memlock_total,
        bytes_per_entry: memlock_total as f64 / n as f64,
        hash_anchor_bytes_per_entry: hash_mem as f64 / n as f64,
        hash_anchor_fill_s: fill_s,
        hot_floor: Some(hot_floor),
        hot_allowed_3: Some(hot_allowed_3),
        cold_floor_ns: cold.0,
        cold_array_ns: cold.1,
        hot_array_ns: cold.2,
        cold_hash_ns: cold.3,
        cold: cold.4,
    })
}

type ColdOut = (f64, f64, f64, f64, Vec<ColdClass>);

#[expect(clippy::too_many_arguments, reason = "the programs of one interleaved measurement")]
fn cold_rounds(
    p: &Params,
    n: usize,
    l: &Loaded,
    hot_ref: &Loaded,
    floor: &Calib,
    cold_array: &Calib,
    hot_array: &Calib,
    cold_hash: &Calib,
) -> Result<ColdOut> {
    let kinds = [
        (Cold::Allowed2, "allowed_2", "allowed, 2 labels", XDP_PASS),
        (Cold::Allowed4, "allowed_4", "allowed, 4 labels", XDP_PASS),
        (Cold::Allowed8, "allowed_8", "allowed, 8 labels", XDP_PASS),
        (Cold::Sibling, "allowed_sibling", "allowed, sibling of a listed name (2 cold probes expected)", XDP_PASS),
        (Cold::Blocked, "blocked_nxdomain", "blocked, NXDOMAIN answer", XDP_TX),
    ];
    // Per variant, per round: the median ns.
    let nvar = 4 + kinds.len() + 3;
    let mut per = vec![Vec::new(); nvar];
    let mut rng = Rng::new(p.seed ^ n as u64 ^ 0xC01D);
    for round in 0..p.rounds.min(5) {
        let frames: Vec<Vec<Vec<u8>>> = kinds
            .iter()
            .map(|(k, ..)| {
                (0..p.cold_calls).map(|_| workload::query_v4(&workload::cold_name(*k, &mut rng, p.seed, n))).collect()
            })
            .collect();
        let a4 = &frames[1];
        let mut v = vec![
            Variant { prog: floor.prog.as_fd(), frames: a4, verdict: XDP_PASS },
            Variant { prog: cold_array.prog.as_fd(), frames: a4, verdict: XDP_PASS },
            Variant { prog: hot_array.prog.as_fd(), frames: a4, verdict: XDP_PASS },
            Variant { prog: cold_hash.prog.as_fd(), frames: a4, verdict: XDP_PASS },
        ];
        for (f, k) in frames.iter().zip(&kinds) {
            v.push(Variant { prog: l.prog.as_fd(), frames: f, verdict: k.3 });
        }
        for f in &frames[..3] {
            v.push(Variant { prog: hot_ref.prog.as_fd(), frames: f, verdict: XDP_PASS });
        }
        eprintln!("part 2: {n} entries: cold round {round}, {} variants x {} calls", v.len(), p.cold_calls);
        for (acc, x) in per.iter_mut().zip(measure::per_call_round(&v, p.cold_calls)?) {
            acc.push(x);
        }
    }
    let (fl, ca, ha, ch) = (&per[0], &per[1], &per[2], &per[3]);
    let mut out = Vec::new();
    for (i, (_, id, what, _)) in kinds.iter().enumerate() {
        let s = &per[4 + i];
        let cold_probes = (i < 3).then(|| {
            let hot = &per[4 + kinds.len() + i];
            let r: Vec<f64> = s
                .iter()
                .zip(hot)
                .zip(ca.iter().zip(ha))
                .map(|((a, h), (c, hh))| if c - hh > 0.0 { (a - h) / (c - hh) } else { f64::NAN })
                .collect();
            median(&r)
        });
        out.push(ColdClass {
            id: id.to_string(),
            what: what.to_string(),
            ns: median(s),
            cold_misses: Stat::delta_ratio(s, fl, ca),
            hash_misses: Stat::delta_ratio(s, fl, ch),
            cold_probes,
        });
    }
    for (i, id) in ["allowed_2", "allowed_4", "allowed_8"].iter().enumerate() {
        let s = &per[4 + kinds.len() + i];
        out.push(ColdClass {
            id: format!("{id}_hot_table"),
            what: format!("the same {id} names against the 1k table"),
            ns: median(s),
            cold_misses: Stat::delta_ratio(s, fl, ca),
            hash_misses: Stat::delta_ratio(s, fl, ch),
            cold_probes: None,
        });
    }
    Ok((median(fl), median(ca), median(ha), median(ch), out))
}

/// Applying changes to a large list: the daemon rebuilds a full generation.
#[derive(Clone, Debug, Serialize)]
pub struct Changes {
    pub base: usize,
    pub changes: usize,
    pub build: Secs,
    pub install: Secs,
    pub total: Secs,
}

/// Generation swaps under traffic.
#[derive(Clone, Debug, Serialize)]
pub struct Swap {
    pub entries: usize,
    pub swaps: usize,
    pub packets: u64,
    pub wrong: u64,
    /// Verdicts of the name only the old list blocks: (answered, passed).
    pub old_only: (u64, u64),
    /// Verdicts of the name only the new list blocks: (answered, passed).
    pub new_only: (u64, u64),
    /// install() of a prebuilt generation (create, fill through mmap, swap the slot).
    pub install: Secs,
}

/// Changes to a list and swaps under canary traffic.
pub fn changes_and_swap(p: &Params) -> Result<(Changes, Swap)> {
    let n = p.change_base;
    eprintln!("part 2: {} changes to {n} entries", p.changes);
    let base = workload::list(p.seed, n);
    let mut l = load(&base, table::random_seed())?;
    let (changed, removed, added) = workload::changed_list(p.seed, n, p.changes);
    let (mut build, mut install, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for generation in 0..p.load_runs {
        let (b, built) = timed(|| table::build(&changed, table::random_seed(), generation as u64 + 2, changed.len()));
        let built = built?;
        let (i, r) = timed(|| l.filter.install(&built));
        r?;
        build.push(b);
        install.push(i);
        total.push(b + i);
    }
    let changes = Changes {
        base: n,
        changes: p.changes,
        build: Secs::new(build),
        install: Secs::new(install),
        total: Secs::new(total),
    };

    eprintln!("part 2: {} swaps at {n} entries under canary traffic", p.swaps);
    let old = table::build(&base, table::random_seed(), 100, base.len())?;
    let new = table::build(&changed, table::random_seed(), 101, changed.len())?;
    drop((base, changed));
    let q = |labels: &[String]| workload::query_v4(&format!("canary.{}", labels.join(".")));
    let both = workload::query_v4(&format!("www.{}", workload::BLOCKED_NX));
    let neither = workload::query_v4(&allowed(3));
    let (old_only, new_only) = (q(&removed), q(&added));
    l.filter.install(&old)?;
    let prog = l.prog.try_clone()?;
    let done = Arc::new(AtomicBool::new(false));
    let pusher = {
        let done = done.clone();
        std::thread::spawn(move || -> Result<(u64, u64, [u64; 4])> {
            // The canaries run on the other CPU, so that they overlap the swaps.
            sys::pin_to_cpu(0)?;
            let mut out = vec![0u8; 4096];
            let (mut packets, mut wrong, mut seen) = (0u64, 0u64, [0u64; 4]);
            let mut run = |f: &[u8]| sys::test_run(prog.as_fd(), f, 1, &mut out).map(|r| r.verdict);
            while !done.load(Ordering::Relaxed) {
                wrong += u64::from(run(&both)? != XDP_TX);
                wrong += u64::from(run(&neither)? != XDP_PASS);
                for (i, f) in [&old_only, &new_only].into_iter().enumerate() {
                    match run(f)? {
                        XDP_TX => seen[i] += 1,
                        XDP_PASS => seen[i + 2] += 1,
                        _ => wrong += 1,
                    }
                }
                packets += 4;
            }
            Ok((packets, wrong, seen))
        })
    };
    let mut install = Vec::new();
    for i in 0..p.swaps {
        let next = if i % 2 == 0 { &new } else { &old };
        let (s, r) = timed(|| l.filter.install(next));
        r?;
        install.push(s);
        // Let packets run against each generation for a moment.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    done.store(true, Ordering::Relaxed);
    let (packets, wrong, seen) = pusher.join().map_err(|_| anyhow::anyhow!("the canary thread panicked"))??;
    if wrong > 0 {
        bail!("{wrong} canary packets saw a wrong decision during swaps");
    }
    let swap = Swap {
        entries: n,
        swaps: p.swaps,
        packets,
        wrong,
        old_only: (seen[0], seen[2]),
        new_only: (seen[1], seen[3]),
        install: Secs::new(install),
    };
    Ok((changes, swap))
}
