//! `cargo xtask demo`: the filter doing its job on a testbed of its own. A client namespace
//! queries the ISP's resolver (Unbound) in an edge namespace, where `dnsfilter` runs with the
//! Allostreaming court orders of `xtask/demo/allostreaming.toml`; every answer is shown with
//! who gave it. Everything is torn down at the end, on Ctrl-C and on failure, unless `--keep`.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use testbed::{
    CLIENT_IF, Client, DnsFilter, EDGE_IF, EDGE_V4, EDGE_V6, Opts, RESOLVER_V4, RESOLVER_V6, Testbed, Unbound, Who,
    WorkDir,
};

use crate::{cmd, setup};

/// The demo's fixed names, so that `--down` and the next run find what a run left.
const BASE: &str = "dnsf-demo";
const PIN_DIR: &str = "/sys/fs/bpf/dnsfilter-demo";
const XDP_PIN: &str = "/sys/fs/bpf/dnsfilter-demo-client-xdp";
const WORK_DIR: &str = "/tmp/dnsfilter-demo";
/// The orders file, relative to the workspace root.
const ORDERS: &str = "xtask/demo/allostreaming.toml";
/// The stop pages of [`ORDERS`].
const STOP_PAGES: &[&str] = &["192.0.2.80", "2001:db8::80"];

#[derive(clap::Args)]
pub struct Options {
    /// Leave the testbed up to try it by hand, and print how to enter it and tear it down.
    #[arg(long)]
    keep: bool,
    /// Tear down what a `--keep` run (or a killed one) left, then exit.
    #[arg(long, conflicts_with = "keep")]
    down: bool,
}

/// One query of step 5 and who should answer it.
struct Query {
    client: Client,
    server: &'static str,
    name: &'static str,
    rtype: &'static str,
    edns: bool,
    filter: bool,
}

const fn q(
    client: Client,
    server: &'static str,
    name: &'static str,
    rtype: &'static str,
    edns: bool,
    filter: bool,
) -> Query {
    Query { client, server, name, rtype, edns, filter }
}

const QUERIES: &[Query] = &[
    q(Client::Dig, EDGE_V4, "allostreaming.com", "A", false, true),
    q(Client::Dig, EDGE_V6, "allostreaming.com", "AAAA", false, true),
    q(Client::Dig, EDGE_V4, "www.alloshowtv.com", "A", false, true),
    q(Client::Dig, EDGE_V4, "alloshare.com", "A", true, true),
    q(Client::Kdig, EDGE_V6, "www.allomovies.com", "AAAA", true, true),
    q(Client::Dig, EDGE_V4, "allostreaming.example", "A", true, true),
    q(Client::Dig, EDGE_V4, "allofilms.example", "A", true, true),
    q(Client::Kdig, EDGE_V6, "www.allofilms.example", "AAAA", false, true),
    q(Client::Dig, EDGE_V4, "example.com", "A", true, false),
    q(Client::Kdig, EDGE_V6, "notallostreaming.com", "AAAA", true, false),
];

/// What runs during the demo, torn down in field order when dropped: the daemon (and its pins),
/// Unbound, the namespaces, the scratch folder.
struct Bed {
    filter: DnsFilter,
    unbound: Unbound,
    net: Testbed,
    work: WorkDir,
}

pub fn run(options: &Options) -> Result<()> {
    if !setup::is_root()? {
        bail!("the demo creates network namespaces and attaches XDP programs: run it as root");
    }
    let bin = cmd::target_dir().join("release").join("dnsfilter");
    if options.down {
        down(&bin);
        println!("demo: torn down (namespaces {BASE}-client and {BASE}-edge, their processes, pins under {PIN_DIR})");
        return Ok(());
    }

    step(1, "Install what is missing and build");
    setup::run()?;
    cmd::run(cmd::cargo().args(["build", "--release"]))?;

    // From here on Ctrl-C unwinds through the guards, which tear everything down.
    testbed::catch_interrupts();
    down(&bin);
    let bed = up(&bin)?;
    queries(&bed)?;
    show(&bed)?;

    if options.keep {
        keep(bed)?;
        return Ok(());
    }
    step(7, "Tear down");
    drop(bed);
    let left: Vec<String> = [Testbed::client_ns(BASE), Testbed::edge_ns(BASE)]
        .into_iter()
        .filter(|n| testbed::Netns::exists(n))
        .chain([PIN_DIR, XDP_PIN, WORK_DIR].into_iter().filter(|p| Path::new(p).exists()).map(String::from))
        .collect();
    if !left.is_empty() {
        bail!("teardown left {}", left.join(", "));
    }
    println!("Removed the daemon and its pins, Unbound, both namespaces with the veth pair, and {WORK_DIR}.");
    Ok(())
}

/// Steps 2 to 4: namespaces, resolver, filter.
fn up(bin: &Path) -> Result<Bed> {
    step(2, "Network namespaces");
    let work = WorkDir::create(WORK_DIR).map_err(|e| anyhow!(e))?;
    let net = Testbed::create(BASE).map_err(|e| anyhow!(e))?;
    println!("  {:<16} {CLIENT_IF:<12} {}, {}", net.client.name, testbed::CLIENT_V4, testbed::CLIENT_V6);
    println!("  {:<16} {EDGE_IF:<12} {EDGE_V4}, {EDGE_V6}", net.edge.name);
    println!("  veth pair {CLIENT_IF} <-> {EDGE_IF}; GRO and an XDP_PASS program on {CLIENT_IF}");

    step(3, "Unbound, the ISP's resolver, in the edge namespace");
    let unbound = Unbound::start(&net.edge, work.path()).map_err(|e| anyhow!(e))?;
    println!("  listening on {EDGE_V4} and {EDGE_V6} port 53; it answers every name itself:");
    println!("  A {RESOLVER_V4}, AAAA {RESOLVER_V6} (config {})", unbound.conf().display());

    step(4, "dnsfilter on the edge interface, with the Allostreaming orders");
    let orders = work.file("allostreaming.toml");
    std::fs::copy(cmd::workspace_root().join(ORDERS), &orders).with_context(|| format!("copy {ORDERS}"))?;
    let mut filter = DnsFilter::new(bin, Path::new(PIN_DIR), &work.file("dnsfilter")).map_err(|e| anyhow!(e))?;
    filter.run(&net.edge, EDGE_IF, &orders, &[]).map_err(|e| anyhow!(e))?;
    println!("  dnsfilter run --iface {EDGE_IF} --list {}", orders.display());
    println!("  (a copy of {ORDERS}; log {})", filter.log_path().display());
    print_indented(&filter.cli(&["status"]).map_err(|e| anyhow!(e))?);
    Ok(Bed { filter, unbound, net, work })
}

/// Step 5: real queries from the client, and who answered them.
fn queries(bed: &Bed) -> Result<()> {
    step(5, "Queries from the client namespace");
    let mut rows = vec![
        ["client", "server", "name", "type", "EDNS", "answered by", "rcode", "answer", "evidence"]
            .map(String::from)
            .to_vec(),
    ];
    let mut unexpected = Vec::new();
    for query in QUERIES {
        testbed::check_interrupt().map_err(|e| anyhow!(e))?;
        let opts = Opts { edns: query.edns, ..Opts::default() };
        let reply = query
            .client
            .query(&bed.net.client, query.server, query.name, query.rtype, &opts)
            .map_err(|e| anyhow!(e))?;
        let who = reply.who(STOP_PAGES);
        let evidence = match &who {
            Who::Filter(e) => e.clone(),
            Who::Resolver => "Unbound's local data".into(),
            Who::Nobody | Who::Unclear => "-".into(),
        };
        let addresses = reply.addresses();
        rows.push(vec![
            query.client.name().into(),
            query.server.into(),
            query.name.into(),
            query.rtype.into(),
            if query.edns { "yes" } else { "no" }.into(),
            who.to_string(),
            reply.status.clone().unwrap_or_else(|| "-".into()),
            if addresses.is_empty() { "-".into() } else { addresses.join(" ") },
            evidence,
        ]);
        if matches!(who, Who::Filter(_)) != query.filter || matches!(who, Who::Nobody | Who::Unclear) {
            unexpected.push(format!("{} {} {}:\n{}", query.client.name(), query.name, query.rtype, reply.raw));
        }
    }
    print_table(&rows);
    let allowed = QUERIES.iter().filter(|q| !q.filter).count();
    let received = bed.unbound.total_queries().map_err(|e| anyhow!(e))?;
    let logged: Vec<String> = bed
        .unbound
        .query_log()
        .map_err(|e| anyhow!(e))?
        .into_iter()
        .map(|q| format!("{} {}", q.name, q.rtype))
        .collect();
    println!(
        "\n  Unbound received {received} queries (unbound-control stats_noreset), {allowed} were for allowed names."
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
fn show(bed: &Bed) -> Result<()> {
    step(6, "What the filter says: stats and explain");
    let verbs: [&[&str]; 3] =
        [&["stats"], &["explain", "www.allostreaming.com"], &["explain", "allostreaming.example"]];
    for verb in verbs {
        println!("  $ dnsfilter {}", verb.join(" "));
        print_indented(&bed.filter.cli(verb).map_err(|e| anyhow!(e))?);
    }
    Ok(())
}

/// `--keep`: leaves everything running and says how to use it and how to remove it.
fn keep(bed: Bed) -> Result<()> {
    let Bed { filter, unbound, net, work } = bed;
    let client = net.client.name.clone();
    let dnsfilter = testbed::cmd::display(&filter.command());
    let orders = work.file("allostreaming.toml");
    net.keep(Path::new(XDP_PIN)).map_err(|e| anyhow!(e))?;
    filter.keep();
    unbound.keep();
    work.keep();
    println!("\nThe testbed stays up. Query it from the client namespace:");
    println!("  ip netns exec {client} dig @{EDGE_V4} allostreaming.com");
    println!("  ip netns exec {client} kdig @{EDGE_V6} allofilms.example AAAA +edns");
    println!("Ask the filter:");
    println!("  {dnsfilter} stats");
    println!("  {dnsfilter} explain alloshare.com");
    println!("Edit {} and the daemon reloads it within a second.", orders.display());
    println!("Logs and configs: {WORK_DIR}/");
    println!("Tear it down:\n  cargo xtask demo --down");
    Ok(())
}

/// Removes what a demo run left: the namespaces (and the daemon and Unbound in them), the
/// filter's pins, the client's pinned XDP_PASS link and the scratch folder. Quiet and best
/// effort: it runs before every demo too.
fn down(bin: &Path) {
    Testbed::remove(BASE, Path::new(XDP_PIN));
    // Dropped at once: detaches what is pinned (when the binary is there) and removes the pins.
    if let Ok(filter) = DnsFilter::new(bin, Path::new(PIN_DIR), &PathBuf::from(WORK_DIR).join("dnsfilter")) {
        drop(filter);
    }
    let _ = std::fs::remove_dir_all(PIN_DIR);
    let _ = std::fs::remove_dir_all(WORK_DIR);
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
