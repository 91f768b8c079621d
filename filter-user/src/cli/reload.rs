//! `dnsfilter reload`: asks the running daemon to re-read its config and lists.

use std::process::ExitCode;

use super::{EXIT_FAILURE, Global, daemon_pid};

/// Ask the running daemon to re-read its config and lists (SIGHUP; `--force` sends SIGUSR2,
/// which also lets an update past the change-share guard).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Apply even if the update changes more than max_change_share of the entries.
    #[arg(long)]
    force: bool,
}

pub fn run(g: &Global, a: Args) -> ExitCode {
    let conf = match g.conf_or_exit() {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(pid) = daemon_pid(&conf) else {
        eprintln!("error: no running daemon (no live pid in {})", conf.paths.pid_file().display());
        return ExitCode::from(EXIT_FAILURE);
    };
    let sig = if a.force { libc::SIGUSR2 } else { libc::SIGHUP };
    // SAFETY: sending a signal to a pid read from our own pid file.
    if unsafe { libc::kill(pid, sig) } != 0 {
        eprintln!("error: signalling pid {pid}: {}", std::io::Error::last_os_error());
        return ExitCode::from(EXIT_FAILURE);
    }
    println!(
        "reload{} requested from pid {pid}; see its log, `dnsfilter status` or the audit log",
        if a.force { " (forced)" } else { "" }
    );
    ExitCode::SUCCESS
}
