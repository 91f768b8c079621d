//! RPZ zone files (draft-vixie-dnsop-dns-rpz), read as BIND and Unbound read them, QNAME
//! triggers only.
//!
//! The zone-file reader is hand-written and covers what policy zones use: `;` comments, quoted
//! strings, parentheses spanning lines, `$ORIGIN`, `$TTL`, owners absolute or relative to the
//! origin, `@`, a blank owner (the line starts with a space) repeating the previous owner, an
//! optional TTL and class in either order, and type names in any case.
//!
//! The zone's name (its apex) is the owner of its SOA record when the SOA comes before the
//! first trigger, else the first `$ORIGIN`; a later `$ORIGIN` only changes what relative names
//! are relative to. A trigger is an owner with the apex stripped: `name` triggers on that name
//! only ([`Scope::Exact`]) and `*.name` on the names below it only ([`Scope::Below`]).
//!
//! | record                      | action                                  |
//! |-----------------------------|-----------------------------------------|
//! | `CNAME .`                   | nxdomain                                |
//! | `CNAME *.`                  | nodata                                  |
//! | `CNAME rpz-passthru.`       | allow                                   |
//! | `CNAME rpz-drop.`           | drop                                    |
//! | `CNAME rpz-tcp-only.`       | truncate                                |
//! | `A` / `AAAA` (local data)   | redirect, to the entry's own addresses  |
//!
//! SOA and NS records at the apex are zone data and are ignored. Everything else is refused
//! with the file and line, never skipped: `rpz-client-ip`, `rpz-ip`, `rpz-nsdname` and
//! `rpz-nsip` triggers (an XDP query filter only sees the query name), CNAME rewrites to other
//! names, local data other than A/AAAA, `$INCLUDE`, an owner outside the zone, and one owner
//! given two actions. Entries are tagged [`Ede::Blocked`]: a policy zone is the operator's
//! own policy, not a court's.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use filter_common::table::{Action, Ede};

use super::{Diagnostic, Format, How, Listed, Loc, Parsed, file_order};
use crate::{
    names,
    table::{Scope, Stop},
};

/// Canonical labels, most specific first.
type Labels = Vec<Vec<u8>>;

/// The special labels that end non-QNAME triggers, and why each is refused.
const SPECIAL_TRIGGERS: [(&str, &str); 4] = [
    (
        "rpz-client-ip",
        "rpz-client-ip triggers are not supported (dnsfilter matches query names; block client addresses with a firewall)",
    ),
    (
        "rpz-ip",
        "rpz-ip triggers are not supported (they match addresses in answers, and an XDP query filter only sees the query name)",
    ),
    ("rpz-nsdname", "rpz-nsdname triggers are not supported (an XDP query filter only sees the query name)"),
    (
        "rpz-nsip",
        "rpz-nsip triggers are not supported (they match name server addresses, and an XDP query filter only sees the query name)",
    ),
];

/// CNAME targets that select a policy action (compared without case).
const ACTION_TARGETS: [(&str, Action); 5] = [
    (".", Action::Nxdomain),
    ("*.", Action::Nodata),
    ("rpz-passthru.", Action::Allow),
    ("rpz-drop.", Action::Drop),
    ("rpz-tcp-only.", Action::Truncate),
];

/// Parses an RPZ zone held in `text` (read from `file`).
pub fn parse(file: &Path, text: &str) -> Result<Parsed, Vec<Diagnostic>> {
    let mut zone = Zone::new(file);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for record in read_records(text, &mut zone.errors, file) {
        zone.record(&record);
    }
    zone.finish()
}

/// A token of a zone file: a word, or a quoted string without its quotes.
#[derive(Debug)]
struct Token {
    text: String,
    quoted: bool,
}

/// One directive or resource record, its parentheses joined.
#[derive(Debug, Default)]
struct Record {
    /// Line the record starts on.
    line: usize,
    /// The first line starts with a space or tab: the owner is the previous one.
    blank_owner: bool,
    tokens: Vec<Token>,
    /// A syntax error was reported inside it.
    broken: bool,
}

/// Splits `text` into records: drops comments and blank lines, joins lines inside parentheses.
/// Syntax errors go to `errors`, and their records are left out.
fn read_records(text: &str, errors: &mut Vec<Diagnostic>, file: &Path) -> Vec<Record> {
    let mut records = Vec::new();
    let mut record = Record::default();
    let mut depth = 0usize;
    let mut opened_on = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if depth == 0 {
            record = Record { line, blank_owner: raw.starts_with([' ', '\t']), ..Record::default() };
        }
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                ' ' | '\t' | '\r' => {}
                ';' => break,
                '(' => {
                    if depth == 0 {
                        opened_on = line;
                    }
                    depth += 1;
                }
                ')' => {
                    if depth == 0 {
                        errors.push(Diagnostic::new(file, line, "')' without a matching '('"));
                        record.broken = true;
                    } else {
                        depth -= 1;
                    }
                }
                '"' => {
                    let mut word = String::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => {
                                closed = true;
                                break;
                            }
                            '\\' => {
                                word.push(c);
                                if let Some(e) = chars.next() {
                                    word.push(e);
                                }
                            }
                            _ => word.push(c),
                        }
                    }
                    if !closed {
                        errors.push(Diagnostic::new(file, line, "quoted string is not closed on its line"));
                        record.broken = true;
                    }
                    record.tokens.push(Token { text: word, quoted: true });
                }
                _ => {
                    let mut word = String::new();
                    let mut c = c;
                    loop {
                        word.push(c);
                        if c == '\\'
                            && let Some(e) = chars.next()
                        {
                            word.push(e);
                        }
                        match chars.peek() {
                            Some(&n) if !n.is_whitespace() && !matches!(n, ';' | '(' | ')' | '"') => {
                                c = n;
                                chars.next();
                            }
                            _ => break,
                        }
                    }
                    record.tokens.push(Token { text: word, quoted: false });
                }
            }
        }
        if depth == 0 {
            let done = std::mem::take(&mut record);
            if !done.tokens.is_empty() && !done.broken {
                records.push(done);
            }
        }
    }
    if depth > 0 {
        errors.push(Diagnostic::new(file, opened_on, "'(' is never closed"));
    }
    records
}

/// What is known of an owner for blank-owner lines.
enum Owner {
    /// No record yet.
    None,
    /// The previous owner was invalid (already reported).
    Bad,
    Name(Labels),
}

/// A name could not be made absolute.
enum NameError {
    /// Relative, and no origin is known yet.
    NoOrigin,
    Invalid(String),
}

/// A trigger as collected, before it becomes an entry.
struct Trigger {
    labels: Labels,
    wildcard: bool,
    action: Action,
    /// Line of its first record.
    line: usize,
    /// Local data: address and line, one per family.
    v4: Option<(Ipv4Addr, usize)>,
    v6: Option<(Ipv6Addr, usize)>,
}

/// What one record asks of its trigger.
#[derive(Clone, Copy)]
enum Policy {
    Action(Action),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// The state of reading one zone.
struct Zone<'a> {
    file: &'a Path,
    errors: Vec<Diagnostic>,
    /// What relative names are relative to (`$ORIGIN`, else the SOA owner).
    origin: Option<Labels>,
    /// The zone's name: triggers are written below it.
    apex: Option<Labels>,
    /// Line of the SOA record.
    soa: Option<usize>,
    /// A record other than the SOA was seen: the apex can no longer change.
    apex_fixed: bool,
    /// The missing origin was reported (once, not for every trigger after it).
    no_origin_reported: bool,
    previous: Owner,
    triggers: Vec<Trigger>,
    /// Index in `triggers` of each (labels, wildcard).
    index: HashMap<(Labels, bool), usize>,
}

impl<'a> Zone<'a> {
    fn new(file: &'a Path) -> Zone<'a> {
        Zone {
            file,
            errors: Vec::new(),
            origin: None,
            apex: None,
            soa: None,
            apex_fixed: false,
            no_origin_reported: false,
            previous: Owner::None,
            triggers: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn error(&mut self, line: usize, reason: impl Into<String>) {
        self.errors.push(Diagnostic::new(self.file, line, reason));
    }

    /// Reports a missing origin the first time only.
    fn no_origin(&mut self, line: usize, reason: String) {
        if !self.no_origin_reported {
            self.no_origin_reported = true;
            self.error(line, reason);
        }
    }

    fn record(&mut self, record: &Record) {
        let line = record.line;
        let Some((first, rest)) = record.tokens.split_first() else { return };
        if !first.quoted && first.text.starts_with('$') {
            self.directive(line, first, rest);
            return;
        }
        let (owner, fields) = if record.blank_owner {
            match &self.previous {
                Owner::Name(labels) => (labels.clone(), record.tokens.as_slice()),
                Owner::Bad => return,
                Owner::None => {
                    self.error(
                        line,
                        "the line starts with a space, which repeats the previous owner name, but no record comes before it",
                    );
                    return;
                }
            }
        } else if first.quoted {
            self.previous = Owner::Bad;
            self.error(line, format!("owner name {:?} is a quoted string", first.text));
            return;
        } else {
            match resolve(&first.text, self.origin.as_ref()) {
                Ok(labels) => {
                    self.previous = Owner::Name(labels.clone());
                    (labels, rest)
                }
                Err(e) => {
                    self.previous = Owner::Bad;
                    match e {
                        NameError::NoOrigin => {
                            let what = if first.text == "@" {
                                "owner \"@\" stands for the origin".to_string()
                            } else {
                                format!("owner {:?} is relative", first.text)
                            };
                            self.no_origin(
                                line,
                                format!("{what}, but no $ORIGIN or SOA record before it gives the zone origin"),
                            );
                        }
                        NameError::Invalid(reason) => self.error(line, reason),
                    }
                    return;
                }
            }
        };
        let Some((rtype, rdata)) = self.type_and_data(line, fields) else { return };
        if rtype == "SOA" {
            self.soa(line, owner, rdata);
            return;
        }
        self.apex_fixed = true;
        let Some(apex) = self.apex.clone() else {
            self.no_origin(
                line,
                "no zone origin before the first trigger: start the zone with $ORIGIN or its SOA record".to_string(),
            );
            return;
        };
        if owner == apex {
            if rtype != "NS" {
                self.error(
                    line,
                    format!(
                        "{rtype} record at the zone apex {}: the apex names the policy zone and is not a trigger \
                         (only SOA and NS records belong there)",
                        names::display(&apex)
                    ),
                );
            }
            return;
        }
        let (labels, wildcard) = match trigger(&owner, &apex) {
            Ok(t) => t,
            Err(reason) => {
                self.error(line, reason);
                return;
            }
        };
        let policy = match rtype.as_str() {
            "CNAME" => self.cname(&labels, wildcard, rdata),
            "A" => address(rdata, "A", "an IPv4").map(Policy::V4),
            "AAAA" => address(rdata, "AAAA", "an IPv6").map(Policy::V6),
            _ => Err(format!(
                "{rtype} records are not supported on a trigger: the only local data dnsfilter can answer is A/AAAA \
                 (for a block use CNAME . / *. / rpz-drop. / rpz-tcp-only., or rpz-passthru. to allow)"
            )),
        };
        match policy {
            Ok(p) => self.add(line, labels, wildcard, p),
            Err(reason) => self.error(line, reason),
        }
    }

    fn directive(&mut self, line: usize, name: &Token, args: &[Token]) {
        let upper = name.text.to_ascii_uppercase();
        match upper.as_str() {
            "$ORIGIN" => {
                let [arg] = args else {
                    self.error(line, format!("$ORIGIN takes one name, found {} arguments", args.len()));
                    return;
                };
                if arg.text == "." {
                    self.error(line, "$ORIGIN cannot be the root: a policy zone has a name of its own");
                    return;
                }
                match resolve(&arg.text, self.origin.as_ref()) {
                    Ok(origin) => {
                        if self.apex.is_none() {
                            self.apex = Some(origin.clone());
                        }
                        self.origin = Some(origin);
                    }
                    Err(NameError::NoOrigin) => self.error(
                        line,
                        format!("$ORIGIN {:?} is relative, but there is no origin before it to add", arg.text),
                    ),
                    Err(NameError::Invalid(reason)) => self.error(line, format!("$ORIGIN: {reason}")),
                }
            }
            "$TTL" => match args {
                [arg] if !arg.quoted && is_ttl(&arg.text) => {}
                _ => self.error(line, "$TTL takes one TTL (seconds, or units such as 1h30m)"),
            },
            "$INCLUDE" => self.error(
                line,
                "$INCLUDE is not supported: give dnsfilter each zone file on its own, with its own $ORIGIN or SOA",
            ),
            "$GENERATE" => self.error(line, "$GENERATE is not supported: write the records out"),
            _ => self.error(line, format!("unknown directive {}", name.text)),
        }
    }

    /// Skips the optional TTL and class; returns the type (upper case) and the data after it.
    fn type_and_data<'t>(&mut self, line: usize, fields: &'t [Token]) -> Option<(String, &'t [Token])> {
        let mut fields = fields;
        let (mut ttl, mut class) = (false, false);
        loop {
            let Some((first, rest)) = fields.split_first() else {
                self.error(line, "record has no type");
                return None;
            };
            if first.quoted {
                self.error(line, format!("expected a record type, found the quoted string {:?}", first.text));
                return None;
            }
            if !ttl && is_ttl(&first.text) {
                ttl = true;
            } else if !class && is_class(&first.text) {
                class = true;
                if !first.text.eq_ignore_ascii_case("IN") {
                    self.error(line, format!("class {} is not supported: a policy zone is class IN", first.text));
                    return None;
                }
            } else {
                return Some((first.text.to_ascii_uppercase(), rest));
            }
            fields = rest;
        }
    }

    fn soa(&mut self, line: usize, owner: Labels, rdata: &[Token]) {
        if rdata.len() != 7 {
            self.error(
                line,
                format!(
                    "SOA record needs 7 fields (mname rname serial refresh retry expire minimum), found {}",
                    rdata.len()
                ),
            );
        }
        if let Some(first) = self.soa {
            self.error(line, format!("a second SOA record (the first is on line {first})"));
            return;
        }
        self.soa = Some(line);
        if !self.apex_fixed || self.apex.is_none() {
            self.apex = Some(owner.clone());
        } else if let Some(apex) = &self.apex
            && *apex != owner
        {
            let reason = format!(
                "the SOA record's owner {} is not the zone origin {} that the records before it use; \
                 put the SOA record first",
                names::display(&owner),
                names::display(apex)
            );
            self.error(line, reason);
        }
        if self.origin.is_none() {
            self.origin = Some(owner);
        }
    }

    /// The action a CNAME record's target selects.
    fn cname(&self, labels: &[Vec<u8>], wildcard: bool, rdata: &[Token]) -> Result<Policy, String> {
        let [target] = rdata else {
            return Err(format!("CNAME record takes one target name, found {}", rdata.len()));
        };
        let t = target.text.as_str();
        if let Some((_, action)) = ACTION_TARGETS.iter().find(|(name, _)| name.eq_ignore_ascii_case(t)) {
            return Ok(Policy::Action(*action));
        }
        if t.eq_ignore_ascii_case("rpz-skipzone.") {
            return Err("rpz-skipzone. is not supported: dnsfilter merges every list into one table, \
                        so there is no next zone to skip to"
                .into());
        }
        let absolute_form = format!("{t}.");
        if ACTION_TARGETS.iter().any(|(name, _)| name.eq_ignore_ascii_case(&absolute_form))
            || t.eq_ignore_ascii_case("rpz-skipzone")
        {
            let origin = self.origin.as_ref().map(|o| names::display(o)).unwrap_or_default();
            return Err(format!(
                "CNAME target {t} has no trailing dot, so it is the name {t}.{origin} (a rewrite); write {t}. for the policy"
            ));
        }
        if !wildcard && is_absolute(t) && names::canonical(t).is_ok_and(|target| target == labels) {
            return Err(format!(
                "CNAME to the trigger's own name {t} is the obsolete passthru form; write CNAME rpz-passthru. instead"
            ));
        }
        Err(format!(
            "CNAME to {t} rewrites the answer to another name (a walled garden), which is not supported; \
             give the stop-page address as A/AAAA records (local data) instead"
        ))
    }

    fn add(&mut self, line: usize, labels: Labels, wildcard: bool, policy: Policy) {
        let key = (labels, wildcard);
        let Some(&i) = self.index.get(&key) else {
            let (labels, wildcard) = key;
            let (action, v4, v6) = match policy {
                Policy::Action(a) => (a, None, None),
                Policy::V4(a) => (Action::Redirect, Some((a, line)), None),
                Policy::V6(a) => (Action::Redirect, None, Some((a, line))),
            };
            self.index.insert((labels.clone(), wildcard), self.triggers.len());
            self.triggers.push(Trigger { labels, wildcard, action, line, v4, v6 });
            return;
        };
        let Some(t) = self.triggers.get_mut(i) else { return };
        let name = pattern(&t.labels, t.wildcard);
        // One stop-page address per family: a second, different A (or AAAA) record on an owner
        // is an error rather than a silent choice, since the table holds one address of each.
        let reason = match (t.action, policy) {
            (Action::Redirect, Policy::V4(a)) => match t.v4 {
                None => {
                    t.v4 = Some((a, line));
                    None
                }
                Some((b, _)) if b == a => None,
                Some((b, first)) => Some(format!(
                    "{name} has more than one A record ({b} on line {first}, {a} here); \
                     only one stop-page address per family is supported"
                )),
            },
            (Action::Redirect, Policy::V6(a)) => match t.v6 {
                None => {
                    t.v6 = Some((a, line));
                    None
                }
                Some((b, _)) if b == a => None,
                Some((b, first)) => Some(format!(
                    "{name} has more than one AAAA record ({b} on line {first}, {a} here); \
                     only one stop-page address per family is supported"
                )),
            },
            // The same record twice is one record.
            (old, Policy::Action(new)) if old == new => None,
            (old, new) => {
                let new = match new {
                    Policy::Action(a) => a,
                    Policy::V4(_) | Policy::V6(_) => Action::Redirect,
                };
                Some(format!(
                    "{name} is given two actions: {} (line {}) and {} (line {line})",
                    old.name(),
                    t.line,
                    new.name()
                ))
            }
        };
        if let Some(reason) = reason {
            self.error(line, reason);
        }
    }

    fn finish(mut self) -> Result<Parsed, Vec<Diagnostic>> {
        if !self.errors.is_empty() {
            // Syntax errors are found in a pass before the records: report in line order.
            self.errors.sort_by_key(|d| d.line);
            return Err(self.errors);
        }
        let mut order = file_order(self.file, Format::Rpz);
        if let Some(apex) = &self.apex {
            order.id = format!("rpz:{}", names::display(apex));
        }
        let entries = self
            .triggers
            .into_iter()
            .map(|t| Listed {
                labels: t.labels,
                scope: if t.wildcard { Scope::Below } else { Scope::Exact },
                action: t.action,
                ede: Ede::Blocked,
                stop: (t.action == Action::Redirect)
                    .then(|| Stop { v4: t.v4.map(|(a, _)| a), v6: t.v6.map(|(a, _)| a) }),
                order: 0,
                how: How::Listed,
                loc: Loc { file: self.file.to_path_buf(), line: t.line },
                override_reason: None,
            })
            .collect();
        Ok(Parsed { orders: vec![order], entries, settings: None })
    }
}

/// Makes a name from a zone file absolute and canonical: `@` is the origin, a name without a
/// trailing dot is relative to it. A leading `*` label is kept as the label `*`.
fn resolve(text: &str, origin: Option<&Labels>) -> Result<Labels, NameError> {
    if text == "@" {
        return origin.cloned().ok_or(NameError::NoOrigin);
    }
    if text == "*." {
        return Ok(vec![b"*".to_vec()]);
    }
    let (wildcard, rest) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None if text == "*" => (true, ""),
        None => (false, text),
    };
    if rest.contains('*') {
        return Err(NameError::Invalid(format!(
            "{text:?}: a wildcard is only allowed as the whole first label (*.name)"
        )));
    }
    let mut labels = if rest.is_empty() {
        Vec::new()
    } else {
        names::canonical(rest).map_err(|e| NameError::Invalid(format!("invalid name {text:?}: {e}")))?
    };
    if rest.is_empty() || !is_absolute(rest) {
        labels.extend(origin.ok_or(NameError::NoOrigin)?.iter().cloned());
    }
    if wildcard {
        labels.insert(0, b"*".to_vec());
    }
    let wire = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
    if wire > filter_common::QNAME_MAX {
        return Err(NameError::Invalid(format!("{text:?} is longer than 255 octets once the origin is added")));
    }
    Ok(labels)
}

/// Whether a name ends with a dot that is not escaped.
fn is_absolute(text: &str) -> bool {
    match text.strip_suffix('.') {
        Some(rest) => rest.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 0,
        None => false,
    }
}

/// The trigger an owner below the apex stands for: its labels and whether it is `*.name`.
fn trigger(owner: &[Vec<u8>], apex: &[Vec<u8>]) -> Result<(Labels, bool), String> {
    let outside = || {
        format!(
            "owner {} is outside the zone origin {}; triggers are names below the policy zone's name",
            names::display(owner),
            names::display(apex)
        )
    };
    if !names::is_at_or_below(owner, apex) {
        return Err(outside());
    }
    let relative = owner.len().checked_sub(apex.len()).and_then(|n| owner.get(..n)).ok_or_else(outside)?;
    if let Some(last) = relative.last()
        && let Some((_, reason)) = SPECIAL_TRIGGERS.iter().find(|(label, _)| last.as_slice() == label.as_bytes())
    {
        return Err((*reason).to_string());
    }
    let (labels, wildcard) = match relative.split_first() {
        Some((first, rest)) if first.as_slice() == b"*" => (rest, true),
        _ => (relative, false),
    };
    if labels.is_empty() {
        return Err(format!(
            "*.{} would trigger on every name; a wildcard directly below the zone origin is not supported",
            names::display(apex)
        ));
    }
    if labels.iter().any(|l| l.contains(&b'*')) {
        return Err(format!("{}: a wildcard is only allowed as the whole first label (*.name)", names::display(owner)));
    }
    Ok((labels.to_vec(), wildcard))
}

/// The one address of an A or AAAA record.
fn address<T: std::str::FromStr>(rdata: &[Token], rtype: &str, family: &str) -> Result<T, String> {
    match rdata {
        [a] if !a.quoted => a.text.parse().map_err(|_| format!("{rtype} record: {:?} is not {family} address", a.text)),
        _ => Err(format!("{rtype} record takes one address, found {} fields", rdata.len())),
    }
}

/// A TTL: seconds, or BIND units (`1w2d3h4m5s`, any case).
fn is_ttl(text: &str) -> bool {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u32>().is_ok();
    }
    // Every unit letter follows at least one digit.
    let mut after_digit = false;
    for b in text.bytes() {
        if b.is_ascii_digit() {
            after_digit = true;
        } else if after_digit && matches!(b.to_ascii_lowercase(), b'w' | b'd' | b'h' | b'm' | b's') {
            after_digit = false;
        } else {
            return false;
        }
    }
    true
}

/// A class mnemonic (`IN`, `CH`, `HS`, `NONE`, `ANY`, `CLASS<n>`), any case.
fn is_class(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    matches!(upper.as_str(), "IN" | "CH" | "CS" | "HS" | "NONE" | "ANY")
        || upper.strip_prefix("CLASS").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `name` or `*.name`, for messages.
fn pattern(labels: &[Vec<u8>], wildcard: bool) -> String {
    if wildcard { format!("*.{}", names::display(labels)) } else { names::display(labels) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/zones/policy.rpz";

    /// The usual head of a policy zone, 8 lines long: origin, TTL, a SOA over several lines, NS.
    const HEAD: &str = "\
$ORIGIN rpz.example.
$TTL 300
@ IN SOA ns.rpz.example. hostmaster.rpz.example. (
        2024031300 ; serial
        300 150 604800 ; refresh retry expire
        60 )       ; minimum
  IN NS ns.rpz.example.
; triggers
";

    fn ok(text: &str) -> Parsed {
        match parse(Path::new(FILE), text) {
            Ok(p) => p,
            Err(e) => panic!("unexpected errors: {:#?}", e.iter().map(|d| d.to_string()).collect::<Vec<_>>()),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        parse(Path::new(FILE), text).unwrap_err().iter().map(|d| d.to_string()).collect()
    }

    /// One error, which must start with `prefix`.
    fn error(text: &str, prefix: &str) {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].starts_with(prefix), "expected {prefix:?}, got {:?}", e[0]);
    }

    /// (pattern, scope, action, line) of every entry.
    fn summary(p: &Parsed) -> Vec<(String, Scope, Action, usize)> {
        p.entries.iter().map(|e| (names::display(&e.labels), e.scope, e.action, e.loc.line)).collect()
    }

    fn row(name: &str, scope: Scope, action: Action, line: usize) -> (String, Scope, Action, usize) {
        (name.to_string(), scope, action, line)
    }

    #[test]
    fn every_action() {
        let text = format!(
            "{HEAD}\
nx.example CNAME .
nodata.example CNAME *.
ok.example CNAME rpz-passthru.
drop.example CNAME RPZ-DROP.
tcp.example CNAME rpz-tcp-only.
stop.example A 192.0.2.1
"
        );
        let p = ok(&text);
        assert_eq!(
            summary(&p),
            [
                row("nx.example", Scope::Exact, Action::Nxdomain, 9),
                row("nodata.example", Scope::Exact, Action::Nodata, 10),
                row("ok.example", Scope::Exact, Action::Allow, 11),
                row("drop.example", Scope::Exact, Action::Drop, 12),
                row("tcp.example", Scope::Exact, Action::Truncate, 13),
                row("stop.example", Scope::Exact, Action::Redirect, 14),
            ]
        );
        for e in &p.entries {
            assert_eq!(e.ede, Ede::Blocked);
            assert_eq!((e.order, &e.how, &e.override_reason), (0, &How::Listed, &None));
            assert_eq!(e.loc.file, Path::new(FILE));
            if e.action == Action::Redirect {
                assert_eq!(e.stop, Some(Stop { v4: Some(Ipv4Addr::new(192, 0, 2, 1)), v6: None }));
            } else {
                assert_eq!(e.stop, None);
            }
        }
        assert_eq!(p.orders.len(), 1);
        assert_eq!(p.orders[0].id, "rpz:rpz.example");
        assert_eq!(p.orders[0].loc.file, Path::new(FILE));
        assert!(p.settings.is_none());
    }

    #[test]
    fn origin_from_soa_without_origin_directive() {
        let text = "\
Policy.Example. 3600 IN SOA ns.example. admin.example. 1 3600 600 86400 300
bad.example CNAME .
other.example.policy.example. CNAME .
";
        let p = ok(text);
        assert_eq!(p.orders[0].id, "rpz:policy.example");
        assert_eq!(
            summary(&p),
            [
                row("bad.example", Scope::Exact, Action::Nxdomain, 2),
                row("other.example", Scope::Exact, Action::Nxdomain, 3)
            ]
        );
    }

    #[test]
    fn origin_directive_without_soa() {
        let p = ok("$ORIGIN Feed.RPZ.example.\nbad.example CNAME .\n");
        assert_eq!(p.orders[0].id, "rpz:feed.rpz.example");
        assert_eq!(summary(&p), [row("bad.example", Scope::Exact, Action::Nxdomain, 2)]);
    }

    #[test]
    fn soa_owner_is_the_zone_even_after_an_origin() {
        // $ORIGIN example. only makes "rpz" short for rpz.example.; the SOA names the zone.
        let text = "\
$ORIGIN example.
rpz IN SOA ns.example. admin.example. 1 2 3 4 5
bad.com.rpz CNAME .
";
        let p = ok(text);
        assert_eq!(p.orders[0].id, "rpz:rpz.example");
        assert_eq!(summary(&p), [row("bad.com", Scope::Exact, Action::Nxdomain, 3)]);
    }

    #[test]
    fn later_origin_changes_relative_names_only() {
        let text = format!("{HEAD}$ORIGIN com.rpz.example.\nbad CNAME .\n$ORIGIN net\nworse CNAME rpz-drop.\n");
        let p = ok(&text);
        assert_eq!(p.orders[0].id, "rpz:rpz.example");
        assert_eq!(
            summary(&p),
            [row("bad.com", Scope::Exact, Action::Nxdomain, 10), row("worse.net.com", Scope::Exact, Action::Drop, 12)]
        );
    }

    #[test]
    fn absolute_relative_and_at_owners() {
        let text = "\
$ORIGIN rpz.example.
@ SOA ns.rpz.example. hostmaster.rpz.example. 1 2 3 4 5
@ NS ns.rpz.example.
rpz.example. NS ns2.rpz.example.
abs.example.rpz.example. CNAME .
rel.example CNAME .
Mixed.Case.Example CNAME .
";
        assert_eq!(
            summary(&ok(text)),
            [
                row("abs.example", Scope::Exact, Action::Nxdomain, 5),
                row("rel.example", Scope::Exact, Action::Nxdomain, 6),
                row("mixed.case.example", Scope::Exact, Action::Nxdomain, 7),
            ]
        );
    }

    #[test]
    fn blank_owner_repeats_the_previous_owner() {
        let text = "\
$ORIGIN rpz.example.
@ SOA ns.rpz.example. hostmaster.rpz.example. 1 2 3 4 5
\tNS ns1.rpz.example.
    NS ns2.rpz.example.
stop.example A 192.0.2.1
  AAAA 2001:db8::1
\t300 IN A 192.0.2.1 ; the same record twice is one record
";
        let p = ok(text);
        assert_eq!(summary(&p), [row("stop.example", Scope::Exact, Action::Redirect, 5)]);
        assert_eq!(
            p.entries[0].stop,
            Some(Stop { v4: Some(Ipv4Addr::new(192, 0, 2, 1)), v6: Some("2001:db8::1".parse().unwrap()) })
        );
    }

    #[test]
    fn parentheses_comments_and_quotes() {
        let text = "\
$ORIGIN rpz.example. ; comment after a directive
@ ( IN SOA ; the SOA starts here
    ns.rpz.example. ; mname
    hostmaster.rpz.example.
    ( 1 2 ) 3 ; nested parentheses
    4
    5 )

; a comment line, then blank lines

bad.example ( CNAME
  . )
after.example CNAME . ; the line numbers keep counting
";
        let p = ok(text);
        assert_eq!(
            summary(&p),
            [
                row("bad.example", Scope::Exact, Action::Nxdomain, 11),
                row("after.example", Scope::Exact, Action::Nxdomain, 13)
            ]
        );
        let mut errors = Vec::new();
        let records = read_records("a TXT \"x ; (y)\" ; gone\n b \\; c\n", &mut errors, Path::new(FILE));
        assert!(errors.is_empty());
        let tokens: Vec<Vec<(&str, bool)>> =
            records.iter().map(|r| r.tokens.iter().map(|t| (t.text.as_str(), t.quoted)).collect()).collect();
        assert_eq!(
            tokens,
            [vec![("a", false), ("TXT", false), ("x ; (y)", true)], vec![("b", false), ("\\;", false), ("c", false)]]
        );
        assert_eq!(
            (records[0].line, records[0].blank_owner, records[1].line, records[1].blank_owner),
            (1, false, 2, true)
        );
    }

    #[test]
    fn ttl_and_class_in_either_order_and_any_case() {
        let text = format!(
            "{HEAD}\
a 300 IN CNAME .
b IN 300 CNAME .
c 1h30m in cname .
d In 2W cName .
e 3600 CNAME .
f IN CNAME .
g CNAME .
h 60 IN a 192.0.2.1
h IN 60 aaaa 2001:db8::1
"
        );
        let p = ok(&text);
        let got: Vec<_> = p.entries.iter().map(|e| (names::display(&e.labels), e.action)).collect();
        let mut want: Vec<_> =
            ["a", "b", "c", "d", "e", "f", "g"].iter().map(|n| (n.to_string(), Action::Nxdomain)).collect();
        want.push(("h".to_string(), Action::Redirect));
        assert_eq!(got, want);
    }

    #[test]
    fn name_and_wildcard_are_separate_triggers() {
        let text = format!(
            "{HEAD}\
example.com CNAME .
*.example.com CNAME .
*.sub.example.net CNAME rpz-drop.
sub.example.net CNAME rpz-passthru.
*.wild.example.rpz.example. CNAME *.
"
        );
        assert_eq!(
            summary(&ok(&text)),
            [
                row("example.com", Scope::Exact, Action::Nxdomain, 9),
                row("example.com", Scope::Below, Action::Nxdomain, 10),
                row("sub.example.net", Scope::Below, Action::Drop, 11),
                row("sub.example.net", Scope::Exact, Action::Allow, 12),
                row("wild.example", Scope::Below, Action::Nodata, 13),
            ]
        );
    }

    #[test]
    fn a_and_aaaa_merge_into_one_entry() {
        let text = format!(
            "{HEAD}\
v6.example AAAA 2001:db8::53
both.example A 192.0.2.7
*.both.example A 192.0.2.8
both.example AAAA 2001:db8::7
both.example A 192.0.2.7
"
        );
        let p = ok(&text);
        assert_eq!(
            summary(&p),
            [
                row("v6.example", Scope::Exact, Action::Redirect, 9),
                row("both.example", Scope::Exact, Action::Redirect, 10),
                row("both.example", Scope::Below, Action::Redirect, 11),
            ]
        );
        let stops: Vec<_> = p.entries.iter().map(|e| e.stop).collect();
        assert_eq!(
            stops,
            [
                Some(Stop { v4: None, v6: Some("2001:db8::53".parse().unwrap()) }),
                Some(Stop { v4: Some(Ipv4Addr::new(192, 0, 2, 7)), v6: Some("2001:db8::7".parse().unwrap()) }),
                Some(Stop { v4: Some(Ipv4Addr::new(192, 0, 2, 8)), v6: None }),
            ]
        );
    }

    #[test]
    fn idn_owners_become_a_labels() {
        let text = format!("{HEAD}Bücher.example CNAME .\n*.ÉCOLE.fr.rpz.example. CNAME rpz-drop.\n");
        assert_eq!(
            summary(&ok(&text)),
            [
                row("xn--bcher-kva.example", Scope::Exact, Action::Nxdomain, 9),
                row("xn--cole-9oa.fr", Scope::Below, Action::Drop, 10),
            ]
        );
    }

    #[test]
    fn crlf_and_byte_order_mark() {
        let p = ok("\u{feff}$ORIGIN rpz.example.\r\nbad.example CNAME .\r\n");
        assert_eq!(summary(&p), [row("bad.example", Scope::Exact, Action::Nxdomain, 2)]);
    }

    #[test]
    fn zone_without_triggers() {
        let p = ok(HEAD);
        assert!(p.entries.is_empty());
        assert_eq!(p.orders[0].id, "rpz:rpz.example");
        let p = parse(Path::new("/zones/empty.rpz"), "; nothing\n\n").unwrap();
        assert!(p.entries.is_empty());
        assert_eq!(p.orders[0].id, "rpz:empty.rpz");
    }

    #[test]
    fn special_triggers_are_refused() {
        let text = format!(
            "{HEAD}\
32.1.2.0.192.rpz-client-ip CNAME rpz-drop.
24.0.2.0.192.rpz-ip CNAME .
ns.example.com.rpz-nsdname CNAME .
32.53.2.0.192.rpz-nsip CNAME .
*.evil.example.rpz-nsdname.rpz.example. CNAME .
  CNAME rpz-drop.
"
        );
        let e = errors(&text);
        assert_eq!(e.len(), 6, "{e:#?}");
        assert!(e[0].starts_with(&format!("{FILE}:9: rpz-client-ip triggers are not supported")), "{}", e[0]);
        assert!(e[1].starts_with(&format!("{FILE}:10: rpz-ip triggers are not supported")), "{}", e[1]);
        assert_eq!(
            e[2],
            format!("{FILE}:11: rpz-nsdname triggers are not supported (an XDP query filter only sees the query name)")
        );
        assert!(e[3].starts_with(&format!("{FILE}:12: rpz-nsip triggers are not supported")), "{}", e[3]);
        assert!(e[4].starts_with(&format!("{FILE}:13: rpz-nsdname triggers")), "{}", e[4]);
        assert!(e[5].starts_with(&format!("{FILE}:14: rpz-nsdname triggers")), "{}", e[5]);
    }

    #[test]
    fn include_is_refused() {
        error(&format!("{HEAD}$INCLUDE other.rpz\n"), &format!("{FILE}:9: $INCLUDE is not supported"));
    }

    #[test]
    fn cname_rewrites_are_refused() {
        let text = format!(
            "{HEAD}\
garden.example CNAME walled.garden.example.
relative.example CNAME rpz-passthru
star.example CNAME *
skip.example CNAME rpz-skipzone.
self.example CNAME self.example.
two.example CNAME . .
"
        );
        let e = errors(&text);
        assert_eq!(e.len(), 6, "{e:#?}");
        assert!(
            e[0].starts_with(&format!(
                "{FILE}:9: CNAME to walled.garden.example. rewrites the answer to another name (a walled garden), \
                 which is not supported; give the stop-page address as A/AAAA records"
            )),
            "{}",
            e[0]
        );
        assert_eq!(
            e[1],
            format!(
                "{FILE}:10: CNAME target rpz-passthru has no trailing dot, so it is the name rpz-passthru.rpz.example \
                 (a rewrite); write rpz-passthru. for the policy"
            )
        );
        assert!(e[2].starts_with(&format!("{FILE}:11: CNAME target * has no trailing dot")), "{}", e[2]);
        assert!(e[3].starts_with(&format!("{FILE}:12: rpz-skipzone. is not supported")), "{}", e[3]);
        assert!(e[4].starts_with(&format!("{FILE}:13: CNAME to the trigger's own name")), "{}", e[4]);
        assert!(e[5].starts_with(&format!("{FILE}:14: CNAME record takes one target name, found 2")), "{}", e[5]);
    }

    #[test]
    fn local_data_other_than_addresses_is_refused() {
        let text = format!(
            "{HEAD}\
txt.example TXT \"blocked by policy; see https://example.net\"
mx.example MX 10 mail.example.
deleg.example NS ns.elsewhere.example.
bad4.example A 2001:db8::1
bad6.example AAAA 192.0.2.1
"
        );
        let e = errors(&text);
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].starts_with(&format!("{FILE}:9: TXT records are not supported on a trigger")), "{}", e[0]);
        assert!(e[1].starts_with(&format!("{FILE}:10: MX records are not supported on a trigger")), "{}", e[1]);
        assert!(e[2].starts_with(&format!("{FILE}:11: NS records are not supported on a trigger")), "{}", e[2]);
        assert_eq!(e[3], format!("{FILE}:12: A record: \"2001:db8::1\" is not an IPv4 address"));
        assert_eq!(e[4], format!("{FILE}:13: AAAA record: \"192.0.2.1\" is not an IPv6 address"));
    }

    #[test]
    fn owner_outside_the_origin_is_refused() {
        error(
            &format!("{HEAD}bad.example.com. CNAME .\n"),
            &format!("{FILE}:9: owner bad.example.com is outside the zone origin rpz.example"),
        );
    }

    #[test]
    fn missing_origin_is_reported_once() {
        error(
            "bad.example. CNAME .\nworse.example. CNAME .\n",
            &format!(
                "{FILE}:1: no zone origin before the first trigger: start the zone with $ORIGIN or its SOA record"
            ),
        );
        error(
            "; no origin\nbad.example CNAME .\nworse.example CNAME .\n",
            &format!("{FILE}:2: owner \"bad.example\" is relative, but no $ORIGIN or SOA record before it"),
        );
        error(
            "@ SOA ns. host. 1 2 3 4 5\n",
            &format!("{FILE}:1: owner \"@\" stands for the origin, but no $ORIGIN or SOA record before it"),
        );
    }

    #[test]
    fn conflicting_actions_name_both_lines() {
        let text = format!(
            "{HEAD}\
bad.example CNAME .
other.example CNAME rpz-drop.
bad.example CNAME rpz-passthru.
stop.example A 192.0.2.1
stop.example CNAME .
other.example A 192.0.2.1
stop.example A 192.0.2.2
*.bad.example CNAME .
"
        );
        let e = errors(&text);
        assert_eq!(
            e,
            [
                format!("{FILE}:11: bad.example is given two actions: nxdomain (line 9) and allow (line 11)"),
                format!("{FILE}:13: stop.example is given two actions: redirect (line 12) and nxdomain (line 13)"),
                format!("{FILE}:14: other.example is given two actions: drop (line 10) and redirect (line 14)"),
                format!(
                    "{FILE}:15: stop.example has more than one A record (192.0.2.1 on line 12, 192.0.2.2 here); \
                     only one stop-page address per family is supported"
                ),
            ]
        );
    }

    #[test]
    fn apex_and_wildcard_misuse() {
        let text = format!(
            "{HEAD}\
@ CNAME .
* CNAME .
a.*.example CNAME .
"
        );
        let e = errors(&text);
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].starts_with(&format!("{FILE}:9: CNAME record at the zone apex rpz.example")), "{}", e[0]);
        assert!(e[1].starts_with(&format!("{FILE}:10: *.rpz.example would trigger on every name")), "{}", e[1]);
        assert!(e[2].starts_with(&format!("{FILE}:11: \"a.*.example\": a wildcard is only allowed")), "{}", e[2]);
    }

    #[test]
    fn syntax_errors() {
        let text = "\
$ORIGIN rpz.example.
  CNAME .
a CH CNAME .
b 300
c TXT \"never closed
d CNAME . )
$TTL forever
$GENERATE 1-10 host$ CNAME .
bad..name CNAME .
e IN SOA ns. host. 1 2 3
e ( CNAME .
";
        let e = errors(text);
        assert_eq!(
            e,
            [
                format!(
                    "{FILE}:2: the line starts with a space, which repeats the previous owner name, \
                     but no record comes before it"
                ),
                format!("{FILE}:3: class CH is not supported: a policy zone is class IN"),
                format!("{FILE}:4: record has no type"),
                format!("{FILE}:5: quoted string is not closed on its line"),
                format!("{FILE}:6: ')' without a matching '('"),
                format!("{FILE}:7: $TTL takes one TTL (seconds, or units such as 1h30m)"),
                format!("{FILE}:8: $GENERATE is not supported: write the records out"),
                format!("{FILE}:9: invalid name \"bad..name\": empty label"),
                format!(
                    "{FILE}:10: SOA record needs 7 fields (mname rname serial refresh retry expire minimum), found 5"
                ),
                format!("{FILE}:11: '(' is never closed"),
            ]
        );
    }

    #[test]
    fn second_soa_and_late_soa() {
        error(
            &format!("{HEAD}@ SOA ns. host. 1 2 3 4 5\n"),
            &format!("{FILE}:9: a second SOA record (the first is on line 3)"),
        );
        error(
            "$ORIGIN rpz.example.\nbad.example CNAME .\nother.example. SOA ns. host. 1 2 3 4 5\n",
            &format!("{FILE}:3: the SOA record's owner other.example is not the zone origin rpz.example"),
        );
    }

    #[test]
    fn all_errors_are_collected() {
        let text = format!(
            "{HEAD}\
1.rpz-ip CNAME .
txt.example TXT x
fine.example CNAME .
out.example. CNAME .
$INCLUDE x
"
        );
        let lines: Vec<String> = errors(&text).iter().map(|e| e.split(": ").next().unwrap_or("").to_string()).collect();
        assert_eq!(lines, [format!("{FILE}:9"), format!("{FILE}:10"), format!("{FILE}:12"), format!("{FILE}:13")]);
    }

    #[test]
    fn ttls_and_classes() {
        for t in ["0", "300", "4294967295", "1h", "1H30m", "2w1d", "1h30"] {
            assert!(is_ttl(t), "{t}");
        }
        for t in ["", "h", "1x", "4294967296", "-1", "1.5h"] {
            assert!(!is_ttl(t), "{t}");
        }
        for c in ["IN", "in", "CH", "HS", "ANY", "CLASS1"] {
            assert!(is_class(c), "{c}");
        }
        for c in ["A", "CNAME", "CLASS", "CLASSx"] {
            assert!(!is_class(c), "{c}");
        }
    }

    #[test]
    fn absolute_names() {
        assert!(is_absolute("a."));
        assert!(is_absolute("a\\\\."));
        assert!(!is_absolute("a\\."));
        assert!(!is_absolute("a"));
    }
}
