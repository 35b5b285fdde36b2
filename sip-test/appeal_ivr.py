#!/usr/bin/env python3
"""Check where the voice menu took a call, in the daemon's appeal.

Usage: appeal_ivr.py DB CALL_ID_PREFIX QUEUE CATEGORY [TIMEOUT_S]

DB is the daemon's SQLite file. The appeal is the one whose call_id starts
with CALL_ID_PREFIX. Passes (exit 0) when its `queue` is QUEUE, its
`category` is CATEGORY and its timeline has an `entered_queue` event for
QUEUE. The appeal writer goes through a spool, so the check is retried until
TIMEOUT_S (default 10). Prints `queue=... category=... path=... events=...`.
"""
import json
import sqlite3
import sys
import time


def read(db, prefix):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
    try:
        like = prefix.replace("%", "") + "%"
        row = con.execute(
            "SELECT id, queue, category, ivr_path FROM appeals WHERE call_id LIKE ? "
            "ORDER BY id DESC LIMIT 1",
            (like,),
        ).fetchone()
        if row is None:
            return None, None, None, []
        events = con.execute(
            "SELECT kind, data FROM appeal_events WHERE appeal_id = ? ORDER BY seq",
            (row[0],),
        ).fetchall()
    finally:
        con.close()
    return row[1], row[2], row[3], [(k, json.loads(d)) for k, d in events]


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    db, prefix, queue, category = sys.argv[1:5]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
    deadline = time.monotonic() + timeout
    got = (None, None, None, [])
    error = None
    while True:
        try:
            got = read(db, prefix)
            error = None
        except sqlite3.Error as e:  # not created yet, or locked by the writer
            error = e
        q, c, _, events = got
        entered = any(k == "entered_queue" and d.get("queue") == queue for k, d in events)
        ok = q == queue and c == category and entered
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    q, c, path, events = got
    kinds = ",".join(k for k, _ in events) or "-"
    detail = f"queue={q} category={c} path={path} events={kinds}"
    if error is not None:
        detail += f" (database: {error})"
    print(detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
