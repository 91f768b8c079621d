//! Knot DNS (knotd 3.2) as a primary: zones served over UDP and TCP, transfers under a TSIG
//! key, IXFR from a journal, NOTIFY to the secondaries, generated catalog zones.
//!
//! How it is configured (see [`config`]):
//! - Every zone loads with `zonefile-load: difference-no-serial` and `journal-content: all`:
//!   a zone file rewritten and reloaded becomes a changeset, with the serial incremented by
//!   Knot (the serial in the file is ignored, but on a cold start), and the journal serves it
//!   as an IXFR. `zonefile-sync: 0`: knotd writes every change (a `knotc` commit) back to
//!   the zone file at once. Otherwise a restart would find the zone file behind the journal,
//!   take the difference as a change and revert the commits (Knot 3.2 does not remember
//!   across restarts that it loaded the file already). The journal keeps 1000 changesets
//!   (`journal-max-depth`).
//! - `acl`: transfers need the key when there is one, else are open to any address.
//! - `notify`: one `remote` per target, with the key when there is one (NOTIFY is signed).
//!   **Knot 3.2 sends NOTIFY over TCP only** (the requestor runs without its UDP flag: see
//!   `send_notify` in knot/events/handlers/notify.c); there is no option for UDP, nor for
//!   TCP (it is the only way); `server.tcp-fastopen` would only add TFO. A NOTIFY that gets
//!   no answer is logged as failed and resent after the SOA retry interval. Knot also sends
//!   one NOTIFY per zone when it starts (unless it had sent that serial already).
//! - Catalogs: a zone with [`KnotZone::catalog_member_of`] is a `catalog-role: member` of a
//!   catalog zone that Knot generates (`catalog-role: generate`, catalog schema version 2,
//!   serial in unixtime; knotd answers transfers of it, and REFUSED to any other query).
//!   Members are added and removed at run time through a configuration
//!   transaction (`knotc conf-begin`, `conf-set`, `conf-commit`), which Knot keeps in memory
//!   only: [`Knot`] remembers its zones and writes them into the configuration on a restart.
//!
//! Files under `dir`: `knot.conf`, `knot.log` (knotd's stderr), and `knot/` with the zone
//! files (`zones/NAME.zone`), the journal, timer and catalog databases (`db/`), the pid file
//! and the control socket (`run/`).

use std::{
    collections::HashMap,
    io::Write as _,
    net::{IpAddr, SocketAddr},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::{
    Child, Netns, Result, cmd,
    primary::{NsHandle, TsigKey, log_tail, query_serial},
};

/// A zone for Knot to serve as primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnotZone {
    /// The zone name, without the final dot.
    pub name: String,
    /// The zone file text.
    pub text: String,
    /// The generated catalog zone this zone is a member of.
    pub catalog_member_of: Option<String>,
}

impl KnotZone {
    pub fn new(name: &str, text: &str) -> KnotZone {
        KnotZone { name: name.trim_end_matches('.').to_string(), text: text.to_string(), catalog_member_of: None }
    }

    /// The zone as a member of the catalog zone `catalog`, which Knot generates.
    pub fn member_of(mut self, catalog: &str) -> KnotZone {
        self.catalog_member_of = Some(catalog.trim_end_matches('.').to_string());
        self
    }
}

/// What a [`Knot`] is started with, kept for restarts.
#[derive(Clone, Debug)]
struct Setup {
    dir: PathBuf,
    addr: IpAddr,
    key: Option<TsigKey>,
    notify: Vec<SocketAddr>,
    zones: Vec<KnotZone>,
}

impl Setup {
    fn state(&self) -> PathBuf {
        self.dir.join("knot")
    }

    fn zone_file(&self, zone: &str) -> PathBuf {
        self.state().join("zones").join(format!("{}.zone", zone.trim_end_matches('.')))
    }

    fn socket(&self) -> PathBuf {
        self.state().join("run").join("knot.sock")
    }

    /// The catalog zones that the members name, each once, in order.
    fn catalogs(&self) -> Vec<String> {
        let mut catalogs: Vec<String> = Vec::new();
        for c in self.zones.iter().filter_map(|z| z.catalog_member_of.clone()) {
            if !catalogs.contains(&c) {
                catalogs.push(c);
            }
        }
        catalogs
    }
}

/// An address and port as Knot writes them: `ADDR@PORT`.
fn knot_addr(addr: SocketAddr) -> String {
    format!("{}@{}", addr.ip(), addr.port())
}

/// Knot's configuration for `s`.
fn config(s: &Setup) -> String {
    let state = s.state();
    let state = state.display();
    let mut c = format!(
        "server:
  rundir: {state}/run
  pidfile: {state}/run/knot.pid
  listen: {addr}
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: {state}/db
control:
  listen: {state}/run/knot.sock
log:
  - target: stderr
    any: info
",
        addr = knot_addr(SocketAddr::new(s.addr, 53)),
    );
    if let Some(key) = &s.key {
        c.push_str("key:\n");
        c.push_str(&key.knot_key());
    }
    if !s.notify.is_empty() {
        c.push_str("remote:\n");
        for (i, target) in s.notify.iter().enumerate() {
            c.push_str(&format!("  - id: notify{i}\n    address: {}\n", knot_addr(*target)));
            if let Some(key) = &s.key {
                c.push_str(&format!("    key: {}\n", key.name));
            }
        }
    }
    c.push_str("acl:\n  - id: transfer\n    action: transfer\n");
    match &s.key {
        Some(key) => c.push_str(&format!("    key: {}\n", key.name)),
        None => c.push_str("    address: [0.0.0.0/0, ::/0]\n"),
    }
    c.push_str(&format!(
        "template:
  - id: default
    storage: {state}/zones
    file: \"%s.zone\"
    zonefile-load: difference-no-serial
    zonefile-sync: 0
    journal-content: all
    journal-max-depth: 1000
    acl: transfer
"
    ));
    if !s.notify.is_empty() {
        let ids: Vec<String> = (0..s.notify.len()).map(|i| format!("notify{i}")).collect();
        c.push_str(&format!("    notify: [{}]\n", ids.join(", ")));
    }
    c.push_str("zone:\n");
    for catalog in s.catalogs() {
        c.push_str(&format!("  - domain: {catalog}\n    catalog-role: generate\n"));
    }
    for z in &s.zones {
        c.push_str(&format!("  - domain: {}\n", z.name));
        if let Some(catalog) = &z.catalog_member_of {
            c.push_str(&format!("    catalog-role: member\n    catalog-zone: {catalog}\n"));
        }
    }
    c
}

/// One record line taken apart: `owner [ttl] [class] type rdata...`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line<'a> {
    owner: &'a str,
    ttl: Option<&'a str>,
    rtype: String,
    rdata: String,
}

impl<'a> Line<'a> {
    fn parse(line: &'a str) -> Result<Line<'a>> {
        let mut f = line.split_whitespace().peekable();
        let owner = f.next().ok_or_else(|| format!("empty record line {line:?}"))?;
        let ttl = f.next_if(|t| t.starts_with(|c: char| c.is_ascii_digit()));
        f.next_if(|t| ["IN", "CH", "HS"].iter().any(|c| t.eq_ignore_ascii_case(c)));
        let rtype = f.next().ok_or_else(|| format!("no type in record line {line:?}"))?.to_ascii_uppercase();
        let rdata = f.collect::<Vec<_>>().join(" ");
        Ok(Line { owner, ttl, rtype, rdata })
    }

    /// The owner as an absolute name, lower case, with the final dot; zone-file rules: a name
    /// without a final dot is relative to `zone`, `@` is the apex.
    fn absolute_owner(&self, zone: &str) -> String {
        let zone = zone.trim_end_matches('.');
        let name = match self.owner {
            "@" => format!("{zone}."),
            o if o.ends_with('.') => o.to_string(),
            o => format!("{o}.{zone}."),
        };
        name.to_ascii_lowercase()
    }

    /// What identifies the record (its TTL aside), for matching a removal.
    fn key(&self, zone: &str) -> (String, String, String) {
        (self.absolute_owner(zone), self.rtype.clone(), self.rdata.to_ascii_lowercase())
    }
}

/// A running knotd, killed when dropped; the files stay (the caller's folder owns them).
pub struct Knot {
    ns: NsHandle,
    setup: Setup,
    child: Option<Child>,
}

impl Knot {
    /// Starts knotd in `ns`, listening on `addr` port 53 (UDP and TCP), as primary of `zones`,
    /// with its configuration, zone files, journal and run folder under `dir`. With `key`,
    /// transfers need that TSIG key and NOTIFY is signed with it. `notify`: the addresses
    /// that get a NOTIFY for every change of every zone (over TCP: see the module docs).
    /// Returns once every zone (and every catalog zone) answers SOA queries on `addr`.
    pub fn start(
        ns: &Netns,
        dir: &Path,
        addr: IpAddr,
        key: Option<&TsigKey>,
        notify: &[SocketAddr],
        zones: &[KnotZone],
    ) -> Result<Knot> {
        let setup =
            Setup { dir: dir.to_path_buf(), addr, key: key.cloned(), notify: notify.to_vec(), zones: zones.to_vec() };
        for sub in ["zones", "db", "run"] {
            let path = setup.state().join(sub);
            std::fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        }
        for z in zones {
            crate::write_file(&setup.zone_file(&z.name), &z.text)?;
        }
        let mut knot = Knot { ns: NsHandle::of(ns)?, setup, child: None };
        knot.launch()?;
        Ok(knot)
    }

    /// Writes the configuration, starts knotd and waits until it serves every zone.
    fn launch(&mut self) -> Result<()> {
        let conf = self.setup.dir.join("knot.conf");
        crate::write_file(&conf, &config(&self.setup))?;
        let _ = std::fs::remove_file(self.setup.socket());
        let mut command = self.ns.command("knotd");
        command.arg("-c").arg(&conf);
        self.child = Some(Netns::spawn(&mut command, &self.log_path())?);
        let names: Vec<String> = self.setup.zones.iter().map(|z| z.name.clone()).collect();
        let catalogs = self.setup.catalogs();
        crate::wait_for(Duration::from_secs(10), "knotd to serve its zones", || {
            self.check_running()?;
            for name in &names {
                if query_serial(self.ns.command("kdig"), self.setup.addr, name)?.is_none() {
                    return Ok(false);
                }
            }
            // Catalog zones answer transfers only (other queries are REFUSED): ask knotc.
            Ok(catalogs.iter().all(|c| self.serial(c).is_ok()))
        })
        .map_err(|e| format!("{e}\n{}", self.log_tail()))
    }

    /// An error if knotd has exited (or was stopped).
    fn check_running(&mut self) -> Result<()> {
        match self.child.as_mut().map(|c| c.exited()) {
            None => Err("knotd is stopped".into()),
            Some(Some(status)) => Err(format!("knotd exited ({status})")),
            Some(None) => Ok(()),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.setup.dir.join("knot.log")
    }

    fn log_tail(&self) -> String {
        format!("----- {} -----\n{}", self.log_path().display(), log_tail(&self.log_path(), 30))
    }

    /// Everything knotd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The address knotd listens on (port 53).
    pub fn addr(&self) -> IpAddr {
        self.setup.addr
    }

    /// The process id of knotd.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.child.as_ref().map(Child::pid)
    }

    /// The zone file of `zone`.
    pub fn zone_file(&self, zone: &str) -> PathBuf {
        self.setup.zone_file(zone)
    }

    /// `knotc -s SOCKET ARGS...`, with HOME in the state folder (for the interactive mode's
    /// history file).
    fn knotc(&self) -> Command {
        let mut c = Command::new("knotc");
        c.arg("-s").arg(self.setup.socket()).env("HOME", self.setup.state());
        c
    }

    /// Runs one knotc action; an `error:` line fails it.
    fn knotc_run(&self, args: &[&str]) -> Result<String> {
        let out = cmd::run(self.knotc().args(args)).map_err(|e| format!("{e}\n{}", self.log_tail()))?;
        match out.lines().find(|l| l.starts_with("error:")) {
            Some(err) => Err(format!("knotc {}: {err}\n{}", args.join(" "), self.log_tail())),
            None => Ok(out),
        }
    }

    /// Runs knotc's interactive mode with `commands` on its stdin, one a line: one process
    /// for them all. knotc goes on after a failing command; its `error:` lines are returned.
    fn knotc_session(&self, commands: &[String]) -> Result<Vec<String>> {
        let mut c = self.knotc();
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = c.spawn().map_err(|e| format!("cannot run knotc: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("knotc: no stdin")?;
        let text = commands.join("\n") + "\n";
        // Written from a thread: knotc answers each line, and its output would fill the pipe.
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let out = child.wait_with_output().map_err(|e| format!("knotc: {e}"))?;
        writer.join().map_err(|_| "knotc: the writer panicked")?.map_err(|e| format!("knotc stdin: {e}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(format!("knotc failed ({}): {}\n{}", out.status, text.trim(), self.log_tail()));
        }
        Ok(text.lines().filter(|l| l.starts_with("error:")).map(str::to_string).collect())
    }

    /// The serial of `zone` that knotd holds (`knotc zone-status +serial`).
    pub fn serial(&self, zone: &str) -> Result<u32> {
        let zone = zone.trim_end_matches('.');
        let out = self.knotc_run(&["zone-status", zone, "+serial"])?;
        out.lines()
            .find_map(|l| l.split("serial: ").nth(1))
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("no serial for {zone} in `knotc zone-status`: {}", out.trim()))
    }

    /// Changes `zone` in one zone transaction (`knotc zone-begin`, `zone-unset` for each of
    /// `remove`, `zone-set` for each of `add`, `zone-commit`); Knot increments the serial.
    /// Record lines as in a zone file, `www.example 3600 CNAME .`: names relative to the zone
    /// unless they end with a dot, the TTL needed for the first record of a new RRset (it is
    /// ignored in `remove`). Returns the new serial. On an error the transaction is aborted.
    ///
    /// Each record costs knotc some 3 ms: for thousands, use [`Knot::commit_many`].
    pub fn commit(&self, zone: &str, add: &[&str], remove: &[&str]) -> Result<u32> {
        let zone = zone.trim_end_matches('.');
        let before = self.serial(zone)?;
        let mut commands = vec![format!("zone-begin {zone}")];
        for r in remove {
            let l = Line::parse(r)?;
            commands.push(format!("zone-unset {zone} {} {} {}", l.owner, l.rtype, l.rdata));
        }
        for r in add {
            let l = Line::parse(r)?;
            let ttl = l.ttl.map(|t| format!(" {t}")).unwrap_or_default();
            commands.push(format!("zone-set {zone} {}{ttl} {} {}", l.owner, l.rtype, l.rdata));
        }
        let errors = self.knotc_session(&commands)?;
        if !errors.is_empty() {
            let _ = self.knotc_run(&["zone-abort", zone]);
            return Err(format!("knotc transaction on {zone} aborted: {}", errors.join("; ")));
        }
        self.knotc_run(&["zone-commit", zone])?;
        let after = self.serial(zone)?;
        if after == before {
            return Err(format!("{zone}: the commit left the serial at {before}\n{}", self.log_tail()));
        }
        Ok(after)
    }

    /// Changes `zone` as [`Knot::commit`] does, for many records: the zone that knotd serves
    /// (`knotc zone-read`) with `remove` taken out (matched on owner, type and data, case
    /// aside; each must be there) and `add` appended becomes the zone file, which knotd
    /// reloads as one changeset. 100,000 records take about a second, where a knotc session
    /// (3 ms a record) would take five minutes. Returns the new serial.
    pub fn commit_many(&self, zone: &str, add: &[String], remove: &[String]) -> Result<u32> {
        let zone = zone.trim_end_matches('.');
        let dump = self.knotc_run(&["zone-read", zone])?;
        let prefix = format!("[{zone}.] ");
        let mut lines: Vec<Option<&str>> = Vec::new();
        let mut index: HashMap<(String, String, String), Vec<usize>> = HashMap::new();
        for line in dump.lines() {
            let Some(record) = line.strip_prefix(&prefix) else { continue };
            index.entry(Line::parse(record)?.key(zone)).or_default().push(lines.len());
            lines.push(Some(record));
        }
        for r in remove {
            let key = Line::parse(r)?.key(zone);
            let slot =
                index.get_mut(&key).and_then(Vec::pop).ok_or_else(|| format!("{zone}: no record {r:?} to remove"))?;
            lines[slot] = None;
        }
        let mut text = format!("$ORIGIN {zone}.\n$TTL 3600\n");
        for line in lines.into_iter().flatten().chain(add.iter().map(String::as_str)) {
            text.push_str(line);
            text.push('\n');
        }
        let before = self.serial(zone)?;
        let after = self.reload(zone, &text)?;
        if after == before && !(add.is_empty() && remove.is_empty()) {
            return Err(format!("{zone}: the reload left the serial at {before}\n{}", self.log_tail()));
        }
        Ok(after)
    }

    /// Replaces the zone file of `zone` with `text` and reloads it (`knotc zone-reload`):
    /// Knot computes the difference, stores it in the journal (an IXFR) and increments the
    /// serial (the serial in `text` is ignored). Returns the serial, unchanged when `text`
    /// holds what the zone holds.
    pub fn rewrite_zone(&self, zone: &str, text: &str) -> Result<u32> {
        self.reload(zone.trim_end_matches('.'), text)
    }

    fn reload(&self, zone: &str, text: &str) -> Result<u32> {
        // A commit schedules a flush to the zone file: wait for it, lest it overwrite `text`.
        self.knotc_run(&["-b", "zone-flush", zone])?;
        crate::write_file(&self.setup.zone_file(zone), text)?;
        self.knotc_run(&["-b", "zone-reload", zone])?;
        self.serial(zone)
    }

    /// Makes knotd serve `zone` from `text` as if it were new, the serial of `text`
    /// included, also when it is lower than the one served (a primary restored from an old
    /// backup): purges the zone's journal and timers, stops knotd, writes the zone file and
    /// starts knotd again. Returns the serial.
    pub fn reset_zone(&mut self, zone: &str, text: &str) -> Result<u32> {
        let zone = zone.trim_end_matches('.');
        self.knotc_run(&["-f", "-b", "zone-purge", zone, "+journal", "+timers"])?;
        self.stop();
        crate::write_file(&self.setup.zone_file(zone), text)?;
        if let Some(z) = self.setup.zones.iter_mut().find(|z| z.name == zone) {
            z.text = text.to_string();
        }
        self.launch()?;
        self.serial(zone)
    }

    /// Purges the journal of `zone` (`knotc zone-purge +journal`): the zone is still served,
    /// but an IXFR from a serial before now is answered with a full transfer.
    pub fn purge_journal(&self, zone: &str) -> Result<()> {
        self.knotc_run(&["-f", "-b", "zone-purge", zone.trim_end_matches('.'), "+journal"]).map(drop)
    }

    /// Stops knotd (`knotc stop`, then SIGKILL after 10 s); nothing when it is stopped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if child.exited().is_none() {
            let _ = child.signal(libc::SIGCONT);
            let _ = cmd::capture(self.knotc().arg("stop"));
            let _ = crate::wait_for(Duration::from_secs(10), "knotd to stop", || Ok(child.exited().is_some()));
        }
        child.kill();
    }

    /// Stops knotd if it runs, and starts it again with the same configuration (the zones
    /// added at run time included): the zones come back from the journal, then the zone files
    /// are compared with them.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }

    /// Freezes knotd (SIGSTOP): it accepts connections (the kernel does) but answers nothing.
    pub fn pause(&self) -> Result<()> {
        self.child.as_ref().ok_or("knotd is stopped")?.signal(libc::SIGSTOP)
    }

    /// Lets a paused knotd run on (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.child.as_ref().ok_or("knotd is stopped")?.signal(libc::SIGCONT)
    }

    /// Adds `zone` as a member of the generated catalog `catalog` while knotd runs (a
    /// configuration transaction; the catalog zone is created when it is new). Returns the
    /// catalog's new serial, once the member is in it and the zone is served.
    pub fn add_catalog_member(&mut self, catalog: &str, zone: KnotZone) -> Result<u32> {
        let catalog = catalog.trim_end_matches('.').to_string();
        let zone = zone.member_of(&catalog);
        let new_catalog = !self.setup.catalogs().contains(&catalog);
        let before = if new_catalog { 0 } else { self.serial(&catalog)? };
        crate::write_file(&self.setup.zone_file(&zone.name), &zone.text)?;
        let mut sets = Vec::new();
        if new_catalog {
            sets.push(format!("conf-set zone[{catalog}]"));
            sets.push(format!("conf-set zone[{catalog}].catalog-role generate"));
        }
        sets.push(format!("conf-set zone[{}]", zone.name));
        sets.push(format!("conf-set zone[{}].catalog-role member", zone.name));
        sets.push(format!("conf-set zone[{}].catalog-zone {catalog}", zone.name));
        self.conf_transaction(sets)?;
        let name = zone.name.clone();
        self.setup.zones.push(zone);
        self.await_catalog(&catalog, before, &format!("{name} to be served and listed in {catalog}"), || {
            query_serial(self.ns.command("kdig"), self.setup.addr, &name).map(|s| s.is_some())
        })
    }

    /// Removes the member `zone` from its catalog and from knotd (a configuration
    /// transaction). Returns the catalog's new serial.
    pub fn remove_catalog_member(&mut self, zone: &str) -> Result<u32> {
        let zone = zone.trim_end_matches('.');
        let catalog = self
            .setup
            .zones
            .iter()
            .find(|z| z.name == zone)
            .and_then(|z| z.catalog_member_of.clone())
            .ok_or_else(|| format!("{zone} is not a catalog member of this Knot"))?;
        let before = self.serial(&catalog)?;
        self.conf_transaction(vec![format!("conf-unset zone[{zone}]")])?;
        self.setup.zones.retain(|z| z.name != zone);
        self.await_catalog(&catalog, before, &format!("{zone} to leave {catalog}"), || Ok(true))
    }

    /// `conf-begin`, `sets`, `conf-commit`; `conf-abort` on an error.
    fn conf_transaction(&self, sets: Vec<String>) -> Result<()> {
        let mut commands = vec!["conf-begin".to_string()];
        commands.extend(sets);
        let errors = self.knotc_session(&commands)?;
        if !errors.is_empty() {
            let _ = self.knotc_run(&["conf-abort"]);
            return Err(format!("knotc configuration transaction aborted: {}", errors.join("; ")));
        }
        self.knotc_run(&["conf-commit"]).map(drop)
    }

    /// Waits until the serial of `catalog` is above `before` and `ready` holds; returns it.
    fn await_catalog(&self, catalog: &str, before: u32, what: &str, ready: impl Fn() -> Result<bool>) -> Result<u32> {
        let mut serial = before;
        crate::wait_for(Duration::from_secs(10), what, || {
            serial = self.serial(catalog).unwrap_or(before);
            Ok(serial != before && ready()?)
        })
        .map_err(|e| format!("{e}\n{}", self.log_tail()))?;
        Ok(serial)
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(key: Option<TsigKey>, notify: Vec<SocketAddr>) -> Setup {
        Setup {
            dir: PathBuf::from("/tmp/k"),
            addr: "10.54.1.2".parse().unwrap(),
            key,
            notify,
            zones: vec![
                KnotZone::new("x.rpz.", ""),
                KnotZone::new("m1.rpz", "").member_of("cat.invalid."),
                KnotZone::new("m2.rpz", "").member_of("cat.invalid"),
            ],
        }
    }

    fn has(c: &str, lines: &[&str]) {
        let all: Vec<&str> = c.lines().map(str::trim).collect();
        let at = all.windows(lines.len()).any(|w| w == lines);
        assert!(at, "{lines:?} missing:\n{c}");
    }

    #[test]
    fn config_with_key_and_notify() {
        let key = TsigKey::new("xfr", "hmac-sha256", "c2VjcmV0");
        let c = config(&setup(Some(key), vec!["10.54.1.1:5300".parse().unwrap(), "[fd54::1]:53".parse().unwrap()]));
        has(&c, &["listen: 10.54.1.2@53"]);
        has(&c, &["- id: xfr", "algorithm: hmac-sha256", "secret: c2VjcmV0"]);
        has(&c, &["- id: notify0", "address: 10.54.1.1@5300", "key: xfr", "- id: notify1", "address: fd54::1@53"]);
        has(&c, &["- id: transfer", "action: transfer", "key: xfr"]);
        has(&c, &["zonefile-load: difference-no-serial", "zonefile-sync: 0", "journal-content: all"]);
        has(&c, &["notify: [notify0, notify1]"]);
        has(&c, &["- domain: cat.invalid", "catalog-role: generate", "- domain: x.rpz", "- domain: m1.rpz"]);
        has(&c, &["- domain: m2.rpz", "catalog-role: member", "catalog-zone: cat.invalid"]);
        assert_eq!(c.matches("catalog-role: generate").count(), 1);
    }

    #[test]
    fn config_without_key_or_notify() {
        let c = config(&setup(None, vec![]));
        has(&c, &["- id: transfer", "action: transfer", "address: [0.0.0.0/0, ::/0]"]);
        assert!(!c.contains("key:") && !c.contains("remote:") && !c.contains("notify:"), "{c}");
    }

    #[test]
    fn record_lines() {
        let l = Line::parse("www.example 3600 IN CNAME .").unwrap();
        assert_eq!((l.owner, l.ttl, l.rtype.as_str(), l.rdata.as_str()), ("www.example", Some("3600"), "CNAME", "."));
        assert_eq!(l.absolute_owner("x.rpz."), "www.example.x.rpz.");
        let l = Line::parse("WWW.Example.X.rpz.  cname   .").unwrap();
        assert_eq!(l.key("x.rpz"), ("www.example.x.rpz.".into(), "CNAME".into(), ".".into()));
        let l = Line::parse("@ 300 SOA ns. hm. 1 2 3 4 5").unwrap();
        assert_eq!((l.absolute_owner("x.rpz"), l.rdata.as_str()), ("x.rpz.".into(), "ns. hm. 1 2 3 4 5"));
        assert!(Line::parse("   ").is_err() && Line::parse("name 300").is_err());
    }
}
