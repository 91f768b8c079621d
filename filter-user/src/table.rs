//! Builds one table generation (see `filter_common::table`) from listed names, and looks names
//! up in it exactly as the kernel does.
//!
//! Per-entry stop pages: every distinct [`Stop`] of a `redirect` rule gets one
//! [`StopRecord`] after the hash buckets, numbered from 1 in the order the rules first use
//! them; an entry without its own stop gets 0 (the global stop page). A stop on a rule of
//! another action means nothing and is not stored. At most [`STOPS_MAX`] distinct stops per
//! generation.

use std::collections::HashMap;

use filter_common::{
    GROUPS_MAX, hash,
    table::{
        self, Action, Bucket, Ede, Entry, FLAG_BELOW, FLAG_CHILDREN, FLAG_ENTRY, FLAG_SELF, PROBE_BUCKETS, Probe,
        SLOTS, STOP_HAS_V4, STOP_HAS_V6, STOPS_MAX, StopRecord, TableHeader,
    },
};

/// Highest share of slots in use before the table grows.
const MAX_LOAD: f64 = 0.75;

/// How a listed name applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The name and every name below it.
    Subtree,
    /// The name only.
    Exact,
    /// Names below it only (RPZ `*.name`).
    Below,
}

/// Stop-page addresses of a `redirect` entry. A family without an address gets NODATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Stop {
    pub v4: Option<std::net::Ipv4Addr>,
    pub v6: Option<std::net::Ipv6Addr>,
}

impl Stop {
    /// The record stored in a generation.
    pub fn record(&self) -> StopRecord {
        let mut r = StopRecord::default();
        if let Some(a) = self.v4 {
            r.flags |= STOP_HAS_V4;
            r.v4 = a.octets();
        }
        if let Some(a) = self.v6 {
            r.flags |= STOP_HAS_V6;
            r.v6 = a.octets();
        }
        r
    }

    /// The addresses of a stored record.
    pub fn from_record(r: &StopRecord) -> Stop {
        Stop { v4: r.v4().map(std::net::Ipv4Addr::from), v6: r.v6().map(std::net::Ipv6Addr::from) }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.v4, self.v6) {
            (Some(a), Some(b)) => write!(f, "{a}, {b}"),
            (Some(a), None) => write!(f, "{a}"),
            (None, Some(b)) => write!(f, "{b}"),
            (None, None) => write!(f, "no address"),
        }
    }
}

/// One name to put in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Canonical labels, most specific first.
    pub labels: Vec<Vec<u8>>,
    pub scope: Scope,
    pub action: Action,
    pub ede: Ede,
    /// Index of the group (order × action) in `GROUP_HITS`.
    pub group: u32,
    /// Own stop-page addresses of a `redirect` entry; `None` uses the global ones.
    pub stop: Option<Stop>,
}

/// Why a set of rules cannot become a table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("{count} entries exceed the configured capacity of {capacity}")]
    Capacity { count: usize, capacity: usize },
    #[error("{name} is listed twice with different actions ({first} and {second})")]
    Conflict { name: String, first: String, second: String },
    #[error("the table could not be laid out (keys collide or cluster); this is a bug")]
    Layout,
    #[error(
        "{name}: more than {max} distinct stop-page addresses in one table; give some redirect entries \
         the global stop page or share addresses"
    )]
    TooManyStops { name: String, max: usize },
    #[error("{name}: group {group} is beyond the {max} groups the program counts")]
    Group { name: String, group: u32, max: u32 },
}

/// A built generation: the array elements, header first, stop records last.
pub struct Built {
    pub buckets: Vec<Bucket>,
    pub header: TableHeader,
}

/// What a table node holds besides its flags: the entry of a listed name.
#[derive(Clone, Copy, PartialEq, Eq)]
struct NodeEntry {
    action: Action,
    ede: Ede,
    group: u32,
    scope: Scope,
    /// [`Entry::stop`]: 0, or the stop record's number from 1.
    stop: u8,
}

impl Built {
    /// Looks a name up the way the kernel does; see [`lookup`].
    pub fn lookup(&self, labels: &[Vec<u8>]) -> Option<(usize, Entry)> {
        lookup(&self.buckets, &self.header, labels)
    }

    /// [`Built::lookup`] from precomputed suffix keys.
    pub fn lookup_keys(&self, keys: &[u64]) -> Option<(usize, Entry)> {
        lookup_keys(&self.buckets, &self.header, keys)
    }

    /// The stop page of a matched entry as the kernel resolves it: `None` for the global stop
    /// page of the configuration (`stop` 0, or an entry that does not redirect), else the
    /// entry's own addresses, read from the generation's stop records.
    pub fn stop(&self, entry: &Entry) -> Option<Stop> {
        stop_of(&self.buckets, &self.header, entry)
    }

    /// The generation's stop records, in order (record `k - 1` serves [`Entry::stop`] `k`).
    pub fn stops(&self) -> Vec<Stop> {
        (1..=self.header.stops)
            .filter_map(|k| {
                let at = usize::try_from(self.header.stops_at + u64::from(k) - 1).ok()?;
                self.buckets.get(at).map(|b| Stop::from_record(&StopRecord::from_bucket(b)))
            })
            .collect()
    }

    /// Bytes of kernel memory the generation's array takes (elements only).
    pub fn bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }
}

/// Looks a name (canonical labels, most specific first) up in a generation's elements the way
/// the kernel does: from the top-level label down, stopping at the first suffix not in the
/// table. Returns the most specific applicable entry and the index of the label where it
/// matched.
pub fn lookup(buckets: &[Bucket], header: &TableHeader, labels: &[Vec<u8>]) -> Option<(usize, Entry)> {
    let keys = filter_common::dns::text_suffix_keys(labels, header.seed);
    lookup_keys(buckets, header, &keys)
}

/// The own stop page of a matched entry, read from a generation's elements; see
/// [`Built::stop`].
pub fn stop_of(buckets: &[Bucket], header: &TableHeader, entry: &Entry) -> Option<Stop> {
    if entry.action != Action::Redirect || entry.stop == 0 || u32::from(entry.stop) > header.stops {
        return None;
    }
    let at = header.stops_at.checked_add(u64::from(entry.stop))?.checked_sub(1)?;
    let b = buckets.get(usize::try_from(at).ok()?)?;
    Some(Stop::from_record(&StopRecord::from_bucket(b)))
}

/// [`lookup`] from precomputed suffix keys.
pub fn lookup_keys(buckets: &[Bucket], header: &TableHeader, keys: &[u64]) -> Option<(usize, Entry)> {
    let mut best = None;
    for (k, key) in keys.iter().enumerate().rev() {
        let Some(v) = probe(buckets, header.nbuckets, *key) else { break };
        let e = Entry::decode(v);
        if e.applies(k == 0) {
            best = Some((k, e));
        }
        if !e.has_children() {
            break;
        }
    }
    best
}

fn probe(buckets: &[Bucket], nbuckets: u64, key: u64) -> Option<u64> {
    let home = table::home_bucket(key, nbuckets);
    for j in 0..PROBE_BUCKETS as u64 {
        let b = buckets.get(usize::try_from(home + j).ok()?)?;
        match table::probe_bucket(b, key) {
            Probe::Hit(v) => return Some(v),
            Probe::Absent => return None,
            Probe::Next => {}
        }
    }
    None
}

/// One key a rule contributes: the key of its own name, or of one of its ancestors (a
/// marker).
#[derive(Clone, Copy)]
struct Record {
    key: u64,
    /// Index of the rule.
    rule: u32,
    own: bool,
}

/// Builds a generation from `rules` with hash `seed`. Refuses more than `capacity` rules.
///
/// The outcome is that of taking the rules in order: the first listing of a name wins, stop
/// pages are numbered in order of first use, and the first rule in order that cannot be
/// stored is reported. The work is done by sorting instead of a map of names: every rule gives
/// one record per label (its own key and its ancestors' keys), the records are sorted by key
/// (and rule), and one pass over each key's records, in rule order, decides its slot. The slots
/// come out in key order, which is the order of their home buckets, so placing them writes the
/// buckets front to back. At 10M entries this is several times faster than a hash map, whose
/// every insert is a cache miss.
pub fn build(rules: &[Rule], seed: u64, generation: u64, capacity: usize) -> Result<Built, BuildError> {
    if rules.len() > capacity {
        return Err(BuildError::Capacity { count: rules.len(), capacity });
    }
    // Rules from the first one with a group beyond the map on are not looked at: an error in
    // an earlier rule is reported first, and otherwise this one is.
    let group_error = rules.iter().position(|r| r.group >= GROUPS_MAX);
    let considered = &rules[..group_error.unwrap_or(rules.len())];
    let mut records: Vec<Record> = Vec::with_capacity(considered.iter().map(|r| r.labels.len()).sum());
    let mut keys = [0u64; filter_common::MAX_LABELS];
    for (index, rule) in considered.iter().enumerate() {
        // The keys of every suffix, most specific first (as dns::text_suffix_keys, without
        // allocating).
        let n = hash::suffix_keys(seed, rule.labels.iter().map(Vec::as_slice), &mut keys).min(rule.labels.len());
        let Some((&own, ancestors)) = keys[..n].split_first() else { continue };
        records.push(Record { key: own, rule: index as u32, own: true });
        records.extend(ancestors.iter().map(|&key| Record { key, rule: index as u32, own: false }));
    }
    records.sort_unstable_by_key(|r| (r.key, r.rule, r.own));

    // One slot per key: (key, encoded entry without its stop number).
    let mut slots: Vec<(u64, u64)> = Vec::new();
    // Slots whose entry has a stop page of its own: (rule, slot, stop).
    let mut with_stop: Vec<(u32, usize, Stop)> = Vec::new();
    // The first conflict in rule order: (rule, error).
    let mut conflict: Option<(u32, BuildError)> = None;
    let mut entries = 0u64;
    for group in records.chunk_by(|a, b| a.key == b.key) {
        let key = group[0].key;
        let mut flags = 0u8;
        // The entry: the first listing, its rule and its own stop page.
        let mut entry: Option<(NodeEntry, u32, Option<Stop>)> = None;
        for rec in group {
            if !rec.own {
                flags |= FLAG_CHILDREN;
                continue;
            }
            let rule = &considered[rec.rule as usize];
            let scope_flags = match rule.scope {
                Scope::Subtree => FLAG_SELF | FLAG_BELOW,
                Scope::Exact => FLAG_SELF,
                Scope::Below => FLAG_BELOW,
            };
            // Only a redirect uses its stop page.
            let stop = if rule.action == Action::Redirect { rule.stop } else { None };
            let Some((e, first, first_stop)) = entry else {
                flags |= FLAG_ENTRY | scope_flags;
                let e = NodeEntry { action: rule.action, ede: rule.ede, group: rule.group, scope: rule.scope, stop: 0 };
                entry = Some((e, rec.rule, stop));
                continue;
            };
            if e.scope != rule.scope {
                // `name` and `*.name` may coexist with the same action: merge the scopes.
                // They share one slot, so they must agree on everything else too.
                if e.action == rule.action && e.ede == rule.ede && e.group == rule.group && first_stop == stop {
                    flags |= scope_flags;
                    continue;
                }
            }
            if e.action != rule.action || e.scope != rule.scope {
                if conflict.as_ref().is_none_or(|(at, _)| rec.rule < *at) {
                    let describe = |action: Action, stop: Option<Stop>| match stop {
                        Some(st) => format!("{} to {st}", action.name()),
                        None => action.name().to_string(),
                    };
                    let first_action = considered.get(first as usize).map(|r| r.action).unwrap_or(e.action);
                    let error = BuildError::Conflict {
                        name: filter_common::dns::to_text(&rule.labels),
                        first: describe(first_action, first_stop),
                        second: describe(rule.action, stop),
                    };
                    conflict = Some((rec.rule, error));
                }
                // Nothing after a key's first conflict can be reported before it.
                break;
            }
            // The same name, scope and action again (another order, another stop page): the
            // first listing wins.
        }
        let (action, ede, group) = match entry {
            Some((e, rule, stop)) => {
                entries += 1;
                if let Some(st) = stop {
                    with_stop.push((rule, slots.len(), st));
                }
                (e.action, e.ede, e.group)
            }
            None => (Action::Allow, Ede::None, 0),
        };
        let value = Entry { group, action, flags: flags | ((ede as u8) << table::EDE_SHIFT), stop: 0 }.encode();
        slots.push((key, value));
    }
    drop(records);

    // Stop pages, numbered from 1 in the order their entries' rules come.
    with_stop.sort_unstable_by_key(|w| w.0);
    let mut stops: Vec<Stop> = Vec::new();
    let mut stop_numbers: HashMap<Stop, u8> = HashMap::new();
    let mut stop_error: Option<(u32, BuildError)> = None;
    for &(rule, slot, st) in &with_stop {
        let k = match stop_numbers.get(&st) {
            Some(k) => *k,
            None => {
                let Some(k) = u8::try_from(stops.len() + 1).ok().filter(|k| usize::from(*k) <= STOPS_MAX) else {
                    let name = considered.get(rule as usize).map(|r| filter_common::dns::to_text(&r.labels));
                    stop_error =
                        Some((rule, BuildError::TooManyStops { name: name.unwrap_or_default(), max: STOPS_MAX }));
                    break;
                };
                stops.push(st);
                stop_numbers.insert(st, k);
                k
            }
        };
        if let Some(s) = slots.get_mut(slot) {
            s.1 = Entry { stop: k, ..Entry::decode(s.1) }.encode();
        }
    }
    // The first error in rule order.
    let first_error = match (conflict, stop_error) {
        (Some(c), Some(s)) => Some(if c.0 < s.0 { c } else { s }),
        (c, s) => c.or(s),
    };
    if let Some((_, error)) = first_error {
        return Err(error);
    }
    if let Some(g) = group_error {
        let rule = &rules[g];
        return Err(BuildError::Group {
            name: filter_common::dns::to_text(&rule.labels),
            group: rule.group,
            max: GROUPS_MAX,
        });
    }

    let used = slots.len();
    let mut nbuckets = ((used as f64 / (SLOTS as f64 * MAX_LOAD)).ceil() as u64).max(1);
    // At 75 % load a key sometimes lands more than PROBE_BUCKETS buckets from home (in 2 of
    // 10 builds of 10M entries tried): grow by a small step then, not by a quarter of the
    // memory.
    for _attempt in 0..24 {
        if let Some(mut buckets) = place(&slots, nbuckets) {
            let header = TableHeader {
                magic: table::MAGIC,
                seed,
                nbuckets,
                generation,
                entries,
                slots_used: used as u64,
                layout: table::LAYOUT_VERSION,
                stops: stops.len() as u32,
                stops_at: table::array_len(nbuckets),
            };
            if let Some(b0) = buckets.first_mut() {
                *b0 = Bucket::from_header(&header);
            }
            buckets.extend(stops.iter().map(|st| st.record().to_bucket()));
            return Ok(Built { buckets, header });
        }
        nbuckets += nbuckets / 16 + 1;
    }
    Err(BuildError::Layout)
}

/// Places `(key, value)` slots, sorted by key, into `nbuckets` buckets by linear probing
/// (at most [`PROBE_BUCKETS`] buckets from home). `None` if some key does not fit.
fn place(slots: &[(u64, u64)], nbuckets: u64) -> Option<Vec<Bucket>> {
    let len = usize::try_from(table::array_len(nbuckets)).ok()?;
    let mut buckets = vec![Bucket::default(); len];
    let mut fill = vec![0u8; len];
    for &(key, value) in slots {
        let home = usize::try_from(table::home_bucket(key, nbuckets)).ok()?;
        let mut placed = false;
        for j in 0..PROBE_BUCKETS {
            let i = home + j;
            let f = fill.get_mut(i)?;
            if usize::from(*f) < SLOTS {
                let slot = buckets.get_mut(i)?.slots.get_mut(usize::from(*f))?;
                slot.key = key;
                slot.value = value;
                *f += 1;
                placed = true;
                break;
            }
        }
        if !placed {
            return None;
        }
    }
    Some(buckets)
}

/// Most slots in use, as a share of all slots, that [`Built::patch`] accepts; beyond it the
/// caller rebuilds (which sizes the table afresh).
const PATCH_MAX_LOAD: f64 = 0.9;

/// Where a key is, or the first free slot it may take.
enum Found {
    At(usize, usize),
    Free(usize, usize),
    /// Neither within [`PROBE_BUCKETS`] of its home bucket.
    Full,
}

fn find_slot(buckets: &[Bucket], nbuckets: u64, key: u64) -> Found {
    let Ok(home) = usize::try_from(table::home_bucket(key, nbuckets)) else { return Found::Full };
    // A slot whose key was removed (no entry, nothing below) is as good as empty for a new
    // key, but the key itself may still come later in the chain: look at the whole chain.
    let mut reusable = None;
    for i in home..home + PROBE_BUCKETS {
        let Some(b) = buckets.get(i) else { return Found::Full };
        for (j, slot) in b.slots.iter().enumerate() {
            if slot.key == key {
                return Found::At(i, j);
            }
            if slot.key == 0 {
                let (i, j) = reusable.unwrap_or((i, j));
                return Found::Free(i, j);
            }
            if reusable.is_none() && Entry::decode(slot.value).flags & (FLAG_ENTRY | FLAG_CHILDREN) == 0 {
                reusable = Some((i, j));
            }
        }
    }
    match reusable {
        Some((i, j)) => Found::Free(i, j),
        None => Found::Full,
    }
}

/// Makes room for a key whose home is `home` and whose every bucket is full: moves one key of
/// that window to a bucket past it that is still within that key's own window, with every
/// bucket from the key's home up to there full (so that its lookups still reach it). Returns
/// the slot freed.
fn displace(buckets: &mut [Bucket], nbuckets: u64, home: usize) -> Option<(usize, usize)> {
    let end = home + PROBE_BUCKETS;
    let full = |b: &Bucket| b.slots.iter().all(|s| s.key != 0);
    // The first bucket past the window with a free slot.
    let target = (end..buckets.len()).find(|&t| !full(&buckets[t]))?;
    for i in (home..end).rev() {
        for j in 0..SLOTS {
            let k = buckets.get(i)?.slots.get(j)?.key;
            let kh = usize::try_from(table::home_bucket(k, nbuckets)).ok()?;
            if kh + PROBE_BUCKETS <= target || !(kh..target).all(|b| buckets.get(b).is_some_and(full)) {
                continue;
            }
            let moved = buckets.get(i)?.slots.get(j).copied()?;
            let t = buckets.get_mut(target)?;
            let free = t.slots.iter().position(|s| s.key == 0)?;
            *t.slots.get_mut(free)? = moved;
            *buckets.get_mut(i)?.slots.get_mut(j)? = table::Slot::default();
            return Some((i, j));
        }
    }
    None
}

/// [`find_slot`], displacing a key when the window is full.
fn find_or_make(buckets: &mut [Bucket], nbuckets: u64, key: u64) -> Found {
    match find_slot(buckets, nbuckets, key) {
        Found::Full => {
            let home = usize::try_from(table::home_bucket(key, nbuckets)).unwrap_or(usize::MAX);
            match displace(buckets, nbuckets, home) {
                Some((i, j)) => Found::Free(i, j),
                None => Found::Full,
            }
        }
        f => f,
    }
}

fn scope_flags(scope: Scope) -> u8 {
    match scope {
        Scope::Subtree => FLAG_SELF | FLAG_BELOW,
        Scope::Exact => FLAG_SELF,
        Scope::Below => FLAG_BELOW,
    }
}

impl Built {
    /// A copy of this generation with the entries of `remove` taken out and those of `add` put
    /// in, numbered `generation`: the IXFR path, which changes a few slots of a large table
    /// instead of building it again. `None` when the change does not fit in place (a key with
    /// no free slot near its home, a name listed with another action, a rule to remove that
    /// is not there, more stop pages than a table holds, or the table too full): the caller
    /// then builds the whole table.
    ///
    /// A removed entry leaves its slot behind without an entry (a lookup that reaches it
    /// stops there as at an empty slot, or walks on if other names lie below), and the
    /// markers of its ancestors stay: at worst one probe more, until the next full build.
    pub fn patch(&self, remove: &[Rule], add: &[Rule], generation: u64) -> Option<Built> {
        let mut buckets = self.buckets.clone();
        let mut h = self.header;
        let nb = h.nbuckets;
        let mut keys = [0u64; filter_common::MAX_LABELS];
        let mut stops = self.stops();
        for r in remove {
            let n = hash::suffix_keys(h.seed, r.labels.iter().map(Vec::as_slice), &mut keys).min(r.labels.len());
            let own = *keys.get(..n)?.first()?;
            let Found::At(i, j) = find_slot(&buckets, nb, own) else { return None };
            let slot = buckets.get_mut(i)?.slots.get_mut(j)?;
            let e = Entry::decode(slot.value);
            if e.flags & FLAG_ENTRY == 0 || e.action != r.action || e.group != r.group {
                return None;
            }
            let flags = e.flags & !scope_flags(r.scope);
            slot.value = if flags & (FLAG_SELF | FLAG_BELOW) == 0 {
                h.entries = h.entries.checked_sub(1)?;
                Entry { group: 0, action: Action::Allow, flags: flags & FLAG_CHILDREN, stop: 0 }.encode()
            } else {
                Entry { flags, ..e }.encode()
            };
        }
        for r in add {
            if r.group >= GROUPS_MAX {
                return None;
            }
            let n = hash::suffix_keys(h.seed, r.labels.iter().map(Vec::as_slice), &mut keys).min(r.labels.len());
            let (own, ancestors) = keys.get(..n)?.split_first()?;
            let stop = match (r.action, r.stop) {
                (Action::Redirect, Some(st)) => match stops.iter().position(|s| *s == st) {
                    Some(k) => u8::try_from(k + 1).ok()?,
                    None if stops.len() < STOPS_MAX => {
                        stops.push(st);
                        buckets.push(st.record().to_bucket());
                        h.stops += 1;
                        u8::try_from(stops.len()).ok()?
                    }
                    None => return None,
                },
                _ => 0,
            };
            let ede = (r.ede as u8) << table::EDE_SHIFT;
            let fresh =
                Entry { group: r.group, action: r.action, flags: FLAG_ENTRY | scope_flags(r.scope) | ede, stop };
            match find_or_make(&mut buckets, nb, *own) {
                Found::At(i, j) => {
                    let slot = buckets.get_mut(i)?.slots.get_mut(j)?;
                    let e = Entry::decode(slot.value);
                    slot.value = if e.flags & FLAG_ENTRY == 0 {
                        h.entries += 1;
                        Entry { flags: fresh.flags | (e.flags & FLAG_CHILDREN), ..fresh }.encode()
                    } else if e.action == r.action && e.group == r.group && e.ede() == r.ede && e.stop == stop {
                        // `name` and `*.name` with one action share the slot.
                        Entry { flags: e.flags | scope_flags(r.scope), ..e }.encode()
                    } else {
                        return None;
                    };
                }
                Found::Free(i, j) => {
                    let slot = buckets.get_mut(i)?.slots.get_mut(j)?;
                    h.slots_used += u64::from(slot.key == 0);
                    *slot = table::Slot { key: *own, value: fresh.encode() };
                    h.entries += 1;
                }
                Found::Full => return None,
            }
            for &key in ancestors {
                match find_or_make(&mut buckets, nb, key) {
                    Found::At(i, j) => {
                        let slot = buckets.get_mut(i)?.slots.get_mut(j)?;
                        let e = Entry::decode(slot.value);
                        slot.value = Entry { flags: e.flags | FLAG_CHILDREN, ..e }.encode();
                    }
                    Found::Free(i, j) => {
                        let marker = Entry { group: 0, action: Action::Allow, flags: FLAG_CHILDREN, stop: 0 };
                        let slot = buckets.get_mut(i)?.slots.get_mut(j)?;
                        h.slots_used += u64::from(slot.key == 0);
                        *slot = table::Slot { key, value: marker.encode() };
                    }
                    Found::Full => return None,
                }
            }
        }
        if h.slots_used as f64 > (nb as f64) * (SLOTS as f64) * PATCH_MAX_LOAD {
            return None;
        }
        h.generation = generation;
        *buckets.first_mut()? = Bucket::from_header(&h);
        Some(Built { buckets, header: h })
    }
}

/// A random 64-bit seed from the kernel.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 octets into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 8 {
        // Fall back to time and address entropy; the seed only needs to be unpredictable.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        return hash::fmix(t as u64 ^ (&b as *const _ as u64));
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_common::dns::parse_text_name;

    fn rule(name: &str, scope: Scope, action: Action) -> Rule {
        Rule { labels: parse_text_name(name).unwrap(), scope, action, ede: Ede::Censored, group: 7, stop: None }
    }

    fn find(b: &Built, name: &str) -> Option<(usize, Action)> {
        b.lookup(&parse_text_name(name).unwrap()).map(|(k, e)| (k, e.action))
    }

    #[test]
    fn suffix_matching_on_label_boundaries() {
        let b = build(&[rule("example.com", Scope::Subtree, Action::Nxdomain)], 42, 1, 10).unwrap();
        assert_eq!(find(&b, "example.com"), Some((0, Action::Nxdomain)));
        assert_eq!(find(&b, "A.B.Example.COM"), Some((2, Action::Nxdomain)));
        assert_eq!(find(&b, "notexample.com"), None);
        assert_eq!(find(&b, "example.com.evil.net"), None);
        assert_eq!(find(&b, "com"), None);
    }

    #[test]
    fn most_specific_wins_and_allow_punches_holes() {
        let b = build(
            &[
                rule("example.com", Scope::Subtree, Action::Nxdomain),
                rule("ok.example.com", Scope::Subtree, Action::Allow),
                rule("bad.ok.example.com", Scope::Exact, Action::Drop),
            ],
            1,
            1,
            10,
        )
        .unwrap();
        assert_eq!(find(&b, "x.example.com"), Some((1, Action::Nxdomain)));
        assert_eq!(find(&b, "ok.example.com"), Some((0, Action::Allow)));
        assert_eq!(find(&b, "a.ok.example.com"), Some((1, Action::Allow)));
        assert_eq!(find(&b, "bad.ok.example.com"), Some((0, Action::Drop)));
        assert_eq!(find(&b, "x.bad.ok.example.com"), Some((2, Action::Allow)), "exact-only does not cover below");
    }

    #[test]
    fn below_scope_and_merge() {
        let b = build(&[rule("example.org", Scope::Below, Action::Refused)], 3, 1, 10).unwrap();
        assert_eq!(find(&b, "example.org"), None);
        assert_eq!(find(&b, "a.example.org"), Some((1, Action::Refused)));
        let both = build(
            &[rule("example.org", Scope::Below, Action::Refused), rule("example.org", Scope::Exact, Action::Refused)],
            3,
            1,
            10,
        )
        .unwrap();
        assert_eq!(find(&both, "example.org"), Some((0, Action::Refused)));
        assert_eq!(find(&both, "a.example.org"), Some((1, Action::Refused)));
    }

    #[test]
    fn conflicts_and_capacity_are_refused() {
        let e = build(
            &[rule("a.com", Scope::Subtree, Action::Drop), rule("A.com.", Scope::Subtree, Action::Allow)],
            1,
            1,
            10,
        )
        .err();
        assert!(matches!(e, Some(BuildError::Conflict { .. })), "{e:?}");
        let e =
            build(&[rule("a.com", Scope::Subtree, Action::Drop), rule("b.com", Scope::Subtree, Action::Drop)], 1, 1, 1)
                .err();
        assert_eq!(e, Some(BuildError::Capacity { count: 2, capacity: 1 }));
        // Identical duplicates are fine.
        assert!(
            build(&[rule("a.com", Scope::Subtree, Action::Drop), rule("a.com", Scope::Subtree, Action::Drop)], 1, 1, 1)
                .is_err()
        );
        assert!(
            build(&[rule("a.com", Scope::Subtree, Action::Drop), rule("a.com", Scope::Subtree, Action::Drop)], 1, 1, 2)
                .is_ok()
        );
    }

    /// A patched generation answers every name as a generation built from the new rules.
    #[test]
    fn a_patched_generation_looks_up_as_a_built_one() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            rng = hash::fmix(rng.wrapping_add(0x9e37_79b9_7f4a_7c15));
            rng
        };
        let actions = [Action::Nxdomain, Action::Drop, Action::Allow, Action::Redirect, Action::Nodata];
        let scopes = [Scope::Subtree, Scope::Exact, Scope::Below];
        let names: Vec<String> = (0..400)
            .map(|i| match i % 4 {
                0 => format!("site{i}.example"),
                1 => format!("a.site{}.example", i - 1),
                2 => format!("deep.b.site{}.example", i - 2),
                _ => format!("other{i}.net"),
            })
            .collect();
        let mk = |i: usize, v: u64| -> Rule {
            let action = actions[(v % 5) as usize];
            let stop = (action == Action::Redirect && v.is_multiple_of(3))
                .then(|| Stop { v4: Some(std::net::Ipv4Addr::from(v as u32 % 7)), v6: None });
            Rule {
                labels: parse_text_name(&names[i]).unwrap(),
                scope: scopes[((v >> 8) % 3) as usize],
                action,
                ede: Ede::Blocked,
                group: (v % 5) as u32,
                stop,
            }
        };
        let mut misses = 0;
        for round in 0..40 {
            let mut old: Vec<Rule> = Vec::new();
            for i in 0..names.len() {
                if next() % 2 == 0 {
                    let v = next();
                    old.push(mk(i, v));
                }
            }
            let mut new: Vec<Rule> = Vec::new();
            for r in &old {
                if next() % 5 != 0 {
                    new.push(r.clone());
                }
            }
            let listed: std::collections::HashSet<Vec<Vec<u8>>> = new.iter().map(|r| r.labels.clone()).collect();
            for i in 0..names.len() {
                let r = mk(i, next());
                if next() % 16 == 0 && !listed.contains(&r.labels) && !new.iter().any(|o| o.labels == r.labels) {
                    new.push(r);
                }
            }
            let removed: Vec<Rule> = old.iter().filter(|r| !new.contains(r)).cloned().collect();
            let added: Vec<Rule> = new.iter().filter(|r| !old.contains(r)).cloned().collect();
            let a = build(&old, 77, 1, 10_000).unwrap();
            // A key with no free slot near its home sends the caller to a full build.
            let Some(patched) = a.patch(&removed, &added, 2) else {
                misses += 1;
                continue;
            };
            let b = build(&new, 77, 2, 10_000).unwrap();
            assert_eq!(patched.header.entries, b.header.entries, "round {round}");
            for n in &names {
                for q in [n.clone(), format!("x.{n}"), format!("y.x.{n}")] {
                    let labels = parse_text_name(&q).unwrap();
                    let got = patched
                        .lookup(&labels)
                        .map(|(k, e)| (k, e.action, e.group, e.ede(), e.applies(k == 0), patched.stop(&e)));
                    let want =
                        b.lookup(&labels).map(|(k, e)| (k, e.action, e.group, e.ede(), e.applies(k == 0), b.stop(&e)));
                    assert_eq!(got, want, "round {round}: {q}");
                }
            }
        }
        eprintln!("{misses} of 40 patches did not fit");
        assert!(misses < 10, "{misses} of 40 patches did not fit");
    }

    #[test]
    fn a_patch_that_does_not_fit_is_refused() {
        let a = build(&[rule("a.com", Scope::Subtree, Action::Drop)], 1, 1, 10).unwrap();
        // Removing what is not there, or adding a name with another action.
        assert!(a.patch(&[rule("b.com", Scope::Subtree, Action::Drop)], &[], 2).is_none());
        assert!(a.patch(&[], &[rule("a.com", Scope::Subtree, Action::Allow)], 2).is_none());
        // Far more names than the table was sized for.
        let many: Vec<Rule> = (0..200).map(|i| rule(&format!("n{i}.com"), Scope::Subtree, Action::Drop)).collect();
        assert!(a.patch(&[], &many, 2).is_none());
        let p = a
            .patch(&[rule("a.com", Scope::Subtree, Action::Drop)], &[rule("b.com", Scope::Exact, Action::Drop)], 2)
            .unwrap();
        assert_eq!(find(&p, "a.com"), None);
        assert_eq!(find(&p, "b.com"), Some((0, Action::Drop)));
        assert_eq!(find(&p, "x.b.com"), None);
        assert_eq!(p.header.generation, 2);
    }

    fn redirect(name: &str, stop: Option<Stop>) -> Rule {
        Rule { stop, ..rule(name, Scope::Subtree, Action::Redirect) }
    }

    fn stop(v4: Option<&str>, v6: Option<&str>) -> Option<Stop> {
        Some(Stop { v4: v4.map(|a| a.parse().unwrap()), v6: v6.map(|a| a.parse().unwrap()) })
    }

    /// The stop page a name resolves to: `None` if it matches nothing, `Some(None)` for the
    /// global one.
    fn stop_of(b: &Built, name: &str) -> Option<Option<Stop>> {
        b.lookup(&parse_text_name(name).unwrap()).map(|(_, e)| b.stop(&e))
    }

    #[test]
    fn stops_are_allocated_once_per_distinct_address_set() {
        let a = stop(Some("192.0.2.1"), None);
        let b = stop(Some("192.0.2.2"), Some("2001:db8::2"));
        let rules = [
            redirect("a.example", a),
            redirect("global.example", None),
            redirect("b.example", b),
            redirect("a2.example", a),
            redirect("b2.example", b),
            // A stop on an action that does not redirect is not stored.
            Rule { stop: stop(Some("192.0.2.9"), None), ..rule("nx.example", Scope::Subtree, Action::Nxdomain) },
        ];
        let built = build(&rules, 5, 1, 100).unwrap();
        assert_eq!(built.header.stops, 2);
        assert_eq!(built.header.stops_at, table::array_len(built.header.nbuckets));
        assert_eq!(built.buckets.len() as u64, built.header.stops_at + 2, "records after the buckets");
        assert_eq!(built.stops(), vec![a.unwrap(), b.unwrap()], "numbered in order of first use");
        let number = |name: &str| built.lookup(&parse_text_name(name).unwrap()).unwrap().1.stop;
        assert_eq!((number("a.example"), number("a2.example")), (1, 1));
        assert_eq!((number("www.b.example"), number("b2.example")), (2, 2));
        assert_eq!((number("global.example"), number("nx.example")), (0, 0));
        assert_eq!(stop_of(&built, "x.a2.example"), Some(a));
        assert_eq!(stop_of(&built, "b.example"), Some(b));
        assert_eq!(stop_of(&built, "global.example"), Some(None), "the global stop page");
        assert_eq!(stop_of(&built, "nx.example"), Some(None));
        assert_eq!(stop_of(&built, "other.example"), None);
        // The header read back from bucket 0 says the same.
        assert_eq!(built.buckets[0].header(), built.header);
        // No stops: nothing after the buckets.
        let plain = build(&[redirect("a.example", None)], 5, 1, 10).unwrap();
        assert_eq!((plain.header.stops, plain.buckets.len() as u64), (0, plain.header.stops_at));
    }

    #[test]
    fn at_most_255_distinct_stops() {
        let addr = |i: u32| stop(Some(&std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()), None);
        let mut rules: Vec<Rule> = (0..255).map(|i| redirect(&format!("n{i}.example"), addr(i))).collect();
        // Repeating an address set costs no record.
        rules.push(redirect("again.example", addr(0)));
        let built = build(&rules, 1, 1, 1000).unwrap();
        assert_eq!(built.header.stops, 255);
        assert_eq!(stop_of(&built, "n254.example"), Some(addr(254)));
        assert_eq!(built.lookup(&parse_text_name("n254.example").unwrap()).unwrap().1.stop, 255);
        rules.push(redirect("one-too-many.example", addr(255)));
        let e = build(&rules, 1, 1, 1000).err().unwrap();
        assert_eq!(e, BuildError::TooManyStops { name: "one-too-many.example".into(), max: 255 });
        assert!(e.to_string().contains("more than 255 distinct stop-page addresses"), "{e}");
    }

    #[test]
    fn a_name_keeps_its_first_stop_and_scopes_merge_only_with_equal_stops() {
        let a = stop(Some("192.0.2.1"), None);
        let b = stop(Some("192.0.2.2"), None);
        // Listed twice (another order): the first listing wins, the second stop is not stored.
        let built = build(&[redirect("x.example", a), redirect("x.example", b)], 1, 1, 10).unwrap();
        assert_eq!((built.header.stops, stop_of(&built, "x.example")), (1, Some(a)));
        // `name` and `*.name` share a slot: with the same stop they merge...
        let below = |s| Rule { stop: s, ..rule("y.example", Scope::Below, Action::Redirect) };
        let exact = |s| Rule { stop: s, ..rule("y.example", Scope::Exact, Action::Redirect) };
        let built = build(&[exact(a), below(a)], 1, 1, 10).unwrap();
        assert_eq!(stop_of(&built, "y.example"), Some(a));
        assert_eq!(stop_of(&built, "w.y.example"), Some(a));
        // ...with different ones they cannot, and the error says why.
        let e = build(&[exact(a), below(b)], 1, 1, 10).err().unwrap();
        assert_eq!(
            e,
            BuildError::Conflict {
                name: "y.example".into(),
                first: "redirect to 192.0.2.1".into(),
                second: "redirect to 192.0.2.2".into()
            }
        );
    }

    #[test]
    fn groups_beyond_the_map_are_refused() {
        let ok = Rule { group: GROUPS_MAX - 1, ..rule("a.example", Scope::Subtree, Action::Drop) };
        assert!(build(&[ok], 1, 1, 10).is_ok());
        let over = Rule { group: GROUPS_MAX, ..rule("a.example", Scope::Subtree, Action::Drop) };
        assert_eq!(
            build(&[over], 1, 1, 10).err(),
            Some(BuildError::Group { name: "a.example".into(), group: GROUPS_MAX, max: GROUPS_MAX })
        );
    }

    #[test]
    fn the_first_error_in_rule_order_is_reported() {
        let over = |name: &str| Rule { group: GROUPS_MAX, ..rule(name, Scope::Subtree, Action::Drop) };
        let drop = |name: &str| rule(name, Scope::Subtree, Action::Drop);
        let allow = |name: &str| rule(name, Scope::Subtree, Action::Allow);
        // A conflict (rule 2) before a group beyond the map (rule 3), and the other way round.
        let e = build(&[drop("b.com"), drop("a.com"), allow("a.com"), over("c.com")], 1, 1, 10).err();
        assert!(matches!(e, Some(BuildError::Conflict { ref name, .. }) if name == "a.com"), "{e:?}");
        let e = build(&[drop("b.com"), over("c.com"), drop("a.com"), allow("a.com")], 1, 1, 10).err();
        assert!(matches!(e, Some(BuildError::Group { ref name, .. }) if name == "c.com"), "{e:?}");
        // Two conflicts: the one whose second listing comes first, whatever the keys' order.
        for (x, y) in [("x.com", "y.com"), ("y.com", "x.com")] {
            let e = build(&[drop(x), drop(y), allow(y), allow(x)], 1, 1, 10).err();
            assert!(matches!(e, Some(BuildError::Conflict { ref name, .. }) if name == y), "{e:?}");
        }
        // Too many stops (at rule 256) against a conflict after it, and before it.
        let addr = |i: u32| stop(Some(&std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()), None);
        let mut rules: Vec<Rule> = (0..256).map(|i| redirect(&format!("n{i}.example"), addr(i))).collect();
        rules.extend([drop("z.com"), allow("z.com")]);
        assert!(matches!(build(&rules, 1, 1, 1000).err(), Some(BuildError::TooManyStops { .. })));
        rules.insert(0, drop("z.com"));
        rules.insert(1, allow("z.com"));
        assert!(matches!(build(&rules, 1, 1, 1000).err(), Some(BuildError::Conflict { .. })));
    }

    #[test]
    fn a_large_table_lays_out_at_its_first_size() {
        // Slots placed in key order sit as close to home as linear probing allows: 300k names
        // (and their markers) fit at 75 % load without growing the table.
        let rules: Vec<Rule> = (0..300_000)
            .map(|i| rule(&format!("n{i}.s{}.example{}.com", i % 1000, i % 7), Scope::Subtree, Action::Nxdomain))
            .collect();
        let b = build(&rules, 11, 1, 1_000_000).unwrap();
        let first = (b.header.slots_used as f64 / (SLOTS as f64 * MAX_LOAD)).ceil() as u64;
        assert_eq!(b.header.nbuckets, first, "the table grew");
        for i in (0..300_000).step_by(1009) {
            let name = format!("x.n{i}.s{}.example{}.com", i % 1000, i % 7);
            assert_eq!(find(&b, &name), Some((1, Action::Nxdomain)), "{name}");
        }
    }

    #[test]
    fn many_names_all_found_and_memory_is_compact() {
        let rules: Vec<Rule> = (0..50_000)
            .map(|i| rule(&format!("site{i}.example{}.com", i % 100), Scope::Subtree, Action::Nxdomain))
            .collect();
        let b = build(&rules, 9, 1, 1_000_000).unwrap();
        for i in (0..50_000).step_by(97) {
            assert_eq!(find(&b, &format!("www.site{i}.example{}.com", i % 100)).map(|x| x.1), Some(Action::Nxdomain));
            assert_eq!(find(&b, &format!("other{i}.example{}.com", i % 100)), None);
        }
        let per_entry = b.bytes() as f64 / 50_000.0;
        assert!(per_entry < 64.0, "{per_entry} bytes per entry");
    }
}
