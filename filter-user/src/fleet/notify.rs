//! The NOTIFY listener (RFC 1996), over UDP and TCP on each `notify_listen` address.
//!
//! A NOTIFY is accepted only for a configured zone, from one of its primaries or from
//! `notify_allow`, and, when the zone has a key, signed with that key (RFC 8945). The answer
//! echoes the question and is signed with the same key (Knot sends NOTIFY over TCP and expects
//! a signed answer). Anything else gets REFUSED (or NOTAUTH with the TSIG error), is counted
//! and logged, and wakes nothing. An accepted NOTIFY wakes the zone's task, which checks the
//! primary's SOA and transfers: the NOTIFY's own content is never trusted beyond that.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use domain::{
    base::{
        Message, MessageBuilder, ParsedName, Rtype,
        iana::{Class, Opcode, Rcode},
    },
    rdata::{AllRecordData, tsig::Time48},
    tsig::{Algorithm, Key, KeyName, ServerTransaction},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, UdpSocket},
    sync::mpsc,
    task::JoinHandle,
};

use super::{
    conf::{Fleet, ZoneConf},
    run::{Ctx, Wake},
};

type Keys = HashMap<(KeyName, Algorithm), Arc<Key>>;

/// The bound sockets.
pub struct Listeners {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
}

/// Binds UDP and TCP on every address; an address that cannot be bound is an error naming it.
pub async fn bind(addrs: &[SocketAddr]) -> Result<Listeners, String> {
    let mut l = Listeners { udp: Vec::new(), tcp: Vec::new() };
    for a in addrs {
        l.udp.push(UdpSocket::bind(a).await.map_err(|e| format!("notify_listen {a} (UDP): {e}"))?);
        l.tcp.push(TcpListener::bind(a).await.map_err(|e| format!("notify_listen {a} (TCP): {e}"))?);
        tracing::info!(addr = %a, "listening for NOTIFY over UDP and TCP");
    }
    Ok(l)
}

/// Serves every listener.
pub fn serve(
    l: Listeners,
    fleet: Arc<Fleet>,
    ctx: Arc<Ctx>,
    wakers: Arc<BTreeMap<String, mpsc::Sender<Wake>>>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for sock in l.udp {
        let (fleet, ctx, wakers) = (fleet.clone(), ctx.clone(), wakers.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else { continue };
                if let Some(answer) = handle(buf[..n].to_vec(), from, &fleet, &ctx, &wakers) {
                    let _ = sock.send_to(&answer, from).await;
                }
            }
        }));
    }
    for listener in l.tcp {
        let (fleet, ctx, wakers) = (fleet.clone(), ctx.clone(), wakers.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((mut s, from)) = listener.accept().await else { continue };
                let (fleet, ctx, wakers) = (fleet.clone(), ctx.clone(), wakers.clone());
                tokio::spawn(async move {
                    // Messages on one connection, each framed by its length, until the peer
                    // closes or is idle for 10 s.
                    loop {
                        let mut len = [0u8; 2];
                        let read =
                            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_exact(&mut len)).await;
                        if !matches!(read, Ok(Ok(_))) {
                            return;
                        }
                        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if s.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        if let Some(answer) = handle(buf, from, &fleet, &ctx, &wakers) {
                            let Ok(n) = u16::try_from(answer.len()) else { return };
                            let mut framed = n.to_be_bytes().to_vec();
                            framed.extend_from_slice(&answer);
                            if s.write_all(&framed).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        }));
    }
    tasks
}

fn allowed(z: &ZoneConf, fleet: &Fleet, ip: IpAddr) -> bool {
    let ip = super::conf::unmapped(ip);
    z.primaries.iter().any(|p| p.ip() == ip) || fleet.notify_allow.iter().any(|p| p.contains(ip))
}

/// Handles one message; returns the answer to send, if any.
fn handle(
    buf: Vec<u8>,
    from: SocketAddr,
    fleet: &Fleet,
    ctx: &Ctx,
    wakers: &BTreeMap<String, mpsc::Sender<Wake>>,
) -> Option<Vec<u8>> {
    let mut msg = Message::from_octets(buf).ok()?;
    let h = msg.header();
    if h.qr() || h.opcode() != Opcode::NOTIFY {
        // Not a NOTIFY request: not ours to answer.
        return None;
    }
    let q = msg.first_question()?;
    let mut zone = q.qname().to_string().to_ascii_lowercase();
    if zone.ends_with('.') {
        zone.pop();
    }
    let refuse = |msg: &Message<Vec<u8>>, rcode: Rcode| -> Option<Vec<u8>> {
        let b = MessageBuilder::new_vec().start_answer(msg, rcode).ok()?;
        Some(b.finish())
    };
    let Some(z) = fleet.zones.iter().find(|z| z.name == zone) else {
        ctx.status_mut().notify_refused_unknown += 1;
        tracing::warn!(%from, zone, "NOTIFY for a zone that is not configured; refused");
        return refuse(&msg, Rcode::NOTAUTH);
    };
    let count = |accepted: bool| {
        let mut s = ctx.status_mut();
        if let Some(st) = s.zones.get_mut(&z.name) {
            if accepted {
                st.notify_accepted += 1;
            } else {
                st.notify_refused += 1;
            }
        }
    };
    if q.qtype() != Rtype::SOA || q.qclass() != Class::IN {
        count(false);
        return refuse(&msg, Rcode::FORMERR);
    }
    if !allowed(z, fleet, from.ip()) {
        count(false);
        tracing::warn!(%from, zone, "NOTIFY from an address that is neither a primary nor in notify_allow; refused");
        return refuse(&msg, Rcode::REFUSED);
    }
    let mut keys: Keys = HashMap::new();
    if let Some(k) = &z.key {
        keys.insert((k.key.name().clone(), k.key.algorithm()), k.key.clone());
    }
    let tx = match ServerTransaction::request(&keys, &mut msg, Time48::now()) {
        Ok(tx) => tx,
        Err(e) => {
            count(false);
            tracing::warn!(%from, zone, error = %e, "NOTIFY with a bad TSIG; refused");
            let b = e.build_message(&msg, MessageBuilder::new_vec()).ok()?;
            return Some(b.finish());
        }
    };
    if tx.is_none() && z.key.is_some() {
        count(false);
        tracing::warn!(%from, zone, "unsigned NOTIFY for a zone with a key; refused");
        return refuse(&msg, Rcode::REFUSED);
    }
    // The serial the NOTIFY announces, if it carries the SOA.
    let mut serial = None;
    if let Ok(answer) = msg.answer() {
        for rr in answer.flatten() {
            if let Ok(r) = rr.to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>()
                && let AllRecordData::Soa(s) = r.data()
            {
                serial = Some(s.serial().into_int());
                break;
            }
        }
    }
    count(true);
    tracing::info!(%from, zone, serial, signed = tx.is_some(), "NOTIFY accepted");
    if let Some(w) = wakers.get(&z.name) {
        let _ = w.try_send(Wake::Notify(serial));
    }
    let mut b = MessageBuilder::new_vec().start_answer(&msg, Rcode::NOERROR).ok()?;
    b.header_mut().set_aa(true);
    let mut add = b.additional();
    if let Some(tx) = tx {
        tx.answer(&mut add, Time48::now()).ok()?;
    }
    Some(add.finish())
}
