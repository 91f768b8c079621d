//! Prometheus metrics over HTTP (`--metrics ADDR`, off by default): `/metrics` in the text
//! exposition format, `/healthz` (the process is alive) and `/readyz` (a list is in force and
//! every configured interface is attached). Counters are read from the pinned maps at scrape
//! time; nothing is counted twice.

use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    daemon::Health,
    loader::{LoadError, Pins},
};

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Renders the metrics text from the health snapshot and the pinned counters.
pub fn render(h: &Health, pins: &Pins) -> Result<String, LoadError> {
    let maps = pins.open()?;
    let counters = maps.counters()?;
    let hits = maps.group_hits()?;
    let mut o = String::new();
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(&mut o, "dnsfilter_packets_total", "counter", "Packets seen by the XDP program, by outcome.");
    for (c, v) in &counters {
        let _ = writeln!(o, "dnsfilter_packets_total{{outcome=\"{}\"}} {v}", c.name());
    }
    head(&mut o, "dnsfilter_order_hits_total", "counter", "Queries matched by an entry, by order and action.");
    for (g, slot) in h.groups.slots.iter().enumerate() {
        if let Some((order, action)) = slot {
            let v = hits.get(g).copied().unwrap_or(0);
            let _ =
                writeln!(o, "dnsfilter_order_hits_total{{order=\"{}\",action=\"{}\"}} {v}", esc(order), esc(action));
        }
    }
    head(&mut o, "dnsfilter_order_in_force", "gauge", "1 if the order is in force now, 0 if scheduled or lifted.");
    for (id, in_force) in &h.orders {
        let _ = writeln!(o, "dnsfilter_order_in_force{{order=\"{}\"}} {}", esc(id), u8::from(*in_force));
    }
    head(&mut o, "dnsfilter_entries", "gauge", "Entries in the list generation in force.");
    let _ = writeln!(o, "dnsfilter_entries {}", h.entries);
    head(&mut o, "dnsfilter_list_generation", "gauge", "Number of the list generation in force.");
    let _ = writeln!(o, "dnsfilter_list_generation {}", h.generation);
    head(&mut o, "dnsfilter_reload_success", "gauge", "1 if the last reload was applied, 0 if it was refused.");
    let _ = writeln!(o, "dnsfilter_reload_success {}", u8::from(h.last_reload_ok));
    head(&mut o, "dnsfilter_reload_last_timestamp_seconds", "gauge", "Time of the last reload attempt.");
    let _ = writeln!(o, "dnsfilter_reload_last_timestamp_seconds {}", h.last_reload_time);
    head(&mut o, "dnsfilter_reload_last_success_timestamp_seconds", "gauge", "Time of the last applied reload.");
    let _ = writeln!(o, "dnsfilter_reload_last_success_timestamp_seconds {}", h.last_success_time);
    head(&mut o, "dnsfilter_reloads_total", "counter", "Reload attempts (start, signal, file change, schedule).");
    let _ = writeln!(o, "dnsfilter_reloads_total {}", h.reloads);
    head(&mut o, "dnsfilter_reload_failures_total", "counter", "Reloads refused; the list in force was kept.");
    let _ = writeln!(o, "dnsfilter_reload_failures_total {}", h.reload_failures);
    head(&mut o, "dnsfilter_xdp_attached", "gauge", "1 per interface the filter is attached to.");
    for (iface, mode) in &h.interfaces {
        let up = u8::from(attached(pins, iface));
        let _ = writeln!(o, "dnsfilter_xdp_attached{{interface=\"{}\",mode=\"{}\"}} {up}", esc(iface), mode.name());
    }
    if let Some(f) = &h.fleet {
        let f = f.lock().unwrap_or_else(|p| p.into_inner()).clone();
        fleet(&mut o, &f, head);
    }
    head(&mut o, "dnsfilter_build_info", "gauge", "Version of the running daemon.");
    let _ = writeln!(o, "dnsfilter_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    Ok(o)
}

/// The fleet zones' metrics.
fn fleet(o: &mut String, f: &crate::fleet::run::Status, head: impl Fn(&mut String, &str, &str, &str)) {
    let zones = || f.zones.values();
    let gauge = |o: &mut String, name: &str, help: &str, v: &dyn Fn(&crate::fleet::run::ZoneStatus) -> Option<i64>| {
        head(o, name, "gauge", help);
        for z in zones() {
            if let Some(v) = v(z) {
                let _ = writeln!(o, "{name}{{zone=\"{}\"}} {v}", esc(&z.zone));
            }
        }
    };
    gauge(o, "dnsfilter_zone_serial_enforced", "Serial of the zone's copy the kernel enforces.", &|z| {
        z.serial_enforced.map(i64::from)
    });
    gauge(o, "dnsfilter_zone_serial_primary", "Serial last seen at a primary.", &|z| z.serial_primary.map(i64::from));
    gauge(o, "dnsfilter_zone_last_success_timestamp_seconds", "Time of the last successful check.", &|z| {
        Some(z.last_success)
    });
    gauge(o, "dnsfilter_zone_stale", "1 if no primary answered for longer than stale_after (still enforced).", &|z| {
        Some(i64::from(z.stale))
    });
    gauge(o, "dnsfilter_zone_held", "1 if the primary's version is held back (serial backwards, refused).", &|z| {
        Some(i64::from(z.held.is_some()))
    });
    head(
        o,
        "dnsfilter_zone_transfers_total",
        "counter",
        "Transfers and checks by result (axfr_ok, ixfr_ok, ixfr_fallback, ..._failed, refused, held_backwards).",
    );
    for z in zones() {
        for (k, v) in &z.transfers {
            let _ =
                writeln!(o, "dnsfilter_zone_transfers_total{{zone=\"{}\",result=\"{}\"}} {v}", esc(&z.zone), esc(k));
        }
    }
    head(o, "dnsfilter_zone_notify_total", "counter", "NOTIFY messages by result.");
    for z in zones() {
        let _ = writeln!(
            o,
            "dnsfilter_zone_notify_total{{zone=\"{}\",result=\"accepted\"}} {}",
            esc(&z.zone),
            z.notify_accepted
        );
        let _ = writeln!(
            o,
            "dnsfilter_zone_notify_total{{zone=\"{}\",result=\"refused\"}} {}",
            esc(&z.zone),
            z.notify_refused
        );
    }
    head(o, "dnsfilter_notify_refused_unknown_zone_total", "counter", "NOTIFY messages for zones not configured.");
    let _ = writeln!(o, "dnsfilter_notify_refused_unknown_zone_total {}", f.notify_refused_unknown);
}

/// Whether the link pinned for `iface` is attached, as the kernel says now.
fn attached(pins: &Pins, iface: &str) -> bool {
    pins.link_info(iface).is_ok_and(|i| i.ifindex != 0)
}

/// Binds `addr` and serves in a background thread. Binding errors are returned at once.
pub fn serve(addr: SocketAddr, pins: Pins, health: Arc<Mutex<Health>>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Err(e) = handle(stream, &pins, &health) {
                tracing::debug!(error = %e, "metrics request");
            }
        }
    })?;
    Ok(local)
}

fn handle(stream: TcpStream, pins: &Pins, health: &Mutex<Health>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Drain the headers.
    let mut h = String::new();
    while reader.read_line(&mut h)? > 2 {
        h.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let snapshot = health.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => match render(&snapshot, pins) {
            Ok(b) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", b),
            Err(e) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
        },
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".into()),
        ("GET", "/readyz") => {
            let all = snapshot.configured.iter().all(|i| attached(pins, i));
            if snapshot.generation > 0 && !snapshot.configured.is_empty() && all {
                ("200 OK", "text/plain", "ready\n".into())
            } else {
                ("503 Service Unavailable", "text/plain", "not ready\n".into())
            }
        }
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let mut s = stream;
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(esc("x\ny"), "x\\ny");
    }
}
