//! The `serde::Serializer` that drives [`Walk`]: it visits every value and
//! hands struct starts, struct ends and a few named fields to the walk.
//!
//! Small field values (a relation's name parts, a function's name, its first
//! argument) are read by converting just that field to a `serde_json::Value`.

use super::{is_scope, Walk, WalkError};
use serde::ser::{self, Serialize};
use serde_json::Value;

type Result<T> = std::result::Result<T, WalkError>;

macro_rules! ignore_primitives {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, _v: $ty) -> Result<()> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for &'a mut Walk {
    type Ok = ();
    type Error = WalkError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Seq<'a>;
    type SerializeStruct = Struct<'a>;
    type SerializeStructVariant = Struct<'a>;

    ignore_primitives!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8],
    );

    fn serialize_none(self) -> Result<()> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Ok(())
    }
    fn serialize_unit_variant(self, _n: &'static str, _i: u32, _v: &'static str) -> Result<()> {
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
        _index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>> {
        self.enter()?;
        Ok(Seq { walk: self })
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
        _index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Seq<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Seq<'a>> {
        self.serialize_seq(len)
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Struct<'a>> {
        self.enter()?;
        self.begin(name);
        Ok(Struct {
            walk: self,
            name,
            relation: Default::default(),
            location: 0,
            call: None,
            restricted: false,
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

/// A list (or any other sequence-like value) being walked.
pub(crate) struct Seq<'a> {
    walk: &'a mut Walk,
}

impl Seq<'_> {
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.walk)
    }
    fn done(self) -> Result<()> {
        self.walk.leave();
        Ok(())
    }
}

macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {
        $(impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = WalkError;
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
    type Error = WalkError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        self.element(key)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.done()
    }
}

/// A function call being walked.
struct Call {
    index: usize,
    parts: Vec<String>,
    first_arg: Option<String>,
    sql_syntax: bool,
}

/// A struct (parse-tree node) being walked.
pub(crate) struct Struct<'a> {
    walk: &'a mut Walk,
    name: &'static str,
    /// RangeVar: catalog, schema, relation, and where it was written.
    relation: [String; 3],
    location: i32,
    call: Option<Call>,
    /// UpdateStmt/DeleteStmt WHERE, MergeStmt ON: references a column.
    restricted: bool,
}

/// `CoercionForm::CoerceSqlSyntax`: `EXTRACT(...)`, `SUBSTRING(x FROM y)`.
const COERCE_SQL_SYNTAX: i64 = 4;

impl Struct<'_> {
    fn field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        match (self.name, key) {
            ("RangeVar", "catalogname") => self.relation[0] = capture_str(value)?,
            ("RangeVar", "schemaname") => self.relation[1] = capture_str(value)?,
            ("RangeVar", "relname") => self.relation[2] = capture_str(value)?,
            ("RangeVar", "location") => {
                self.location = capture(value)?
                    .as_i64()
                    .unwrap_or(0)
                    .try_into()
                    .unwrap_or(0);
            }
            ("AConst", "location") => {
                if let Some(at) = capture(value)?.as_i64().and_then(|l| i32::try_from(l).ok()) {
                    self.walk.constants.push(at);
                }
            }
            ("FuncCall", "funcname") => {
                let mut parts = Vec::new();
                collect_strings(&capture(value)?, &mut parts);
                let index = self.walk.function(&parts);
                self.call = Some(Call {
                    index,
                    parts,
                    first_arg: None,
                    sql_syntax: false,
                });
            }
            ("FuncCall", "args") => {
                if let Some(call) = self.call.as_mut() {
                    if call.parts.last().map(String::as_str) == Some("set_config") {
                        call.first_arg = capture(value)?.get(0).and_then(const_string);
                        self.walk.reads_constants = true;
                    }
                }
                value.serialize(&mut *self.walk)?;
            }
            ("FuncCall", "funcformat") => {
                if let Some(call) = self.call.as_mut() {
                    call.sql_syntax = capture(value)?.as_i64() == Some(COERCE_SQL_SYNTAX);
                }
            }
            // `t.f` and `(row).f` call `f(t)` when such a function exists.
            ("ColumnRef", "fields") => {
                let mut parts = Vec::new();
                collect_strings(&capture(value)?, &mut parts);
                self.walk.fields.extend(parts.into_iter().skip(1));
                value.serialize(&mut *self.walk)?;
            }
            ("AIndirection", "indirection") => {
                collect_strings(&capture(value)?, &mut self.walk.fields);
                value.serialize(&mut *self.walk)?;
            }
            ("SelectStmt", "locking_clause") => {
                if capture(value)?.as_array().is_some_and(|a| !a.is_empty()) {
                    self.walk.locks_rows = true;
                }
                value.serialize(&mut *self.walk)?;
            }
            ("UpdateStmt" | "DeleteStmt", "where_clause") | ("MergeStmt", "join_condition") => {
                let before = self.walk.column_refs;
                value.serialize(&mut *self.walk)?;
                self.restricted = self.walk.column_refs > before;
            }
            ("InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt", "relation")
            | ("SelectStmt", "into_clause") => {
                let outer = std::mem::replace(&mut self.walk.in_target, true);
                let result = value.serialize(&mut *self.walk);
                self.walk.in_target = outer;
                result?;
            }
            (owner, "with_clause") if is_scope(owner) => {
                if let Some(scope) = self.walk.scopes.last_mut() {
                    scope.in_with = true;
                }
                let result = value.serialize(&mut *self.walk);
                if let Some(scope) = self.walk.scopes.last_mut() {
                    scope.with_done();
                }
                result?;
            }
            ("WithClause", "recursive") => {
                if capture(value)?.as_bool() == Some(true) {
                    if let Some(scope) = self.walk.scopes.last_mut() {
                        scope.set_recursive();
                    }
                }
            }
            ("CommonTableExpr", "ctename") => {
                let name = capture_str(value)?;
                if let Some(scope) = self.walk.scopes.last_mut() {
                    scope.define(name);
                }
            }
            // Target fields hold only a RangeVar / IntoClause (no subquery),
            // so the target flag cannot leak into a nested statement.
            _ => value.serialize(&mut *self.walk)?,
        }
        Ok(())
    }

    fn done(self) -> Result<()> {
        let Struct {
            walk,
            name,
            relation,
            location,
            call,
            restricted,
        } = self;
        if name == "RangeVar" {
            walk.table(relation, location);
        }
        if let Some(call) = call {
            walk.function_done(
                call.index,
                &call.parts,
                call.sql_syntax,
                call.first_arg.as_deref(),
            );
        }
        walk.finish(name, restricted);
        walk.leave();
        Ok(())
    }
}

impl ser::SerializeStruct for Struct<'_> {
    type Ok = ();
    type Error = WalkError;
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
    type Error = WalkError;
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

fn capture<T: ?Sized + Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| WalkError(format!("cannot read parse tree: {e}")))
}

fn capture_str<T: ?Sized + Serialize>(value: &T) -> Result<String> {
    match capture(value)? {
        Value::String(s) => Ok(s),
        _ => Ok(String::new()),
    }
}

/// Every string in `value`, in order (a function name is a list of String
/// nodes).
fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// The string of a constant argument: `'role'` or `'role'::text`.
fn const_string(node: &Value) -> Option<String> {
    let node = node.get("node")?;
    if let Some(constant) = node.get("AConst") {
        return constant
            .get("val")?
            .get("Sval")?
            .get("sval")?
            .as_str()
            .map(str::to_owned);
    }
    const_string(node.get("TypeCast")?.get("arg")?)
}
