//! `dnsfilter run`: the daemon.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd as _,
    path::PathBuf,
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use filter_common::table::{Action, Ede};

use super::{EXIT_CONFIG, EXIT_DATAERR, EXIT_FAILURE, EXIT_OSERR, Global};
use crate::{
    conf::{self, Conf, ListSpec},
    config::SettingsFile,
    daemon::{Daemon, DaemonError, Reason},
    lists::Format,
    loader::Mode,
    sys, time,
};

/// Run the daemon: attach to the interfaces, keep the lists in force, reload on SIGHUP or when
/// a list file changes, lift and apply orders on their dates. Every flag overrides its config
/// key. SIGTERM leaves the filter attached with the list in force (unless --detach-on-exit).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Interface to filter (repeatable) [config: interfaces].
    #[arg(long = "iface", value_name = "IF")]
    ifaces: Vec<String>,
    /// List file or folder (repeatable; replaces the config's lists) [config: lists].
    #[arg(long = "list", value_name = "FILE")]
    lists: Vec<PathBuf>,
    /// Format of the --list files, instead of detecting it from the extension.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// XDP mode; native falls back to skb, with a warning, when the driver lacks it [config: mode].
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Action for plain lists and hosts files [config: action].
    #[arg(long, value_parser = conf::action_arg)]
    action: Option<Action>,
    /// EDE for plain lists and hosts files: censored, blocked or none [config: ede].
    #[arg(long, value_parser = conf::ede_arg)]
    ede: Option<Ede>,
    /// UDP destination port treated as DNS (repeatable) [config: settings.ports].
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,
    /// Stop-page IPv4 address for `redirect` [config: settings.stop_v4].
    #[arg(long)]
    stop_v4: Option<Ipv4Addr>,
    /// Stop-page IPv6 address for `redirect` [config: settings.stop_v6].
    #[arg(long)]
    stop_v6: Option<Ipv6Addr>,
    /// Enforce only on queries to this resolver address (repeatable) [config: settings.resolvers].
    #[arg(long = "resolver", value_name = "ADDR")]
    resolvers: Vec<IpAddr>,
    /// TTL of stop-page answers [config: settings.answer_ttl].
    #[arg(long)]
    answer_ttl: Option<u32>,
    /// Most entries; a larger list is refused whole [config: capacity].
    #[arg(long)]
    capacity: Option<usize>,
    /// Refuse updates changing more than this share of the entries [config: max_change_share].
    #[arg(long)]
    max_change_share: Option<f64>,
    /// Protect this name too (`*.name` protects the subtree; repeatable) [config: protected].
    #[arg(long = "protect", value_name = "NAME")]
    protect: Vec<String>,
    /// JSON-lines audit log [config: audit_log; default /var/log/dnsfilter/audit.jsonl].
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Keep no audit log [config: audit_log = ""].
    #[arg(long, conflicts_with = "audit_log")]
    no_audit_log: bool,
    /// Serve Prometheus metrics on this address [config: metrics].
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Detach and remove the pins on SIGTERM/SIGINT [config: detach_on_exit].
    #[arg(long)]
    detach_on_exit: bool,
    /// Do not watch the list files (SIGHUP still reloads) [config: watch = false].
    #[arg(long)]
    no_watch: bool,
    /// Apply the first load even past the change-share guard.
    #[arg(long)]
    force: bool,
    /// Seconds between counter lines in the log (0: off) [config: stats_interval].
    #[arg(long)]
    stats_interval: Option<u64>,
}

impl Args {
    fn apply(&self, c: &mut Conf) {
        if !self.ifaces.is_empty() {
            c.interfaces = self.ifaces.clone();
        }
        if !self.lists.is_empty() {
            c.lists = self
                .lists
                .iter()
                .map(|p| match self.format {
                    Some(f) => ListSpec::Full { path: p.clone(), format: Some(f) },
                    None => ListSpec::Path(p.clone()),
                })
                .collect();
        }
        if let Some(m) = self.mode {
            c.mode = m;
        }
        if let Some(a) = self.action {
            c.defaults.action = a;
        }
        if let Some(e) = self.ede {
            c.defaults.ede = e;
        }
        if let Some(n) = self.capacity {
            c.capacity = n;
        }
        if let Some(s) = self.max_change_share {
            c.guards.max_change_share = s;
        }
        c.guards.protected.extend(self.protect.iter().cloned());
        if let Some(p) = &self.audit_log {
            c.paths.audit_log = (!p.as_os_str().is_empty()).then(|| p.clone());
        }
        if self.no_audit_log {
            c.paths.audit_log = None;
        }
        if self.metrics.is_some() {
            c.metrics = self.metrics;
        }
        c.detach_on_exit |= self.detach_on_exit;
        c.watch &= !self.no_watch;
        if let Some(s) = self.stats_interval {
            c.stats_interval = s;
        }
    }

    fn settings(&self) -> SettingsFile {
        SettingsFile {
            ports: (!self.ports.is_empty()).then(|| self.ports.clone()),
            stop_v4: self.stop_v4,
            stop_v6: self.stop_v6,
            resolvers: (!self.resolvers.is_empty()).then(|| self.resolvers.clone()),
            answer_ttl: self.answer_ttl,
            ..Default::default()
        }
    }
}

/// How long a refused scheduled change (an order's date came, but the lists are refused) waits
/// before it is tried again; a reload that succeeds applies it at once.
const SCHEDULE_RETRY: Duration = Duration::from_secs(60);

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);
static FORCE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    match sig {
        libc::SIGHUP => RELOAD.store(true, Ordering::SeqCst),
        libc::SIGUSR2 => {
            FORCE.store(true, Ordering::SeqCst);
            RELOAD.store(true, Ordering::SeqCst);
        }
        _ => STOP.store(true, Ordering::SeqCst),
    }
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR2] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Tells systemd (Type=notify) about the daemon's state, when run under it.
fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let bytes = path.as_encoded_bytes();
    let r = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        std::os::unix::net::SocketAddr::from_abstract_name(name).and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), &path)
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "sd_notify");
    }
}

/// Holds the pid file locked for the daemon's life: one daemon per run folder.
struct PidLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl PidLock {
    fn take(conf: &Conf) -> Result<PidLock, String> {
        let dir = &conf.paths.run_dir;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = conf.paths.pid_file();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(format!("another dnsfilter daemon (pid {}) holds {}", pid.trim(), path.display()));
        }
        file.set_len(0).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&path, format!("{}\n", std::process::id())).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PidLock { _file: file, path })
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Watches the folders of the list files (editors and config management replace files by
/// renaming), and reports when something there changed.
struct Watch {
    _watcher: notify::RecommendedWatcher,
    rx: mpsc::Receiver<()>,
}

fn watch(conf: &Conf, config: Option<&PathBuf>) -> Option<Watch> {
    use notify::Watcher as _;
    let (tx, rx) = mpsc::channel();
    // Only changes to the lists (files, or anything in a list folder) and the config count:
    // the audit log or the state may live in the same folder.
    let files: Vec<PathBuf> = conf
        .lists
        .iter()
        .filter(|s| !s.path().is_dir())
        .map(|s| s.path().to_path_buf())
        .chain(config.cloned())
        .collect();
    let folders: Vec<PathBuf> =
        conf.lists.iter().filter(|s| s.path().is_dir()).map(|s| s.path().to_path_buf()).collect();
    let relevant = move |p: &std::path::Path| {
        let abs = |x: &std::path::Path| std::path::absolute(x).unwrap_or_else(|_| x.to_path_buf());
        let p = abs(p);
        files.iter().any(|f| abs(f) == p) || folders.iter().any(|d| p.parent() == Some(abs(d).as_path()))
    };
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !matches!(ev.kind, notify::EventKind::Access(_))
            && ev.paths.iter().any(|p| relevant(p))
        {
            let _ = tx.send(());
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot watch list files; SIGHUP still reloads"))
    .ok()?;
    let mut dirs: Vec<PathBuf> = conf
        .lists
        .iter()
        .map(|s| {
            let p = s.path();
            if p.is_dir() { p.to_path_buf() } else { p.parent().map(|d| d.to_path_buf()).unwrap_or_default() }
        })
        .collect();
    if let Some(c) = config.and_then(|c| c.parent()) {
        dirs.push(c.to_path_buf());
    }
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let d = if d.as_os_str().is_empty() { PathBuf::from(".") } else { d };
        if let Err(e) = w.watch(&d, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch");
        }
    }
    Some(Watch { _watcher: w, rx })
}

pub fn run(g: &Global, a: Box<Args>) -> ExitCode {
    let resolve = |g: &Global| -> Result<Conf, ExitCode> {
        let mut c = g.conf_or_exit()?;
        a.apply(&mut c);
        Ok(c)
    };
    let conf = match resolve(g) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if conf.interfaces.is_empty() {
        eprintln!("error: no interface to filter (give --iface, or interfaces in the config)");
        return ExitCode::from(EXIT_CONFIG);
    }
    if conf.lists.is_empty() && conf.fleet.zones.is_empty() {
        eprintln!("error: no list (give --list, or lists or [[fleet.zone]] in the config)");
        return ExitCode::from(EXIT_CONFIG);
    }
    for iface in &conf.interfaces {
        if sys::if_index(iface).is_none() {
            eprintln!("error: interface {iface}: no such interface");
            return ExitCode::from(EXIT_OSERR);
        }
    }
    let _lock = match PidLock::take(&conf) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    install_signal_handlers();
    let mut d = match Daemon::start(conf.clone(), a.settings(), a.force, time::now()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, DaemonError::Canary(_)) {
                eprintln!(
                    "error: the program does not filter as it should on this kernel: nothing was attached (an \
                     interface already filtered keeps the program it had)"
                );
            }
            return ExitCode::from(if e.is_data() { EXIT_DATAERR } else { EXIT_OSERR });
        }
    };
    let mut conf = conf;
    if let Some(addr) = conf.metrics {
        match crate::metrics::serve(addr, conf.paths.pins.clone(), d.health.clone()) {
            Ok(local) => tracing::info!(%local, "serving metrics"),
            Err(e) => {
                eprintln!("error: metrics on {addr}: {e}");
                return ExitCode::from(EXIT_OSERR);
            }
        }
    }
    // The fleet starts once the stored copies of its zones are enforced (by the first apply).
    let fleet = if conf.fleet.zones.is_empty() {
        None
    } else {
        match crate::fleet::run::start(
            conf.fleet.clone(),
            conf.paths.state_dir.clone(),
            conf.paths.control_socket(),
            conf.paths.audit_log.clone(),
        ) {
            Ok(f) => {
                d.health.lock().unwrap_or_else(|p| p.into_inner()).fleet = Some(f.status.clone());
                tracing::info!(zones = conf.fleet.zones.len(), "fleet started");
                Some(f)
            }
            Err(e) => {
                eprintln!("error: fleet: {e}");
                return ExitCode::from(EXIT_OSERR);
            }
        }
    };
    let mut watcher = if conf.watch { watch(&conf, g.config.as_ref()) } else { None };
    sd_notify("READY=1");
    tracing::info!(interfaces = ?conf.interfaces, "running");
    let mut dirty: Option<Instant> = None;
    let mut last_stats = Instant::now();
    // When a scheduled change was last refused: it is retried after SCHEDULE_RETRY, not on every
    // pass of the loop (each refusal is logged and audited).
    let mut schedule_refused: Option<Instant> = None;
    while !STOP.load(Ordering::SeqCst) {
        // A transferred zone is applied as soon as it arrives; otherwise this is the loop's
        // 100 ms tick.
        match &fleet {
            Some(f) => {
                if let Ok(u) = f.updates.recv_timeout(Duration::from_millis(100)) {
                    let r = d.apply_zone(&u, time::now()).map(|_| ());
                    let _ = u.reply.send(r);
                }
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
        if let Some(w) = &watcher {
            while w.rx.try_recv().is_ok() {
                dirty = Some(Instant::now());
            }
        }
        let hup = RELOAD.swap(false, Ordering::SeqCst);
        let force = FORCE.swap(false, Ordering::SeqCst);
        let settled = dirty.is_some_and(|t| t.elapsed() >= Duration::from_millis(300));
        if hup || settled {
            dirty = None;
            let reason = if hup { Reason::Signal } else { Reason::Watch };
            sd_notify("RELOADING=1");
            match resolve(g) {
                Ok(c) => {
                    if c.paths != conf.paths || c.metrics != conf.metrics {
                        tracing::warn!("paths and the metrics address change only on restart");
                    }
                    if c.fleet != conf.fleet {
                        tracing::warn!("[fleet] changes take effect on restart");
                    }
                    let c = Conf { paths: conf.paths.clone(), metrics: conf.metrics, fleet: conf.fleet.clone(), ..c };
                    if c.lists != conf.lists || c.watch != conf.watch {
                        watcher = if c.watch { watch(&c, g.config.as_ref()) } else { None };
                    }
                    conf = c.clone();
                    let _ = d.reconfigure(c);
                    if d.apply(reason, force, time::now()).is_ok() {
                        schedule_refused = None;
                    }
                }
                Err(_) => {
                    let e = match g.conf() {
                        Err(e) => e.to_string(),
                        Ok(_) => "config refused".to_string(),
                    };
                    d.reject(reason, &e, time::now());
                }
            }
            sd_notify("READY=1");
        }
        if let Some(t) = d.next_change()
            && time::now() >= t
            && schedule_refused.is_none_or(|r| r.elapsed() >= SCHEDULE_RETRY)
        {
            schedule_refused = d.apply(Reason::Schedule, false, time::now()).err().map(|_| Instant::now());
        }
        if conf.stats_interval > 0 && last_stats.elapsed() >= Duration::from_secs(conf.stats_interval) {
            last_stats = Instant::now();
            if let Ok(c) = d.filter().counters() {
                let shown: Vec<String> =
                    c.iter().filter(|(_, v)| *v > 0).map(|(c, v)| format!("{}={v}", c.name())).collect();
                tracing::info!(counters = %shown.join(" "), "stats");
            }
        }
    }
    sd_notify("STOPPING=1");
    drop(fleet);
    if let Err(e) = d.stop(conf.detach_on_exit) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_OSERR);
    }
    ExitCode::SUCCESS
}
