//! `cargo xtask setup`: idempotently installs the toolchain pieces and Debian packages that
//! building and testing need.
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// bpf-linker version the BPF build is known to work with.
const BPF_LINKER: &str = "bpf-linker@0.10.0";

/// Debian packages used by the tests, demo and benchmarks.
const APT_PACKAGES: &[&str] = &["unbound", "dnsutils", "knot-dnsutils", "dnsperf", "bpftool", "ethtool", "iproute2"];

pub fn run() -> Result<()> {
    let mut changed = rust_src().context("nightly rust-src")?;
    changed |= clippy().context("clippy")?;
    changed |= bpf_linker().context("bpf-linker")?;
    changed |= apt_packages().context("apt packages")?;
    if !changed {
        println!("setup: nothing to do (nightly rust-src, bpf-linker and apt packages present)");
    }
    Ok(())
}

/// The nightly toolchain with `rust-src`, needed to build the BPF program.
fn rust_src() -> Result<bool> {
    let out = cmd::output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains("is not installed") {
            bail!("`rustup component list --toolchain nightly` failed: {}", stderr.trim());
        }
        println!("setup: installing the nightly toolchain with rust-src");
        cmd::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
        return Ok(true);
    }
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "rust-src") {
        return Ok(false);
    }
    println!("setup: installing rust-src for nightly");
    cmd::run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    Ok(true)
}

/// clippy for the default toolchain (`cargo xtask test` lints before it tests).
fn clippy() -> Result<bool> {
    if cmd::output(cmd::cargo().args(["clippy", "--version"]))?.status.success() {
        return Ok(false);
    }
    println!("setup: installing clippy");
    cmd::run(Command::new("rustup").args(["component", "add", "clippy"]))?;
    Ok(true)
}

/// `bpf-linker`, found on `PATH` or in the cargo bin directory.
fn bpf_linker() -> Result<bool> {
    if which::which("bpf-linker").is_ok() {
        return Ok(false);
    }
    if let Some(bin) = cmd::cargo_bin_dir() {
        let linker = bin.join("bpf-linker");
        if linker.is_file() {
            println!("setup: note: {} is not on PATH; add {} to PATH", linker.display(), bin.display());
            return Ok(false);
        }
    }
    println!("setup: installing {BPF_LINKER}");
    cmd::run(cmd::cargo().args(["install", BPF_LINKER, "--locked"]))?;
    Ok(true)
}

/// The Debian packages in [`APT_PACKAGES`] that are not installed yet.
fn apt_packages() -> Result<bool> {
    let mut missing = Vec::new();
    for &package in APT_PACKAGES {
        if !dpkg_installed(package)? {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(false);
    }
    let list = missing.join(" ");
    println!("setup: installing apt packages: {list}");
    if !is_root()? {
        bail!(
            "installing apt packages ({list}) needs root: rerun `cargo xtask setup` as root or install them yourself"
        );
    }
    cmd::run(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))?;
    cmd::run(Command::new("apt-get").args(["install", "-y"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"))?;
    if missing.contains(&"unbound") {
        stop_system_unbound();
    }
    Ok(true)
}

fn dpkg_installed(package: &str) -> Result<bool> {
    let out = cmd::output(Command::new("dpkg-query").args(["-W", "--showformat=${Status}", package]))
        .context("dpkg-query is needed (setup supports Debian only)")?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

pub fn is_root() -> Result<bool> {
    let out = cmd::output(Command::new("id").arg("-u"))?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The tests start their own unbound; the packaged service must not keep running.
/// Best effort: failures (no systemd in a container, say) are ignored.
fn stop_system_unbound() {
    if which::which("systemctl").is_err() {
        return;
    }
    println!("==> systemctl disable --now unbound (failures ignored)");
    let _ignored = Command::new("systemctl")
        .args(["disable", "--now", "unbound"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
