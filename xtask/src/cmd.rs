//! Running external commands with a printed header and error context.
use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, Result, bail};
use testbed::cmd::display;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."))
}

/// `$CARGO_HOME/bin`, defaulting to `~/.cargo/bin`.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

/// A `cargo` command (the one running us, if known) in the workspace root, with the cargo
/// bin directory on `PATH` so that tools like `bpf-linker` installed there are found.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    if let Some(path) = path_with_cargo_bin() {
        cmd.env("PATH", path);
    }
    cmd
}

/// `PATH` with the cargo bin directory prepended, or `None` if it is already there.
fn path_with_cargo_bin() -> Option<OsString> {
    let bin = cargo_bin_dir()?;
    let path = env::var_os("PATH").unwrap_or_default();
    if env::split_paths(&path).any(|p| p == bin) {
        return None;
    }
    env::join_paths(std::iter::once(bin).chain(env::split_paths(&path))).ok()
}

/// The target folder: `$CARGO_TARGET_DIR`, or `target/` in the workspace root.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir), // join keeps an absolute path as it is
        None => workspace_root().join("target"),
    }
}

/// Prints `==> <command>`, runs it with inherited stdio and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    println!("==> {shown}");
    let status = cmd.status().with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs a query quietly and captures its output; fails only if it cannot be started.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null()).output().with_context(|| format!("could not start `{}`", display(cmd)))
}
