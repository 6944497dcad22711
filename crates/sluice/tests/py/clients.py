#!/usr/bin/env python3
"""psycopg 3 through the Sluice gateway.

Usage: clients.py CONNINFO

Exercises what a Python application does: server-side parameter binding,
executemany, pipeline mode, prepared statements, binary cursors, COPY in both
directions, transactions and errors. Prints one line per check and exits
non-zero with a message on the first mismatch.
"""

import sys
import uuid

import psycopg
from psycopg import errors, sql


def check(name, got, want):
    if got != want:
        print(f"FAIL {name}: got {got!r}, want {want!r}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def main(conninfo):
    table = "py_" + uuid.uuid4().hex[:12]
    t = sql.Identifier(table)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql.SQL("create table {} (id int primary key, name text, data bytea)").format(t))

        # Server-side binding: psycopg 3 sends Parse/Bind with $n parameters.
        cur.execute("select %s::int + %s::int, %s::text, %s::text is null", (40, 2, "O'Reilly; --", None))
        check("parameterized query", cur.fetchone(), (42, "O'Reilly; --", True))

        cur.executemany(
            sql.SQL("insert into {} (id, name, data) values (%s, %s, %s)").format(t),
            [(i, f"name {i}", bytes([i % 256, 0, 255])) for i in range(1, 201)],
        )
        cur.execute(sql.SQL("select count(*), sum(id) from {}").format(t))
        check("executemany", cur.fetchone(), (200, 20100))

        # Pipeline mode: many statements in flight before any result is read.
        with conn.pipeline():
            curs = []
            for i in range(1, 31):
                c = conn.cursor()
                c.execute(sql.SQL("select name from {} where id = %s").format(t), (i,))
                curs.append(c)
            conn.execute(sql.SQL("update {} set name = name || '!' where id <= %s").format(t), (10,))
        check("pipeline results", [c.fetchone()[0] for c in curs], [f"name {i}" for i in range(1, 31)])
        cur.execute(sql.SQL("select count(*) from {} where name like '%!'").format(t))
        check("pipeline write", cur.fetchone()[0], 10)

        # A long pipeline: thousands of statements in flight, results read
        # while still sending (the gateway must not deadlock either side).
        with conn.pipeline():
            many = []
            for i in range(3000):
                c = conn.cursor()
                c.execute("select %s::int, repeat('p', 200)", (i,))
                many.append(c)
        got = [c.fetchone()[0] for c in many]
        check("long pipeline", got, list(range(3000)))

        # An error inside a pipeline: the failing statement raises, the
        # connection stays usable afterwards.
        try:
            with conn.pipeline():
                conn.execute("select 1")
                conn.execute("select 1/0")
                conn.execute("select 2")
            check("pipeline error raised", "no error", "DivisionByZero")
        except errors.DivisionByZero:
            print("ok   pipeline error raised", flush=True)
        check("after pipeline error", conn.execute("select 'usable'").fetchone()[0], "usable")

        # Prepared statements: prepare=True makes psycopg use a named statement.
        q = sql.SQL("select name from {} where id = %s").format(t)
        names = [conn.execute(q, (i,), prepare=True).fetchone()[0] for i in (11, 12, 13)]
        check("prepared statements", names, ["name 11", "name 12", "name 13"])
        prepared = conn.execute(
            "select count(*) from pg_prepared_statements where statement like %s",
            (f"select name from \"{table}\"%",),
        ).fetchone()[0]
        check("statement prepared on the server", prepared, 1)

        # Binary cursor: results come back in binary format.
        bcur = conn.cursor(binary=True)
        bcur.execute(
            sql.SQL("select id, name, data, 1.5::float8, array[1,2,3] from {} where id = %s").format(t), (7,)
        )
        check("binary cursor", bcur.fetchone(), (7, "name 7!", bytes([7, 0, 255]), 1.5, [1, 2, 3]))
        check("binary format used", bcur.pgresult.fformat(0), 1)

        # COPY FROM STDIN, row by row and in raw blocks.
        with cur.copy(sql.SQL("copy {} (id, name, data) from stdin").format(t)) as copy:
            for i in range(1001, 3001):
                copy.write_row((i, f"copied {i}", b"\x00\x01"))
        cur.execute(sql.SQL("select count(*) from {} where id > 1000").format(t))
        check("copy in (rows)", cur.fetchone()[0], 2000)

        # Binary COPY in.
        with cur.copy(sql.SQL("copy {} (id, name) from stdin (format binary)").format(t)) as copy:
            copy.set_types(["int4", "text"])
            for i in range(5001, 5101):
                copy.write_row((i, f"bin {i}"))
        cur.execute(sql.SQL("select count(*), min(name) from {} where id > 5000").format(t))
        check("copy in (binary)", cur.fetchone(), (100, "bin 5001"))

        # COPY TO STDOUT, text and binary.
        out = bytearray()
        with cur.copy(sql.SQL("copy (select id, name from {} where id > 1000 and id <= 3000 order by id) to stdout").format(t)) as copy:
            for block in copy:
                out += block
        want = "".join(f"{i}\tcopied {i}\n" for i in range(1001, 3001)).encode()
        check("copy out (text)", bytes(out), want)

        rows = []
        with cur.copy("copy (select i, 'r' || i from generate_series(1, 500) i) to stdout (format binary)") as copy:
            copy.set_types(["int4", "text"])
            rows = list(copy.rows())
        check("copy out (binary)", rows, [(i, f"r{i}") for i in range(1, 501)])

        # Errors keep their SQLSTATE.
        try:
            cur.execute(sql.SQL("insert into {} (id) values (1)").format(t))
            check("unique violation", "no error", "23505")
        except errors.UniqueViolation as e:
            check("unique violation sqlstate", e.sqlstate, "23505")

        # Parameter status after SET.
        conn.execute("set application_name = 'sluice_psycopg'")
        check("parameter status", conn.info.parameter_status("application_name"), "sluice_psycopg")

    # Transactions: rollback leaves nothing, commit persists.
    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("insert into {} (id, name) values (%s, %s)").format(t), (9001, "rolled back"))
            cur.execute(sql.SQL("select count(*) from {} where id = 9001").format(t))
            check("visible inside transaction", cur.fetchone()[0], 1)
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(sql.SQL("select count(*) from {} where id = 9001").format(t))
            check("rollback leaves nothing", cur.fetchone()[0], 0)
        conn.rollback()
        try:
            with conn.transaction():
                conn.execute(sql.SQL("insert into {} (id, name) values (9002, 'x')").format(t))
                conn.execute("select 1/0")
        except errors.DivisionByZero:
            pass
        with conn.transaction():
            conn.execute(sql.SQL("insert into {} (id, name) values (9003, 'committed')").format(t))
        got = conn.execute(sql.SQL("select id from {} where id > 9000 order by id").format(t)).fetchall()
        check("failed transaction rolled back, committed one kept", got, [(9003,)])
        conn.commit()

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("drop table {}").format(t))

    print("all psycopg checks passed", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: clients.py CONNINFO", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
