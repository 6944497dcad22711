//! Key-name rules: JSON keys (and, by default, column names) that say the value
//! is a secret, whatever the value looks like (`"db_password": "hunter2"` has no
//! shape a content detector could recognise).
//!
//! Matching is by words, not raw substrings: `db_password`, `dbPassword` and
//! `PASSWORD_HASH` contain the word `password`, while `author` does not contain
//! the word `auth` and `tokens_used` does not contain `token`. Plain substring
//! matching would redact every `author` field.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};

/// The default key names (the secure default listed in the configuration docs).
pub const DEFAULT_KEY_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "secret_key",
    "private_key",
    "authorization",
    "auth",
    "credential",
    "credentials",
    "client_secret",
    "refresh_token",
    "access_token",
];

/// Precompiled key names: each as its word sequence.
#[derive(Debug, Clone)]
pub(crate) struct KeyNames {
    names: Vec<(String, Vec<String>)>,
    /// Case-insensitive substring prefilter: a key that contains none of the
    /// names (with separators removed) cannot match, and most keys are clean.
    prefilter: Option<AhoCorasick>,
}

impl KeyNames {
    pub(crate) fn new(names: &[String]) -> KeyNames {
        let names: Vec<(String, Vec<String>)> = names
            .iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| (n.trim().to_ascii_lowercase(), words(n.trim())))
            .collect();
        // Every word of a name must appear in a matching key, so its longest
        // word is a valid (and the most selective) prefilter literal.
        let literals: Vec<&str> = names
            .iter()
            .filter_map(|(_, w)| w.iter().max_by_key(|w| w.len()).map(String::as_str))
            .collect();
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(&literals)
            .ok();
        KeyNames { names, prefilter }
    }

    /// Whether `text` may contain a key name at all (used to skip the JSON
    /// walk of documents that cannot have a secret key).
    pub(crate) fn may_occur_in(&self, text: &[u8]) -> bool {
        !self.names.is_empty() && self.prefilter.as_ref().is_none_or(|p| p.is_match(text))
    }

    /// The configured name that `key` contains, if any.
    pub(crate) fn find(&self, key: &str) -> Option<&str> {
        if !self.may_occur_in(key.as_bytes()) {
            return None;
        }
        let key_words = words(key);
        let joined: String = key_words.concat();
        self.names.iter().find_map(|(name, name_words)| {
            let n = name_words.len();
            let by_words = n > 0 && key_words.windows(n).any(|w| w == name_words.as_slice());
            (by_words || joined == name_words.concat()).then_some(name.as_str())
        })
    }
}

/// Splits an identifier into lower-case words at non-alphanumerics and at
/// lower-to-upper case changes (`dbPassword` -> `db`, `password`).
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_numeric();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> KeyNames {
        KeyNames::new(
            &DEFAULT_KEY_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn key_names_match_as_words_in_any_case_style() {
        let k = defaults();
        assert_eq!(k.find("db_password"), Some("password"));
        assert_eq!(k.find("dbPassword"), Some("password"));
        assert_eq!(k.find("PASSWORD_HASH"), Some("password"));
        assert_eq!(k.find("accessToken"), Some("token"));
        assert!(k.find("APIKEY").is_some());
        assert_eq!(k.find("x-api-key"), Some("api_key"));
        assert_eq!(k.find("Authorization"), Some("authorization"));
        assert_eq!(k.find("aws_secret_access_key"), Some("secret"));
    }

    #[test]
    fn key_names_do_not_match_inside_other_words() {
        let k = defaults();
        assert_eq!(k.find("author"), None);
        assert_eq!(k.find("tokens_used"), None);
        assert_eq!(k.find("secretary"), None);
        assert_eq!(k.find("email"), None);
    }
}
