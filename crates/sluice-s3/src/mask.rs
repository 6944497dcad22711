//! Object bodies and listings masked as they stream, with the detectors
//! and column rules that mask rows: CSV by column (its header names the
//! columns), JSON documents whole (bounded), NDJSON and text line by line.
//! A body of a type Sluice cannot read is not masked: it is refused
//! before it is released (see `relay`).

use sluice_http::Lines;
use sluice_mask::{ColumnInfo, ColumnMask, Masker, ValueKind};
use std::sync::Arc;

/// How an object's body is read for masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Csv,
    Json,
    JsonLines,
    Text,
}

/// The kind of an object by its content type, and by its key's suffix
/// when the type says nothing (`application/octet-stream`, none).
/// `None`: Sluice cannot inspect it (binary, compressed, unknown).
pub fn kind_of(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    key: &str,
) -> Option<Kind> {
    if content_encoding.is_some_and(|e| !e.trim().is_empty() && !e.eq_ignore_ascii_case("identity"))
    {
        return None;
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let key = key.to_ascii_lowercase();
    let suffix = |s: &[&str]| s.iter().any(|x| key.ends_with(x));
    let lines_suffix = suffix(&[".ndjson", ".jsonl"]);
    match media.as_str() {
        "text/csv" | "application/csv" => Some(Kind::Csv),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines" => Some(Kind::JsonLines),
        "application/json" if lines_suffix => Some(Kind::JsonLines),
        "application/json" => Some(Kind::Json),
        m if m.starts_with("text/") => Some(if suffix(&[".csv"]) {
            Kind::Csv
        } else {
            Kind::Text
        }),
        "" | "application/octet-stream" | "binary/octet-stream" => {
            if suffix(&[".csv"]) {
                Some(Kind::Csv)
            } else if lines_suffix {
                Some(Kind::JsonLines)
            } else if suffix(&[".json"]) {
                Some(Kind::Json)
            } else if suffix(&[".txt", ".log", ".tsv", ".md", ".yaml", ".yml"]) {
                Some(Kind::Text)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Masks one object's body as it passes.
pub struct ObjectMasker {
    masker: Arc<Masker>,
    kind: Kind,
    lines: Lines,
    doc: Vec<u8>,
    max_doc: usize,
    csv: Csv,
}

impl ObjectMasker {
    pub fn new(masker: Arc<Masker>, kind: Kind, max_doc: usize) -> ObjectMasker {
        ObjectMasker {
            masker,
            kind,
            lines: Lines::default(),
            doc: Vec::new(),
            max_doc,
            csv: Csv::new(),
        }
    }

    /// Masked bytes ready to leave; `Err` ends the body (a JSON document
    /// over the bound, a line longer than it).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, String> {
        match self.kind {
            Kind::Json => {
                if self.doc.len() + chunk.len() > self.max_doc {
                    return Err(format!(
                        "a JSON object over {} bytes cannot be masked whole; not released",
                        self.max_doc
                    ));
                }
                self.doc.extend_from_slice(chunk);
                Ok(Vec::new())
            }
            Kind::Csv => self.csv.push(&self.masker, chunk, self.max_doc),
            Kind::Text | Kind::JsonLines => {
                let mut out = Vec::with_capacity(chunk.len());
                for line in self.lines.push(chunk) {
                    self.line(&line, &mut out);
                }
                if self.lines.pending() > self.max_doc {
                    return Err(format!("a line over {} bytes; not released", self.max_doc));
                }
                Ok(out)
            }
        }
    }

    pub fn finish(&mut self) -> Result<Vec<u8>, String> {
        match self.kind {
            Kind::Json => {
                let doc = std::mem::take(&mut self.doc);
                let m = self.masker.mask(&doc, ValueKind::Json, None);
                Ok(m.bytes().map_or_else(|| b"null".to_vec(), <[u8]>::to_vec))
            }
            Kind::Csv => self.csv.finish(&self.masker),
            Kind::Text | Kind::JsonLines => {
                let mut out = Vec::new();
                if let Some(rest) = self.lines.finish() {
                    self.line(&rest, &mut out);
                }
                Ok(out)
            }
        }
    }

    fn line(&self, line: &[u8], out: &mut Vec<u8>) {
        let body_len = line
            .iter()
            .rposition(|b| *b != b'\n' && *b != b'\r')
            .map_or(0, |i| i + 1);
        let (body, end) = line.split_at(body_len);
        let kind = match self.kind {
            Kind::JsonLines if !body.iter().all(u8::is_ascii_whitespace) => ValueKind::Json,
            _ => ValueKind::Text,
        };
        let m = self.masker.mask(body, kind, None);
        out.extend_from_slice(m.bytes().unwrap_or(b"null"));
        out.extend_from_slice(end);
    }
}

/// CSV records as they stream (csv-core: quotes and newlines inside
/// fields are read as CSV reads them), each field masked by its column.
struct Csv {
    reader: csv_core::Reader,
    fields: Vec<u8>,
    ends: Vec<usize>,
    out_len: usize,
    ends_len: usize,
    columns: Option<Vec<Option<ColumnMask>>>,
    crlf: Option<bool>,
}

impl Csv {
    fn new() -> Csv {
        Csv {
            reader: csv_core::Reader::new(),
            fields: vec![0; 4096],
            ends: vec![0; 64],
            out_len: 0,
            ends_len: 0,
            columns: None,
            crlf: None,
        }
    }

    fn push(&mut self, masker: &Masker, mut input: &[u8], max: usize) -> Result<Vec<u8>, String> {
        if self.crlf.is_none() {
            if let Some(i) = memchr::memchr(b'\n', input) {
                self.crlf = Some(i > 0 && input.get(i - 1) == Some(&b'\r'));
            }
        }
        let mut out = Vec::with_capacity(input.len() + 64);
        loop {
            let (res, nin, nout, nend) = self.reader.read_record(
                input,
                self.fields.get_mut(self.out_len..).unwrap_or_default(),
                self.ends.get_mut(self.ends_len..).unwrap_or_default(),
            );
            input = input.get(nin..).unwrap_or_default();
            self.out_len += nout;
            self.ends_len += nend;
            match res {
                csv_core::ReadRecordResult::InputEmpty => return Ok(out),
                csv_core::ReadRecordResult::OutputFull => {
                    if self.fields.len() > max {
                        return Err(format!("a CSV record over {max} bytes; not released"));
                    }
                    let n = self.fields.len() * 2;
                    self.fields.resize(n, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                csv_core::ReadRecordResult::Record => self.record(masker, &mut out),
                csv_core::ReadRecordResult::End => return Ok(out),
            }
        }
    }

    fn finish(&mut self, masker: &Masker) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            let (res, _, nout, nend) = self.reader.read_record(
                &[],
                self.fields.get_mut(self.out_len..).unwrap_or_default(),
                self.ends.get_mut(self.ends_len..).unwrap_or_default(),
            );
            self.out_len += nout;
            self.ends_len += nend;
            match res {
                csv_core::ReadRecordResult::Record => self.record(masker, &mut out),
                csv_core::ReadRecordResult::OutputFull => {
                    let n = self.fields.len() * 2;
                    self.fields.resize(n, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                _ => return Ok(out),
            }
        }
    }

    fn record(&mut self, masker: &Masker, out: &mut Vec<u8>) {
        let ends = self.ends.get(..self.ends_len).unwrap_or_default();
        let mut start = 0;
        let mut fields: Vec<&[u8]> = Vec::with_capacity(ends.len());
        for &end in ends {
            fields.push(self.fields.get(start..end).unwrap_or_default());
            start = end;
        }
        match &self.columns {
            None => {
                // The header names the columns; it is itself passed.
                let columns = fields
                    .iter()
                    .map(|f| {
                        let name = String::from_utf8_lossy(f);
                        masker.column(&ColumnInfo {
                            name: &name,
                            ..ColumnInfo::default()
                        })
                    })
                    .collect();
                write_record(out, fields.iter().map(|f| f.to_vec()), self.crlf);
                self.columns = Some(columns);
            }
            Some(columns) => {
                let masked = fields.iter().enumerate().map(|(i, f)| {
                    let col = columns.get(i).and_then(Option::as_ref);
                    masker
                        .mask(f, ValueKind::Text, col)
                        .bytes()
                        .map_or_else(Vec::new, <[u8]>::to_vec)
                });
                write_record(out, masked, self.crlf);
            }
        }
        self.out_len = 0;
        self.ends_len = 0;
    }
}

fn write_record(out: &mut Vec<u8>, fields: impl Iterator<Item = Vec<u8>>, crlf: Option<bool>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let quote = f.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
        if quote {
            out.push(b'"');
            for &b in &f {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(&f);
        }
    }
    out.extend_from_slice(if crlf == Some(true) { b"\r\n" } else { b"\n" });
}

/// A listing passed through the detectors: every element's text (keys,
/// prefixes, markers, continuation tokens: a key can be an email address
/// and reappears in `NextMarker`, `StartAfter`, ...), never the markup.
/// With `url_encoded` (`encoding-type=url`) the text is read decoded, as
/// the client will read it: `carol%40example.net` is an email address.
pub fn listing(masker: &Masker, xml: &[u8], url_encoded: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(gt) = memchr::memchr(b'>', rest) {
        let (tag, after) = rest.split_at(gt + 1);
        out.extend_from_slice(tag);
        let end = memchr::memchr(b'<', after).unwrap_or(after.len());
        let (text, tail) = after.split_at(end);
        let decoded = read_text(text, url_encoded);
        match masker.mask(&decoded, ValueKind::Text, None) {
            sluice_mask::Masked::Unchanged(_) => out.extend_from_slice(text),
            m => {
                let masked = m.bytes().unwrap_or_default();
                let encoded: Vec<u8>;
                let masked = if url_encoded {
                    encoded = percent_encoding::percent_encode(masked, KEY_SET)
                        .to_string()
                        .into_bytes();
                    &encoded[..]
                } else {
                    masked
                };
                for &b in masked {
                    match b {
                        b'&' => out.extend_from_slice(b"&amp;"),
                        b'<' => out.extend_from_slice(b"&lt;"),
                        b'>' => out.extend_from_slice(b"&gt;"),
                        _ => out.push(b),
                    }
                }
            }
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
    out
}

/// An element's text as the client reads it: XML entities resolved
/// (`&#64;` is `@`), then percent-decoded for a url-encoded listing.
/// Text that is not valid UTF-8 or has a broken entity is read as it is.
fn read_text(text: &[u8], url_encoded: bool) -> Vec<u8> {
    let unescaped = match std::str::from_utf8(text) {
        Ok(t) if t.contains('&') => quick_xml::escape::unescape(t)
            .map(|u| u.into_owned().into_bytes())
            .unwrap_or_else(|_| text.to_vec()),
        _ => text.to_vec(),
    };
    if url_encoded {
        percent_encoding::percent_decode(&unescaped).collect()
    } else {
        unescaped
    }
}

/// What S3 leaves unencoded in a url-encoded listing's keys.
const KEY_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::type_complexity)]
#[path = "mask_tests.rs"]
mod tests;
