//! `dnsfilter status`: what is attached and what is in force.

use std::process::ExitCode;

use super::{EXIT_FAILURE, Global, daemon_pid, when};
use crate::daemon::state::State;

/// Show the interfaces, the mode, the list generation, the entries and the orders.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output (schema 1).
    #[arg(long, short = 'j')]
    json: bool,
}

pub fn run(g: &Global, a: Args) -> ExitCode {
    let conf = match g.conf_or_exit() {
        Ok(c) => c,
        Err(e) => return e,
    };
    let pins = &conf.paths.pins;
    let state = State::load(&conf.paths.state_dir).ok().flatten().unwrap_or_default();
    let header = pins.open().ok().and_then(|m| m.generation().ok().flatten()).and_then(|g| g.header());
    let matches = header.map(|h| h.generation == state.generation && h.seed == state.seed);
    // Listed entries (a name and its `*.name` count twice) when the state describes the
    // generation in force, else the table's own count.
    let entries = match matches {
        Some(true) => Some(state.entries),
        _ => header.map(|h| h.entries),
    };
    let ifaces: Vec<serde_json::Value> = pins
        .linked()
        .iter()
        .map(|i| {
            let info = pins.link_info(i).ok();
            let mode = state.interfaces.iter().find(|r| &r.name == i).map(|r| r.mode.name());
            serde_json::json!({
                "name": i,
                "mode": mode,
                "attached": info.is_some_and(|x| x.ifindex != 0),
                "link_id": info.map(|x| x.link_id),
                "prog_id": info.map(|x| x.prog_id),
            })
        })
        .collect();
    let pid = daemon_pid(&conf);
    let v = serde_json::json!({
        "schema": 1,
        "pins": pins.dir(),
        "loaded": pins.exists(),
        "daemon_pid": pid,
        "interfaces": ifaces,
        "generation": header.map(|h| h.generation),
        "entries": entries,
        "applied_at": (state.applied_at > 0).then(|| when(state.applied_at)),
        "state_matches_kernel": matches,
        "sources": state.sources,
        "orders": state.orders,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return if pins.exists() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILURE) };
    }
    if !pins.exists() {
        println!("dnsfilter is not loaded (nothing pinned at {})", pins.dir().display());
        return ExitCode::from(EXIT_FAILURE);
    }
    println!("pins:        {}", pins.dir().display());
    println!(
        "daemon:      {}",
        pid.map_or("not running (the filter keeps working)".to_string(), |p| format!("running, pid {p}"))
    );
    match header {
        Some(h) => println!(
            "generation:  {} with {} entries, applied {}",
            h.generation,
            entries.unwrap_or(h.entries),
            if state.applied_at > 0 { when(state.applied_at) } else { "(unknown)".into() }
        ),
        None => println!("generation:  none (everything passes)"),
    }
    if header.is_some_and(|h| h.generation != state.generation || h.seed != state.seed) {
        println!("warning:     the saved state does not describe the generation in force");
    }
    println!("interfaces:");
    if ifaces.is_empty() {
        println!("  (none)");
    }
    for i in &ifaces {
        println!(
            "  {:<16} {:<7} {}",
            i["name"].as_str().unwrap_or("?"),
            i["mode"].as_str().unwrap_or("?"),
            if i["attached"].as_bool() == Some(true) {
                format!("attached (link {}, program {})", i["link_id"], i["prog_id"])
            } else {
                "DEFUNCT (interface gone)".to_string()
            }
        );
    }
    println!("orders:");
    if state.orders.is_empty() {
        println!("  (none)");
    }
    let now = crate::time::now();
    for o in &state.orders {
        let phase = match (o.effective, o.expires) {
            (Some(t), _) if now < t => format!("scheduled from {}", when(t)),
            (_, Some(t)) if now >= t => format!("lifted on {}", when(t)),
            (_, Some(t)) => format!("in force until {}", when(t)),
            _ => "in force".to_string(),
        };
        let mode = if o.monitor { ", monitor only" } else { "" };
        let by = match (&o.authority, &o.reference) {
            (Some(a), Some(r)) => format!(" — {a}, {r}"),
            _ => String::new(),
        };
        println!("  {:<32} {:>8} entries  {phase}{mode}{by}", o.id, o.entries);
    }
    ExitCode::SUCCESS
}
