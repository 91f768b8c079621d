//! Developer tasks for the dnsfilter workspace, run as `cargo xtask <task>`.
mod bench;
mod bench_e2e;
mod cmd;
mod demo;
mod kernels;
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
    /// (host tests and privileged kernel tests), the quick benchmark, and the kernel matrix:
    /// the privileged tiers on the host kernel and on Debian 12's 6.1 and 6.12 booted with
    /// virtme-ng.
    Test(test::Options),
    /// Run the filter on a self-contained testbed (as root): install what is missing, build,
    /// start Unbound and dnsfilter with the Allostreaming orders in network namespaces, query
    /// them from a client namespace, show who answered, the counters and the provenance, then
    /// tear everything down (also on Ctrl-C or failure). `--fleet`: two edge nodes as
    /// secondaries of an RPZ zone on a Knot DNS primary, and a change on the primary timed to
    /// both.
    Demo(demo::Options),
    /// Run `setup`, then the benchmarks: end to end on the testbed (dnsperf and kxdpgun against
    /// the filter and Unbound), then BPF_PROG_TEST_RUN against calibration programs, scale,
    /// load times, swaps. Writes BENCHMARKS.md, bench/results.json and the plots. Needs root.
    Bench(bench::Options),
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Test(options) => test::run(&options),
        Task::Demo(options) => demo::run(&options),
        Task::Bench(options) => bench::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
