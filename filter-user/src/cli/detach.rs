//! `dnsfilter detach`: removes the filter from interfaces, and its pins once no interface
//! uses them.

use std::process::ExitCode;

use super::{EXIT_FAILURE, EXIT_OSERR, Global, daemon_pid};
use crate::daemon::state::State;

/// Remove the filter from interfaces; once no interface uses it, remove its pins too.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface to detach (repeatable).
    #[arg(long = "iface", value_name = "IF", required_unless_present = "all")]
    ifaces: Vec<String>,
    /// Detach from every interface.
    #[arg(long, conflicts_with = "ifaces")]
    all: bool,
}

pub fn run(g: &Global, a: Args) -> ExitCode {
    let conf = match g.conf_or_exit() {
        Ok(c) => c,
        Err(e) => return e,
    };
    let pins = &conf.paths.pins;
    let linked = pins.linked();
    let targets = if a.all { linked.clone() } else { a.ifaces };
    let mut status = ExitCode::SUCCESS;
    for iface in &targets {
        if !linked.contains(iface) {
            eprintln!(
                "error: interface {iface}: not attached by dnsfilter (no pin at {})",
                pins.link_path(iface).display()
            );
            status = ExitCode::from(EXIT_FAILURE);
            continue;
        }
        match pins.detach(iface) {
            Ok(()) => println!("detached from {iface}"),
            Err(e) => {
                eprintln!("error: {e}");
                status = ExitCode::from(EXIT_OSERR);
            }
        }
    }
    if let Ok(Some(mut s)) = State::load(&conf.paths.state_dir) {
        s.interfaces.retain(|r| !targets.contains(&r.name) || pins.linked().contains(&r.name));
        if let Err(e) = s.save(&conf.paths.state_dir, &[]) {
            eprintln!("warning: {e}");
        }
    }
    let daemon = daemon_pid(&conf);
    if pins.linked().is_empty() && pins.exists() && daemon.is_none() {
        match pins.remove_all() {
            Ok(()) => println!("no interface uses the filter any more; removed its pins under {}", pins.root.display()),
            Err(e) => {
                eprintln!("error: {e}");
                status = ExitCode::from(EXIT_OSERR);
            }
        }
    }
    if let Some(pid) = daemon {
        eprintln!(
            "warning: the daemon (pid {pid}) is running: its pins stay, and it re-attaches the interfaces of its \
             configuration at its next reload or restart; remove them from the config, or stop it first"
        );
    }
    status
}
