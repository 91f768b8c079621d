//! The daemon: keeps the interfaces filtered with the lists in force.
//!
//! - Start: load the program with the pinned maps (created the first time) and a private
//!   canary instance of it, rebuild what the pinned generation holds from the saved sources,
//!   apply the lists, then point every pinned link at the program and attach the configured
//!   interfaces that are not attached yet.
//! - Apply (start, SIGHUP, a list file changed, an order's date came): read and compile every
//!   source; any error leaves the generation in force untouched. A valid change is built into
//!   a fresh generation, run through the canaries ([`crate::canary`]) with the settings it
//!   comes with, and swapped in with one map update, then audited. A program or generation
//!   that fails its canaries is refused like a bad list: nothing changes in the kernel.
//! - Stop: the links stay pinned (the interfaces stay filtered) unless told to detach.

pub mod compile;
pub mod state;

use std::sync::{Arc, Mutex};

use compile::{Applied, Compiled, Groups, Source, ZoneTag};
use filter_common::GROUPS_MAX;
use state::{Audit, IfaceRecord, OrderRecord, SourceRecord, State};

use crate::{
    canary::{self, CanaryError, Listed, Rig},
    conf::{Conf, merge_settings},
    config::SettingsFile,
    fleet::{conf::ZoneOrder, store},
    lists::{Diagnostic, Format, How},
    loader::{Adopted, Filter, Generation, LoadError, Mode},
    names, table, time,
};

/// Why the daemon could not start or apply.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("{}", join(.0))]
    Lists(Vec<Diagnostic>),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Build(#[from] table::BuildError),
    #[error(transparent)]
    Canary(#[from] CanaryError),
}

fn join(d: &[Diagnostic]) -> String {
    d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

impl DaemonError {
    /// Whether the error is in the lists or settings (exit 65) rather than the system (71).
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            DaemonError::Lists(_) | DaemonError::Refused(_) | DaemonError::Settings(_) | DaemonError::Build(_)
        )
    }
}

/// Why a list is being applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Start,
    /// SIGHUP or `dnsfilter reload`.
    Signal,
    /// A watched list file changed.
    Watch,
    /// An order took effect or lifted.
    Schedule,
    /// A fleet zone was transferred.
    Transfer,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::Signal => "signal",
            Reason::Watch => "watch",
            Reason::Schedule => "schedule",
            Reason::Transfer => "transfer",
        }
    }
}

/// What the metrics and the log report about the daemon.
#[derive(Clone, Debug, Default)]
pub struct Health {
    pub generation: u64,
    pub entries: u64,
    pub reloads: u64,
    pub reload_failures: u64,
    /// Result and time (Unix seconds) of the last apply attempt.
    pub last_reload_ok: bool,
    pub last_reload_time: i64,
    pub last_success_time: i64,
    pub last_error: Option<String>,
    /// Interfaces attached, with their mode.
    pub interfaces: Vec<(String, Mode)>,
    /// Interfaces the configuration names.
    pub configured: Vec<String>,
    pub groups: Groups,
    /// Orders with their in-force flag.
    pub orders: Vec<(String, bool)>,
    /// The fleet zones' status, when the node is a secondary.
    pub fleet: Option<crate::fleet::run::SharedStatus>,
}

/// What one apply did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyReport {
    pub generation: u64,
    pub entries: usize,
    pub added: usize,
    pub removed: usize,
    /// False when nothing changed and no generation was built.
    pub swapped: bool,
}

/// A running filter.
pub struct Daemon {
    conf: Conf,
    flags: SettingsFile,
    filter: Filter,
    state: State,
    /// Entries in force, as compiled when they were applied; `None` if unknown (a pinned
    /// generation without matching saved state).
    current: Option<Vec<Applied>>,
    compiled: Option<Compiled>,
    /// The private instance the canaries run through.
    canary: Rig,
    /// Whether the program has passed its canaries once (with the generation in force).
    checked: bool,
    audit: Audit,
    pub health: Arc<Mutex<Health>>,
    /// A transferred zone being applied, in place of its stored copy.
    incoming: Option<Source>,
}

impl Daemon {
    /// Starts (or adopts) the filter and applies the lists. A list error at start is fatal only
    /// when nothing is in force yet; otherwise the pinned generation stays and the error is
    /// reported.
    pub fn start(conf: Conf, flags: SettingsFile, force: bool, now: i64) -> Result<Daemon, DaemonError> {
        Self::start_with(conf, flags, force, now, None)
    }

    /// [`Daemon::start`], with a function that alters every canary before it runs: for tests
    /// of the refusal (a deliberately wrong expectation).
    pub fn start_with(
        conf: Conf,
        flags: SettingsFile,
        force: bool,
        now: i64,
        tamper: Option<canary::Tamper>,
    ) -> Result<Daemon, DaemonError> {
        let dir = conf.paths.state_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| state::StateError::Io { path: dir.clone(), source })?;
        let saved = match State::load(&dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unreadable state; what is pinned stays in force");
                None
            }
        };
        let fresh = !conf.paths.pins.exists();
        // The maps are pinned before the program loads: a first start that fails (verifier,
        // missing capability, canaries) leaves nothing behind.
        let loaded = std::thread::scope(|s| {
            // The canary instance is verified on another CPU while the program to attach is.
            let rig = s.spawn(Rig::load);
            let filter = Filter::load_pinned(&conf.paths.pins);
            let rig = rig.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let mut filter = filter?;
            let mut rig = rig.map_err(CanaryError::from)?;
            // The same object on the same kernel: the verifier must make the same program.
            rig.same_program(&mut filter)?;
            rig.set_tamper(tamper);
            Ok::<_, DaemonError>((filter, rig))
        });
        let (filter, rig) = match loaded {
            Ok(l) => l,
            Err(e) => {
                if fresh {
                    let _ = conf.paths.pins.remove_all();
                }
                return Err(e);
            }
        };
        let header = filter.header();
        let mut current = None;
        let mut state = State { schema: state::SCHEMA, ..Default::default() };
        if let Some(s) = saved {
            if let Some(h) = header.filter(|h| h.generation == s.generation && h.seed == s.seed) {
                current = rebuild(&s, &conf, &dir);
                tracing::info!(generation = h.generation, entries = h.entries, "adopted the pinned generation");
                // The saved state describes what is in force: keep all of it (sources, orders),
                // so that it is saved again intact if the lists are refused now.
                state = s;
            } else {
                if header.is_some() {
                    tracing::warn!("the pinned generation does not match the saved state; its entries are unknown");
                }
                state.groups = s.groups;
                state.interfaces = s.interfaces;
                state.generation = s.generation;
            }
        }
        if let Some(h) = header {
            // The kernel's generation is the truth; numbering continues from the highest seen.
            state.generation = h.generation.max(state.generation);
            if state.seed != h.seed {
                state.seed = h.seed;
                state.entries = h.entries;
            }
        }
        let audit = Audit::new(conf.paths.audit_log.clone());
        // What is in force before the first apply (which replaces it, or is refused).
        let health = Health {
            generation: header.map_or(0, |h| h.generation),
            entries: header.map_or(0, |h| h.entries),
            groups: state.groups.clone(),
            orders: state.orders.iter().map(|o| (o.id.clone(), o.in_force)).collect(),
            ..Health::default()
        };
        let mut d = Daemon {
            conf,
            flags,
            filter,
            state,
            current,
            compiled: None,
            canary: rig,
            checked: false,
            audit,
            health: Arc::new(Mutex::new(health)),
            incoming: None,
        };
        let started = match d.apply(Reason::Start, force, now) {
            Err(e) if header.is_none() || !e.is_data() => Err(e),
            Err(e) => {
                tracing::error!(error = %e, "the lists are refused; the pinned generation stays in force");
                // The new program must still pass its canaries with what stays in force.
                d.check_in_force()
            }
            Ok(_) => Ok(()),
        };
        // Only a program that passed its canaries is put on the pinned links and attached.
        let started =
            started.and_then(|()| d.adopt_links()).and_then(|()| d.reconcile_interfaces()).and_then(|()| d.save());
        if let Err(e) = started {
            // A first start that fails leaves nothing behind; a restart keeps what is pinned.
            if fresh {
                let pins = conf_pins(&d);
                drop(d);
                for iface in pins.linked() {
                    let _ = pins.detach(&iface);
                }
                let _ = pins.remove_all();
            }
            return Err(e);
        }
        Ok(d)
    }

    /// Points every pinned link at this daemon's program (see [`Filter::adopt_links`]).
    fn adopt_links(&mut self) -> Result<(), DaemonError> {
        for a in self.filter.adopt_links()? {
            match a {
                Adopted::Kept { iface, info } => tracing::info!(iface, link = info.link_id, "adopted pinned link"),
                Adopted::Stale { iface } => tracing::warn!(iface, "dropped stale pinned link"),
            }
        }
        Ok(())
    }

    /// Runs the canaries of `plan` through the private instance with `generation` and
    /// `config`. On failure the instance goes back to the generation in force, so that the
    /// refused one is freed.
    fn run_canaries(
        &mut self,
        generation: &Generation,
        plan: Result<Vec<canary::Canary>, CanaryError>,
        config: &filter_common::config::Config,
    ) -> Result<(), DaemonError> {
        let r = plan.and_then(|p| self.canary.check(generation, config, &p).map(|()| p.len()));
        match r {
            Ok(n) => {
                tracing::info!(
                    canaries = n,
                    kernel = self.canary.kernel(),
                    generation = generation.header().generation,
                    "the program passed its canaries"
                );
                self.checked = true;
                Ok(())
            }
            Err(e) => {
                if let Ok(Some(live)) = self.filter.generation_in_force() {
                    let _ = self.canary.hold(&live);
                }
                Err(e.into())
            }
        }
    }

    /// Runs the canaries on the pinned generation in force, with the entries the saved state
    /// describes (if any) and the pinned settings.
    fn check_in_force(&mut self) -> Result<(), DaemonError> {
        let config = self.filter.config()?;
        // Taken for the check (which does not read it) so that the entries may borrow it.
        let current = self.current.take();
        let r = self.check_generation_in_force(current.iter().flatten().map(Listed::from), &config);
        self.current = current;
        r
    }

    /// Runs the canaries of `listed` on the pinned generation in force, with `config`.
    fn check_generation_in_force<'a>(
        &mut self,
        listed: impl IntoIterator<Item = Listed<'a>>,
        config: &filter_common::config::Config,
    ) -> Result<(), DaemonError> {
        let (Some(live), Some(view)) = (self.filter.generation_in_force()?, self.filter.generation()?) else {
            return Err(CanaryError::NoGeneration.into());
        };
        let plan = canary::plan(listed, &view, config);
        drop(view);
        self.run_canaries(&live, plan, config)
    }

    /// Attaches the configured interfaces not attached yet; detaches pinned ones no longer
    /// configured.
    fn reconcile_interfaces(&mut self) -> Result<(), DaemonError> {
        let Some(pins) = self.filter.pins().cloned() else { return Ok(()) };
        let linked = pins.linked();
        for iface in &linked {
            if !self.conf.interfaces.contains(iface) {
                tracing::warn!(iface, "interface is no longer configured; detaching");
                self.filter.detach(iface)?;
                self.state.interfaces.retain(|r| &r.name != iface);
            }
        }
        for iface in self.conf.interfaces.clone() {
            if linked.contains(&iface) {
                let mode = self.state.interfaces.iter().find(|r| r.name == iface).map_or(self.conf.mode, |r| r.mode);
                if !self.state.interfaces.iter().any(|r| r.name == iface) {
                    self.state.interfaces.push(IfaceRecord { name: iface.clone(), mode });
                }
                continue;
            }
            let mode = self.filter.attach(&iface, self.conf.mode)?;
            tracing::info!(iface, mode = mode.name(), "attached");
            self.audit.record(&serde_json::json!({
                "time": time::rfc3339(time::now()), "event": "attached", "interface": iface, "mode": mode.name(),
            }));
            self.state.interfaces.retain(|r| r.name != iface);
            self.state.interfaces.push(IfaceRecord { name: iface, mode });
        }
        self.state.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        let mut h = self.health_mut();
        h.interfaces = self.state.interfaces.iter().map(|r| (r.name.clone(), r.mode)).collect();
        h.configured = self.conf.interfaces.clone();
        drop(h);
        Ok(())
    }

    fn health_mut(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Saves the state; the copies of its sources are already stored.
    fn save(&self) -> Result<(), DaemonError> {
        Ok(self.state.save(&self.conf.paths.state_dir, &[])?)
    }

    /// Applies the lists now. On any error the generation in force stays, the failure is
    /// counted, logged and audited.
    pub fn apply(&mut self, reason: Reason, force: bool, now: i64) -> Result<ApplyReport, DaemonError> {
        let r = self.try_apply(reason, force, now);
        let mut h = self.health_mut();
        h.reloads += 1;
        h.last_reload_time = now;
        h.last_reload_ok = r.is_ok();
        match &r {
            Ok(a) => {
                h.last_success_time = now;
                h.last_error = None;
                h.generation = a.generation;
                h.entries = a.entries as u64;
            }
            Err(e) => {
                h.reload_failures += 1;
                h.last_error = Some(e.to_string());
            }
        }
        drop(h);
        if let Err(e) = &r {
            tracing::error!(reason = reason.name(), error = %e, "lists refused; the list in force is unchanged");
            self.audit_rejected(reason, &e.to_string(), now);
        }
        r
    }

    fn audit_rejected(&self, reason: Reason, error: &str, now: i64) {
        self.audit.record(&serde_json::json!({
            "time": time::rfc3339(now), "event": "rejected", "reason": reason.name(),
            "errors": error.lines().collect::<Vec<_>>(),
        }));
    }

    /// Records a reload refused before the lists were read (a bad config file): logged,
    /// counted and audited like a refused list; nothing changes.
    pub fn reject(&self, reason: Reason, error: &str, now: i64) {
        {
            let mut h = self.health_mut();
            h.reloads += 1;
            h.reload_failures += 1;
            h.last_reload_ok = false;
            h.last_reload_time = now;
            h.last_error = Some(error.to_string());
        }
        tracing::error!(reason = reason.name(), error, "config refused; the configuration in force is unchanged");
        self.audit_rejected(reason, error, now);
    }

    /// The list files as they are now, with the fleet zones' stored copies (or the zone being
    /// applied) before or after them as each zone's `order` says.
    fn read_sources(&self) -> Result<Vec<Source>, DaemonError> {
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        let zones = |order: ZoneOrder, sources: &mut Vec<Source>, errors: &mut Vec<Diagnostic>| {
            for z in self.conf.fleet.zones.iter().filter(|z| z.order == order) {
                if let Some(s) = self.incoming.as_ref().filter(|s| s.zone.as_ref().is_some_and(|t| t.name == z.name)) {
                    sources.push(s.clone());
                    continue;
                }
                let path = store::zone_path(&self.conf.paths.state_dir, &z.name);
                if !path.exists() {
                    // Not transferred yet: nothing of it is enforced.
                    continue;
                }
                match Source::read(&path, Format::Rpz) {
                    Ok(mut s) => {
                        s.zone = Some(zone_tag(z));
                        sources.push(s);
                    }
                    Err(d) => errors.push(d),
                }
            }
        };
        zones(ZoneOrder::First, &mut sources, &mut errors);
        for (path, format) in self.conf.list_files() {
            match Source::read(&path, format) {
                Ok(s) => sources.push(s),
                Err(d) => errors.push(d),
            }
        }
        zones(ZoneOrder::Last, &mut sources, &mut errors);
        if errors.is_empty() { Ok(sources) } else { Err(DaemonError::Lists(errors)) }
    }

    /// Applies a transferred zone as one generation. On success its copy is stored (the last
    /// good copy, enforced again at the next start); on refusal nothing changes.
    pub fn apply_zone(&mut self, u: &crate::fleet::run::Update, now: i64) -> Result<ApplyReport, String> {
        let Some(z) = self.conf.fleet.zones.iter().find(|z| z.name == u.zone) else {
            return Err(format!("{}: not a configured zone", u.zone));
        };
        let path = store::zone_path(&self.conf.paths.state_dir, &z.name);
        self.incoming = Some(Source::zone(path, u.text.clone(), zone_tag(z)));
        let r = self.apply(Reason::Transfer, u.force, now);
        self.incoming = None;
        let report = r.map_err(|e| e.to_string())?;
        store::save(&self.conf.paths.state_dir, &u.text, &u.meta)?;
        self.audit.record(&serde_json::json!({
            "time": time::rfc3339(now), "event": "zone_enforced", "zone": u.zone, "serial": u.meta.serial,
            "transfer": u.meta.kind, "primary": u.meta.primary, "sha256": u.meta.sha256,
            "records": u.meta.records, "generation": report.generation,
        }));
        Ok(report)
    }

    fn try_apply(&mut self, reason: Reason, force: bool, now: i64) -> Result<ApplyReport, DaemonError> {
        // A date coming due changes what is in force, not what was approved: it is applied
        // from the saved copies of the sources in force, so an unrelated edit in progress (or
        // a broken file) never holds back an order's expiry.
        let saved = match reason {
            Reason::Schedule if self.current.is_some() => {
                self.state.sources(&self.conf.paths.state_dir).ok().map(|s| tag_zones(s, &self.conf))
            }
            _ => None,
        };
        let sources = match saved {
            Some(s) => s,
            None => self.read_sources()?,
        };
        let compiled =
            compile::compile(&sources, self.conf.defaults, &self.conf.guards, now).map_err(DaemonError::Lists)?;
        for d in &compiled.refused {
            tracing::warn!(entry = %d, "entry refused and left out");
        }
        let settings =
            merge_settings(&self.conf.settings, &compiled.settings, &self.flags).map_err(DaemonError::Settings)?;
        let config = settings.to_config().map_err(|e| DaemonError::Settings(e.to_string()))?;
        let empty = Vec::new();
        let old = self.current.as_ref().unwrap_or(&empty);
        let diff = compile::diff(old, &compiled.entries);
        let same_sources = sources.iter().map(|s| &s.sha256).eq(self.state.sources.iter().map(|s| &s.sha256));
        // Dates coming due were approved with the files that carry them: no share guard then.
        let guarded = !force && (reason != Reason::Schedule || !same_sources);
        if guarded && let Some(cur) = &self.current {
            compile::check_share(cur.len(), &diff, &self.conf.guards).map_err(DaemonError::Refused)?;
        }
        let config_changed = self.filter.config().map(|c| c != config).unwrap_or(true);
        // Not the diff by key: an EDE or stop-page change keeps every key and still needs a table.
        let unchanged = self.current.as_ref().is_some_and(|c| compile::same_table(c, &compiled.entries))
            && self.filter.header().is_some();
        let sources_changed = !same_sources;
        let (added, removed) = (diff.added.len(), diff.removed.len());
        let audit_diff = serde_json::json!({
            "added": diff.added.iter().map(|e| entry_json(e)).collect::<Vec<_>>(),
            "removed": diff.removed.iter().map(|e| entry_json(e)).collect::<Vec<_>>(),
        });
        drop(diff);
        let mut generation = self.state.generation;
        // The next generation, built and created in the kernel but not installed yet.
        let next = if unchanged {
            None
        } else {
            let mut groups = self.state.groups.clone();
            let (rules, fresh) = groups.rules(&compiled.entries, GROUPS_MAX as usize);
            let built = table::build(&rules, table::random_seed(), generation + 1, self.conf.capacity)?;
            drop(rules);
            let prepared = self.filter.prepare(&built)?;
            Some((built, prepared, groups, fresh))
        };
        // What the kernel is about to run (a new generation, new settings, or a program not
        // checked yet) must pass its canaries first; otherwise nothing changes.
        if !unchanged || config_changed || !self.checked {
            let entries = compiled.entries.iter().map(Listed::from);
            match &next {
                Some((built, prepared, ..)) => {
                    let plan = canary::plan(entries, built, &config);
                    self.run_canaries(prepared, plan, &config)?;
                }
                None => self.check_generation_in_force(entries, &config)?,
            }
        }
        if config_changed {
            self.filter.set_config(&config)?;
        }
        if let Some((built, prepared, groups, fresh)) = next {
            generation += 1;
            self.filter.clear_groups(&fresh)?;
            self.filter.install_prepared(&prepared)?;
            self.state.groups = groups;
            self.state.seed = built.header.seed;
            self.state.generation = generation;
            self.state.entries = compiled.entries.len() as u64;
            tracing::info!(
                reason = reason.name(),
                generation,
                entries = compiled.entries.len(),
                added,
                removed,
                bytes = built.bytes(),
                "new generation in force"
            );
        }
        self.state.applied_at = now;
        self.state.default_action = self.conf.defaults.action.name().to_string();
        self.state.default_ede = format!("{:?}", self.conf.defaults.ede).to_lowercase();
        self.state.protected = self.conf.guards.protected.clone();
        self.state.sources = sources
            .iter()
            .map(|s| SourceRecord {
                path: s.path.clone(),
                format: s.format,
                sha256: s.sha256.clone(),
                zone: s.zone.as_ref().map(|t| t.name.clone()),
            })
            .collect();
        self.state.orders = compiled.orders.iter().map(order_record).collect();
        self.state.save(&self.conf.paths.state_dir, &sources)?;
        if !unchanged || config_changed || sources_changed {
            let mut rec = serde_json::json!({
                "time": time::rfc3339(now),
                "event": "applied",
                "reason": reason.name(),
                "forced": force,
                "generation": generation,
                "entries": compiled.entries.len(),
                "sources": sources.iter().map(|s| serde_json::json!({
                    "path": s.path, "format": s.format.name(), "sha256": s.sha256,
                })).collect::<Vec<_>>(),
                "settings_changed": config_changed,
                "overrides": compiled.overrides.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "refused": compiled.refused.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            });
            if let (Some(o), Some(d)) = (rec.as_object_mut(), audit_diff.as_object()) {
                o.extend(d.clone());
            }
            self.audit.record(&rec);
        }
        {
            let mut h = self.health_mut();
            h.groups = self.state.groups.clone();
            h.orders = compiled.orders.iter().map(|o| (o.order.id.clone(), o.in_force)).collect();
        }
        let entries = compiled.entries.len();
        // One copy of the entries: they are what is in force; the rest is kept for dates.
        let mut compiled = compiled;
        self.current = Some(std::mem::take(&mut compiled.entries));
        self.compiled = Some(compiled);
        Ok(ApplyReport { generation, entries, added, removed, swapped: !unchanged })
    }

    /// Takes a new configuration (re-read on SIGHUP): lists, guards, settings and interfaces.
    /// Paths change only on restart.
    pub fn reconfigure(&mut self, conf: Conf) -> Result<(), DaemonError> {
        let paths = self.conf.paths.clone();
        self.conf = Conf { paths, ..conf };
        self.audit = Audit::new(self.conf.paths.audit_log.clone());
        let r = self.reconcile_interfaces();
        if let Err(e) = &r {
            tracing::error!(error = %e, "reconciling interfaces");
        }
        r
    }

    /// When the next order takes effect or lifts, if any.
    pub fn next_change(&self) -> Option<i64> {
        self.compiled.as_ref().and_then(|c| c.next_change)
    }

    /// The filter (program and maps).
    pub fn filter(&mut self) -> &mut Filter {
        &mut self.filter
    }

    /// The private instance the canaries run through (its counters are theirs alone).
    pub fn canary(&mut self) -> &mut Rig {
        &mut self.canary
    }

    /// The saved state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Stops. With `detach`, the interfaces are detached and the pins removed; otherwise the
    /// filter stays attached with the generation in force.
    pub fn stop(mut self, detach: bool) -> Result<(), DaemonError> {
        if detach {
            for r in std::mem::take(&mut self.state.interfaces) {
                self.filter.detach(&r.name)?;
                tracing::info!(iface = r.name, "detached");
                self.audit.record(&serde_json::json!({
                    "time": time::rfc3339(time::now()), "event": "detached", "interface": r.name,
                }));
            }
            self.save()?;
            if let Some(p) = self.filter.pins().cloned() {
                drop(self.filter);
                p.remove_all()?;
            }
        } else {
            tracing::info!("exiting; the filter stays attached with the list in force");
        }
        Ok(())
    }
}

/// The overrides of a configured zone.
fn zone_tag(z: &crate::fleet::conf::ZoneConf) -> ZoneTag {
    ZoneTag { name: z.name.clone(), policy: z.policy, ede: z.ede }
}

/// Gives saved sources of fleet zones their configured overrides.
fn tag_zones(mut sources: Vec<Source>, conf: &Conf) -> Vec<Source> {
    for s in &mut sources {
        if let Some(t) = &mut s.zone
            && let Some(z) = conf.fleet.zones.iter().find(|z| z.name == t.name)
        {
            *t = zone_tag(z);
        }
    }
    sources
}

fn conf_pins(d: &Daemon) -> crate::loader::Pins {
    d.conf.paths.pins.clone()
}

/// The entries of a saved generation, recompiled from the saved copies of its sources, as
/// they were judged when it was applied. `None` if the copies or the saved defaults cannot be
/// read.
pub fn rebuild(s: &State, conf: &Conf, dir: &std::path::Path) -> Option<Vec<Applied>> {
    let sources = tag_zones(s.sources(dir).ok()?, conf);
    let defaults = crate::lists::Defaults {
        action: filter_common::table::Action::from_name(&s.default_action)?,
        ede: crate::conf::ede_arg(&s.default_ede).ok()?,
    };
    let guards = crate::conf::GuardConf { protected: s.protected.clone(), strict: false, ..conf.guards.clone() };
    compile::compile(&sources, defaults, &guards, s.applied_at).ok().map(|c| c.entries)
}

fn order_record(o: &compile::OrderInfo) -> OrderRecord {
    let d = o.order.decision.as_ref();
    OrderRecord {
        id: o.order.id.clone(),
        format: o.format,
        file: o.order.loc.file.clone(),
        authority: d.map(|d| d.authority.clone()),
        reference: d.map(|d| d.reference.clone()),
        decided: d.map(|d| d.decided.clone()),
        effective: o.order.effective,
        expires: o.order.expires,
        monitor: o.order.monitor,
        in_force: o.in_force,
        entries: o.entries,
    }
}

/// An entry as the audit log and `explain --json` show it.
pub fn entry_json(e: &Applied) -> serde_json::Value {
    let mut v = serde_json::json!({
        "name": e.pattern(),
        "scope": e.scope_name(),
        "action": e.action.name(),
        "order": e.order,
        "source": e.loc.to_string(),
    });
    if let Some(u) = names::unicode(&e.labels) {
        v["unicode"] = u.into();
    }
    if e.action != e.intended {
        v["intended"] = e.intended.name().into();
    }
    match &e.how {
        How::Mirror { approved_by, approved, reference } => {
            v["mirror"] = serde_json::json!({"approved_by": approved_by, "approved": approved, "reference": reference});
        }
        How::Exception => v["exception"] = true.into(),
        How::Named | How::Listed => {}
    }
    if let Some(r) = &e.override_reason {
        v["override"] = r.clone().into();
    }
    v
}
