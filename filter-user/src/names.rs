//! Name canonicalisation for every list format: Unicode names become A-labels (UTS 46,
//! punycode), case is folded, a trailing dot is dropped, and the result is checked against the
//! wire limits (63-octet labels, 255-octet names).

use filter_common::dns::parse_text_name;

/// Canonical labels (ASCII, lower case), most specific first, from a name as written in a list.
/// A Unicode name is mapped with UTS 46 (`Bücher.example` → `xn--bcher-kva.example`).
/// Underscores are allowed (`_dmarc.example`), since DNS names are not host names.
pub fn canonical(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty name".into());
    }
    if text == "." {
        return Err("the root name cannot be listed".into());
    }
    let ascii = if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        let stripped = text.strip_suffix('.').unwrap_or(text);
        idna::uts46::Uts46::new()
            .to_ascii(
                stripped.as_bytes(),
                idna::uts46::AsciiDenyList::EMPTY,
                idna::uts46::Hyphens::Allow,
                idna::uts46::DnsLength::Ignore,
            )
            .map_err(|_| format!("{text:?} is not a valid internationalised name (UTS 46)"))?
            .into_owned()
    };
    let labels = parse_text_name(&ascii).map_err(|e| e.to_string())?;
    if labels.is_empty() {
        return Err("the root name cannot be listed".into());
    }
    Ok(labels.into_iter().map(|l| l.to_ascii_lowercase()).collect())
}

/// [`canonical`] for a pattern that may start with `*.` (the names below, not the name itself).
/// Returns the labels of the name after `*.` and whether the wildcard was there.
pub fn canonical_pattern(text: &str) -> Result<(Vec<Vec<u8>>, bool), String> {
    let text = text.trim();
    match text.strip_prefix("*.") {
        Some(rest) => canonical(rest).map(|l| (l, true)),
        None if text.contains('*') => {
            Err(format!("{text:?}: a wildcard is only allowed as the whole first label (*.name)"))
        }
        None => canonical(text).map(|l| (l, false)),
    }
}

/// Text form of canonical labels, without the trailing dot.
pub fn display(labels: &[Vec<u8>]) -> String {
    filter_common::dns::to_text(labels)
}

/// The Unicode form of a name, when it has A-labels; for reports only.
pub fn unicode(labels: &[Vec<u8>]) -> Option<String> {
    let text = display(labels);
    if !text.split('.').any(|l| l.starts_with("xn--")) {
        return None;
    }
    let (u, r) = idna::domain_to_unicode(&text);
    r.ok().map(|()| u)
}

/// Whether the name is a public suffix (`com`, `co.uk`, `blogspot.com`), per the Public Suffix
/// List compiled into the binary. Single-label names count as suffixes.
pub fn is_public_suffix(labels: &[Vec<u8>]) -> bool {
    if labels.len() <= 1 {
        return true;
    }
    let text = display(labels);
    match psl::suffix(text.as_bytes()) {
        Some(s) => s.as_bytes().len() == text.len(),
        None => false,
    }
}

/// Whether `name` equals `ancestor` or lies below it (labels most specific first).
pub fn is_at_or_below(name: &[Vec<u8>], ancestor: &[Vec<u8>]) -> bool {
    name.len() >= ancestor.len() && name.iter().rev().zip(ancestor.iter().rev()).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        display(&canonical(s).unwrap())
    }

    #[test]
    fn case_dot_and_idn() {
        assert_eq!(c("AlloStreaming.COM."), "allostreaming.com");
        assert_eq!(c("Bücher.example"), "xn--bcher-kva.example");
        assert_eq!(c("ÉCOLE.fr."), "xn--cole-9oa.fr");
        assert_eq!(c("_dmarc.example.com"), "_dmarc.example.com");
        assert_eq!(unicode(&canonical("xn--bcher-kva.example").unwrap()).as_deref(), Some("bücher.example"));
        assert!(canonical("").is_err());
        assert!(canonical(".").is_err());
        assert!(canonical("a..b").is_err());
        assert!(canonical(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn wildcard_patterns() {
        let (l, w) = canonical_pattern("*.Example.org").unwrap();
        assert_eq!((display(&l).as_str(), w), ("example.org", true));
        assert!(!canonical_pattern("example.org").unwrap().1);
        assert!(canonical_pattern("a.*.org").is_err());
        assert!(canonical_pattern("*example.org").is_err());
    }

    #[test]
    fn public_suffixes() {
        for s in ["com", "fr", "co.uk", "gouv.fr", "blogspot.com"] {
            assert!(is_public_suffix(&canonical(s).unwrap()), "{s}");
        }
        for s in ["allostreaming.com", "google.fr", "bbc.co.uk"] {
            assert!(!is_public_suffix(&canonical(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn below() {
        let a = canonical("example.com").unwrap();
        assert!(is_at_or_below(&canonical("a.example.com").unwrap(), &a));
        assert!(is_at_or_below(&a, &a));
        assert!(!is_at_or_below(&canonical("aexample.com").unwrap(), &a));
        assert!(!is_at_or_below(&canonical("com").unwrap(), &a));
    }
}
