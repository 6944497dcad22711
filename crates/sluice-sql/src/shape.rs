//! Statements that differ only in their literals share one classification.
//!
//! `pgbench -M simple`, ORMs without server-side prepare and most scripts
//! inline their values, so every statement is a new text and a miss in the
//! exact-text cache: a full parse, walk and fingerprint each time. Here the
//! text is first run through PostgreSQL's own scanner (`pg_query`'s, the one
//! the parser uses, without the protobuf round trip) and keyed by its
//! *shape*: the text with the content of every literal token replaced by a
//! NUL byte and the token's kind. A NUL cannot occur in a query string (the
//! scanner refuses it), so no real text collides with a key.
//!
//! Why two texts with the same shape cannot differ in anything policy looks
//! at. Same key means the same bytes outside literals, so the same token
//! sequence with the same token kinds (the scanner decides a literal's end
//! by its own bytes, and `standard_conforming_strings` is pinned on by the
//! gateway, so a literal cannot swallow or expose the text after it). The
//! grammar sees only token kinds, except where an action reads a literal's
//! value; a shape is remembered only when that cannot matter:
//!
//! - the string holds one SELECT, INSERT, UPDATE or DELETE;
//! - every literal token became an `A_Const` node at its own position (or a
//!   negative constant at its `-`): a literal the grammar consumed itself
//!   (`float(30)` picking a type, `FETCH 5`, a `DefElem` string) is not one,
//!   so such a statement is never shared;
//! - the walk read no constant's value (it reads only `set_config`'s first
//!   argument), and the fingerprint ignores constants' values by design.
//!
//! So the two trees differ only in `A_Const` values, and classification is a
//! function of the tree without them. `UESCAPE` (whose literal decides how
//! another literal decodes) makes a text unshaped. A shape hit copies the
//! remembered statement with its text cut from the new string: the prefix
//! and suffix around the statement hold no literal, so their lengths match.

use crate::cache::Cache;
use pg_query::protobuf::Token;
use sluice_core::Statement;
use std::sync::Arc;

/// A query string's shape key and where its literals are.
pub(crate) struct Shape {
    pub key: String,
    /// Start of each literal token, or of the `-` right before it.
    literals: Vec<(i32, Option<i32>)>,
    /// First and last byte offset covered by a literal.
    span: Option<(usize, usize)>,
}

fn literal_kind(token: i32) -> Option<u8> {
    match Token::try_from(token).ok()? {
        Token::Sconst => Some(b's'),
        Token::Fconst => Some(b'f'),
        Token::Iconst => Some(b'i'),
        Token::Bconst => Some(b'b'),
        Token::Xconst => Some(b'x'),
        _ => None,
    }
}

impl Shape {
    /// The shape of `sql`, or `None` when the scanner refuses it (the full
    /// parse reports why) or it has no literal (the exact-text cache serves
    /// it) or a literal whose meaning depends on another (`U&'...' UESCAPE`).
    pub fn of(sql: &str) -> Option<Shape> {
        // `pg_query::scan_tokens` builds a slice from a null pointer when the
        // scanner finds no token (an empty or comment-only string): only a
        // string that starts with a letter (a keyword, so at least one token)
        // is scanned. Every shareable statement starts with one.
        if !sql
            .trim_start()
            .starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return None;
        }
        let tokens = pg_query::scan_tokens(sql).ok()?;
        let mut key = String::with_capacity(sql.len());
        let mut literals = Vec::new();
        let mut span: Option<(usize, usize)> = None;
        let mut copied = 0usize;
        let mut previous_minus: Option<i32> = None;
        for t in &tokens {
            if matches!(
                Token::try_from(t.token),
                Ok(Token::Usconst | Token::Uescape | Token::Uident)
            ) {
                return None;
            }
            let minus = matches!(Token::try_from(t.token), Ok(Token::Ascii45));
            if let Some(kind) = literal_kind(t.token) {
                let start = usize::try_from(t.start).ok()?;
                let end = usize::try_from(t.end).ok()?;
                key.push_str(sql.get(copied..start)?);
                key.push('\0');
                key.push(char::from(kind));
                copied = end;
                literals.push((t.start, previous_minus));
                span = Some(match span {
                    Some((first, _)) => (first, end),
                    None => (start, end),
                });
            }
            previous_minus = minus.then_some(t.start);
        }
        span?;
        key.push_str(sql.get(copied..)?);
        Some(Shape {
            key,
            literals,
            span,
        })
    }
}

/// A statement remembered for its shape: its text is cut from each string.
pub(crate) struct Template {
    statement: Statement,
    /// Bytes before and after the statement's text in the string.
    prefix: usize,
    suffix: usize,
}

impl Template {
    /// A template when `statement` (the one statement of `sql`) may be shared
    /// by texts of `shape`: `constants` are the `A_Const` locations of its
    /// tree, `None` when the classifier found a reason not to share it.
    pub fn new(
        shape: &Shape,
        sql: &str,
        statement: &Statement,
        text_at: usize,
        constants: &[i32],
    ) -> Option<Template> {
        let every_literal_is_a_constant = shape.literals.iter().all(|(start, minus)| {
            constants.contains(start) || minus.is_some_and(|m| constants.contains(&m))
        });
        let (first, last) = shape.span?;
        let text_end = text_at.checked_add(statement.text.len())?;
        if !every_literal_is_a_constant || first < text_at || last > text_end {
            return None;
        }
        Some(Template {
            statement: statement.clone(),
            prefix: text_at,
            suffix: sql.len().checked_sub(text_end)?,
        })
    }

    /// The statement for `sql`, a string of this template's shape.
    fn instantiate(&self, sql: &str) -> Option<Statement> {
        let text = sql.get(self.prefix..sql.len().checked_sub(self.suffix)?)?;
        let mut statement = self.statement.clone();
        text.clone_into(&mut statement.text);
        Some(statement)
    }
}

/// Shape key → template.
pub(crate) struct Shapes {
    cache: Cache<Arc<Template>>,
}

impl Shapes {
    pub fn new(entries: usize) -> Shapes {
        Shapes {
            cache: Cache::new(entries),
        }
    }

    pub fn get(&self, shape: &Shape, sql: &str) -> Option<Statement> {
        self.cache.get(&shape.key)?.instantiate(sql)
    }

    pub fn insert(&self, shape: &Shape, template: Template) {
        self.cache.insert(&shape.key, Arc::new(template));
    }
}
