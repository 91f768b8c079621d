//! Builds an answer in place over the query held in a [`MsgBuf`].
//!
//! Contract: the ID, RD, CD and the question are kept byte for byte; QR=1, RA=1; the answer
//! records go right after the question; negative answers carry the configured SOA in the
//! authority section, owned by the matched name (a compression pointer into the question), so
//! that caches keep them (RFC 2308); a query with an OPT record gets one back (RFC 6891) with
//! the entry's Extended DNS Error (RFC 8914). Every write is at a masked offset.

use crate::config::{Config, SOA_RR_MAX};
use crate::dns::{Header, MsgBuf, Opt, TYPE_A, TYPE_AAAA, TYPE_OPT};
use crate::table::{Action, Ede, STOP_HAS_V4, STOP_HAS_V6, StopRecord};

/// RCODE NOERROR.
pub const RCODE_NOERROR: u8 = 0;
/// RCODE NXDOMAIN.
pub const RCODE_NXDOMAIN: u8 = 3;
/// RCODE REFUSED.
pub const RCODE_REFUSED: u8 = 5;
/// EDNS option code of Extended DNS Errors (RFC 8914).
pub const OPT_EDE: u16 = 15;

/// Everything the answer depends on, gathered by the caller.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// The matched entry's action (an answering one).
    pub action: Action,
    /// The matched entry's EDE choice.
    pub ede: Ede,
    /// The query header.
    pub header: Header,
    /// QTYPE.
    pub qtype: u16,
    /// Offset just past the question.
    pub qend: usize,
    /// Offset of the matched suffix in the question name (the SOA owner).
    pub owner: usize,
    /// The query's OPT record, if any.
    pub opt: Option<Opt>,
}

/// The records an action puts in an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// RCODE with the SOA in the authority section.
    Negative(u8),
    /// RCODE alone.
    Bare(u8),
    /// TC=1, nothing else.
    Truncated,
    /// One A record with the stop page's IPv4 address.
    AnswerA,
    /// One AAAA record with the stop page's IPv6 address.
    AnswerAaaa,
}

/// The answer shape for `action`, or `None` when the action does not answer. `stop` holds the
/// stop-page addresses of a `redirect` (the entry's own, or the configuration's): an A or AAAA
/// query gets its family's address, or NODATA when the record has none; other types get NODATA.
#[inline(always)]
pub fn shape(action: Action, qtype: u16, stop: &StopRecord) -> Option<Shape> {
    match action {
        Action::Nxdomain => Some(Shape::Negative(RCODE_NXDOMAIN)),
        Action::Nodata => Some(Shape::Negative(RCODE_NOERROR)),
        Action::Refused => Some(Shape::Bare(RCODE_REFUSED)),
        Action::Truncate => Some(Shape::Truncated),
        Action::Redirect => Some(if qtype == TYPE_A && stop.flags & STOP_HAS_V4 != 0 {
            Shape::AnswerA
        } else if qtype == TYPE_AAAA && stop.flags & STOP_HAS_V6 != 0 {
            Shape::AnswerAaaa
        } else {
            Shape::Negative(RCODE_NOERROR)
        }),
        Action::Allow | Action::Monitor | Action::Drop => None,
    }
}

/// Copies the first `len` (at most [`SOA_RR_MAX`]) octets of [`Config::soa_rr`] into `msg` at
/// `off` (masked).
pub trait CopyInto {
    /// Performs the copy.
    fn copy_into(&self, msg: &mut MsgBuf, off: usize, cfg: &Config, len: usize);
}

/// [`CopyInto`] by plain loop over octets: the reference the other copies are tested against.
pub struct LoopCopy;

impl CopyInto for LoopCopy {
    fn copy_into(&self, msg: &mut MsgBuf, off: usize, cfg: &Config, len: usize) {
        for (i, b) in cfg.soa_rr.iter().take(len).enumerate() {
            msg.put8(off.wrapping_add(i), *b);
        }
    }
}

/// [`CopyInto`] eight octets at a time, the kernel's copy: at most 16 aligned
/// read-modify-writes, unrolled (no helper call). It may also write up to 7 octets of
/// `soa_rr` after the copied ones: [`build`] writes everything after the SOA afterwards.
pub struct WordCopy;

impl CopyInto for WordCopy {
    #[inline(always)]
    fn copy_into(&self, msg: &mut MsgBuf, off: usize, cfg: &Config, len: usize) {
        let mut i = 0usize;
        while i < SOA_RR_MAX / 8 {
            let taken = i.wrapping_mul(8);
            if taken >= len {
                break;
            }
            msg.put_word(off.wrapping_add(taken), cfg.soa_word(i));
            i = i.wrapping_add(1);
        }
    }
}

/// Writes the answer over the query in `msg` and returns its length. The four octets after
/// the answer are zeroed, so a checksum may be taken over the length rounded up to 4. `stop`
/// is the record [`shape`] was given (its address goes into an A or AAAA answer).
#[inline(always)]
pub fn build(
    msg: &mut MsgBuf,
    cfg: &Config,
    plan: &Plan,
    shape: Shape,
    stop: &StopRecord,
    copy: &impl CopyInto,
) -> usize {
    let (rcode, tc, an, ns) = match shape {
        Shape::Negative(r) => (r, false, 0u16, 1u16),
        Shape::Bare(r) => (r, false, 0, 0),
        Shape::Truncated => (RCODE_NOERROR, true, 0, 0),
        Shape::AnswerA | Shape::AnswerAaaa => (RCODE_NOERROR, false, 1, 0),
    };
    // QR=1, OPCODE=0, AA=0, TC, RD copied.
    msg.put8(2, 0x80 | if tc { 0x02 } else { 0 } | (plan.header.flags_hi & 0x01));
    // RA=1, Z=0, AD=0, CD copied, RCODE.
    msg.put8(3, 0x80 | (plan.header.flags_lo & 0x10) | rcode);
    msg.put16(4, 1);
    msg.put16(6, an);
    msg.put16(8, ns);
    msg.put16(10, u16::from(plan.opt.is_some()));

    let mut off = plan.qend;
    match shape {
        Shape::Negative(_) => {
            msg.put16(off, 0xc000 | (plan.owner as u16 & 0x3fff));
            off = off.wrapping_add(2);
            let n = (cfg.soa_rr_len as usize).min(SOA_RR_MAX);
            copy.copy_into(msg, off, cfg, n);
            off = off.wrapping_add(n);
        }
        Shape::AnswerA | Shape::AnswerAaaa => {
            let v4 = matches!(shape, Shape::AnswerA);
            // Owner: pointer to the question name at offset 12.
            msg.put16(off, 0xc00c);
            msg.put16(off.wrapping_add(2), if v4 { TYPE_A } else { TYPE_AAAA });
            msg.put16(off.wrapping_add(4), crate::dns::CLASS_IN);
            msg.put32(off.wrapping_add(6), cfg.answer_ttl);
            msg.put16(off.wrapping_add(10), if v4 { 4 } else { 16 });
            off = off.wrapping_add(12);
            if v4 {
                for (i, b) in stop.v4.iter().enumerate() {
                    msg.put8(off.wrapping_add(i), *b);
                }
                off = off.wrapping_add(4);
            } else {
                for (i, b) in stop.v6.iter().enumerate() {
                    msg.put8(off.wrapping_add(i), *b);
                }
                off = off.wrapping_add(16);
            }
        }
        Shape::Bare(_) | Shape::Truncated => {}
    }
    if let Some(opt) = plan.opt {
        let code = plan.ede.info_code();
        msg.put8(off, 0); // root owner
        msg.put16(off.wrapping_add(1), TYPE_OPT);
        msg.put16(off.wrapping_add(3), cfg.edns_udp_size);
        msg.put8(off.wrapping_add(5), 0); // extended RCODE
        msg.put8(off.wrapping_add(6), 0); // version 0
        msg.put16(off.wrapping_add(7), if opt.dnssec_ok { 0x8000 } else { 0 });
        msg.put16(off.wrapping_add(9), if code.is_some() { 6 } else { 0 });
        off = off.wrapping_add(11);
        if let Some(code) = code {
            msg.put16(off, OPT_EDE);
            msg.put16(off.wrapping_add(2), 2);
            msg.put16(off.wrapping_add(4), code);
            off = off.wrapping_add(6);
        }
    }
    msg.put32(off, 0);
    off
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{STOP_HAS_V4, STOP_HAS_V6};

    #[test]
    fn word_copy_equals_loop_copy() {
        let mut cfg = Config::default();
        for (i, b) in cfg.soa_rr.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let mut base = MsgBuf::default();
        for (i, b) in base.0.iter_mut().enumerate() {
            *b = (i as u8) ^ 0xa5;
        }
        for off in 0..=crate::dns::MSG_COPY_MAX - SOA_RR_MAX {
            for len in 0..=SOA_RR_MAX {
                let (mut a, mut b) = (base, base);
                LoopCopy.copy_into(&mut a, off, &cfg, len);
                WordCopy.copy_into(&mut b, off, &cfg, len);
                assert_eq!(a.0[..off + len], b.0[..off + len], "off {off} len {len}");
                // Past the copy: at most 7 more octets written, all from soa_rr.
                let extra = (off + len..off + len + 8).filter(|&i| a.0[i] != b.0[i]).count();
                assert!(extra < 8, "off {off} len {len}");
                assert_eq!(a.0[off + len + 8..], b.0[off + len + 8..], "off {off} len {len}");
            }
        }
    }

    #[test]
    fn redirect_shape_follows_the_stop_record() {
        let both = StopRecord { flags: STOP_HAS_V4 | STOP_HAS_V6, v4: [192, 0, 2, 7], v6: [7; 16], reserved: [0; 5] };
        assert_eq!(shape(Action::Redirect, TYPE_A, &both), Some(Shape::AnswerA));
        assert_eq!(shape(Action::Redirect, TYPE_AAAA, &both), Some(Shape::AnswerAaaa));
        assert_eq!(shape(Action::Redirect, TYPE_OPT, &both), Some(Shape::Negative(RCODE_NOERROR)));
        let v4_only = StopRecord { flags: STOP_HAS_V4, ..both };
        assert_eq!(shape(Action::Redirect, TYPE_AAAA, &v4_only), Some(Shape::Negative(RCODE_NOERROR)));
        let none = StopRecord::default();
        assert_eq!(shape(Action::Redirect, TYPE_A, &none), Some(Shape::Negative(RCODE_NOERROR)));
        assert_eq!(shape(Action::Nxdomain, TYPE_A, &both), Some(Shape::Negative(RCODE_NXDOMAIN)));
        assert_eq!(shape(Action::Drop, TYPE_A, &both), None);
    }

    #[test]
    fn redirect_answer_carries_the_record_address() {
        let stop = StopRecord { flags: STOP_HAS_V4 | STOP_HAS_V6, v4: [192, 0, 2, 7], v6: [9; 16], reserved: [0; 5] };
        // Header, then "a." IN A.
        let query = [0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1];
        for (qtype, sh, rdata) in [(TYPE_A, Shape::AnswerA, &stop.v4[..]), (TYPE_AAAA, Shape::AnswerAaaa, &stop.v6[..])]
        {
            let (mut msg, _) = MsgBuf::from_message(&query);
            let plan = Plan {
                action: Action::Redirect,
                ede: Ede::None,
                header: Header { flags_hi: 1, flags_lo: 0, arcount: 0 },
                qtype,
                qend: query.len(),
                owner: 12,
                opt: None,
            };
            let len = build(&mut msg, &Config::default(), &plan, sh, &stop, &LoopCopy);
            assert_eq!(len, query.len() + 12 + rdata.len());
            assert_eq!(msg.0.get(len.wrapping_sub(rdata.len())..len), Some(rdata));
        }
    }
}
