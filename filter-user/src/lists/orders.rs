//! Court orders: the native list format. A TOML file (`.toml`) holds one `[[order]]` table per
//! decision, with its provenance (who decided, the reference, when), what it blocks and how,
//! and the mirrors added later with their approval. Every blocked name can be traced back to
//! the decision or approval that lists it.
//!
//! # Example
//!
//! ```toml
//! # Optional global settings, the keys of the config file's [settings] table.
//! [settings]
//! stop_v4 = "192.0.2.80"
//! stop_v6 = "2001:db8::80"
//!
//! [[order]]
//! id = "tj-paris-2013-allostreaming"   # unique across every orders file loaded: A-Z a-z 0-9 . _ : -, at most 64
//! authority = "Tribunal de grande instance de Paris"
//! reference = "RG 11/60013"
//! decided = 2013-11-28                 # the decision date (a TOML date, unquoted)
//! effective = 2013-12-10               # optional: blocking starts (default: decided)
//! expires = 2014-11-28                 # optional: blocking lifts (default: never)
//! action = "redirect"                  # nxdomain nodata refused truncate redirect drop
//! ede = "censored"                     # optional: censored (default) | blocked | none
//! mode = "enforce"                     # optional: enforce (default) | monitor
//! stop_v4 = "192.0.2.81"               # optional, redirect only: this order's stop page
//! stop_v6 = "2001:db8::81"
//! names = [
//!     "allostreaming.com",                            # the name and every name below it
//!     "alloshowtv.com",
//!     { name = "*.allomovies.com" },                  # the names below, not the name itself
//!     { name = "alloshare.com", scope = "exact" },    # the name itself only
//!     { name = "google-mirror.example", override = "why blocking this protected name is intended" },
//! ]
//! allow = ["help.allostreaming.com"]   # optional: exceptions, names this order must not block
//!
//! [[order.mirror]]                     # a mirror added after the decision, without a new judgment
//! name = "allostreaming.net"           # or "*.name"; `scope` and `override` as in `names`
//! approved_by = "ARCOM"                # who approved it
//! approved = 2014-02-01                # when (a TOML date, not before `decided`)
//! reference = "ARCOM-2014-017"         # the approval's reference
//! ```
//!
//! # Keys of an `[[order]]`
//!
//! | Key | Required | Meaning |
//! |---|---|---|
//! | `id` | yes | Unique in the file; `A-Z a-z 0-9 . _ : -`, 1 to 64 characters. Names the order in counters and reports. |
//! | `authority` | yes | The court or regulator that decided. |
//! | `reference` | yes | The decision's reference (docket number). |
//! | `decided` | yes | The decision date, a TOML date (`2013-11-28`, no quotes, no time). |
//! | `effective` | no | When blocking starts; default `decided`. Not before `decided`. |
//! | `expires` | no | When blocking lifts; after `effective`. Default: never. |
//! | `action` | yes | `nxdomain`, `nodata`, `refused`, `truncate`, `redirect` or `drop`. `allow` and `monitor` are not order actions: use `allow = [...]` and `mode`. |
//! | `ede` | no | Extended DNS Error of answers: `censored` (default, INFO-CODE 16), `blocked` (15) or `none`. |
//! | `mode` | no | `enforce` (default), or `monitor`: count the matches, do not block (a dry run). |
//! | `stop_v4`, `stop_v6` | no | This order's stop-page addresses; only with `action = "redirect"`. Default: those of `[settings]` or the config. |
//! | `names` | one of `names`, `mirror` | The names the decision lists. |
//! | `allow` | no | Exceptions: names at or below a blocked name that the order must not block. |
//! | `[[order.mirror]]` | one of `names`, `mirror` | Mirrors approved after the decision: `name`, `scope`, `override` as in `names`, and `approved_by`, `approved` (a date, not before `decided`), `reference`, all three required. |
//!
//! Dates: a TOML date is 00:00:00 UTC that day. `effective` and `expires` may also be date-times:
//! `2013-12-10T00:00:00+01:00` is converted to UTC, `2013-12-10T00:00:00` is taken as UTC. An
//! order is in force from `effective` (included) to `expires` (excluded).
//!
//! # Names
//!
//! Names are canonicalised like every list's (see [`crate::names`]): case is folded, a trailing
//! dot dropped, Unicode names written as A-labels (`bücher.example` is `xn--bcher-kva.example`).
//!
//! | Written | Scope | Blocks |
//! |---|---|---|
//! | `"x.com"` | subtree | `x.com` and every name below it |
//! | `"*.x.com"` | below | the names below `x.com`, not `x.com` itself |
//! | `{ name = "x.com", scope = "exact" }` | exact | `x.com` only |
//! | `{ name = "x.com", scope = "below" }` | below | as `"*.x.com"` |
//!
//! A table entry may carry `override`: the reason why blocking a protected name (a major
//! service on the protected list) is intended. Nothing lets a public suffix through. Without it, such names are refused when lists are
//! loaded. The reason cannot be empty.
//!
//! # What is refused
//!
//! Every problem of the file is reported as `file:line: reason`, and nothing from the file is
//! used: TOML syntax errors (all of them; nothing else is checked then), unknown keys, values
//! of the wrong type, missing required keys, duplicate order ids, ids with other characters or
//! longer than 64, unknown `action`, `ede`, `mode` or `scope` values, `allow` or `monitor` as
//! the action, `decided` or `approved` with a time of day, `effective` before `decided`,
//! `expires` not after `effective`, a mirror without its complete approval or approved before
//! the decision, invalid names, a name listed twice in one order (with overlapping scopes), a
//! name both blocked and allowed, an exception not below any name of its order, an empty
//! `override` or one on an exception, `stop_v4`/`stop_v6` without `action = "redirect"`, and
//! `[settings]` with bad values.
//!
//! A wrong type or an unknown key ends the checks of its `[[order]]` (or `[settings]`) table;
//! every other order is still checked, and every other problem is reported.

use std::{
    collections::HashMap,
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    ops::Range,
    path::Path,
};

use filter_common::table::{Action, Ede};
use serde::{Deserialize, Deserializer, de};
use toml::{
    Spanned,
    de::{DeTable, DeValue, ValueDeserializer},
    value::Datetime,
};

use super::{Decision, Diagnostic, How, Listed, Loc, Order, Parsed};
use crate::{
    config::{Settings, SettingsFile},
    names,
    table::{Scope, Stop},
    time,
};

/// Longest order id, in characters.
pub const ID_MAX: usize = 64;

/// One `[[order]]` table as written. Required keys are optional here so that each missing one
/// gets its own diagnostic.
#[derive(Deserialize)]
#[serde(rename = "order", deny_unknown_fields)]
struct RawOrder {
    id: Option<Spanned<String>>,
    authority: Option<Spanned<String>>,
    reference: Option<Spanned<String>>,
    decided: Option<Spanned<Datetime>>,
    effective: Option<Spanned<Datetime>>,
    expires: Option<Spanned<Datetime>>,
    action: Option<Spanned<String>>,
    ede: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    stop_v4: Option<Spanned<Ipv4Addr>>,
    stop_v6: Option<Spanned<Ipv6Addr>>,
    names: Option<Vec<Spanned<NameEntry>>>,
    allow: Option<Vec<Spanned<NameEntry>>>,
    mirror: Option<Vec<Spanned<RawMirror>>>,
}

/// One `[[order.mirror]]` table as written.
#[derive(Deserialize)]
#[serde(rename = "mirror", deny_unknown_fields)]
struct RawMirror {
    name: Option<Spanned<String>>,
    scope: Option<Spanned<String>>,
    #[serde(rename = "override")]
    override_reason: Option<Spanned<String>>,
    approved_by: Option<Spanned<String>>,
    approved: Option<Spanned<Datetime>>,
    reference: Option<Spanned<String>>,
}

/// An element of `names` or `allow`: a string, or a table with options.
enum NameEntry {
    Text(String),
    Table(NameTable),
}

#[derive(Deserialize)]
#[serde(rename = "name table", deny_unknown_fields)]
struct NameTable {
    name: Option<Spanned<String>>,
    scope: Option<Spanned<String>>,
    #[serde(rename = "override")]
    override_reason: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for NameEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> de::Visitor<'de> for EntryVisitor {
            type Value = NameEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a name (\"x.com\", \"*.x.com\") or a table { name = \"x.com\", scope = ..., override = ... }",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<NameEntry, E> {
                Ok(NameEntry::Text(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<NameEntry, E> {
                Ok(NameEntry::Text(v))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<NameEntry, A::Error> {
                NameTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(NameEntry::Table)
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

/// Parses a court-orders file held in `text` (read from `file`).
pub fn parse(file: &Path, text: &str) -> Result<Parsed, Vec<Diagnostic>> {
    let mut ck = Checker::new(file, text);
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in &syntax {
            let line = e.span().map_or(0, |s| ck.line(&s));
            ck.errors.push(Diagnostic::new(file, line, format!("invalid TOML: {}", e.message())));
        }
        return Err(ck.finish());
    }
    let mut parsed = Parsed::default();
    let mut ids = HashMap::new();
    for (key, value) in root.into_inner() {
        let span = value.span();
        match key.get_ref().as_ref() {
            "settings" => {
                if !value.get_ref().is_table() {
                    ck.error(&span, "`settings` must be a table: write [settings]");
                    continue;
                }
                match SettingsFile::deserialize(ValueDeserializer::from(value)) {
                    Ok(s) => {
                        if let Err(e) = check_settings(&s) {
                            ck.error(&span, format!("invalid [settings]: {e}"));
                        }
                        parsed.settings = Some(s);
                    }
                    Err(e) => ck.serde_error(&e, &span),
                }
            }
            "order" => match value.into_inner() {
                DeValue::Array(orders) => {
                    for order in orders {
                        if let Some((order, mut entries)) = ck.order(order, &mut ids) {
                            let index = parsed.orders.len();
                            entries.iter_mut().for_each(|e| e.order = index);
                            parsed.orders.push(order);
                            parsed.entries.extend(entries);
                        }
                    }
                }
                _ => ck.error(&span, "`order` must be an array of tables: write each order as [[order]]"),
            },
            other => ck.error(
                &key.span(),
                format!("unknown key `{other}`: an orders file holds a [settings] table and [[order]] tables only"),
            ),
        }
    }
    if ck.errors.is_empty() { Ok(parsed) } else { Err(ck.finish()) }
}

/// Checks settings values the way the program will use them (ports, SOA names).
fn check_settings(file: &SettingsFile) -> Result<(), String> {
    let mut s = Settings::default();
    if let Some(ports) = &file.ports {
        s.ports.clone_from(ports);
    }
    if let Some(soa) = &file.soa {
        let d = &mut s.soa;
        d.mname = soa.mname.clone().unwrap_or_else(|| d.mname.clone());
        d.rname = soa.rname.clone().unwrap_or_else(|| d.rname.clone());
        d.serial = soa.serial.unwrap_or(d.serial);
        d.refresh = soa.refresh.unwrap_or(d.refresh);
        d.retry = soa.retry.unwrap_or(d.retry);
        d.expire = soa.expire.unwrap_or(d.expire);
        d.negative_ttl = soa.negative_ttl.unwrap_or(d.negative_ttl);
    }
    s.to_config().map(|_| ()).map_err(|e| e.to_string())
}

/// A blocked or allowed name of an order, checked.
struct Pattern {
    labels: Vec<Vec<u8>>,
    scope: Scope,
    override_reason: Option<String>,
    line: usize,
}

impl Pattern {
    fn text(&self) -> String {
        let name = names::display(&self.labels);
        if self.scope == Scope::Below { format!("*.{name}") } else { name }
    }

    /// Whether the two patterns block some name in common, being the same name.
    fn same_name(&self, other: &Pattern) -> bool {
        self.labels == other.labels
            && !matches!((self.scope, other.scope), (Scope::Exact, Scope::Below) | (Scope::Below, Scope::Exact))
    }

    /// Whether this blocked pattern covers `name` (which is not the same name).
    fn covers(&self, name: &Pattern) -> bool {
        match self.scope {
            Scope::Exact => false,
            Scope::Subtree | Scope::Below => {
                names::is_at_or_below(&name.labels, &self.labels) && name.labels.len() > self.labels.len()
            }
        }
    }
}

/// Collects the diagnostics of one file.
struct Checker<'a> {
    file: &'a Path,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    errors: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a Path, text: &str) -> Checker<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1))
            .collect();
        Checker { file, line_starts, errors: Vec::new() }
    }

    /// 1-based line of the start of `span`.
    fn line(&self, span: &Range<usize>) -> usize {
        self.line_starts.partition_point(|&start| start <= span.start)
    }

    fn loc(&self, span: &Range<usize>) -> Loc {
        Loc { file: self.file.to_path_buf(), line: self.line(span) }
    }

    fn error(&mut self, span: &Range<usize>, reason: impl Into<String>) {
        self.errors.push(Diagnostic::new(self.file, self.line(span), reason));
    }

    /// A deserialization error (wrong type, unknown key), at its own span or else at `table`.
    fn serde_error(&mut self, e: &toml::de::Error, table: &Range<usize>) {
        let span = e.span().unwrap_or_else(|| table.clone());
        // Without the input, the error shows its message and the key it happened in.
        let shown = e.to_string();
        let reason = shown.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        self.error(&span, reason);
    }

    /// The diagnostics in line order.
    fn finish(mut self) -> Vec<Diagnostic> {
        self.errors.sort_by_key(|d| d.line);
        self.errors
    }

    /// Checks one `[[order]]`; `None` when it has problems (all of them recorded).
    fn order(&mut self, value: Spanned<DeValue<'_>>, ids: &mut HashMap<String, usize>) -> Option<(Order, Vec<Listed>)> {
        let table = value.span();
        if !value.get_ref().is_table() {
            self.error(&table, "each order must be a table: write [[order]]");
            return None;
        }
        let raw = match RawOrder::deserialize(ValueDeserializer::from(value)) {
            Ok(raw) => raw,
            Err(e) => {
                self.serde_error(&e, &table);
                return None;
            }
        };
        let before = self.errors.len();

        let id = self.required(raw.id.as_ref(), "id", "order", &table);
        if let (Some(id), Some(written)) = (&id, &raw.id) {
            self.check_id(id, &written.span(), ids);
        }
        let what = id.as_deref().map_or_else(|| "order".to_string(), |id| format!("order {id:?}"));
        let authority = self.required(raw.authority.as_ref(), "authority", &what, &table);
        let reference = self.required(raw.reference.as_ref(), "reference", &what, &table);
        let decided = match &raw.decided {
            Some(d) => self.date_only(d, "decided"),
            None => {
                self.error(&table, format!("{what} has no `decided` (the decision date)"));
                None
            }
        };
        let effective = match &raw.effective {
            Some(e) => {
                let t = self.point(e, "effective");
                if let (Some(t), Some(d), Some(dd)) = (t, decided, &raw.decided)
                    && t < d
                {
                    self.error(
                        &e.span(),
                        format!("effective {} is before the decision (decided {})", e.get_ref(), dd.get_ref()),
                    );
                }
                t
            }
            None => decided,
        };
        let expires = raw.expires.as_ref().and_then(|x| {
            let t = self.point(x, "expires")?;
            if let Some(start) = effective
                && t <= start
            {
                let since = match (&raw.effective, &raw.decided) {
                    (Some(e), _) => format!("effective {}", e.get_ref()),
                    (None, Some(d)) => format!("effective, by default decided {}", d.get_ref()),
                    (None, None) => "effective".to_string(),
                };
                self.error(&x.span(), format!("expires {} is not after the order takes effect ({since})", x.get_ref()));
            }
            Some(t)
        });
        let action = match &raw.action {
            Some(a) => self.action(a),
            None => {
                self.error(&table, format!("{what} has no `action` ({})", order_actions()));
                None
            }
        };
        let ede = match &raw.ede {
            None => Some(Ede::Censored),
            Some(e) => match e.get_ref().as_str() {
                "censored" => Some(Ede::Censored),
                "blocked" => Some(Ede::Blocked),
                "none" => Some(Ede::None),
                other => {
                    self.error(&e.span(), format!("unknown ede {other:?}; expected censored, blocked or none"));
                    None
                }
            },
        };
        let monitor = match &raw.mode {
            None => Some(false),
            Some(m) => match m.get_ref().as_str() {
                "enforce" => Some(false),
                "monitor" => Some(true),
                other => {
                    self.error(&m.span(), format!("unknown mode {other:?}; expected enforce or monitor"));
                    None
                }
            },
        };
        let stop = if raw.stop_v4.is_some() || raw.stop_v6.is_some() {
            if let Some(a) = action
                && a != Action::Redirect
            {
                let spans = [
                    ("stop_v4", raw.stop_v4.as_ref().map(Spanned::span)),
                    ("stop_v6", raw.stop_v6.as_ref().map(Spanned::span)),
                ];
                for (key, span) in spans {
                    if let Some(span) = span {
                        self.error(
                            &span,
                            format!(
                                "`{key}` is only valid with action = \"redirect\" (this order's action is {:?})",
                                a.name()
                            ),
                        );
                    }
                }
            }
            Some(Stop {
                v4: raw.stop_v4.as_ref().map(|s| *s.get_ref()),
                v6: raw.stop_v6.as_ref().map(|s| *s.get_ref()),
            })
        } else {
            None
        };

        // Blocked names: those of the decision, then the mirrors.
        let no_names = raw.names.as_ref().is_none_or(Vec::is_empty) && raw.mirror.as_ref().is_none_or(Vec::is_empty);
        if no_names {
            self.error(&table, format!("{what} blocks no name: give `names` or at least one [[order.mirror]]"));
        }
        let names_before = self.errors.len();
        let mut blocked: Vec<(Pattern, How)> = Vec::new();
        for entry in raw.names.unwrap_or_default() {
            if let Some(p) = self.entry(entry, true) {
                self.add_blocked(&mut blocked, p, How::Named);
            }
        }
        for mirror in raw.mirror.unwrap_or_default() {
            self.mirror(mirror, decided, raw.decided.as_ref(), &mut blocked);
        }
        let names_ok = self.errors.len() == names_before;

        let mut allowed: Vec<Pattern> = Vec::new();
        for entry in raw.allow.unwrap_or_default() {
            let Some(p) = self.entry(entry, false) else { continue };
            if let Some((b, _)) = blocked.iter().find(|(b, _)| b.labels == p.labels) {
                self.error_at(
                    p.line,
                    format!(
                        "{} is both blocked (line {}) and allowed in this order",
                        names::display(&p.labels),
                        b.line
                    ),
                );
            } else if let Some(first) = allowed.iter().find(|a| a.same_name(&p)) {
                self.error_at(
                    p.line,
                    format!("{} is allowed twice in this order (first at line {})", p.text(), first.line),
                );
            } else if names_ok && !blocked.iter().any(|(b, _)| b.covers(&p)) {
                self.error_at(p.line, format!("allow exception {} is not below any name this order blocks", p.text()));
            } else {
                allowed.push(p);
            }
        }

        if self.errors.len() > before {
            return None;
        }
        let (Some(id), Some(authority), Some(reference), Some(decided), Some(action), Some(ede), Some(monitor)) =
            (id, authority, reference, decided, action, ede, monitor)
        else {
            return None;
        };
        let order = Order {
            id,
            decision: Some(Decision { authority, reference, decided: time::date(decided) }),
            effective,
            expires,
            monitor,
            loc: self.loc(&table),
        };
        let listed = |p: Pattern, action, ede, stop, how| Listed {
            labels: p.labels,
            scope: p.scope,
            action,
            ede,
            stop,
            order: 0,
            how,
            loc: Loc { file: self.file.to_path_buf(), line: p.line },
            override_reason: p.override_reason,
        };
        let mut entries: Vec<Listed> = blocked.into_iter().map(|(p, how)| listed(p, action, ede, stop, how)).collect();
        entries.extend(allowed.into_iter().map(|p| listed(p, Action::Allow, Ede::None, None, How::Exception)));
        Some((order, entries))
    }

    fn error_at(&mut self, line: usize, reason: impl Into<String>) {
        self.errors.push(Diagnostic::new(self.file, line, reason));
    }

    /// A required, non-empty string of `what`.
    fn required(
        &mut self,
        value: Option<&Spanned<String>>,
        key: &str,
        what: &str,
        table: &Range<usize>,
    ) -> Option<String> {
        match value {
            None => {
                self.error(table, format!("{what} has no `{key}`"));
                None
            }
            Some(v) if v.get_ref().trim().is_empty() => {
                self.error(&v.span(), format!("`{key}` is empty"));
                None
            }
            Some(v) => Some(v.get_ref().trim().to_string()),
        }
    }

    fn check_id(&mut self, id: &str, span: &Range<usize>, ids: &mut HashMap<String, usize>) {
        let line = self.line(span);
        if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))) {
            self.error(span, format!("order id {id:?} has the character {bad:?}; ids use A-Z a-z 0-9 . _ : - only"));
        }
        let len = id.chars().count();
        if len > ID_MAX {
            self.error(span, format!("order id {id:?} has {len} characters, at most {ID_MAX}"));
        }
        if let Some(first) = ids.get(id) {
            self.error(span, format!("duplicate order id {id:?} (first at line {first})"));
        } else {
            ids.insert(id.to_string(), line);
        }
    }

    /// A date without a time of day (`decided`, `approved`), in Unix seconds.
    fn date_only(&mut self, d: &Spanned<Datetime>, key: &str) -> Option<i64> {
        let dt = d.get_ref();
        if dt.date.is_none() || dt.time.is_some() || dt.offset.is_some() {
            self.error(&d.span(), format!("`{key}` must be a date (YYYY-MM-DD), not {dt}"));
            return None;
        }
        self.point(d, key)
    }

    /// A date or date-time (`effective`, `expires`), in Unix seconds.
    fn point(&mut self, d: &Spanned<Datetime>, key: &str) -> Option<i64> {
        time::parse_toml_datetime(d.get_ref()).map_err(|e| self.error(&d.span(), format!("`{key}`: {e}"))).ok()
    }

    fn action(&mut self, a: &Spanned<String>) -> Option<Action> {
        match Action::from_name(a.get_ref()) {
            Some(Action::Allow) => self.error(
                &a.span(),
                "action \"allow\" is not an order's action: list the names the order must not block in `allow = [...]`",
            ),
            Some(Action::Monitor) => self.error(
                &a.span(),
                "action \"monitor\" is not an order's action: keep the intended action and set mode = \"monitor\"",
            ),
            Some(action) => return Some(action),
            None => self.error(&a.span(), format!("unknown action {:?}; expected {}", a.get_ref(), order_actions())),
        }
        None
    }

    /// Checks a `names` or `allow` element.
    fn entry(&mut self, entry: Spanned<NameEntry>, may_override: bool) -> Option<Pattern> {
        let span = entry.span();
        match entry.into_inner() {
            NameEntry::Text(name) => self.pattern(&name, &span, &span, None, None, may_override),
            NameEntry::Table(t) => match &t.name {
                Some(name) => self.pattern(
                    name.get_ref(),
                    &name.span(),
                    &span,
                    t.scope.as_ref(),
                    t.override_reason.as_ref(),
                    may_override,
                ),
                None => {
                    self.error(&span, "name table has no `name`");
                    None
                }
            },
        }
    }

    /// Checks a name with its options. Errors about the name go to `name_span`; the entry is
    /// located at `entry_span`.
    fn pattern(
        &mut self,
        name: &str,
        name_span: &Range<usize>,
        entry_span: &Range<usize>,
        scope: Option<&Spanned<String>>,
        override_reason: Option<&Spanned<String>>,
        may_override: bool,
    ) -> Option<Pattern> {
        let before = self.errors.len();
        let (labels, wildcard) = names::canonical_pattern(name)
            .map_err(|e| self.error(name_span, format!("invalid name {name:?}: {e}")))
            .ok()?;
        let scope = match scope {
            None if wildcard => Scope::Below,
            None => Scope::Subtree,
            Some(s) => {
                let parsed = match s.get_ref().as_str() {
                    "subtree" => Scope::Subtree,
                    "exact" => Scope::Exact,
                    "below" => Scope::Below,
                    other => {
                        self.error(&s.span(), format!("unknown scope {other:?}; expected subtree, exact or below"));
                        return None;
                    }
                };
                if wildcard && parsed != Scope::Below {
                    self.error(
                        &s.span(),
                        format!(
                            "{name:?} means the names below {}, which contradicts scope = {:?}: drop the \"*.\" or the scope",
                            names::display(&labels),
                            s.get_ref()
                        ),
                    );
                }
                parsed
            }
        };
        let override_reason = match override_reason {
            None => None,
            Some(o) if !may_override => {
                self.error(&o.span(), "`override` applies to blocked names, not to allow exceptions");
                None
            }
            Some(o) if o.get_ref().trim().is_empty() => {
                self.error(&o.span(), "`override` is empty: write why blocking this protected name is intended");
                None
            }
            Some(o) => Some(o.get_ref().trim().to_string()),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(Pattern { labels, scope, override_reason, line: self.line(entry_span) })
    }

    /// Adds a blocked name unless the order already lists it.
    fn add_blocked(&mut self, blocked: &mut Vec<(Pattern, How)>, p: Pattern, how: How) {
        if let Some((first, _)) = blocked.iter().find(|(b, _)| b.same_name(&p)) {
            let reason = format!("{} is listed twice in this order (first at line {})", p.text(), first.line);
            self.error_at(p.line, reason);
        } else {
            blocked.push((p, how));
        }
    }

    /// Checks one `[[order.mirror]]`: its name and its complete approval.
    fn mirror(
        &mut self,
        mirror: Spanned<RawMirror>,
        decided: Option<i64>,
        decided_written: Option<&Spanned<Datetime>>,
        blocked: &mut Vec<(Pattern, How)>,
    ) {
        let table = mirror.span();
        let m = mirror.into_inner();
        let what = match &m.name {
            Some(n) => format!("mirror {:?}", n.get_ref()),
            None => "mirror".to_string(),
        };
        let pattern = match &m.name {
            Some(n) => {
                self.pattern(n.get_ref(), &n.span(), &n.span(), m.scope.as_ref(), m.override_reason.as_ref(), true)
            }
            None => {
                self.error(&table, "mirror has no `name`");
                None
            }
        };
        let approval = "a mirror is blocked only with its approval (approved_by, approved, reference)";
        let approval_field = |ck: &mut Checker<'_>, v: Option<&Spanned<String>>, key: &str| match v {
            None => {
                ck.error(&table, format!("{what} has no `{key}`: {approval}"));
                None
            }
            Some(v) => ck.required(Some(v), key, &what, &table),
        };
        let approved_by = approval_field(self, m.approved_by.as_ref(), "approved_by");
        let approved = match &m.approved {
            None => {
                self.error(&table, format!("{what} has no `approved`: {approval}"));
                None
            }
            Some(a) => {
                let t = self.date_only(a, "approved");
                if let (Some(t), Some(d), Some(dw)) = (t, decided, decided_written)
                    && t < d
                {
                    self.error(
                        &a.span(),
                        format!("approved {} is before the decision (decided {})", a.get_ref(), dw.get_ref()),
                    );
                }
                t
            }
        };
        let reference = approval_field(self, m.reference.as_ref(), "reference");
        if let (Some(p), Some(approved_by), Some(approved), Some(reference)) =
            (pattern, approved_by, approved, reference)
        {
            let how = How::Mirror { approved_by, approved: time::date(approved), reference };
            self.add_blocked(blocked, p, how);
        }
    }
}

/// The actions an order may have, for messages.
fn order_actions() -> String {
    let names: Vec<&str> =
        Action::ALL.iter().filter(|a| !matches!(a, Action::Allow | Action::Monitor)).map(|a| a.name()).collect();
    format!("one of {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/dnsfilter/orders.toml";

    fn ok(text: &str) -> Parsed {
        match parse(Path::new(FILE), text) {
            Ok(p) => p,
            Err(e) => panic!("{}", super::super::ListErrors(e)),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        parse(Path::new(FILE), text).expect_err("refused").iter().map(ToString::to_string).collect()
    }

    /// Asserts that `text` is refused with exactly one diagnostic, at `line`, containing `reason`.
    #[track_caller]
    fn refused(text: &str, line: usize, reason: &str) {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        let prefix = format!("{FILE}:{line}: ");
        assert!(e[0].starts_with(&prefix) && e[0].contains(reason), "expected {prefix}...{reason}..., got {:?}", e[0]);
    }

    /// A valid order on lines 1 to 7, then `extra` from line 8.
    fn order(extra: &str) -> String {
        format!(
            "[[order]]\nid = \"o1\"\nauthority = \"A\"\nreference = \"R\"\ndecided = 2013-11-28\naction = \"nxdomain\"\nnames = [\"x.com\"]\n{extra}"
        )
    }

    /// [`order`] without the line holding `key`; lines shift up after it.
    fn order_without(key: &str) -> String {
        order("").lines().filter(|l| !l.starts_with(&format!("{key} ="))).map(|l| format!("{l}\n")).collect()
    }

    fn name(l: &Listed) -> String {
        names::display(&l.labels)
    }

    const FULL: &str = r#"[settings]
stop_v4 = "192.0.2.80"
stop_v6 = "2001:db8::80"

[[order]]
id = "tj-paris-2013-allostreaming"
authority = "Tribunal de grande instance de Paris"
reference = "RG 11/60013"
decided = 2013-11-28
effective = 2013-12-10
expires = 2014-11-28
action = "nxdomain"
names = [
    "AlloStreaming.com.",
    "alloshowtv.com",
    { name = "*.allomovies.com" },
    { name = "alloshare.com", scope = "exact", override = "  named in the judgment " },
]
allow = ["help.allostreaming.com"]

[[order.mirror]]
name = "allostreaming.net"
approved_by = "ARCOM"
approved = 2014-02-01
reference = "ARCOM-2014-017"

[[order]]
id = "redirect-order"
authority = "Tribunal judiciaire de Paris"
reference = "RG 22/00001"
decided = 2022-05-01
action = "redirect"
ede = "blocked"
stop_v4 = "192.0.2.81"
stop_v6 = "2001:db8::81"
names = ["stop.example"]

[[order]]
id = "monitor-order"
authority = "ARCOM"
reference = "D-2023-1"
decided = 2023-01-02
action = "drop"
ede = "none"
mode = "monitor"
names = [{ name = "watch.example", scope = "below" }]
"#;

    #[test]
    fn full_allostreaming_example() {
        let p = ok(FULL);
        let settings = p.settings.as_ref().unwrap();
        assert_eq!(settings.stop_v4, Some(Ipv4Addr::new(192, 0, 2, 80)));
        assert_eq!(settings.stop_v6, Some("2001:db8::80".parse().unwrap()));
        assert_eq!(settings.ports, None);

        let loc = |line| Loc { file: FILE.into(), line };
        assert_eq!(
            p.orders,
            [
                Order {
                    id: "tj-paris-2013-allostreaming".into(),
                    decision: Some(Decision {
                        authority: "Tribunal de grande instance de Paris".into(),
                        reference: "RG 11/60013".into(),
                        decided: "2013-11-28".into(),
                    }),
                    effective: Some(1_386_633_600),
                    expires: Some(1_417_132_800),
                    monitor: false,
                    loc: loc(5),
                },
                Order {
                    id: "redirect-order".into(),
                    decision: Some(Decision {
                        authority: "Tribunal judiciaire de Paris".into(),
                        reference: "RG 22/00001".into(),
                        decided: "2022-05-01".into(),
                    }),
                    effective: Some(1_651_363_200),
                    expires: None,
                    monitor: false,
                    loc: loc(27),
                },
                Order {
                    id: "monitor-order".into(),
                    decision: Some(Decision {
                        authority: "ARCOM".into(),
                        reference: "D-2023-1".into(),
                        decided: "2023-01-02".into(),
                    }),
                    effective: Some(1_672_617_600),
                    expires: None,
                    monitor: true,
                    loc: loc(38),
                },
            ]
        );

        let e = &p.entries;
        let shown: Vec<_> = e.iter().map(|l| (name(l), l.scope, l.order, l.loc.line)).collect();
        assert_eq!(
            shown,
            [
                ("allostreaming.com".into(), Scope::Subtree, 0, 14),
                ("alloshowtv.com".into(), Scope::Subtree, 0, 15),
                ("allomovies.com".into(), Scope::Below, 0, 16),
                ("alloshare.com".into(), Scope::Exact, 0, 17),
                ("allostreaming.net".into(), Scope::Subtree, 0, 22),
                ("help.allostreaming.com".into(), Scope::Subtree, 0, 19),
                ("stop.example".into(), Scope::Subtree, 1, 36),
                ("watch.example".into(), Scope::Below, 2, 46),
            ]
        );
        assert!(e.iter().all(|l| l.loc.file == Path::new(FILE)));

        // The judgment: its names, the mirror with its approval, the exception.
        for l in &e[..5] {
            assert_eq!((l.action, l.ede, l.stop), (Action::Nxdomain, Ede::Censored, None), "{}", name(l));
        }
        for l in &e[..4] {
            assert_eq!(l.how, How::Named);
        }
        assert_eq!(
            e[4].how,
            How::Mirror {
                approved_by: "ARCOM".into(),
                approved: "2014-02-01".into(),
                reference: "ARCOM-2014-017".into()
            }
        );
        assert_eq!(e[3].override_reason.as_deref(), Some("named in the judgment"));
        assert!(e.iter().enumerate().all(|(i, l)| (i == 3) == l.override_reason.is_some()));
        assert_eq!((e[5].action, e[5].ede, e[5].stop, &e[5].how), (Action::Allow, Ede::None, None, &How::Exception));

        // The redirect order carries its own stop page.
        let stop = Stop { v4: Some(Ipv4Addr::new(192, 0, 2, 81)), v6: Some("2001:db8::81".parse().unwrap()) };
        assert_eq!(
            (e[6].action, e[6].ede, e[6].stop, &e[6].how),
            (Action::Redirect, Ede::Blocked, Some(stop), &How::Named)
        );

        // The monitor order keeps its intended action; the order says it only counts.
        assert_eq!((e[7].action, e[7].ede, e[7].stop), (Action::Drop, Ede::None, None));
    }

    #[test]
    fn example_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders/allostreaming.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let p = match parse(&path, &text) {
            Ok(p) => p,
            Err(e) => panic!("{}", super::super::ListErrors(e)),
        };
        assert_eq!(p.orders.len(), 2);
        let judgment = &p.orders[0];
        assert_eq!(judgment.id, "tgi-paris-2013-allostreaming");
        let d = judgment.decision.as_ref().unwrap();
        assert_eq!(
            (d.authority.as_str(), d.reference.as_str(), d.decided.as_str()),
            ("Tribunal de grande instance de Paris", "RG 11/60013", "2013-11-28")
        );
        assert!(!judgment.in_force(time::parse_toml_datetime(&"2013-12-09".parse().unwrap()).unwrap()));
        assert!(judgment.in_force(time::parse_toml_datetime(&"2014-06-01".parse().unwrap()).unwrap()));
        assert_eq!(judgment.expires, None, "the example stays in force (the demo relies on it)");
        assert!(judgment.in_force(time::parse_toml_datetime(&"2030-01-01".parse().unwrap()).unwrap()));

        let of = |o: usize| p.entries.iter().filter(move |l| l.order == o);
        let named: Vec<_> = of(0).filter(|l| l.how == How::Named).map(name).collect();
        assert_eq!(named, ["allostreaming.com", "alloshowtv.com", "alloshare.com", "allomovies.com"]);
        let stop = Some(Stop { v4: Some(Ipv4Addr::new(192, 0, 2, 81)), v6: Some("2001:db8::81".parse().unwrap()) });
        assert!(of(0).filter(|l| l.how != How::Exception).all(|l| l.action == Action::Redirect && l.stop == stop));
        let mirrors: Vec<_> = of(0).filter(|l| matches!(l.how, How::Mirror { .. })).collect();
        assert_eq!(mirrors.len(), 1);
        assert!(matches!(&mirrors[0].how, How::Mirror { approved_by, approved, reference }
            if !approved_by.is_empty() && approved.as_str() > "2013-11-28" && !reference.is_empty()));
        assert_eq!(of(0).filter(|l| l.how == How::Exception).count(), 1);
        assert!(p.orders[1].monitor);
        assert!(p.settings.is_some_and(|s| s.stop_v4.is_some() && s.stop_v6.is_some()));
    }

    #[test]
    fn international_names() {
        let text = order(
            "allow = [\"Straße.Bücher.example\"]\n[[order.mirror]]\nname = \"*.ПРИМЕР.рф\"\napproved_by = \"A\"\napproved = 2014-01-01\nreference = \"R2\"\n",
        )
        .replace("names = [\"x.com\"]", "names = [\"Bücher.example.\", { name = \"ÉCOLE.fr\", scope = \"exact\" }]");
        let p = ok(&text);
        let shown: Vec<_> = p.entries.iter().map(|l| (name(l), l.scope)).collect();
        assert_eq!(
            shown,
            [
                ("xn--bcher-kva.example".into(), Scope::Subtree),
                ("xn--cole-9oa.fr".into(), Scope::Exact),
                ("xn--e1afmkfd.xn--p1ai".into(), Scope::Below),
                ("xn--strae-oqa.xn--bcher-kva.example".into(), Scope::Subtree),
            ]
        );
        // The same name in Unicode and in A-labels is one name.
        let twice = order("").replace("names = [\"x.com\"]", "names = [\"bücher.example\", \"XN--BCHER-KVA.example\"]");
        refused(&twice, 7, "xn--bcher-kva.example is listed twice in this order (first at line 7)");
    }

    #[test]
    fn in_force_at_the_boundaries() {
        let p = ok(&order("effective = 2013-12-10\nexpires = 2014-11-28T12:00:00+01:00\n"));
        let o = &p.orders[0];
        let (start, end) = (1_386_633_600, 1_417_132_800 + 11 * 3600);
        assert_eq!((o.effective, o.expires), (Some(start), Some(end)));
        assert!(!o.in_force(start - 1));
        assert!(o.in_force(start));
        assert!(o.in_force(end - 1));
        assert!(!o.in_force(end));
        // Without `effective`, the order is in force from the decision day, for ever.
        let p = ok(&order(""));
        let o = &p.orders[0];
        assert_eq!((o.effective, o.expires), (Some(1_385_596_800), None));
        assert!(!o.in_force(1_385_596_799));
        assert!(o.in_force(1_385_596_800));
        assert!(o.in_force(i64::MAX));
    }

    #[test]
    fn a_file_of_settings_only_or_empty_is_valid() {
        assert_eq!(ok(""), Parsed::default());
        let p = ok("[settings]\nports = [53, 5353]\n");
        assert!(p.orders.is_empty() && p.entries.is_empty());
        assert_eq!(p.settings.unwrap().ports, Some(vec![53, 5353]));
    }

    #[test]
    fn syntax_errors_are_all_reported() {
        let e = errors("[[order]]\nid = \"o1\nnames = [\"x.com\"]\nx = = 3\n");
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].starts_with(&format!("{FILE}:2: invalid TOML: invalid basic string")), "{e:#?}");
        assert!(e[1..].iter().all(|d| d.starts_with(&format!("{FILE}:4: invalid TOML: "))), "{e:#?}");
        refused(&order("id = \"o2\"\n"), 8, "invalid TOML: duplicate key");
        refused(&order("effective = 2013-02-30\n"), 8, "invalid TOML: invalid date");
    }

    #[test]
    fn unknown_keys_are_named() {
        refused("[setting]\nstop_v4 = \"192.0.2.1\"\n", 1, "unknown key `setting`");
        refused("order = 5\n", 1, "`order` must be an array of tables");
        refused("[order]\nid = \"a\"\n", 1, "`order` must be an array of tables");
        refused("settings = 5\n", 1, "`settings` must be a table");
        refused(&order("bogus = 1\n"), 8, "unknown field `bogus`, expected one of `id`");
        refused(&order("[[order.mirror]]\nname = \"m.com\"\naproved_by = \"A\"\n"), 10, "unknown field `aproved_by`");
        let t = order("").replace("names = [\"x.com\"]", "names = [{ name = \"x.com\", scop = \"exact\" }]");
        refused(&t, 7, "unknown field `scop`, expected one of `name`, `scope`, `override`");
        refused("[settings]\nstop_v5 = \"192.0.2.1\"\n", 2, "unknown field `stop_v5`");
    }

    #[test]
    fn wrong_types_are_refused() {
        refused(&order("").replace("id = \"o1\"", "id = 5"), 2, "invalid type: integer `5`, expected a string");
        refused(&order("ede = true\n"), 8, "invalid type");
        refused(&order("").replace("names = [\"x.com\"]", "names = [5]"), 7, "expected a name");
        refused(&order("stop_v4 = \"192.0.2.300\"\n"), 8, "invalid IPv4 address");
        refused("[settings]\nports = \"53\"\n", 2, "invalid type");
        refused("order = [5]\n", 1, "each order must be a table");
    }

    #[test]
    fn missing_required_keys() {
        for key in ["id", "authority", "reference", "decided", "action"] {
            let e = errors(&order_without(key));
            assert_eq!(e.len(), 1, "{key}: {e:#?}");
            assert!(e[0].starts_with(&format!("{FILE}:1: ")) && e[0].contains(&format!("has no `{key}`")), "{e:#?}");
        }
        refused(
            &order_without("names"),
            1,
            "order \"o1\" blocks no name: give `names` or at least one [[order.mirror]]",
        );
        refused(&order("").replace("names = [\"x.com\"]", "names = []"), 1, "blocks no name");
        refused(&order("").replace("authority = \"A\"", "authority = \"  \""), 3, "`authority` is empty");
        let t = order("").replace("names = [\"x.com\"]", "names = [{ scope = \"exact\" }]");
        refused(&t, 7, "name table has no `name`");
    }

    #[test]
    fn order_ids() {
        let two = format!("{}{}", order(""), order("").replace("names = [\"x.com\"]", "names = [\"y.com\"]"));
        refused(&two, 9, "duplicate order id \"o1\" (first at line 2)");
        refused(&order("").replace("id = \"o1\"", "id = \"tj paris\""), 2, "has the character ' '");
        refused(&order("").replace("id = \"o1\"", "id = \"tj/paris\""), 2, "has the character '/'");
        let long = "a".repeat(ID_MAX + 1);
        refused(&order("").replace("id = \"o1\"", &format!("id = \"{long}\"")), 2, "has 65 characters, at most 64");
        let max = format!("A-z.0_9:{}", "b".repeat(ID_MAX - 8));
        assert_eq!(ok(&order("").replace("id = \"o1\"", &format!("id = \"{max}\""))).orders[0].id, max);
    }

    #[test]
    fn unknown_values_list_the_valid_ones() {
        let t = order("").replace("action = \"nxdomain\"", "action = \"block\"");
        refused(&t, 6, "unknown action \"block\"; expected one of nxdomain, nodata, refused, truncate, redirect, drop");
        refused(&order("ede = \"Censored\"\n"), 8, "unknown ede \"Censored\"; expected censored, blocked or none");
        refused(&order("mode = \"dry-run\"\n"), 8, "unknown mode \"dry-run\"; expected enforce or monitor");
        let t = order("").replace("names = [\"x.com\"]", "names = [{ name = \"x.com\", scope = \"tree\" }]");
        refused(&t, 7, "unknown scope \"tree\"; expected subtree, exact or below");
    }

    #[test]
    fn allow_and_monitor_are_not_order_actions() {
        let t = order("").replace("action = \"nxdomain\"", "action = \"allow\"");
        refused(
            &t,
            6,
            "action \"allow\" is not an order's action: list the names the order must not block in `allow = [...]`",
        );
        let t = order("").replace("action = \"nxdomain\"", "action = \"monitor\"");
        refused(&t, 6, "set mode = \"monitor\"");
    }

    #[test]
    fn dates_are_ordered() {
        refused(
            &order("effective = 2013-11-27\n"),
            8,
            "effective 2013-11-27 is before the decision (decided 2013-11-28)",
        );
        assert!(ok(&order("effective = 2013-11-28\n")).orders[0].effective == Some(1_385_596_800));
        refused(
            &order("effective = 2013-12-10\nexpires = 2013-12-10\n"),
            9,
            "expires 2013-12-10 is not after the order takes effect (effective 2013-12-10)",
        );
        refused(&order("expires = 2013-01-01\n"), 8, "(effective, by default decided 2013-11-28)");
        // An offset moves the instant: 00:30 in Paris is still the day before in UTC.
        refused(&order("effective = 2013-11-28T00:30:00+01:00\n"), 8, "is before the decision");
        refused(&order("effective = 08:00:00\n"), 8, "`effective`: 08:00:00 is a time of day without a date");
    }

    #[test]
    fn decision_and_approval_are_dates() {
        let t = order("").replace("decided = 2013-11-28", "decided = 2013-11-28T10:00:00Z");
        refused(&t, 5, "`decided` must be a date (YYYY-MM-DD), not 2013-11-28T10:00:00Z");
        let t = order("").replace("decided = 2013-11-28", "decided = \"2013-11-28\"");
        refused(&t, 5, "invalid type: string \"2013-11-28\"");
        let m = "[[order.mirror]]\nname = \"m.com\"\napproved_by = \"A\"\napproved = 2014-01-01T00:00:00\nreference = \"R\"\n";
        refused(&order(m), 11, "`approved` must be a date");
    }

    const MIRROR: &str =
        "[[order.mirror]]\nname = \"m.com\"\napproved_by = \"ARCOM\"\napproved = 2014-02-01\nreference = \"ARCOM-1\"\n";

    #[test]
    fn mirrors_need_their_approval() {
        assert!(matches!(ok(&order(MIRROR)).entries[1].how, How::Mirror { .. }));
        let without = |key: &str| {
            order(
                &MIRROR
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{key} =")))
                    .map(|l| format!("{l}\n"))
                    .collect::<String>(),
            )
        };
        for key in ["approved_by", "approved", "reference"] {
            refused(
                &without(key),
                8,
                &format!(
                    "mirror \"m.com\" has no `{key}`: a mirror is blocked only with its approval (approved_by, approved, reference)"
                ),
            );
        }
        let bare = order("[[order.mirror]]\nname = \"m.com\"\n");
        let e = errors(&bare);
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e.iter().all(|d| d.starts_with(&format!("{FILE}:8: mirror \"m.com\" has no `"))), "{e:#?}");
        refused(&order(&MIRROR.replace("approved_by = \"ARCOM\"", "approved_by = \"\"")), 10, "`approved_by` is empty");
        refused(
            &order("[[order.mirror]]\napproved_by = \"A\"\napproved = 2014-01-01\nreference = \"R\"\n"),
            8,
            "mirror has no `name`",
        );
        // A mirror alone is enough for an order.
        let alone = order_without("names") + MIRROR;
        assert_eq!(ok(&alone).entries.len(), 1);
    }

    #[test]
    fn mirror_approved_before_the_decision() {
        let t = order(&MIRROR.replace("2014-02-01", "2013-11-27"));
        refused(&t, 11, "approved 2013-11-27 is before the decision (decided 2013-11-28)");
        assert!(parse(Path::new(FILE), &order(&MIRROR.replace("2014-02-01", "2013-11-28"))).is_ok());
    }

    #[test]
    fn invalid_names() {
        let t =
            order("").replace("names = [\"x.com\"]", "names = [\n  \"ok.com\",\n  \"bad..com\",\n  \"a.*.com\",\n]");
        let e = errors(&t);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].starts_with(&format!("{FILE}:9: invalid name \"bad..com\": empty label")), "{e:#?}");
        assert!(e[1].starts_with(&format!("{FILE}:10: invalid name \"a.*.com\"")), "{e:#?}");
        refused(&order("allow = [\".\"]\n"), 8, "invalid name \".\": the root name cannot be listed");
        refused(&order(&MIRROR.replace("m.com", "m..com")), 9, "invalid name \"m..com\"");
    }

    #[test]
    fn a_name_twice_in_one_order() {
        let t = order("").replace("names = [\"x.com\"]", "names = [\"x.com\",\n \"X.COM.\"]");
        refused(&t, 8, "x.com is listed twice in this order (first at line 7)");
        let t =
            order("").replace("names = [\"x.com\"]", "names = [\"x.com\", { name = \"x.com\", scope = \"exact\" }]");
        refused(&t, 7, "listed twice");
        refused(&order(&MIRROR.replace("m.com", "x.com")), 9, "x.com is listed twice in this order (first at line 7)");
        // The name itself and the names below it are two different sets.
        let t =
            order("").replace("names = [\"x.com\"]", "names = [{ name = \"x.com\", scope = \"exact\" }, \"*.x.com\"]");
        assert_eq!(ok(&t).entries.len(), 2);
        // Two orders may list the same name.
        let two = format!("{}{}", order(""), order("").replace("id = \"o1\"", "id = \"o2\""));
        assert_eq!(ok(&two).entries.len(), 2);
    }

    #[test]
    fn blocked_and_allowed() {
        refused(&order("allow = [\"x.com\"]\n"), 8, "x.com is both blocked (line 7) and allowed in this order");
        refused(&order("allow = [\"*.x.com\"]\n"), 8, "both blocked");
        refused(
            &order("allow = [\"a.x.com\", \"A.x.com\"]\n"),
            8,
            "a.x.com is allowed twice in this order (first at line 8)",
        );
        refused(&order("allow = [\"y.com\"]\n"), 8, "allow exception y.com is not below any name this order blocks");
        let exact = order("").replace("names = [\"x.com\"]", "names = [{ name = \"x.com\", scope = \"exact\" }]");
        refused(&(exact + "allow = [\"a.x.com\"]\n"), 8, "not below any name");
        let p = ok(&order("allow = [\"a.x.com\", { name = \"*.b.x.com\" }]\n"));
        let allowed: Vec<_> =
            p.entries.iter().filter(|l| l.action == Action::Allow).map(|l| (name(l), l.scope)).collect();
        assert_eq!(allowed, [("a.x.com".into(), Scope::Subtree), ("b.x.com".into(), Scope::Below)]);
    }

    #[test]
    fn overrides() {
        let t = order("").replace("names = [\"x.com\"]", "names = [{ name = \"com\", override = \" \" }]");
        refused(&t, 7, "`override` is empty: write why blocking this protected name is intended");
        refused(
            &order("allow = [{ name = \"a.x.com\", override = \"why\" }]\n"),
            8,
            "`override` applies to blocked names",
        );
        let p = ok(&order(&(MIRROR.replace("m.com", "fr") + "override = \"the court named the whole zone\"\n")));
        assert_eq!(p.entries[1].override_reason.as_deref(), Some("the court named the whole zone"));
    }

    #[test]
    fn stop_page_only_with_redirect() {
        refused(
            &order("stop_v4 = \"192.0.2.1\"\n"),
            8,
            "`stop_v4` is only valid with action = \"redirect\" (this order's action is \"nxdomain\")",
        );
        let e = errors(&order("stop_v4 = \"192.0.2.1\"\nstop_v6 = \"2001:db8::1\"\n"));
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[1].starts_with(&format!("{FILE}:9: `stop_v6` is only valid")), "{e:#?}");
        let t = order("stop_v6 = \"2001:db8::1\"\n").replace("action = \"nxdomain\"", "action = \"redirect\"");
        let p = ok(&t);
        assert_eq!(p.entries[0].stop, Some(Stop { v4: None, v6: Some("2001:db8::1".parse().unwrap()) }));
        // A redirect order without its own addresses uses the global ones.
        let p = ok(&order("").replace("action = \"nxdomain\"", "action = \"redirect\""));
        assert_eq!(p.entries[0].stop, None);
    }

    #[test]
    fn wildcard_with_another_scope() {
        let t = order("").replace("names = [\"x.com\"]", "names = [{ name = \"*.x.com\", scope = \"exact\" }]");
        refused(&t, 7, "\"*.x.com\" means the names below x.com, which contradicts scope = \"exact\"");
        let t = order("").replace("names = [\"x.com\"]", "names = [{ name = \"*.x.com\", scope = \"below\" }]");
        assert_eq!(ok(&t).entries[0].scope, Scope::Below);
    }

    #[test]
    fn bad_settings() {
        refused("[settings]\nports = [0]\n", 1, "invalid [settings]: port 0 is not a DNS port");
        refused("[settings]\nports = []\n", 1, "invalid [settings]: between 1 and");
        refused("[settings]\nstop_v4 = \"2001:db8::1\"\n", 2, "invalid IPv4 address");
        refused("[settings]\n[settings.soa]\nmname = \"a..b\"\n", 1, "invalid [settings]: SOA mname");
        refused("[settings]\nports = [70000]\n", 2, "invalid value");
    }

    #[test]
    fn every_problem_is_reported_in_line_order() {
        let text = "\
[[order]]
id = \"a b\"
authority = \"A\"
decided = 2013-11-28
action = \"block\"
names = [\"x..com\"]

[[order]]
id = \"o2\"
bogus = 1

[[order]]
id = \"o3\"
authority = \"A\"
reference = \"R\"
decided = 2013-11-28
action = \"nxdomain\"
names = [\"x.com\"]
[[order.mirror]]
name = \"m.com\"
";
        let e = errors(text);
        let lines: Vec<usize> = e
            .iter()
            .map(|d| d.strip_prefix(&format!("{FILE}:")).and_then(|r| r.split(':').next()).unwrap().parse().unwrap())
            .collect();
        assert_eq!(lines, [1, 2, 5, 6, 10, 19, 19, 19], "{e:#?}");
        assert!(
            e[5].contains("`approved_by`") && e[6].contains("`approved`") && e[7].contains("`reference`"),
            "{e:#?}"
        );
        assert!(e[0].contains("order \"a b\" has no `reference`"), "{e:#?}");
        assert!(e[4].contains("unknown field `bogus`"), "{e:#?}");
    }
}
