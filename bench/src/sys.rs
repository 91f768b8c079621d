//! Raw `bpf(2)` calls the benchmark needs beyond aya: loading hand-written calibration
//! programs, creating and filling anchor maps, BPF_PROG_TEST_RUN with the kernel's own timing,
//! finding a program's maps (and the inner map of an array-of-maps) by id, and the kernel
//! memory (`memlock`) charged to each map. Also CPU pinning.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result, bail};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised prefix of `union bpf_attr` of the size passed; the
    // kernel zero-extends it and writes back only inside it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: a successful BPF_MAP_CREATE / BPF_PROG_LOAD / *_GET_FD_BY_ID returns a new fd we own.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// One BPF instruction, as the kernel reads it (`struct bpf_insn`, little endian).
#[derive(Clone, Copy, Debug)]
pub struct Insn(u64);

impl Insn {
    const fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn(
            code as u64
                | ((dst as u64 & 0xf) << 8)
                | ((src as u64 & 0xf) << 12)
                | ((off as u16 as u64) << 16)
                | ((imm as u32 as u64) << 32),
        )
    }
    /// `dst = imm` (64-bit).
    pub const fn mov_imm(dst: u8, imm: i32) -> Insn {
        Insn::raw(0xb7, dst, 0, 0, imm)
    }
    /// `dst = src` (64-bit).
    pub const fn mov_reg(dst: u8, src: u8) -> Insn {
        Insn::raw(0xbf, dst, src, 0, 0)
    }
    /// `dst += imm` (64-bit).
    pub const fn add_imm(dst: u8, imm: i32) -> Insn {
        Insn::raw(0x07, dst, 0, 0, imm)
    }
    /// `dst %= imm` (64-bit, unsigned).
    pub const fn mod_imm(dst: u8, imm: i32) -> Insn {
        Insn::raw(0x97, dst, 0, 0, imm)
    }
    /// `dst = *(u32 *)(src + off)`.
    pub const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::raw(0x61, dst, src, off, 0)
    }
    /// `dst = *(u64 *)(src + off)`.
    pub const fn ldx_dw(dst: u8, src: u8, off: i16) -> Insn {
        Insn::raw(0x79, dst, src, off, 0)
    }
    /// `*(u32 *)(dst + off) = src`.
    pub const fn stx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::raw(0x63, dst, src, off, 0)
    }
    /// `*(u64 *)(dst + off) = src`.
    pub const fn stx_dw(dst: u8, src: u8, off: i16) -> Insn {
        Insn::raw(0x7b, dst, src, off, 0)
    }
    /// `if dst > src goto +off` (unsigned).
    pub const fn jgt_reg(dst: u8, src: u8, off: i16) -> Insn {
        Insn::raw(0x2d, dst, src, off, 0)
    }
    /// `if dst == imm goto +off`.
    pub const fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::raw(0x15, dst, 0, off, imm)
    }
    /// Call helper `id`.
    pub const fn call(id: i32) -> Insn {
        Insn::raw(0x85, 0, 0, 0, id)
    }
    pub const fn exit() -> Insn {
        Insn::raw(0x95, 0, 0, 0, 0)
    }
    /// `dst = imm64` (two instructions).
    pub const fn ld_imm64(dst: u8, imm: u64) -> [Insn; 2] {
        [Insn::raw(0x18, dst, 0, 0, imm as u32 as i32), Insn::raw(0, 0, 0, 0, (imm >> 32) as u32 as i32)]
    }
    /// `dst = map` by fd (two instructions, BPF_PSEUDO_MAP_FD).
    pub fn ld_map_fd(dst: u8, map: BorrowedFd<'_>) -> [Insn; 2] {
        [Insn::raw(0x18, dst, 1, 0, map.as_raw_fd()), Insn::raw(0, 0, 0, 0, 0)]
    }
}

/// Helper `bpf_map_lookup_elem`.
pub const HELPER_MAP_LOOKUP_ELEM: i32 = 1;

/// Loads an XDP program from hand-written instructions. On a verifier refusal the error
/// carries the verifier log.
pub fn load_xdp(name: &str, insns: &[Insn]) -> Result<OwnedFd> {
    let code: Vec<u64> = insns.iter().map(|i| i.0).collect();
    testbed::xdp::load(name, &code).map_err(|e| anyhow::anyhow!("calibration program: {e}"))
}

/// `union bpf_attr` for BPF_MAP_CREATE, up to `map_name`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// Creates a map.
pub fn create_map(
    name: &str,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> Result<OwnedFd> {
    let mut attr =
        MapCreateAttr { map_type, key_size, value_size, max_entries, map_flags: flags, ..Default::default() };
    let n = name.len().min(15);
    attr.map_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let fd = bpf(BPF_MAP_CREATE, &mut attr)
        .with_context(|| format!("creating map {name} ({max_entries} entries of {value_size} octets)"))?;
    Ok(owned(fd))
}

/// `union bpf_attr` for element commands.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Reads one element.
pub fn lookup_elem<K, V: Default>(map: BorrowedFd<'_>, key: &K) -> Result<V> {
    let mut value = V::default();
    let mut attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: std::ptr::from_ref(key) as u64,
        value: std::ptr::from_mut(&mut value) as u64,
        ..Default::default()
    };
    bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).context("BPF_MAP_LOOKUP_ELEM")?;
    Ok(value)
}

/// `union bpf_attr` for BPF_MAP_*_BATCH.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Fills a map with 8-octet keys and values, in batches.
pub fn update_batch_u64(map: BorrowedFd<'_>, keys: &[u64], values: &[u64]) -> Result<()> {
    const BATCH: usize = 1 << 20;
    for (k, v) in keys.chunks(BATCH).zip(values.chunks(BATCH)) {
        let mut attr = BatchAttr {
            keys: k.as_ptr() as u64,
            values: v.as_ptr() as u64,
            count: k.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        bpf(BPF_MAP_UPDATE_BATCH, &mut attr).context("BPF_MAP_UPDATE_BATCH")?;
        if attr.count as usize != k.len() {
            bail!("BPF_MAP_UPDATE_BATCH wrote {} of {} elements", attr.count, k.len());
        }
    }
    Ok(())
}

pub use filter_tests::Ran;

/// One BPF_PROG_TEST_RUN of `frame`, `repeat` times, writing the output frame into `out`.
/// `out` must be large enough for the output (the kernel refuses a short one).
pub fn test_run(prog: BorrowedFd<'_>, frame: &[u8], repeat: u32, out: &mut [u8]) -> Result<Ran> {
    filter_tests::test_run_fd(prog, frame, repeat, out).context("BPF_PROG_TEST_RUN")
}

/// `union bpf_attr` for BPF_*_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// A descriptor of the map with this id.
pub fn map_fd_by_id(id: u32) -> Result<OwnedFd> {
    let mut attr = GetFdAttr { id, ..Default::default() };
    let fd = bpf(BPF_MAP_GET_FD_BY_ID, &mut attr).with_context(|| format!("BPF_MAP_GET_FD_BY_ID {id}"))?;
    Ok(owned(fd))
}

/// The id of the map in slot 0 of an array-of-maps (what a userspace lookup returns).
pub fn inner_map_id(outer: BorrowedFd<'_>) -> Result<u32> {
    lookup_elem::<u32, u32>(outer, &0)
}

/// Kernel memory charged to a map: the `memlock:` line of its fdinfo, octets.
pub fn memlock(map: BorrowedFd<'_>) -> Result<u64> {
    let path = format!("/proc/self/fdinfo/{}", map.as_raw_fd());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:").map(|v| v.trim().parse::<u64>()))
        .with_context(|| format!("{path} has no memlock line"))?
        .with_context(|| format!("{path}: memlock is not a number"))
}

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("sched_setaffinity to CPU {cpu}"));
        }
    }
    Ok(())
}

/// Online CPUs.
pub fn ncpus() -> usize {
    // SAFETY: sysconf has no preconditions. (available_parallelism would honour our pinning.)
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}
