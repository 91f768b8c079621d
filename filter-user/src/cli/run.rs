//! `dnsfilter run`: attach to interfaces, load the lists, report counters until stopped.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::{EXIT_DATAERR, EXIT_OSERR, ListArgs};
use crate::{
    config::Settings,
    loader::{Filter, Mode, nix_if_index},
    table,
};

/// Attach the filter to interfaces, load lists, and print counters until SIGINT/SIGTERM,
/// then detach.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface to filter (repeatable).
    #[arg(long = "iface", value_name = "IF", required = true)]
    ifaces: Vec<String>,
    #[command(flatten)]
    lists: ListArgs,
    /// XDP mode. Native falls back to skb mode, with a warning, when the driver lacks it.
    #[arg(long, value_enum, default_value = "native")]
    mode: Mode,
    /// UDP destination port treated as DNS (repeatable; default 53).
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,
    /// Stop-page IPv4 address for `redirect`.
    #[arg(long)]
    stop_v4: Option<Ipv4Addr>,
    /// Stop-page IPv6 address for `redirect`.
    #[arg(long)]
    stop_v6: Option<Ipv6Addr>,
    /// Filter only queries to this resolver address (repeatable; at most 16 IPv4 and 16 IPv6).
    /// Queries to other destinations pass. Default: every destination. With only IPv4
    /// addresses given, every IPv6 query passes, and the other way round.
    #[arg(long = "resolver", value_name = "ADDR")]
    resolvers: Vec<IpAddr>,
    /// Most entries the table may hold; a larger list is refused whole.
    #[arg(long, default_value_t = 10_000_000)]
    capacity: usize,
    /// Seconds between counter reports (0: only at exit).
    #[arg(long, default_value_t = 10)]
    stats_interval: u64,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn run(a: Args) -> ExitCode {
    // Everything that can be checked without the kernel is checked first: nothing is applied
    // unless all of it is valid.
    for iface in &a.ifaces {
        if nix_if_index(iface).is_none() {
            eprintln!("error: interface {iface}: no such interface");
            return ExitCode::from(EXIT_OSERR);
        }
    }
    let rules = match a.lists.load() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_DATAERR);
        }
    };
    let settings = Settings {
        ports: if a.ports.is_empty() { vec![53] } else { a.ports.clone() },
        stop_v4: a.stop_v4,
        stop_v6: a.stop_v6,
        resolvers: a.resolvers.clone(),
        ..Settings::default()
    };
    let config = match settings.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_DATAERR);
        }
    };
    let built = match table::build(&rules, table::random_seed(), 1, a.capacity) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_DATAERR);
        }
    };
    let mut filter = match Filter::load() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    if let Err(e) = filter.set_config(&config).and_then(|()| filter.install(&built)) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_OSERR);
    }
    tracing::info!(entries = built.header.entries, bytes = built.bytes(), "list loaded");
    install_signal_handlers();
    let mut links = Vec::new();
    for iface in &a.ifaces {
        match filter.attach(iface, a.mode) {
            Ok((id, mode)) => {
                tracing::info!(iface, ?mode, "attached");
                links.push(id);
            }
            Err(e) => {
                eprintln!("error: {e}");
                // Dropping the filter detaches what was attached.
                return ExitCode::from(EXIT_OSERR);
            }
        }
    }
    let interval = Duration::from_secs(a.stats_interval);
    let mut last = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if !interval.is_zero() && last.elapsed() >= interval {
            last = Instant::now();
            print_counters(&filter);
        }
    }
    print_counters(&filter);
    for id in links {
        if let Err(e) = filter.detach(id) {
            tracing::warn!(error = %e, "detach failed");
        }
    }
    tracing::info!("detached; exiting");
    ExitCode::SUCCESS
}

fn print_counters(filter: &Filter) {
    match filter.counters() {
        Ok(c) => {
            let shown: Vec<String> =
                c.iter().filter(|(_, v)| *v > 0).map(|(c, v)| format!("{}={v}", c.name())).collect();
            println!("counters: {}", if shown.is_empty() { "(none)".into() } else { shown.join(" ") });
        }
        Err(e) => tracing::warn!(error = %e, "reading counters"),
    }
}
