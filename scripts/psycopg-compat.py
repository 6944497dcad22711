"""Compares two JUnit reports of psycopg's test suite (direct, through Sluice).

Prints how many tests behave identically and each one that does not, with
the reason from the known-differences file when it is listed there. Exit 1
when a difference is not listed, or a listed one no longer differs.

The known-differences file has one test per line, `<test id>  # <reason>`;
blank lines and lines starting with `#` are ignored.
"""

import sys
import xml.etree.ElementTree as ET


def outcomes(path):
    """{test id: (outcome, message)} from a JUnit XML report."""
    result = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or "").splitlines()[0:1]
                message = message[0][:160] if message else ""
                break
        result[test_id] = (outcome, message)
    return result


def known(path):
    listed = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            test_id, _, reason = line.partition("#")
            listed[test_id.strip()] = reason.strip()
    return listed


def main(direct_path, sluice_path, known_path):
    direct, sluice, listed = outcomes(direct_path), outcomes(sluice_path), known(known_path)
    tests = sorted(direct.keys() | sluice.keys())
    same, unexplained, explained = 0, [], []
    for t in tests:
        d = direct.get(t, ("absent", ""))
        s = sluice.get(t, ("absent", ""))
        # Skip reasons may name the server; outcomes are what must match.
        if d[0] == s[0]:
            same += 1
            continue
        line = f"  {t}: direct {d[0]}, through Sluice {s[0]}" + (f" ({s[1]})" if s[1] else "")
        if t in listed:
            explained.append(f"{line}\n      known: {listed[t]}")
        else:
            unexplained.append(line)
    stale = [t for t in listed if t in direct and direct.get(t, ("",))[0] == sluice.get(t, ("",))[0]]

    def tally(r):
        counts = {}
        for outcome, _ in r.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        return ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))

    print(f"direct:         {tally(direct)}")
    print(f"through Sluice: {tally(sluice)}")
    if explained:
        print(f"{len(explained)} known, documented difference(s):")
        print("\n".join(explained))
    if unexplained:
        print(f"{len(unexplained)} unexplained difference(s):")
        print("\n".join(unexplained))
    if stale:
        print(f"{len(stale)} listed difference(s) no longer differ; remove them from {known_path}:")
        print("\n".join(f"  {t}" for t in stale))
    print(f"psycopg compat: {same} of {len(tests)} tests behave identically through Sluice")
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
