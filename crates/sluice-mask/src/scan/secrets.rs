//! Detectors anchored on structure: email addresses, passwords in URLs and
//! `password=` pairs, PEM private keys, JWTs, `Bearer`/`Basic` credentials.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::{is_alnum, run, word_start};

fn local_char(b: u8) -> bool {
    is_alnum(b) || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn domain_char(b: u8) -> bool {
    is_alnum(b) || b == b'.' || b == b'-'
}

/// Email around the `@` at `at`: a local part of `[A-Za-z0-9._%+-]` (1-64,
/// not starting or ending with a dot), a domain of at least two labels and a
/// top-level domain of two or more letters. An `@` inside a URL authority
/// (`postgres://user:pw@host`) is a password separator, not an email.
pub(super) fn email(s: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut start = at;
    while start > 0 && at - start < 64 && local_char(s[start - 1]) {
        start -= 1;
    }
    if start == at || s[start] == b'.' || s[at - 1] == b'.' {
        return None;
    }
    if in_url_authority(s, start) {
        return None;
    }
    let mut end = at + 1 + run(s, at + 1, domain_char);
    while end > at + 1 && matches!(s[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &s[at + 1..end];
    if domain.len() < 4 || domain.len() > 253 || domain[0] == b'.' || domain[0] == b'-' {
        return None;
    }
    let mut labels = 0;
    let mut tld: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || label.len() > 63 || label.ends_with(b"-") {
            return None;
        }
        labels += 1;
        tld = label;
    }
    let tld_ok = tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic);
    (labels >= 2 && tld_ok).then_some((start, end))
}

/// Whether `i` lies in the authority (`user:pw@host`) of a URL that starts
/// earlier in the same whitespace-delimited token.
fn in_url_authority(s: &[u8], i: usize) -> bool {
    let token_start = s[..i]
        .iter()
        .rposition(|b| b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let token = &s[token_start..i];
    match memchr::memmem::rfind(token, b"://") {
        Some(p) => !token[p + 3..]
            .iter()
            .any(|b| matches!(b, b'/' | b'?' | b'#')),
        None => false,
    }
}

/// The password of `scheme://user:password@host`, the anchor being `://`.
/// The authority ends at `/`, `?`, `#` or a space; the last `@` in it ends
/// the password (an unencoded `@` inside a password is common).
pub(super) fn url_password(s: &[u8], sep: usize) -> Option<(usize, usize)> {
    let scheme = s[..sep]
        .iter()
        .rev()
        .take_while(|&&b| is_alnum(b) || matches!(b, b'+' | b'.' | b'-'))
        .count();
    if scheme < 2 || !s[sep - scheme].is_ascii_alphabetic() {
        return None;
    }
    let auth_start = sep + 3;
    let auth_len = run(s, auth_start, |b| {
        !matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\')
            && !b.is_ascii_whitespace()
    });
    let authority = &s[auth_start..auth_start + auth_len];
    let at = memchr::memrchr(b'@', authority)?;
    let colon = memchr::memchr(b':', &authority[..at])?;
    (colon + 1 < at).then_some((auth_start + colon + 1, auth_start + at))
}

/// `password=...`, `pwd = '...'`, `"password": "..."`, `Key (password)=(...)`:
/// the value after a password key word, up to the closing quote or
/// parenthesis, or the next space, `;`, `&` or `,`.
pub(super) fn password_pair(s: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if start > 0 && s[start - 1].is_ascii_alphabetic() {
        return None;
    }
    let mut j = end;
    if matches!(s.get(j), Some(b'"' | b'\'' | b')')) {
        j += 1;
    }
    j += run(s, j, |b| b == b' ');
    if !matches!(s.get(j), Some(b'=' | b':')) {
        return None;
    }
    j += 1;
    j += run(s, j, |b| b == b' ');
    let close = match s.get(j) {
        Some(&q @ (b'"' | b'\'')) => Some(q),
        Some(b'(') => Some(b')'),
        _ => None,
    };
    match close {
        Some(q) => {
            let v = j + 1;
            let n = memchr::memchr(q, s.get(v..)?).unwrap_or(s.len() - v);
            (n > 0).then_some((v, v + n))
        }
        None => {
            let n = run(s, j, |b| {
                !b.is_ascii_whitespace()
                    && !matches!(b, b';' | b'&' | b',' | b'"' | b'\'' | b')' | b'}' | b']')
            });
            (n > 0).then_some((j, j + n))
        }
    }
}

/// Whether `s[i..]` starts with `[A-Z ]*PRIVATE KEY-----`; returns its end.
fn private_key_label(s: &[u8], i: usize) -> Option<usize> {
    let n = run(s, i, |b| b.is_ascii_uppercase() || b == b' ');
    let label = &s[i..i + n];
    let tail = b"PRIVATE KEY";
    if !label.ends_with(tail) || !s[i + n..].starts_with(b"-----") {
        return None;
    }
    Some(i + n + 5)
}

/// A PEM private key block, from `-----BEGIN ... PRIVATE KEY-----` to the
/// matching END line, or to the end of the value when it is cut off.
pub(super) fn private_key(s: &[u8], start: usize) -> Option<(usize, usize)> {
    let body = private_key_label(s, start + 10)?;
    let mut from = body;
    while let Some(p) = memchr::memmem::find(&s[from..], b"-----END") {
        let e = from + p;
        if let Some(end) = private_key_label(s, e + 8) {
            return Some((start, end));
        }
        from = e + 8;
    }
    Some((start, s.len()))
}

fn b64url(b: u8) -> bool {
    is_alnum(b) || b == b'_' || b == b'-'
}

const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A JWT: `eyJ<header>.eyJ<payload>.<signature>`, whose header decodes to a
/// JSON object with an `alg` member.
pub(super) fn jwt(s: &[u8], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (b64url(s[i - 1]) || s[i - 1] == b'.') {
        return None;
    }
    let h = run(s, i, b64url);
    let p = i + h + 1;
    if s.get(i + h) != Some(&b'.') || !s.get(p..)?.starts_with(b"eyJ") {
        return None;
    }
    let pl = run(s, p, b64url);
    let g = p + pl + 1;
    if s.get(p + pl) != Some(&b'.') {
        return None;
    }
    // An empty signature is an unsecured (`alg: none`) token, still a token.
    let sig = run(s, g, b64url);
    let header = B64URL.decode(&s[i..i + h]).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).ok()?;
    header.contains_key("alg").then_some((i, g + sig))
}

fn token68(b: u8) -> bool {
    is_alnum(b) || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// `Bearer <token>` with a token of at least 16 characters.
pub(super) fn bearer(s: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if !word_start(s, start) {
        return None;
    }
    let sp = run(s, end, |b| b == b' ' || b == b'\t');
    if sp == 0 {
        return None;
    }
    let t = end + sp;
    let n = run(s, t, token68);
    (n >= 16).then_some((t, t + n))
}

/// `Basic <base64 of user:password>` (HTTP basic credentials); the token must
/// decode to text with a colon, so the English word "basic" never matches.
pub(super) fn basic(s: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if !word_start(s, start) || s.get(end) != Some(&b' ') {
        return None;
    }
    let t = end + 1 + run(s, end + 1, |b| b == b' ');
    let n = run(s, t, |b| is_alnum(b) || matches!(b, b'+' | b'/' | b'='));
    if n < 8 {
        return None;
    }
    let decoded = STANDARD.decode(&s[t..t + n]).ok()?;
    (decoded.contains(&b':') && std::str::from_utf8(&decoded).is_ok()).then_some((t, t + n))
}
