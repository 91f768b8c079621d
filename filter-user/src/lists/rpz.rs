//! TODO: being written.
use std::path::Path;
use super::{Diagnostic, Parsed};
#[allow(unused)]
pub fn parse(file: &Path, text: &str) -> Result<Parsed, Vec<Diagnostic>> {
    Err(vec![Diagnostic::new(file, 0, "format not implemented yet")])
}
