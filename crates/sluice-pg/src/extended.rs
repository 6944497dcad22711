//! The client's extended-protocol objects (prepared statements and
//! portals) as the backend holds them, so each Execute can be tied to its
//! exact SQL text and parameters: what audit records and what an approval
//! is bound to. Pure bookkeeping over message bodies, no I/O.

use crate::codec::{self, Reader};
use crate::error::ProtocolError;
pub use sluice_core::Param;
use std::collections::HashMap;
use std::sync::Arc;

/// One Execute: the statement it runs and the values bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub sql: Arc<str>,
    pub params: Arc<[Param]>,
    /// The prepared statement the portal was bound from (masking finds the
    /// result's columns through it).
    pub statement: Arc<str>,
    /// Result-column format codes from the Bind (none: all text; one: all
    /// columns; else one per column).
    pub result_formats: Arc<[i16]>,
}

/// Keeps no more objects, nor bytes of text and parameters, than this per
/// session: a client that never closes its statements, or binds huge
/// values, makes the tracker forget what it holds rather than grow without
/// bound. An Execute of something forgotten is judged as unknown (fail
/// closed), never let through unjudged.
const MAX_OBJECTS: usize = 10_000;
const MAX_BYTES: usize = 64 * 1024 * 1024;

#[derive(Default)]
pub struct Extended {
    statements: HashMap<String, Arc<str>>,
    portals: HashMap<String, Execution>,
    /// Bytes of names, texts and parameters held (an upper bound: replaced
    /// entries are not subtracted).
    bytes: usize,
}

impl Extended {
    /// Feeds one forwarded message (tag and body). Returns the execution
    /// for an Execute; `Ok(None)` for every other message.
    pub fn on_message(&mut self, tag: u8, body: &[u8]) -> Result<Option<Execution>, ProtocolError> {
        match tag {
            b'P' => {
                let (name, sql) = codec::parse_message(body)?;
                self.make_room(name.len() + sql.len());
                self.statements.insert(name.to_owned(), Arc::from(sql));
            }
            b'B' => {
                let (portal, execution) = self.bind(body)?;
                self.make_room(body.len());
                self.portals.insert(portal, execution);
            }
            b'C' => {
                let mut r = Reader::new(body);
                let kind = r.u8()?;
                let name = r.cstr()?;
                match kind {
                    b'S' => self.statements.remove(name),
                    _ => self.portals.remove(name).map(|e| e.sql),
                };
            }
            b'E' => {
                let portal = Reader::new(body).cstr()?;
                let execution = self
                    .portals
                    .get(portal)
                    .cloned()
                    .unwrap_or_else(|| Execution {
                        sql: Arc::from(""),
                        params: Arc::from(Vec::new()),
                        statement: Arc::from(""),
                        result_formats: Arc::from(Vec::new()),
                    });
                return Ok(Some(execution));
            }
            _ => {}
        }
        Ok(None)
    }

    /// The unnamed portal and statement are replaced by the next ones; at
    /// the end of a transaction PostgreSQL drops all portals.
    pub fn end_of_transaction(&mut self) {
        self.portals.clear();
    }

    /// Forgets everything when adding `bytes` would pass a limit.
    fn make_room(&mut self, bytes: usize) {
        let objects = self.statements.len() + self.portals.len();
        if objects >= MAX_OBJECTS || self.bytes + bytes > MAX_BYTES {
            self.statements.clear();
            self.portals.clear();
            self.bytes = 0;
        }
        self.bytes += bytes;
    }

    fn bind(&self, body: &[u8]) -> Result<(String, Execution), ProtocolError> {
        let mut r = Reader::new(body);
        let portal = r.cstr()?.to_owned();
        let statement = r.cstr()?;
        let n_formats = count(r.i16()?)?;
        let mut formats = Vec::with_capacity(n_formats);
        for _ in 0..n_formats {
            formats.push(r.i16()?);
        }
        let n_params = count(r.i16()?)?;
        let mut params = Vec::with_capacity(n_params);
        for i in 0..n_params {
            let binary = match formats.len() {
                0 => false,
                1 => formats[0] == 1,
                _ => formats.get(i).copied().unwrap_or(0) == 1,
            };
            let len = r.i32()?;
            let param = if len < 0 {
                Param::Null
            } else {
                let bytes = r.bytes(len as usize)?.to_vec();
                if binary {
                    Param::Binary(bytes)
                } else {
                    Param::Text(bytes)
                }
            };
            params.push(param);
        }
        let n_results = count(r.i16()?)?;
        let mut result_formats = Vec::with_capacity(n_results);
        for _ in 0..n_results {
            result_formats.push(r.i16()?);
        }
        let statement_name: Arc<str> = Arc::from(statement);
        let sql = self
            .statements
            .get(statement)
            .cloned()
            .unwrap_or_else(|| Arc::from(""));
        Ok((
            portal,
            Execution {
                sql,
                params: Arc::from(params),
                statement: statement_name,
                result_formats: Arc::from(result_formats),
            },
        ))
    }
}

fn count(n: i16) -> Result<usize, ProtocolError> {
    usize::try_from(n).map_err(|_| ProtocolError::Truncated("negative count in Bind"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn parse(name: &str, sql: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_slice(name.as_bytes());
        b.put_u8(0);
        b.put_slice(sql.as_bytes());
        b.put_u8(0);
        b.put_i16(0);
        b.to_vec()
    }

    fn bind(portal: &str, statement: &str, formats: &[i16], params: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = BytesMut::new();
        for s in [portal, statement] {
            b.put_slice(s.as_bytes());
            b.put_u8(0);
        }
        b.put_i16(formats.len() as i16);
        for f in formats {
            b.put_i16(*f);
        }
        b.put_i16(params.len() as i16);
        for p in params {
            match p {
                None => b.put_i32(-1),
                Some(v) => {
                    b.put_i32(v.len() as i32);
                    b.put_slice(v);
                }
            }
        }
        b.put_i16(0);
        b.to_vec()
    }

    fn execute(portal: &str) -> Vec<u8> {
        let mut b = portal.as_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(&0i32.to_be_bytes());
        b
    }

    #[test]
    fn an_execute_of_a_named_statement_carries_its_text_and_bound_values() {
        let mut x = Extended::default();
        x.on_message(b'P', &parse("s1", "update t set v = $1 where id = $2"))
            .unwrap();
        x.on_message(
            b'B',
            &bind("p", "s1", &[0, 1], &[Some(b"hello"), Some(&[0, 0, 0, 7])]),
        )
        .unwrap();
        let e = x.on_message(b'E', &execute("p")).unwrap().unwrap();
        assert_eq!(&*e.sql, "update t set v = $1 where id = $2");
        assert_eq!(
            &*e.params,
            &[
                Param::Text(b"hello".to_vec()),
                Param::Binary(vec![0, 0, 0, 7])
            ]
        );
    }

    #[test]
    fn one_format_code_applies_to_every_parameter_and_nulls_are_kept() {
        let mut x = Extended::default();
        x.on_message(b'P', &parse("", "select $1, $2")).unwrap();
        x.on_message(b'B', &bind("", "", &[1], &[None, Some(b"\x01")]))
            .unwrap();
        let e = x.on_message(b'E', &execute("")).unwrap().unwrap();
        assert_eq!(&*e.params, &[Param::Null, Param::Binary(vec![1])]);
    }

    #[test]
    fn a_closed_statement_is_forgotten_and_its_execute_has_no_text() {
        let mut x = Extended::default();
        x.on_message(b'P', &parse("s", "select 1")).unwrap();
        x.on_message(b'C', b"Ss\0").unwrap();
        x.on_message(b'B', &bind("", "s", &[], &[])).unwrap();
        let e = x.on_message(b'E', &execute("")).unwrap().unwrap();
        assert_eq!(&*e.sql, "");
    }

    #[test]
    fn a_client_binding_more_than_the_byte_budget_is_forgotten_not_kept() {
        let mut x = Extended::default();
        x.on_message(b'P', &parse("s", "select $1")).unwrap();
        let big = vec![b'x'; 8 * 1024 * 1024];
        for i in 0..9 {
            x.on_message(b'B', &bind(&format!("p{i}"), "s", &[], &[Some(&big)]))
                .unwrap();
        }
        assert!(x.bytes <= MAX_BYTES);
        // What was forgotten is judged as unknown text, not let through.
        let e = x.on_message(b'E', &execute("p0")).unwrap().unwrap();
        assert_eq!(&*e.sql, "");
    }

    #[test]
    fn a_malformed_bind_is_an_error_not_a_panic() {
        let mut x = Extended::default();
        assert!(x.on_message(b'B', b"p\0s\0\xff\xff").is_err());
        assert!(x.on_message(b'B', b"p\0s\0\0\0\0\x01\0\0\0\x09ab").is_err());
        assert!(x.on_message(b'B', b"").is_err());
    }
}
