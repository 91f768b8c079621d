//! `cargo xtask demo`: the filter doing its job on a testbed of its own. A client namespace
//! queries the ISP's resolver (Unbound) in an edge namespace, where `dnsfilter` runs with the
//! Allostreaming court orders of `xtask/demo/allostreaming.toml`; every answer is shown with
//! who gave it. Everything is torn down at the end, on Ctrl-C and on failure, unless `--keep`.
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use testbed::{CLIENT_IF, Client, EDGE_IF, EDGE_V4, EDGE_V6, Lab, Opts, Paths, RESOLVER_V4, RESOLVER_V6, Who};

use crate::{cmd, setup};

/// The demo's fixed name, so that `--down` and the next run find what a run left.
const BASE: &str = "dnsf-demo";
/// The orders file, relative to the workspace root.
const ORDERS: &str = "xtask/demo/allostreaming.toml";
/// The stop pages of [`ORDERS`].
const STOP_PAGES: &[&str] = &["192.0.2.81", "2001:db8::81", "192.0.2.80", "2001:db8::80"];

#[derive(clap::Args)]
pub struct Options {
    /// Leave the testbed up to try it by hand, and print how to enter it and tear it down.
    #[arg(long)]
    keep: bool,
    /// Tear down what a `--keep` run (or a killed one) left, then exit.
    #[arg(long, conflicts_with = "keep")]
    down: bool,
}

/// The queries of step 5: client, server, name, type, EDNS, and whether the filter should answer.
const QUERIES: &[(Client, &str, &str, &str, bool, bool)] = &[
    (Client::Dig, EDGE_V4, "allostreaming.com", "A", false, true),
    (Client::Dig, EDGE_V6, "allostreaming.com", "AAAA", false, true),
    (Client::Dig, EDGE_V4, "www.alloshowtv.com", "A", false, true),
    (Client::Dig, EDGE_V4, "alloshare.com", "A", true, true),
    (Client::Kdig, EDGE_V6, "www.allomovies.com", "AAAA", true, true),
    (Client::Dig, EDGE_V4, "allostreaming.example", "A", true, true),
    (Client::Dig, EDGE_V4, "allofilms.example", "A", true, true),
    (Client::Kdig, EDGE_V6, "www.allofilms.example", "AAAA", false, true),
    (Client::Dig, EDGE_V4, "example.com", "A", true, false),
    (Client::Kdig, EDGE_V6, "notallostreaming.com", "AAAA", true, false),
];

pub fn run(options: &Options) -> Result<()> {
    if !setup::is_root()? {
        bail!("the demo creates network namespaces and attaches XDP programs: run it as root");
    }
    let bin = cmd::target_dir().join("release").join("dnsfilter");
    let paths = Paths::of(BASE);
    if options.down {
        Lab::remove(BASE, &bin);
        println!(
            "demo: torn down (namespaces {BASE}-client and {BASE}-edge with their processes, pins under {}, {})",
            paths.pins.display(),
            paths.work.display()
        );
        return Ok(());
    }

    step(1, "Install what is missing and build");
    setup::run()?;
    cmd::run(cmd::cargo().args(["build", "--release"]))?;

    // From here on Ctrl-C unwinds through the guards of the lab, which tear everything down.
    testbed::catch_interrupts();
    Lab::remove(BASE, &bin);
    let result = up(&bin).and_then(|lab| {
        queries(&lab)?;
        show(&lab)?;
        Ok(lab)
    });
    // On an error or Ctrl-C the lab has been dropped, and so torn down, already.
    let lab = result.context("the demo stopped (everything it started is removed)")?;
    if options.keep {
        return keep(lab);
    }
    step(7, "Tear down");
    drop(lab);
    let left = Lab::leftovers(BASE);
    if !left.is_empty() {
        bail!("teardown left {}", left.join(", "));
    }
    println!(
        "  Removed the daemon and its pins, Unbound, both namespaces with the veth pair, and {}.",
        paths.work.display()
    );
    Ok(())
}

/// Steps 2 to 4: namespaces, resolver, filter.
fn up(bin: &Path) -> Result<Lab> {
    let text = std::fs::read_to_string(cmd::workspace_root().join(ORDERS)).with_context(|| format!("read {ORDERS}"))?;
    let lab = Lab::start(BASE, bin, &text, &[]).map_err(|e| anyhow!(e))?;

    step(2, "Network namespaces");
    println!("  {:<16} {CLIENT_IF:<12} {}, {}", lab.net.client.name, testbed::CLIENT_V4, testbed::CLIENT_V6);
    println!("  {:<16} {EDGE_IF:<12} {EDGE_V4}, {EDGE_V6}", lab.net.edge.name);
    println!("  veth pair {CLIENT_IF} <-> {EDGE_IF}; GRO and an XDP_PASS program on {CLIENT_IF}");

    step(3, "Unbound, the ISP's resolver, in the edge namespace");
    println!("  listening on {EDGE_V4} and {EDGE_V6} port 53; it answers every name itself:");
    println!("  A {RESOLVER_V4}, AAAA {RESOLVER_V6} (config {})", lab.unbound.conf().display());

    step(4, "dnsfilter on the edge interface, with the Allostreaming orders");
    println!("  dnsfilter run --iface {EDGE_IF} --list {}", lab.orders().display());
    println!("  (a copy of {ORDERS}; log {})", lab.filter.log_path().display());
    print_indented(&lab.filter.cli(&["status"]).map_err(|e| anyhow!(e))?);
    Ok(lab)
}

/// Step 5: real queries from the client, and who answered them.
fn queries(lab: &Lab) -> Result<()> {
    step(5, "Queries from the client namespace");
    let mut rows = vec![
        ["client", "server", "name", "type", "EDNS", "answered by", "rcode", "answer", "evidence"]
            .map(String::from)
            .to_vec(),
    ];
    let mut unexpected = Vec::new();
    for &(client, server, name, rtype, edns, filter) in QUERIES {
        testbed::check_interrupt().map_err(|e| anyhow!(e))?;
        let opts = Opts { edns, ..Opts::default() };
        let reply = client.query(&lab.net.client, server, name, rtype, &opts).map_err(|e| anyhow!(e))?;
        let who = reply.who(STOP_PAGES);
        let evidence = match &who {
            Who::Filter(e) => e.clone(),
            Who::Resolver => "Unbound's local data".into(),
            Who::Nobody | Who::Unclear => "-".into(),
        };
        let addresses = reply.addresses();
        rows.push(vec![
            client.name().into(),
            server.into(),
            name.into(),
            rtype.into(),
            if edns { "yes" } else { "no" }.into(),
            who.to_string(),
            reply.status.clone().unwrap_or_else(|| "-".into()),
            if addresses.is_empty() { "-".into() } else { addresses.join(" ") },
            evidence,
        ]);
        if matches!(who, Who::Filter(_)) != filter || matches!(who, Who::Nobody | Who::Unclear) {
            unexpected.push(format!("{} {name} {rtype}:\n{}", client.name(), reply.raw));
        }
    }
    print_table(&rows);
    let allowed = QUERIES.iter().filter(|q| !q.5).count();
    let received = lab.unbound.total_queries().map_err(|e| anyhow!(e))?;
    let logged: Vec<String> = lab
        .unbound
        .query_log()
        .map_err(|e| anyhow!(e))?
        .into_iter()
        .map(|q| format!("{} {}", q.name, q.rtype))
        .collect();
    println!(
        "\n  Unbound received {received} queries (unbound-control stats_noreset): the {allowed} for allowed names."
    );
    println!("  Its query log: {}", logged.join(", "));
    if !unexpected.is_empty() {
        bail!("{} answers were not from whom they should be:\n{}", unexpected.len(), unexpected.join("\n"));
    }
    if received != allowed as u64 {
        bail!("Unbound received {received} queries; only the {allowed} allowed ones should have reached it");
    }
    Ok(())
}

/// Step 6: the daemon's counters and the provenance of two blocks.
fn show(lab: &Lab) -> Result<()> {
    step(6, "What the filter says: stats and explain");
    let verbs: [&[&str]; 3] =
        [&["stats"], &["explain", "www.allostreaming.com"], &["explain", "allostreaming.example"]];
    for verb in verbs {
        println!("  $ dnsfilter {}", verb.join(" "));
        print_indented(&lab.filter.cli(verb).map_err(|e| anyhow!(e))?);
    }
    Ok(())
}

/// `--keep`: leaves everything running and says how to use it and how to remove it.
fn keep(lab: Lab) -> Result<()> {
    let client = lab.net.client.name.clone();
    let dnsfilter = testbed::cmd::display(&lab.filter.command());
    let orders = lab.orders();
    lab.keep(BASE).map_err(|e| anyhow!(e))?;
    println!("\nThe testbed stays up. Query it from the client namespace:");
    println!("  ip netns exec {client} dig @{EDGE_V4} allostreaming.com");
    println!("  ip netns exec {client} kdig @{EDGE_V6} allofilms.example AAAA +edns");
    println!("Ask the filter:");
    println!("  {dnsfilter} stats");
    println!("  {dnsfilter} explain alloshare.com");
    println!("Edit {} and the daemon reloads it within a second.", orders.display());
    println!("Logs and configs: {}/", Paths::of(BASE).work.display());
    println!("Tear it down:\n  cargo xtask demo --down");
    Ok(())
}

fn step(n: u32, title: &str) {
    println!("\n=== {n}. {title}");
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

/// Prints rows with every column as wide as its widest cell, the first row as the header.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("  {}", cells.join("  ").trim_end());
        if i == 0 {
            let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("  {}", rules.join("  "));
        }
    }
}
