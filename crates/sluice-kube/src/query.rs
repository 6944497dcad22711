//! The query string as the API server's Go code reads it
//! (`url.ParseQuery`, then apimachinery's parameter conversions).

use crate::info::BadTarget;

/// The decoded `key=value` pairs, in order.
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes `application/x-www-form-urlencoded`. Refuses `;` (Go drops
    /// such pairs, other readers split on them) and malformed escapes (Go
    /// drops the pair: what Sluice decided on would not be what ran).
    pub(crate) fn parse(query: &str) -> Result<Query, BadTarget> {
        if query.contains(';') {
            return Err(BadTarget("the query contains ';'".into()));
        }
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((unescape(k)?, unescape(v)?));
        }
        Ok(Query { pairs })
    }

    /// The first value of `key`.
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// apimachinery's string-to-bool conversion: the first value, false
    /// only for `0` and (any case) `false`; present with any other value,
    /// the empty one included, it is true.
    pub(crate) fn flag(&self, key: &str) -> bool {
        match self.first(key) {
            None => false,
            Some(v) => !(v == "0" || v.eq_ignore_ascii_case("false")),
        }
    }

    pub(crate) fn watch(&self) -> bool {
        self.flag("watch")
    }

    /// `dryRun=All` (the only value the API server accepts; any other makes
    /// it refuse the request, so it is not a dry run Sluice can count on).
    pub(crate) fn dry_run(&self) -> bool {
        let values = self.all("dryRun");
        !values.is_empty() && values.iter().all(|v| v == "All")
    }

    /// The object a list names by `fieldSelector=metadata.name=X`, read as
    /// `fields.ParseSelector` and `RequiresExactMatch` do.
    pub(crate) fn field_selector_name(&self) -> Option<String> {
        let selector = self.first("fieldSelector")?;
        let name = exact_match(selector, "metadata.name")?;
        let valid = name != "." && name != ".." && !name.contains(['/', '%']);
        valid.then_some(name)
    }
}

/// The value of an `=`/`==` term on `field` in a field selector; `None`
/// when the selector does not parse (the API server then ignores it for
/// naming the object).
fn exact_match(selector: &str, field: &str) -> Option<String> {
    let mut terms = split_terms(selector);
    // Go sorts the terms before it looks: with two terms on the field the
    // smaller one names the object.
    terms.sort_unstable();
    let mut found = None;
    for term in terms.into_iter().filter(|t| !t.is_empty()) {
        let (lhs, op, rhs) = split_term(term)?;
        let value = unescape_value(rhs)?;
        if found.is_none() && lhs == field && op != "!=" {
            found = Some(value);
        }
    }
    found
}

/// Splits on commas not escaped by a backslash.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// The first `!=`, `==` or `=` (in that preference at each position).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

/// `\\`, `\,` and `\=` are escapes; an unescaped `,` or `=`, or any other
/// escape, fails the whole selector.
fn unescape_value(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return None;
            }
            out.push(c);
            in_slash = false;
        } else {
            match c {
                '\\' => in_slash = true,
                ',' | '=' => return None,
                c => out.push(c),
            }
        }
    }
    (!in_slash).then_some(out)
}

/// Form decoding: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn unescape(s: &str) -> Result<String, BadTarget> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        BadTarget(format!("malformed escape in the query near {s:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| BadTarget("the query is not UTF-8 once decoded".into()))
}
