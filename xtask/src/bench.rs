//! `cargo xtask bench`: setup, then the end-to-end run on the testbed (issue 5 part 3,
//! [`crate::bench_e2e`]), then the benchmark binary (crate `dnsfilter-bench`, which depends on
//! the loader and so on bpf-linker: xtask itself must build without it). The binary measures
//! parts 1 and 2 and writes the report, with the end-to-end JSON merged in (`--e2e FILE`).
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::{bench_e2e, cmd, setup};

#[derive(clap::Args)]
pub struct Options {
    /// Small sizes and few iterations, 1 s per end-to-end run, no targets judged, results in
    /// a temporary folder (not the committed BENCHMARKS.md): keeps the suite working in CI.
    #[arg(long)]
    pub quick: bool,
    /// Only the end-to-end run: writes its JSON (target/bench-e2e.json) and leaves the report
    /// alone. Merge it later with `cargo xtask bench --no-e2e -- --e2e target/bench-e2e.json`.
    #[arg(long, conflicts_with = "no_e2e")]
    pub e2e_only: bool,
    /// Skip the end-to-end run (the report says "not run", unless `-- --e2e FILE` is given).
    #[arg(long)]
    pub no_e2e: bool,
    /// Arguments passed on to `dnsfilter-bench`, e.g. `cargo xtask bench -- --sizes 1000,100000`
    /// or `-- --e2e testbed.json` (which also skips the end-to-end run).
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn run(options: &Options) -> Result<()> {
    setup::run()?;
    run_bench(options)
}

/// The end-to-end run (unless skipped), then the benchmark binary (release), without `setup`.
pub fn run_bench(options: &Options) -> Result<()> {
    let mut args = options.args.clone();
    let given = args.iter().any(|a| a == "--e2e" || a.starts_with("--e2e="));
    if !options.no_e2e && !given {
        let json = e2e(options.quick)?;
        if options.e2e_only {
            return Ok(());
        }
        args.extend(["--e2e".to_string(), json.display().to_string()]);
    } else if options.e2e_only {
        bail!("--e2e-only with `-- --e2e FILE`: nothing to do");
    }
    let mut cargo = cmd::cargo();
    cargo.args(["run", "--release", "--package", "dnsfilter-bench", "--"]);
    if options.quick {
        cargo.arg("--quick");
    }
    cargo.args(&args);
    cmd::run(&mut cargo)
}

/// Builds the release `dnsfilter` and runs the end-to-end benchmark; returns its JSON file.
fn e2e(quick: bool) -> Result<PathBuf> {
    if !setup::is_root()? {
        bail!("the end-to-end benchmark creates network namespaces and attaches XDP programs: run it as root");
    }
    cmd::run(cmd::cargo().args(["build", "--release"]))?;
    let bin = cmd::target_dir().join("release").join("dnsfilter");
    let (params, out) = if quick {
        (bench_e2e::Params::quick(), std::env::temp_dir().join("dnsfilter-bench-e2e-quick.json"))
    } else {
        (bench_e2e::Params::full(), cmd::target_dir().join("bench-e2e.json"))
    };
    bench_e2e::run(&params, &bin, &out)?;
    Ok(out)
}
