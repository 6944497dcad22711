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

/// A Parse, Bind or Close sent but not yet confirmed by the backend.
enum Pending {
    Parse(String, Arc<str>),
    Bind(String, Execution),
    Close(u8, String),
}

/// What the backend holds is what it confirmed (ParseComplete,
/// BindComplete, CloseComplete), not what the client sent: a Parse the
/// backend refuses (a name already in use, an error earlier in its batch)
/// must not change what an Execute is judged as. Until confirmed, an
/// operation counts for the messages after it in its own batch (if it
/// fails, the backend skips them too).
#[derive(Default)]
pub struct Extended {
    statements: HashMap<String, Arc<str>>,
    portals: HashMap<String, Execution>,
    /// Sent, unconfirmed, with the ReadyForQuery number they precede.
    pending: std::collections::VecDeque<(u64, Pending)>,
    /// Bytes of names, texts and parameters held (an upper bound: replaced
    /// entries are not subtracted).
    bytes: usize,
}

impl Extended {
    /// Feeds one forwarded message (tag and body) whose answer precedes
    /// ReadyForQuery number `segment`. Returns the execution for an
    /// Execute; `Ok(None)` for every other message.
    pub fn on_message(
        &mut self,
        tag: u8,
        body: &[u8],
        segment: u64,
    ) -> Result<Option<Execution>, ProtocolError> {
        match tag {
            b'P' => {
                let (name, sql) = codec::parse_message(body)?;
                self.make_room(name.len() + sql.len());
                self.pending
                    .push_back((segment, Pending::Parse(name.to_owned(), Arc::from(sql))));
            }
            b'B' => {
                let (portal, execution) = self.bind(body)?;
                self.make_room(body.len());
                self.pending
                    .push_back((segment, Pending::Bind(portal, execution)));
            }
            b'C' => {
                let mut r = Reader::new(body);
                let kind = r.u8()?;
                let name = r.cstr()?;
                self.pending
                    .push_back((segment, Pending::Close(kind, name.to_owned())));
            }
            b'E' => {
                let portal = Reader::new(body).cstr()?;
                let execution = self.portal(portal).unwrap_or_else(|| Execution {
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

    /// One backend message; `z_seen` counts ReadyForQuery before it.
    pub fn on_backend(&mut self, tag: u8, z_seen: u64) {
        let segment = z_seen + 1;
        match tag {
            b'1' | b'2' | b'3' => {
                let Some((_, op)) = self.pending.pop_front() else {
                    return;
                };
                match (tag, op) {
                    (b'1', Pending::Parse(name, sql)) => {
                        self.statements.insert(name, sql);
                    }
                    (b'2', Pending::Bind(portal, execution)) => {
                        self.portals.insert(portal, execution);
                    }
                    (b'3', Pending::Close(kind, name)) => {
                        match kind {
                            b'S' => self.statements.remove(&name),
                            _ => self.portals.remove(&name).map(|e| e.sql),
                        };
                    }
                    // Out of step: forget what is unconfirmed rather than
                    // guess (an Execute of it is then judged unknown).
                    _ => self.pending.clear(),
                }
            }
            // An error skips the rest of its batch; a ReadyForQuery ends it.
            b'E' | b'Z' => self.pending.retain(|(s, _)| *s > segment),
            _ => {}
        }
    }

    /// The text of statement `name` as the messages before this one leave it.
    fn statement(&self, name: &str) -> Option<Arc<str>> {
        for (_, op) in self.pending.iter().rev() {
            match op {
                Pending::Parse(n, sql) if n == name => return Some(sql.clone()),
                Pending::Close(b'S', n) if n == name => return None,
                _ => {}
            }
        }
        self.statements.get(name).cloned()
    }

    fn portal(&self, name: &str) -> Option<Execution> {
        for (_, op) in self.pending.iter().rev() {
            match op {
                Pending::Bind(p, e) if p == name => return Some(e.clone()),
                Pending::Close(b'P', p) if p == name => return None,
                _ => {}
            }
        }
        self.portals.get(name).cloned()
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
            self.pending.clear();
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
        let sql = self.statement(statement).unwrap_or_else(|| Arc::from(""));
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

    impl Extended {
        /// A message of the first batch.
        fn msg(&mut self, tag: u8, body: &[u8]) -> Result<Option<Execution>, ProtocolError> {
            self.on_message(tag, body, 1)
        }
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
        x.msg(b'P', &parse("s1", "update t set v = $1 where id = $2"))
            .unwrap();
        x.msg(
            b'B',
            &bind("p", "s1", &[0, 1], &[Some(b"hello"), Some(&[0, 0, 0, 7])]),
        )
        .unwrap();
        let e = x.msg(b'E', &execute("p")).unwrap().unwrap();
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
        x.msg(b'P', &parse("", "select $1, $2")).unwrap();
        x.msg(b'B', &bind("", "", &[1], &[None, Some(b"\x01")]))
            .unwrap();
        let e = x.msg(b'E', &execute("")).unwrap().unwrap();
        assert_eq!(&*e.params, &[Param::Null, Param::Binary(vec![1])]);
    }

    #[test]
    fn a_closed_statement_is_forgotten_and_its_execute_has_no_text() {
        let mut x = Extended::default();
        x.msg(b'P', &parse("s", "select 1")).unwrap();
        x.msg(b'C', b"Ss\0").unwrap();
        x.msg(b'B', &bind("", "s", &[], &[])).unwrap();
        let e = x.msg(b'E', &execute("")).unwrap().unwrap();
        assert_eq!(&*e.sql, "");
    }

    #[test]
    fn a_client_binding_more_than_the_byte_budget_is_forgotten_not_kept() {
        let mut x = Extended::default();
        x.msg(b'P', &parse("s", "select $1")).unwrap();
        let big = vec![b'x'; 8 * 1024 * 1024];
        for i in 0..9 {
            x.msg(b'B', &bind(&format!("p{i}"), "s", &[], &[Some(&big)]))
                .unwrap();
        }
        assert!(x.bytes <= MAX_BYTES);
        // What was forgotten is judged as unknown text, not let through.
        let e = x.msg(b'E', &execute("p0")).unwrap().unwrap();
        assert_eq!(&*e.sql, "");
    }

    #[test]
    fn a_malformed_bind_is_an_error_not_a_panic() {
        let mut x = Extended::default();
        assert!(x.msg(b'B', b"p\0s\0\xff\xff").is_err());
        assert!(x.msg(b'B', b"p\0s\0\0\0\0\x01\0\0\0\x09ab").is_err());
        assert!(x.msg(b'B', b"").is_err());
    }

    #[test]
    fn a_parse_the_backend_refuses_does_not_change_what_a_later_execute_runs() {
        let mut x = Extended::default();
        x.on_message(b'P', &parse("s1", "delete from victims"), 1)
            .unwrap();
        x.on_backend(b'1', 0);
        x.on_backend(b'Z', 0);
        // Re-prepared under the same name: the backend answers 42P05.
        x.on_message(b'P', &parse("s1", "select 1"), 2).unwrap();
        x.on_message(b'B', &bind("", "s1", &[], &[]), 2).unwrap();
        let in_batch = x.on_message(b'E', &execute(""), 2).unwrap().unwrap();
        assert_eq!(&*in_batch.sql, "select 1", "skipped with the Parse anyway");
        x.on_backend(b'E', 1);
        x.on_backend(b'Z', 1);
        x.on_message(b'B', &bind("", "s1", &[], &[]), 3).unwrap();
        let e = x.on_message(b'E', &execute(""), 3).unwrap().unwrap();
        assert_eq!(&*e.sql, "delete from victims", "what the backend holds");
    }

    #[test]
    fn confirmed_operations_persist_across_batches() {
        let mut x = Extended::default();
        x.on_message(b'P', &parse("s", "select 2"), 1).unwrap();
        x.on_message(b'B', &bind("p", "s", &[], &[]), 1).unwrap();
        x.on_backend(b'1', 0);
        x.on_backend(b'2', 0);
        x.on_backend(b'Z', 0);
        let e = x.on_message(b'E', &execute("p"), 2).unwrap().unwrap();
        assert_eq!(&*e.sql, "select 2");
        x.on_message(b'C', b"Ss\0", 2).unwrap();
        x.on_backend(b'3', 1);
        x.on_message(b'B', &bind("q", "s", &[], &[]), 2).unwrap();
        let e = x.on_message(b'E', &execute("q"), 2).unwrap().unwrap();
        assert_eq!(&*e.sql, "", "closed and confirmed");
    }
}
