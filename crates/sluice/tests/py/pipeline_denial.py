"""A pipeline (one Sync for several statements) with a denied statement in
the middle must behave through the gateway exactly as the same pipeline with
a failing statement behaves on PostgreSQL directly.

usage: pipeline_denial.py GATEWAY_CONNINFO DIRECT_CONNINFO
"""
import sys

import psycopg


def run(conninfo, table, middle):
    """Runs insert / middle / select in one pipeline; returns what was seen."""
    seen = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            with conn.pipeline():
                first = conn.execute(f"insert into {table} values (1)")
                conn.execute(middle)
                conn.execute(f"select count(*) from {table}")
        except psycopg.Error as e:
            seen["error"] = e.sqlstate
        seen["first_rowcount"] = first.rowcount
        seen["usable_after"] = conn.execute("select 41 + 1").fetchone()[0]
    return seen


def main():
    gateway, direct = sys.argv[1], sys.argv[2]
    with psycopg.connect(direct, autocommit=True) as admin:
        for t in ("pl_gateway", "pl_direct"):
            admin.execute(f"drop table if exists {t}")
            admin.execute(f"create table {t} (id int)")
    through = run(gateway, "pl_gateway", "update pl_gateway set id = 2")
    plain = run(direct, "pl_direct", "select 1 / 0")
    with psycopg.connect(direct) as admin:
        rows = {t: admin.execute(f"select count(*) from {t}").fetchone()[0] for t in ("pl_gateway", "pl_direct")}
    print("gateway:", through, "rows", rows["pl_gateway"])
    print("direct: ", plain, "rows", rows["pl_direct"])
    failures = []
    if through.get("error") != "42501":
        failures.append(f"the denial should surface as 42501, got {through.get('error')}")
    if plain.get("error") != "22012":
        failures.append(f"the direct run should fail with 22012, got {plain.get('error')}")
    for key in ("first_rowcount", "usable_after"):
        if through.get(key) != plain.get(key):
            failures.append(f"{key}: gateway {through.get(key)} != direct {plain.get(key)}")
    if rows["pl_gateway"] != rows["pl_direct"]:
        failures.append(f"rows left: gateway {rows['pl_gateway']} != direct {rows['pl_direct']}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
