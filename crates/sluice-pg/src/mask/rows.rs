//! Rewriting the messages that carry data: DataRow cells (text and binary
//! format), ErrorResponse/NoticeResponse fields, NotificationResponse
//! payloads and COPY data. A message that needs no change is never copied.

use super::{message, SessionMask};
use crate::codec::Reader;
use bytes::{BufMut, BytesMut};
use sluice_mask::{ColumnInfo, ColumnMask, Masked, Masker, ValueKind};

/// One column of a RowDescription.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    name: String,
    table_oid: u32,
    attnum: i16,
    type_oid: u32,
    format: i16,
}

/// How one column's values are masked.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    mask: Option<ColumnMask>,
    kind: ValueKind,
    binary: bool,
    /// binary jsonb starts with a version byte.
    jsonb: bool,
    type_oid: u32,
}

/// The columns of a RowDescription body (empty if it does not parse: the
/// rows are then masked as of unknown shape).
pub(crate) fn row_description(body: &[u8]) -> Vec<Column> {
    let mut r = Reader::new(body);
    let Ok(n) = r.i16() else { return Vec::new() };
    let mut columns = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for _ in 0..n {
        let column = (|| {
            let name = r.cstr()?.to_owned();
            let table_oid = r.i32()? as u32;
            let attnum = r.i16()?;
            let type_oid = r.i32()? as u32;
            let _size = r.i16()?;
            let _modifier = r.i32()?;
            let format = r.i16()?;
            Ok::<_, crate::error::ProtocolError>(Column {
                name,
                table_oid,
                attnum,
                type_oid,
                format,
            })
        })();
        match column {
            Ok(c) => columns.push(c),
            Err(_) => return Vec::new(),
        }
    }
    columns
}

/// Plans for `columns`; `formats` are a Bind's result formats when the
/// RowDescription came from a statement Describe (whose formats are 0).
pub(crate) fn plan_columns(
    mask: &SessionMask,
    columns: &[Column],
    formats: Option<&[i16]>,
) -> Vec<Plan> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let format = match formats {
                None => c.format,
                Some([]) => 0,
                Some([one]) => *one,
                Some(many) => many.get(i).copied().unwrap_or(0),
            };
            let qualified = mask.catalog.column(c.table_oid, c.attnum);
            let type_name = mask.catalog.type_name(c.type_oid);
            let info = ColumnInfo {
                name: qualified.map_or(c.name.as_str(), |q| q.2.as_str()),
                schema: qualified.map(|q| q.0.as_str()),
                table: qualified.map(|q| q.1.as_str()),
                type_name,
            };
            let mut column_mask = mask.masker.column(&info);
            if column_mask.is_none() && mask.catalog.unavailable && mask.masker.has_table_rules() {
                // Which table the column comes from is unknown: a table
                // rule might name it.
                column_mask = Some(ColumnMask {
                    rule: "table rules (catalog unavailable)".to_owned(),
                    style: sluice_mask::Style::Full,
                });
            }
            if column_mask.is_none() && qualified.is_some() {
                // A rule on the column name also matches its alias.
                column_mask = mask.masker.column(&ColumnInfo {
                    name: &c.name,
                    ..info
                });
            }
            Plan {
                mask: column_mask,
                kind: mask.catalog.kind(c.type_oid),
                binary: format == 1,
                jsonb: c.type_oid == super::catalog::JSONB,
                type_oid: c.type_oid,
            }
        })
        .collect()
}

/// A DataRow with masked cells, or `None` when nothing changes.
pub(crate) fn mask_row(masker: &Masker, plans: &[Plan], body: &[u8]) -> Option<BytesMut> {
    let mut r = Reader::new(body);
    let n = r.i16().ok()?;
    let mut out: Option<BytesMut> = None;
    for i in 0..usize::try_from(n).unwrap_or(0) {
        let start = body.len() - r.remaining().len();
        let len = r.i32().ok()?;
        let Ok(len) = usize::try_from(len) else {
            // NULL stays NULL.
            if let Some(out) = out.as_mut() {
                out.put_i32(-1);
            }
            continue;
        };
        let value = r.bytes(len).ok()?;
        let masked = mask_cell(masker, plans.get(i), value);
        if out.is_none() {
            if !masked.is_changed() {
                continue;
            }
            let mut o = BytesMut::with_capacity(body.len() + 32);
            o.put_slice(&body[..start]);
            out = Some(o);
        }
        if let Some(o) = out.as_mut() {
            match masked.bytes() {
                Some(v) => put_cell(o, v),
                None => o.put_i32(-1),
            }
        }
    }
    out.map(|o| message(b'D', &o))
}

fn mask_cell<'a>(masker: &Masker, plan: Option<&Plan>, value: &'a [u8]) -> Masked<'a> {
    let Some(plan) = plan else {
        // Columns not known: plain text is scanned, anything else hidden.
        return match std::str::from_utf8(value) {
            Ok(_) => masker.mask(value, ValueKind::Text, None),
            Err(_) => Masked::Null(sluice_mask::DetectorSet::none()),
        };
    };
    let kind = if plan.binary && plan.kind == ValueKind::Opaque {
        // A binary value of a type that is not text: scanned as bytes, and
        // hidden if anything is found (or if the column is masked).
        ValueKind::Opaque
    } else {
        plan.kind
    };
    if plan.binary {
        if let Some(number) = binary_integer(plan.type_oid, value) {
            // A card or phone number stored as an integer is found in its
            // decimal form; an integer cannot hold a redaction, so NULL.
            return match masker.mask(number.as_bytes(), ValueKind::Opaque, plan.mask.as_ref()) {
                Masked::Unchanged(_) => Masked::Unchanged(value),
                changed => Masked::Null(changed.hits()),
            };
        }
    }
    if plan.binary && plan.jsonb {
        // Version byte, then the JSON text.
        let (version, json) = value
            .split_first()
            .map_or((&[][..], value), |(v, j)| (std::slice::from_ref(v), j));
        return match masker.mask(json, ValueKind::Json, plan.mask.as_ref()) {
            Masked::Replaced(v, hits) => Masked::Replaced([version, &v].concat(), hits),
            Masked::Unchanged(_) => Masked::Unchanged(value),
            Masked::Null(hits) => Masked::Null(hits),
        };
    }
    masker.mask(value, kind, plan.mask.as_ref())
}

/// The decimal text of a binary int2/int4/int8 value.
fn binary_integer(type_oid: u32, value: &[u8]) -> Option<String> {
    let n = match (type_oid, value.len()) {
        (21, 2) => i64::from(i16::from_be_bytes([value[0], value[1]])),
        (23, 4) => i64::from(i32::from_be_bytes([value[0], value[1], value[2], value[3]])),
        (20, 8) => i64::from_be_bytes(value.try_into().ok()?),
        _ => return None,
    };
    Some(n.to_string())
}

fn put_cell(out: &mut BytesMut, value: &[u8]) {
    out.put_i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
    out.put_slice(value);
}

/// A DataRow with every value NULL: its columns are not known, so column
/// rules cannot be applied (fail closed).
pub(crate) fn hide_row(body: &[u8]) -> Option<BytesMut> {
    let n = Reader::new(body).i16().ok()?;
    let mut out = BytesMut::with_capacity(2 + 4 * usize::try_from(n).unwrap_or(0));
    out.put_i16(n);
    for _ in 0..n {
        out.put_i32(-1);
    }
    Some(message(b'D', &out))
}

/// ErrorResponse / NoticeResponse with its texts masked (a unique
/// violation's detail repeats the value).
pub(crate) fn mask_fields(masker: &Masker, tag: u8, body: &[u8]) -> Option<BytesMut> {
    let mut r = Reader::new(body);
    let mut fields = Vec::new();
    let mut changed = false;
    loop {
        let code = r.u8().ok()?;
        if code == 0 {
            break;
        }
        let value = r.cstr().ok()?;
        let masked = match code {
            // Severity, SQLSTATE, source file, line and routine: no data.
            b'S' | b'V' | b'C' | b'F' | b'L' | b'R' => None,
            _ => masker.mask_text(value),
        };
        changed |= masked.is_some();
        fields.push((code, masked.unwrap_or_else(|| value.to_owned())));
    }
    if !changed {
        return None;
    }
    let mut out = BytesMut::with_capacity(body.len() + 32);
    for (code, value) in fields {
        out.put_u8(code);
        out.put_slice(value.as_bytes());
        out.put_u8(0);
    }
    out.put_u8(0);
    Some(message(tag, &out))
}

/// FunctionCallResponse (fast-path call) with its result masked: its type
/// is not on the wire, so text is masked in place and anything else that
/// holds a finding is hidden.
pub(crate) fn mask_function_result(masker: &Masker, body: &[u8]) -> Option<BytesMut> {
    let mut r = Reader::new(body);
    let len = usize::try_from(r.i32().ok()?).ok()?;
    let value = r.bytes(len).ok()?;
    let kind = if std::str::from_utf8(value).is_ok() {
        ValueKind::Text
    } else {
        ValueKind::Opaque
    };
    let masked = masker.mask(value, kind, None);
    if !masked.is_changed() {
        return None;
    }
    let mut out = BytesMut::with_capacity(body.len() + 32);
    match masked.bytes() {
        Some(v) => put_cell(&mut out, v),
        None => out.put_i32(-1),
    }
    Some(message(b'V', &out))
}

/// NotificationResponse with its payload masked.
pub(crate) fn mask_notification(masker: &Masker, body: &[u8]) -> Option<BytesMut> {
    let mut r = Reader::new(body);
    let pid = r.i32().ok()?;
    let channel = r.cstr().ok()?;
    let payload = r.cstr().ok()?;
    let masked = masker.mask_text(payload)?;
    let mut out = BytesMut::with_capacity(body.len() + 32);
    out.put_i32(pid);
    out.put_slice(channel.as_bytes());
    out.put_u8(0);
    out.put_slice(masked.as_bytes());
    out.put_u8(0);
    Some(message(b'A', &out))
}

/// COPY TO STDOUT data in text or CSV format: lines of text.
pub(crate) fn mask_copy_text(masker: &Masker, body: &[u8]) -> Option<BytesMut> {
    let text = String::from_utf8_lossy(body);
    let masked = masker.mask_text(&text)?;
    Some(message(b'd', masked.as_bytes()))
}

/// COPY TO STDOUT in binary format: the header, then tuples of
/// length-prefixed fields (PostgreSQL sends one tuple per message). Field
/// types are not on the wire: text is masked in place, other values hidden
/// when anything is found in them.
pub(crate) fn mask_copy_binary(masker: &Masker, body: &[u8]) -> Option<BytesMut> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    let mut r = Reader::new(body);
    let mut out: Option<BytesMut> = None;
    let mut header_len = 0;
    if body.starts_with(SIGNATURE) {
        r.bytes(SIGNATURE.len()).ok()?;
        r.i32().ok()?;
        let ext = usize::try_from(r.i32().ok()?).ok()?;
        r.bytes(ext).ok()?;
        header_len = body.len() - r.remaining().len();
    }
    let Ok(fields) = r.i16() else {
        return None;
    };
    if fields < 0 {
        return None; // the trailer
    }
    let mut masked_fields = Vec::with_capacity(usize::try_from(fields).unwrap_or(0));
    for _ in 0..fields {
        let len = r.i32().ok()?;
        let Ok(len) = usize::try_from(len) else {
            masked_fields.push(None);
            continue;
        };
        let value = r.bytes(len).ok()?;
        let kind = if std::str::from_utf8(value).is_ok() {
            ValueKind::Text
        } else {
            ValueKind::Opaque
        };
        let masked = masker.mask(value, kind, None);
        if masked.is_changed() && out.is_none() {
            out = Some(BytesMut::new());
        }
        masked_fields.push(Some(masked));
    }
    let mut o = out?;
    o.put_slice(&body[..header_len]);
    o.put_i16(fields);
    for field in masked_fields {
        match field.as_ref().and_then(Masked::bytes) {
            Some(v) => put_cell(&mut o, v),
            None => o.put_i32(-1),
        }
    }
    o.put_slice(r.remaining());
    Some(message(b'd', &o))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_mask::{ColumnPattern, ColumnRule, MaskConfig, Style};

    fn masker(columns: Vec<ColumnRule>) -> Masker {
        Masker::new(MaskConfig {
            columns,
            ..MaskConfig::default()
        })
        .unwrap()
    }

    fn row(cells: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(cells.len() as i16);
        for c in cells {
            match c {
                Some(v) => put_cell(&mut b, v),
                None => b.put_i32(-1),
            }
        }
        b.to_vec()
    }

    fn cells(message: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut r = Reader::new(&message[5..]);
        let n = r.i16().unwrap();
        (0..n)
            .map(|_| {
                let len = r.i32().unwrap();
                usize::try_from(len)
                    .ok()
                    .map(|l| r.bytes(l).unwrap().to_vec())
            })
            .collect()
    }

    fn plan(kind: ValueKind, binary: bool, mask: Option<ColumnMask>, type_oid: u32) -> Plan {
        Plan {
            mask,
            kind,
            binary,
            jsonb: false,
            type_oid,
        }
    }

    #[test]
    fn an_undecodable_binary_value_in_a_masked_column_is_hidden() {
        let m = masker(vec![ColumnRule::new(
            ColumnPattern::parse("location").unwrap(),
        )]);
        let mask = Some(ColumnMask {
            rule: "location".into(),
            style: Style::Full,
        });
        // A binary point (two float8): opaque to the masker.
        let point = [0x40u8, 0x59, 0, 0, 0, 0, 0, 0, 0x40, 0x59, 0, 0, 0, 0, 0, 0];
        let plans = [plan(ValueKind::Opaque, true, mask, 600)];
        let out = mask_row(&m, &plans, &row(&[Some(&point)])).unwrap();
        assert_eq!(cells(&out), vec![None]);
    }

    #[test]
    fn a_card_number_in_a_binary_bigint_becomes_null_and_ordinary_numbers_pass() {
        let m = masker(Vec::new());
        let plans = [plan(ValueKind::Opaque, true, None, 20)];
        let card = 4_111_111_111_111_111i64.to_be_bytes();
        let out = mask_row(&m, &plans, &row(&[Some(&card)])).unwrap();
        assert_eq!(cells(&out), vec![None]);
        let order = 20_240_501_000_123i64.to_be_bytes();
        assert!(mask_row(&m, &plans, &row(&[Some(&order)])).is_none());
    }

    #[test]
    fn a_row_of_unknown_shape_hides_values_that_are_not_text() {
        let m = masker(Vec::new());
        let out = mask_row(&m, &[], &row(&[Some(b"plain"), Some(&[0, 159, 146, 150])])).unwrap();
        assert_eq!(cells(&out), vec![Some(b"plain".to_vec()), None]);
    }

    #[test]
    fn a_row_with_nothing_to_mask_is_not_copied() {
        let m = masker(Vec::new());
        let plans = [
            plan(ValueKind::Text, false, None, 25),
            plan(ValueKind::Opaque, false, None, 23),
        ];
        assert!(mask_row(&m, &plans, &row(&[Some(b"hello world"), None, Some(b"42")])).is_none());
    }

    #[test]
    fn a_fast_path_function_result_is_masked_like_text() {
        let m = masker(Vec::new());
        let mut body = BytesMut::new();
        put_cell(&mut body, b"mail ann@example.com");
        let out = mask_function_result(&m, &body).unwrap();
        let mut r = Reader::new(&out[5..]);
        let len = r.i32().unwrap() as usize;
        assert_eq!(r.bytes(len).unwrap(), b"mail [REDACTED:email]");
    }

    #[test]
    fn without_a_catalog_every_column_a_table_rule_might_name_is_masked() {
        let m = masker(vec![ColumnRule::new(
            ColumnPattern::parse("public.people.ssn").unwrap(),
        )]);
        let mask = SessionMask {
            masker: std::sync::Arc::new(m),
            catalog: std::sync::Arc::new(super::super::Catalog::unavailable()),
        };
        let columns = [Column {
            name: "ssn".into(),
            table_oid: 16384,
            attnum: 3,
            type_oid: 25,
            format: 0,
        }];
        let plans = plan_columns(&mask, &columns, None);
        assert!(plans[0].mask.is_some());
    }
}
