//! Developer tasks for the dnsfilter workspace, run as `cargo xtask <task>`.
mod bench;
mod cmd;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer tasks for the dnsfilter workspace.
#[derive(Parser)]
#[command(bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install whatever is missing: nightly rust-src, bpf-linker and the apt packages the
    /// tests use (Debian; apt needs root). Does nothing if everything is installed.
    Setup,
    /// Run `setup`, `cargo build --release`, then `cargo test` over the whole workspace
    /// (host tests and privileged kernel tests).
    Test(test::Options),
    /// NOT IMPLEMENTED YET: run a demo of the filter.
    Demo,
    /// Run `setup`, then the benchmarks (BPF_PROG_TEST_RUN against calibration programs,
    /// scale, load times, swaps): writes BENCHMARKS.md, bench/results.json and the plots.
    /// Needs root.
    Bench(bench::Options),
}

// Tracking issue for the stub task.
const DEMO_ISSUE: &str = "4";

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Test(options) => test::run(&options),
        Task::Bench(options) => bench::run(&options),
        // STUB: `demo` is a placeholder until it is built.
        Task::Demo => return not_implemented("demo", DEMO_ISSUE),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn not_implemented(task: &str, issue: &str) -> ExitCode {
    eprintln!("{task}: not implemented yet: see issue {issue}");
    ExitCode::from(2)
}
