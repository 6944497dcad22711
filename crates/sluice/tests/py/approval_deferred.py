"""A psycopg 3 client meeting deferred approval.

The first run of a parameterized UPDATE is refused with SQLSTATE SL001 naming
the approval request; the script prints "request <id>" and waits for a line
on stdin (the test approves meanwhile). The same statement with the same
parameters then runs once ("rerun rowcount 1"); a third run is refused again
as a new request ("third request <id>"). Exits non-zero on anything else.

usage: approval_deferred.py GATEWAY_CONNINFO
"""
import re
import sys

import psycopg

UPDATE = "update accounts set balance = balance + %s where id = %s"
PARAMS = (5, 1)


def refused(conn):
    """Runs the update expecting SL001; returns the request id."""
    try:
        conn.execute(UPDATE, PARAMS)
    except psycopg.Error as e:
        if e.sqlstate != "SL001":
            sys.exit(f"expected SL001, got {e.sqlstate}: {e}")
        message = e.diag.message_primary or str(e)
        found = re.search(r"apr_[0-9a-f]+", message)
        if not found:
            sys.exit(f"no request id in the message: {message!r}")
        hint = e.diag.message_hint or ""
        if found.group(0) not in hint:
            sys.exit(f"the hint does not name {found.group(0)}: {hint!r}")
        return found.group(0)
    sys.exit("the update ran without an approval")


def main():
    with psycopg.connect(sys.argv[1], autocommit=True) as conn:
        first = refused(conn)
        print("request", first, flush=True)
        if not sys.stdin.readline():
            sys.exit("stdin closed before the approval")
        cur = conn.execute(UPDATE, PARAMS)
        print("rerun rowcount", cur.rowcount, flush=True)
        if cur.rowcount != 1:
            sys.exit(f"the approved update changed {cur.rowcount} rows")
        third = refused(conn)
        print("third request", third, flush=True)
        if third == first:
            sys.exit("the used approval was accepted again")
        # The session is still usable.
        conn.execute("select 1").fetchone()


if __name__ == "__main__":
    main()
