//! The dnsfilter XDP program. It fetches packet bytes, calls `filter-common` for every
//! decision, acts on the verdict (pass, drop, or an answer sent back with XDP_TX) and counts
//! each packet once. Needs Linux 5.18 (`bpf_loop` with BTF callbacks since 5.17, `bpf_xdp_load_bytes` and `bpf_xdp_store_bytes` since 5.18).
#![no_std]
#![no_main]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    btf_maps::{Array, ArrayOfMaps, PerCpuArray},
    helpers::generated::{
        bpf_csum_diff, bpf_loop, bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use filter_common::{
    GROUPS_MAX, MAX_LABELS, VLAN_MAX,
    answer::{self, Plan},
    config::Config,
    counters::Counter,
    dns::{self, HEADER_LEN, MSG_COPY_MAX, MSG_MASK, Scratch},
    hash,
    table::{Action, Bucket, Entry, MAGIC, PROBE_BUCKETS, Probe, StopRecord, home_bucket, probe_bucket},
};

const BPF_F_MMAPABLE: usize = 1 << 10;
const BPF_F_INNER_MAP: usize = 1 << 12;

/// One table generation: see `filter_common::table`. Userspace sizes each generation.
type Generation = Array<Bucket, 1, { BPF_F_MMAPABLE | BPF_F_INNER_MAP }>;

#[btf_map]
static TABLE: ArrayOfMaps<Generation, 1> = ArrayOfMaps::new();

#[btf_map]
static CONFIG: Array<Config, 1> = Array::new();

#[btf_map]
static COUNTERS: PerCpuArray<u64, { Counter::COUNT as usize }> = PerCpuArray::new();

#[btf_map]
static GROUP_HITS: PerCpuArray<u64, { GROUPS_MAX as usize }> = PerCpuArray::new();

#[btf_map]
static SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

const ETH_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
/// Most 32-bit words of IPv4 options (IHL 15).
const IPV4_OPT_WORDS: usize = 10;
const REPLY_HOP_LIMIT: u8 = 64;

const _: () = assert!(size_of::<StopRecord>() == 64 && align_of::<StopRecord>() == 8);

#[xdp]
pub fn dnsfilter(ctx: XdpContext) -> u32 {
    let (verdict, counter) = filter(&ctx);
    count(&COUNTERS, counter as u32);
    verdict
}

#[inline(always)]
fn count<const N: usize>(map: &PerCpuArray<u64, N>, index: u32) {
    if let Some(c) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it, and not concurrently.
        unsafe { *c = (*c).wrapping_add(1) };
    }
}

/// Zero, as a value LLVM cannot see through.
///
/// LLVM merges runs of constant zero stores (the zero fields of a struct literal, `[0; N]`)
/// into a `memset` call, which this target links to compiler_builtins' loop of one store and
/// one branch per octet: `bpftool prog dump xlated` showed 16 + 24 such iterations on every
/// query and 48 more on every answer. Stores of a value LLVM does not know stay plain stores
/// (measured in BENCHMARKS.md).
#[inline(always)]
fn opaque_zero() -> u64 {
    let z = 0u64;
    // SAFETY: reading a local.
    unsafe { core::ptr::read_volatile(&z) }
}

/// Pointer to `len` octets at `off`, if they are inside the packet.
#[inline(always)]
fn ptr_at(ctx: &XdpContext, off: usize, len: usize) -> Option<*mut u8> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start.wrapping_add(off).wrapping_add(len) > end {
        return None;
    }
    Some(start.wrapping_add(off) as *mut u8)
}

#[inline(always)]
fn be16_at(ctx: &XdpContext, off: usize) -> Option<u16> {
    let p = ptr_at(ctx, off, 2)?;
    // SAFETY: two octets are in the packet (checked by ptr_at).
    Some(u16::from_be_bytes(unsafe { [*p, *p.add(1)] }))
}

#[inline(always)]
fn u8_at(ctx: &XdpContext, off: usize) -> Option<u8> {
    let p = ptr_at(ctx, off, 1)?;
    // SAFETY: one octet is in the packet (checked by ptr_at).
    Some(unsafe { *p })
}

/// Where the layers of a DNS query sit in the frame.
#[derive(Clone, Copy)]
struct Layout {
    /// Offset of the IP header.
    ip: usize,
    /// IPv4 header length, or 0 for IPv6.
    ihl: usize,
    /// Offset of the UDP header.
    udp: usize,
    /// Length of the DNS message (UDP payload).
    dns_len: usize,
}

impl Layout {
    #[inline(always)]
    fn is_v6(&self) -> bool {
        self.ihl == 0
    }

    #[inline(always)]
    fn dns(&self) -> usize {
        self.udp.wrapping_add(UDP_LEN)
    }
}

type Outcome = (u32, Counter);

#[inline(always)]
fn pass(c: Counter) -> Outcome {
    (XDP_PASS, c)
}

#[inline(always)]
fn filter(ctx: &XdpContext) -> Outcome {
    let layout = match parse_frame(ctx) {
        Ok(l) => l,
        Err(c) => return pass(c),
    };
    match inspect(ctx, &layout) {
        Ok(o) => o,
        Err(c) => pass(c),
    }
}

/// Ethernet (up to two VLAN tags), IPv4/IPv6, UDP to a DNS port. Cheap rejections first.
#[inline(always)]
fn parse_frame(ctx: &XdpContext) -> Result<Layout, Counter> {
    let mut proto = be16_at(ctx, 12).ok_or(Counter::PassBadHeader)?;
    let mut off = ETH_LEN;
    let mut tags = 0;
    while tags < VLAN_MAX {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        proto = be16_at(ctx, off.wrapping_add(2)).ok_or(Counter::PassBadHeader)?;
        off = off.wrapping_add(4);
        tags += 1;
    }
    let frame_len = ctx.data_end().wrapping_sub(ctx.data());
    let (ihl, udp, ip_end) = match proto {
        ETH_P_IP => {
            let vihl = u8_at(ctx, off).ok_or(Counter::PassBadHeader)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Err(Counter::PassBadHeader);
            }
            // MF flag or a fragment offset: a fragment of any kind.
            if be16_at(ctx, off.wrapping_add(6)).ok_or(Counter::PassBadHeader)? & 0x3fff != 0 {
                return Err(Counter::PassIpFragment);
            }
            if u8_at(ctx, off.wrapping_add(9)).ok_or(Counter::PassBadHeader)? != IPPROTO_UDP {
                return Err(Counter::PassNotUdp);
            }
            let total = usize::from(be16_at(ctx, off.wrapping_add(2)).ok_or(Counter::PassBadHeader)?);
            (ihl, off.wrapping_add(ihl), off.wrapping_add(total))
        }
        ETH_P_IPV6 => {
            let next = u8_at(ctx, off.wrapping_add(6)).ok_or(Counter::PassBadHeader)?;
            if next != IPPROTO_UDP {
                return Err(if is_ipv6_extension(next) { Counter::PassIpv6ExtHeader } else { Counter::PassNotUdp });
            }
            if u8_at(ctx, off).ok_or(Counter::PassBadHeader)? >> 4 != 6 {
                return Err(Counter::PassBadHeader);
            }
            let plen = usize::from(be16_at(ctx, off.wrapping_add(4)).ok_or(Counter::PassBadHeader)?);
            (0, off.wrapping_add(IPV6_LEN), off.wrapping_add(IPV6_LEN).wrapping_add(plen))
        }
        _ => return Err(Counter::PassNotIp),
    };
    let dport = be16_at(ctx, udp.wrapping_add(2)).ok_or(Counter::PassBadHeader)?;
    let cfg = CONFIG.get(0).ok_or(Counter::PassNoTable)?;
    if !cfg.is_dns_port(dport) {
        return Err(Counter::PassNotDnsPort);
    }
    if cfg.has_resolvers() && !to_resolver(ctx, cfg, off, ihl == 0) {
        return Err(Counter::PassNotResolver);
    }
    let ulen = usize::from(be16_at(ctx, udp.wrapping_add(4)).ok_or(Counter::PassBadHeader)?);
    if ulen < UDP_LEN || udp.wrapping_add(ulen) > ip_end || ip_end > frame_len {
        return Err(Counter::PassBadHeader);
    }
    Ok(Layout { ip: off, ihl, udp, dns_len: ulen.wrapping_sub(UDP_LEN) })
}

/// Whether the destination address of the IP header at `ip` is a configured resolver (of its
/// own family: with only IPv4 resolvers listed, no IPv6 destination is one).
#[inline(always)]
fn to_resolver(ctx: &XdpContext, cfg: &Config, ip: usize, v6: bool) -> bool {
    if v6 {
        let Some(p) = ptr_at(ctx, ip.wrapping_add(24), 16) else { return false };
        // SAFETY: 16 octets are in the packet (checked by ptr_at).
        cfg.is_resolver_v6(unsafe { p.cast::<[u8; 16]>().read_unaligned() })
    } else {
        let Some(p) = ptr_at(ctx, ip.wrapping_add(16), 4) else { return false };
        // SAFETY: 4 octets are in the packet (checked by ptr_at).
        cfg.is_resolver_v4(unsafe { p.cast::<[u8; 4]>().read_unaligned() })
    }
}

/// IPv6 extension headers (RFC 8200 §4, RFC 7045): hop-by-hop, routing, fragment,
/// destination options, AH, ESP, mobility, HIP, shim6, experimental.
#[inline(always)]
fn is_ipv6_extension(next: u8) -> bool {
    matches!(next, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
}

/// What a `bpf_loop` callback gets as its context: the two pointers it needs. Everything
/// that changes from one iteration to the next is in `Scratch::loops` (see
/// `filter_common::dns::LoopState` for why it is not here).
#[repr(C)]
struct LoopCtx {
    scratch: *mut Scratch,
    table: *const Generation,
}

const LOOP_RUNNING: u64 = 0;
const LOOP_ROOT: u64 = 1;
const LOOP_ERROR: u64 = 2;

/// One label of the question name: hash it, note where it starts, move to the next.
#[inline(never)]
extern "C" fn label_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the LoopCtx on the caller's stack (bpf_loop passes it through); its
    // scratch pointer came from a successful per-CPU map lookup.
    let s = unsafe { &mut *(*ctx.cast::<LoopCtx>()).scratch };
    let pos = (s.loops.pos as usize) & MSG_MASK;
    match dns::label_at(&s.msg, pos, s.loops.end as usize) {
        Err(e) => {
            s.loops.state = LOOP_ERROR + e.counter() as u64;
            1
        }
        Ok(None) => {
            s.loops.state = LOOP_ROOT;
            1
        }
        Ok(Some(len)) => {
            let start = pos.wrapping_add(1);
            let h = dns::hash_label(&s.msg, start, len, s.loops.seed);
            // verifier: derive the slot from the loop index, which the verifier treats as
            // unknown, not from a counter it could track precisely.
            let i = (index as usize) & MAX_LABELS;
            if let Some(slot) = s.label_hash.get_mut(i) {
                *slot = h;
            }
            if let Some(slot) = s.label_pos.get_mut(i) {
                *slot = pos as u16;
            }
            s.loops.labels = index.wrapping_add(1);
            s.loops.pos = (start.wrapping_add(len) & MSG_MASK) as u64;
            0
        }
    }
}

/// One step of the suffix walk, from the top-level label down: look the suffix up, keep the
/// most specific entry that applies, stop at the first absent suffix.
#[inline(never)]
extern "C" fn walk_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the LoopCtx on the caller's stack; both pointers came from successful
    // map lookups in this program run.
    let (s, table) = unsafe {
        let c = &*ctx.cast::<LoopCtx>();
        (&mut *c.scratch, &*c.table)
    };
    // Label k is the index-th from the right.
    let k = (s.loops.labels.wrapping_sub(1).wrapping_sub(index) as usize) & MAX_LABELS;
    let lh = s.label_hash.get(k).copied().unwrap_or(0);
    let key = hash::suffix_key(s.loops.key, lh);
    s.loops.key = key;
    let home = home_bucket(key, s.loops.nbuckets);
    let mut j = 0u64;
    while j < PROBE_BUCKETS as u64 {
        let Some(bucket) = table.get(home.wrapping_add(j) as u32) else {
            return 1;
        };
        match probe_bucket(bucket, key) {
            Probe::Hit(v) => {
                let e = Entry::decode(v);
                if e.applies(k == 0) {
                    s.loops.best = v;
                    s.loops.best_label = k as u64;
                    s.loops.found = 1;
                }
                return if e.has_children() { 0 } else { 1 };
            }
            Probe::Absent => return 1,
            Probe::Next => j += 1,
        }
    }
    1
}

#[inline(always)]
fn inspect(ctx: &XdpContext, layout: &Layout) -> Result<Outcome, Counter> {
    let n = layout.dns_len.min(MSG_COPY_MAX);
    if n < HEADER_LEN {
        return Err(Counter::PassShortDns);
    }
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(Counter::PassShortDns)?;
    // SAFETY: per-CPU scratch, used by this program run only.
    let s = unsafe { &mut *scratch };
    // verifier: an arithmetic clamp to [1, 512] that survives LLVM's register allocation.
    let n = (n.wrapping_sub(1) & (MSG_COPY_MAX - 1)).wrapping_add(1);
    // SAFETY: the buffer holds MSG_BYTES >= MSG_COPY_MAX >= n octets.
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, layout.dns() as u32, s.msg.0.as_mut_ptr().cast(), n as u32) };
    if rc != 0 {
        return Err(Counter::PassBadHeader);
    }
    let header = dns::check_header(&s.msg, n)?;

    let table = TABLE.get(0).ok_or(Counter::PassNoTable)?;
    let head = table.get(0).ok_or(Counter::PassNoTable)?.header();
    if head.magic != MAGIC || head.nbuckets == 0 {
        return Err(Counter::PassBadTable);
    }

    let z = opaque_zero();
    s.loops = filter_common::dns::LoopState {
        seed: head.seed,
        pos: HEADER_LEN as u64,
        end: n as u64,
        nbuckets: head.nbuckets,
        key: hash::root_key(head.seed),
        // Written as opaque zeros: LLVM would merge constant zero stores into a memset loop.
        labels: z,
        state: LOOP_RUNNING | z,
        best: z,
        best_label: z,
        found: z,
    };
    let mut lc = LoopCtx { scratch, table: table as *const Generation };
    // SAFETY: label_step is a static callback; lc lives on this stack for the call.
    unsafe { bpf_loop((MAX_LABELS + 1) as u32, label_step as *mut c_void, (&raw mut lc).cast(), 0) };
    match s.loops.state {
        LOOP_ROOT => {}
        LOOP_RUNNING => return Err(Counter::PassNameTooLong),
        st => return Err(counter_from(st.wrapping_sub(LOOP_ERROR))),
    }
    let root = (s.loops.pos as usize) & MSG_MASK;
    let tail = dns::question_tail(&s.msg, root, n)?;
    let labels = s.loops.labels;
    if labels == 0 || labels > (MAX_LABELS + 1) as u64 {
        return Err(Counter::PassNoMatch);
    }
    // SAFETY: walk_step is a static callback; lc lives on this stack for the call.
    unsafe { bpf_loop(labels as u32, walk_step as *mut c_void, (&raw mut lc).cast(), 0) };
    if s.loops.found == 0 {
        return Err(Counter::PassNoMatch);
    }
    let entry = Entry::decode(s.loops.best);
    count(&GROUP_HITS, entry.group);
    match entry.action {
        Action::Allow => return Ok(pass(Counter::HitAllow)),
        Action::Monitor => return Ok(pass(Counter::HitMonitor)),
        Action::Drop => return Ok((XDP_DROP, Counter::Drop)),
        _ => {}
    }
    let owner = s.label_pos.get((s.loops.best_label as usize) & MAX_LABELS).copied().unwrap_or(12);
    let opt = dns::find_opt(&s.msg, tail.end, n, header.arcount);
    let pending = [
        entry.action as u64,
        entry.ede() as u64,
        u64::from(header.flags_hi),
        u64::from(header.flags_lo),
        u64::from(tail.qtype),
        tail.end as u64,
        u64::from(owner),
        match opt {
            None => 0,
            Some(o) => 1 | (u64::from(o.dnssec_ok) << 1),
        },
        layout.ip as u64,
        layout.ihl as u64,
    ];
    // verifier: the answer path is verified once per distinct state that reaches it. Passing
    // its inputs through per-CPU memory (volatile, so LLVM cannot forward the values) makes
    // them unknown scalars, so every path through the parser and the lookup reaches it in the
    // same state.
    for (i, v) in pending.iter().enumerate() {
        if let Some(slot) = s.pending.get_mut(i) {
            // SAFETY: slot is a valid, aligned u64 in the scratch map value.
            unsafe { core::ptr::write_volatile(slot, *v) };
        }
    }
    if entry.action == Action::Redirect {
        // The stop page: the entry's own record, read from the generation the entry came from
        // (a swap since the walk cannot pair it with another generation's records), or the
        // configuration's.
        let words = if entry.stop == 0 {
            CONFIG.get(0).ok_or(Counter::AnswerFailed)?.stop_record().to_words()
        } else {
            let head = table.get(0).ok_or(Counter::PassBadTable)?.header();
            if u32::from(entry.stop) > head.stops {
                return Err(Counter::PassBadTable);
            }
            let at = head.stops_at.wrapping_add(u64::from(entry.stop)).wrapping_sub(1);
            StopRecord::words_of(table.get(at as u32).ok_or(Counter::PassBadTable)?)
        };
        // verifier: handed over like `pending`, as the record's first three words.
        let dst = (&raw mut s.stop).cast::<u64>();
        for (i, v) in words.iter().enumerate() {
            // SAFETY: StopRecord is repr(C), 8-aligned and 64 octets, its first three u64
            // words are `to_words` (checked in filter-common); i < 3.
            unsafe { core::ptr::write_volatile(dst.add(i), *v) };
        }
    }
    answer_pending(ctx, s).ok_or(Counter::AnswerFailed)
}

/// Builds and sends the answer described by `s.pending`.
#[inline(always)]
fn answer_pending(ctx: &XdpContext, s: &mut Scratch) -> Option<Outcome> {
    let mut p = [0u64; 10];
    for (i, v) in p.iter_mut().enumerate() {
        // SAFETY: reading a valid, aligned u64 from the scratch map value.
        *v = unsafe { core::ptr::read_volatile(s.pending.get(i)?) };
    }
    let [action, ede, flags_hi, flags_lo, qtype, qend, owner, opt, ip, ihl] = p;
    let action = Action::from_u8(action as u8);
    let cfg = CONFIG.get(0)?;
    let shape = answer::shape(action, qtype as u16, &s.stop)?;
    let plan = Plan {
        action,
        ede: filter_common::table::Ede::from_bits(ede as u8),
        header: dns::Header { flags_hi: flags_hi as u8, flags_lo: flags_lo as u8, arcount: 0 },
        qtype: qtype as u16,
        qend: (qend as usize) & MSG_MASK,
        owner: (owner as usize) & MSG_MASK,
        opt: if opt & 1 != 0 { Some(dns::Opt { dnssec_ok: opt & 2 != 0 }) } else { None },
    };
    let ihl = (ihl as usize) & 0x3c;
    let ip = (ip as usize) & 0x1f;
    let udp = ip.wrapping_add(if ihl == 0 { IPV6_LEN } else { ihl });
    let layout = Layout { ip, ihl, udp, dns_len: 0 };
    let len = answer::build(&mut s.msg, cfg, &plan, shape, &s.stop, &answer::WordCopy);
    transmit(ctx, &layout, s, len)?;
    Some((XDP_TX, answer_counter(action)))
}

#[inline(always)]
fn answer_counter(action: Action) -> Counter {
    match action {
        Action::Nxdomain => Counter::AnswerNxdomain,
        Action::Nodata => Counter::AnswerNodata,
        Action::Refused => Counter::AnswerRefused,
        Action::Truncate => Counter::AnswerTruncate,
        _ => Counter::AnswerRedirect,
    }
}

#[inline(always)]
fn counter_from(v: u64) -> Counter {
    match v {
        x if x == Counter::PassMalformedName as u64 => Counter::PassMalformedName,
        x if x == Counter::PassCompressedName as u64 => Counter::PassCompressedName,
        x if x == Counter::PassNameTooLong as u64 => Counter::PassNameTooLong,
        _ => Counter::PassTruncatedName,
    }
}

/// One's-complement fold of a 32-bit partial sum to the 16-bit checksum (as stored).
#[inline(always)]
fn fold(sum: i64) -> u16 {
    let mut s = (sum as u64) & 0xffff_ffff;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    let c = !(s as u16);
    if c == 0 { 0xffff } else { c }
}

/// Swaps `len` octets at `a` and `b` in the packet.
///
/// # Safety
/// Both ranges must be inside the packet.
#[inline(always)]
unsafe fn swap_bytes<const LEN: usize>(a: *mut u8, b: *mut u8) {
    // SAFETY: the caller guarantees both ranges are in the packet.
    unsafe {
        let x = a.cast::<[u8; LEN]>().read_unaligned();
        let y = b.cast::<[u8; LEN]>().read_unaligned();
        a.cast::<[u8; LEN]>().write_unaligned(y);
        b.cast::<[u8; LEN]>().write_unaligned(x);
    }
}

/// Resizes the frame to carry the `len`-octet answer in `s.msg`, writes it, turns the
/// addresses and ports around, fixes lengths and checksums. `None` if the frame could not be
/// resized or written (it is then passed: only the tail may have changed, never the query).
#[inline(always)]
fn transmit(ctx: &XdpContext, layout: &Layout, s: &mut Scratch, len: usize) -> Option<()> {
    if len < HEADER_LEN || len > MSG_COPY_MAX {
        return None;
    }
    let dns_off = layout.dns();
    let frame_len = ctx.data_end().wrapping_sub(ctx.data());
    let delta = (dns_off.wrapping_add(len) as i64).wrapping_sub(frame_len as i64);
    // SAFETY: plain helper calls on this program's context.
    unsafe {
        if delta != 0 && bpf_xdp_adjust_tail(ctx.ctx, delta as i32) != 0 {
            // No tailroom (veth hands over skbs with little of it): grow at the head instead,
            // moving the headers (at most 14 + 8 + 60 + 8 octets) to the new start.
            if delta < 0 || dns_off > s.headers.len() {
                return None;
            }
            // verifier: clamp to [1, 128] arithmetically.
            let hlen = (dns_off.wrapping_sub(1) & 127).wrapping_add(1);
            let hdr = s.headers.as_mut_ptr().cast();
            if bpf_xdp_load_bytes(ctx.ctx, 0, hdr, hlen as u32) != 0
                || bpf_xdp_adjust_head(ctx.ctx, (delta as i32).wrapping_neg()) != 0
            {
                return None;
            }
            if bpf_xdp_store_bytes(ctx.ctx, 0, hdr, hlen as u32) != 0 {
                // The headroom is taken but the headers are not in front: nothing sane can
                // be passed on. verifier-only reachable (the store is in bounds).
                return None;
            }
        }
        // verifier: clamp to [1, 512] arithmetically (len is 12..=512 here).
        let n = (len.wrapping_sub(1) & (MSG_COPY_MAX - 1)).wrapping_add(1);
        if bpf_xdp_store_bytes(ctx.ctx, dns_off as u32, s.msg.0.as_mut_ptr().cast(), n as u32) != 0 {
            return None;
        }
    }
    // Checksum of the DNS message (zero-padded to a multiple of 4 by answer::build).
    // verifier: a multiple of 4 in [4, 512].
    let padded = ((len.wrapping_add(3) & !3).wrapping_sub(4) & (MSG_COPY_MAX - 4)).wrapping_add(4);
    // SAFETY: msg holds MSG_BYTES octets, padded <= 512.
    let msg_sum = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, s.msg.0.as_mut_ptr().cast(), padded as u32, 0) };
    if msg_sum < 0 {
        return None;
    }
    let udp_len = (len.wrapping_add(UDP_LEN)) as u16;

    // Ethernet: swap destination and source.
    let eth = ptr_at(ctx, 0, ETH_LEN)?;
    // SAFETY: 14 octets checked by ptr_at.
    unsafe { swap_bytes::<6>(eth, eth.add(6)) };

    // Pseudo-header (RFC 768 / RFC 8200 §8.1) plus the UDP header, in network order.
    let mut pseudo = [opaque_zero() as u32; 12];
    let pseudo_len;
    if layout.is_v6() {
        let ip = ptr_at(ctx, layout.ip, IPV6_LEN)?;
        // SAFETY: 40 octets checked by ptr_at.
        unsafe {
            swap_bytes::<16>(ip.add(8), ip.add(24));
            ip.add(4).cast::<[u8; 2]>().write_unaligned(udp_len.to_be_bytes());
            *ip.add(7) = REPLY_HOP_LIMIT;
            let p = pseudo.as_mut_ptr().cast::<u8>();
            core::ptr::copy_nonoverlapping(ip.add(8), p, 32);
            p.add(32).cast::<[u8; 4]>().write_unaligned(u32::from(udp_len).to_be_bytes());
            *p.add(39) = IPPROTO_UDP;
        }
        pseudo_len = 48usize;
    } else {
        let ihl = layout.ihl & 0x3c;
        let ip = ptr_at(ctx, layout.ip, 20)?;
        let total = (ihl.wrapping_add(UDP_LEN).wrapping_add(len)) as u16;
        // SAFETY: the 20-octet fixed header checked by ptr_at.
        unsafe {
            swap_bytes::<4>(ip.add(12), ip.add(16));
            ip.add(2).cast::<[u8; 2]>().write_unaligned(total.to_be_bytes());
            *ip.add(8) = REPLY_HOP_LIMIT;
            ip.add(10).cast::<[u8; 2]>().write_unaligned([0, 0]);
            let p = pseudo.as_mut_ptr().cast::<u8>();
            core::ptr::copy_nonoverlapping(ip.add(12), p, 8);
            *p.add(9) = IPPROTO_UDP;
            p.add(10).cast::<[u8; 2]>().write_unaligned(udp_len.to_be_bytes());
        }
        // SAFETY: 20 octets checked by ptr_at.
        let hsum = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, ip.cast(), 20, 0) };
        if hsum < 0 {
            return None;
        }
        // IPv4 options (IHL above 5), added word by word from the packet: ten steps of a
        // constant length each, which every verifier bounds alike. (Copying them with
        // bpf_xdp_load_bytes and a variable length was refused by 6.12, whose register
        // tracking lost the bound of the length passed.)
        let opt_words = (ihl.wrapping_sub(20) & 0x3c) >> 2;
        let opts = layout.ip.wrapping_add(20);
        let mut sum = hsum as u64;
        for i in 0..IPV4_OPT_WORDS {
            if i < opt_words {
                let w = ptr_at(ctx, opts.wrapping_add(i.wrapping_mul(4)), 4)?;
                // SAFETY: 4 octets checked by ptr_at.
                sum = sum.wrapping_add(u64::from(unsafe { w.cast::<u32>().read_unaligned() }));
            }
        }
        let sum = (sum & 0xffff_ffff).wrapping_add(sum >> 32);
        let hsum = ((sum & 0xffff_ffff).wrapping_add(sum >> 32)) as i64;
        let ip = ptr_at(ctx, layout.ip, 20)?;
        // SAFETY: inside the checked header.
        unsafe { ip.add(10).cast::<u16>().write_unaligned(fold(hsum)) };
        pseudo_len = 20;
    }
    let udp = ptr_at(ctx, layout.udp, UDP_LEN)?;
    // SAFETY: 8 octets checked by ptr_at; pseudo has room for the UDP header at pseudo_len - 8.
    unsafe {
        swap_bytes::<2>(udp, udp.add(2));
        udp.add(4).cast::<[u8; 2]>().write_unaligned(udp_len.to_be_bytes());
        udp.add(6).cast::<[u8; 2]>().write_unaligned([0, 0]);
        let p = pseudo.as_mut_ptr().cast::<u8>().add(pseudo_len.wrapping_sub(UDP_LEN) & 0x3f);
        core::ptr::copy_nonoverlapping(udp, p, UDP_LEN);
    }
    // SAFETY: pseudo is 48 octets on the stack; pseudo_len is 20 or 48.
    let sum =
        unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, pseudo.as_mut_ptr(), pseudo_len as u32, msg_sum as u32) };
    if sum < 0 {
        return None;
    }
    let udp = ptr_at(ctx, layout.udp, UDP_LEN)?;
    // SAFETY: 8 octets checked by ptr_at.
    unsafe { udp.add(6).cast::<u16>().write_unaligned(fold(sum)) };
    Some(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
