//! `dnsfilter-bench`: measures the XDP program with BPF_PROG_TEST_RUN against calibration
//! programs measured in the same run (issue 5 parts 1 and 2), then writes BENCHMARKS.md, the
//! JSON results and the plots. Run it through `cargo xtask bench` (as root).
mod calib;
mod env;
mod measure;
mod report;
mod run;
mod svg;
mod sys;
mod workload;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Parser;

/// Benchmarks of the dnsfilter XDP program (needs root: CAP_BPF, CAP_SYS_ADMIN).
#[derive(Parser)]
struct Cli {
    /// Small sizes and few iterations, to keep the suite working (CI); writes into a
    /// temporary folder unless --out is given, and judges no target.
    #[arg(long)]
    quick: bool,
    /// Folder for BENCHMARKS.md and bench/{results.json,classes.svg,scale.svg}. Default: the
    /// workspace root (a temporary folder with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Table sizes of part 2, overriding the mode's (e.g. `--sizes 1000,100000`).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Results of the end-to-end testbed run (issue 5 part 3, written by `cargo xtask bench`),
    /// a JSON object merged into the report: `{"summary": "...", "table": {"columns": [...],
    /// "rows": [[...]]}, "rows": [{"metric", "value", "target", "met"}]}`.
    #[arg(long)]
    e2e: Option<PathBuf>,
    /// Hand-written analysis appended to the report. Default: bench/NOTES.md (full runs only).
    #[arg(long)]
    notes: Option<PathBuf>,
    /// Part 1 only (the per-packet classes, about a tenth of a full run): prints ns and ratios
    /// to the floor, writes nothing. For comparing changes to the kernel program.
    #[arg(long)]
    classes_only: bool,
}

/// Prints part 1 as plain columns: class, ns per packet, ratio to the floor of the same rounds.
fn print_classes(p: &run::PerPacket) {
    for (title, rows) in [("repeat large", &p.repeated), ("repeat 1", &p.single)] {
        println!("{title}:");
        for c in rows.iter() {
            println!("  {:<28} {:>7.1} ns {:>6.2} x floor", c.id, c.stat.ns, c.stat.ratio);
        }
    }
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."))
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark loads BPF programs and needs root");
    }
    let started = std::time::Instant::now();
    let mut params = if cli.quick { run::Params::quick() } else { run::Params::full() };
    if let Some(sizes) = cli.sizes {
        params.sizes = sizes;
    }
    let out = match (&cli.out, cli.quick) {
        (Some(o), _) => o.clone(),
        (None, false) => workspace_root().to_path_buf(),
        (None, true) => std::env::temp_dir().join("dnsfilter-bench-quick"),
    };
    let e2e = cli
        .e2e
        .as_ref()
        .map(|p| -> Result<serde_json::Value> {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", p.display()))
        })
        .transpose()?;
    let notes_path = cli.notes.clone().or_else(|| (!cli.quick).then(|| workspace_root().join("bench/NOTES.md")));
    let notes = match &notes_path {
        Some(p) if p.exists() => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        _ => String::new(),
    };

    // Pin to the last CPU: every timing runs on one CPU (the swap canaries use another).
    let cpu = sys::ncpus() - 1;
    sys::pin_to_cpu(cpu)?;
    let mut environment = env::Env::capture(workspace_root(), cpu);
    if environment.bpf_jit_enable != "1" {
        eprintln!(
            "warning: the BPF JIT is off (bpf_jit_enable = {}): figures are not comparable",
            environment.bpf_jit_enable
        );
    }
    if environment.bpf_stats_enabled != "0" {
        eprintln!(
            "warning: bpf_stats_enabled = {}: every run pays two extra clock reads",
            environment.bpf_stats_enabled
        );
    }

    let mut hot = run::hot_filter(&params)?;
    let per_packet = run::per_packet(&params, &mut hot)?;
    if cli.classes_only {
        print_classes(&per_packet);
        return Ok(());
    }
    let mut scale = Vec::new();
    for &n in &params.sizes {
        let s = run::scale(&params, n, &hot)?;
        if let Some(why) = &s.skipped {
            eprintln!("part 2: {n} entries skipped: {why}");
        }
        scale.push(s);
    }
    let (changes, swap) = run::changes_and_swap(&params)?;
    environment.load_end = env::loadavg();
    let targets = report::targets(&params, &per_packet, &scale);
    let results = report::Results {
        env: environment,
        params,
        per_packet,
        scale,
        changes,
        swap,
        targets,
        run_seconds: started.elapsed().as_secs_f64(),
        peak_rss_mb: env::status_mb("VmHWM"),
        e2e,
    };

    let bench_dir = out.join("bench");
    std::fs::create_dir_all(&bench_dir).with_context(|| format!("creating {}", bench_dir.display()))?;
    let write = |path: PathBuf, text: String| -> Result<()> {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
        Ok(())
    };
    write(bench_dir.join("results.json"), serde_json::to_string_pretty(&results)? + "\n")?;
    write(bench_dir.join("scale.svg"), report::scale_svg(&results))?;
    write(bench_dir.join("classes.svg"), report::classes_svg(&results))?;
    write(out.join("BENCHMARKS.md"), report::markdown(&results, &notes))?;
    for t in &results.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not judged",
        };
        println!(
            "{:<12} {:>10} (limit {} {}) {verdict}",
            t.id,
            t.measured.map_or("-".into(), |v| format!("{v:.2}")),
            t.limit,
            t.unit
        );
    }
    println!("bench: done in {:.0} s", results.run_seconds);
    Ok(())
}
