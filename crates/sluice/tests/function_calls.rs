//! A statement that calls a function Sluice cannot prove only reads is
//! `Action::"call"`, outside every group: with `permit read` alone, no
//! owner-created function that writes runs, wherever the call hides; with
//! `permit call` the same statements run. Functions that the catalog shows
//! read only (immutable/stable SQL and PL/pgSQL whose bodies call only
//! reads) stay reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{psql, resource_toml, Gateway};
use sluice_testkit::PgServer;

const POLICY: &str = r#"
@id("readers-read")
permit(principal in Group::"readers", action in Action::"read", resource);
@id("readers-session")
permit(principal in Group::"readers", action in [Action::"tcl", Action::"session", Action::"prepare"], resource);
@id("readers-no-row-locks")
forbid(principal in Group::"readers", action, resource) when { context.locks_rows };
@id("callers")
permit(principal in Group::"callers", action in [Action::"read", Action::"call", Action::"tcl", Action::"session", Action::"prepare"], resource);
@id("owners")
permit(principal in Group::"owners", action in [Action::"read", Action::"write", Action::"schema", Action::"call", Action::"tcl", Action::"session"], resource);
"#;

/// Owner-created objects: writers, a stable function that launders a
/// writer, honest readers, views over both, a user overload of a builtin.
const SCHEMA: &str = r#"
create table accounts (id int primary key, owner text);
alter table accounts owner to scram_user;
create sequence ids; alter sequence ids owner to scram_user;
create function wipe() returns int language sql volatile
  as 'delete from accounts where id = (select min(id) from accounts) returning 1';
create function wipe_rows() returns setof int language sql volatile
  as 'delete from accounts where id = (select min(id) from accounts) returning id';
create function launder() returns int language plpgsql stable
  as $$ begin perform wipe(); return 1; end $$;
create function tax(numeric) returns numeric language sql immutable as 'select $1 * 1.2';
create function owners() returns bigint language sql stable as 'select count(*) from accounts';
create function lower(int) returns int language plpgsql volatile
  as $$ begin delete from accounts where id = $1; return 1; end $$;
create function zap(a accounts) returns int language sql volatile
  as 'delete from accounts where id = $1.id returning 1';
create view wiping as select wipe() as w;
create view honest as select owner, tax(id) from accounts;
alter function owners() owner to scram_user;
grant all on all tables in schema public to scram_user;
grant create on schema public to scram_user;
"#;

struct Setup {
    gw: Gateway,
    pg: PgServer,
    reader: String,
    caller: String,
    owner: String,
}

impl Setup {
    fn new() -> Setup {
        let pg = PgServer::start();
        pg.psql("app", SCHEMA);
        let mut gw = Gateway::configure_with_policy(
            "",
            &resource_toml("app", &pg, "scram_user", Some("PW"), ""),
            POLICY,
        );
        gw.start(&[("PW", "scram_pw")]);
        let reader = gw.create_key("reader", "readers");
        let caller = gw.create_key("caller", "callers");
        let owner = gw.create_key("owner", "owners");
        Setup {
            gw,
            pg,
            reader,
            caller,
            owner,
        }
    }

    fn fill(&self) {
        self.pg.psql(
            "app",
            "delete from accounts; insert into accounts select g, 'o' || g from generate_series(1, 50) g",
        );
    }

    fn rows(&self) -> String {
        self.pg
            .psql("app", "select count(*) from accounts")
            .trim()
            .to_owned()
    }

    fn conn(&self, who: &str) -> String {
        let key = match who {
            "reader" => &self.reader,
            "caller" => &self.caller,
            _ => &self.owner,
        };
        self.gw.conn_str(who, key, "app")
    }
}

/// Each position a call can hide in.
const EVASIONS: &[&str] = &[
    "select wipe()",
    "select * from wipe_rows()",
    "select id from accounts where wipe() > 0",
    "select (select wipe())",
    "select * from (select wipe()) s",
    "values (wipe())",
    "with w as (select wipe()) select * from w",
    "explain analyze select wipe()",
    "begin; declare c cursor for select wipe(); fetch 1 from c; commit",
    "prepare p as select wipe(); execute p",
    "select launder()",
    "select * from wiping",
    "select lower(1)",
    "select public.lower(1)",
    "select count(*) from accounts group by wipe()",
    "select id from accounts order by wipe() limit 1",
    // Attribute notation: `a.zap` is `zap(a)`.
    "select a.zap from accounts a where id = 1",
    "select (s.a).zap from (select a from accounts a where id = 2) s",
    "copy (select wipe()) to stdout",
];

#[test]
fn writing_functions_called_from_any_position_are_refused_with_permit_read_and_run_with_permit_call(
) {
    let s = Setup::new();
    for sql in EVASIONS {
        s.fill();
        let (ok, _, err) = psql(&s.conn("reader"), sql);
        assert!(!ok, "{sql}: ran for a reader");
        assert!(err.contains("permits `call`"), "{sql}: {err}");
        assert_eq!(s.rows(), "50", "{sql}: a row was deleted");
        let (ok, _, err) = psql(&s.conn("caller"), sql);
        assert!(ok, "{sql}: refused with permit call: {err}");
        assert!(s.rows().parse::<u32>().unwrap() < 50, "{sql}: nothing ran");
    }
}

#[test]
fn functions_and_views_the_catalog_proves_read_only_stay_reads() {
    let s = Setup::new();
    s.fill();
    for sql in [
        "select tax(2)",
        "select owners()",
        "select upper('abc')",
        "select count(*), now(), random() from accounts",
        "select * from honest limit 1",
        "select pg_catalog.lower('X')",
        "explain select wipe()",
    ] {
        let (ok, _, err) = psql(&s.conn("reader"), sql);
        assert!(ok, "{sql}: refused: {err}");
    }
    assert_eq!(s.rows(), "50");
    // Which overload an unqualified name reaches depends on argument types
    // Sluice does not know: a writer overloading `lower` makes every
    // unqualified `lower(...)` a call; the qualified builtin stays a read.
    let (ok, _, err) = psql(&s.conn("reader"), "select lower('ABC')");
    assert!(!ok && err.contains("permits `call`"), "{err}");
}

#[test]
fn builtins_that_change_state_are_not_reads() {
    let s = Setup::new();
    for sql in [
        "select nextval('ids')",
        "select setval('ids', 10)",
        "select pg_advisory_lock(1)",
        "select lo_create(0)",
        "select pg_notify('c', 'x')",
    ] {
        let (ok, _, err) = psql(&s.conn("reader"), sql);
        assert!(!ok, "{sql}: ran for a reader");
        assert!(err.contains("denied by policy"), "{sql}: {err}");
    }
}

#[test]
fn row_locks_are_visible_to_policy() {
    let s = Setup::new();
    s.fill();
    let (ok, _, err) = psql(&s.conn("reader"), "select * from accounts for update");
    assert!(!ok && err.contains("readers-no-row-locks"), "{err}");
    let (ok, _, err) = psql(
        &s.conn("reader"),
        "select * from accounts where id in (select id from accounts for share)",
    );
    assert!(!ok && err.contains("readers-no-row-locks"), "{err}");
    let (ok, _, err) = psql(&s.conn("reader"), "select * from accounts");
    assert!(ok, "{err}");
}

#[test]
fn replacing_a_function_through_sluice_is_seen_by_the_next_statement() {
    let s = Setup::new();
    s.fill();
    assert!(psql(&s.conn("reader"), "select owners()").0);
    // The owner turns a reader into a writer, in one session, and calls it
    // right after in the same session (no call permit is needed for the
    // owner, so this shows the session's own view caught up).
    let replace = "create or replace function owners() returns bigint language sql volatile \
                   as 'delete from accounts where id = (select min(id) from accounts) returning 1::bigint'";
    let (ok, _, err) = psql(&s.conn("owner"), replace);
    assert!(ok, "{err}");
    let (ok, _, err) = psql(&s.conn("reader"), "select owners()");
    assert!(
        !ok && err.contains("call"),
        "replaced function still a read: {err}"
    );
    assert_eq!(s.rows(), "50");
}

#[test]
fn inside_the_transaction_that_defines_a_function_nothing_is_proven() {
    let s = Setup::new();
    s.fill();
    // The owner may read, write, change the schema and call; a reader-like
    // check is the audit: the SELECT is recorded as a `call`.
    let (ok, _, err) = psql(
        &s.conn("owner"),
        "begin; create function again() returns int language sql stable as 'select 1'; select again(); commit",
    );
    assert!(ok, "{err}");
    let audit = s.gw.cli(&["audit", "export", "--format", "jsonl"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    let record = text
        .lines()
        .find(|l| l.contains("select again()"))
        .unwrap_or_else(|| panic!("no record of the call: {text}"));
    assert!(
        record.contains("\"call\""),
        "the call inside the defining transaction was not judged as a call: {record}"
    );
    // Once committed and read again, the same function is a read.
    let (ok, _, err) = psql(&s.conn("reader"), "select again()");
    assert!(ok, "{err}");
}

#[test]
fn policy_check_says_how_each_function_is_treated_and_why() {
    let s = Setup::new();
    let out = s.gw.cli(&[
        "policy",
        "check",
        "--identity",
        "reader",
        "--resource",
        "app",
        "--json",
        "select lower(owner), wipe(), nextval('ids'), pg_advisory_lock(1) from accounts",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let statement = &report["statements"][0];
    assert_eq!(statement["action"], "admin");
    let treated: Vec<(String, String)> = statement["function_treatment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert!(!t["why"].as_str().unwrap().is_empty());
            (
                t["function"].as_str().unwrap().to_owned(),
                t["treated_as"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("lower", "read"),
        ("wipe", "call"),
        ("nextval", "update"),
        ("pg_advisory_lock", "admin"),
    ];
    for (function, treated_as) in expect {
        assert!(
            treated.contains(&(function.to_owned(), treated_as.to_owned())),
            "{function} as {treated_as}: {treated:?}"
        );
    }
    let decision = report["decision"].to_string();
    assert!(decision.contains("deny"), "{decision}");
}
