//! The lookup table: a compact open-addressing hash table in a BPF array of 64-octet buckets,
//! one generation per inner map of the `TABLE` array-of-maps (swapped atomically).
//!
//! Layout of one generation (an `Array<Bucket>` with `1 + nbuckets + PROBE_BUCKETS` elements):
//! - bucket 0 is the [`TableHeader`]: magic, seed, bucket count, generation;
//! - data buckets hold four [`Slot`]s each; a key's home bucket is
//!   `1 + fastrange(key >> 32, nbuckets)` and it lives in one of the [`PROBE_BUCKETS`] buckets
//!   from there on (linear probing, no wrap: the table has `PROBE_BUCKETS` spare buckets at the
//!   end). A key 0 marks an empty slot, and slots fill in order, so the first empty slot ends a
//!   search.
//!
//! What is stored: every listed name (an entry), and a marker for every ancestor of a listed
//! name (flag [`FLAG_CHILDREN`]). A lookup walks the query's suffixes from the top-level label
//! down and stops at the first suffix that is not in the table, so an allowed query costs one
//! probe per listed ancestor plus one: typically the (hot) TLD and one cold miss, whatever its
//! number of labels. The most specific applicable entry on the way wins.

/// Slots per bucket: one 64-octet cache line.
pub const SLOTS: usize = 4;
/// Buckets a key may be displaced from its home bucket.
pub const PROBE_BUCKETS: usize = 8;
/// Magic number in the header of a valid generation ("dnsf tbl").
pub const MAGIC: u64 = 0x6c62_7420_6673_6e64;
/// Layout version, bumped whenever this module changes incompatibly.
pub const LAYOUT_VERSION: u32 = 1;

/// One slot: a 64-bit suffix key (0 = empty) and its [`Entry`] value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// Suffix key from [`crate::hash`]; 0 marks an empty slot.
    pub key: u64,
    /// Encoded [`Entry`].
    pub value: u64,
}

/// One bucket: a cache line of four slots. Native byte order.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// The slots, filled from the first.
    pub slots: [Slot; SLOTS],
}

/// Bucket 0 of a generation. Native byte order.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableHeader {
    /// [`MAGIC`].
    pub magic: u64,
    /// Hash seed for every key of this generation.
    pub seed: u64,
    /// Number of data buckets (not counting the header and the spare buckets).
    pub nbuckets: u64,
    /// Generation number, increasing with every swap.
    pub generation: u64,
    /// Entries (not markers) in this generation.
    pub entries: u64,
    /// Occupied slots (entries and markers).
    pub slots_used: u64,
    /// [`LAYOUT_VERSION`].
    pub layout: u32,
    /// Reserved, zero.
    pub reserved: [u32; 3],
}

impl Bucket {
    /// Reinterprets bucket 0 as the header.
    #[inline(always)]
    pub const fn header(&self) -> TableHeader {
        let [a, b, c, d] = self.slots;
        TableHeader {
            magic: a.key,
            seed: a.value,
            nbuckets: b.key,
            generation: b.value,
            entries: c.key,
            slots_used: c.value,
            layout: d.key as u32,
            reserved: [0; 3],
        }
    }

    /// Encodes a header as bucket 0.
    pub const fn from_header(h: &TableHeader) -> Bucket {
        Bucket {
            slots: [
                Slot { key: h.magic, value: h.seed },
                Slot { key: h.nbuckets, value: h.generation },
                Slot { key: h.entries, value: h.slots_used },
                Slot { key: h.layout as u64, value: 0 },
            ],
        }
    }
}

/// Total array elements for `nbuckets` data buckets.
pub const fn array_len(nbuckets: u64) -> u64 {
    nbuckets.saturating_add(1).saturating_add(PROBE_BUCKETS as u64)
}

/// Index (in the array) of the home bucket of `key`.
#[inline(always)]
pub const fn home_bucket(key: u64, nbuckets: u64) -> u64 {
    // Lemire's fastrange: maps the high 32 bits uniformly onto [0, nbuckets).
    (((key >> 32).wrapping_mul(nbuckets & 0xffff_ffff)) >> 32).wrapping_add(1)
}

/// Result of looking for a key in one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Found; the encoded entry value.
    Hit(u64),
    /// An empty slot: the key is not in the table.
    Absent,
    /// The bucket is full and does not hold the key: try the next one.
    Next,
}

/// Looks for `key` in one bucket.
#[inline(always)]
pub fn probe_bucket(bucket: &Bucket, key: u64) -> Probe {
    for slot in &bucket.slots {
        if slot.key == key {
            return Probe::Hit(slot.value);
        }
        if slot.key == 0 {
            return Probe::Absent;
        }
    }
    Probe::Next
}

/// What an entry does to a query that it matches.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Pass, counted: punches a hole in a broader block.
    Allow = 0,
    /// Count, then pass: a dry run before enforcement.
    Monitor = 1,
    /// Answer NXDOMAIN with an SOA (RFC 2308).
    Nxdomain = 2,
    /// Answer NOERROR with no data and an SOA.
    Nodata = 3,
    /// Answer REFUSED.
    Refused = 4,
    /// Answer with TC=1, so that the client retries over TCP.
    Truncate = 5,
    /// Answer A/AAAA with the stop-page address; NODATA for other types.
    Redirect = 6,
    /// Drop the query.
    Drop = 7,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 8] = [
        Action::Allow,
        Action::Monitor,
        Action::Nxdomain,
        Action::Nodata,
        Action::Refused,
        Action::Truncate,
        Action::Redirect,
        Action::Drop,
    ];

    /// Decodes an action octet; unknown values read as `Allow` (fail open).
    #[inline(always)]
    pub const fn from_u8(v: u8) -> Action {
        match v {
            1 => Action::Monitor,
            2 => Action::Nxdomain,
            3 => Action::Nodata,
            4 => Action::Refused,
            5 => Action::Truncate,
            6 => Action::Redirect,
            7 => Action::Drop,
            _ => Action::Allow,
        }
    }

    /// Name used in lists, CLI and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Monitor => "monitor",
            Action::Nxdomain => "nxdomain",
            Action::Nodata => "nodata",
            Action::Refused => "refused",
            Action::Truncate => "truncate",
            Action::Redirect => "redirect",
            Action::Drop => "drop",
        }
    }

    /// Parses a name from [`Action::name`].
    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == s)
    }
}

/// Extended DNS Error (RFC 8914) carried in answers to queries with EDNS.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ede {
    /// No EDE option.
    None = 0,
    /// INFO-CODE 16 "Censored": blocked because of an external requirement (a court order).
    Censored = 1,
    /// INFO-CODE 15 "Blocked": blocked by the operator's own policy.
    Blocked = 2,
}

impl Ede {
    /// Decodes the two EDE bits of an entry.
    #[inline(always)]
    pub const fn from_bits(v: u8) -> Ede {
        match v & 3 {
            1 => Ede::Censored,
            2 => Ede::Blocked,
            _ => Ede::None,
        }
    }

    /// The RFC 8914 INFO-CODE, if any.
    #[inline(always)]
    pub const fn info_code(self) -> Option<u16> {
        match self {
            Ede::None => None,
            Ede::Censored => Some(16),
            Ede::Blocked => Some(15),
        }
    }
}

/// The slot is a listed name (not only a marker).
pub const FLAG_ENTRY: u8 = 1;
/// The entry applies to the name itself.
pub const FLAG_SELF: u8 = 2;
/// The entry applies to every name below it.
pub const FLAG_BELOW: u8 = 4;
/// Some listed name lies below this one: keep walking.
pub const FLAG_CHILDREN: u8 = 8;
/// Shift of the two [`Ede`] bits in the flags octet.
pub const EDE_SHIFT: u8 = 4;

/// A decoded slot value: `group` in bits 0..32, action in 32..40, flags in 40..48.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index of the entry's group (the order it comes from) in `GROUP_HITS`.
    pub group: u32,
    /// The action.
    pub action: Action,
    /// `FLAG_*` bits and the EDE choice.
    pub flags: u8,
}

impl Entry {
    /// Encodes the entry as a slot value.
    #[inline(always)]
    pub const fn encode(self) -> u64 {
        (self.group as u64) | ((self.action as u64) << 32) | ((self.flags as u64) << 40)
    }

    /// Decodes a slot value.
    #[inline(always)]
    pub const fn decode(v: u64) -> Entry {
        Entry { group: v as u32, action: Action::from_u8((v >> 32) as u8), flags: (v >> 40) as u8 }
    }

    /// The EDE choice.
    #[inline(always)]
    pub const fn ede(self) -> Ede {
        Ede::from_bits(self.flags >> EDE_SHIFT)
    }

    /// Whether this entry applies to a query whose suffix it is; `exact` when the suffix is
    /// the whole query name.
    #[inline(always)]
    pub const fn applies(self, exact: bool) -> bool {
        let need = if exact { FLAG_SELF } else { FLAG_BELOW };
        self.flags & FLAG_ENTRY != 0 && self.flags & need != 0
    }

    /// Whether listed names lie below this one.
    #[inline(always)]
    pub const fn has_children(self) -> bool {
        self.flags & FLAG_CHILDREN != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes() {
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
        assert_eq!(core::mem::size_of::<TableHeader>(), 64);
        assert_eq!(core::mem::size_of::<Slot>(), 16);
    }

    #[test]
    fn header_round_trips_through_a_bucket() {
        let h = TableHeader {
            magic: MAGIC,
            seed: 7,
            nbuckets: 1000,
            generation: 3,
            entries: 5,
            slots_used: 9,
            layout: LAYOUT_VERSION,
            reserved: [0; 3],
        };
        assert_eq!(Bucket::from_header(&h).header(), h);
    }

    #[test]
    fn entry_round_trips_and_applies() {
        for action in Action::ALL {
            let e = Entry { group: 0xdead_beef, action, flags: FLAG_ENTRY | FLAG_BELOW | (2 << EDE_SHIFT) };
            let d = Entry::decode(e.encode());
            assert_eq!(d, e);
            assert!(d.applies(false));
            assert!(!d.applies(true));
            assert_eq!(d.ede(), Ede::Blocked);
        }
        let marker = Entry { group: 0, action: Action::Allow, flags: FLAG_CHILDREN };
        assert!(!marker.applies(true) && !marker.applies(false) && marker.has_children());
    }

    #[test]
    fn home_bucket_is_in_range() {
        for n in [1u64, 2, 3, 1000, 4_000_000] {
            for k in [0u64, 1, u64::MAX, 0x8000_0000_0000_0000, 0x1234_5678_9abc_def0] {
                let b = home_bucket(k, n);
                assert!((1..=n).contains(&b), "{k:#x} -> {b} for {n}");
            }
        }
    }

    #[test]
    fn probe_stops_at_first_empty_slot() {
        let mut b = Bucket::default();
        b.slots[0] = Slot { key: 5, value: 50 };
        assert_eq!(probe_bucket(&b, 5), Probe::Hit(50));
        assert_eq!(probe_bucket(&b, 6), Probe::Absent);
        for (i, s) in b.slots.iter_mut().enumerate() {
            s.key = 10 + i as u64;
        }
        assert_eq!(probe_bucket(&b, 99), Probe::Next);
    }
}

#[cfg(feature = "user")]
// SAFETY: Bucket is repr(C), Copy, made of u64s with no padding.
unsafe impl aya::Pod for Bucket {}
