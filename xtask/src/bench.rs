//! `cargo xtask bench`: setup, then the benchmark binary (crate `dnsfilter-bench`, which
//! depends on the loader and so on bpf-linker: xtask itself must build without it).
use anyhow::Result;

use crate::{cmd, setup};

#[derive(clap::Args)]
pub struct Options {
    /// Small sizes and few iterations, no targets judged, results in a temporary folder (not
    /// the committed BENCHMARKS.md): keeps the suite working in CI.
    #[arg(long)]
    pub quick: bool,
    /// Arguments passed on to `dnsfilter-bench`, e.g. `cargo xtask bench -- --sizes 1000,100000`
    /// or `-- --e2e testbed.json` (see `dnsfilter-bench --help`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn run(options: &Options) -> Result<()> {
    setup::run()?;
    run_bench(options)
}

/// Builds and runs the benchmark binary (release), without `setup`.
pub fn run_bench(options: &Options) -> Result<()> {
    let mut cargo = cmd::cargo();
    cargo.args(["run", "--release", "--package", "dnsfilter-bench", "--"]);
    if options.quick {
        cargo.arg("--quick");
    }
    cargo.args(&options.args);
    cmd::run(&mut cargo)
}
