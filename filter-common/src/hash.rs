//! Name hashing: one keyed 64-bit hash per label, combined from the root down so that every
//! suffix of a name (`com`, `example.com`, `www.example.com`) has its own key.
//!
//! Contract:
//! - ASCII letters are folded to lower case (SWAR, 8 octets at a time); every other octet is
//!   hashed as it is, so the key of a name is the key of its canonical form.
//! - `label_hash` of the same label bytes is identical whether the bytes come from the wire
//!   ([`crate::dns::MsgBuf`]) or from text ([`hash_label_bytes`]).
//! - `suffix_key(parent, label)` is the key of `label.parent`; the root's key is
//!   [`root_key`]. Keys are never 0 (0 marks an empty table slot).
//! - Every function takes the seed that userspace chose when it built the table, so keys
//!   cannot be computed from outside.
//!
//! This is not a cryptographic hash: the seed stops precomputed collisions, and a collision
//! crafted by a client can only change the verdict for the client's own query.

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xBF58_476D_1CE4_E5B9;
const K3: u64 = 0x94D0_49BB_1331_11EB;
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Octets hashed per word.
pub const WORD: usize = 8;
/// Words in the longest label (63 octets).
pub const LABEL_WORDS: usize = crate::LABEL_MAX.div_ceil(WORD);

/// splitmix64's finaliser: a bijection that spreads every input bit over the output.
#[inline(always)]
pub const fn fmix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(K2);
    x ^= x >> 27;
    x = x.wrapping_mul(K3);
    x ^ (x >> 31)
}

/// Folds ASCII `A`..=`Z` to lower case in all eight octets of `w` at once.
#[inline(always)]
pub const fn lower_word(w: u64) -> u64 {
    // Added to each octet's low 7 bits, these set its high bit when it is >= 'A' (> 'Z').
    const GE_A: u64 = 0x80 - b'A' as u64;
    const GT_Z: u64 = 0x80 - b'Z' as u64 - 1;
    let low7 = w & !HIGHS;
    let ge_a = low7.wrapping_add(ONES.wrapping_mul(GE_A));
    let gt_z = low7.wrapping_add(ONES.wrapping_mul(GT_Z));
    let upper = ge_a & !gt_z & !w & HIGHS;
    w | (upper >> 2)
}

/// Mask that keeps the first `rem` octets (little-endian) of a word; all of them when `rem >= 8`.
#[inline(always)]
pub const fn tail_mask(rem: usize) -> u64 {
    if rem >= WORD { u64::MAX } else { (1u64 << ((rem & 7) << 3)).wrapping_sub(1) }
}

/// Starts the hash of a label of `len` octets.
#[inline(always)]
pub const fn label_init(seed: u64, len: usize) -> u64 {
    seed ^ (len as u64).wrapping_add(1).wrapping_mul(K1)
}

/// Folds one word of label octets (already lower-cased and masked) into the label hash.
#[inline(always)]
pub const fn label_fold(h: u64, word: u64) -> u64 {
    let h = (h ^ word).wrapping_mul(K2);
    h ^ (h >> 32)
}

/// Finishes a label hash.
#[inline(always)]
pub const fn label_final(h: u64) -> u64 {
    fmix(h)
}

/// Key of the root name, the start of every suffix chain.
#[inline(always)]
pub const fn root_key(seed: u64) -> u64 {
    fmix(seed ^ K3)
}

/// Key of `label.parent`, from the parent's key and the label's hash. Never 0.
#[inline(always)]
pub const fn suffix_key(parent: u64, label_hash: u64) -> u64 {
    let k = fmix(parent.wrapping_mul(K1) ^ label_hash);
    if k == 0 { 1 } else { k }
}

/// Hash of one label given as bytes (text side). Equals the wire-side hash of the same octets.
pub fn hash_label_bytes(seed: u64, label: &[u8]) -> u64 {
    let mut h = label_init(seed, label.len());
    for chunk in label.chunks(WORD) {
        let mut word = [0u8; WORD];
        for (dst, src) in word.iter_mut().zip(chunk) {
            *dst = *src;
        }
        h = label_fold(h, lower_word(u64::from_le_bytes(word)));
    }
    label_final(h)
}

/// Keys of every suffix of a name given as its labels, most specific first.
/// `keys[i]` is the key of `labels[i..]`. Returns the number of keys written.
pub fn suffix_keys<'a>(seed: u64, labels: impl DoubleEndedIterator<Item = &'a [u8]>, keys: &mut [u64]) -> usize {
    let mut key = root_key(seed);
    let mut hashes = [0u64; crate::MAX_LABELS];
    let mut n = 0usize;
    for (slot, label) in hashes.iter_mut().zip(labels) {
        *slot = hash_label_bytes(seed, label);
        n = n.wrapping_add(1);
    }
    let mut written = 0usize;
    for (i, lh) in hashes.iter().take(n).enumerate().rev() {
        key = suffix_key(key, *lh);
        if let Some(k) = keys.get_mut(i) {
            *k = key;
            written = written.wrapping_add(1);
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_word_folds_only_ascii_letters() {
        for b in 0u8..=255 {
            let w = u64::from_le_bytes([b, b'A', b'z', b'@', b'[', 0xC1, b'Z', b'0']);
            let got = lower_word(w).to_le_bytes();
            assert_eq!(got[0], b.to_ascii_lowercase(), "octet {b:#x}");
            assert_eq!(&got[1..], &[b'a', b'z', b'@', b'[', 0xC1, b'z', b'0']);
        }
    }

    #[test]
    fn tail_mask_boundaries() {
        assert_eq!(tail_mask(0), 0);
        assert_eq!(tail_mask(1), 0xff);
        assert_eq!(tail_mask(7), 0x00ff_ffff_ffff_ffff);
        assert_eq!(tail_mask(8), u64::MAX);
        assert_eq!(tail_mask(63), u64::MAX);
    }

    #[test]
    fn label_hash_is_case_insensitive_and_length_sensitive() {
        let s = 0x1234;
        assert_eq!(hash_label_bytes(s, b"ExAmPlE"), hash_label_bytes(s, b"example"));
        assert_ne!(hash_label_bytes(s, b"a"), hash_label_bytes(s, b"a\0"));
        assert_ne!(hash_label_bytes(s, b""), hash_label_bytes(s, b"\0"));
        assert_ne!(hash_label_bytes(1, b"example"), hash_label_bytes(2, b"example"));
    }

    #[test]
    fn suffix_keys_are_chained_from_the_root() {
        let seed = 99;
        let labels: [&[u8]; 3] = [b"www", b"example", b"com"];
        let mut keys = [0u64; 3];
        assert_eq!(suffix_keys(seed, labels.iter().copied(), &mut keys), 3);
        let com = suffix_key(root_key(seed), hash_label_bytes(seed, b"com"));
        let ex = suffix_key(com, hash_label_bytes(seed, b"example"));
        assert_eq!(keys, [suffix_key(ex, hash_label_bytes(seed, b"www")), ex, com]);
        // Label boundaries matter: "notexample.com" and "example.com" differ.
        let other: [&[u8]; 2] = [b"notexample", b"com"];
        let mut k2 = [0u64; 2];
        suffix_keys(seed, other.iter().copied(), &mut k2);
        assert_ne!(k2[0], ex);
        assert_eq!(k2[1], com);
    }
}
