//! List formats. Each parser turns one file into orders and the entries they list, or into
//! diagnostics that name the file, the line and the reason. Nothing from a file with errors is
//! used.
//!
//! Formats are detected by extension: `.toml` court orders, `.rpz`/`.zone` RPZ zones, `.hosts`
//! hosts files, anything else a plain list.

pub mod hosts;
pub mod orders;
pub mod plain;
pub mod rpz;

use std::{
    fmt,
    path::{Path, PathBuf},
};

use filter_common::table::{Action, Ede};

use crate::table::{Scope, Stop};

/// One problem in a list file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line number; 0 for problems with the whole file.
    pub line: usize,
    pub reason: String,
}

impl Diagnostic {
    pub fn new(file: &Path, line: usize, reason: impl Into<String>) -> Diagnostic {
        Diagnostic { file: file.to_path_buf(), line, reason: reason.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
        }
    }
}

/// Every problem found in a set of files.
#[derive(Debug, thiserror::Error)]
pub struct ListErrors(pub Vec<Diagnostic>);

impl fmt::Display for ListErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A list file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Court orders with provenance (TOML), the native format.
    Orders,
    /// An RPZ zone file (QNAME triggers).
    Rpz,
    /// A hosts file (`0.0.0.0 name`).
    Hosts,
    /// One name per line.
    Plain,
}

impl Format {
    /// The format a file's extension implies.
    pub fn detect(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("toml") => Format::Orders,
            Some("rpz" | "zone") => Format::Rpz,
            Some("hosts") => Format::Hosts,
            _ => Format::Plain,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Orders => "orders",
            Format::Rpz => "rpz",
            Format::Hosts => "hosts",
            Format::Plain => "plain",
        }
    }
}

/// Where something was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The court decision behind an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The issuing authority (a court, a regulator).
    pub authority: String,
    /// The decision's reference (docket number).
    pub reference: String,
    /// Decision date as written (`YYYY-MM-DD`).
    pub decided: String,
}

/// A group of entries with one origin: a court order, or a whole plain/hosts/RPZ file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// Unique id: the order's id, or `<format>:<file name>` for other formats.
    pub id: String,
    /// The decision, for court orders.
    pub decision: Option<Decision>,
    /// When the order takes effect (Unix seconds, UTC); `None` means already in effect.
    pub effective: Option<i64>,
    /// When the order lifts (Unix seconds, UTC); `None` means never.
    pub expires: Option<i64>,
    /// Count matches without blocking (a dry run before enforcement).
    pub monitor: bool,
    pub loc: Loc,
}

impl Order {
    /// Whether the order is in force at `now` (Unix seconds).
    pub fn in_force(&self, now: i64) -> bool {
        self.effective.is_none_or(|t| now >= t) && self.expires.is_none_or(|t| now < t)
    }
}

/// How a name got into an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// Named in the decision itself.
    Named,
    /// A mirror added after the decision, without a new judgment.
    Mirror {
        approved_by: String,
        /// Approval date as written (`YYYY-MM-DD`).
        approved: String,
        reference: String,
    },
    /// An allow exception of the order.
    Exception,
    /// Listed in a plain, hosts or RPZ file.
    Listed,
}

/// One listed name with its origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Canonical labels, most specific first.
    pub labels: Vec<Vec<u8>>,
    pub scope: Scope,
    /// The action the entry asks for (a monitor order counts it instead).
    pub action: Action,
    pub ede: Ede,
    /// Stop-page addresses of this entry (RPZ local data, or the order's own); `None` uses the
    /// global ones.
    pub stop: Option<Stop>,
    /// Index of its order in [`Parsed::orders`].
    pub order: usize,
    pub how: How,
    pub loc: Loc,
    /// Why this entry may block a protected name (written by the operator).
    pub override_reason: Option<String>,
}

/// What one file yields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub orders: Vec<Order>,
    pub entries: Vec<Listed>,
    /// Global settings written in the file (orders files only).
    pub settings: Option<crate::config::SettingsFile>,
}

/// How entries from formats without their own actions (plain lists, hosts files) are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub action: Action,
    pub ede: Ede,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { action: Action::Nxdomain, ede: Ede::Censored }
    }
}

/// Parses `text`, read from `file`, in `format`.
pub fn parse(file: &Path, text: &str, format: Format, defaults: Defaults) -> Result<Parsed, Vec<Diagnostic>> {
    match format {
        Format::Orders => orders::parse(file, text),
        Format::Rpz => rpz::parse(file, text),
        Format::Hosts => hosts::parse(file, text, defaults),
        Format::Plain => plain::parse(file, text, defaults),
    }
}

/// The single order standing for a whole file of a format without orders.
pub fn file_order(file: &Path, format: Format) -> Order {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| file.display().to_string());
    Order {
        id: format!("{}:{name}", format.name()),
        decision: None,
        effective: None,
        expires: None,
        monitor: false,
        loc: Loc { file: file.to_path_buf(), line: 0 },
    }
}
