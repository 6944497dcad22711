//! Rows in and out of SQLite. Nothing here decides anything: the rules live
//! in [`crate::approvals`] and [`crate::consume`].

use crate::clock::Timestamp;
use crate::error::ApprovalError;
use crate::fingerprint::Fingerprint;
use crate::grant::Grant;
use crate::request::{ListFilter, Mode, Request, Status, Vote, VoteDecision};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::de::DeserializeOwned;
use sluice_core::Identity;

const REQUEST_COLUMNS: &str = "id, requester, requester_groups, resource, text, params, \
     fingerprint, actions, policy_id, reason, approver_group, quorum, mode, status, \
     created_at, expires_at, decided_at, withdraw_reason, session_state";

const GRANT_COLUMNS: &str =
    "request_id, fingerprint, requester, resource, approvers, decision, expires_at, signature";

fn corrupt(what: &str, id: &str, detail: impl ToString) -> ApprovalError {
    ApprovalError::Corrupt {
        what: format!("{what} of {id}"),
        detail: detail.to_string(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, ApprovalError> {
    serde_json::to_string(value).map_err(|e| ApprovalError::Corrupt {
        what: "json column".into(),
        detail: e.to_string(),
    })
}

fn from_json<T: DeserializeOwned>(what: &str, id: &str, text: &str) -> Result<T, ApprovalError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, id, e))
}

fn fingerprint_column(id: &str, hex: &str) -> Result<Fingerprint, ApprovalError> {
    Fingerprint::from_hex(hex).ok_or_else(|| corrupt("fingerprint", id, hex))
}

pub(crate) fn insert_request(conn: &Connection, r: &Request) -> Result<(), ApprovalError> {
    conn.execute(
        &format!(
            "INSERT INTO requests ({REQUEST_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ),
        params![
            r.id,
            r.requester.name,
            to_json(&r.requester.groups)?,
            r.resource,
            r.text,
            to_json(&r.params)?,
            r.fingerprint.as_str(),
            to_json(&r.actions)?,
            r.policy_id,
            r.reason,
            r.approver_group,
            r.quorum,
            r.mode.as_str(),
            r.status.as_str(),
            r.created_at.unix_micros(),
            r.expires_at.unix_micros(),
            r.decided_at.map(Timestamp::unix_micros),
            r.withdraw_reason,
            r.session_state,
        ],
    )?;
    Ok(())
}

/// The raw columns of one request row; decoded outside the rusqlite
/// callback so decoding errors keep their own variant.
struct RawRequest {
    id: String,
    requester: String,
    groups: String,
    resource: String,
    text: String,
    params: String,
    fingerprint: String,
    actions: String,
    policy_id: String,
    reason: Option<String>,
    approver_group: String,
    quorum: u32,
    mode: String,
    status: String,
    created_at: i64,
    expires_at: i64,
    decided_at: Option<i64>,
    withdraw_reason: Option<String>,
    session_state: String,
}

fn raw_request(row: &Row<'_>) -> rusqlite::Result<RawRequest> {
    Ok(RawRequest {
        id: row.get(0)?,
        requester: row.get(1)?,
        groups: row.get(2)?,
        resource: row.get(3)?,
        text: row.get(4)?,
        params: row.get(5)?,
        fingerprint: row.get(6)?,
        actions: row.get(7)?,
        policy_id: row.get(8)?,
        reason: row.get(9)?,
        approver_group: row.get(10)?,
        quorum: row.get(11)?,
        mode: row.get(12)?,
        status: row.get(13)?,
        created_at: row.get(14)?,
        expires_at: row.get(15)?,
        decided_at: row.get(16)?,
        withdraw_reason: row.get(17)?,
        session_state: row.get(18)?,
    })
}

fn decode_request(conn: &Connection, raw: RawRequest) -> Result<Request, ApprovalError> {
    let id = raw.id;
    let mode = Mode::parse(&raw.mode).ok_or_else(|| corrupt("mode", &id, &raw.mode))?;
    let status = Status::parse(&raw.status).ok_or_else(|| corrupt("status", &id, &raw.status))?;
    let votes = load_votes(conn, &id)?;
    Ok(Request {
        requester: Identity::new(raw.requester, from_json("groups", &id, &raw.groups)?),
        resource: raw.resource,
        text: raw.text,
        params: from_json("params", &id, &raw.params)?,
        session_state: raw.session_state,
        fingerprint: fingerprint_column(&id, &raw.fingerprint)?,
        actions: from_json("actions", &id, &raw.actions)?,
        policy_id: raw.policy_id,
        reason: raw.reason,
        approver_group: raw.approver_group,
        quorum: raw.quorum,
        mode,
        status,
        created_at: Timestamp::from_unix_micros(raw.created_at),
        expires_at: Timestamp::from_unix_micros(raw.expires_at),
        decided_at: raw.decided_at.map(Timestamp::from_unix_micros),
        withdraw_reason: raw.withdraw_reason,
        votes,
        id,
    })
}

pub(crate) fn load_request(conn: &Connection, id: &str) -> Result<Option<Request>, ApprovalError> {
    let raw = conn
        .query_row(
            &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"),
            [id],
            raw_request,
        )
        .optional()?;
    raw.map(|raw| decode_request(conn, raw)).transpose()
}

pub(crate) fn list_requests(
    conn: &Connection,
    filter: &ListFilter,
) -> Result<Vec<Request>, ApprovalError> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(&format!(
        "SELECT {REQUEST_COLUMNS} FROM requests \
         WHERE (?1 IS NULL OR status = ?1) \
         ORDER BY created_at DESC, rowid DESC LIMIT ?2"
    ))?;
    let raws = stmt
        .query_map(
            params![filter.status.map(Status::as_str), limit],
            raw_request,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter()
        .map(|raw| decode_request(conn, raw))
        .collect()
}

fn load_votes(conn: &Connection, id: &str) -> Result<Vec<Vote>, ApprovalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT approver, decision, comment, at FROM votes WHERE request_id = ?1 \
         ORDER BY at, rowid",
    )?;
    let rows = stmt
        .query_map([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(approver, decision, comment, at)| {
            let decision =
                VoteDecision::parse(&decision).ok_or_else(|| corrupt("vote", id, &decision))?;
            Ok(Vote {
                approver,
                decision,
                comment,
                at: Timestamp::from_unix_micros(at),
            })
        })
        .collect()
}

pub(crate) fn insert_vote(conn: &Connection, id: &str, vote: &Vote) -> Result<(), ApprovalError> {
    conn.execute(
        "INSERT INTO votes (request_id, approver, decision, comment, at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id,
            vote.approver,
            vote.decision.as_str(),
            vote.comment,
            vote.at.unix_micros()
        ],
    )?;
    Ok(())
}

/// Moves a request out of `from`; returns false when it was no longer in
/// `from` (another handle got there first).
pub(crate) fn transition(
    conn: &Connection,
    id: &str,
    from: Status,
    to: Status,
    decided_at: Option<Timestamp>,
    withdraw_reason: Option<&str>,
) -> Result<bool, ApprovalError> {
    let changed = conn.execute(
        "UPDATE requests SET status = ?3, \
             decided_at = COALESCE(?4, decided_at), \
             withdraw_reason = COALESCE(?5, withdraw_reason) \
         WHERE id = ?1 AND status = ?2",
        params![
            id,
            from.as_str(),
            to.as_str(),
            decided_at.map(Timestamp::unix_micros),
            withdraw_reason
        ],
    )?;
    Ok(changed == 1)
}

/// Ids of pending requests whose time is up.
pub(crate) fn due_for_expiry(
    conn: &Connection,
    now: Timestamp,
) -> Result<Vec<String>, ApprovalError> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM requests WHERE status = 'pending' AND expires_at <= ?1")?;
    let ids = stmt
        .query_map([now.unix_micros()], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

pub(crate) fn insert_grant(
    conn: &Connection,
    grant: &Grant,
    created_at: Timestamp,
) -> Result<(), ApprovalError> {
    conn.execute(
        &format!(
            "INSERT INTO grants ({GRANT_COLUMNS}, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        params![
            grant.request_id,
            grant.fingerprint.as_str(),
            grant.requester,
            grant.resource,
            to_json(&grant.approvers)?,
            grant.decision,
            grant.expires_at.unix_micros(),
            grant.signature,
            created_at.unix_micros(),
        ],
    )?;
    Ok(())
}

/// A grant row with its consumption mark.
pub(crate) struct StoredGrant {
    pub grant: Grant,
    pub consumed_at: Option<Timestamp>,
}

struct RawGrant {
    request_id: String,
    fingerprint: String,
    requester: String,
    resource: String,
    approvers: String,
    decision: String,
    expires_at: i64,
    signature: String,
    consumed_at: Option<i64>,
}

fn raw_grant(row: &Row<'_>) -> rusqlite::Result<RawGrant> {
    Ok(RawGrant {
        request_id: row.get(0)?,
        fingerprint: row.get(1)?,
        requester: row.get(2)?,
        resource: row.get(3)?,
        approvers: row.get(4)?,
        decision: row.get(5)?,
        expires_at: row.get(6)?,
        signature: row.get(7)?,
        consumed_at: row.get(8)?,
    })
}

fn decode_grant(raw: RawGrant) -> Result<StoredGrant, ApprovalError> {
    // A fingerprint or approver list that does not even decode cannot be what
    // was signed: refuse it like any other edit.
    let tampered = || ApprovalError::TamperedGrant {
        id: raw.request_id.clone(),
    };
    let fingerprint = Fingerprint::from_hex(&raw.fingerprint).ok_or_else(tampered)?;
    let approvers: Vec<String> = serde_json::from_str(&raw.approvers).map_err(|_| tampered())?;
    Ok(StoredGrant {
        grant: Grant {
            fingerprint,
            approvers,
            expires_at: Timestamp::from_unix_micros(raw.expires_at),
            requester: raw.requester,
            resource: raw.resource,
            decision: raw.decision,
            signature: raw.signature,
            request_id: raw.request_id,
        },
        consumed_at: raw.consumed_at.map(Timestamp::from_unix_micros),
    })
}

pub(crate) fn load_grant(
    conn: &Connection,
    id: &str,
) -> Result<Option<StoredGrant>, ApprovalError> {
    let row = conn
        .query_row(
            &format!("SELECT {GRANT_COLUMNS}, consumed_at FROM grants WHERE request_id = ?1"),
            [id],
            raw_grant,
        )
        .optional()?;
    row.map(decode_grant).transpose()
}

/// Unconsumed, unexpired grants for exactly this statement, oldest first.
pub(crate) fn usable_grant_ids(
    conn: &Connection,
    fingerprint: &Fingerprint,
    requester: &str,
    resource: &str,
    now: Timestamp,
) -> Result<Vec<String>, ApprovalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.request_id FROM grants g JOIN requests r ON r.id = g.request_id \
         WHERE g.fingerprint = ?1 AND g.requester = ?2 AND g.resource = ?3 \
           AND g.consumed_at IS NULL AND g.expires_at > ?4 AND r.status = 'approved' \
         ORDER BY g.created_at, g.rowid",
    )?;
    let ids = stmt
        .query_map(
            params![fingerprint.as_str(), requester, resource, now.unix_micros()],
            |row| row.get(0),
        )?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

/// Marks a grant used; false when another consumer marked it first.
pub(crate) fn mark_consumed(
    conn: &Connection,
    id: &str,
    now: Timestamp,
) -> Result<bool, ApprovalError> {
    let changed = conn.execute(
        "UPDATE grants SET consumed_at = ?2 WHERE request_id = ?1 AND consumed_at IS NULL",
        params![id, now.unix_micros()],
    )?;
    Ok(changed == 1)
}
