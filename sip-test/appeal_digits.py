#!/usr/bin/env python3
"""Print the DTMF digits the daemon wrote to an appeal, and check them.

Usage: appeal_digits.py DB CALL_ID_PREFIX EXPECTED [TIMEOUT_S]

DB is the daemon's SQLite file. The appeal is the one whose call_id starts
with CALL_ID_PREFIX; its `ivr_choice` events with a digit (written by the
daemon for every DTMF digit, data {"digit", "via"}; the menu's own steps are
ivr_choice events without one) are read in order. The appeal writer goes
through a spool, so the events may land a moment after the call: the check is
retried until TIMEOUT_S (default 10). Prints `digits=... via=...` and exits 0
when the digits equal EXPECTED, 1 otherwise.
"""
import json
import sqlite3
import sys
import time


def read(db, prefix):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
    try:
        rows = con.execute(
            "SELECT e.data FROM appeal_events e JOIN appeals a ON a.id = e.appeal_id "
            "WHERE a.call_id LIKE ? AND e.kind = 'ivr_choice' ORDER BY a.id, e.seq",
            (prefix.replace("%", "") + "%",),
        ).fetchall()
    finally:
        con.close()
    # key presses carry "digit"; the menu's steps (path, category…) are ivr_choice events too
    events = [e for e in (json.loads(r[0]) for r in rows) if "digit" in e]
    return "".join(e.get("digit", "?") for e in events), sorted({e.get("via", "?") for e in events})


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    db, prefix, expected = sys.argv[1:4]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    deadline = time.monotonic() + timeout
    digits, via, error = "", [], None
    while True:
        try:
            digits, via = read(db, prefix)
            error = None
        except sqlite3.Error as e:  # not created yet, or locked by the writer
            error = e
        if digits == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    detail = f"digits={digits!r} via={','.join(via) or '-'}"
    if error is not None:
        detail += f" (database: {error})"
    print(detail)
    return 0 if digits == expected else 1


if __name__ == "__main__":
    sys.exit(main())
