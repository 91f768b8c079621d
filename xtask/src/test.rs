//! `cargo xtask test`: setup, release build, clippy, every test in the workspace, the
//! benchmark in quick mode (it keeps the benchmark working; it judges nothing), then the
//! kernel matrix ([`crate::kernels`]).
use anyhow::{Context as _, Result};

use crate::{bench, cmd, kernels, setup};

#[derive(clap::Args)]
pub struct Options {
    /// Run only the kernel matrix (after setup and the builds it needs), on this kernel:
    /// `6.1` or `6.12` (Debian 12's, booted with virtme-ng) or `host`. Repeatable.
    #[arg(long = "kernel", value_name = "KERNEL")]
    kernels: Vec<kernels::Kernel>,
    /// Skip the kernel matrix.
    #[arg(long, conflicts_with = "kernels")]
    no_kernels: bool,
    /// Arguments passed on to the test binaries of the `test` step, e.g.
    /// `cargo xtask test -- --nocapture` (the kernel matrix runs its own fixed set).
    #[arg(last = true)]
    test_args: Vec<String>,
}

pub fn run(options: &Options) -> Result<()> {
    step("setup", setup::run)?;
    // Builds the default members; filter-user's build.rs builds the BPF object.
    step("build", || cmd::run(cmd::cargo().args(["build", "--release"])))?;
    if !options.kernels.is_empty() {
        step("kernels", || kernels::run(&options.kernels))?;
        println!("test: the kernel matrix is done");
        return Ok(());
    }
    // Lints are part of the build: the no-panic denies in filter-common guard the kernel path.
    step("clippy", || {
        cmd::run(cmd::cargo().args([
            "clippy",
            "--workspace",
            "--exclude",
            "filter-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("test", || {
        let mut cargo = cmd::cargo();
        // filter-ebpf is a `no_main` BPF binary: it cannot be linked as a host test harness.
        cargo.args(["test", "--workspace", "--exclude", "filter-ebpf"]);
        if !options.test_args.is_empty() {
            cargo.arg("--").args(&options.test_args);
        }
        cmd::run(&mut cargo)
    })?;
    step("bench --quick", || {
        bench::run_bench(&bench::Options { quick: true, e2e_only: false, no_e2e: false, args: Vec::new() })
    })?;
    if !options.no_kernels {
        step("kernels", || kernels::run(kernels::DEFAULT))?;
    }
    println!("test: all steps passed");
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    f().with_context(|| format!("step `{name}` failed"))
}
