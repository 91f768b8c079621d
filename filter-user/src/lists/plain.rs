//! Plain lists: one name per line, `#` comments (whole-line or trailing), blank lines.
//! Each name blocks itself and every name below it with the given action.

use std::path::Path;

use filter_common::{
    dns::parse_text_name,
    table::{Action, Ede},
};

use super::Diagnostic;
use crate::table::{Rule, Scope};

/// Parses a plain list held in `text` (read from `file`).
pub fn parse(file: &Path, text: &str, action: Action, ede: Ede, group: u32) -> Result<Vec<Rule>, Vec<Diagnostic>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let diag = |reason: String| Diagnostic { file: file.to_path_buf(), line: i + 1, reason };
        if line.split_whitespace().count() > 1 {
            errors.push(diag(format!("expected one name, found {line:?}")));
            continue;
        }
        match parse_text_name(line) {
            Ok(labels) => rules.push(Rule { labels, scope: Scope::Subtree, action, ede, group }),
            Err(e) => errors.push(diag(format!("invalid name {line:?}: {e}"))),
        }
    }
    if errors.is_empty() { Ok(rules) } else { Err(errors) }
}

/// Reads and parses a plain list file.
pub fn load(file: &Path, action: Action, ede: Ede, group: u32) -> Result<Vec<Rule>, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| vec![Diagnostic { file: file.to_path_buf(), line: 0, reason: format!("cannot read: {e}") }])?;
    parse(file, &text, action, ede, group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_comments_and_blank_lines() {
        let text = "# court order 2013\nallostreaming.com\n\n  AlloShowTV.com.  # mirror\nallomovies.com\n";
        let rules = parse(Path::new("l.txt"), text, Action::Nxdomain, Ede::Censored, 3).unwrap();
        let names: Vec<_> = rules.iter().map(|r| filter_common::dns::to_text(&r.labels)).collect();
        assert_eq!(names, ["allostreaming.com", "alloshowtv.com", "allomovies.com"]);
        assert!(rules.iter().all(|r| r.scope == Scope::Subtree && r.group == 3));
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "ok.com\nbad..com\n\ntwo names.com\n";
        let e = parse(Path::new("/etc/l.txt"), text, Action::Nxdomain, Ede::Censored, 0).unwrap_err();
        let shown: Vec<String> = e.iter().map(|d| d.to_string()).collect();
        assert_eq!(shown.len(), 2);
        assert!(shown[0].starts_with("/etc/l.txt:2: invalid name \"bad..com\": empty label"), "{}", shown[0]);
        assert!(shown[1].starts_with("/etc/l.txt:4: expected one name"), "{}", shown[1]);
    }

    #[test]
    fn missing_file_is_reported() {
        let e = load(Path::new("/nonexistent/list"), Action::Drop, Ede::None, 0).unwrap_err();
        assert!(e[0].to_string().starts_with("/nonexistent/list: cannot read:"), "{}", e[0]);
    }
}
