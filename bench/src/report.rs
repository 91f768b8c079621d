//! The results of a run (serialised to JSON), the targets judged on them, and the markdown
//! report with its plots.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    env::Env,
    run::{Changes, ClassResult, Params, PerPacket, Scale, Swap},
    svg::{self, Bar, COLORS, Series},
};

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub env: Env,
    pub params: Params,
    pub per_packet: PerPacket,
    pub scale: Vec<Scale>,
    pub changes: Changes,
    pub swap: Swap,
    pub targets: Vec<Target>,
    pub run_seconds: f64,
    /// Peak resident memory of the bench process (VmHWM), MiB.
    pub peak_rss_mb: u64,
    /// Part 3 (end to end on the testbed, issue 5): results merged from `--e2e FILE`.
    pub e2e: Option<serde_json::Value>,
}

/// One target of issue 5, judged on the measured ratio.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub id: String,
    pub what: String,
    /// The limit, in `unit`.
    pub limit: f64,
    pub unit: String,
    pub measured: Option<f64>,
    /// `None`: not judged (a quick run, or not measured).
    pub met: Option<bool>,
    pub detail: String,
}

fn class<'a>(v: &'a [ClassResult], id: &str) -> Option<&'a ClassResult> {
    v.iter().find(|c| c.id == id)
}

/// The largest size with results.
fn largest(scale: &[Scale]) -> Option<&Scale> {
    scale.iter().filter(|s| s.skipped.is_none()).max_by_key(|s| s.entries)
}

/// Judges the targets of issue 5. Quick runs judge nothing (their sizes and iteration counts
/// are too small to mean anything).
pub fn targets(params: &Params, pp: &PerPacket, scale: &[Scale]) -> Vec<Target> {
    let judge = |v: Option<f64>, limit: f64| if params.quick { None } else { v.map(|v| v <= limit) };
    let mut t = Vec::new();
    let r = |id: &str| class(&pp.repeated, id).map(|c| c.stat.ratio);
    let v = r("non_dns_tcp");
    t.push(Target {
        id: "non_dns".into(),
        what: "non-DNS traffic (TCP SYN), × the floor".into(),
        limit: 1.2,
        unit: "× floor".into(),
        measured: v,
        met: judge(v, 1.2),
        detail: format!("repeat {}", params.repeat),
    });
    let v = r("allowed_3");
    t.push(Target {
        id: "allowed_hot".into(),
        what: "allowed 3-label name, hot, × the floor".into(),
        limit: 4.0,
        unit: "× floor".into(),
        measured: v,
        met: judge(v, 4.0),
        detail: format!("repeat {}, {}-entry table", params.repeat, pp.entries),
    });
    let answered: Vec<&ClassResult> =
        pp.single.iter().filter(|c| c.id.starts_with("blocked_nxdomain") || c.id == "blocked_redirect").collect();
    let worst = answered.iter().map(|c| c.stat.ratio).fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    t.push(Target {
        id: "answered".into(),
        what:
            "blocked name answered, × the floor at repeat 1 (worst of NXDOMAIN v4, redirect v4, NXDOMAIN v6 + cookie)"
                .into(),
        limit: 6.0,
        unit: "× floor (r=1)".into(),
        measured: worst,
        met: judge(worst, 6.0),
        detail: answered.iter().map(|c| format!("{} {:.2}", c.id, c.stat.ratio)).collect::<Vec<_>>().join(", "),
    });
    let at_10m = scale.iter().find(|s| s.entries == 10_000_000 && s.skipped.is_none());
    let big = at_10m.or_else(|| largest(scale));
    let note = |s: Option<&Scale>| match (s, at_10m) {
        (_, Some(_)) => "at 10M entries".to_string(),
        (Some(s), None) => format!("10M not measured; shown at {} entries, not judged", svg::si(s.entries as f64)),
        (None, None) => "not measured".into(),
    };
    let judge10 = |v: Option<f64>, limit: f64| if at_10m.is_some() { judge(v, limit) } else { None };
    let cold = big.map(|s| {
        s.cold
            .iter()
            .filter(|c| ["allowed_2", "allowed_4", "allowed_8"].contains(&c.id.as_str()))
            .map(|c| c.cold_misses)
            .fold(f64::NAN, f64::max)
    });
    t.push(Target {
        id: "cold".into(),
        what: "allowed query, cold, in cold misses (worst of 2, 4, 8 labels)".into(),
        limit: 2.0,
        unit: "cold misses".into(),
        measured: cold,
        met: judge10(cold, 2.0),
        detail: note(big),
    });
    let mem = big.map(|s| s.bytes_per_entry);
    t.push(Target {
        id: "memory".into(),
        what: "kernel memory per entry, every map included".into(),
        limit: 64.0,
        unit: "B/entry".into(),
        measured: mem,
        met: judge10(mem, 64.0),
        detail: note(big),
    });
    let load = big.and_then(|s| s.load.as_ref().map(|l| l.median));
    t.push(Target {
        id: "load".into(),
        what: "loading 10M entries (table::build + install)".into(),
        limit: 5.0,
        unit: "s".into(),
        measured: load,
        met: judge10(load, 5.0),
        detail: note(big),
    });
    t
}

fn f(v: f64, digits: usize) -> String {
    if v.is_finite() { format!("{v:.digits$}") } else { "–".into() }
}

fn met(t: &Target) -> &'static str {
    match t.met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not judged",
    }
}

fn mib(b: u64) -> String {
    if b < 1 << 20 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    }
}

/// The plot of part 2: cost per packet against table size.
pub fn scale_svg(r: &Results) -> String {
    let done: Vec<&Scale> = r.scale.iter().filter(|s| s.skipped.is_none()).collect();
    let pts = |g: &dyn Fn(&Scale) -> f64| done.iter().map(|s| (s.entries as f64, g(s))).collect::<Vec<_>>();
    let cold = |id: &'static str| move |s: &Scale| s.cold.iter().find(|c| c.id == id).map_or(f64::NAN, |c| c.ns);
    let series = vec![
        Series {
            name: "cold: allowed, 4 labels".into(),
            points: pts(&cold("allowed_4")),
            color: COLORS[0],
            dashed: false,
        },
        Series {
            name: "cold: allowed, sibling".into(),
            points: pts(&cold("allowed_sibling")),
            color: COLORS[5],
            dashed: false,
        },
        Series {
            name: "cold: blocked, NXDOMAIN".into(),
            points: pts(&cold("blocked_nxdomain")),
            color: COLORS[3],
            dashed: false,
        },
        Series {
            name: "anchor: 1 cold array read".into(),
            points: pts(&|s| s.cold_array_ns),
            color: COLORS[1],
            dashed: true,
        },
        Series {
            name: "anchor: 1 BPF hash miss".into(),
            points: pts(&|s| s.cold_hash_ns),
            color: COLORS[4],
            dashed: true,
        },
        Series { name: "floor (repeat 1)".into(), points: pts(&|s| s.cold_floor_ns), color: COLORS[6], dashed: true },
        Series {
            name: "hot: allowed, 3 labels".into(),
            points: pts(&|s| s.hot_allowed_3.as_ref().map_or(f64::NAN, |x| x.ns)),
            color: COLORS[2],
            dashed: false,
        },
    ];
    svg::line_chart(
        "dnsfilter: ns per packet against table size (BPF_PROG_TEST_RUN, medians)",
        "entries in the table (log scale)",
        "ns per packet",
        true,
        &series,
    )
}

/// The plot of part 1: every class as a multiple of the floor, with the targets.
pub fn classes_svg(r: &Results) -> String {
    let mut bars = Vec::new();
    for c in r.per_packet.repeated.iter().filter(|c| c.id != "floor") {
        bars.push(Bar { label: format!("{} (repeat)", c.id), value: c.stat.ratio, color: COLORS[0] });
    }
    for c in r.per_packet.single.iter().filter(|c| c.id != "floor") {
        bars.push(Bar { label: format!("{} (r=1)", c.id), value: c.stat.ratio, color: COLORS[1] });
    }
    svg::bar_chart(
        "dnsfilter: per-packet cost as a multiple of the empty program (same run)",
        "× floor (blue: large repeat; orange: repeat 1, against the floor at repeat 1)",
        &bars,
        &[(1.2, "1.2×".into()), (4.0, "4×".into()), (6.0, "6×".into())],
    )
}

/// The markdown report. `notes` is hand-written analysis appended as is.
pub fn markdown(r: &Results, notes: &str) -> String {
    let mut o = String::new();
    let e = &r.env;
    let p = &r.params;
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Generated by `cargo xtask bench` ({} mode) on {} at commit `{}`; the run took {:.0} s. \
         Raw figures: [bench/results.json](bench/results.json). Absolute nanoseconds are specific to this \
         shared VM: **read the ratios**, each measured against calibration programs in the same run.\n",
        if p.quick { "quick" } else { "full" },
        e.date,
        e.commit,
        r.run_seconds
    );
    let _ = writeln!(o, "## Machine\n");
    let _ = writeln!(o, "| | |\n|---|---|");
    for (k, v) in [
        ("kernel (uname -r)", e.kernel.clone()),
        ("CPU", format!("{} ({} online CPUs; bench pinned to CPU {})", e.cpu_model, e.cpus, e.pinned_cpu)),
        ("load average at start / end", format!("{} / {}", e.load_start, e.load_end)),
        ("bpf_jit_enable / bpf_jit_harden", format!("{} / {}", e.bpf_jit_enable, e.bpf_jit_harden)),
        ("bpf_stats_enabled", e.bpf_stats_enabled.clone()),
        ("spectre_v2", e.spectre_v2.clone()),
        ("memory total / available at start", format!("{} / {} MiB", e.mem_total_mb, e.mem_available_mb)),
        ("peak resident memory of the bench", format!("{} MiB", r.peak_rss_mb)),
        ("date (UTC)", e.date.clone()),
        ("commit", e.commit.clone()),
        ("rustc", e.rustc.clone()),
    ] {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    let _ = writeln!(
        o,
        "\nParameters: repeat {} for the large-repeat figures; {} rounds (every figure is the median over \
         rounds, every ratio the median of per-round ratios); {} calls per variant and round at repeat 1; \
         {} distinct names per variant and round for the cold figures; load times are medians of {} runs.\n",
        p.repeat, p.rounds, p.calls, p.cold_calls, p.load_runs
    );

    let _ = writeln!(o, "## Targets (issue 5)\n");
    let _ = writeln!(o, "| target | limit | measured | verdict | detail |\n|---|---|---|---|---|");
    for t in &r.targets {
        let _ = writeln!(
            o,
            "| {} | ≤ {} {} | {} | {} | {} |",
            t.what,
            t.limit,
            t.unit,
            t.measured.map_or("–".into(), |v| f(v, 2)),
            met(t),
            t.detail
        );
    }
    let _ = writeln!(
        o,
        "| no wrong decision while generations swap | 0 | {} of {} canary packets | {} | {} swaps at {} entries |",
        r.swap.wrong,
        r.swap.packets,
        if r.swap.wrong == 0 { "**met**" } else { "**missed**" },
        r.swap.swaps,
        svg::si(r.swap.entries as f64)
    );
    // The end-to-end targets (part 3), judged in section 3.
    for row in r.e2e.as_ref().and_then(|v| v.get("rows")).and_then(|r| r.as_array()).into_iter().flatten() {
        let g = |k: &str| row.get(k).map_or(String::new(), |x| x.as_str().map_or(x.to_string(), str::to_string));
        let verdict = match row.get("met").and_then(|m| m.as_bool()) {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => continue,
        };
        let _ = writeln!(
            o,
            "| end to end: {} | {} | {} | {verdict} | [§3](#3-end-to-end-on-the-testbed) |",
            g("metric"),
            g("target"),
            g("value")
        );
    }

    let _ = writeln!(o, "\n## 1. Per-packet cost (BPF_PROG_TEST_RUN)\n");
    let _ = writeln!(
        o,
        "Table of {} entries (hot: it fits in cache). Calibration programs are hand-written instructions \
         loaded with raw `bpf(2)` calls next to the filter: **floor** = `return XDP_PASS`; **hot lookup** = \
         one hit in a 1k-entry BPF hash map.\n",
        r.per_packet.entries
    );
    let _ = writeln!(o, "![per-packet cost as a multiple of the floor](bench/classes.svg)\n");
    let _ = writeln!(o, "### Large repeat (repeat {}; paths that do not rewrite the frame)\n", p.repeat);
    let _ = writeln!(o, "| class | ns/packet | × floor | × hot lookup |\n|---|---|---|---|");
    for c in &r.per_packet.repeated {
        let _ = writeln!(
            o,
            "| {} (`{}`) | {} | {} | {} |",
            c.what,
            c.id,
            f(c.stat.ns, 1),
            f(c.stat.ratio, 2),
            f(c.vs_hot, 2)
        );
    }
    let _ = writeln!(
        o,
        "\n### Repeat 1 (answer paths: every call gets the original frame; {} calls per variant and round)\n",
        p.calls
    );
    let _ = writeln!(o, "| class | ns/packet | × floor (r=1) | above the floor, ns |\n|---|---|---|---|");
    let floor1 = class(&r.per_packet.single, "floor").map_or(f64::NAN, |c| c.stat.ns);
    for c in &r.per_packet.single {
        let _ = writeln!(
            o,
            "| {} (`{}`) | {} | {} | {} |",
            c.what,
            c.id,
            f(c.stat.ns, 1),
            f(c.stat.ratio, 2),
            f(c.stat.ns - floor1, 1)
        );
    }
    let _ = writeln!(o, "\nChecked once before timing (verdict, counter, and every answer parsed independently):\n");
    for c in &r.per_packet.checked {
        let _ = writeln!(o, "- {c}");
    }

    let _ = writeln!(o, "\n## 2. Scale\n");
    let _ = writeln!(o, "![ns per packet against table size](bench/scale.svg)\n");
    let _ = writeln!(
        o,
        "Lists are synthetic blocklists (70 % `sld.tld`, 20 % `x.sld.tld`, 10 % `x.y.sld.tld` under ten \
         TLDs). **Hot**: the same name at repeat {}. **Cold**: repeat 1 with a distinct random name on every \
         call, in no relation to insertion order, interleaved call by call with the calibration programs: \
         the floor, **one cold array read** (one random 64-octet element of a BPF array as large as the \
         table generation: the unit a table probe costs), a hot array read (64 elements), and **one miss in a \
         preallocated BPF hash map** of N entries. \"cold misses\" = (class − floor) / (cold array read − floor); \
         \"cold probes\" = (class − the same names against the 1k table) / (cold array read − hot array read).\n",
        p.repeat
    );
    let _ = writeln!(
        o,
        "| entries | hot allowed 3 labels, × floor | cold allowed 2 / 4 / 8 labels, in cold misses | cold probes (2 / 4 / 8) | cold sibling, in cold misses | cold blocked NXDOMAIN, in cold misses | floor r=1 / 1 cold array read / 1 hash miss, ns |\n|---|---|---|---|---|---|---|"
    );
    for s in &r.scale {
        if let Some(why) = &s.skipped {
            let _ = writeln!(o, "| {} | skipped: {why} | | | | | |", svg::si(s.entries as f64));
            continue;
        }
        let c = |id: &str| s.cold.iter().find(|c| c.id == id);
        // Below about 50 ns above the floor the table is in cache: there is no cold miss to count in.
        let cold_at_this_size = s.cold_array_ns - s.cold_floor_ns >= 50.0;
        let cm = |id: &str| {
            if !cold_at_this_size {
                return "– (in cache)".to_string();
            }
            c(id).map_or("–".into(), |c| f(c.cold_misses, 2))
        };
        let pr = |id: &str| {
            if !cold_at_this_size {
                return "–".to_string();
            }
            c(id).and_then(|c| c.cold_probes).map_or("–".into(), |v| f(v, 2))
        };
        let _ = writeln!(
            o,
            "| {} | {} ({} ns) | {} / {} / {} | {} / {} / {} | {} | {} | {} / {} / {} |",
            svg::si(s.entries as f64),
            s.hot_allowed_3.as_ref().map_or("–".into(), |x| f(x.ratio, 2)),
            s.hot_allowed_3.as_ref().map_or("–".into(), |x| f(x.ns, 0)),
            cm("allowed_2"),
            cm("allowed_4"),
            cm("allowed_8"),
            pr("allowed_2"),
            pr("allowed_4"),
            pr("allowed_8"),
            cm("allowed_sibling"),
            cm("blocked_nxdomain"),
            f(s.cold_floor_ns, 0),
            f(s.cold_array_ns, 0),
            f(s.cold_hash_ns, 0)
        );
    }
    let _ = writeln!(o, "\nCold figures in ns (medians):\n");
    let ids = ["allowed_2", "allowed_4", "allowed_8", "allowed_sibling", "blocked_nxdomain", "allowed_4_hot_table"];
    let _ = writeln!(o, "| entries | {} |\n|---|{}", ids.join(" | "), "---|".repeat(ids.len()));
    for s in r.scale.iter().filter(|s| s.skipped.is_none()) {
        let cells: Vec<String> =
            ids.iter().map(|id| s.cold.iter().find(|c| c.id == *id).map_or("–".into(), |c| f(c.ns, 0))).collect();
        let _ = writeln!(o, "| {} | {} |", svg::si(s.entries as f64), cells.join(" | "));
    }

    let _ = writeln!(o, "\n### Kernel memory (fdinfo `memlock:` of every map the filter uses)\n");
    let names: Vec<String> = r
        .scale
        .iter()
        .find(|s| s.skipped.is_none())
        .map(|s| s.maps.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "| entries | slots used (entries + markers) | {} | total | B/entry | BPF hash 8 B/8 B, same N, B/entry |\n|---|---|{}---|---|---|",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for s in r.scale.iter().filter(|s| s.skipped.is_none()) {
        let cells: Vec<String> =
            names.iter().map(|n| s.maps.iter().find(|m| &m.name == n).map_or("–".into(), |m| mib(m.memlock))).collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            svg::si(s.entries as f64),
            s.slots_used,
            cells.join(" | "),
            mib(s.memlock_total),
            f(s.bytes_per_entry, 1),
            f(s.hash_anchor_bytes_per_entry, 1)
        );
    }
    let _ = writeln!(
        o,
        "\nDuring a swap the old generation lives until the kernel frees it after an RCU grace period, so the \
         table's memory briefly doubles.\n"
    );

    let _ = writeln!(o, "### Load time (from rules in memory to installed; medians)\n");
    let _ = writeln!(
        o,
        "| entries | parse N-line plain list | table::build | install (create, fill through mmap, swap) | build + install | s per 1M | BPF hash batch fill, same N (reference) |\n|---|---|---|---|---|---|---|"
    );
    for s in r.scale.iter().filter(|s| s.skipped.is_none()) {
        let sec = |x: &Option<crate::run::Secs>| x.as_ref().map_or("–".into(), |x| format!("{} s", f(x.median, 3)));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} s |",
            svg::si(s.entries as f64),
            sec(&s.parse),
            sec(&s.build),
            sec(&s.install),
            sec(&s.load),
            s.load.as_ref().map_or("–".into(), |l| f(l.median / s.entries as f64 * 1e6, 2)),
            f(s.hash_anchor_fill_s, 3)
        );
    }
    let c = &r.changes;
    let _ = writeln!(
        o,
        "\n**{} changes to a {}-entry list** ({} removed, {} added; the daemon rebuilds a full generation): \
         build {} s + install {} s = **{} s** (median of {} runs).\n",
        c.changes,
        svg::si(c.base as f64),
        c.changes / 2,
        c.changes - c.changes / 2,
        f(c.build.median, 3),
        f(c.install.median, 3),
        f(c.total.median, 3),
        c.total.runs.len()
    );
    let s = &r.swap;
    let _ = writeln!(
        o,
        "**Swaps under traffic**: {} generation swaps between the {}-entry list and its changed version while \
         another thread (on the other CPU) pushed {} canary packets through the program: **{} wrong \
         decisions**. The name only the old list blocks was answered {} times and passed {} times; the name \
         only the new list blocks, {} and {}: the swaps interleaved with the packets. A name both lists block \
         was answered every time and a name neither lists passed every time. install() of a prebuilt \
         generation: {} s (median).\n",
        s.swaps,
        svg::si(s.entries as f64),
        s.packets,
        s.wrong,
        s.old_only.0,
        s.old_only.1,
        s.new_only.0,
        s.new_only.1,
        f(s.install.median, 4)
    );

    let _ = writeln!(o, "## 3. End to end on the testbed\n");
    match &r.e2e {
        None => {
            let _ = writeln!(
                o,
                "Not part of this run (`cargo xtask bench --no-e2e`). `cargo xtask bench` runs it \
                 (xtask/src/bench_e2e.rs) and passes its JSON with `--e2e FILE`: `{{\"summary\": \"...\", \
                 \"table\": {{\"columns\": [...], \"rows\": [[...]]}}, \"rows\": [{{\"metric\": \"...\", \
                 \"value\": \"...\", \"target\": \"...\", \"met\": true}}]}}`; it is stored under `e2e` in \
                 the JSON and rendered here.\n"
            );
        }
        Some(v) => {
            if let Some(s) = v.get("summary").and_then(|s| s.as_str()) {
                let _ = writeln!(o, "{s}\n");
            }
            let text = |x: &serde_json::Value| x.as_str().map_or(x.to_string(), str::to_string);
            if let Some(t) = v.get("table") {
                let columns: Vec<String> =
                    t.get("columns").and_then(|c| c.as_array()).into_iter().flatten().map(text).collect();
                if !columns.is_empty() {
                    let _ = writeln!(o, "| {} |\n|{}", columns.join(" | "), "---|".repeat(columns.len()));
                    for row in t.get("rows").and_then(|r| r.as_array()).into_iter().flatten() {
                        let cells: Vec<String> = row.as_array().into_iter().flatten().map(text).collect();
                        let _ = writeln!(o, "| {} |", cells.join(" | "));
                    }
                    let _ = writeln!(o);
                }
            }
            let _ = writeln!(o, "| metric | value | target | verdict |\n|---|---|---|---|");
            for row in v.get("rows").and_then(|r| r.as_array()).into_iter().flatten() {
                let g =
                    |k: &str| row.get(k).map_or(String::new(), |x| x.as_str().map_or(x.to_string(), str::to_string));
                let verdict = match row.get("met").and_then(|m| m.as_bool()) {
                    Some(true) => "**met**",
                    Some(false) => "**missed**",
                    None => "",
                };
                let _ = writeln!(o, "| {} | {} | {} | {verdict} |", g("metric"), g("value"), g("target"));
            }
            let _ = writeln!(o);
        }
    }

    let hash10 = r.scale.iter().find(|s| s.entries == 10_000_000 && s.skipped.is_none());
    let _ = writeln!(o, "## Reference figures\n");
    let _ = writeln!(
        o,
        "- dnsdist's contrib XDP filter (exact names only, one helper call per octet): **28–44× the floor** per \
         DNS packet on this kind of VM, and about **345 B per entry**.\n\
         - A preallocated BPF hash map with 8-octet keys and values: about **91 B per entry at 10M** \
         (this run: {} B/entry).\n\
         - One cold miss in a 10M-entry BPF hash map: about **575 ns**; a bloom-filter miss: 175–210 ns \
         (this run, hash miss at 10M: {} ns above a floor of {} ns at repeat 1).\n",
        hash10.map_or("–".into(), |s| f(s.hash_anchor_bytes_per_entry, 1)),
        hash10.map_or("–".into(), |s| f(s.cold_hash_ns - s.cold_floor_ns, 0)),
        hash10.map_or("–".into(), |s| f(s.cold_floor_ns, 0)),
    );
    if !notes.is_empty() {
        let _ = writeln!(o, "{}", notes.trim_end());
    }
    o
}
