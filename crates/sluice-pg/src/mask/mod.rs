//! Masking on the response path: every backend message that can carry data
//! (rows, COPY data, error and notice texts, notifications) is rewritten
//! before it reaches the client, row by row as it streams. What to do with
//! each value is `sluice-mask`'s call; this module knows the wire: which
//! columns a row has, in which format, and how to rebuild a message with
//! new lengths.
//!
//! A row's columns come from the RowDescription before it (simple query,
//! Describe of a portal) or, for an Execute whose statement was described
//! earlier, from that statement's RowDescription and the Bind's result
//! formats. A row whose columns are not known is masked as if every column
//! were opaque: values that are not plain text are hidden (fail closed).

mod catalog;
mod routines;
mod rows;

pub use catalog::{Catalog, CatalogCache, FRESH_FOR};

/// Looks the session's resource catalog up again.
pub type CatalogRefresh = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<Catalog>> + Send>>
        + Send
        + Sync,
>;

use crate::codec::Reader;
use bytes::{BufMut, BytesMut};
use rows::{plan_columns, Column, Plan};
use sluice_mask::Masker;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// What one session masks with: the rules, and the catalog names they need.
#[derive(Clone)]
pub struct SessionMask {
    pub masker: Arc<Masker>,
    pub catalog: Arc<Catalog>,
}

enum Described {
    Statement(String),
    Portal(String),
    /// A Describe Sluice added before an Execute whose columns it could
    /// not otherwise know; its answer is not forwarded.
    Injected(String),
}

/// A name a Parse, Bind or Close forwarded will undo once the backend
/// acknowledges it (ParseComplete, BindComplete, CloseComplete).
enum Forget {
    Statement(String),
    Portal(String),
    /// A Close the gateway could not read: the backend refuses it too.
    Nothing,
}

/// An Execute forwarded: whose rows come next.
struct Executed {
    segment: u64,
    portal: String,
    statement: Arc<str>,
    formats: Arc<[i16]>,
}

pub(crate) struct ResultMasking {
    mask: SessionMask,
    /// Columns of prepared statements, from their Describe.
    statements: HashMap<String, Arc<[Column]>>,
    /// Columns of portals, from their Describe (with the real formats), for
    /// Executes that fetch more rows of a portal later.
    portals: HashMap<String, Arc<[Column]>>,
    /// `statements` and `portals` follow the backend's stream: results of
    /// earlier messages may still be arriving while the client's next
    /// Bind or Parse is read, so what those undo waits for their
    /// acknowledgement, in order.
    forgets: VecDeque<(u64, Forget)>,
    /// The same names as the client's stream has them (described since
    /// last bound or parsed): whether an Execute needs a Describe of
    /// Sluice's own is known when it is read, not when its rows arrive.
    client_portals: HashSet<String>,
    client_statements: HashSet<String>,
    /// Describes forwarded, waiting for RowDescription or NoData.
    describes: VecDeque<(u64, Described)>,
    executes: VecDeque<Executed>,
    /// How to mask the rows now arriving.
    current: Option<Arc<[Plan]>>,
    /// Plans of described statements for the result formats last bound:
    /// a statement executed again and again is planned once.
    plans: HashMap<String, FormatsPlan>,
    /// COPY TO STDOUT in binary format is under way.
    copy_binary: bool,
    /// Column rules exist: a row whose columns are not known cannot have
    /// them applied, so all of it is hidden.
    has_column_rules: bool,
}

/// A statement's plan and the result formats it was made for.
type FormatsPlan = (Arc<[i16]>, Arc<[Plan]>);

/// Bound on remembered statement shapes (a client that never closes its
/// statements makes this start over, not grow).
const MAX_STATEMENTS: usize = 10_000;

/// Bound on Parse, Bind and Close messages forwarded and not yet
/// acknowledged by the backend.
const MAX_UNACKNOWLEDGED: usize = 100_000;

impl ResultMasking {
    pub(crate) fn new(mask: SessionMask) -> Self {
        let has_column_rules = mask.masker.has_column_rules();
        Self {
            has_column_rules,
            mask,
            statements: HashMap::new(),
            portals: HashMap::new(),
            forgets: VecDeque::new(),
            client_portals: HashSet::new(),
            client_statements: HashSet::new(),
            describes: VecDeque::new(),
            executes: VecDeque::new(),
            current: None,
            plans: HashMap::new(),
            copy_binary: false,
        }
    }

    /// A Parse, Bind or Close is forwarded: what was described under its
    /// name no longer holds, for the client at once, for the backend's
    /// results once it is acknowledged.
    pub(crate) fn on_parse_bind_close(&mut self, tag: u8, body: &[u8], segment: u64) {
        let mut r = Reader::new(body);
        let forget = match tag {
            b'P' => r.cstr().map(|n| Forget::Statement(n.to_owned())),
            b'B' => r.cstr().map(|n| Forget::Portal(n.to_owned())),
            _ => match r.u8() {
                Ok(b'S') => r.cstr().map(|n| Forget::Statement(n.to_owned())),
                Ok(b'P') => r.cstr().map(|n| Forget::Portal(n.to_owned())),
                _ => Ok(Forget::Nothing),
            },
        }
        .unwrap_or(Forget::Nothing);
        match &forget {
            Forget::Statement(name) => {
                self.client_statements.remove(name);
            }
            Forget::Portal(name) => {
                self.client_portals.remove(name);
            }
            Forget::Nothing => {}
        }
        if self.forgets.len() >= MAX_UNACKNOWLEDGED {
            // A client streaming messages the backend discards (after an
            // error, with no Sync) is never acknowledged: forget every
            // column known rather than grow. Acknowledgements still due
            // then apply to later names early, which only hides more.
            self.forgets.clear();
            self.statements.clear();
            self.plans.clear();
            self.portals.clear();
        }
        self.forgets.push_back((segment, forget));
    }

    /// The backend acknowledged the oldest Parse, Bind or Close of `segment`.
    fn acknowledged(&mut self, segment: u64) {
        if self.forgets.front().is_none_or(|(s, _)| *s != segment) {
            return;
        }
        let Some((_, forget)) = self.forgets.pop_front() else {
            return;
        };
        match forget {
            Forget::Statement(name) => {
                self.statements.remove(&name);
                self.plans.remove(&name);
            }
            Forget::Portal(name) => {
                self.portals.remove(&name);
            }
            Forget::Nothing => {}
        }
    }

    /// A Describe is forwarded; its answer precedes ReadyForQuery `segment`.
    pub(crate) fn on_describe(&mut self, body: &[u8], segment: u64) {
        let mut r = Reader::new(body);
        let (Ok(kind), Ok(name)) = (r.u8(), r.cstr()) else {
            return;
        };
        let target = if kind == b'S' {
            remember(&mut self.client_statements, name);
            Described::Statement(name.to_owned())
        } else {
            remember(&mut self.client_portals, name);
            Described::Portal(name.to_owned())
        };
        self.describes.push_back((segment, target));
    }

    /// A Describe of the portal to send before this Execute, when nothing
    /// else tells Sluice the columns of its rows (a client that never
    /// describes). Without it column rules could not be placed.
    pub(crate) fn describe_to_inject(
        &mut self,
        body: &[u8],
        statement: &str,
        segment: u64,
    ) -> Option<BytesMut> {
        let portal = Reader::new(body).cstr().ok()?;
        if self.client_portals.contains(portal) || self.client_statements.contains(statement) {
            return None;
        }
        remember(&mut self.client_portals, portal);
        self.describes
            .push_back((segment, Described::Injected(portal.to_owned())));
        let mut body = Vec::with_capacity(portal.len() + 2);
        body.push(b'P');
        body.extend_from_slice(portal.as_bytes());
        body.push(0);
        Some(message(b'D', &body))
    }

    /// An Execute of a portal bound from `statement` is forwarded.
    pub(crate) fn on_execute(
        &mut self,
        body: &[u8],
        statement: Arc<str>,
        formats: Arc<[i16]>,
        segment: u64,
    ) {
        let portal = Reader::new(body).cstr().unwrap_or_default().to_owned();
        self.executes.push_back(Executed {
            segment,
            portal,
            statement,
            formats,
        });
    }

    /// One backend message; `z_seen` counts ReadyForQuery before it.
    /// Returns the message to send instead, when it changes.
    pub(crate) fn on_message(&mut self, tag: u8, frame: &[u8], z_seen: u64) -> Option<BytesMut> {
        let segment = z_seen + 1;
        let body = frame.get(5..).unwrap_or_default();
        match tag {
            b'T' => {
                let columns: Arc<[Column]> = rows::row_description(body).into();
                match self.take_describe(segment) {
                    Some(Described::Statement(name)) => {
                        if self.statements.len() >= MAX_STATEMENTS {
                            self.statements.clear();
                            self.plans.clear();
                        }
                        self.plans.remove(&name);
                        self.statements.insert(name, columns);
                    }
                    // The portal's rows come with its Executes, in the
                    // formats this RowDescription gives.
                    Some(Described::Portal(name)) => {
                        if self.portals.len() >= MAX_STATEMENTS {
                            self.portals.clear();
                        }
                        self.portals.insert(name, columns);
                    }
                    // Sluice's own Describe: noted, not forwarded.
                    Some(Described::Injected(name)) => {
                        self.portals.insert(name, columns);
                        return Some(BytesMut::new());
                    }
                    // A simple query's rows follow.
                    None => {
                        self.current = Some(plan_columns(&self.mask, &columns, None).into());
                    }
                }
                None
            }
            b'n' => match self.take_describe(segment) {
                Some(Described::Injected(_)) => Some(BytesMut::new()),
                _ => None,
            },
            b'D' => {
                if self.current.is_none() {
                    self.current = Some(self.execute_plan(segment));
                }
                let plans: &[Plan] = self.current.as_deref().unwrap_or_default();
                if plans.is_empty() && self.has_column_rules {
                    return rows::hide_row(body);
                }
                rows::mask_row(&self.mask.masker, plans, body)
            }
            b'C' | b'I' | b's' => {
                self.end_of_result(segment);
                None
            }
            b'E' | b'N' => {
                if tag == b'E' {
                    self.end_of_result(segment);
                }
                rows::mask_fields(&self.mask.masker, tag, body)
            }
            b'A' => rows::mask_notification(&self.mask.masker, body),
            b'V' => rows::mask_function_result(&self.mask.masker, body),
            b'H' => {
                self.copy_binary = body.first() == Some(&1);
                None
            }
            b'd' if self.copy_binary => rows::mask_copy_binary(&self.mask.masker, body),
            b'd' => rows::mask_copy_text(&self.mask.masker, body),
            b'c' => {
                self.copy_binary = false;
                None
            }
            b'1' | b'2' | b'3' => {
                self.acknowledged(segment);
                None
            }
            b'Z' => {
                // What the backend skipped after an error never took effect.
                self.forgets.retain(|(s, _)| *s > segment);
                self.describes.retain(|(s, _)| *s > segment);
                self.executes.retain(|e| e.segment > segment);
                self.current = None;
                self.copy_binary = false;
                None
            }
            _ => None,
        }
    }

    fn take_describe(&mut self, segment: u64) -> Option<Described> {
        match self.describes.front() {
            Some((s, _)) if *s == segment => self.describes.pop_front().map(|(_, d)| d),
            _ => None,
        }
    }

    /// The plan for rows of the next Execute of this segment without a
    /// RowDescription of their own.
    fn execute_plan(&mut self, segment: u64) -> Arc<[Plan]> {
        let Some(e) = self.executes.front().filter(|e| e.segment == segment) else {
            return Arc::from(Vec::new());
        };
        // A portal described in this segment but executed later, or one
        // described now: its own RowDescription wins.
        if let Some(columns) = self.portals.get(&e.portal) {
            return plan_columns(&self.mask, columns, None).into();
        }
        let (name, formats) = (e.statement.clone(), e.formats.clone());
        let Some(columns) = self.statements.get(&*name) else {
            return Arc::from(Vec::new());
        };
        if let Some((planned_for, plan)) = self.plans.get(&*name) {
            if **planned_for == *formats {
                return plan.clone();
            }
        }
        let plan: Arc<[Plan]> = plan_columns(&self.mask, columns, Some(&formats)).into();
        self.plans.insert(name.to_string(), (formats, plan.clone()));
        plan
    }

    fn end_of_result(&mut self, segment: u64) {
        self.current = None;
        if self.executes.front().is_some_and(|e| e.segment == segment) {
            self.executes.pop_front();
        }
    }
}

/// Notes a described name; a client that never closes what it describes
/// makes the set start over (more Describes injected), not grow.
fn remember(names: &mut HashSet<String>, name: &str) {
    if names.len() >= MAX_STATEMENTS {
        names.clear();
    }
    names.insert(name.to_owned());
}

/// A message with `tag` and `body`, its length computed.
pub(crate) fn message(tag: u8, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.put_u8(tag);
    out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    out.put_slice(body);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_mask::MaskConfig;

    fn masking() -> ResultMasking {
        ResultMasking::new(SessionMask {
            masker: Arc::new(Masker::new(MaskConfig::default()).unwrap()),
            catalog: Arc::default(),
        })
    }

    #[test]
    fn binds_the_backend_never_acknowledges_stay_bounded() {
        let mut m = masking();
        m.portals.insert("p".into(), Arc::from(Vec::new()));
        for _ in 0..MAX_UNACKNOWLEDGED + 10 {
            m.on_parse_bind_close(b'B', b"\0\0", 1);
        }
        assert!(m.forgets.len() <= MAX_UNACKNOWLEDGED);
        assert!(m.portals.is_empty(), "columns forgotten, not kept stale");
    }
}
