//! Calibration programs, hand-written BPF instructions loaded next to the filter in the same
//! run, so that every figure can be stated as a ratio to a floor measured under the same noise:
//!
//! - `floor`: `return XDP_PASS` (the cost of BPF_PROG_TEST_RUN itself);
//! - `hot`: one lookup that hits a 1k-entry BPF hash map (8-octet keys and values), always the
//!   same key;
//! - `cold_array`: one read of a random 64-octet element of an mmapable BPF array as large as
//!   the filter's table generation (the element index is `key % entries`, with `key` the eight
//!   octets at [`KEY_OFFSET`] of the frame): exactly one cold cache line, the unit a table probe
//!   costs;
//! - `cold_hash`: one miss in a preallocated BPF hash map of N entries (8-octet keys and values)
//!   at the key read from the frame: the literature's "cold miss in a 10M hash map".
//!
//! The cold programs must be fed a different frame on every call (random octets at
//! [`KEY_OFFSET`]); see `workload`.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use anyhow::Result;

use crate::sys::{self, HELPER_MAP_LOOKUP_ELEM, Insn};

/// Offset of the eight key octets the cold programs read: the first octets of the first
/// label of the question of an untagged IPv4 DNS query (14 + 20 + 8 + 12 + 1).
pub const KEY_OFFSET: i32 = 55;

/// Keys of the hot map: `i * K` for i in 1..=entries.
const HOT_KEY_STEP: u64 = 0x9E37_79B9_7F4A_7C15;
const XDP_PASS: i32 = 2;

/// A loaded calibration program and the map it owns.
pub struct Calib {
    pub prog: OwnedFd,
    pub map: Option<OwnedFd>,
}

/// `return XDP_PASS`.
pub fn floor() -> Result<Calib> {
    let prog = sys::load_xdp("cal_floor", &[Insn::mov_imm(0, XDP_PASS), Insn::exit()])?;
    Ok(Calib { prog, map: None })
}

/// One hit in a 1k-entry hash map.
pub fn hot(entries: u32) -> Result<Calib> {
    let map = sys::create_map("cal_hot", sys::BPF_MAP_TYPE_HASH, 8, 8, entries, 0)?;
    let keys: Vec<u64> = (1..=u64::from(entries)).map(|i| i.wrapping_mul(HOT_KEY_STEP)).collect();
    sys::update_batch_u64(map.as_fd(), &keys, &keys)?;
    let key = keys[keys.len() / 2];
    let mut insns = Vec::new();
    insns.extend(Insn::ld_imm64(1, key));
    insns.push(Insn::stx_dw(10, 1, -8));
    insns.extend(lookup(map.as_fd(), -8));
    insns.extend([Insn::mov_imm(0, XDP_PASS), Insn::exit()]);
    let prog = sys::load_xdp("cal_hot", &insns)?;
    Ok(Calib { prog, map: Some(map) })
}

/// `bpf_map_lookup_elem(map, fp + key_at)`, then a read of the value when found, as a real
/// lookup would touch it.
fn lookup(map: BorrowedFd<'_>, key_at: i32) -> Vec<Insn> {
    let mut insns = Insn::ld_map_fd(1, map).to_vec();
    insns.extend([
        Insn::mov_reg(2, 10),
        Insn::add_imm(2, key_at),
        Insn::call(HELPER_MAP_LOOKUP_ELEM),
        Insn::jeq_imm(0, 0, 1),
        Insn::ldx_dw(1, 0, 0),
    ]);
    insns
}

/// The whole program around `body`: the key read from the frame into r6 (`body` skipped when
/// the frame is too short), then `return XDP_PASS`.
fn with_key_from_frame(body: Vec<Insn>) -> Vec<Insn> {
    let mut insns = key_from_frame(body.len());
    insns.extend(body);
    insns.extend([Insn::mov_imm(0, XDP_PASS), Insn::exit()]);
    insns
}

/// Reads the key from the frame into r6; when the frame is too short, jumps over the key load
/// and the `body` instructions that follow it.
fn key_from_frame(body: usize) -> Vec<Insn> {
    let skip = (body + 1) as i16;
    vec![
        Insn::ldx_w(2, 1, 0), // r2 = ctx->data
        Insn::ldx_w(3, 1, 4), // r3 = ctx->data_end
        Insn::mov_reg(4, 2),
        Insn::add_imm(4, KEY_OFFSET + 8),
        Insn::jgt_reg(4, 3, skip),
        Insn::ldx_dw(6, 2, KEY_OFFSET as i16),
    ]
}

/// One read of a random element of an mmapable array of `elements` 64-octet elements.
pub fn cold_array(elements: u32) -> Result<Calib> {
    let elements = elements.max(1);
    let map = sys::create_map("cal_cold_arr", sys::BPF_MAP_TYPE_ARRAY, 4, 64, elements, sys::BPF_F_MMAPABLE)?;
    let mut body = vec![Insn::mod_imm(6, elements as i32), Insn::stx_w(10, 6, -4)];
    body.extend(lookup(map.as_fd(), -4));
    let prog = sys::load_xdp("cal_cold_arr", &with_key_from_frame(body))?;
    Ok(Calib { prog, map: Some(map) })
}

/// One miss in a preallocated hash map holding `entries` 8-octet keys.
pub fn cold_hash(entries: u32) -> Result<Calib> {
    let entries = entries.max(1);
    let map = sys::create_map("cal_cold_hash", sys::BPF_MAP_TYPE_HASH, 8, 8, entries, 0)?;
    // Keys with a zero top octet: never printable ASCII, so never equal to a frame's key.
    let keys: Vec<u64> = (1..=u64::from(entries)).map(|i| i.wrapping_mul(HOT_KEY_STEP) >> 8).collect();
    sys::update_batch_u64(map.as_fd(), &keys, &keys)?;
    let mut body = vec![Insn::stx_dw(10, 6, -8)];
    body.extend(lookup(map.as_fd(), -8));
    let prog = sys::load_xdp("cal_cold_hash", &with_key_from_frame(body))?;
    Ok(Calib { prog, map: Some(map) })
}
