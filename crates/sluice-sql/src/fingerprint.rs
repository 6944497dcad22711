//! Sluice's own normalized statement fingerprint, computed from the parse
//! tree the classifier already has (no second parse).
//!
//! This is *not* `pg_query::fingerprint` (whose values differ and which
//! parses the text again): it is SHA-256 over a canonical encoding of the
//! statement's tree, truncated to 128 bits (32 hex digits). The encoding is
//! driven by the tree's `serde::Serialize` implementation (like the walk), so
//! every field of every node counts, except:
//!
//! - positions in the text (`location` and the other fields whose name ends
//!   in `location`, `stmt_len`, `list_start`/`list_end`): whitespace,
//!   comments and the statement's position in a multi-statement string do
//!   not matter;
//! - the contents of constants (`A_Const`: numbers, strings, booleans, NULL)
//!   and parameter numbers (`$1`, `$2`): only "a constant here" / "a
//!   parameter here" is encoded;
//! - in any list, an element whose encoding is identical to the previous
//!   element's is dropped, so `IN (1, 2, 3)` and `IN (1)`, or a multi-row
//!   `VALUES`, group together (as they do in `pg_query`'s fingerprint; a
//!   consequence is that `SELECT a, a` and `SELECT a` share one too).
//!
//! Keyword case is not in the tree at all; identifiers are as the parser
//! folded them (`Users` = `users`, but `"Users"` differs). Everything else —
//! node types, table, column and function names, operators, statement kind,
//! the order of list elements — changes the fingerprint.
//!
//! The encoding is compact (most fields are zero or empty) and prefix-free:
//! every value is tagged, integers are varints, strings carry their length,
//! lists and structs have end markers, and a oneof (`Node`) is its case
//! index. Struct fields always come in the same order with the same types,
//! so neither field nor struct names are needed: two different normalized
//! trees give two different byte strings. The value is stable across runs and machines; a
//! `pg_query` upgrade that changes the tree (a new PostgreSQL major version,
//! a new node type) may change it (`is_stable` in the tests pins one).
//!
//! Like the walk, the encoder recurses: it refuses trees nested deeper than
//! [`crate::walk::MAX_DEPTH`] and runs where the walk runs.

use crate::walk::MAX_DEPTH;
use serde::ser::{self, Serialize};
use sha2::{Digest, Sha256};

/// Why a fingerprint could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot fingerprint statement: {0}")]
pub(crate) struct FingerprintError(String);

impl ser::Error for FingerprintError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        FingerprintError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, FingerprintError>;

/// The fingerprint of one statement's tree (32 lower-case hex digits).
pub(crate) fn fingerprint<T: Serialize + ?Sized>(node: &T) -> Result<String> {
    fingerprint_with_limit(node, MAX_DEPTH)
}

pub(crate) fn fingerprint_with_limit<T: Serialize + ?Sized>(
    node: &T,
    max_depth: usize,
) -> Result<String> {
    let mut encoder = Encoder {
        out: Vec::with_capacity(1024),
        depth: 0,
        max_depth,
    };
    node.serialize(&mut encoder)?;
    let digest = Sha256::digest(&encoder.out);
    Ok(hex(digest.get(..16).unwrap_or_default()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

// Tags of the encoding.
const STRUCT: u8 = b'{';
const END_STRUCT: u8 = b'}';
const SEQ: u8 = b'[';
const END_SEQ: u8 = b']';
const VARIANT: u8 = b'v';
const UNIT_VARIANT: u8 = b'u';
const UNIT: u8 = b'0';
const NONE: u8 = b'n';
const SOME: u8 = b'y';
const FALSE: u8 = b'F';
const TRUE: u8 = b'T';
const ZERO: u8 = b'z';
const INT: u8 = b'i';
const UINT: u8 = b'w';
const FLOAT: u8 = b'f';
const CHAR: u8 = b'c';
const STR: u8 = b's';
const BYTES: u8 = b'x';
const CONSTANT: u8 = b'C';
const PARAM: u8 = b'P';

/// Serializes a tree into its canonical byte encoding.
struct Encoder {
    out: Vec<u8>,
    depth: usize,
    max_depth: usize,
}

impl Encoder {
    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(FingerprintError("statement nested too deeply".into()));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn tag(&mut self, tag: u8) {
        self.out.push(tag);
    }

    /// LEB128: 7 bits per byte, high bit set on all but the last.
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// Signed integers, zigzag-encoded (most fields are 0 or small).
    fn int(&mut self, v: i64) {
        if v == 0 {
            self.out.push(ZERO);
        } else {
            self.out.push(INT);
            self.varint(((v << 1) ^ (v >> 63)) as u64);
        }
    }

    fn uint(&mut self, v: u64) {
        self.out.push(UINT);
        self.varint(v);
    }

    /// Length-prefixed bytes after `tag`.
    fn bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.out.push(tag);
        self.varint(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }
}

/// Fields that only say where something was written (`location`,
/// `stmt_location`, `arg_location`, ..., `stmt_len`, and the
/// `list_start`/`list_end` of array and `IN` lists).
fn is_position(field: &str) -> bool {
    field.ends_with("location")
        || field.ends_with("list_start")
        || field.ends_with("list_end")
        || field == "stmt_len"
}

impl<'a> ser::Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = FingerprintError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Seq<'a>;
    type SerializeStruct = Struct<'a>;
    type SerializeStructVariant = Struct<'a>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.push(if v { TRUE } else { FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.int(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.uint(v.into());
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.uint(v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.uint(v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.uint(v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.out.push(FLOAT);
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.out.push(CHAR);
        self.out.extend_from_slice(&u32::from(v).to_le_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.bytes(STR, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.bytes(BYTES, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<()> {
        self.tag(NONE);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<()> {
        self.tag(SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.tag(UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<()> {
        self.bytes(UNIT, name.as_bytes());
        Ok(())
    }
    fn serialize_unit_variant(self, _n: &'static str, index: u32, _v: &'static str) -> Result<()> {
        self.out.push(UNIT_VARIANT);
        self.varint(index.into());
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<()> {
        // Which of the oneof's cases (for `Node`: which node type).
        self.out.push(VARIANT);
        self.varint(index.into());
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>> {
        self.enter()?;
        self.tag(SEQ);
        Ok(Seq {
            encoder: self,
            previous: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Seq<'a>> {
        self.out.push(VARIANT);
        self.varint(index.into());
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Seq<'a>> {
        self.serialize_seq(len)
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Struct<'a>> {
        self.enter()?;
        // A constant's value and a parameter's number are not part of the
        // statement's shape.
        let skip = match name {
            "AConst" => Some(CONSTANT),
            "ParamRef" => Some(PARAM),
            _ => None,
        };
        // No name: a field's type is fixed by the schema, and which node a
        // oneof holds is its case index (see `serialize_newtype_variant`).
        self.tag(skip.unwrap_or(STRUCT));
        Ok(Struct {
            encoder: self,
            skip: skip.is_some(),
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Struct<'a>> {
        self.serialize_struct(variant, len)
    }
}

/// A list being encoded.
struct Seq<'a> {
    encoder: &'a mut Encoder,
    /// Where the previous element's encoding starts and ends in `out`.
    previous: Option<(usize, usize)>,
}

impl Seq<'_> {
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        let start = self.encoder.out.len();
        value.serialize(&mut *self.encoder)?;
        let end = self.encoder.out.len();
        if let Some((p_start, p_end)) = self.previous {
            // Same encoding as the element before: drop it (`IN (1, 2, 3)`
            // is `IN (1)`). Compared byte for byte, not by hash.
            if self.encoder.out.get(p_start..p_end) == self.encoder.out.get(start..end) {
                self.encoder.out.truncate(start);
                return Ok(());
            }
        }
        self.previous = Some((start, end));
        Ok(())
    }

    fn done(self) -> Result<()> {
        self.encoder.tag(END_SEQ);
        self.encoder.leave();
        Ok(())
    }
}

macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {
        $(impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = FingerprintError;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
                self.element(value)
            }
            fn end(self) -> Result<()> {
                self.done()
            }
        })*
    };
}
seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Seq<'_> {
    type Ok = ();
    type Error = FingerprintError;
    // Keys and values are encoded in turn, without the list deduplication
    // (a key equal to the value before it must not vanish). The parse tree
    // has no maps; this is for completeness.
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        key.serialize(&mut *self.encoder)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<()> {
        self.done()
    }
}

/// A struct (parse-tree node) being encoded.
struct Struct<'a> {
    encoder: &'a mut Encoder,
    /// A constant or parameter: its fields are not encoded.
    skip: bool,
}

impl Struct<'_> {
    fn field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        if self.skip || is_position(key) {
            return Ok(());
        }
        value.serialize(&mut *self.encoder)
    }

    fn done(self) -> Result<()> {
        if !self.skip {
            self.encoder.tag(END_STRUCT);
        }
        self.encoder.leave();
        Ok(())
    }
}

impl ser::SerializeStruct for Struct<'_> {
    type Ok = ();
    type Error = FingerprintError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.field(key, value)
    }
    fn end(self) -> Result<()> {
        self.done()
    }
}

impl ser::SerializeStructVariant for Struct<'_> {
    type Ok = ();
    type Error = FingerprintError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.field(key, value)
    }
    fn end(self) -> Result<()> {
        self.done()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests;
