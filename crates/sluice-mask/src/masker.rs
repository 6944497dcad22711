//! The masker: column decisions once per result column, value masking per value.

use std::sync::Arc;

use crate::column::{ColumnInfo, ColumnMask, ColumnRule};
use crate::describe::{ColumnDescription, Description};
use crate::json::JsonMasker;
use crate::keyname::KeyNames;
use crate::scan::{Scanner, Span};
use crate::style::Redactor;
use crate::{DetectorSet, MaskConfig, MaskError, Masked, Style, ValueKind};

/// The compiled configuration shared by every clone of a [`Masker`].
pub(crate) struct Engine {
    pub(crate) scanner: Scanner,
    pub(crate) redactor: Redactor,
    pub(crate) style: Style,
    pub(crate) key_names: KeyNames,
    detectors: DetectorSet,
    columns: Vec<(ColumnRule, String)>,
    key_names_list: Vec<String>,
    key_named_columns: bool,
    hash_key_set: bool,
}

impl Engine {
    /// Copies `s` to `out` with every span replaced by its token.
    pub(crate) fn redact(&self, s: &[u8], spans: &[Span], out: &mut Vec<u8>) {
        let mut copied = 0;
        for span in spans {
            out.extend_from_slice(&s[copied..span.start]);
            self.redactor
                .detector_token(out, span.detector, &s[span.start..span.end], self.style);
            copied = span.end;
        }
        out.extend_from_slice(&s[copied..]);
    }
}

/// Decides and performs the redaction of values. Cloning is cheap (the
/// compiled configuration is shared), and it is `Send + Sync`, so one masker
/// serves every session.
#[derive(Clone)]
pub struct Masker {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("description", &self.describe())
            .finish()
    }
}

impl Masker {
    /// Compiles the configuration. Fails when a hash style has no key.
    pub fn new(config: MaskConfig) -> Result<Masker, MaskError> {
        let hash_key_set = config.hmac_key.as_ref().is_some_and(|k| !k.is_empty());
        let uses_hash = config.style == Style::Hash
            || config.columns.iter().any(|r| r.style == Some(Style::Hash));
        if uses_hash && !hash_key_set {
            return Err(MaskError::HashWithoutKey);
        }
        let scanner = Scanner::new(config.detectors).map_err(|_| MaskError::BadPattern {
            pattern: "<detector anchors>".into(),
            reason: "the detector automaton could not be built",
        })?;
        let columns = config
            .columns
            .iter()
            .map(|r| (r.clone(), r.pattern.to_string()))
            .collect();
        Ok(Masker {
            engine: Arc::new(Engine {
                scanner,
                redactor: Redactor::new(config.hmac_key),
                style: config.style,
                key_names: KeyNames::new(&config.key_names),
                detectors: config.detectors,
                columns,
                key_names_list: config.key_names,
                key_named_columns: config.key_named_columns,
                hash_key_set,
            }),
        })
    }

    /// Whether a rule names a table (`schema.table.column`): such rules need
    /// the column's source table, which only the catalog gives.
    pub fn has_table_rules(&self) -> bool {
        self.engine
            .columns
            .iter()
            .any(|(r, _)| matches!(r.pattern, crate::ColumnPattern::Qualified { .. }))
    }

    /// Whether any rule can mask a whole column (then a value whose column
    /// is not known cannot be judged by content alone).
    pub fn has_column_rules(&self) -> bool {
        !self.engine.columns.is_empty() || self.engine.key_named_columns
    }

    /// Whether a whole result column is masked: the first column rule that
    /// matches, else (when `key_named_columns` is on) a column whose name
    /// contains a secret key name (`password_hash`, `api_key`).
    pub fn column(&self, col: &ColumnInfo<'_>) -> Option<ColumnMask> {
        let e = &self.engine;
        if let Some((rule, text)) = e.columns.iter().find(|(r, _)| r.pattern.matches(col)) {
            return Some(ColumnMask {
                rule: text.clone(),
                style: rule.style.unwrap_or(Style::Full),
            });
        }
        if e.key_named_columns {
            if let Some(name) = e.key_names.find(col.name) {
                return Some(ColumnMask {
                    rule: format!("key_name:{name}"),
                    style: Style::Full,
                });
            }
        }
        None
    }

    /// Masks one value of a column whose decision is `column`.
    ///
    /// Invalid UTF-8 in a `Text` value does not stop the detectors (they work
    /// on bytes), so a secret next to a bad byte is still redacted.
    pub fn mask<'a>(
        &self,
        value: &'a [u8],
        kind: ValueKind,
        column: Option<&ColumnMask>,
    ) -> Masked<'a> {
        let e = &self.engine;
        if let Some(col) = column {
            return match kind {
                ValueKind::Opaque => Masked::Null(DetectorSet::none()),
                ValueKind::Text => Masked::Replaced(
                    e.redactor.column_token(value, col.style),
                    DetectorSet::none(),
                ),
                ValueKind::Json => {
                    let mut token = vec![b'"'];
                    token.extend(e.redactor.column_token(value, col.style));
                    token.push(b'"');
                    Masked::Replaced(token, DetectorSet::none())
                }
            };
        }
        match kind {
            ValueKind::Opaque => {
                let mut spans = Vec::new();
                let hits = e.scanner.scan(value, &mut spans);
                if spans.is_empty() {
                    Masked::Unchanged(value)
                } else {
                    Masked::Null(hits)
                }
            }
            ValueKind::Json if self.json_is_clean(value) => Masked::Unchanged(value),
            ValueKind::Json => match JsonMasker::new(e, value).run() {
                Some((None, _)) => Masked::Unchanged(value),
                Some((Some(out), hits)) => Masked::Replaced(out, hits),
                None => self.mask_bytes(value),
            },
            ValueKind::Text => self.mask_bytes(value),
        }
    }

    /// Fast path for the common clean document: no escapes (so string
    /// contents are the raw bytes), no key name anywhere, and nothing any
    /// detector could find in any of its values.
    fn json_is_clean(&self, value: &[u8]) -> bool {
        let e = &self.engine;
        memchr::memchr(b'\\', value).is_none()
            && !e.key_names.may_occur_in(value)
            && !e.scanner.may_find_in_document(value, &mut Vec::new())
    }

    fn mask_bytes<'a>(&self, value: &'a [u8]) -> Masked<'a> {
        let mut spans = Vec::new();
        let hits = self.engine.scanner.scan(value, &mut spans);
        if spans.is_empty() {
            return Masked::Unchanged(value);
        }
        let mut out = Vec::with_capacity(value.len() + 16);
        self.engine.redact(value, &spans, &mut out);
        Masked::Replaced(out, hits)
    }

    /// Masks free text that is not a column value (error and notice fields,
    /// NOTIFY payloads, COPY lines): detectors only. `None` = unchanged.
    pub fn mask_text(&self, text: &str) -> Option<String> {
        match self.mask_bytes(text.as_bytes()) {
            Masked::Replaced(out, _) => Some(String::from_utf8_lossy(&out).into_owned()),
            _ => None,
        }
    }

    /// What this masker does, for `sluice policy check` and logs.
    pub fn describe(&self) -> Description {
        let e = &self.engine;
        Description {
            detectors: e.detectors.iter().map(|d| d.name()).collect(),
            style: e.style,
            columns: e
                .columns
                .iter()
                .map(|(r, text)| ColumnDescription {
                    rule: text.clone(),
                    style: r.style.unwrap_or(Style::Full),
                })
                .collect(),
            key_names: e.key_names_list.clone(),
            key_named_columns: e.key_named_columns,
            hash_key_set: e.hash_key_set,
        }
    }
}
