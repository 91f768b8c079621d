//! Command-line interface: one file per verb.

mod check;
mod detach;
mod explain;
mod reload;
mod run;
mod stats;
mod status;
mod zone;

use std::{path::PathBuf, process::ExitCode};

use crate::conf::{Conf, ConfError};

/// Exit status for a generic runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for invalid list content (sysexits EX_DATAERR).
pub const EXIT_DATAERR: u8 = 65;
/// Exit status for a BPF load or attach failure (sysexits EX_OSERR).
pub const EXIT_OSERR: u8 = 71;
/// Exit status for a bad configuration (sysexits EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// dnsfilter: an XDP DNS filter for court-ordered blocking at the ISP edge.
#[derive(clap::Parser, Debug)]
#[command(name = "dnsfilter", version = crate::VERSION, about)]
pub struct Cli {
    /// Config file [default: /etc/dnsfilter/dnsfilter.toml, which may be absent].
    #[arg(long, short = 'c', global = true, env = "DNSFILTER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// bpffs folder of the pins [config: pin_dir; default /sys/fs/bpf/dnsfilter].
    #[arg(long, global = true, value_name = "DIR")]
    pin_dir: Option<PathBuf>,
    /// Folder of the saved state [config: state_dir; default /var/lib/dnsfilter].
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Folder of the pid file [config: run_dir; default /run/dnsfilter].
    #[arg(long, global = true, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    Run(Box<run::Args>),
    Check(check::Args),
    Status(status::Args),
    Stats(stats::Args),
    Explain(explain::Args),
    Detach(detach::Args),
    Reload(reload::Args),
    Zone(zone::Args),
}

impl Cli {
    /// Runs the chosen verb.
    pub fn run(self) -> ExitCode {
        let global = Global {
            config: self.config.clone(),
            pin_dir: self.pin_dir.clone(),
            state_dir: self.state_dir.clone(),
            run_dir: self.run_dir.clone(),
        };
        match self.command {
            Command::Run(a) => run::run(&global, a),
            Command::Check(a) => check::run(&global, a),
            Command::Status(a) => status::run(&global, a),
            Command::Stats(a) => stats::run(&global, a),
            Command::Explain(a) => explain::run(&global, a),
            Command::Detach(a) => detach::run(&global, a),
            Command::Reload(a) => reload::run(&global, a),
            Command::Zone(a) => zone::run(&global, a),
        }
    }
}

/// Options every verb shares.
#[derive(Clone, Debug)]
struct Global {
    config: Option<PathBuf>,
    pin_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    run_dir: Option<PathBuf>,
}

impl Global {
    /// The configuration: the file, then the global path flags.
    fn conf(&self) -> Result<Conf, ConfError> {
        let mut c = Conf::load(self.config.as_deref())?;
        if let Some(p) = &self.pin_dir {
            c.paths.pins = crate::loader::Pins::new(p);
        }
        if let Some(p) = &self.state_dir {
            c.paths.state_dir = p.clone();
        }
        if let Some(p) = &self.run_dir {
            c.paths.run_dir = p.clone();
        }
        Ok(c)
    }

    /// [`Global::conf`], printing the error and giving the exit status on failure.
    fn conf_or_exit(&self) -> Result<Conf, ExitCode> {
        self.conf().map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        })
    }
}

/// The pid of the running daemon, from its pid file, if it is alive.
fn daemon_pid(conf: &Conf) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(conf.paths.pid_file()).ok()?.trim().parse().ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

/// Formats Unix seconds for people.
fn when(t: i64) -> String {
    crate::time::rfc3339(t)
}
