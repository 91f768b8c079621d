//! Command-line interface: one file per verb.

mod check;
mod run;

use std::{path::PathBuf, process::ExitCode};

use filter_common::table::{Action, Ede};

use crate::{lists, table::Rule};

/// Exit status for invalid list content (sysexits EX_DATAERR).
pub const EXIT_DATAERR: u8 = 65;
/// Exit status for a BPF load or attach failure (sysexits EX_OSERR).
pub const EXIT_OSERR: u8 = 71;

/// dnsfilter: an XDP DNS filter for court-ordered blocking at the ISP edge.
#[derive(clap::Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    Run(run::Args),
    Check(check::Args),
}

impl Cli {
    /// Runs the chosen verb.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Run(a) => run::run(a),
            Command::Check(a) => check::run(a),
        }
    }
}

/// How names from plain lists are treated.
#[derive(clap::Args, Debug, Clone)]
struct ListArgs {
    /// A plain list: one name per line, `#` comments. Each name blocks itself and every name
    /// below it. Repeatable.
    #[arg(long = "list", value_name = "FILE", required = true)]
    lists: Vec<PathBuf>,
    /// Action for names from plain lists.
    #[arg(long, default_value = "nxdomain", value_parser = parse_action)]
    action: Action,
    /// Extended DNS Error in answers to EDNS queries: censored (16, court orders), blocked (15)
    /// or none.
    #[arg(long, default_value = "censored", value_parser = parse_ede)]
    ede: Ede,
}

fn parse_action(s: &str) -> Result<Action, String> {
    Action::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
        format!("unknown action {s:?}; one of {}", names.join(", "))
    })
}

fn parse_ede(s: &str) -> Result<Ede, String> {
    match s {
        "censored" => Ok(Ede::Censored),
        "blocked" => Ok(Ede::Blocked),
        "none" => Ok(Ede::None),
        _ => Err(format!("unknown EDE {s:?}; one of censored, blocked, none")),
    }
}

impl ListArgs {
    /// Reads every list; either all rules, or every diagnostic of every file.
    fn load(&self) -> Result<Vec<Rule>, lists::ListErrors> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let defaults = lists::Defaults { action: self.action, ede: self.ede };
        for (group, file) in self.lists.iter().enumerate() {
            let group = u32::try_from(group).unwrap_or(u32::MAX);
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(lists::Diagnostic::new(file, 0, format!("cannot read: {e}")));
                    continue;
                }
            };
            match lists::parse(file, &text, lists::Format::detect(file), defaults) {
                Ok(p) => rules.extend(p.entries.into_iter().map(|l| Rule {
                    labels: l.labels,
                    scope: l.scope,
                    action: l.action,
                    ede: l.ede,
                    group,
                    stop: l.stop,
                })),
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() { Ok(rules) } else { Err(lists::ListErrors(errors)) }
    }
}
