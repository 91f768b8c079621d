//! `dnsfilter check`: validates lists without touching the kernel.

use std::{path::PathBuf, process::ExitCode};

use filter_common::table::{Action, Ede};

use super::{EXIT_FAILURE, Global};
use crate::{
    conf::{self, merge_settings},
    daemon::compile::{self, Source},
    lists::{Defaults, Format},
    time,
};

/// Validate lists (and the guards against over-blocking) without touching the kernel: exit 0
/// when clean, 1 with `file:line: reason` for every problem. Without FILE, checks the
/// config's lists.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// List files to check (default: the lists of the config file).
    files: Vec<PathBuf>,
    /// Format of the FILEs, instead of detecting it from the extension.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Action for plain lists and hosts files [config: action].
    #[arg(long, value_parser = conf::action_arg)]
    action: Option<Action>,
    /// EDE for plain lists and hosts files [config: ede].
    #[arg(long, value_parser = conf::ede_arg)]
    ede: Option<Ede>,
}

pub fn run(g: &Global, a: Args) -> ExitCode {
    let conf = match g.conf_or_exit() {
        Ok(c) => c,
        Err(e) => return e,
    };
    let files: Vec<(PathBuf, Format)> = if a.files.is_empty() {
        conf.list_files()
    } else {
        a.files.iter().map(|f| (f.clone(), a.format.unwrap_or_else(|| Format::detect(f)))).collect()
    };
    if files.is_empty() {
        eprintln!("error: no list to check (give files, or lists in the config)");
        return ExitCode::from(EXIT_FAILURE);
    }
    let defaults =
        Defaults { action: a.action.unwrap_or(conf.defaults.action), ede: a.ede.unwrap_or(conf.defaults.ede) };
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for (f, fmt) in &files {
        match Source::read(f, *fmt) {
            Ok(s) => sources.push(s),
            Err(d) => errors.push(d.to_string()),
        }
    }
    let compiled = if errors.is_empty() {
        match compile::compile(&sources, defaults, &conf.guards, time::now()) {
            Ok(c) => Some(c),
            Err(d) => {
                errors.extend(d.iter().map(ToString::to_string));
                None
            }
        }
    } else {
        None
    };
    if let Some(c) = &compiled {
        if let Err(e) = merge_settings(&conf.settings, &c.settings, &Default::default())
            .and_then(|s| s.to_config().map(|_| ()).map_err(|e| e.to_string()))
        {
            errors.push(format!("settings: {e}"));
        }
        if c.entries.len() > conf.capacity {
            errors.push(format!("{} entries exceed the capacity of {}", c.entries.len(), conf.capacity));
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    match compiled {
        Some(c) if errors.is_empty() => {
            for d in &c.refused {
                println!("left out: {d}");
            }
            for d in &c.overrides {
                println!("override: {d}");
            }
            let in_force = c.orders.iter().filter(|o| o.in_force).count();
            println!(
                "ok: {} entries in force now from {in_force} of {} orders in {} file(s)",
                c.entries.len(),
                c.orders.len(),
                sources.len()
            );
            if let Some(t) = c.next_change {
                println!("next change: {}", time::rfc3339(t));
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{} problem(s); nothing would be loaded", errors.len());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
