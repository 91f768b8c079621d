//! `dnsfilter stats`: the pinned counters, by outcome and by order × action.

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use super::{EXIT_FAILURE, Global};
use crate::{conf::Conf, daemon::state::State};

/// Show the counters: global outcomes and hits per order and action. Works whether or not the
/// daemon runs.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output (schema 1); with --watch, one JSON object per line.
    #[arg(long, short = 'j')]
    json: bool,
    /// Print rates per second, every INTERVAL seconds, until interrupted.
    #[arg(long, short = 'w')]
    watch: bool,
    /// Seconds between --watch samples.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
}

/// One reading of every counter.
struct Sample {
    outcomes: Vec<(&'static str, u64)>,
    /// (order, action) → hits.
    orders: BTreeMap<(String, String), u64>,
    generation: Option<u64>,
}

fn sample(conf: &Conf) -> Result<Sample, String> {
    let maps = conf.paths.pins.open().map_err(|e| e.to_string())?;
    let outcomes = maps.counters().map_err(|e| e.to_string())?.into_iter().map(|(c, v)| (c.name(), v)).collect();
    let hits = maps.group_hits().map_err(|e| e.to_string())?;
    let state = State::load(&conf.paths.state_dir).map_err(|e| e.to_string())?.unwrap_or_default();
    let mut orders = BTreeMap::new();
    for (g, slot) in state.groups.slots.iter().enumerate() {
        if let Some((o, a)) = slot {
            orders.insert((o.clone(), a.clone()), hits.get(g).copied().unwrap_or(0));
        }
    }
    let generation = maps.generation().ok().flatten().and_then(|g| g.header()).map(|h| h.generation);
    Ok(Sample { outcomes, orders, generation })
}

fn json(s: &Sample, rates: Option<(&Sample, f64)>) -> serde_json::Value {
    let rate = |now: u64, before: Option<u64>, dt: f64| before.map(|b| now.saturating_sub(b) as f64 / dt);
    let outcomes: serde_json::Map<String, serde_json::Value> = s
        .outcomes
        .iter()
        .map(|(n, v)| {
            let val = match rates {
                Some((p, dt)) => {
                    serde_json::json!(
                        rate(*v, p.outcomes.iter().find(|(pn, _)| pn == n).map(|x| x.1), dt).unwrap_or(0.0)
                    )
                }
                None => serde_json::json!(v),
            };
            (n.to_string(), val)
        })
        .collect();
    let orders: Vec<serde_json::Value> = s
        .orders
        .iter()
        .map(|((o, a), v)| match rates {
            Some((p, dt)) => serde_json::json!({"order": o, "action": a, "per_second": rate(*v, Some(p.orders.get(&(o.clone(), a.clone())).copied().unwrap_or(0)), dt).unwrap_or(0.0)}),
            None => serde_json::json!({"order": o, "action": a, "hits": v}),
        })
        .collect();
    serde_json::json!({
        "schema": 1,
        "time": crate::time::rfc3339(crate::time::now()),
        "generation": s.generation,
        if rates.is_some() { "outcomes_per_second" } else { "outcomes" }: outcomes,
        "orders": orders,
    })
}

fn print_text(s: &Sample, rates: Option<(&Sample, f64)>) {
    let unit = if rates.is_some() { "/s" } else { "" };
    println!("outcomes{}:", if rates.is_some() { " (per second)" } else { "" });
    let mut any = false;
    for (n, v) in &s.outcomes {
        let shown = match rates {
            Some((p, dt)) => {
                p.outcomes.iter().find(|(pn, _)| pn == n).map(|x| v.saturating_sub(x.1) as f64 / dt).unwrap_or(0.0)
            }
            None => *v as f64,
        };
        if shown > 0.0 {
            any = true;
            println!("  {n:<24} {shown:>14.0}{unit}");
        }
    }
    if !any {
        println!("  (all zero)");
    }
    println!("orders:");
    if s.orders.is_empty() {
        println!("  (none)");
    }
    for ((o, a), v) in &s.orders {
        let shown = match rates {
            Some((p, dt)) => v.saturating_sub(p.orders.get(&(o.clone(), a.clone())).copied().unwrap_or(0)) as f64 / dt,
            None => *v as f64,
        };
        println!("  {o:<40} {a:<10} {shown:>14.0}{unit}");
    }
}

pub fn run(g: &Global, a: Args) -> ExitCode {
    let conf = match g.conf_or_exit() {
        Ok(c) => c,
        Err(e) => return e,
    };
    let first = match sample(&conf) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if !a.watch {
        if a.json {
            println!("{}", serde_json::to_string_pretty(&json(&first, None)).unwrap_or_default());
        } else {
            print_text(&first, None);
        }
        return ExitCode::SUCCESS;
    }
    let interval = Duration::from_secs_f64(a.interval.max(0.1));
    let mut prev = first;
    let mut last = std::time::Instant::now();
    loop {
        std::thread::sleep(interval);
        let s = match sample(&conf) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        let dt = last.elapsed().as_secs_f64();
        last = std::time::Instant::now();
        if a.json {
            println!("{}", json(&s, Some((&prev, dt))));
        } else {
            println!("--- {}", crate::time::rfc3339(crate::time::now()));
            print_text(&s, Some((&prev, dt)));
        }
        prev = s;
    }
}
