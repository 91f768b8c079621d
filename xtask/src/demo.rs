//! `cargo xtask demo`: the filter doing its job on a testbed of its own. A client namespace
//! queries the ISP's resolver (Unbound) in an edge namespace, where `dnsfilter` runs with the
//! Allostreaming court orders of `xtask/demo/allostreaming.toml`; every answer is shown with
//! who gave it. Everything is torn down at the end, on Ctrl-C and on failure, unless `--keep`.
//!
//! `--fleet` runs the fleet instead: two edge nodes whose daemons are secondaries of an RPZ
//! zone on a Knot DNS primary (testbed/src/fleet.rs). A change committed on the primary is
//! enforced on both nodes, and the demo measures how long that takes.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use testbed::{
    CLIENT_IF, CLIENT_V4, CLIENT_V6, Client, EDGE_IF, EDGE_V4, EDGE_V6, Lab, Opts, Paths, PrimaryNet, RESOLVER_V4,
    RESOLVER_V6, Who,
    fleet::{self, Fleet, ZONE},
};

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
    /// Run the fleet instead: a Knot DNS primary serving the RPZ zone `rpz.isp.example` and two
    /// edge nodes whose daemons are its secondaries (TSIG, NOTIFY); a change committed on the
    /// primary is enforced on both nodes, and the time it takes is measured.
    #[arg(long, conflicts_with = "keep")]
    fleet: bool,
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
        Fleet::remove(FLEET, &bin, NODES);
        println!(
            "demo: torn down (namespaces {BASE}-client and {BASE}-edge with their processes, pins under {}, {}; \
             the fleet's namespaces, pins and folders, {FLEET}-*)",
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
    if options.fleet {
        return fleet_demo(&bin);
    }
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

/// The fleet demo's fixed name: nodes `dnsf-fleet-a` and `dnsf-fleet-b`, primary
/// `dnsf-fleet-pri1`.
const FLEET: &str = "dnsf-fleet";
/// Its number of edge nodes.
const NODES: usize = 2;
/// The change committed on the primary: allomovies.com and every name below it.
const CHANGE: [&str; 2] = ["allomovies.com 3600 CNAME .", "*.allomovies.com 3600 CNAME ."];

/// `cargo xtask demo --fleet`, after step 1: builds the fleet, shows the queries, commits a
/// change on the primary, times it to both nodes, shows the queries again, tears down.
fn fleet_demo(bin: &Path) -> Result<()> {
    Fleet::remove(FLEET, bin, NODES);
    let result = fleet_up(bin).and_then(|f| {
        fleet_queries(
            &f,
            5,
            "Queries from each node's client",
            &[
                ("allostreaming.com", "A", true),
                ("www.allostreaming.com", "AAAA", true),
                ("alloshare.com", "A", true),
                ("allomovies.com", "A", false),
            ],
        )?;
        fleet_change(&f)?;
        fleet_queries(
            &f,
            7,
            "The same clients, after the change",
            &[
                ("allomovies.com", "A", true),
                ("www.allomovies.com", "AAAA", true),
                ("allostreaming.com", "A", true),
                ("example.com", "A", false),
            ],
        )?;
        fleet_show(&f)?;
        Ok(f)
    });
    // On an error or Ctrl-C the fleet has been dropped, and so torn down, already.
    let f = result.context("the demo stopped (everything it started is removed)")?;
    step(9, "Tear down");
    drop(f);
    let left = Fleet::leftovers(FLEET, NODES);
    if !left.is_empty() {
        bail!("teardown left {}", left.join(", "));
    }
    println!(
        "  Removed both daemons and their pins, Unbound, knotd, the five namespaces with their veth pairs, \
         and the folders under {}.",
        std::env::temp_dir().display()
    );
    Ok(())
}

/// Steps 2 to 4: the namespaces, the primary, the nodes.
fn fleet_up(bin: &Path) -> Result<Fleet> {
    let f = Fleet::start(FLEET, bin, NODES, &fleet::allostreaming_zone(1, &[])).map_err(|e| anyhow!(e))?;

    step(2, "A primary and two edge nodes, in network namespaces");
    let mut rows = vec![["namespace", "interfaces", "runs"].map(String::from).to_vec()];
    let mut links = vec![format!("{} {}", testbed::primary::PRIMARY_IF, f.primary.primary_addr)];
    links.extend(f.uplinks.iter().map(|u| format!("{} {}", u.primary_if, u.primary_addr)));
    rows.push(vec![
        PrimaryNet::ns_name(FLEET, 1),
        format!("lo {}, {}", fleet::service_addr(), links.join(", ")),
        format!("knotd (Knot DNS) on {}: the ISP's primary", fleet::service_addr()),
    ]);
    for (i, node) in f.nodes.iter().enumerate() {
        let uplink = if i == 0 { &f.primary.peer_if } else { &f.uplinks[i - 1].peer_if };
        rows.push(vec![
            node.net.client.name.clone(),
            format!("{CLIENT_IF} {CLIENT_V4} {CLIENT_V6}"),
            "dig: a subscriber".into(),
        ]);
        rows.push(vec![
            node.net.edge.name.clone(),
            format!("{EDGE_IF} {EDGE_V4} {EDGE_V6}, {uplink} {}", node.uplink),
            format!("dnsfilter (XDP on {EDGE_IF}), Unbound (the resolver)"),
        ]);
    }
    print_table(&rows);
    println!("  Each node's client and edge are joined by a veth pair, and each edge to the primary by another.");
    println!(
        "  {} is the primary's service address: each node routes to it through its link, and the primary sends from it.",
        fleet::service_addr()
    );

    step(3, "The primary: Knot DNS serving rpz.isp.example, transfers and NOTIFY signed with TSIG");
    println!("  The key was made as `tsig-keygen -a hmac-sha256 {}` makes one; its secret is elided here.", f.key.name);
    println!("  $ cat knot.conf");
    print_indented(&f.knot_conf());
    println!("  $ cat {ZONE}.zone");
    print_indented(&std::fs::read_to_string(f.knot.zone_file(ZONE)).context("read the zone file")?);

    step(4, "The nodes: dnsfilter as a secondary of rpz.isp.example");
    let a = &f.nodes[0];
    println!(
        "  Node a runs, in {} (with pin, state and run folders of its own: two nodes share this host):",
        a.net.edge.name
    );
    println!("  $ {} run", testbed::cmd::display(&a.filter.filter().command()));
    println!("  $ cat {}", a.filter.config_path().display());
    print_indented(a.filter.config());
    println!("  {} (mode 0600; dnsfilter refuses a key file that others may read):", a.filter.key_file().display());
    let key_text = std::fs::read_to_string(a.filter.key_file()).context("read the key file")?;
    print_indented(&key_text.replace(&f.key.secret, "<secret>"));
    for node in &f.nodes[1..] {
        println!(
            "  Node {} runs the same config, but for its own notify_listen = [\"{}:{}\"].",
            node_letter(&node.name),
            node.uplink,
            fleet::NOTIFY_PORT,
        );
    }
    println!("  At start each daemon transferred the zone by AXFR; `dnsfilter zone status` on both:");
    for node in &f.nodes {
        let s = node.filter.zone_status(ZONE).map_err(|e| anyhow!(e))?;
        println!(
            "    node {}: serial {} enforced, transfers {}",
            node_letter(&node.name),
            s["serial_enforced"],
            s["transfers"]
        );
    }
    Ok(f)
}

/// The letter of a node (`a` of `dnsf-fleet-a`).
fn node_letter(name: &str) -> &str {
    name.rsplit('-').next().unwrap_or(name)
}

/// Steps 5 and 7: `dig` from each node's client for `queries` (name, type, whether the filter
/// should answer), and who answered; then checks that each Unbound received only the others.
fn fleet_queries(f: &Fleet, n: u32, title: &str, queries: &[(&str, &str, bool)]) -> Result<()> {
    step(n, title);
    let mut rows = vec![["node", "query", "answered by", "rcode", "answer", "evidence"].map(String::from).to_vec()];
    let mut unexpected = Vec::new();
    for node in &f.nodes {
        let before = node.unbound.total_queries().map_err(|e| anyhow!(e))?;
        for &(name, rtype, filter) in queries {
            testbed::check_interrupt().map_err(|e| anyhow!(e))?;
            let (_, reply) = fleet::dig(&node.net.client, EDGE_V4, name, rtype, false).map_err(|e| anyhow!(e))?;
            let who = reply.who(&[]);
            let evidence = match &who {
                Who::Filter(e) => e.clone(),
                Who::Resolver => "Unbound's local data".into(),
                Who::Nobody | Who::Unclear => "-".into(),
            };
            let addresses = reply.addresses();
            rows.push(vec![
                node_letter(&node.name).into(),
                format!("dig @{EDGE_V4} {name} {rtype}"),
                who.to_string(),
                reply.status.clone().unwrap_or_else(|| "-".into()),
                if addresses.is_empty() { "-".into() } else { addresses.join(" ") },
                evidence,
            ]);
            let right = if filter {
                matches!(who, Who::Filter(_)) && reply.status.as_deref() == Some("NXDOMAIN")
            } else {
                who == Who::Resolver
            };
            if !right {
                unexpected.push(format!("node {} {name} {rtype}:\n{}", node_letter(&node.name), reply.raw));
            }
        }
        let received = node.unbound.total_queries().map_err(|e| anyhow!(e))? - before;
        let allowed = queries.iter().filter(|q| !q.2).count() as u64;
        if received != allowed {
            unexpected.push(format!(
                "node {}: Unbound received {received} queries; only the {allowed} allowed ones should have reached it",
                node_letter(&node.name)
            ));
        }
    }
    print_table(&rows);
    println!(
        "  EDE 15 (Blocked) is the default EDE of a fleet zone's entries (`ede` of [[fleet.zone]]); \
         Unbound on each node received only the queries it answered (unbound-control stats_noreset)."
    );
    if !unexpected.is_empty() {
        bail!("{} answers were not what they should be:\n{}", unexpected.len(), unexpected.join("\n"));
    }
    Ok(())
}

/// Step 6: a commit on the primary, and how long until each node enforces it.
fn fleet_change(f: &Fleet) -> Result<()> {
    step(6, "A change on the primary: allomovies.com joins the zone");
    let before = f.knot.serial(ZONE).map_err(|e| anyhow!(e))?;
    println!("  $ knotc zone-begin {ZONE}");
    for r in CHANGE {
        let mut fields = r.split_whitespace();
        let owner = fields.next().unwrap_or_default();
        println!("  $ knotc zone-set {ZONE} {owner} {}", fields.collect::<Vec<_>>().join(" "));
    }
    println!("  $ knotc zone-commit {ZONE}");
    // Each node is polled with `dnsfilter zone status` from a thread of its own, from before
    // the transaction begins, so that a node faster than knotc's return is timed right.
    let timeout = Duration::from_secs(30) * testbed::time_scale();
    let start = Instant::now();
    let (serial, committed, times) = std::thread::scope(|scope| {
        let pollers: Vec<_> = f
            .nodes
            .iter()
            .map(|node| {
                scope.spawn(move || -> Result<(Duration, u32, usize)> {
                    let mut polls = 0;
                    loop {
                        testbed::check_interrupt().map_err(|e| anyhow!(e))?;
                        let serial = node.filter.serial(ZONE).map_err(|e| anyhow!(e))?;
                        polls += 1;
                        if let Some(s) = serial.filter(|s| *s != before) {
                            return Ok((start.elapsed(), s, polls));
                        }
                        if start.elapsed() > timeout {
                            bail!("node {}: still at serial {before} after {timeout:?}", node.name);
                        }
                    }
                })
            })
            .collect();
        let serial = f.knot.commit(ZONE, &CHANGE, &[]).map_err(|e| anyhow!(e));
        let committed = start.elapsed();
        let times: Vec<Result<(Duration, u32, usize)>> =
            pollers.into_iter().map(|p| p.join().unwrap_or_else(|_| Err(anyhow!("a poller panicked")))).collect();
        (serial, committed, times)
    });
    let serial = serial?;
    println!(
        "  Knot: serial {before} -> {serial}; it sent NOTIFY (over TCP) to both nodes. knotc took {committed:.0?}."
    );
    for (node, t) in f.nodes.iter().zip(times) {
        let (took, seen, polls) = t?;
        if seen != serial {
            bail!("node {}: serial {seen} enforced, not {serial}", node.name);
        }
        println!(
            "  node {}: `dnsfilter zone status` shows serial {serial} enforced {took:.0?} after `zone-begin` \
             (polled {polls} times, {:.0?} a poll)",
            node_letter(&node.name),
            took / u32::try_from(polls.max(1)).unwrap_or(1)
        );
    }
    let a = &f.nodes[0];
    println!("  What node a logged:");
    for line in a.filter.log().lines().filter(|l| l.contains("NOTIFY accepted") || l.contains("zone enforced")) {
        if line.contains(&format!("serial={serial}")) {
            print_indented(line.split_once("  INFO ").map_or(line, |(_, l)| l));
        }
    }
    Ok(())
}

/// Step 8: what node a says about the zone and a name in it.
fn fleet_show(f: &Fleet) -> Result<()> {
    step(8, "What node a says: zone status, explain");
    let a = &f.nodes[0];
    let verbs: [&[&str]; 2] = [&["zone", "status"], &["explain", "www.allomovies.com"]];
    for verb in verbs {
        println!("  $ dnsfilter {}", verb.join(" "));
        print_indented(&a.filter.filter().cli(verb).map_err(|e| anyhow!(e))?);
    }
    Ok(())
}
