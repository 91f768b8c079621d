//! What the daemon applied, kept across restarts in the state folder:
//! - `state.json`: the generation in force, when and from which sources (with their sha256)
//!   it was built, the counter groups, the interfaces and their mode, the orders;
//! - `sources/<sha256>`: a copy of every applied source, so a restart (or `explain`) knows
//!   exactly what is in force even if the files were edited since.
//!
//! `state.json` is written to a temporary file and renamed, so it is never half-written.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use super::compile::ZoneTag;
use super::compile::{Groups, Source};
use crate::{lists::Format, loader::Mode};

/// Version of the state file's schema.
pub const SCHEMA: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceRecord {
    pub path: PathBuf,
    pub format: Format,
    pub sha256: String,
    /// The fleet zone whose stored copy this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IfaceRecord {
    pub name: String,
    pub mode: Mode,
}

/// An order as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderRecord {
    pub id: String,
    pub format: Format,
    pub file: PathBuf,
    pub authority: Option<String>,
    pub reference: Option<String>,
    pub decided: Option<String>,
    pub effective: Option<i64>,
    pub expires: Option<i64>,
    pub monitor: bool,
    pub in_force: bool,
    pub entries: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub schema: u32,
    /// Generation in force, and the hash seed of its table.
    pub generation: u64,
    pub seed: u64,
    /// When the generation was built (Unix seconds): orders in force are judged at this time.
    pub applied_at: i64,
    /// Action and EDE given to plain lists and hosts files.
    pub default_action: String,
    pub default_ede: String,
    /// Protected names the generation was checked against.
    pub protected: Vec<String>,
    pub sources: Vec<SourceRecord>,
    pub groups: Groups,
    pub interfaces: Vec<IfaceRecord>,
    pub entries: u64,
    pub orders: Vec<OrderRecord>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_path_buf(), source }
}

impl State {
    pub fn file(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Reads the state; `None` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
        let path = Self::file(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let s: State = serde_json::from_str(&text)
            .map_err(|e| StateError::Format { path: path.clone(), reason: e.to_string() })?;
        if s.schema != SCHEMA {
            return Err(StateError::Format {
                path,
                reason: format!("schema {} (this version reads {SCHEMA})", s.schema),
            });
        }
        Ok(Some(s))
    }

    /// Writes the state atomically, with copies of `sources` not stored yet, and drops copies
    /// no longer used. Copies already stored stay: pass no sources to save the state alone.
    pub fn save(&self, dir: &Path, sources: &[Source]) -> Result<(), StateError> {
        let copies = dir.join("sources");
        std::fs::create_dir_all(&copies).map_err(io(&copies))?;
        for s in sources {
            let p = copies.join(&s.sha256);
            if !p.exists() {
                write_atomic(&p, s.text.as_bytes())?;
            }
        }
        let path = Self::file(dir);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| StateError::Format { path: path.clone(), reason: e.to_string() })?;
        write_atomic(&path, &json)?;
        let keep: std::collections::HashSet<&str> = self.sources.iter().map(|s| s.sha256.as_str()).collect();
        for e in std::fs::read_dir(&copies).into_iter().flatten().flatten() {
            if !keep.contains(e.file_name().to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// The applied sources, from the copies.
    pub fn sources(&self, dir: &Path) -> Result<Vec<Source>, StateError> {
        self.sources
            .iter()
            .map(|r| {
                let p = dir.join("sources").join(&r.sha256);
                let text = std::fs::read_to_string(&p).map_err(io(&p))?;
                let mut s = Source::new(r.path.clone(), r.format, text);
                s.zone = r.zone.clone().map(|name| ZoneTag { name, policy: None, ede: None });
                Ok(s)
            })
            .collect()
    }
}

/// Writes `path` atomically: a temporary file beside it, fsync, rename, fsync of the folder
/// (so that the rename itself survives a crash).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(folder).and_then(|d| d.sync_all()).map_err(io(folder))
}

/// The audit log: one JSON object per line, appended and synced.
pub struct Audit {
    path: Option<PathBuf>,
}

impl Audit {
    pub fn new(path: Option<PathBuf>) -> Audit {
        Audit { path }
    }

    /// Appends one record. Failing to audit is logged, never fatal: filtering goes on.
    pub fn record(&self, value: &serde_json::Value) {
        let Some(path) = &self.path else { return };
        let r = (|| -> std::io::Result<()> {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
            line.push(b'\n');
            f.write_all(&line)?;
            f.sync_data()
        })();
        if let Err(e) = r {
            tracing::error!(path = %path.display(), error = %e, "cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_with_source_copies() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(State::load(d.path()).unwrap(), None);
        let a = Source::new("/l/a.txt".into(), Format::Plain, "a.example\n".into());
        let b = Source::new("/l/b.txt".into(), Format::Plain, "b.example\n".into());
        let mut s = State { schema: SCHEMA, generation: 3, ..Default::default() };
        s.sources = [&a, &b]
            .iter()
            .map(|x| SourceRecord { path: x.path.clone(), format: x.format, sha256: x.sha256.clone(), zone: None })
            .collect();
        s.save(d.path(), &[a.clone(), b.clone()]).unwrap();
        let back = State::load(d.path()).unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.sources(d.path()).unwrap(), [a.clone(), b]);
        // Copies no longer referenced are dropped.
        s.sources.truncate(1);
        s.save(d.path(), &[a]).unwrap();
        assert_eq!(std::fs::read_dir(d.path().join("sources")).unwrap().count(), 1);
        // Saving the state alone keeps the stored copy.
        s.save(d.path(), &[]).unwrap();
        assert_eq!(s.sources(d.path()).unwrap().len(), 1);
        std::fs::write(State::file(d.path()), "{\"schema\": 99}").unwrap();
        assert!(State::load(d.path()).is_err());
    }

    #[test]
    fn audit_appends_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log/audit.jsonl");
        let a = Audit::new(Some(p.clone()));
        a.record(&serde_json::json!({"event": "applied", "n": 1}));
        a.record(&serde_json::json!({"event": "rejected"}));
        let text = std::fs::read_to_string(p).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["event"], "rejected");
    }
}
