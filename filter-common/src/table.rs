//! The lookup table: a compact open-addressing hash table in a BPF array of 64-octet buckets,
//! one generation per inner map of the `TABLE` array-of-maps (swapped atomically).
//!
//! Layout of one generation (an `Array<Bucket>` with `1 + nbuckets + PROBE_BUCKETS + stops`
//! elements):
//! - bucket 0 is the [`TableHeader`]: magic, seed, bucket count, generation, where the stop
//!   records start and how many there are;
//! - data buckets hold four [`Slot`]s each; a key's home bucket is
//!   `1 + fastrange(key >> 32, nbuckets)` and it lives in one of the [`PROBE_BUCKETS`] buckets
//!   from there on (linear probing, no wrap: the table has `PROBE_BUCKETS` spare buckets at the
//!   end). A key 0 marks an empty slot, and slots fill in order, so the first empty slot ends a
//!   search;
//! - after them, at [`TableHeader::stops_at`] (= [`array_len`]`(nbuckets)`), one
//!   [`StopRecord`] per distinct per-entry stop page (at most [`STOPS_MAX`]). An entry's
//!   [`Entry::stop`] `k > 0` names record `k - 1`; 0 means the global stop page of the
//!   configuration. The records live in the generation so that they swap with the entries that
//!   refer to them.
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
pub const LAYOUT_VERSION: u32 = 2;
/// Most distinct per-entry stop records in one generation ([`Entry::stop`] is one octet,
/// 0 meaning "the global stop page").
pub const STOPS_MAX: usize = 255;

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
    /// Number of [`StopRecord`]s (at most [`STOPS_MAX`]).
    pub stops: u32,
    /// Array index of the first [`StopRecord`]: [`array_len`]`(nbuckets)`.
    pub stops_at: u64,
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
            stops: (d.key >> 32) as u32,
            stops_at: d.value,
        }
    }

    /// Encodes a header as bucket 0.
    pub const fn from_header(h: &TableHeader) -> Bucket {
        Bucket {
            slots: [
                Slot { key: h.magic, value: h.seed },
                Slot { key: h.nbuckets, value: h.generation },
                Slot { key: h.entries, value: h.slots_used },
                Slot { key: (h.layout as u64) | ((h.stops as u64) << 32), value: h.stops_at },
            ],
        }
    }
}

/// Array elements of the header, `nbuckets` data buckets and the spare buckets: the index of
/// the first [`StopRecord`].
pub const fn array_len(nbuckets: u64) -> u64 {
    nbuckets.saturating_add(1).saturating_add(PROBE_BUCKETS as u64)
}

/// [`StopRecord::flags`]: `v4` holds an address.
pub const STOP_HAS_V4: u32 = 1;
/// [`StopRecord::flags`]: `v6` holds an address.
pub const STOP_HAS_V6: u32 = 2;

/// Stop-page addresses of `redirect` entries, one array element after the buckets.
///
/// Layout (64 octets, one bucket): octets 0..4 `flags` (native order), 4..8 `v4`, 8..24 `v6`
/// (both network order), 24..64 reserved, zero. In the generation's `u64` words
/// ([`StopRecord::to_words`]): word 0 holds `flags` and `v4`, words 1 and 2 hold `v6`. A family
/// without its `STOP_HAS_*` bit answers NODATA. The same type carries the global stop page of
/// the configuration ([`crate::config::Config::stop_record`]) through the answer path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StopRecord {
    /// `STOP_HAS_*` bits.
    pub flags: u32,
    /// IPv4 address, network order.
    pub v4: [u8; 4],
    /// IPv6 address, network order.
    pub v6: [u8; 16],
    /// Reserved, zero.
    pub reserved: [u64; 5],
}

impl StopRecord {
    /// The IPv4 address, if the record has one.
    #[inline(always)]
    pub const fn v4(&self) -> Option<[u8; 4]> {
        if self.flags & STOP_HAS_V4 != 0 { Some(self.v4) } else { None }
    }

    /// The IPv6 address, if the record has one.
    #[inline(always)]
    pub const fn v6(&self) -> Option<[u8; 16]> {
        if self.flags & STOP_HAS_V6 != 0 { Some(self.v6) } else { None }
    }

    /// The record's first three `u64` words (native order): everything but the reserved part.
    #[inline(always)]
    pub const fn to_words(&self) -> [u64; 3] {
        let [f0, f1, f2, f3] = self.flags.to_ne_bytes();
        let [v0, v1, v2, v3] = self.v4;
        let [w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15] = self.v6;
        [
            u64::from_ne_bytes([f0, f1, f2, f3, v0, v1, v2, v3]),
            u64::from_ne_bytes([w0, w1, w2, w3, w4, w5, w6, w7]),
            u64::from_ne_bytes([w8, w9, w10, w11, w12, w13, w14, w15]),
        ]
    }

    /// The record from its first three `u64` words (see [`StopRecord::to_words`]).
    #[inline(always)]
    pub const fn from_words(words: [u64; 3]) -> StopRecord {
        let [a, b, c] = words;
        let [f0, f1, f2, f3, v0, v1, v2, v3] = a.to_ne_bytes();
        let [w0, w1, w2, w3, w4, w5, w6, w7] = b.to_ne_bytes();
        let [w8, w9, w10, w11, w12, w13, w14, w15] = c.to_ne_bytes();
        StopRecord {
            flags: u32::from_ne_bytes([f0, f1, f2, f3]),
            v4: [v0, v1, v2, v3],
            v6: [w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15],
            reserved: [0; 5],
        }
    }

    /// The words of an array element that holds a record.
    #[inline(always)]
    pub const fn words_of(b: &Bucket) -> [u64; 3] {
        let [a, bb, ..] = b.slots;
        [a.key, a.value, bb.key]
    }

    /// Reads an array element as a stop record.
    #[inline(always)]
    pub const fn from_bucket(b: &Bucket) -> StopRecord {
        StopRecord::from_words(StopRecord::words_of(b))
    }

    /// Encodes the record as an array element.
    pub const fn to_bucket(&self) -> Bucket {
        let [a, b, c] = self.to_words();
        let empty = Slot { key: 0, value: 0 };
        Bucket { slots: [Slot { key: a, value: b }, Slot { key: c, value: 0 }, empty, empty] }
    }
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

/// A decoded slot value: `group` in bits 0..32, action in 32..40, flags in 40..48, stop in
/// 48..56; bits 56..64 are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index of the entry's group (the order it comes from) in `GROUP_HITS`.
    pub group: u32,
    /// The action.
    pub action: Action,
    /// `FLAG_*` bits and the EDE choice.
    pub flags: u8,
    /// Stop page of a `redirect` entry: 0 for the global one of the configuration, `k > 0`
    /// for the generation's [`StopRecord`] `k - 1` (at index `stops_at + k - 1`).
    pub stop: u8,
}

impl Entry {
    /// Encodes the entry as a slot value.
    #[inline(always)]
    pub const fn encode(self) -> u64 {
        (self.group as u64) | ((self.action as u64) << 32) | ((self.flags as u64) << 40) | ((self.stop as u64) << 48)
    }

    /// Decodes a slot value.
    #[inline(always)]
    pub const fn decode(v: u64) -> Entry {
        Entry {
            group: v as u32,
            action: Action::from_u8((v >> 32) as u8),
            flags: (v >> 40) as u8,
            stop: (v >> 48) as u8,
        }
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

#[cfg(feature = "user")]
// SAFETY: Bucket is repr(C), Copy, made of u64s with no padding.
unsafe impl aya::Pod for Bucket {}

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
            stops: 255,
            stops_at: array_len(1000),
        };
        assert_eq!(Bucket::from_header(&h).header(), h);
    }

    #[test]
    fn stop_record_round_trips_through_a_bucket() {
        assert_eq!(core::mem::size_of::<StopRecord>(), 64);
        let r = StopRecord {
            flags: STOP_HAS_V4 | STOP_HAS_V6,
            v4: [192, 0, 2, 1],
            v6: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd],
            reserved: [0; 5],
        };
        assert_eq!(StopRecord::from_bucket(&r.to_bucket()), r);
        assert_eq!(core::mem::align_of::<StopRecord>(), 8);
        // The words are the record's memory: the program writes them in place.
        // SAFETY: StopRecord is 64 plain octets, 8-aligned.
        let mem: [u64; 8] = unsafe { core::mem::transmute(r) };
        assert_eq!(mem[..3], r.to_words());
        assert_eq!(StopRecord::from_words(r.to_words()), r);
        // The bucket holds the record's bytes as laid out in memory.
        let b = r.to_bucket();
        // SAFETY: both types are 64 plain octets with the same alignment.
        let bytes: [u8; 64] = unsafe { core::mem::transmute(b) };
        assert_eq!(&bytes[0..4], &r.flags.to_ne_bytes());
        assert_eq!(&bytes[4..8], &r.v4);
        assert_eq!(&bytes[8..24], &r.v6);
        assert!(bytes[24..].iter().all(|b| *b == 0));
        assert_eq!(r.v4(), Some([192, 0, 2, 1]));
        let only4 = StopRecord { flags: STOP_HAS_V4, ..r };
        assert_eq!(only4.v6(), None);
        assert_eq!(StopRecord::default().v4(), None);
    }

    #[test]
    fn entry_round_trips_and_applies() {
        for action in Action::ALL {
            for stop in [0u8, 1, 0x80, 255] {
                let e = Entry { group: 0xdead_beef, action, flags: FLAG_ENTRY | FLAG_SELF, stop };
                assert_eq!(Entry::decode(e.encode()), e);
                assert_eq!(e.encode() >> 56, 0, "bits 56..64 stay free");
            }
            let e = Entry { group: 0xdead_beef, action, flags: FLAG_ENTRY | FLAG_BELOW | (2 << EDE_SHIFT), stop: 3 };
            let d = Entry::decode(e.encode());
            assert_eq!(d, e);
            assert!(d.applies(false));
            assert!(!d.applies(true));
            assert_eq!(d.ede(), Ede::Blocked);
        }
        let marker = Entry { group: 0, action: Action::Allow, flags: FLAG_CHILDREN, stop: 0 };
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
