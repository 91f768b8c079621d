//! Builds the XDP program with aya-build, using the toolchain pinned in the workspace's
//! `[workspace.metadata.bpf]` (nightly by date, bpf-linker by version), and embeds it with
//! its sha256 so that two machines can tell whether they run the same object.
use std::{path::Path, process::Command};

use anyhow::{Context as _, anyhow, bail};
use aya_build::{Package, Toolchain};
use sha2::{Digest as _, Sha256};

/// Set to 1 to build the object with whatever nightly and bpf-linker are installed.
const ANY_TOOLCHAIN: &str = "DNSFILTER_BPF_TOOLCHAIN_ANY";

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, workspace_metadata, workspace_root, .. } =
        cargo_metadata::MetadataCommand::new().no_deps().exec().context("MetadataCommand::exec")?;
    let pin = |key: &str| {
        workspace_metadata
            .pointer(&format!("/bpf/{key}"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{workspace_root}/Cargo.toml: [workspace.metadata.bpf] has no `{key}`"))
    };
    let (toolchain, commit, linker) = (pin("toolchain")?, pin("rustc-commit")?, pin("bpf-linker")?);
    println!("cargo:rerun-if-changed={workspace_root}/Cargo.toml");
    println!("cargo:rerun-if-env-changed={ANY_TOOLCHAIN}");
    let any = std::env::var(ANY_TOOLCHAIN).is_ok_and(|v| v == "1");

    let toolchain_used = match check_nightly(&toolchain, &commit) {
        Ok(()) => toolchain.clone(),
        Err(e) if any => {
            println!("cargo:warning=BPF object NOT built with the pinned toolchain ({e}); using `nightly`");
            "nightly".to_owned()
        }
        Err(e) => bail!("{e}. Run `cargo xtask setup`, or set {ANY_TOOLCHAIN}=1 to build with another nightly"),
    };
    let linker_used = match check_linker(&linker) {
        Ok(v) => v,
        Err(e) if any => {
            println!("cargo:warning=BPF object NOT linked with the pinned bpf-linker ({e})");
            "unknown".to_owned()
        }
        Err(e) => bail!("{e}. Run `cargo xtask setup`, or set {ANY_TOOLCHAIN}=1 to build with another bpf-linker"),
    };

    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "filter-ebpf")
        .ok_or_else(|| anyhow!("filter-ebpf package not found"))?;
    let root_dir = ebpf.manifest_path.parent().ok_or_else(|| anyhow!("filter-ebpf manifest has no parent"))?;
    // The shared crate is compiled into the program too.
    println!("cargo:rerun-if-changed={}", root_dir.join("../filter-common/src"));
    let out_dir = std::env::var("OUT_DIR").context("OUT_DIR")?;
    remap_paths(workspace_root.as_std_path(), Path::new(&out_dir))?;
    aya_build::build_ebpf(
        [Package { name: "filter-ebpf", root_dir: root_dir.as_str(), ..Default::default() }],
        Toolchain::Custom(&toolchain_used),
    )?;

    let object = Path::new(&out_dir).join("dnsfilter");
    // Under AYA_BUILD_SKIP (docs, clippy without the BPF toolchain) there may be no object.
    let sha = match std::fs::read(&object) {
        Ok(bytes) => format!("{:x}", Sha256::digest(&bytes)),
        Err(_) => "none".to_owned(),
    };
    println!("cargo:rustc-env=DNSFILTER_OBJECT_SHA256={sha}");
    println!("cargo:rustc-env=DNSFILTER_BPF_TOOLCHAIN={toolchain_used}");
    println!("cargo:rustc-env=DNSFILTER_BPF_LINKER={linker_used}");
    Ok(())
}

/// Makes the object independent of where the tree, cargo and rustup live: the debug info and
/// the BTF line info name source files, so without this two checkouts of one commit build
/// objects with different digests. aya-build sets the BPF build's RUSTFLAGS itself, so the
/// `--remap-path-prefix` options are added by a rustc wrapper (written to OUT_DIR).
fn remap_paths(workspace: &Path, out_dir: &Path) -> anyhow::Result<()> {
    if let Some(other) = std::env::var_os("RUSTC_WRAPPER").filter(|w| !w.is_empty()) {
        println!(
            "cargo:warning=RUSTC_WRAPPER={} is set: the BPF object keeps this machine's paths, and its \
             sha256 will differ from other machines'",
            other.display()
        );
        return Ok(());
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(|| home.join(".cargo"), Into::into);
    let rustup_home = std::env::var_os("RUSTUP_HOME").map_or_else(|| home.join(".rustup"), Into::into);
    // rustc applies the last matching prefix: the most specific ones come last.
    let maps = [
        (&cargo_home, "/cargo"),
        (&rustup_home, "/rustup"),
        (&workspace.to_path_buf(), "/dnsfilter"),
        (&out_dir.to_path_buf(), "/out"),
    ];
    let mut script = String::from("#!/bin/sh\n# Written by filter-user/build.rs: see remap_paths.\nexec \"$@\"");
    for (from, to) in maps {
        let from = from.to_str().context("a path that is not UTF-8")?;
        if from.contains('\'') {
            bail!("cannot remap a path with a quote in it: {from}");
        }
        script.push_str(&format!(" '--remap-path-prefix={from}={to}'"));
    }
    script.push('\n');
    let wrapper = out_dir.join("rustc-remap-paths");
    std::fs::write(&wrapper, script).with_context(|| format!("{}", wrapper.display()))?;
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .with_context(|| format!("{}", wrapper.display()))?;
    // SAFETY: the build script is single-threaded; the variable is read by the BPF build's
    // cargo, which aya-build spawns from this process.
    unsafe { std::env::set_var("RUSTC_WRAPPER", &wrapper) };
    Ok(())
}

/// The pinned nightly is installed and is the pinned build.
fn check_nightly(toolchain: &str, commit: &str) -> anyhow::Result<()> {
    let out = Command::new("rustup")
        .args(["run", toolchain, "rustc", "-vV"])
        .output()
        .context("running rustup (the BPF object needs rustup's nightly)")?;
    if !out.status.success() {
        bail!("the pinned BPF toolchain {toolchain} is not installed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let found = text.lines().find_map(|l| l.strip_prefix("commit-hash: ")).unwrap_or("?");
    if found != commit {
        bail!("toolchain {toolchain} is rustc commit {found}, the pin is {commit}");
    }
    Ok(())
}

/// The `bpf-linker` on PATH is the pinned version; returns its version.
fn check_linker(version: &str) -> anyhow::Result<String> {
    let out = Command::new("bpf-linker").arg("--version").output().context("bpf-linker is not on PATH")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let found = text.split_whitespace().nth(1).unwrap_or("?").to_owned();
    if found != version {
        bail!("bpf-linker on PATH is {found}, the pin is {version}");
    }
    Ok(found)
}
