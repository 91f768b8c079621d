//! List formats. Each parser turns a file into [`Rule`]s, or into diagnostics that name the
//! file, the line and the reason. Nothing from a file with errors is used.

pub mod plain;

use std::{fmt, path::PathBuf};

/// One problem in a list file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line number; 0 for problems with the whole file.
    pub line: usize,
    pub reason: String,
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
