//! Reading, parsing and validating policy files.
//!
//! Cedar names parsed policies `policy0..` per file, which means nothing to an
//! operator and collides across files, so every policy is re-added under its
//! `@id`. Problems are collected rather than returned at the first one, so a
//! single `sluice policy validate` run shows everything to fix.

use crate::annotations::{policy_meta, PolicyMeta};
use crate::error::{PolicyError, Problem, ProblemKind};
use cedar_policy::{PolicyId, ValidationMode, Validator};
use miette::Diagnostic;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The outcome of compiling all sources: the Cedar set keyed by `@id`, the
/// per-policy metadata, and the validator's warnings (not fatal).
pub(crate) struct Compiled {
    pub policies: cedar_policy::PolicySet,
    pub meta: HashMap<PolicyId, PolicyMeta>,
    pub ids: Vec<String>,
    pub warnings: Vec<Problem>,
}

/// Expands the patterns (relative to `base_dir`) into files, in pattern
/// order, each pattern's matches sorted, without repeats.
pub(crate) fn expand(base_dir: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, PolicyError> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            pattern.clone()
        } else {
            // Escape the base directory: a `[` in it is a path, not a glob.
            let base = glob::Pattern::escape(&base_dir.to_string_lossy());
            format!("{}/{}", base.trim_end_matches('/'), pattern)
        };
        let paths = glob::glob(&full).map_err(|e| PolicyError::Pattern {
            pattern: pattern.clone(),
            message: e.to_string(),
        })?;
        let mut matched: Vec<PathBuf> = Vec::new();
        for entry in paths {
            let path = entry.map_err(|e| PolicyError::Io {
                path: e.path().to_path_buf(),
                source: std::io::Error::new(e.error().kind(), e.error().to_string()),
            })?;
            if path.is_dir() {
                continue;
            }
            matched.push(path);
        }
        if matched.is_empty() {
            return Err(PolicyError::NoMatch {
                pattern: pattern.clone(),
                base: base_dir.to_path_buf(),
            });
        }
        matched.sort();
        for path in matched {
            if seen.insert(path.clone()) {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// Parses every source, checks annotations and ids, then validates the whole
/// set against the schema. `sources` are `(file name, text)`.
pub(crate) fn compile(
    sources: &[(String, String)],
    validator: &Validator,
) -> Result<Compiled, PolicyError> {
    let mut problems = Vec::new();
    let mut policies = cedar_policy::PolicySet::new();
    let mut meta: HashMap<PolicyId, PolicyMeta> = HashMap::new();
    let mut ids = Vec::new();
    // @id -> (source index, byte offset), to place validation errors and
    // duplicate-id reports.
    let mut origin: HashMap<String, (usize, usize)> = HashMap::new();

    for (src_idx, (file, text)) in sources.iter().enumerate() {
        let parsed = match cedar_policy::PolicySet::from_str(text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                for e in errors.iter() {
                    let offset = first_label_offset(e);
                    problems.push(problem(
                        ProblemKind::Parse,
                        file,
                        text,
                        offset,
                        None,
                        e.to_string(),
                        help(e),
                    ));
                }
                continue;
            }
        };
        let starts = policy_starts(text);
        let start_of = |id: &PolicyId| -> Option<usize> {
            let id: &str = id.as_ref();
            let n: usize = id.strip_prefix("policy")?.parse().ok()?;
            starts.get(n).copied()
        };
        for t in parsed.templates() {
            let msg =
                "templates (`?principal`, `?resource`) are not supported; write a static policy"
                    .to_string();
            problems.push(problem(
                ProblemKind::Template,
                file,
                text,
                start_of(t.id()),
                None,
                msg,
                None,
            ));
        }
        for p in parsed.policies() {
            let at = start_of(p.id());
            let annotations: Vec<(&str, &str)> = p.annotations().collect();
            let m = match policy_meta(&annotations, p.effect(), ids.len()) {
                Ok(m) => m,
                Err((kind, id, msg)) => {
                    problems.push(problem(kind, file, text, at, id, msg, None));
                    continue;
                }
            };
            if let Err(msg) = crate::unmask::check(&m, p) {
                let kind = ProblemKind::BadAnnotation;
                problems.push(problem(kind, file, text, at, Some(m.id), msg, None));
                continue;
            }
            if let Some(&(first_src, first_off)) = origin.get(&m.id) {
                let first =
                    sources
                        .get(first_src)
                        .map_or_else(String::new, |(first_file, first_text)| {
                            let (line, col) = line_col(first_text, first_off);
                            format!(" (first used at {first_file}:{line}:{col})")
                        });
                let msg = format!("duplicate @id `{}`{first}", m.id);
                problems.push(problem(
                    ProblemKind::DuplicateId,
                    file,
                    text,
                    at,
                    Some(m.id),
                    msg,
                    None,
                ));
                continue;
            }
            let new_id = PolicyId::new(&m.id);
            if let Err(e) = policies.add(p.new_id(new_id.clone())) {
                problems.push(problem(
                    ProblemKind::DuplicateId,
                    file,
                    text,
                    at,
                    Some(m.id),
                    e.to_string(),
                    None,
                ));
                continue;
            }
            origin.insert(m.id.clone(), (src_idx, at.unwrap_or(0)));
            ids.push(m.id.clone());
            meta.insert(new_id, m);
        }
    }

    // Validate what parsed, even if other policies had problems, so one run
    // reports schema errors too.
    let result = validator.validate(&policies, ValidationMode::Strict);
    let locate = |id: &PolicyId| {
        origin
            .get(AsRef::<str>::as_ref(id))
            .and_then(|&(s, off)| sources.get(s).map(|src| (src, off)))
    };
    for e in result.validation_errors() {
        if let Some(((file, text), start)) = locate(e.policy_id()) {
            let offset = first_label_offset(e).or(Some(start));
            let id = Some(e.policy_id().to_string());
            let msg = validator_message(e.policy_id(), e.to_string());
            problems.push(problem(
                ProblemKind::Validation,
                file,
                text,
                offset,
                id,
                msg,
                help(e),
            ));
        }
    }
    let mut warnings = Vec::new();
    for w in result.validation_warnings() {
        if let Some(((file, text), start)) = locate(w.policy_id()) {
            let offset = first_label_offset(w).or(Some(start));
            let id = Some(w.policy_id().to_string());
            let msg = validator_message(w.policy_id(), w.to_string());
            warnings.push(problem(
                ProblemKind::Validation,
                file,
                text,
                offset,
                id,
                msg,
                help(w),
            ));
        }
    }

    // The validator checks a policy once per action it may apply to and
    // repeats the same error for each; report it once.
    dedup(&mut problems);
    dedup(&mut warnings);
    if problems.is_empty() {
        Ok(Compiled {
            policies,
            meta,
            ids,
            warnings,
        })
    } else {
        Err(PolicyError::Invalid(problems))
    }
}

/// Merges repeats. Messages that differ only in the ` for Action::"..."`
/// they name are the same mistake seen under several actions (all
/// statement actions share one context type), so they are merged with that
/// part dropped.
fn dedup(problems: &mut Vec<Problem>) {
    let mut seen: HashMap<(String, usize, usize, String), usize> = HashMap::new();
    let mut merged: Vec<Problem> = Vec::with_capacity(problems.len());
    for p in problems.drain(..) {
        let key = (p.file.clone(), p.line, p.column, without_action(&p.message));
        match seen.get(&key) {
            Some(&i) => {
                if let Some(first) = merged.get_mut(i) {
                    if first.message != p.message {
                        first.message = key.3;
                    }
                }
            }
            None => {
                seen.insert(key, merged.len());
                merged.push(p);
            }
        }
    }
    *problems = merged;
}

fn without_action(message: &str) -> String {
    const MARK: &str = " for Action::\"";
    let Some(start) = message.find(MARK) else {
        return message.to_string();
    };
    let rest = &message[start + MARK.len()..];
    match rest.find('"') {
        Some(end) => format!("{}{}", &message[..start], &rest[end + 1..]),
        None => message.to_string(),
    }
}

fn problem(
    kind: ProblemKind,
    file: &str,
    text: &str,
    offset: Option<usize>,
    policy_id: Option<String>,
    message: String,
    help: Option<String>,
) -> Problem {
    let (line, column) = offset.map(|o| line_col(text, o)).unwrap_or((0, 0));
    Problem {
        kind,
        file: file.to_string(),
        line,
        column,
        policy_id,
        message,
        help,
    }
}

fn first_label_offset(d: &dyn Diagnostic) -> Option<usize> {
    d.labels()?.next().map(|l| l.offset())
}

/// Cedar's help, or else the primary label's text (for parse errors that is
/// what was expected, e.g. "expected `,`").
fn help(d: &dyn Diagnostic) -> Option<String> {
    d.help()
        .map(|h| h.to_string())
        .or_else(|| d.labels()?.next()?.label().map(str::to_string))
        .filter(|h| !h.is_empty())
}

/// Cedar prefixes validator messages with "for policy `<id>`, "; a
/// [`Problem`] shows the id already.
fn validator_message(id: &PolicyId, message: String) -> String {
    let prefix = format!("for policy `{id}`, ");
    message
        .strip_prefix(&prefix)
        .map(str::to_string)
        .unwrap_or(message)
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Byte offsets where each policy of a (syntactically valid) file starts: its
/// first annotation or its effect. Cedar's public API does not expose policy
/// source locations, and problems such as a missing `@id` need a line. A
/// policy ends at a `;` outside string literals and comments — Cedar has no
/// other use for `;` — so a small scanner is enough.
pub(crate) fn policy_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    let mut in_policy = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b if b.is_ascii_whitespace() => {}
            b'"' => {
                if !in_policy {
                    starts.push(i);
                    in_policy = true;
                }
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b';' if in_policy => in_policy = false,
            _ if !in_policy => {
                starts.push(i);
                in_policy = true;
            }
            _ => {}
        }
        i += 1;
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_skip_comments_and_strings() {
        let text = "// a; comment\n@id(\"a;b\")\npermit(principal, action, resource);\n\n  forbid(principal, action, resource) when { context.sql like \"x;\\\"y;\" };\n";
        let starts = policy_starts(text);
        assert_eq!(starts.len(), 2);
        assert_eq!(line_col(text, starts[0]), (2, 1));
        assert_eq!(line_col(text, starts[1]), (5, 3));
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("x", 99), (1, 2));
    }
}
