//! Plain lists: one name per line, `#` comments (whole-line or trailing), blank lines.
//! Each name blocks itself and every name below it; `*.name` blocks only the names below it.
//! The action comes from the command line or the config.

use std::path::Path;

use super::{Defaults, Diagnostic, How, Listed, Loc, Parsed, file_order};
use crate::{names, table::Scope};

/// Parses a plain list held in `text` (read from `file`).
pub fn parse(file: &Path, text: &str, defaults: Defaults) -> Result<Parsed, Vec<Diagnostic>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.split_whitespace().count() > 1 {
            errors.push(Diagnostic::new(file, i + 1, format!("expected one name, found {line:?}")));
            continue;
        }
        match names::canonical_pattern(line) {
            Ok((labels, wildcard)) => entries.push(Listed {
                labels,
                scope: if wildcard { Scope::Below } else { Scope::Subtree },
                action: defaults.action,
                ede: defaults.ede,
                stop: None,
                order: 0,
                how: How::Listed,
                loc: Loc { file: file.to_path_buf(), line: i + 1 },
                override_reason: None,
            }),
            Err(e) => errors.push(Diagnostic::new(file, i + 1, format!("invalid name {line:?}: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(Parsed { orders: vec![file_order(file, super::Format::Plain)], entries, settings: None })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_common::table::Action;

    #[test]
    fn parses_names_comments_and_blank_lines() {
        let text =
            "# court order 2013\nallostreaming.com\n\n  AlloShowTV.com.  # mirror\n*.allomovies.com\nbücher.example\n";
        let p = parse(Path::new("/x/l.txt"), text, Defaults::default()).unwrap();
        let names: Vec<_> = p.entries.iter().map(|r| names::display(&r.labels)).collect();
        assert_eq!(names, ["allostreaming.com", "alloshowtv.com", "allomovies.com", "xn--bcher-kva.example"]);
        let scopes: Vec<_> = p.entries.iter().map(|r| r.scope).collect();
        assert_eq!(scopes, [Scope::Subtree, Scope::Subtree, Scope::Below, Scope::Subtree]);
        assert_eq!(p.entries[1].loc.line, 4);
        assert!(p.entries.iter().all(|r| r.action == Action::Nxdomain && r.order == 0));
        assert_eq!(p.orders[0].id, "plain:l.txt");
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "ok.com\nbad..com\n\ntwo names.com\n";
        let e = parse(Path::new("/etc/l.txt"), text, Defaults::default()).unwrap_err();
        let shown: Vec<String> = e.iter().map(|d| d.to_string()).collect();
        assert_eq!(shown.len(), 2);
        assert!(shown[0].starts_with("/etc/l.txt:2: invalid name \"bad..com\": empty label"), "{}", shown[0]);
        assert!(shown[1].starts_with("/etc/l.txt:4: expected one name"), "{}", shown[1]);
    }
}
