//! `dnsfilter zone`: the fleet zones this node is a secondary of.

use std::{process::ExitCode, time::Duration};

use super::{EXIT_CONFIG, EXIT_FAILURE, Global, when};
use crate::fleet::{
    control,
    run::{Status, ZoneStatus},
};

/// Fleet zones: status, or resync one from its primary.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Verb,
}

#[derive(clap::Subcommand, Debug)]
enum Verb {
    /// Each zone: serial enforced, serial at the primary, last success, stale, held, transfers.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fetch the whole zone now by AXFR, whatever its serial (this is how a primary whose
    /// serial went backwards is accepted), and wait for the result.
    Resync {
        /// The zone's name.
        zone: String,
        /// Apply even if it changes more than max_change_share of the entries.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(g: &Global, a: Args) -> ExitCode {
    let conf = match g.conf_or_exit() {
        Ok(c) => c,
        Err(e) => return e,
    };
    if conf.fleet.zones.is_empty() {
        eprintln!("error: no [[fleet.zone]] in the config");
        return ExitCode::from(EXIT_CONFIG);
    }
    let sock = conf.paths.control_socket();
    match a.command {
        Verb::Resync { zone, force } => {
            if conf.fleet.zone(&zone).is_none() {
                eprintln!("error: {zone}: not a configured fleet zone");
                return ExitCode::from(EXIT_CONFIG);
            }
            let line = format!("resync {zone}{}", if force { " force" } else { "" });
            match control::request(&sock, &line, Duration::from_secs(3600)) {
                Ok(v) if v["ok"] == true => {
                    println!("{}: {}", v["zone"].as_str().unwrap_or(&zone), v["result"].as_str().unwrap_or("done"));
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    eprintln!("error: {zone}: {}", v["error"].as_str().unwrap_or("refused"));
                    ExitCode::from(EXIT_FAILURE)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Verb::Status { json } => {
            // Live from the daemon; else what the state folder holds.
            let (status, live) = match control::request(&sock, "status", Duration::from_secs(10)) {
                Ok(v) => match serde_json::from_value::<Status>(v) {
                    Ok(s) => (s, true),
                    Err(e) => {
                        eprintln!("error: bad status from the daemon: {e}");
                        return ExitCode::from(EXIT_FAILURE);
                    }
                },
                Err(_) => {
                    let mut s = Status::default();
                    for z in &conf.fleet.zones {
                        s.zones.insert(z.name.clone(), ZoneStatus::stored(&conf.paths.state_dir, &z.name));
                    }
                    (s, false)
                }
            };
            if json {
                let mut v = serde_json::to_value(&status).unwrap_or_default();
                v["live"] = live.into();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return ExitCode::SUCCESS;
            }
            if !live {
                println!("(the daemon is not running: stored copies only)");
            }
            for z in status.zones.values() {
                let serial = |s: Option<u32>| s.map_or("-".to_string(), |s| s.to_string());
                println!("zone {}", z.zone);
                println!("  serial enforced   {}", serial(z.serial_enforced));
                println!(
                    "  serial at primary {}{}",
                    serial(z.serial_primary),
                    z.primary.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
                );
                let t = |t: i64| if t > 0 { when(t) } else { "never".into() };
                println!("  last success      {}", t(z.last_success));
                if live {
                    println!("  next check        {}", t(z.next_check));
                }
                println!(
                    "  stale             {}",
                    if z.stale { "YES (still enforcing the last good copy)" } else { "no" }
                );
                if let Some(h) = &z.held {
                    println!("  held              {h}");
                }
                if let Some(e) = &z.last_error {
                    println!("  last error        {e}");
                }
                if !z.transfers.is_empty() {
                    let t: Vec<String> = z.transfers.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("  transfers         {}", t.join(" "));
                }
                if live {
                    println!("  notify            accepted={} refused={}", z.notify_accepted, z.notify_refused);
                }
            }
            ExitCode::SUCCESS
        }
    }
}
