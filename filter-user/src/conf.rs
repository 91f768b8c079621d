//! The daemon's configuration: `/etc/dnsfilter/dnsfilter.toml` (every key optional, each with a
//! documented default), overridden by command-line flags. All paths live here so tests can
//! point them elsewhere.
//!
//! ```toml
//! interfaces = ["eth1"]                  # edge interfaces to filter
//! mode = "native"                        # native (falls back to skb) | skb
//! lists = ["/etc/dnsfilter/orders.d", { path = "/etc/dnsfilter/local.txt", format = "plain" }]
//! action = "nxdomain"                    # action for plain lists and hosts files
//! ede = "censored"                       # censored | blocked | none
//! capacity = 10000000                    # most entries; a larger list is refused whole
//! strict = true                          # a refused entry refuses the whole load
//! max_change_share = 0.25                # refuse an update changing more than this share...
//! change_guard_min = 10                  # ...unless it changes at most this many entries
//! protected = ["*.gouv.fr", "example.net"]   # more protected names (`*.` protects the subtree)
//! builtin_protected = true               # also protect the built-in critical names
//! pin_dir = "/sys/fs/bpf/dnsfilter"
//! state_dir = "/var/lib/dnsfilter"
//! run_dir = "/run/dnsfilter"
//! audit_log = "/var/log/dnsfilter/audit.jsonl"
//! metrics = "127.0.0.1:9553"             # Prometheus /metrics (off unless set)
//! detach_on_exit = false                 # SIGTERM leaves the filter attached
//! watch = true                           # reload when a list file changes
//! stats_interval = 0                     # seconds between counter lines in the log (0: off)
//!
//! [settings]                             # answers; orders files may set these too
//! stop_v4 = "192.0.2.80"
//! ports = [53]
//! resolvers = []                         # enforce only on these destinations (empty: all)
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use filter_common::table::{Action, Ede};

use crate::{
    config::{Settings, SettingsFile, SoaFile},
    lists::{Defaults, Format},
    loader::{Mode, Pins},
};

/// The default config file.
pub const DEFAULT_CONFIG: &str = "/etc/dnsfilter/dnsfilter.toml";

/// A `lists` element: a path (file or folder), or a path with its format.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum ListSpec {
    Path(PathBuf),
    Full { path: PathBuf, format: Option<Format> },
}

impl ListSpec {
    pub fn path(&self) -> &Path {
        match self {
            ListSpec::Path(p) | ListSpec::Full { path: p, .. } => p,
        }
    }
    pub fn format(&self) -> Option<Format> {
        match self {
            ListSpec::Path(_) => None,
            ListSpec::Full { format, .. } => *format,
        }
    }
}

/// The config file as written.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub interfaces: Option<Vec<String>>,
    pub mode: Option<Mode>,
    pub lists: Option<Vec<ListSpec>>,
    pub action: Option<String>,
    pub ede: Option<String>,
    pub capacity: Option<usize>,
    pub strict: Option<bool>,
    pub max_change_share: Option<f64>,
    pub change_guard_min: Option<usize>,
    pub protected: Option<Vec<String>>,
    pub builtin_protected: Option<bool>,
    pub pin_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub metrics: Option<SocketAddr>,
    pub detach_on_exit: Option<bool>,
    pub watch: Option<bool>,
    pub stats_interval: Option<u64>,
    pub settings: Option<SettingsFile>,
    pub fleet: Option<crate::fleet::conf::FleetFile>,
}

/// Why a config file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {reason}")]
    Syntax { path: PathBuf, line: usize, reason: String },
    #[error("{path}: {reason}")]
    Value { path: PathBuf, reason: String },
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map(|t| t.matches('\n').count() + 1).unwrap_or(1)
}

impl ConfigFile {
    /// Reads `path`. A missing file is an error only if `required` (it was named explicitly).
    pub fn read(path: &Path, required: bool) -> Result<ConfigFile, ConfError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(source) => return Err(ConfError::Read { path: path.to_path_buf(), source }),
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfError> {
        toml::from_str(text).map_err(|e| ConfError::Syntax {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            reason: e.message().trim().to_string(),
        })
    }
}

/// Where the daemon keeps things.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// bpffs folder of the pins.
    pub pins: Pins,
    /// State kept across restarts: what was applied, copies of the applied sources.
    pub state_dir: PathBuf,
    /// Pid file and lock.
    pub run_dir: PathBuf,
    /// JSON-lines audit log; `None` disables it.
    pub audit_log: Option<PathBuf>,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            pins: Pins::new(Pins::DEFAULT_ROOT),
            state_dir: PathBuf::from("/var/lib/dnsfilter"),
            run_dir: PathBuf::from("/run/dnsfilter"),
            audit_log: Some(PathBuf::from("/var/log/dnsfilter/audit.jsonl")),
        }
    }
}

impl Paths {
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir.join("dnsfilter.pid")
    }

    /// The daemon's control socket (fleet zone status and resync).
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir.join("control.sock")
    }
}

/// The guards against over-blocking.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardConf {
    /// Protected names (`*.name` protects the whole subtree).
    pub protected: Vec<String>,
    /// Refuse the whole load when an entry is refused (otherwise leave the entry out).
    pub strict: bool,
    /// Largest share of entries one update may change without being forced.
    pub max_change_share: f64,
    /// Updates changing at most this many entries always pass the share guard.
    pub change_guard_min: usize,
}

/// The resolved configuration of the daemon and of the verbs that read its state.
#[derive(Clone, Debug, PartialEq)]
pub struct Conf {
    pub interfaces: Vec<String>,
    pub mode: Mode,
    pub lists: Vec<ListSpec>,
    pub defaults: Defaults,
    pub capacity: usize,
    pub guards: GuardConf,
    pub paths: Paths,
    pub metrics: Option<SocketAddr>,
    pub detach_on_exit: bool,
    pub watch: bool,
    pub stats_interval: u64,
    /// Answer settings from the config file (orders files and flags are applied later).
    pub settings: SettingsFile,
    /// The policy zones this node is a secondary of.
    pub fleet: crate::fleet::conf::Fleet,
}

/// Names a mistaken list must never take out, whatever the court order says.
pub const BUILTIN_PROTECTED: &[&str] = &[
    "google.com",
    "www.google.com",
    "google.fr",
    "www.google.fr",
    "youtube.com",
    "www.youtube.com",
    "wikipedia.org",
    "www.wikipedia.org",
    "fr.wikipedia.org",
    "en.wikipedia.org",
    "facebook.com",
    "www.facebook.com",
    "microsoft.com",
    "windowsupdate.com",
    "apple.com",
    "icloud.com",
    "amazon.com",
    "amazonaws.com",
    "cloudflare.com",
    "akamai.net",
    "akamaiedge.net",
    "letsencrypt.org",
    "*.root-servers.net",
    "*.gtld-servers.net",
    "*.nic.fr",
    "afnic.fr",
    "*.gouv.fr",
    "service-public.fr",
    "legifrance.gouv.fr",
    "ameli.fr",
    "impots.gouv.fr",
    "*.in-addr.arpa",
    "*.ip6.arpa",
];

fn parse_action(s: &str) -> Result<Action, String> {
    Action::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
        format!("unknown action {s:?}; one of {}", names.join(", "))
    })
}

fn parse_ede(s: &str) -> Result<Ede, String> {
    match s {
        "censored" => Ok(Ede::Censored),
        "blocked" => Ok(Ede::Blocked),
        "none" => Ok(Ede::None),
        _ => Err(format!("unknown EDE {s:?}; one of censored, blocked, none")),
    }
}

/// Parses an action name for clap.
pub fn action_arg(s: &str) -> Result<Action, String> {
    parse_action(s)
}

/// Parses an EDE name for clap.
pub fn ede_arg(s: &str) -> Result<Ede, String> {
    parse_ede(s)
}

impl Conf {
    /// Resolves a config file (read from `path`) into a configuration.
    pub fn from_file(f: ConfigFile, path: &Path) -> Result<Conf, ConfError> {
        let bad = |reason: String| ConfError::Value { path: path.to_path_buf(), reason };
        let action = f.action.as_deref().map(parse_action).transpose().map_err(bad)?.unwrap_or(Action::Nxdomain);
        let ede = f.ede.as_deref().map(parse_ede).transpose().map_err(bad)?.unwrap_or(Ede::Censored);
        let share = f.max_change_share.unwrap_or(0.25);
        if !(share > 0.0 && share <= 1.0) {
            return Err(bad(format!("max_change_share {share} must be in (0, 1]")));
        }
        let mut protected: Vec<String> = if f.builtin_protected.unwrap_or(true) {
            BUILTIN_PROTECTED.iter().map(|s| s.to_string()).collect()
        } else {
            Vec::new()
        };
        protected.extend(f.protected.unwrap_or_default());
        for p in &protected {
            crate::names::canonical_pattern(p).map_err(|e| bad(format!("protected name {p:?}: {e}")))?;
        }
        let fleet =
            crate::fleet::conf::Fleet::from_file(f.fleet.unwrap_or_default(), parse_action, parse_ede).map_err(bad)?;
        let d = Paths::default();
        Ok(Conf {
            fleet,
            interfaces: f.interfaces.unwrap_or_default(),
            mode: f.mode.unwrap_or(Mode::Native),
            lists: f.lists.unwrap_or_default(),
            defaults: Defaults { action, ede },
            capacity: f.capacity.unwrap_or(10_000_000),
            guards: GuardConf {
                protected,
                strict: f.strict.unwrap_or(true),
                max_change_share: share,
                change_guard_min: f.change_guard_min.unwrap_or(10),
            },
            paths: Paths {
                pins: f.pin_dir.map(Pins::new).unwrap_or(d.pins),
                state_dir: f.state_dir.unwrap_or(d.state_dir),
                run_dir: f.run_dir.unwrap_or(d.run_dir),
                audit_log: match f.audit_log {
                    Some(p) if p.as_os_str().is_empty() => None,
                    Some(p) => Some(p),
                    None => d.audit_log,
                },
            },
            metrics: f.metrics,
            detach_on_exit: f.detach_on_exit.unwrap_or(false),
            watch: f.watch.unwrap_or(true),
            stats_interval: f.stats_interval.unwrap_or(0),
            settings: f.settings.unwrap_or_default(),
        })
    }

    /// Reads the config file at `path` (the default one may be absent) and resolves it.
    pub fn load(path: Option<&Path>) -> Result<Conf, ConfError> {
        let (p, required) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_CONFIG), false),
        };
        Self::from_file(ConfigFile::read(p, required)?, p)
    }

    /// The list files: folders expand to the files they hold (sorted; hidden files and editor
    /// or package-manager leftovers skipped), each with its format.
    pub fn list_files(&self) -> Vec<(PathBuf, Format)> {
        let mut out = Vec::new();
        for spec in &self.lists {
            let p = spec.path();
            if p.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.is_file() && !is_leftover(f))
                    .collect();
                files.sort();
                out.extend(files.into_iter().map(|f| {
                    let fmt = spec.format().unwrap_or_else(|| Format::detect(&f));
                    (f, fmt)
                }));
            } else {
                out.push((p.to_path_buf(), spec.format().unwrap_or_else(|| Format::detect(p))));
            }
        }
        out
    }
}

fn is_leftover(f: &Path) -> bool {
    let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.starts_with('.')
        || name.ends_with('~')
        || [".bak", ".swp", ".tmp", ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".rpmnew", ".rpmsave"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// Answer settings layered: defaults, then `base` (config file), then each orders file's
/// `[settings]` (two files setting one key differently is an error), then `flags`.
pub fn merge_settings(
    base: &SettingsFile,
    from_files: &[(PathBuf, SettingsFile)],
    flags: &SettingsFile,
) -> Result<Settings, String> {
    let mut merged = base.clone();
    let mut set_by: std::collections::HashMap<&'static str, &Path> = std::collections::HashMap::new();
    for (path, s) in from_files {
        macro_rules! take {
            ($($f:ident),*) => {$(
                if let Some(v) = &s.$f {
                    if let Some(prev) = set_by.get(stringify!($f)) {
                        if merged.$f.as_ref() != Some(v) {
                            return Err(format!(
                                "settings.{} is set differently in {} and {}",
                                stringify!($f), prev.display(), path.display()
                            ));
                        }
                    }
                    set_by.insert(stringify!($f), path);
                    merged.$f = Some(v.clone());
                }
            )*};
        }
        take!(ports, stop_v4, stop_v6, answer_ttl, edns_udp_size, resolvers, soa);
    }
    macro_rules! over {
        ($($f:ident),*) => {$( if flags.$f.is_some() { merged.$f = flags.$f.clone(); } )*};
    }
    over!(ports, stop_v4, stop_v6, answer_ttl, edns_udp_size, resolvers, soa);
    Ok(resolve_settings(&merged))
}

fn resolve_settings(f: &SettingsFile) -> Settings {
    let d = Settings::default();
    let soa = f.soa.clone().unwrap_or_default();
    let SoaFile { mname, rname, serial, refresh, retry, expire, negative_ttl } = soa;
    let ds = d.soa.clone();
    Settings {
        ports: f.ports.clone().unwrap_or(d.ports),
        stop_v4: f.stop_v4,
        stop_v6: f.stop_v6,
        answer_ttl: f.answer_ttl.unwrap_or(d.answer_ttl),
        edns_udp_size: f.edns_udp_size.unwrap_or(d.edns_udp_size),
        soa: crate::config::Soa {
            mname: mname.unwrap_or(ds.mname),
            rname: rname.unwrap_or(ds.rname),
            serial: serial.unwrap_or(ds.serial),
            refresh: refresh.unwrap_or(ds.refresh),
            retry: retry.unwrap_or(ds.retry),
            expire: expire.unwrap_or(ds.expire),
            negative_ttl: negative_ttl.unwrap_or(ds.negative_ttl),
        },
        resolvers: f.resolvers.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file() {
        let c = Conf::load(Some(Path::new("/nonexistent/dnsfilter.toml")));
        assert!(matches!(c, Err(ConfError::Read { .. })), "an explicit missing file is an error");
        let c = Conf::from_file(ConfigFile::default(), Path::new("x")).unwrap();
        assert_eq!(c.mode, Mode::Native);
        assert_eq!(c.paths, Paths::default());
        assert!(!c.detach_on_exit && c.watch && c.guards.strict);
        assert!(c.guards.protected.iter().any(|p| p == "google.fr"));
    }

    #[test]
    fn every_key_parses_and_errors_name_the_line() {
        let text = r#"
interfaces = ["eth1", "eth2"]
mode = "skb"
lists = ["/etc/dnsfilter/orders.d", { path = "/x/local.txt", format = "plain" }]
action = "drop"
ede = "none"
capacity = 1000
strict = false
max_change_share = 0.5
change_guard_min = 3
protected = ["*.example.net"]
builtin_protected = false
pin_dir = "/sys/fs/bpf/t"
state_dir = "/tmp/s"
run_dir = "/tmp/r"
audit_log = ""
metrics = "127.0.0.1:9553"
detach_on_exit = true
watch = false
stats_interval = 5
[settings]
stop_v4 = "192.0.2.1"
"#;
        let c = Conf::from_file(ConfigFile::parse(Path::new("c.toml"), text).unwrap(), Path::new("c.toml")).unwrap();
        assert_eq!(c.interfaces, ["eth1", "eth2"]);
        assert_eq!(c.mode, Mode::Skb);
        assert_eq!(c.defaults, Defaults { action: Action::Drop, ede: Ede::None });
        assert_eq!(c.guards.protected, ["*.example.net"]);
        assert_eq!(c.paths.audit_log, None);
        assert_eq!(c.paths.pins.root, PathBuf::from("/sys/fs/bpf/t"));
        assert_eq!(c.lists[1].format(), Some(Format::Plain));
        assert!(c.detach_on_exit && !c.watch && !c.guards.strict);

        let e = ConfigFile::parse(Path::new("c.toml"), "mode = \"skb\"\n\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().starts_with("c.toml:3: unknown field `bogus`"), "{e}");
        let e =
            Conf::from_file(ConfigFile::parse(Path::new("c.toml"), "action = \"block\"").unwrap(), Path::new("c.toml"))
                .unwrap_err();
        assert!(e.to_string().contains("unknown action \"block\""), "{e}");
    }

    #[test]
    fn settings_layering() {
        let base = SettingsFile { answer_ttl: Some(60), ..Default::default() };
        let a = (
            PathBuf::from("a.toml"),
            SettingsFile { stop_v4: Some("192.0.2.1".parse().unwrap()), ..Default::default() },
        );
        let b = (
            PathBuf::from("b.toml"),
            SettingsFile { stop_v4: Some("192.0.2.2".parse().unwrap()), ..Default::default() },
        );
        let s = merge_settings(&base, std::slice::from_ref(&a), &SettingsFile::default()).unwrap();
        assert_eq!(s.answer_ttl, 60);
        assert_eq!(s.stop_v4, Some("192.0.2.1".parse().unwrap()));
        let e = merge_settings(&base, &[a.clone(), b], &SettingsFile::default()).unwrap_err();
        assert!(e.contains("a.toml and b.toml"), "{e}");
        let flags = SettingsFile { stop_v4: Some("192.0.2.9".parse().unwrap()), ..Default::default() };
        assert_eq!(merge_settings(&base, &[a], &flags).unwrap().stop_v4, Some("192.0.2.9".parse().unwrap()));
    }

    #[test]
    fn folders_expand_and_skip_leftovers() {
        let d = tempfile::tempdir().unwrap();
        for f in ["b.toml", "a.rpz", ".hidden", "c.toml~", "d.txt.bak", "e.hosts"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let mut c = Conf::from_file(ConfigFile::default(), Path::new("x")).unwrap();
        c.lists = vec![ListSpec::Path(d.path().to_path_buf())];
        let got: Vec<_> = c
            .list_files()
            .into_iter()
            .map(|(p, f)| (p.file_name().unwrap().to_string_lossy().into_owned(), f))
            .collect();
        assert_eq!(
            got,
            [("a.rpz".into(), Format::Rpz), ("b.toml".into(), Format::Orders), ("e.hosts".into(), Format::Hosts)]
        );
    }
}
