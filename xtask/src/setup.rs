//! `cargo xtask setup`: idempotently installs the toolchain pieces and Debian packages that
//! building and testing need.
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// Debian packages used by the tests, demo and benchmarks: `knot` (knotd, knotc) and `bind9`
/// (named) with `bind9-utils` (rndc, named-checkzone, tsig-keygen) are the primaries that the
/// RPZ secondary transfers from (testbed/src/knot.rs, testbed/src/bind.rs).
const APT_PACKAGES: &[&str] = &[
    "unbound",
    "dnsutils",
    "knot-dnsutils",
    "knot",
    "bind9",
    "bind9-utils",
    "dnsperf",
    "bpftool",
    "ethtool",
    "iproute2",
];

/// The packages that come with a service, and its name. The tests start their own servers,
/// by hand, in network namespaces, with their own configuration: the packaged services must
/// neither run nor start at boot.
const SERVICES: &[(&str, &str)] = &[("unbound", "unbound"), ("knot", "knot"), ("bind9", "named")];

pub fn run() -> Result<()> {
    let pin = BpfPin::read()?;
    let mut changed = rust_src(&pin).context("pinned nightly with rust-src")?;
    changed |= clippy().context("clippy")?;
    changed |= bpf_linker(&pin).context("bpf-linker")?;
    changed |= apt_packages().context("apt packages")?;
    if !changed {
        println!(
            "setup: nothing to do ({} with rust-src, bpf-linker {} and apt packages present)",
            pin.toolchain, pin.bpf_linker
        );
    }
    Ok(())
}

/// The BPF toolchain pinned in the workspace's `[workspace.metadata.bpf]`, which
/// filter-user/build.rs builds with.
pub struct BpfPin {
    /// rustup toolchain name, e.g. `nightly-2026-05-20`.
    pub toolchain: String,
    /// bpf-linker version, e.g. `0.10.0`.
    pub bpf_linker: String,
}

impl BpfPin {
    pub fn read() -> Result<BpfPin> {
        let out = cmd::output(cmd::cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
        if !out.status.success() {
            bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("cargo metadata output")?;
        let get = |key: &str| {
            meta.pointer(&format!("/metadata/bpf/{key}"))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| format!("Cargo.toml: [workspace.metadata.bpf] has no `{key}`"))
        };
        Ok(BpfPin { toolchain: get("toolchain")?, bpf_linker: get("bpf-linker")? })
    }
}

/// The pinned nightly toolchain with `rust-src`, needed to build the BPF program.
fn rust_src(pin: &BpfPin) -> Result<bool> {
    let toolchain = pin.toolchain.as_str();
    let out = cmd::output(Command::new("rustup").args(["component", "list", "--toolchain", toolchain, "--installed"]))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains("is not installed") && !stderr.contains("not installed") {
            bail!("`rustup component list --toolchain {toolchain}` failed: {}", stderr.trim());
        }
        println!("setup: installing the pinned toolchain {toolchain} with rust-src");
        cmd::run(Command::new("rustup").args([
            "toolchain",
            "install",
            toolchain,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
        return Ok(true);
    }
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim().starts_with("rust-src")) {
        return Ok(false);
    }
    println!("setup: installing rust-src for {toolchain}");
    cmd::run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", toolchain]))?;
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

/// The pinned `bpf-linker`, found on `PATH` (or in the cargo bin directory, with a note);
/// another version is replaced.
fn bpf_linker(pin: &BpfPin) -> Result<bool> {
    let path = which::which("bpf-linker").ok().or_else(|| {
        let linker = cmd::cargo_bin_dir()?.join("bpf-linker");
        linker.is_file().then(|| {
            println!("setup: note: {} is not on PATH; add its folder to PATH", linker.display());
            linker
        })
    });
    if let Some(path) = path {
        let out = cmd::output(Command::new(&path).arg("--version"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let found = text.split_whitespace().nth(1).unwrap_or("?");
        if found == pin.bpf_linker {
            return Ok(false);
        }
        println!("setup: {} is version {found}, the pin is {}: replacing it", path.display(), pin.bpf_linker);
    }
    let spec = format!("bpf-linker@{}", pin.bpf_linker);
    println!("setup: installing {spec}");
    cmd::run(cmd::cargo().args(["install", spec.as_str(), "--locked", "--force"]))?;
    Ok(true)
}

/// The Debian packages in [`APT_PACKAGES`] that are not installed yet.
fn apt_packages() -> Result<bool> {
    let installed = install_apt("setup", APT_PACKAGES)?;
    for (package, service) in SERVICES {
        if installed.contains(package) {
            disable_service(service);
        }
    }
    Ok(!installed.is_empty())
}

/// Installs those of `packages` that `dpkg-query` does not show installed (as root), and
/// returns them. `who` names the step in messages.
pub fn install_apt<'a>(who: &str, packages: &[&'a str]) -> Result<Vec<&'a str>> {
    let mut missing = Vec::new();
    for &package in packages {
        if !dpkg_installed(package)? {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(missing);
    }
    let list = missing.join(" ");
    println!("{who}: installing apt packages: {list}");
    if !is_root()? {
        bail!("{who}: installing apt packages ({list}) needs root: rerun as root or install them yourself");
    }
    apt_update()?;
    cmd::run(Command::new("apt-get").args(["install", "-y"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(missing)
}

/// Whether `apt-get update` already ran in this process.
static APT_UPDATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `apt-get update`, once per process: whether it ran now (false if it had run already).
pub fn apt_update() -> Result<bool> {
    if APT_UPDATED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return Ok(false);
    }
    cmd::run(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(true)
}

fn dpkg_installed(package: &str) -> Result<bool> {
    let out = cmd::output(Command::new("dpkg-query").args(["-W", "--showformat=${Status}", package]))
        .context("dpkg-query is needed (only Debian and its derivatives are supported)")?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

pub fn is_root() -> Result<bool> {
    let out = cmd::output(Command::new("id").arg("-u"))?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Stops the packaged service `service` and keeps it from starting at boot, best effort
/// (failures are ignored). With systemd as init: `systemctl disable --now`. Without (a
/// container): `systemctl disable`, which also removes the SysV links through
/// systemd-sysv-install, or `update-rc.d SERVICE disable` where there is no systemctl; then
/// the init script's `stop`, in case the package's postinst started the daemon (invoke-rc.d
/// does unless a policy-rc.d forbids it).
fn disable_service(service: &str) {
    let quiet = |program: &str, args: &[&str]| {
        println!("==> {program} {} (failures ignored)", args.join(" "));
        let _ignored =
            Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    };
    let systemctl = which::which("systemctl").is_ok();
    if systemctl && std::path::Path::new("/run/systemd/system").exists() {
        quiet("systemctl", &["disable", "--now", service]);
        return;
    }
    if systemctl {
        quiet("systemctl", &["disable", service]);
    } else if which::which("update-rc.d").is_ok() {
        quiet("update-rc.d", &[service, "disable"]);
    }
    let script = format!("/etc/init.d/{service}");
    if std::path::Path::new(&script).exists() {
        quiet(&script, &["stop"]);
    }
}
