//! `dnsfilter explain`: which entry and order apply to a name, with provenance.

use std::process::ExitCode;

use filter_common::table::{Action, Entry};

use super::{EXIT_FAILURE, Global, when};
use crate::{
    conf::Conf,
    daemon::{compile::Applied, entry_json, state::State},
    lists::How,
    names,
    table::Scope,
};

/// Say which entry and order apply to NAME, with their provenance and action, or that none
/// does. Reads the generation in force in the kernel; the provenance comes from the saved
/// copies of the sources it was built from.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The name, as a client would query it (Unicode names are mapped to A-labels).
    name: String,
    /// Machine-readable output (schema 1).
    #[arg(long, short = 'j')]
    json: bool,
}

fn scope_of(e: &Entry, exact: bool) -> Option<Scope> {
    use filter_common::table::{FLAG_BELOW, FLAG_SELF};
    let (s, b) = (e.flags & FLAG_SELF != 0, e.flags & FLAG_BELOW != 0);
    match (exact, s, b) {
        (true, true, true) | (false, true, true) => Some(Scope::Subtree),
        (true, true, false) => Some(Scope::Exact),
        (false, _, true) => Some(Scope::Below),
        _ => None,
    }
}

/// The listed entries behind a kernel entry matched at suffix `suffix`, from the saved copies
/// of the sources of the generation in force.
fn provenance(conf: &Conf, state: &State, suffix: &[Vec<u8>], action: Action) -> Vec<Applied> {
    let entries = crate::daemon::rebuild(state, conf, &conf.paths.state_dir).unwrap_or_default();
    entries.into_iter().filter(|e| e.labels == suffix && e.action == action).collect()
}

pub fn run(g: &Global, a: Args) -> ExitCode {
    let conf = match g.conf_or_exit() {
        Ok(c) => c,
        Err(e) => return e,
    };
    let labels = match names::canonical(&a.name) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {:?}: {e}", a.name);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let name = names::display(&labels);
    let maps = match conf.paths.pins.open() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let generation = match maps.generation() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let gen_no = generation.as_ref().and_then(|g| g.header()).map(|h| h.generation);
    let hit = generation.as_ref().and_then(|g| g.lookup(&labels));
    let Some((k, entry)) = hit else {
        if a.json {
            println!("{}", serde_json::json!({"schema": 1, "name": name, "generation": gen_no, "match": null}));
        } else {
            println!(
                "{name}: no entry applies; it is resolved normally (generation {})",
                gen_no.map_or("none".into(), |g| g.to_string())
            );
        }
        return ExitCode::SUCCESS;
    };
    let suffix = labels.get(k..).unwrap_or_default().to_vec();
    let matched = names::display(&suffix);
    let scope = scope_of(&entry, k == 0);
    let state = State::load(&conf.paths.state_dir).ok().flatten().unwrap_or_default();
    let mut behind = provenance(&conf, &state, &suffix, entry.action);
    behind.sort_by_key(|e| Some(e.scope) != scope);
    let (ede, ede_name, ede_code) = match entry.ede() {
        filter_common::table::Ede::Censored => ("EDE 16 Censored", "censored", Some(16)),
        filter_common::table::Ede::Blocked => ("EDE 15 Blocked", "blocked", Some(15)),
        filter_common::table::Ede::None => ("no EDE", "none", None),
    };
    let stop = match generation.as_ref().and_then(|g| g.stop(&entry)) {
        Some(s) => Some((s, "its own")),
        None => maps.config().ok().map(|c| (crate::table::Stop::from_record(&c.stop_record()), "the global")),
    };
    if a.json {
        let orders: Vec<_> = behind
            .iter()
            .map(|e| {
                let mut v = entry_json(e);
                if let Some(o) = state.orders.iter().find(|o| o.id == e.order) {
                    let mut info = serde_json::to_value(o).unwrap_or_default();
                    info["effective"] = o.effective.map(when).into();
                    info["expires"] = o.expires.map(when).into();
                    v["order_info"] = info;
                }
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema": 1, "name": name, "generation": gen_no,
                "match": {
                    "entry": matched, "action": entry.action.name(), "ede": ede_name, "ede_code": ede_code,
                    "group": entry.group,
                    "stop": (entry.action == Action::Redirect).then(|| stop.as_ref().map(|(s, whose)| serde_json::json!({
                        "v4": s.v4, "v6": s.v6, "own": *whose == "its own",
                    }))).flatten(),
                },
                "listed": orders,
            }))
            .unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let what = match entry.action {
        Action::Allow => "allowed (an exception: resolved normally)".to_string(),
        Action::Monitor => "counted only (monitor order: resolved normally)".to_string(),
        Action::Redirect => {
            let addr = |s: &crate::table::Stop| {
                let v4 = s.v4.map_or("NODATA".to_string(), |a| a.to_string());
                let v6 = s.v6.map_or("NODATA".to_string(), |a| a.to_string());
                format!("A {v4}, AAAA {v6}")
            };
            match &stop {
                Some((s, whose)) => format!("redirect to {whose} stop page: {}; other types NODATA ({ede})", addr(s)),
                None => format!("redirect ({ede})"),
            }
        }
        other => format!("{} ({ede})", other.name()),
    };
    println!("{name}: {what}");
    let scope_text = match scope {
        Some(Scope::Subtree) => "the name and every name below it",
        Some(Scope::Exact) => "that name only",
        Some(Scope::Below) => "names below it only",
        None => "?",
    };
    println!("  entry:   {matched} ({scope_text}), generation {}", gen_no.unwrap_or(0));
    if behind.is_empty() {
        println!("  listed:  (provenance unavailable: the saved state does not describe this generation)");
    }
    for e in &behind {
        println!("  order:   {}", e.order);
        if let Some(o) = state.orders.iter().find(|o| o.id == e.order) {
            if let (Some(au), Some(r), Some(d)) = (&o.authority, &o.reference, &o.decided) {
                println!("           {au}, {r}, decided {d}");
            }
            match (o.effective, o.expires) {
                (Some(f), Some(t)) => println!("           in force from {} until {}", when(f), when(t)),
                (Some(f), None) => println!("           in force from {}", when(f)),
                (None, Some(t)) => println!("           in force until {}", when(t)),
                (None, None) => {}
            }
        }
        match &e.how {
            How::Named => println!("  how:     named in the decision"),
            How::Mirror { approved_by, approved, reference } => {
                println!(
                    "  how:     mirror added after the decision, approved by {approved_by} on {approved} ({reference})"
                )
            }
            How::Exception => println!("  how:     allow exception of the order"),
            How::Listed => println!("  how:     listed"),
        }
        if e.action == Action::Monitor {
            println!("  mode:    monitor (would {})", e.intended.name());
        }
        if let Some(r) = &e.override_reason {
            println!("  override: {r}");
        }
        println!("  source:  {}", e.loc);
    }
    ExitCode::SUCCESS
}
