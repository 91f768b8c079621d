//! From list sources to the entries in force: parse every file, keep the orders in force at a
//! given time, apply the guards against over-blocking, detect conflicts between orders, and
//! give each entry its counter group. Pure: no kernel, no clock, so every rule is unit-tested.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use filter_common::table::{Action, Ede};
use sha2::Digest as _;

use crate::{
    conf::GuardConf,
    config::SettingsFile,
    lists::{self, Defaults, Diagnostic, Format, How, Loc, Order},
    names,
    table::{Rule, Scope, Stop},
};

/// One list file as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub format: Format,
    pub text: String,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    /// For the stored copy of a fleet zone: its name and local overrides.
    pub zone: Option<ZoneTag>,
}

/// What a fleet zone's configuration changes in its entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneTag {
    /// The zone's name: its order id is `zone:NAME`.
    pub name: String,
    /// Every entry gets this action (BIND's `policy` override).
    pub policy: Option<Action>,
    pub ede: Option<Ede>,
}

impl Source {
    pub fn new(path: PathBuf, format: Format, text: String) -> Source {
        let sha256 = sha256_hex(text.as_bytes());
        Source { path, format, text, sha256, zone: None }
    }

    /// The source of a fleet zone's stored copy.
    pub fn zone(path: PathBuf, text: String, tag: ZoneTag) -> Source {
        Source { zone: Some(tag), ..Source::new(path, Format::Rpz, text) }
    }

    /// Reads a list file.
    pub fn read(path: &Path, format: Format) -> Result<Source, Diagnostic> {
        let bytes = std::fs::read(path).map_err(|e| Diagnostic::new(path, 0, format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let line =
                e.as_bytes().get(..e.utf8_error().valid_up_to()).map(|b| b.iter().filter(|c| **c == b'\n').count() + 1);
            Diagnostic::new(path, line.unwrap_or(0), "not valid UTF-8")
        })?;
        Ok(Source::new(path.to_path_buf(), format, text))
    }
}

/// Hex sha256 of `bytes`: how sources and stored zones are identified.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|x| format!("{x:02x}")).collect()
}

/// An order across all sources, with the file it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderInfo {
    pub order: Order,
    pub format: Format,
    /// Entries it lists in force (0 when not in force).
    pub entries: usize,
    pub in_force: bool,
}

/// One entry in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub labels: Vec<Vec<u8>>,
    pub scope: Scope,
    /// What the kernel does (`monitor` for a monitor order's blocking entries).
    pub action: Action,
    /// What the entry asks for.
    pub intended: Action,
    pub ede: Ede,
    pub stop: Option<Stop>,
    pub order: String,
    pub how: How,
    pub loc: Loc,
    pub override_reason: Option<String>,
    /// 128-bit fingerprint of [`Applied::key`] (two independent 64-bit hashes), computed
    /// while the names are hot in cache, so diffs between generations of millions of entries
    /// compare integers instead of chasing every name's labels.
    pub fp: u128,
    /// Index of the first entry with the same name (another scope), which shares its table
    /// slot and counter group.
    pub same_name_as: Option<usize>,
}

impl Applied {
    /// Sets [`Applied::fp`] from the other fields.
    pub fn with_fp(mut self) -> Applied {
        use std::hash::{BuildHasher as _, BuildHasherDefault, Hash as _, Hasher as _};
        let id = self.key();
        let a = BuildHasherDefault::<FastHasher>::default().hash_one(id);
        let mut sip = std::hash::DefaultHasher::new();
        id.hash(&mut sip);
        self.fp = (u128::from(a) << 64) | u128::from(sip.finish());
        self
    }

    /// Text name of the entry as written in lists: `name` or `*.name` for below-only.
    pub fn pattern(&self) -> String {
        let n = names::display(&self.labels);
        match self.scope {
            Scope::Below => format!("*.{n}"),
            _ => n,
        }
    }

    pub fn scope_name(&self) -> &'static str {
        match self.scope {
            Scope::Subtree => "subtree",
            Scope::Exact => "exact",
            Scope::Below => "below",
        }
    }

    /// Identity for diffs between generations (borrowed: no allocation).
    pub fn key(&self) -> (&[Vec<u8>], Scope, Action, &str) {
        (&self.labels, self.scope, self.action, &self.order)
    }
}

/// The result of compiling a set of sources at one time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compiled {
    pub orders: Vec<OrderInfo>,
    /// Entries in force, sorted by name.
    pub entries: Vec<Applied>,
    /// Entries the guards refused (left out; with `strict` the compile fails instead).
    pub refused: Vec<Diagnostic>,
    /// Entries that block a protected name with an override reason (kept, and audited).
    pub overrides: Vec<Diagnostic>,
    /// `[settings]` of orders files, with their file.
    pub settings: Vec<(PathBuf, SettingsFile)>,
    /// Next time an order takes effect or lifts (Unix seconds), if any.
    pub next_change: Option<i64>,
}

/// A protected name: exact name, or a whole subtree (`*.name`).
#[derive(Clone, Debug)]
struct Protected {
    labels: Vec<Vec<u8>>,
    subtree: bool,
    text: String,
}

/// Compiles `sources` as of `now`.
pub fn compile(
    sources: &[Source],
    defaults: Defaults,
    guards: &GuardConf,
    now: i64,
) -> Result<Compiled, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut out = Compiled::default();
    let mut order_ids: HashMap<String, Loc> = HashMap::new();
    let mut listed = Vec::new();
    for src in sources {
        let mut parsed = match lists::parse(&src.path, &src.text, src.format, defaults) {
            Ok(p) => p,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        if let Some(tag) = &src.zone {
            for o in &mut parsed.orders {
                o.id = format!("zone:{}", tag.name);
            }
            for e in &mut parsed.entries {
                e.action = tag.policy.unwrap_or(e.action);
                e.ede = tag.ede.unwrap_or(e.ede);
            }
        }
        if let Some(s) = parsed.settings {
            out.settings.push((src.path.clone(), s));
        }
        let base = out.orders.len();
        for mut o in parsed.orders {
            if src.format != Format::Orders && order_ids.contains_key(&o.id) {
                // Two plain/hosts/RPZ files of the same name in different folders.
                o.id = format!("{}:{}", src.format.name(), src.path.display());
            }
            if let Some(prev) = order_ids.get(&o.id) {
                errors.push(Diagnostic::new(
                    &o.loc.file,
                    o.loc.line,
                    format!("order id {:?} is already used at {prev}", o.id),
                ));
            }
            order_ids.insert(o.id.clone(), o.loc.clone());
            for t in [o.effective, o.expires].into_iter().flatten() {
                if t > now {
                    out.next_change = Some(out.next_change.map_or(t, |n: i64| n.min(t)));
                }
            }
            let in_force = o.in_force(now);
            out.orders.push(OrderInfo { order: o, format: src.format, entries: 0, in_force });
        }
        listed.extend(parsed.entries.into_iter().map(|mut l| {
            l.order += base;
            l
        }));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let protected: Vec<Protected> = guards
        .protected
        .iter()
        .filter_map(|p| {
            names::canonical_pattern(p).ok().map(|(labels, subtree)| Protected { labels, subtree, text: p.clone() })
        })
        .collect();
    // Entries by (name, scope): the first listing wins; a different action elsewhere conflicts.
    // One table slot per name: `name` and `*.name` may both be listed, with one action.
    let mut seen = Seen::default();
    for l in listed {
        let Some(info) = out.orders.get_mut(l.order) else { continue };
        if !info.in_force {
            continue;
        }
        let blocking = l.action != Action::Allow;
        if blocking && let Some(reason) = refusal(&l.labels, l.scope, l.override_reason.as_deref(), &protected) {
            let d = Diagnostic::new(&l.loc.file, l.loc.line, reason);
            if l.override_reason.is_some() && !names::is_public_suffix(&l.labels) {
                out.overrides.push(d);
            } else {
                out.refused.push(d);
                continue;
            }
        }
        let action = if blocking && info.order.monitor { Action::Monitor } else { l.action };
        let applied = Applied {
            labels: l.labels,
            scope: l.scope,
            action,
            intended: l.action,
            ede: l.ede,
            stop: l.stop,
            order: info.order.id.clone(),
            how: l.how,
            loc: l.loc,
            override_reason: l.override_reason,
            fp: 0,
            same_name_as: None,
        }
        .with_fp();
        let slot = seen.slot(&out.entries, &applied.labels);
        match slot.and_then(|s| s.get(Some(applied.scope))) {
            Some(i) => {
                let Some(first) = out.entries.get(i) else { continue };
                if first.action != applied.action || first.stop != applied.stop {
                    errors.push(Diagnostic::new(
                        &applied.loc.file,
                        applied.loc.line,
                        format!(
                            "{} is {} here (order {}) but {} at {} (order {}); one name cannot have two actions",
                            applied.pattern(),
                            applied.action.name(),
                            applied.order,
                            first.action.name(),
                            first.loc,
                            first.order
                        ),
                    ));
                }
            }
            None => {
                let same_name = slot.and_then(|s| s.get(None));
                if let Some(first) = same_name.and_then(|i| out.entries.get(i))
                    && (first.action != applied.action || first.ede != applied.ede || first.stop != applied.stop)
                {
                    errors.push(Diagnostic::new(
                        &applied.loc.file,
                        applied.loc.line,
                        format!(
                            "{} ({}) and {} at {} ({}) must have the same action: one name holds one action",
                            applied.pattern(),
                            applied.action.name(),
                            first.pattern(),
                            first.loc,
                            first.action.name()
                        ),
                    ));
                    continue;
                }
                info.entries += 1;
                seen.insert(&out.entries, &applied.labels, applied.scope, out.entries.len());
                out.entries.push(Applied { same_name_as: same_name, ..applied });
            }
        }
    }
    if guards.strict && !out.refused.is_empty() {
        errors.append(&mut out.refused);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(out)
}

/// A fast, non-cryptographic hasher for the compile step's indexes (multiply-rotate over 8
/// octets at a time). The keys are the operator's own lists, so flooding is not a concern;
/// every index confirms a hit by comparing the real keys.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        filter_common::hash::fmix(self.0)
    }
}

impl FastHasher {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<FastHasher>>;

/// 64-bit fingerprint of a name.
fn name_fp(labels: &[Vec<u8>]) -> u64 {
    use std::hash::{BuildHasher as _, BuildHasherDefault};
    BuildHasherDefault::<FastHasher>::default().hash_one(labels)
}

/// Index of the entries compiled so far, by name and by (name, scope), without copying names:
/// fingerprints point at entries, and a hit is confirmed by comparing the labels. The rare
/// fingerprint collision between two different names goes to an exact map.
#[derive(Default)]
struct Seen {
    fp: FastMap<u64, Slot>,
    exact: FastMap<Vec<Vec<u8>>, Slot>,
}

/// The entries of one name: the first of any scope, and the one of each scope.
#[derive(Clone, Copy)]
struct Slot {
    any: usize,
    scoped: [Option<usize>; 3],
}

impl Slot {
    fn get(&self, scope: Option<Scope>) -> Option<usize> {
        match scope {
            None => Some(self.any),
            Some(s) => self.scoped.get(s as usize).copied().flatten(),
        }
    }
}

impl Seen {
    /// The entries of `labels` so far, found with one hash lookup.
    fn slot(&self, entries: &[Applied], labels: &[Vec<u8>]) -> Option<Slot> {
        let slot = *self.fp.get(&name_fp(labels))?;
        if entries.get(slot.any).is_some_and(|e| e.labels == labels) {
            return Some(slot);
        }
        self.exact.get(labels).copied()
    }

    fn insert(&mut self, entries: &[Applied], labels: &[Vec<u8>], scope: Scope, index: usize) {
        let fp = name_fp(labels);
        let fresh = Slot { any: index, scoped: [None; 3] };
        let slot = match self.fp.get_mut(&fp) {
            None => self.fp.entry(fp).or_insert(fresh),
            Some(s) if entries.get(s.any).is_some_and(|e| e.labels == labels) => s,
            Some(_) => self.exact.entry(labels.to_vec()).or_insert(fresh),
        };
        if let Some(x) = slot.scoped.get_mut(scope as usize) {
            x.get_or_insert(index);
        }
    }
}

/// Why a blocking entry must not be loaded, if it must not.
fn refusal(labels: &[Vec<u8>], scope: Scope, override_reason: Option<&str>, protected: &[Protected]) -> Option<String> {
    let name = names::display(labels);
    if names::is_public_suffix(labels) {
        return Some(format!(
            "{name} is a public suffix (Public Suffix List); blocking it would block every site registered under it"
        ));
    }
    let covers_self = scope != Scope::Below;
    let covers_below = scope != Scope::Exact;
    for p in protected {
        // The entry blocks the protected name itself, or a protected subtree overlaps the entry.
        let hits = (covers_self && p.labels == labels)
            || (covers_below && p.labels.len() > labels.len() && names::is_at_or_below(&p.labels, labels))
            || (p.subtree && names::is_at_or_below(labels, &p.labels));
        if hits {
            return Some(match override_reason {
                Some(r) => format!("{name} blocks protected name {} (override: {r})", p.text),
                None => format!(
                    "{name} would block protected name {}; if this is intended, give the entry an override reason",
                    p.text
                ),
            });
        }
    }
    None
}

/// Counter groups: one per (order, action), stable across reloads so counters keep counting.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Groups {
    /// `slots[i]` = (order id, action name) of group `i`; `None` once reclaimed.
    pub slots: Vec<Option<(String, String)>>,
}

impl Groups {
    /// The group of (order, action), allocated if new. `None` when every group is taken.
    fn index(&mut self, order: &str, action: Action, max: usize, fresh: &mut Vec<u32>) -> Option<u32> {
        let found = self.slots.iter().position(|s| s.as_ref().is_some_and(|(o, a)| o == order && a == action.name()));
        if let Some(i) = found {
            return u32::try_from(i).ok();
        }
        let slot = Some((order.to_string(), action.name().to_string()));
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                *self.slots.get_mut(i)? = slot;
                i
            }
            None if self.slots.len() < max => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
            None => return None,
        };
        let i = u32::try_from(i).ok()?;
        fresh.push(i);
        Some(i)
    }

    /// The (order, action) of a group.
    pub fn get(&self, group: usize) -> Option<(&str, &str)> {
        self.slots.get(group)?.as_ref().map(|(o, a)| (o.as_str(), a.as_str()))
    }

    /// Table rules for `entries`, allocating groups. Groups of orders no longer listed are
    /// reclaimed only when the slots run out, and keep their index otherwise. Returns the
    /// rules and the groups handed out fresh (their counters must be zeroed).
    pub fn rules(&mut self, entries: &[Applied], max: usize) -> (Vec<Rule>, Vec<u32>) {
        let mut fresh = Vec::new();
        let needed: std::collections::HashSet<(&str, &str)> =
            entries.iter().map(|e| (e.order.as_str(), e.action.name())).collect();
        let known =
            |s: &Option<(String, String)>| s.as_ref().is_some_and(|(o, a)| needed.contains(&(o.as_str(), a.as_str())));
        let have = self.slots.iter().filter(|s| known(s)).count();
        let free = self.slots.iter().filter(|s| s.is_none()).count() + max.saturating_sub(self.slots.len());
        if needed.len().saturating_sub(have) > free {
            for s in self.slots.iter_mut() {
                if !known(s) {
                    *s = None;
                }
            }
        }
        // `name` and `*.name` share one table slot, hence one group: the first listed.
        let mut groups: Vec<u32> = Vec::with_capacity(entries.len());
        // Consecutive entries mostly share their order: remember the last group handed out.
        let mut last: Option<(&str, Action, u32)> = None;
        let rules = entries
            .iter()
            .map(|e| {
                let own = match last {
                    Some((o, a, g)) if o == e.order && a == e.action => g,
                    _ => {
                        let g = self.index(&e.order, e.action, max, &mut fresh).unwrap_or(0);
                        last = Some((&e.order, e.action, g));
                        g
                    }
                };
                let group = e.same_name_as.and_then(|i| groups.get(i).copied()).unwrap_or(own);
                groups.push(group);
                Rule { labels: e.labels.clone(), scope: e.scope, action: e.action, ede: e.ede, group, stop: e.stop }
            })
            .collect();
        (rules, fresh)
    }
}

/// Entries added and removed between two generations.
pub struct Diff<'a> {
    pub added: Vec<&'a Applied>,
    pub removed: Vec<&'a Applied>,
}

pub fn diff<'a>(old: &'a [Applied], new: &'a [Applied]) -> Diff<'a> {
    // By name, scope, action and order (the fingerprint): an EDE or stop-page change is not
    // an addition.
    let old_keys: FastSet<u128> = old.iter().map(|e| e.fp).collect();
    let new_keys: FastSet<u128> = new.iter().map(|e| e.fp).collect();
    let mut added: Vec<&Applied> = new.iter().filter(|e| !old_keys.contains(&e.fp)).collect();
    let mut removed: Vec<&Applied> = old.iter().filter(|e| !new_keys.contains(&e.fp)).collect();
    // In name order for people (the audit log).
    for v in [&mut added, &mut removed] {
        v.sort_by_cached_key(|e| (names::display(&e.labels), e.scope, e.action, e.order.clone()));
    }
    Diff { added, removed }
}

/// Whether two sets of entries (each sorted by [`Applied::key`], as [`compile`] leaves them)
/// build the same kernel table: the same names, scopes, actions and orders (hence groups), and
/// the same EDEs and stop pages. Provenance (file, line, approval) is not in the table.
pub fn same_table(old: &[Applied], new: &[Applied]) -> bool {
    old.len() == new.len() && old.iter().zip(new).all(|(a, b)| a.fp == b.fp && a.ede == b.ede && a.stop == b.stop)
}

/// Refuses a change that touches more than the configured share of entries.
pub fn check_share(old: usize, diff: &Diff<'_>, guards: &GuardConf) -> Result<(), String> {
    let changed = diff.added.len() + diff.removed.len();
    if old == 0 || changed <= guards.change_guard_min {
        return Ok(());
    }
    let share = changed as f64 / old as f64;
    if share > guards.max_change_share {
        return Err(format!(
            "the update changes {changed} entries (+{} -{}) of {old}, {:.0}% > max_change_share {:.0}%; \
             check the lists, then force it (dnsfilter reload --force)",
            diff.added.len(),
            diff.removed.len(),
            share * 100.0,
            guards.max_change_share * 100.0
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guards() -> GuardConf {
        GuardConf {
            protected: crate::conf::BUILTIN_PROTECTED.iter().map(|s| s.to_string()).collect(),
            strict: true,
            max_change_share: 0.25,
            change_guard_min: 2,
        }
    }

    fn plain(name: &str, text: &str) -> Source {
        Source::new(PathBuf::from(name), Format::Plain, text.to_string())
    }

    fn names_of(c: &Compiled) -> Vec<String> {
        let mut v: Vec<String> = c.entries.iter().map(Applied::pattern).collect();
        v.sort();
        v
    }

    #[test]
    fn plain_sources_compile_with_their_order() {
        let c = compile(&[plain("/l/a.txt", "b.example\na.example\n")], Defaults::default(), &guards(), 0).unwrap();
        assert_eq!(names_of(&c), ["a.example", "b.example"]);
        assert_eq!(c.entries[0].order, "plain:a.txt");
        assert_eq!(c.orders[0].entries, 2);
        assert_eq!(c.next_change, None);
    }

    #[test]
    fn same_table_sees_answer_changes_but_not_provenance() {
        let c = |text: &str, ede| {
            let d = Defaults { ede, ..Defaults::default() };
            compile(&[plain("/l/a.txt", text)], d, &guards(), 0).unwrap().entries
        };
        let base = c("a.example\n", Ede::Censored);
        assert!(same_table(&base, &c("# moved down a line\na.example\n", Ede::Censored)));
        assert!(!same_table(&base, &c("a.example\n", Ede::Blocked)), "an EDE change needs a new table");
        assert!(!same_table(&base, &c("a.example\nb.example\n", Ede::Censored)));
        assert!(diff(&base, &c("a.example\n", Ede::Blocked)).added.is_empty(), "the diff by key does not see it");
    }

    #[test]
    fn public_suffixes_are_refused_with_file_and_line() {
        let e = compile(&[plain("/l/a.txt", "ok.example\nco.uk\n")], Defaults::default(), &guards(), 0).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].to_string().starts_with("/l/a.txt:2: co.uk is a public suffix"), "{}", e[0]);
        let e = compile(&[plain("/l/a.txt", "com\n")], Defaults::default(), &guards(), 0).unwrap_err();
        assert!(e[0].to_string().contains("com is a public suffix"), "{}", e[0]);
    }

    #[test]
    fn protected_names_are_refused_unless_overridden() {
        for (entry, why) in [
            ("google.fr", "google.fr"),
            ("www.google.fr", "www.google.fr"),
            ("fr.wikipedia.org", "fr.wikipedia.org"),
            ("impots.gouv.fr", "*.gouv.fr"),
            ("a.b.root-servers.net", "*.root-servers.net"),
        ] {
            let e =
                compile(&[plain("/l/a.txt", &format!("{entry}\n"))], Defaults::default(), &guards(), 0).unwrap_err();
            assert!(e[0].to_string().contains(&format!("would block protected name {why}")), "{entry}: {}", e[0]);
        }
        // Below a protected exact name is not the protected name.
        assert!(compile(&[plain("/l/a.txt", "mirror.google.fr\n")], Defaults::default(), &guards(), 0).is_ok());
        // Allow entries never block.
        let d = Defaults { action: Action::Allow, ede: Ede::None };
        assert!(compile(&[plain("/l/a.txt", "google.fr\n")], d, &guards(), 0).is_ok());
        // Not strict: the entry is left out, the rest loads.
        let g = GuardConf { strict: false, ..guards() };
        let c = compile(&[plain("/l/a.txt", "google.fr\nbad.example\n")], Defaults::default(), &g, 0).unwrap();
        assert_eq!(names_of(&c), ["bad.example"]);
        assert_eq!(c.refused.len(), 1);
    }

    #[test]
    fn same_name_twice_keeps_the_first() {
        let a = plain("/l/a.txt", "x.example\n");
        let b = plain("/l/b.txt", "\nX.example.\n");
        let c = compile(&[a, b], Defaults::default(), &guards(), 0).unwrap();
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.entries[0].order, "plain:a.txt");
    }

    fn rpz(name: &str, text: &str) -> Source {
        Source::new(PathBuf::from(name), Format::Rpz, text.to_string())
    }

    const SOA: &str = "$ORIGIN rpz.example.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\n";

    #[test]
    fn name_and_wildcard_need_one_action() {
        let ok = rpz("/z/a.rpz", &format!("{SOA}x.example CNAME .\n*.x.example CNAME .\n"));
        let c = compile(&[ok], Defaults::default(), &guards(), 0).unwrap();
        assert_eq!(names_of(&c), ["*.x.example", "x.example"]);
        let (rules, _) = Groups::default().rules(&c.entries, 10);
        assert!(crate::table::build(&rules, 1, 1, 10).is_ok());
        let bad = rpz("/z/b.rpz", &format!("{SOA}x.example CNAME .\n*.x.example CNAME rpz-drop.\n"));
        let e = compile(&[bad], Defaults::default(), &guards(), 0).unwrap_err();
        assert!(e[0].to_string().starts_with("/z/b.rpz:5: *.x.example (drop) and x.example at /z/b.rpz:4"), "{}", e[0]);
    }

    #[test]
    fn conflicting_actions_across_sources_name_both_places() {
        let a = plain("/l/a.txt", "x.example\n");
        let b = rpz("/z/b.rpz", &format!("{SOA}x.example CNAME rpz-drop.\n"));
        let e = compile(&[a, b], Defaults::default(), &guards(), 0).unwrap_err();
        assert!(
            e[0].to_string().starts_with(
                "/z/b.rpz:4: x.example (drop) and x.example at /l/a.txt:1 (nxdomain) must have the same action"
            ),
            "{}",
            e[0]
        );
    }

    impl Source {
        fn with_path(mut self, p: &str) -> Source {
            self.path = PathBuf::from(p);
            self
        }
    }

    fn order_src(text: &str) -> Source {
        Source::new(PathBuf::from("/o/orders.toml"), Format::Orders, text.to_string())
    }

    const ORDER: &str =
        "[[order]]\nid = \"o1\"\nauthority = \"TJ Paris\"\nreference = \"RG 1\"\ndecided = 2020-01-01\n";

    #[test]
    fn orders_in_force_monitor_and_schedule() {
        let t = |s: &str| crate::time::parse_toml_datetime(&s.parse().unwrap()).unwrap();
        let text = format!(
            "{ORDER}effective = 2020-02-01\nexpires = 2021-01-01\naction = \"nxdomain\"\nnames = [\"a.example\"]\nallow = [\"ok.a.example\"]\n\
             [[order]]\nid = \"o2\"\nauthority = \"TJ\"\nreference = \"RG 2\"\ndecided = 2020-01-01\naction = \"drop\"\nmode = \"monitor\"\nnames = [\"b.example\"]\n"
        );
        let src = order_src(&text);
        let before = compile(std::slice::from_ref(&src), Defaults::default(), &guards(), t("2020-01-15")).unwrap();
        assert_eq!(names_of(&before), ["b.example"]);
        assert_eq!(before.entries[0].action, Action::Monitor);
        assert_eq!(before.entries[0].intended, Action::Drop);
        assert_eq!(before.next_change, Some(t("2020-02-01")));
        let during = compile(std::slice::from_ref(&src), Defaults::default(), &guards(), t("2020-02-01")).unwrap();
        assert_eq!(names_of(&during), ["a.example", "b.example", "ok.a.example"]);
        assert_eq!(during.next_change, Some(t("2021-01-01")));
        let after = compile(&[src], Defaults::default(), &guards(), t("2021-01-01")).unwrap();
        assert_eq!(names_of(&after), ["b.example"]);
        assert_eq!(after.next_change, None);
        assert!(!after.orders[0].in_force && after.orders[1].in_force);
    }

    #[test]
    fn overrides_let_a_protected_name_through_and_are_reported() {
        let text = format!(
            "{ORDER}action = \"nxdomain\"\nnames = [{{ name = \"google.fr\", override = \"ordered by name in RG 1\" }}]\n"
        );
        let now = 2_000_000_000;
        let c = compile(&[order_src(&text)], Defaults::default(), &guards(), now).unwrap();
        assert_eq!(names_of(&c), ["google.fr"]);
        assert_eq!(c.overrides.len(), 1);
        assert!(
            c.overrides[0].to_string().contains("blocks protected name google.fr (override: ordered by name in RG 1)")
        );
        // An override never lets a public suffix through.
        let text = format!("{ORDER}action = \"nxdomain\"\nnames = [{{ name = \"co.uk\", override = \"x\" }}]\n");
        let e = compile(&[order_src(&text)], Defaults::default(), &guards(), now).unwrap_err();
        assert!(e[0].to_string().contains("co.uk is a public suffix"), "{}", e[0]);
    }

    #[test]
    fn duplicate_order_ids_across_files() {
        // Same file name in two folders: the second is named by its path.
        let c = compile(
            &[plain("/l/a.txt", "x.example\n"), plain("/m/a.txt", "y.example\n")],
            Defaults::default(),
            &guards(),
            0,
        )
        .unwrap();
        let ids: Vec<_> = c.orders.iter().map(|o| o.order.id.as_str()).collect();
        assert_eq!(ids, ["plain:a.txt", "plain:/m/a.txt"]);
        let o = |f: &str| {
            order_src(&format!("{ORDER}action = \"drop\"\nnames = [\"x{}.example\"]\n", f.len())).with_path(f)
        };
        let e = compile(&[o("/o/a.toml"), o("/o/bb.toml")], Defaults::default(), &guards(), 0).unwrap_err();
        assert!(e[0].to_string().contains("order id \"o1\" is already used at /o/a.toml:1"), "{}", e[0]);
    }

    /// An entry in force, listed in a plain list of order `order`.
    fn applied(name: &str, order: &str, action: Action, ede: Ede) -> Applied {
        Applied {
            labels: names::canonical(name).unwrap(),
            scope: Scope::Subtree,
            action,
            intended: action,
            ede,
            stop: None,
            order: order.into(),
            how: How::Listed,
            loc: Loc { file: "f".into(), line: 1 },
            override_reason: None,
            fp: 0,
            same_name_as: None,
        }
        .with_fp()
    }

    #[test]
    fn share_guard() {
        let mk = |n: &str| applied(n, "o", Action::Nxdomain, Ede::Censored);
        let old: Vec<_> = (0..20).map(|i| mk(&format!("s{i}.example"))).collect();
        let mut new = old.clone();
        new.truncate(15);
        let d = diff(&old, &new);
        assert_eq!((d.added.len(), d.removed.len()), (0, 5));
        assert!(check_share(old.len(), &d, &guards()).is_ok(), "25% is allowed");
        new.truncate(14);
        let d = diff(&old, &new);
        let e = check_share(old.len(), &d, &guards()).unwrap_err();
        assert!(e.contains("changes 6 entries (+0 -6) of 20, 30%"), "{e}");
        // Small changes always pass; the first load always passes.
        let small = diff(&old[..2], &old[..0]);
        assert!(check_share(2, &small, &guards()).is_ok());
        assert!(check_share(0, &diff(&[], &old), &guards()).is_ok());
    }

    #[test]
    fn groups_are_stable_and_reclaimed_when_full() {
        let mut g = Groups::default();
        let e = |order: &str, action: Action| {
            applied(&format!("{order}.{}.example", action.name()), order, action, Ede::None)
        };
        let (r, fresh) = g.rules(&[e("a", Action::Nxdomain), e("b", Action::Drop), e("a", Action::Allow)], 3);
        assert_eq!(r.iter().map(|r| r.group).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(fresh, [0, 1, 2]);
        let (r, fresh) = g.rules(&[e("b", Action::Drop)], 3);
        assert_eq!((r[0].group, fresh.len()), (1, 0));
        // Full: "a" groups are reclaimed, "b" keeps its index.
        let (r, fresh) = g.rules(&[e("b", Action::Drop), e("c", Action::Drop)], 3);
        assert_eq!(g.get(1), Some(("b", "drop")));
        assert_eq!(g.get(0), Some(("c", "drop")));
        assert_eq!(g.get(2), None);
        assert_eq!((r[0].group, r[1].group, fresh), (1, 0, vec![0]));
    }
}
