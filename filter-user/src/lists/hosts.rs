//! Hosts files, as published by Pi-hole and StevenBlack: `ADDRESS name [name...]`, `#` comments
//! (whole-line or trailing), blank lines.
//!
//! A hosts file blocks each name itself, not the names below it ([`Scope::Exact`]). The address
//! must be an IPv4 or IPv6 address (an IPv6 zone such as `%lo0` is allowed), but its value is
//! ignored: `0.0.0.0`, `127.0.0.1` and `::` all mean "block", and the action and EDE come from
//! the command line or the config ([`Defaults`]). The usual local names (`localhost`,
//! `broadcasthost`, `ip6-allnodes`, ...) that such files carry for the operating system are
//! skipped.

use std::{
    net::{IpAddr, Ipv6Addr},
    path::Path,
};

use super::{Defaults, Diagnostic, Format, How, Listed, Loc, Parsed, file_order};
use crate::{names, table::Scope};

/// Names a hosts file maps for the operating system, never meant as blocks.
const LOCAL_NAMES: [&str; 12] = [
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Parses a hosts file held in `text` (read from `file`).
pub fn parse(file: &Path, text: &str, defaults: Defaults) -> Result<Parsed, Vec<Diagnostic>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(address) = fields.next() else { continue };
        if !is_address(address) {
            errors.push(Diagnostic::new(
                file,
                line_no,
                format!("{address:?} is not an IPv4 or IPv6 address (expected \"ADDRESS name [name...]\")"),
            ));
            continue;
        }
        let mut named = false;
        for name in fields {
            named = true;
            if is_local_name(name) {
                continue;
            }
            if name.contains('*') {
                errors.push(Diagnostic::new(
                    file,
                    line_no,
                    format!("{name:?}: hosts files have no wildcards (use a plain list for *.name)"),
                ));
                continue;
            }
            match names::canonical(name) {
                Ok(labels) => entries.push(Listed {
                    labels,
                    scope: Scope::Exact,
                    action: defaults.action,
                    ede: defaults.ede,
                    stop: None,
                    order: 0,
                    how: How::Listed,
                    loc: Loc { file: file.to_path_buf(), line: line_no },
                    override_reason: None,
                }),
                Err(e) => errors.push(Diagnostic::new(file, line_no, format!("invalid name {name:?}: {e}"))),
            }
        }
        if !named {
            errors.push(Diagnostic::new(file, line_no, format!("address {address} has no name after it")));
        }
    }
    if errors.is_empty() {
        Ok(Parsed { orders: vec![file_order(file, Format::Hosts)], entries, settings: None })
    } else {
        Err(errors)
    }
}

/// Whether `text` is an IPv4 or IPv6 address, the latter possibly with a zone (`fe80::1%lo0`).
fn is_address(text: &str) -> bool {
    if text.parse::<IpAddr>().is_ok() {
        return true;
    }
    match text.split_once('%') {
        Some((addr, zone)) => !zone.is_empty() && addr.parse::<Ipv6Addr>().is_ok(),
        None => false,
    }
}

/// Whether `name` is one of the [`LOCAL_NAMES`] (any case, trailing dot or not).
fn is_local_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    LOCAL_NAMES.iter().any(|l| l.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_common::table::{Action, Ede};

    fn shown(errors: &[Diagnostic]) -> Vec<String> {
        errors.iter().map(|d| d.to_string()).collect()
    }

    fn names_of(p: &Parsed) -> Vec<String> {
        p.entries.iter().map(|e| names::display(&e.labels)).collect()
    }

    #[test]
    fn steven_black_header_and_entries() {
        let text = "\
# Title: StevenBlack/hosts
#
# ===============================================================

127.0.0.1 localhost
127.0.0.1 localhost.localdomain
127.0.0.1 local
255.255.255.255 broadcasthost
::1 localhost
::1 ip6-localhost
::1 ip6-loopback
fe80::1%lo0 localhost
ff00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
ff02::3 ip6-allhosts
0.0.0.0 0.0.0.0

# Custom host records are listed here.

# End of custom host records.
# Start StevenBlack

#=====================================
0.0.0.0 ads.example.com
0.0.0.0 Tracker.Example.NET.  # with a trailing comment
0.0.0.0\tBücher.example
";
        let p = parse(Path::new("/lists/sb.hosts"), text, Defaults::default()).unwrap();
        assert_eq!(names_of(&p), ["ads.example.com", "tracker.example.net", "xn--bcher-kva.example"]);
        assert!(p.entries.iter().all(|e| e.scope == Scope::Exact
            && e.action == Action::Nxdomain
            && e.ede == Ede::Censored
            && e.stop.is_none()
            && e.order == 0
            && e.how == How::Listed
            && e.override_reason.is_none()
            && e.loc.file == Path::new("/lists/sb.hosts")));
        let lines: Vec<_> = p.entries.iter().map(|e| e.loc.line).collect();
        assert_eq!(lines, [26, 27, 28]);
        assert_eq!(p.orders.len(), 1);
        assert_eq!(p.orders[0].id, "hosts:sb.hosts");
        assert!(p.settings.is_none());
    }

    #[test]
    fn pihole_style_and_defaults() {
        let text = "127.0.0.1 doubleclick.net\n0.0.0.0 ad.example.org\n\n   # indented comment\n";
        let defaults = Defaults { action: Action::Refused, ede: Ede::Blocked };
        let p = parse(Path::new("gravity.hosts"), text, defaults).unwrap();
        assert_eq!(names_of(&p), ["doubleclick.net", "ad.example.org"]);
        assert!(p.entries.iter().all(|e| e.action == Action::Refused && e.ede == Ede::Blocked));
    }

    #[test]
    fn several_names_per_line_and_ipv6_addresses() {
        let text = "0.0.0.0 a.example b.example c.example\n:: v6.example\n::1 loop.example localhost\n\
                    2001:db8::1 doc.example\r\n";
        let p = parse(Path::new("x.hosts"), text, Defaults::default()).unwrap();
        assert_eq!(names_of(&p), ["a.example", "b.example", "c.example", "v6.example", "loop.example", "doc.example"]);
        let lines: Vec<_> = p.entries.iter().map(|e| e.loc.line).collect();
        assert_eq!(lines, [1, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn only_local_names_yield_nothing() {
        let text = "127.0.0.1 LOCALHOST localhost.\n::1 ip6-localhost ip6-loopback\n";
        let p = parse(Path::new("x.hosts"), text, Defaults::default()).unwrap();
        assert!(p.entries.is_empty());
        assert_eq!(p.orders.len(), 1);
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let p = parse(Path::new("x.hosts"), "\u{feff}0.0.0.0 bom.example\n", Defaults::default()).unwrap();
        assert_eq!(names_of(&p), ["bom.example"]);
    }

    #[test]
    fn every_error_names_file_and_line() {
        let text = "\
0.0.0.0 ok.example
ads.example.com
0.0.0.0
300.1.1.1 bad-address.example
0.0.0.0 bad..name.example good.example
0.0.0.0 *.wild.example
fe80::1% empty-zone.example
0.0.0.0 # only a comment after the address
";
        let e = parse(Path::new("/etc/block.hosts"), text, Defaults::default()).unwrap_err();
        let s = shown(&e);
        assert_eq!(s.len(), 7, "{s:#?}");
        assert!(s[0].starts_with("/etc/block.hosts:2: \"ads.example.com\" is not an IPv4 or IPv6 address"), "{}", s[0]);
        assert_eq!(s[1], "/etc/block.hosts:3: address 0.0.0.0 has no name after it");
        assert!(s[2].starts_with("/etc/block.hosts:4: \"300.1.1.1\" is not an IPv4 or IPv6 address"), "{}", s[2]);
        assert!(s[3].starts_with("/etc/block.hosts:5: invalid name \"bad..name.example\": empty label"), "{}", s[3]);
        assert!(s[4].starts_with("/etc/block.hosts:6: \"*.wild.example\": hosts files have no wildcards"), "{}", s[4]);
        assert!(s[5].starts_with("/etc/block.hosts:7: \"fe80::1%\" is not an IPv4 or IPv6 address"), "{}", s[5]);
        assert_eq!(s[6], "/etc/block.hosts:8: address 0.0.0.0 has no name after it");
    }

    #[test]
    fn addresses() {
        for ok in ["0.0.0.0", "127.0.0.1", "::", "::1", "fe80::1%lo0", "2001:db8::1", "ff02::1"] {
            assert!(is_address(ok), "{ok}");
        }
        for bad in ["", "0.0.0", "1.2.3.4.5", "localhost", "fe80::1%", "1.2.3.4%eth0", "::g"] {
            assert!(!is_address(bad), "{bad}");
        }
    }
}
