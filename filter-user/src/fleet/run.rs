//! The fleet runtime: one tokio task per policy zone (SOA checks on the refresh and retry
//! timers, transfers, fallbacks), the NOTIFY listener and the control socket, on a tokio
//! runtime of their own thread. A verified transfer is handed to the daemon as an [`Update`];
//! the daemon applies it as one generation (or refuses it) and answers, and only then does the
//! zone task take the new serial as enforced.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use domain::base::Serial;
use tokio::sync::{mpsc, oneshot};

use super::{
    conf::{Fleet, ZoneConf},
    notify, store,
    xfr::{self, Fetched, Kind, XfrError, ZoneData},
};
use crate::{daemon::state::Audit, time};

/// A verified zone for the daemon to apply.
pub struct Update {
    pub zone: String,
    /// The zone file to store and read.
    pub text: String,
    pub meta: store::Meta,
    /// Past the change-share guard (`dnsfilter zone resync NAME --force`).
    pub force: bool,
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// What `status`, the metrics and the control socket report about one zone.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ZoneStatus {
    pub zone: String,
    /// Serial of the copy the kernel enforces.
    pub serial_enforced: Option<u32>,
    /// Serial last seen at a primary.
    pub serial_primary: Option<u32>,
    pub primary: Option<String>,
    /// Unix seconds: last check (successful or not), last success, next check.
    pub last_check: i64,
    pub last_success: i64,
    pub next_check: i64,
    /// No successful check for longer than `stale_after` (or the SOA's expire): the zone is
    /// still enforced, from the last good copy.
    pub stale: bool,
    /// Why the primary's version is not enforced (serial gone backwards, refused by a guard).
    pub held: Option<String>,
    /// The serial refused by the daemon (not fetched again until the primary's serial changes
    /// or a resync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_serial: Option<u32>,
    pub last_error: Option<String>,
    /// Transfers by `kind_result` (axfr_ok, ixfr_ok, ixfr_fallback, axfr_failed, refused, ...).
    pub transfers: BTreeMap<String, u64>,
    pub notify_accepted: u64,
    pub notify_refused: u64,
}

impl ZoneStatus {
    /// What is known of `zone` from its stored copy alone (before any check).
    pub fn stored(state_dir: &std::path::Path, zone: &str) -> ZoneStatus {
        let m = store::load_meta(state_dir, zone);
        ZoneStatus {
            zone: zone.to_string(),
            serial_enforced: m.as_ref().map(|m| m.serial),
            last_success: m.as_ref().map_or(0, |m| m.stored_at),
            ..Default::default()
        }
    }
}

/// Every zone's status, and NOTIFYs refused for no configured zone.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Status {
    pub zones: BTreeMap<String, ZoneStatus>,
    pub notify_refused_unknown: u64,
}

pub type SharedStatus = Arc<Mutex<Status>>;

/// Why a zone task is woken.
#[derive(Debug)]
pub enum Wake {
    /// A NOTIFY (already accepted), with the serial it announced if any.
    Notify(Option<u32>),
    /// `dnsfilter zone resync NAME`: fetch the whole zone now, whatever its serial.
    Resync { force: bool, reply: oneshot::Sender<Result<String, String>> },
}

/// What the tasks share.
pub struct Ctx {
    pub state_dir: PathBuf,
    pub status: SharedStatus,
    pub updates: std::sync::mpsc::Sender<Update>,
    pub audit: Audit,
}

impl Ctx {
    pub fn status_mut(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn zone_mut<R>(&self, zone: &str, f: impl FnOnce(&mut ZoneStatus) -> R) -> R {
        let mut s = self.status_mut();
        let z = s
            .zones
            .entry(zone.to_string())
            .or_insert_with(|| ZoneStatus { zone: zone.to_string(), ..Default::default() });
        f(z)
    }

    fn count(&self, zone: &str, what: &str) {
        self.zone_mut(zone, |z| *z.transfers.entry(what.to_string()).or_insert(0) += 1);
    }
}

/// The running fleet: dropped, it stops its tasks and waits for its thread.
pub struct Running {
    pub updates: std::sync::mpsc::Receiver<Update>,
    pub status: SharedStatus,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the fleet for `fleet`: binds the NOTIFY listeners and the control socket first (an
/// error there is returned), then runs the zone tasks.
pub fn start(fleet: Fleet, state_dir: PathBuf, control: PathBuf, audit: Option<PathBuf>) -> Result<Running, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let status: SharedStatus = Arc::default();
    for z in &fleet.zones {
        status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .zones
            .insert(z.name.clone(), ZoneStatus::stored(&state_dir, &z.name));
    }
    let ctx = Arc::new(Ctx { state_dir, status: status.clone(), updates: tx, audit: Audit::new(audit) });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("dnsfilter-fleet")
        .build()
        .map_err(|e| format!("cannot start the fleet runtime: {e}"))?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let thread = std::thread::Builder::new()
        .name("dnsfilter-fleet".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut wakers: BTreeMap<String, mpsc::Sender<Wake>> = BTreeMap::new();
                let mut tasks = Vec::new();
                for z in fleet.zones.clone() {
                    let (wtx, wrx) = mpsc::channel(16);
                    wakers.insert(z.name.clone(), wtx);
                    tasks.push(tokio::spawn(zone_task(z, ctx.clone(), wrx)));
                }
                let wakers = Arc::new(wakers);
                let listeners = match notify::bind(&fleet.notify_listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let control = match super::control::bind(&control) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let fleet = Arc::new(fleet);
                tasks.extend(notify::serve(listeners, fleet.clone(), ctx.clone(), wakers.clone()));
                tasks.push(tokio::spawn(super::control::serve(control, ctx.clone(), wakers.clone())));
                let _ = stop_rx.await;
                for t in tasks {
                    t.abort();
                }
            });
        })
        .map_err(|e| format!("cannot start the fleet thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Running { updates: rx, status, shutdown: Some(stop_tx), thread: Some(thread) }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err("the fleet thread stopped while starting".into())
        }
    }
}

/// `d` with up to `jitter` of it added or removed at random.
fn jittered(d: Duration, jitter: f64) -> Duration {
    let r: f64 = rand::random::<f64>() * 2.0 - 1.0;
    d.mul_f64((1.0 + r * jitter).max(0.0))
}

/// One zone: checks on timers and NOTIFY, transfers, hand-over to the daemon.
async fn zone_task(z: ZoneConf, ctx: Arc<Ctx>, mut wake: mpsc::Receiver<Wake>) {
    let mut have: Option<ZoneData> = store::load(&ctx.state_dir, &z.name).map(|(d, _)| d);
    let mut failures: u32 = 0;
    // The first check comes at once (spread a little: a restarted primary's secondaries do
    // not all come back in the same millisecond).
    let mut next = tokio::time::Instant::now() + jittered(Duration::from_millis(50), z.jitter);
    loop {
        let (resync, force, reply) = tokio::select! {
            () = tokio::time::sleep_until(next) => (false, false, None),
            w = wake.recv() => match w {
                None => return,
                Some(Wake::Notify(serial)) => {
                    // A NOTIFY for the serial in force changes nothing.
                    if let (Some(s), Some(h)) = (serial, &have) && s == h.soa.serial {
                        continue;
                    }
                    (false, false, None)
                }
                Some(Wake::Resync { force, reply }) => (true, force, Some(reply)),
            },
        };
        let outcome = check(&z, &ctx, &mut have, resync, force).await;
        let now = time::now();
        let ok = outcome.is_ok();
        let timers = have.as_ref().map(|h| h.soa);
        let wait = if ok {
            failures = 0;
            let refresh = Duration::from_secs(u64::from(timers.map_or(3600, |t| t.refresh)));
            refresh.clamp(z.refresh.0, z.refresh.1)
        } else {
            failures = failures.saturating_add(1);
            let base = Duration::from_secs(u64::from(timers.map_or(10, |t| t.retry))).clamp(z.retry.0, z.retry.1);
            base.saturating_mul(1u32 << failures.min(10).saturating_sub(1)).min(z.retry.1)
        };
        let stale_after = z.stale_after.unwrap_or(Duration::from_secs(u64::from(timers.map_or(604_800, |t| t.expire))));
        // Checked at least once per stale_after, so that a zone whose primaries went away is
        // reported stale in time.
        let wait = jittered(wait, z.jitter).min(stale_after.max(Duration::from_secs(1)));
        next = tokio::time::Instant::now() + wait;
        let became_stale = ctx.zone_mut(&z.name, |s| {
            s.last_check = now;
            s.next_check = now + i64::try_from(wait.as_secs()).unwrap_or(i64::MAX / 2);
            match &outcome {
                Ok(msg) => {
                    s.last_success = now;
                    s.last_error = None;
                    tracing::debug!(zone = z.name, msg, "checked");
                }
                Err(e) => s.last_error = Some(e.clone()),
            }
            let stale = s.serial_enforced.is_some()
                && now - s.last_success > i64::try_from(stale_after.as_secs()).unwrap_or(i64::MAX);
            let became = stale && !s.stale;
            s.stale = stale;
            became
        });
        if let Err(e) = &outcome {
            tracing::warn!(zone = z.name, error = %e, retry_in = wait.as_secs(), "zone check failed; the enforced copy stays");
        }
        if became_stale {
            tracing::error!(
                zone = z.name,
                "zone is stale: no primary answered for longer than stale_after; still enforcing the last good copy"
            );
            ctx.audit.record(&serde_json::json!({
                "time": time::rfc3339(now), "event": "zone_stale", "zone": z.name,
                "serial": have.as_ref().map(|h| h.soa.serial),
            }));
        }
        if let Some(r) = reply {
            let _ = r.send(outcome);
        }
    }
}

/// One check of the zone: the SOA of each primary in turn until one answers, and the
/// transfer when it has a newer serial (or on resync).
async fn check(
    z: &ZoneConf,
    ctx: &Ctx,
    have: &mut Option<ZoneData>,
    resync: bool,
    force: bool,
) -> Result<String, String> {
    let mut errors = Vec::new();
    for &primary in &z.primaries {
        match check_primary(z, ctx, have, primary, resync, force).await {
            Ok(msg) => return Ok(msg),
            Err(CheckError::Final(e)) => return Err(e),
            Err(CheckError::Next(e)) => errors.push(e),
        }
    }
    Err(errors.join("; "))
}

enum CheckError {
    /// Try the next primary.
    Next(String),
    /// The zone is held: no other primary changes that.
    Final(String),
}

async fn check_primary(
    z: &ZoneConf,
    ctx: &Ctx,
    have: &mut Option<ZoneData>,
    primary: SocketAddr,
    resync: bool,
    force: bool,
) -> Result<String, CheckError> {
    let soa = xfr::soa_serial(z, primary).await.map_err(|e| CheckError::Next(e.to_string()))?;
    ctx.zone_mut(&z.name, |s| {
        s.serial_primary = Some(soa.serial);
        s.primary = Some(primary.to_string());
    });
    if !resync
        && let Some(why) = ctx.zone_mut(&z.name, |s| s.refused_serial.filter(|r| *r == soa.serial).and(s.held.clone()))
    {
        return Ok(why);
    }
    if !resync && let Some(h) = have.as_ref() {
        let ours = h.soa.serial;
        if soa.serial == ours {
            ctx.zone_mut(&z.name, |s| s.held = None);
            return Ok(format!("serial {ours} is up to date"));
        }
        if Serial(soa.serial) < Serial(ours) || Serial(soa.serial).partial_cmp(&Serial(ours)).is_none() {
            let why = XfrError::Backwards { primary, theirs: soa.serial, ours }.to_string();
            let newly = ctx.zone_mut(&z.name, |s| {
                let newly = s.held.as_deref() != Some(why.as_str());
                s.held = Some(why.clone());
                *s.transfers.entry("held_backwards".into()).or_insert(0) += u64::from(newly);
                newly
            });
            if newly {
                tracing::error!(zone = z.name, %primary, theirs = soa.serial, ours, "the primary's serial went backwards; keeping ours (`dnsfilter zone resync {}` accepts theirs)", z.name);
                ctx.audit.record(&serde_json::json!({
                    "time": time::rfc3339(time::now()), "event": "zone_held", "zone": z.name,
                    "primary": primary.to_string(), "serial_primary": soa.serial, "serial_enforced": ours,
                    "reason": "serial backwards",
                }));
            }
            // The primary answered: the zone is not stale, and ours stays.
            return Ok(why);
        }
    }
    let kind = if z.request_ixfr && have.is_some() && !resync { Kind::Ixfr } else { Kind::Axfr };
    let fetched = match xfr::fetch(z, primary, have.as_ref(), kind).await {
        Err(e) if kind == Kind::Ixfr && e.falls_back_to_axfr() => {
            tracing::warn!(zone = z.name, %primary, error = %e, "IXFR failed; falling back to AXFR");
            ctx.count(&z.name, "ixfr_fallback");
            xfr::fetch(z, primary, have.as_ref(), Kind::Axfr).await.map(|f| (f, Kind::Axfr))
        }
        r => r.map(|f| (f, kind)),
    };
    let (fetched, kind) = match fetched {
        Ok(f) => f,
        Err(XfrError::Backwards { .. }) => return Ok("up to date".into()),
        Err(e) => {
            ctx.count(&z.name, &format!("{}_failed", kind.name()));
            return Err(CheckError::Next(e.to_string()));
        }
    };
    let (zone, changes) = match fetched {
        Fetched::UpToDate(s) => return Ok(format!("serial {s} is up to date")),
        Fetched::Full(zone) => (zone, None),
        Fetched::Incremental { zone, changes, .. } => (zone, Some(changes)),
    };
    let serial = zone.soa.serial;
    let text = zone.render(&format!(
        "policy zone {} serial {serial}, transferred by {} from {primary} at {}; written by dnsfilter",
        z.name,
        kind.name(),
        time::rfc3339(time::now())
    ));
    let meta = store::Meta {
        zone: z.name.clone(),
        serial,
        sha256: crate::daemon::compile::sha256_hex(text.as_bytes()),
        soa: zone.soa,
        primary: primary.to_string(),
        kind: kind.name().into(),
        stored_at: time::now(),
        records: zone.records.len(),
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    ctx.updates
        .send(Update { zone: z.name.clone(), text, meta, force, reply: reply_tx })
        .map_err(|_| CheckError::Final("the daemon is stopping".into()))?;
    match reply_rx.await {
        Ok(Ok(())) => {
            ctx.count(&z.name, &format!("{}_ok", kind.name()));
            ctx.zone_mut(&z.name, |s| {
                s.serial_enforced = Some(serial);
                s.held = None;
                s.refused_serial = None;
            });
            tracing::info!(
                zone = z.name,
                serial,
                kind = kind.name(),
                changes,
                records = zone.records.len(),
                "zone enforced"
            );
            *have = Some(zone);
            Ok(format!("serial {serial} enforced"))
        }
        Ok(Err(e)) => {
            ctx.count(&z.name, "refused");
            ctx.zone_mut(&z.name, |s| {
                s.held = Some(format!("serial {serial} refused: {e}"));
                s.refused_serial = Some(serial);
            });
            Err(CheckError::Final(format!("serial {serial} refused: {e}")))
        }
        Err(_) => Err(CheckError::Final("the daemon is stopping".into())),
    }
}
