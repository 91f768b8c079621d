//! DNS message parsing over [`MsgBuf`], the per-CPU copy of a message.
//!
//! Contract:
//! - Offsets into a [`MsgBuf`] are masked to [`MSG_MASK`] before use, so every access is in
//!   bounds by construction (the verifier sees the mask; host code gets the same semantics).
//! - [`check_header`] decides whether a message is a standard query we may act on.
//! - [`label_at`] reads one label of the question name; the kernel calls it once per
//!   `bpf_loop` iteration, [`parse_question`] calls it in a loop. Both therefore agree on every
//!   malformed shape.
//! - [`parse_text_name`] turns presentation format (`www.Example.com.`, RFC 1035 escapes) into
//!   canonical wire labels.

use crate::counters::Counter;
use crate::hash;

/// Size of the backing buffer. Offsets are masked to [`MSG_MASK`]; reads and writes reach at
/// most a few hundred octets beyond a masked offset, which stays inside the buffer.
pub const MSG_BYTES: usize = 1024;
/// Mask applied to every offset into the buffer.
pub const MSG_MASK: usize = 511;
/// Most octets of a DNS message copied from the packet, and the largest answer built.
pub const MSG_COPY_MAX: usize = 512;
/// Words in the buffer.
pub const MSG_WORDS: usize = MSG_BYTES / 8;
/// DNS header length.
pub const HEADER_LEN: usize = 12;

/// QTYPE A.
pub const TYPE_A: u16 = 1;
/// QTYPE AAAA.
pub const TYPE_AAAA: u16 = 28;
/// TYPE SOA.
pub const TYPE_SOA: u16 = 6;
/// TYPE OPT (RFC 6891).
pub const TYPE_OPT: u16 = 41;
/// CLASS IN.
pub const CLASS_IN: u16 = 1;

/// A DNS message (or its first [`MSG_COPY_MAX`] octets), 8-octet aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct MsgBuf(pub [u8; MSG_BYTES]);

impl Default for MsgBuf {
    fn default() -> Self {
        MsgBuf([0; MSG_BYTES])
    }
}

impl MsgBuf {
    /// Builds a buffer holding a copy of `msg` (truncated to [`MSG_COPY_MAX`]).
    pub fn from_message(msg: &[u8]) -> (Self, usize) {
        let mut buf = MsgBuf::default();
        let n = msg.len().min(MSG_COPY_MAX);
        for (dst, src) in buf.0.iter_mut().zip(msg.iter().take(n)) {
            *dst = *src;
        }
        (buf, n)
    }

    /// Octet at `off` (masked).
    #[inline(always)]
    pub fn byte(&self, off: usize) -> u8 {
        self.0.get(off & MSG_MASK).copied().unwrap_or(0)
    }

    /// Big-endian u16 at `off` (masked).
    #[inline(always)]
    pub fn be16(&self, off: usize) -> u16 {
        u16::from_be_bytes([self.byte(off), self.byte(off.wrapping_add(1))])
    }

    /// Aligned word number `idx` (masked to the buffer).
    #[inline(always)]
    fn aligned_word(&self, idx: usize) -> u64 {
        let idx = idx & (MSG_WORDS - 1);
        // SAFETY: idx < MSG_WORDS, so the 8 octets at idx * 8 are inside the 8-aligned buffer.
        let w = unsafe { self.0.as_ptr().cast::<u64>().add(idx).read() };
        u64::from_le(w)
    }

    /// The eight octets starting at `off` (masked), as a little-endian word, built from two
    /// aligned loads (the BPF target splits unaligned loads into single octets).
    #[inline(always)]
    pub fn word_at(&self, off: usize) -> u64 {
        let off = off & MSG_MASK;
        let idx = off >> 3;
        let shift = (off & 7) << 3;
        let lo = self.aligned_word(idx);
        let hi = self.aligned_word(idx.wrapping_add(1));
        // Two shifts so that shift == 0 gives 0 rather than an overflowing shift by 64.
        (lo >> shift) | ((hi << 1) << 63usize.wrapping_sub(shift))
    }

    /// Writes aligned word number `idx` (masked to the buffer).
    #[inline(always)]
    fn set_aligned_word(&mut self, idx: usize, w: u64) {
        let idx = idx & (MSG_WORDS - 1);
        // SAFETY: idx < MSG_WORDS, so the 8 octets at idx * 8 are inside the 8-aligned buffer.
        unsafe { self.0.as_mut_ptr().cast::<u64>().add(idx).write(w.to_le()) };
    }

    /// Writes the eight octets of `w` (little-endian) at `off` (masked), with read-modify-writes
    /// of the two aligned words they span (the BPF target splits unaligned stores into single
    /// octets). Octets past `MSG_MASK + 8` are not masked: they stay inside the buffer.
    #[inline(always)]
    pub fn put_word(&mut self, off: usize, w: u64) {
        let off = off & MSG_MASK;
        let idx = off >> 3;
        let shift = (off & 7) << 3;
        // The octets below `off` in the first word; 0 when off is aligned.
        let keep = (1u64 << shift).wrapping_sub(1);
        let lo = (self.aligned_word(idx) & keep) | (w << shift);
        // Two shifts so that shift == 0 moves nothing into the second word.
        let hi = (self.aligned_word(idx.wrapping_add(1)) & !keep) | ((w >> 1) >> 63usize.wrapping_sub(shift));
        self.set_aligned_word(idx, lo);
        self.set_aligned_word(idx.wrapping_add(1), hi);
    }

    /// Writes one octet at `off` (masked).
    #[inline(always)]
    pub fn put8(&mut self, off: usize, v: u8) {
        if let Some(b) = self.0.get_mut(off & MSG_MASK) {
            *b = v;
        }
    }

    /// Writes a big-endian u16 at `off` (masked).
    #[inline(always)]
    pub fn put16(&mut self, off: usize, v: u16) {
        let [a, b] = v.to_be_bytes();
        self.put8(off, a);
        self.put8(off.wrapping_add(1), b);
    }

    /// Writes a big-endian u32 at `off` (masked).
    #[inline(always)]
    pub fn put32(&mut self, off: usize, v: u32) {
        let [a, b, c, d] = v.to_be_bytes();
        self.put8(off, a);
        self.put8(off.wrapping_add(1), b);
        self.put8(off.wrapping_add(2), c);
        self.put8(off.wrapping_add(3), d);
    }
}

/// The parts of a DNS header the filter uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Third header octet: QR, OPCODE, AA, TC, RD.
    pub flags_hi: u8,
    /// Fourth header octet: RA, Z, AD, CD, RCODE.
    pub flags_lo: u8,
    /// ARCOUNT (0 or 1 for a candidate).
    pub arcount: u16,
}

/// Checks that `msg` (of `len` octets) is a standard query: QR=0, OPCODE=QUERY, QDCOUNT=1,
/// ANCOUNT=0, NSCOUNT=0, ARCOUNT at most 1. Otherwise returns the counter that says why not.
#[inline(always)]
pub fn check_header(msg: &MsgBuf, len: usize) -> Result<Header, Counter> {
    if len < HEADER_LEN {
        return Err(Counter::PassShortDns);
    }
    let flags_hi = msg.byte(2);
    // QR (0x80) must be 0 and OPCODE (0x78) must be 0 (QUERY).
    if flags_hi & 0xf8 != 0 {
        return Err(Counter::PassNotQuery);
    }
    if msg.be16(4) != 1 {
        return Err(Counter::PassQdcount);
    }
    if msg.be16(6) != 0 || msg.be16(8) != 0 {
        return Err(Counter::PassHasRecords);
    }
    let arcount = msg.be16(10);
    if arcount > 1 {
        return Err(Counter::PassArcount);
    }
    Ok(Header { flags_hi, flags_lo: msg.byte(3), arcount })
}

/// Why a question name cannot be parsed. The program passes such queries untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// A label length above 63 of a reserved type (0x40 or 0x80 prefix).
    Malformed,
    /// A compression pointer (0xC0 prefix).
    Compressed,
    /// The name runs past the end of the message.
    Truncated,
    /// The name is longer than 255 octets.
    TooLong,
}

impl NameError {
    /// The counter for this error.
    pub const fn counter(self) -> Counter {
        match self {
            NameError::Malformed => Counter::PassMalformedName,
            NameError::Compressed => Counter::PassCompressedName,
            NameError::Truncated => Counter::PassTruncatedName,
            NameError::TooLong => Counter::PassNameTooLong,
        }
    }
}

/// Reads the label whose length octet is at `pos`; the message holds `end` valid octets and
/// the name started at [`HEADER_LEN`]. Returns `Ok(None)` for the root label (end of name),
/// `Ok(Some(len))` for a label of `len` octets at `pos + 1`.
#[inline(always)]
pub fn label_at(msg: &MsgBuf, pos: usize, end: usize) -> Result<Option<usize>, NameError> {
    if pos >= end {
        return Err(NameError::Truncated);
    }
    let len = msg.byte(pos) as usize;
    if len == 0 {
        return Ok(None);
    }
    if len & 0xc0 == 0xc0 {
        return Err(NameError::Compressed);
    }
    if len > crate::LABEL_MAX {
        return Err(NameError::Malformed);
    }
    // This label plus at least the root octet must fit in QNAME_MAX octets.
    let name_end = pos.wrapping_add(len).wrapping_add(2);
    if name_end.wrapping_sub(HEADER_LEN) > crate::QNAME_MAX {
        return Err(NameError::TooLong);
    }
    if pos.wrapping_add(1).wrapping_add(len) >= end {
        return Err(NameError::Truncated);
    }
    Ok(Some(len))
}

/// Hash of the label of `len` octets starting at `start` in `msg`.
#[inline(always)]
pub fn hash_label(msg: &MsgBuf, start: usize, len: usize, seed: u64) -> u64 {
    let mut h = hash::label_init(seed, len);
    let mut i = 0usize;
    while i < hash::LABEL_WORDS {
        let taken = i.wrapping_mul(hash::WORD);
        if taken >= len {
            break;
        }
        let w = hash::lower_word(msg.word_at(start.wrapping_add(taken)));
        h = hash::label_fold(h, w & hash::tail_mask(len.wrapping_sub(taken)));
        i = i.wrapping_add(1);
    }
    hash::label_final(h)
}

/// Facts about the question section after its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuestionTail {
    /// QTYPE.
    pub qtype: u16,
    /// Offset just past QCLASS: where answer records go.
    pub end: usize,
}

/// Reads QTYPE and QCLASS after a name whose root octet is at `root`. The class must be IN.
#[inline(always)]
pub fn question_tail(msg: &MsgBuf, root: usize, len: usize) -> Result<QuestionTail, Counter> {
    let end = root.wrapping_add(5);
    if end > len {
        return Err(Counter::PassTruncatedName);
    }
    if msg.be16(root.wrapping_add(3)) != CLASS_IN {
        return Err(Counter::PassNotClassIn);
    }
    Ok(QuestionTail { qtype: msg.be16(root.wrapping_add(1)), end })
}

/// The EDNS(0) OPT record of a query, when the one additional record is OPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opt {
    /// The DO bit (RFC 3225), copied into the answer.
    pub dnssec_ok: bool,
}

/// Finds an OPT record at `at` (just after the question) when ARCOUNT is 1. Any other
/// additional record, or a truncated one, yields `None`: the answer then carries no OPT.
#[inline(always)]
pub fn find_opt(msg: &MsgBuf, at: usize, len: usize, arcount: u16) -> Option<Opt> {
    if arcount != 1 || at.wrapping_add(11) > len {
        return None;
    }
    if msg.byte(at) != 0 || msg.be16(at.wrapping_add(1)) != TYPE_OPT {
        return None;
    }
    Some(Opt { dnssec_ok: msg.byte(at.wrapping_add(7)) & 0x80 != 0 })
}

/// Host-side view of a parsed question, built by [`parse_question`].
#[cfg(any(test, feature = "std"))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// Offsets of each label's length octet, most specific first.
    pub label_offsets: std::vec::Vec<usize>,
    /// Suffix keys, most specific first: `keys[i]` is the key of the name from label `i`.
    pub keys: std::vec::Vec<u64>,
    /// Offset of the root octet.
    pub root: usize,
    /// QTYPE and end of the question.
    pub tail: QuestionTail,
}

/// Parses the question of a whole DNS message (host side), with the same steps as the kernel.
#[cfg(any(test, feature = "std"))]
pub fn parse_question(message: &[u8], seed: u64) -> Result<Question, Counter> {
    let (msg, len) = MsgBuf::from_message(message);
    check_header(&msg, len)?;
    let mut pos = HEADER_LEN;
    let mut label_offsets = std::vec::Vec::new();
    let mut hashes = std::vec::Vec::new();
    loop {
        match label_at(&msg, pos, len).map_err(NameError::counter)? {
            None => break,
            Some(l) => {
                label_offsets.push(pos);
                hashes.push(hash_label(&msg, pos.wrapping_add(1), l, seed));
                pos = pos.wrapping_add(1).wrapping_add(l);
            }
        }
    }
    let tail = question_tail(&msg, pos, len)?;
    let mut keys = std::vec![0u64; hashes.len()];
    let mut key = hash::root_key(seed);
    for (k, h) in keys.iter_mut().zip(hashes.iter()).rev() {
        key = hash::suffix_key(key, *h);
        *k = key;
    }
    Ok(Question { label_offsets, keys, root: pos, tail })
}

/// Why a name in presentation format is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextNameError {
    /// The name is empty (or only the root).
    Empty,
    /// An empty label (`a..b`, a leading dot).
    EmptyLabel,
    /// A label longer than 63 octets.
    LabelTooLong,
    /// The name is longer than 255 octets on the wire.
    NameTooLong,
    /// A bad `\` escape.
    BadEscape,
    /// A character that has no place in a host name (space, control character, `*` inside...).
    BadChar(char),
}

impl core::fmt::Display for TextNameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TextNameError::Empty => f.write_str("empty name"),
            TextNameError::EmptyLabel => f.write_str("empty label"),
            TextNameError::LabelTooLong => f.write_str("label longer than 63 octets"),
            TextNameError::NameTooLong => f.write_str("name longer than 255 octets"),
            TextNameError::BadEscape => f.write_str("bad \\ escape"),
            TextNameError::BadChar(c) => write!(f, "invalid character {c:?}"),
        }
    }
}

/// Parses a name in presentation format into canonical (lower-case) labels, most specific
/// first. Accepts a trailing dot and RFC 1035 escapes (`\.`, `\065`). Refuses whitespace and
/// control characters; other octets are kept (the DNS allows any octet in a label).
#[cfg(any(test, feature = "std"))]
pub fn parse_text_name(text: &str) -> Result<std::vec::Vec<std::vec::Vec<u8>>, TextNameError> {
    use std::vec::Vec;
    // Strip the root dot, unless it is escaped (`a\.` is the label "a.").
    let text = match text.strip_suffix('.') {
        Some(rest) if rest.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 0 => rest,
        _ => text,
    };
    if text.is_empty() {
        return Err(TextNameError::Empty);
    }
    let mut labels: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if cur.is_empty() {
                    return Err(TextNameError::EmptyLabel);
                }
                labels.push(core::mem::take(&mut cur));
            }
            '\\' => {
                let first = chars.next().ok_or(TextNameError::BadEscape)?;
                if let Some(d0) = first.to_digit(10) {
                    let d1 = chars.next().and_then(|c| c.to_digit(10)).ok_or(TextNameError::BadEscape)?;
                    let d2 = chars.next().and_then(|c| c.to_digit(10)).ok_or(TextNameError::BadEscape)?;
                    let v = d0.wrapping_mul(100).wrapping_add(d1.wrapping_mul(10)).wrapping_add(d2);
                    cur.push(u8::try_from(v).map_err(|_| TextNameError::BadEscape)?.to_ascii_lowercase());
                } else if first.is_ascii() && !first.is_ascii_control() {
                    cur.push((first as u8).to_ascii_lowercase());
                } else {
                    return Err(TextNameError::BadEscape);
                }
            }
            c if c.is_whitespace() || c.is_control() => return Err(TextNameError::BadChar(c)),
            c if !c.is_ascii() => return Err(TextNameError::BadChar(c)),
            c => cur.push((c as u8).to_ascii_lowercase()),
        }
        if cur.len() > crate::LABEL_MAX {
            return Err(TextNameError::LabelTooLong);
        }
    }
    if cur.is_empty() {
        return Err(TextNameError::EmptyLabel);
    }
    labels.push(cur);
    let wire_len = labels.iter().map(|l| l.len().wrapping_add(1)).sum::<usize>().wrapping_add(1);
    if wire_len > crate::QNAME_MAX {
        return Err(TextNameError::NameTooLong);
    }
    Ok(labels)
}

/// Wire form of canonical labels (length-prefixed, root-terminated).
#[cfg(any(test, feature = "std"))]
pub fn to_wire(labels: &[std::vec::Vec<u8>]) -> std::vec::Vec<u8> {
    let mut out = std::vec::Vec::new();
    for l in labels {
        out.push(u8::try_from(l.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(l);
    }
    out.push(0);
    out
}

/// Presentation form of canonical labels, with escapes for dots, backslashes and
/// non-printable octets.
#[cfg(any(test, feature = "std"))]
pub fn to_text(labels: &[std::vec::Vec<u8>]) -> std::string::String {
    use core::fmt::Write as _;
    let mut s = std::string::String::new();
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        for &b in l {
            match b {
                b'.' | b'\\' => {
                    s.push('\\');
                    s.push(b as char);
                }
                0x21..=0x7e => s.push(b as char),
                _ => {
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
    }
    s
}

/// Keys of every suffix of a text name's labels, most specific first.
#[cfg(any(test, feature = "std"))]
pub fn text_suffix_keys(labels: &[std::vec::Vec<u8>], seed: u64) -> std::vec::Vec<u64> {
    let mut keys = std::vec![0u64; labels.len()];
    hash::suffix_keys(seed, labels.iter().map(|l| l.as_slice()), &mut keys);
    keys
}

/// State that the kernel's `bpf_loop` callbacks carry from one iteration to the next and hand
/// back to the program.
///
/// It lives in the per-CPU map value, not on the stack, for the verifier: Linux before 6.7
/// verifies a `bpf_loop` callback as if it ran once, so whatever the callback leaves on the
/// caller's stack is known exactly afterwards (one label hashed, the walk ended at the first
/// suffix), and code that depends on other outcomes is removed as dead. A map value's contents
/// are never tracked, so every verifier treats what the loops leave here as unknown and
/// verifies every path after them. All fields are written before each loop starts.
#[repr(C, align(8))]
#[derive(Clone, Copy, Default)]
pub struct LoopState {
    /// Seed of the generation's hashes.
    pub seed: u64,
    /// Label loop: offset of the next length octet in the message.
    pub pos: u64,
    /// Label loop: valid octets in the message copy.
    pub end: u64,
    /// Labels hashed (the label loop's result, the walk's length).
    pub labels: u64,
    /// Label loop: 0 while running, 1 at the root label, or 2 + a `Counter` on error.
    pub state: u64,
    /// Walk: buckets in the generation.
    pub nbuckets: u64,
    /// Walk: key of the suffix walked so far.
    pub key: u64,
    /// Walk: the best entry so far (encoded).
    pub best: u64,
    /// Walk: the label where `best` matched.
    pub best_label: u64,
    /// Walk: 1 once an entry applies.
    pub found: u64,
}

/// Per-CPU working memory of the program (one element of the `SCRATCH` map).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Scratch {
    /// Copy of the DNS message, then the answer built over it.
    pub msg: MsgBuf,
    /// Hash of each question label, most specific first.
    pub label_hash: [u64; crate::MAX_LABELS + 1],
    /// Offset in `msg` of each label's length octet.
    pub label_pos: [u16; crate::MAX_LABELS + 1],
    /// State of the program's two `bpf_loop`s (label hashing, then the suffix walk).
    pub loops: LoopState,
    /// Inputs of the answer path, handed over through memory (see the program).
    pub pending: [u64; 10],
    /// The stop page of a `redirect` answer (the entry's own or the configuration's), handed
    /// over like `pending`; the answer path reads its addresses in place.
    pub stop: crate::table::StopRecord,
    /// Copy of the Ethernet, VLAN, IP and UDP headers while the frame grows at its head.
    pub headers: [u8; 128],
}

/// Parses `message` with two seeds and checks what must hold for every input: the same
/// outcome for both seeds, one key per label, the root octet after every label, keys never 0.
/// Used by the fuzz target and by the seed-corpus test. Panics on a violation.
#[cfg(any(test, feature = "std"))]
pub fn check_parse_invariants(message: &[u8]) {
    let a = parse_question(message, 1);
    let b = parse_question(message, 2);
    assert_eq!(a.is_ok(), b.is_ok(), "outcome independent of the seed");
    if let (Ok(a), Ok(b)) = (a, b) {
        assert_eq!(a.label_offsets, b.label_offsets);
        assert_eq!(a.keys.len(), a.label_offsets.len());
        assert!(a.keys.iter().all(|k| *k != 0));
        assert!(a.root < message.len().min(MSG_COPY_MAX));
        assert!(a.root.wrapping_sub(HEADER_LEN) < crate::QNAME_MAX);
        assert_eq!(message.get(a.root), Some(&0));
        assert!(a.tail.end <= message.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn message(qname: &[u8]) -> Vec<u8> {
        let mut m = std::vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(qname);
        m.extend_from_slice(&[0, 1, 0, 1]);
        m
    }

    fn wire_of(labels: &[&[u8]]) -> Vec<u8> {
        let mut w = Vec::new();
        for l in labels {
            w.push(l.len() as u8);
            w.extend_from_slice(l);
        }
        w.push(0);
        w
    }

    #[test]
    fn golden_vectors() {
        // Regression guard for the hash: a change here changes every key in every table.
        let q = parse_question(&message(&wire_of(&[b"www", b"Example", b"COM"])), 0x0123_4567_89ab_cdef).unwrap();
        assert_eq!(q.label_offsets, [12, 16, 24]);
        assert_eq!(q.root, 28);
        assert_eq!(q.tail, QuestionTail { qtype: 1, end: 33 });
        let text = text_suffix_keys(&parse_text_name("www.example.com").unwrap(), 0x0123_4567_89ab_cdef);
        assert_eq!(q.keys, text);
        assert_eq!(text[2], 0x1dc8_3fb8_d9cf_23a5, "key of com: {:#x}", text[2]);
    }

    #[test]
    fn label_boundaries() {
        let l63 = [b'a'; 63];
        let l64 = [b'a'; 64];
        assert!(parse_question(&message(&wire_of(&[&l63, b"com"])), 1).is_ok());
        assert_eq!(parse_question(&message(&wire_of(&[&l64, b"com"])), 1).err(), Some(Counter::PassMalformedName));
        // 255 octets: accepted; 256: refused.
        let l62 = [b'b'; 62];
        let ok = wire_of(&[&l63, &l63, &l63, &l62[..61]]);
        assert_eq!(ok.len(), 255);
        assert!(parse_question(&message(&ok), 1).is_ok());
        let long = wire_of(&[&l63, &l63, &l63, &l62]);
        assert_eq!(long.len(), 256);
        assert_eq!(parse_question(&message(&long), 1).err(), Some(Counter::PassNameTooLong));
        // 127 labels of one octet: 255 octets, accepted with 127 keys.
        let ones: Vec<&[u8]> = std::iter::repeat_n(&b"x"[..], 127).collect();
        let q = parse_question(&message(&wire_of(&ones)), 1).unwrap();
        assert_eq!(q.keys.len(), 127);
        // The root name: no labels.
        let q = parse_question(&message(&[0]), 1).unwrap();
        assert!(q.keys.is_empty());
    }

    #[test]
    fn malformed_shapes() {
        let cases: [(&[u8], Counter); 5] = [
            (&[0xc0, 0x0c], Counter::PassCompressedName),
            (&[3, b'w', b'w', b'w', 0xc0, 0x0c], Counter::PassCompressedName),
            (&[0x40, b'a', 0], Counter::PassMalformedName),
            (&[0x80, b'a', 0], Counter::PassMalformedName),
            (&[0x41, b'a', 0], Counter::PassMalformedName),
        ];
        for (qname, counter) in cases {
            assert_eq!(parse_question(&message(qname), 1).err(), Some(counter), "{qname:?}");
        }
        let mut m = message(&wire_of(&[b"a"]));
        m[2] |= 0x80;
        assert_eq!(parse_question(&m, 1).err(), Some(Counter::PassNotQuery));
        let mut m = message(&wire_of(&[b"a"]));
        let n = m.len();
        m[n - 1] = 3;
        assert_eq!(parse_question(&m, 1).err(), Some(Counter::PassNotClassIn));
    }

    #[test]
    fn truncation_at_every_offset() {
        let m = message(&wire_of(&[b"www", b"allostreaming", b"com"]));
        for cut in 0..m.len() {
            let r = parse_question(&m[..cut], 1);
            let want = if cut < HEADER_LEN { Counter::PassShortDns } else { Counter::PassTruncatedName };
            assert_eq!(r.err(), Some(want), "cut at {cut}");
            check_parse_invariants(&m[..cut]);
        }
        assert!(parse_question(&m, 1).is_ok());
    }

    #[test]
    fn fuzz_seed_corpus_holds_the_invariants() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/parse_question");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            check_parse_invariants(&bytes);
            n += 1;
        }
        assert!(n >= 8, "seed corpus in {} has {n} files", dir.display());
    }

    #[test]
    fn text_parsing() {
        assert_eq!(
            parse_text_name("WWW.Example.COM.").unwrap(),
            [b"www".to_vec(), b"example".to_vec(), b"com".to_vec()]
        );
        assert_eq!(parse_text_name("a\\.b.c").unwrap(), [b"a.b".to_vec(), b"c".to_vec()]);
        assert_eq!(parse_text_name("\\.").unwrap(), [b".".to_vec()], "an escaped final dot is not the root");
        assert_eq!(parse_text_name("a\\\\.").unwrap(), [b"a\\".to_vec()], "an escaped backslash then the root");
        assert_eq!(parse_text_name("\\065b.c").unwrap()[0], b"ab".to_vec());
        assert_eq!(parse_text_name(""), Err(TextNameError::Empty));
        assert_eq!(parse_text_name("."), Err(TextNameError::Empty));
        assert_eq!(parse_text_name("a..b"), Err(TextNameError::EmptyLabel));
        assert_eq!(parse_text_name(".a"), Err(TextNameError::EmptyLabel));
        assert_eq!(parse_text_name("a b"), Err(TextNameError::BadChar(' ')));
        assert_eq!(parse_text_name("é.fr"), Err(TextNameError::BadChar('é')));
        assert_eq!(parse_text_name("\\999.a"), Err(TextNameError::BadEscape));
        assert_eq!(parse_text_name(&"a".repeat(64)), Err(TextNameError::LabelTooLong));
        let long = std::vec![&*"a".repeat(63); 4].join(".");
        assert_eq!(parse_text_name(&long), Err(TextNameError::NameTooLong));
        let labels = parse_text_name("a\\.b.c\\\\d").unwrap();
        assert_eq!(to_text(&labels), "a\\.b.c\\\\d");
        assert_eq!(parse_text_name(&to_text(&labels)).unwrap(), labels);
    }

    fn label() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 1..=63)
    }

    proptest! {
        /// The key of a name read from the wire (any case, any octets) equals the key of its
        /// canonical text form.
        #[test]
        fn wire_hash_equals_text_hash(labels in proptest::collection::vec(label(), 1..=8), seed in any::<u64>()) {
            let wire_len: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
            prop_assume!(wire_len <= crate::QNAME_MAX);
            let refs: Vec<&[u8]> = labels.iter().map(|l| l.as_slice()).collect();
            let q = parse_question(&message(&wire_of(&refs)), seed).unwrap();
            let canonical: Vec<Vec<u8>> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
            prop_assert_eq!(q.keys, text_suffix_keys(&canonical, seed));
            // And through presentation format (escapes) and back.
            let reparsed = parse_text_name(&to_text(&canonical)).unwrap();
            prop_assert_eq!(reparsed, canonical);
        }

        #[test]
        fn arbitrary_messages_hold_the_invariants(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            check_parse_invariants(&bytes);
        }
    }
}
