//! Masking inside JSON documents without re-serialising them.
//!
//! The document is walked once; only string (and number) tokens that hold
//! something sensitive, and values under secret key names, are rewritten.
//! Everything else is copied byte for byte, so key order, spacing and number
//! formatting survive (a `serde_json::Value` round trip would reorder keys
//! unless the whole workspace switched on `preserve_order`). `serde_json`
//! decodes and encodes the strings that contain escapes.
//! Any syntax error returns `None`, and the caller masks the value as text.

use crate::masker::Engine;
use crate::scan::Span;
use crate::{Detector, DetectorSet};

/// Deeper documents are masked as text rather than risking the stack.
const MAX_DEPTH: usize = 128;

pub(crate) struct JsonMasker<'e, 's> {
    engine: &'e Engine,
    s: &'s [u8],
    out: Vec<u8>,
    copied: usize,
    pub(crate) hits: DetectorSet,
    changed: bool,
    spans: Vec<Span>,
}

impl<'e, 's> JsonMasker<'e, 's> {
    pub(crate) fn new(engine: &'e Engine, s: &'s [u8]) -> Self {
        JsonMasker {
            engine,
            s,
            out: Vec::new(),
            copied: 0,
            hits: DetectorSet::none(),
            changed: false,
            spans: Vec::new(),
        }
    }

    /// Masks the document: `Some(None)` when nothing changed, `Some(Some(v))`
    /// with the rewritten document, `None` when it is not valid JSON.
    pub(crate) fn run(mut self) -> Option<(Option<Vec<u8>>, DetectorSet)> {
        let i = self.ws(0);
        let end = self.value(i, 0)?;
        if self.ws(end) != self.s.len() {
            return None;
        }
        if !self.changed {
            return Some((None, self.hits));
        }
        self.out.extend_from_slice(&self.s[self.copied..]);
        Some((Some(self.out), self.hits))
    }

    fn ws(&self, mut i: usize) -> usize {
        while i < self.s.len() && matches!(self.s[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }

    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        if self.out.capacity() == 0 {
            self.out.reserve(self.s.len() + 32);
        }
        self.out.extend_from_slice(&self.s[self.copied..start]);
        self.out.extend_from_slice(with);
        self.copied = end;
        self.changed = true;
    }

    fn value(&mut self, i: usize, depth: usize) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        match *self.s.get(i)? {
            b'{' => self.object(i, depth),
            b'[' => self.array(i, depth),
            b'"' => {
                let (end, escaped) = string_end(self.s, i)?;
                self.mask_string(i, end, escaped)?;
                Some(end)
            }
            _ => {
                let end = scalar_end(self.s, i)?;
                if self.s[i] == b'-' || self.s[i].is_ascii_digit() {
                    self.mask_number(i, end);
                }
                Some(end)
            }
        }
    }

    fn object(&mut self, i: usize, depth: usize) -> Option<usize> {
        let mut j = self.ws(i + 1);
        if self.s.get(j) == Some(&b'}') {
            return Some(j + 1);
        }
        loop {
            if self.s.get(j) != Some(&b'"') {
                return None;
            }
            let (key_end, escaped) = string_end(self.s, j)?;
            let secret_key = self.key_is_secret(j, key_end, escaped)?;
            self.mask_string(j, key_end, escaped)?;
            j = self.ws(key_end);
            if self.s.get(j) != Some(&b':') {
                return None;
            }
            j = self.ws(j + 1);
            j = if secret_key {
                self.redact_value(j, depth + 1)?
            } else {
                self.value(j, depth + 1)?
            };
            j = self.ws(j);
            match self.s.get(j) {
                Some(b',') => j = self.ws(j + 1),
                Some(b'}') => return Some(j + 1),
                _ => return None,
            }
        }
    }

    fn array(&mut self, i: usize, depth: usize) -> Option<usize> {
        let mut j = self.ws(i + 1);
        if self.s.get(j) == Some(&b']') {
            return Some(j + 1);
        }
        loop {
            j = self.value(j, depth + 1)?;
            j = self.ws(j);
            match self.s.get(j) {
                Some(b',') => j = self.ws(j + 1),
                Some(b']') => return Some(j + 1),
                _ => return None,
            }
        }
    }

    fn key_is_secret(&self, start: usize, end: usize, escaped: bool) -> Option<bool> {
        if escaped {
            let key: String = serde_json::from_slice(&self.s[start..end]).ok()?;
            Some(self.engine.key_names.find(&key).is_some())
        } else {
            let key = std::str::from_utf8(&self.s[start + 1..end - 1]).ok()?;
            Some(self.engine.key_names.find(key).is_some())
        }
    }

    /// Replaces the whole value under a secret key by a string token; `null`
    /// and booleans carry nothing and stay as they are.
    fn redact_value(&mut self, i: usize, depth: usize) -> Option<usize> {
        let end = skip_value(self.s, i, depth)?;
        let raw = &self.s[i..end];
        if matches!(raw, b"null" | b"true" | b"false") {
            return Some(end);
        }
        let content = if raw.first() == Some(&b'"') {
            &raw[1..raw.len() - 1]
        } else {
            raw
        };
        let mut token = vec![b'"'];
        self.engine.redactor.detector_token(
            &mut token,
            Detector::ConnectionPassword,
            content,
            self.engine.style,
        );
        token.push(b'"');
        self.replace(i, end, &token);
        Some(end)
    }

    /// Runs the detectors on one string literal `s[start..end]` (quotes included).
    fn mask_string(&mut self, start: usize, end: usize, escaped: bool) -> Option<()> {
        self.spans.clear();
        if !escaped {
            let content = &self.s[start + 1..end - 1];
            let hits = self.engine.scanner.scan(content, &mut self.spans);
            if !self.spans.is_empty() {
                self.hits = self.hits.union(hits);
                let mut buf = Vec::with_capacity(content.len() + 2);
                buf.push(b'"');
                self.engine.redact(content, &self.spans, &mut buf);
                buf.push(b'"');
                self.replace(start, end, &buf);
            }
            return Some(());
        }
        let text: String = serde_json::from_slice(&self.s[start..end]).ok()?;
        let hits = self.engine.scanner.scan(text.as_bytes(), &mut self.spans);
        if !self.spans.is_empty() {
            self.hits = self.hits.union(hits);
            let mut buf = Vec::with_capacity(text.len());
            self.engine.redact(text.as_bytes(), &self.spans, &mut buf);
            let masked = String::from_utf8_lossy(&buf);
            let literal = serde_json::to_string(&masked).ok()?;
            self.replace(start, end, literal.as_bytes());
        }
        Some(())
    }

    /// A number can be a card number; a hit turns it into a string token.
    fn mask_number(&mut self, start: usize, end: usize) {
        if end - start < 8 {
            return;
        }
        self.spans.clear();
        let raw = &self.s[start..end];
        let hits = self.engine.scanner.scan(raw, &mut self.spans);
        if !self.spans.is_empty() {
            self.hits = self.hits.union(hits);
            let mut buf = vec![b'"'];
            self.engine.redact(raw, &self.spans, &mut buf);
            buf.push(b'"');
            self.replace(start, end, &buf);
        }
    }
}

/// End (after the closing quote) of the string literal at `i`, and whether it
/// contains escapes.
fn string_end(s: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        let k = memchr::memchr2(b'"', b'\\', s.get(j..)?)?;
        j += k;
        if s[j] == b'"' {
            return Some((j + 1, escaped));
        }
        escaped = true;
        j += 2;
    }
}

/// End of a literal (`true`, `false`, `null`) or number at `i`.
fn scalar_end(s: &[u8], i: usize) -> Option<usize> {
    let n = s[i..]
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
        .count();
    let tok = &s[i..i + n];
    let ok = matches!(tok, b"true" | b"false" | b"null")
        || (n > 0
            && (tok[0] == b'-' || tok[0].is_ascii_digit())
            && tok
                .iter()
                .all(|&b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')));
    ok.then_some(i + n)
}

/// End of the value at `i`, without masking anything in it.
fn skip_value(s: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let ws = |mut j: usize| {
        while j < s.len() && matches!(s[j], b' ' | b'\t' | b'\n' | b'\r') {
            j += 1;
        }
        j
    };
    match *s.get(i)? {
        b'"' => string_end(s, i).map(|(e, _)| e),
        open @ (b'{' | b'[') => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut j = ws(i + 1);
            if s.get(j) == Some(&close) {
                return Some(j + 1);
            }
            loop {
                if open == b'{' {
                    if s.get(j) != Some(&b'"') {
                        return None;
                    }
                    j = ws(string_end(s, j)?.0);
                    if s.get(j) != Some(&b':') {
                        return None;
                    }
                    j = ws(j + 1);
                }
                j = ws(skip_value(s, j, depth + 1)?);
                match s.get(j) {
                    Some(b',') => j = ws(j + 1),
                    Some(&c) if c == close => return Some(j + 1),
                    _ => return None,
                }
            }
        }
        _ => scalar_end(s, i),
    }
}
