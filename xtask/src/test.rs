//! `cargo xtask test`: setup, release build, clippy, every test in the workspace, then the
//! benchmark in quick mode (it keeps the benchmark working; it judges nothing).
use anyhow::{Context as _, Result};

use crate::{bench, cmd, setup};

#[derive(clap::Args)]
pub struct Options {
    /// Arguments passed on to the test binaries, e.g. `cargo xtask test -- --nocapture`.
    #[arg(last = true)]
    test_args: Vec<String>,
}

pub fn run(options: &Options) -> Result<()> {
    step("setup", setup::run)?;
    // Builds the default members; filter-user's build.rs builds the BPF object.
    step("build", || cmd::run(cmd::cargo().args(["build", "--release"])))?;
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
    println!("test: all steps passed");
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    f().with_context(|| format!("step `{name}` failed"))
}
