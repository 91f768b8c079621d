//! Builds one table generation (see `filter_common::table`) from listed names, and looks names
//! up in it exactly as the kernel does.

use std::collections::HashMap;

use filter_common::{
    GROUPS_MAX, hash,
    table::{
        self, Action, Bucket, Ede, Entry, FLAG_BELOW, FLAG_CHILDREN, FLAG_ENTRY, FLAG_SELF, PROBE_BUCKETS, Probe,
        SLOTS, TableHeader,
    },
};

/// Highest share of slots in use before the table grows.
const MAX_LOAD: f64 = 0.75;

/// How a listed name applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    #[error("{name}: group {group} is beyond the {max} groups the program counts")]
    Group { name: String, group: u32, max: u32 },
}

/// A built generation: the array elements, header first.
pub struct Built {
    pub buckets: Vec<Bucket>,
    pub header: TableHeader,
}

impl Built {
    /// Looks a name (canonical labels, most specific first) up the way the kernel does:
    /// from the top-level label down, stopping at the first suffix not in the table. Returns
    /// the most specific applicable entry and the index of the label where it matched.
    pub fn lookup(&self, labels: &[Vec<u8>]) -> Option<(usize, Entry)> {
        let keys = filter_common::dns::text_suffix_keys(labels, self.header.seed);
        self.lookup_keys(&keys)
    }

    /// [`Built::lookup`] from precomputed suffix keys.
    pub fn lookup_keys(&self, keys: &[u64]) -> Option<(usize, Entry)> {
        let mut best = None;
        for (k, key) in keys.iter().enumerate().rev() {
            let Some(v) = self.probe(*key) else { break };
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

    fn probe(&self, key: u64) -> Option<u64> {
        let home = table::home_bucket(key, self.header.nbuckets);
        for j in 0..PROBE_BUCKETS as u64 {
            let b = self.buckets.get(usize::try_from(home + j).ok()?)?;
            match table::probe_bucket(b, key) {
                Probe::Hit(v) => return Some(v),
                Probe::Absent => return None,
                Probe::Next => {}
            }
        }
        None
    }

    /// Bytes of kernel memory the generation's array takes (elements only).
    pub fn bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }
}

/// Builds a generation from `rules` with hash `seed`. Refuses more than `capacity` rules.
pub fn build(rules: &[Rule], seed: u64, generation: u64, capacity: usize) -> Result<Built, BuildError> {
    if rules.len() > capacity {
        return Err(BuildError::Capacity { count: rules.len(), capacity });
    }
    // Node of the name tree: key -> (flags, entry), with the text kept for conflicts.
    let mut nodes: HashMap<u64, (u8, Option<(Action, Ede, u32, Scope)>)> = HashMap::with_capacity(rules.len() * 2);
    let mut names: HashMap<u64, &Rule> = HashMap::new();
    let mut entries = 0u64;
    for rule in rules {
        if rule.group >= GROUPS_MAX {
            return Err(BuildError::Group {
                name: filter_common::dns::to_text(&rule.labels),
                group: rule.group,
                max: GROUPS_MAX,
            });
        }
        let keys = filter_common::dns::text_suffix_keys(&rule.labels, seed);
        let Some((&own, ancestors)) = keys.split_first() else { continue };
        for a in ancestors {
            nodes.entry(*a).or_insert((0, None)).0 |= FLAG_CHILDREN;
        }
        let scope_flags = match rule.scope {
            Scope::Subtree => FLAG_SELF | FLAG_BELOW,
            Scope::Exact => FLAG_SELF,
            Scope::Below => FLAG_BELOW,
        };
        let node = nodes.entry(own).or_insert((0, None));
        match node.1 {
            None => {
                node.0 |= FLAG_ENTRY | scope_flags;
                node.1 = Some((rule.action, rule.ede, rule.group, rule.scope));
                names.insert(own, rule);
                entries += 1;
            }
            Some((action, ede, group, scope)) => {
                if scope != rule.scope {
                    // `name` and `*.name` may coexist with the same action: merge the scopes.
                    if action == rule.action && ede == rule.ede && group == rule.group {
                        node.0 |= scope_flags;
                        continue;
                    }
                }
                if action != rule.action || scope != rule.scope {
                    let first = names.get(&own).map(|r| r.action.name()).unwrap_or("?");
                    return Err(BuildError::Conflict {
                        name: filter_common::dns::to_text(&rule.labels),
                        first: first.to_string(),
                        second: rule.action.name().to_string(),
                    });
                }
            }
        }
    }
    let used = nodes.len();
    let mut nbuckets = ((used as f64 / (SLOTS as f64 * MAX_LOAD)).ceil() as u64).max(1);
    for _attempt in 0..8 {
        if let Some(buckets) = place(&nodes, nbuckets) {
            let header = TableHeader {
                magic: table::MAGIC,
                seed,
                nbuckets,
                generation,
                entries,
                slots_used: used as u64,
                layout: table::LAYOUT_VERSION,
                reserved: [0; 3],
            };
            let mut buckets = buckets;
            if let Some(b0) = buckets.first_mut() {
                *b0 = Bucket::from_header(&header);
            }
            return Ok(Built { buckets, header });
        }
        nbuckets += nbuckets / 4 + 1;
    }
    Err(BuildError::Layout)
}

fn place(nodes: &HashMap<u64, (u8, Option<(Action, Ede, u32, Scope)>)>, nbuckets: u64) -> Option<Vec<Bucket>> {
    let len = usize::try_from(table::array_len(nbuckets)).ok()?;
    let mut buckets = vec![Bucket::default(); len];
    let mut fill = vec![0u8; len];
    for (&key, &(flags, entry)) in nodes {
        let (action, ede, group) = entry.map(|(a, e, g, _)| (a, e, g)).unwrap_or((Action::Allow, Ede::None, 0));
        let value = Entry { group, action, flags: flags | ((ede as u8) << table::EDE_SHIFT) }.encode();
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
