#!/usr/bin/env bash
# Durability of the appeal store, end to end (issue 6): the real `hotlined`
# under SIPp load, on 127.0.0.1 only.
#
#   kill9-sqlite        SIGKILL the daemon in the middle of the calls, start it
#                       again on the same SQLite file and spool: every call that
#                       got 180 has its appeal and its `created` event.
#   db-outage-postgres  stop PostgreSQL in the middle of the calls and start it
#                       again: no call fails, and every call has its appeal with
#                       `created` and `ended` events once the writer caught up.
#
# Usage: scripts/with-postgres.sh bash sip-test/durability.sh [CHECK-GLOB...]
# (`make sip-test` runs it so, after run.sh). The PostgreSQL check needs
# HOTLINE_TEST_PG_URL and HOTLINE_TEST_PG_CTL from with-postgres.sh and fails
# without them; `sip-test/durability.sh kill9-sqlite` runs the other alone.
#
# Why 180 is the proof: the daemon hands the appeal to the store (appends it
# to the spool file) before it sends 180 Ringing. The caller scenario
# (scenarios/uac_logged.xml) logs `ringing CALL-ID` for each 180 it received,
# so those Call-IDs are exactly the calls that must not be lost.
#
# Prints `PASS name (...)` / `FAIL name (...)` per check and `N passed, N
# failed` last; exits 1 when anything failed. Everything (daemon logs, the
# SQLite file, the spool, SIPp traces) stays in sip-test/out/durability/.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
# shellcheck source=sip-test/lib.sh
. "$ROOT/sip-test/lib.sh"
SELECT=("$@")

OUT="$ROOT/sip-test/out/durability"
rm -rf "$OUT"
mkdir -p "$OUT"

HOTLINED=${HOTLINED:-target/debug/hotlined}
DAEMON_PID=
DAEMON_LOG=
DAEMON_RUNS=0
SIPP_PID=
SIPP_DIR=

# Load: CALLS calls at RATE/s, each held 1 s after the answer (the line rings
# 2 s first), so ~3 s per call and ~90 calls up at once at 30/s.
CALLS=300
RATE=30

stop_daemon() { # TERM, KILL after 15 s; leaves the exit status in DAEMON_STATUS
    DAEMON_STATUS=
    [ -z "$DAEMON_PID" ] && return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null
    local i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_STATUS=$?
    DAEMON_PID=
}

cleanup() {
    trap - EXIT INT TERM
    kill_children
    stop_daemon
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# start_daemon DIR DB_URL: the daemon on $SIP_PORT/$SIP_PORT6/$ADMIN_PORT with
# its spool in DIR/spool, logs in DIR/hotlined.N.*.log; waits up to 30 s for
# /health. On failure returns 1 with the reason in WHY.
start_daemon() {
    local dir=$1 url=$2 i
    DAEMON_RUNS=$((DAEMON_RUNS + 1))
    DAEMON_LOG="$dir/hotlined.$DAEMON_RUNS.stderr.log"
    {
        echo "HOTLINED=$HOTLINED"
        echo "HOTLINE__SIP__LISTEN=127.0.0.1:$SIP_PORT"
        echo "HOTLINE__SIP__LISTEN_V6=[::1]:$SIP_PORT6"
        echo "HOTLINE__ADMIN__LISTEN=127.0.0.1:$ADMIN_PORT"
        echo "HOTLINE__DATABASE__URL=$url"
        echo "HOTLINE__DATABASE__SPOOL_DIR=$dir/spool"
        echo "HOTLINE__RECORDING__DIR=$dir/recordings"
        echo "HOTLINE__CALLS__SHUTDOWN_GRACE=5"
    } >"$dir/env.txt"
    HOTLINE__SIP__LISTEN="127.0.0.1:$SIP_PORT" \
        HOTLINE__SIP__LISTEN_V6="[::1]:$SIP_PORT6" \
        HOTLINE__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT" \
        HOTLINE__DATABASE__URL="$url" \
        HOTLINE__DATABASE__SPOOL_DIR="$dir/spool" \
        HOTLINE__RECORDING__DIR="$dir/recordings" \
        HOTLINE__CALLS__SHUTDOWN_GRACE=5 \
        "$HOTLINED" run --config config/hotline.toml >"$dir/hotlined.$DAEMON_RUNS.stdout.log" 2>"$DAEMON_LOG" &
    DAEMON_PID=$!
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            wait "$DAEMON_PID"
            WHY="daemon exited with status $? before it was ready"
            DAEMON_PID=
            return 1
        fi
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/health" 2>/dev/null && return 0
        sleep 0.1
    done
    WHY="no 200 from http://127.0.0.1:$ADMIN_PORT/health within 30 s"
    return 1
}

# sipp_start DIR RECV_TIMEOUT_MS: SIPp with scenarios/uac_logged.xml in the
# background (CALLS calls at RATE/s to 3758787 over UDP), tracing into DIR.
# A response that does not come within RECV_TIMEOUT_MS fails that call; the
# whole run ends after 40 s (hard kill 15 s later).
sipp_start() {
    local dir=$1 recv_timeout=$2 sp mp cp
    SIPP_DIR=$dir
    mkdir -p "$dir"
    pick_port sp 1 && pick_port mp 4 && pick_port cp 1 || return 1
    local args=(-sf "$SCENARIOS/uac_logged.xml" "127.0.0.1:$SIP_PORT" -t u1 -s 3758787
        -m "$CALLS" -r "$RATE" -l "$CALLS" -d 1000 -recv_timeout "$recv_timeout"
        -i 127.0.0.1 -bind_local -mi 127.0.0.1 -p "$sp" -mp "$mp"
        -ci 127.0.0.1 -cp "$cp" -nostdin -timeout 40s
        -trace_stat -stf stat.csv -fd 1 -trace_counts
        -trace_screen -screen_file screen.log
        -trace_err -error_file errors.log
        -trace_msg -message_file messages.log
        -trace_logs -log_file actions.log)
    printf '%q ' sipp "${args[@]}" >"$dir/command.txt"
    echo >>"$dir/command.txt"
    (cd "$dir" && exec timeout -k 5 55 sipp "${args[@]}" >sipp.stdout 2>sipp.stderr) &
    SIPP_PID=$!
    CHILD_PIDS+=("$SIPP_PID")
}

# sipp_wait: waits for the SIPp started last; its exit status in SIPP_RC.
sipp_wait() {
    wait "$SIPP_PID"
    SIPP_RC=$?
    forget_pid "$SIPP_PID"
    SIPP_PID=
}

# sipp_counter NAME: a counter from the last row of SIPp's stat.csv (e.g. FailedCall(C)).
sipp_counter() {
    python3 - "$SIPP_DIR/stat.csv" "$1" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1], encoding="latin-1"), delimiter=";") if r]
print(dict(zip(rows[0], rows[-1])).get(sys.argv[2], "?") if len(rows) > 1 else "?")
PY
}

# logged WORD: the Call-IDs SIPp logged as `WORD CALL-ID`, one per line.
logged() {
    sed -n "s/^.*$1 \\([^ ]*\\)\$/\\1/p" "$SIPP_DIR/actions.log" 2>/dev/null | sort -u
}

# spool_drained SPOOL_DIR SECONDS: waits until the spool file is empty (the
# writer truncates it only once all of it is committed). Sets WAITED.
spool_drained() {
    local f=$1/appeals.jsonl i
    for ((i = 0; i < $2 * 10; i++)); do
        WAITED="$((i / 10)).$((i % 10))s"
        [ ! -s "$f" ] && return 0
        sleep 0.1
    done
    return 1
}

# check_appeals ROWS CALLIDS KIND...: ROWS has `call_id|kind,kind,...` per
# appeal (from SQLite or psql). Every Call-ID in CALLIDS must have exactly one
# appeal carrying every KIND of event. Prints a summary; exit 1 if not.
check_appeals() {
    python3 - "$@" <<'PY'
import sys
rows_path, ids_path, *kinds = sys.argv[1:]
appeals = {}
for line in open(rows_path, encoding="utf-8"):
    line = line.rstrip("\n")
    if not line:
        continue
    call_id, _, events = line.partition("|")
    appeals.setdefault(call_id, []).append(set(filter(None, events.split(","))))
ids = [l.strip() for l in open(ids_path, encoding="utf-8") if l.strip()]
missing = [c for c in ids if c not in appeals]
dups = [c for c in ids if len(appeals.get(c, [])) > 1]
short = {k: [c for c in ids if c in appeals and not any(k in e for e in appeals[c])] for k in kinds}
found = len(ids) - len(missing)
parts = [f"{len(ids)} calls got 180", f"{found} appeals found for them",
         f"missing={len(missing)}", f"duplicated={len(dups)}"]
parts += [f"without {k}={len(v)}" for k, v in short.items()]
print(", ".join(parts))
bad = missing + dups + [c for v in short.values() for c in v]
for c in bad[:5]:
    print(f"  e.g. {c}: {appeals.get(c, 'no appeal')}", file=sys.stderr)
sys.exit(1 if bad or not ids else 0)
PY
}

for tool in sipp python3 curl timeout; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAIL setup (missing tool: $tool)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
if [ ! -x "$HOTLINED" ]; then
    echo "FAIL setup (no daemon binary at $HOTLINED: build it first, e.g. make build)"
    echo "0 passed, 1 failed"
    exit 1
fi

# ---------------------------------------------------------------------------
# kill9-sqlite
kill9_sqlite() {
    local name=kill9-sqlite dir="$OUT/kill9-sqlite"
    mkdir -p "$dir"
    local db="$dir/hotline.db"
    pick_port SIP_PORT 1 && pick_port SIP_PORT6 1 && pick_port ADMIN_PORT 1 ||
        { fail $name "no free ports"; return; }
    start_daemon "$dir" "sqlite://$db" || { fail $name "first start: $WHY"; return; }
    sipp_start "$dir/sipp" 5000 || { fail $name "no free ports for SIPp"; return; }
    # Half-way through sending the calls: ~150 sent, dozens ringing or talking.
    # Then, within 2 s, at a moment the spool holds operations not yet committed
    # (it is empty whenever the writer has caught up), so the restart has some
    # to replay; the size at the kill is reported.
    sleep 5
    local i
    for ((i = 0; i < 200; i++)); do
        [ -s "$dir/spool/appeals.jsonl" ] && break
        sleep 0.01
    done
    local killed_pid=$DAEMON_PID
    kill -KILL "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
    # The calls in flight now time out on SIPp's side (5 s without a response).
    sipp_wait
    logged ringing >"$dir/ringing.txt"
    logged done >"$dir/done.txt"
    local ringing completed inflight failed
    ringing=$(wc -l <"$dir/ringing.txt")
    completed=$(wc -l <"$dir/done.txt")
    inflight=$(comm -23 "$dir/ringing.txt" "$dir/done.txt" | wc -l)
    failed=$(sipp_counter 'FailedCall(C)')
    local spool_bytes
    spool_bytes=$(stat -c %s "$dir/spool/appeals.jsonl" 2>/dev/null || echo 0)
    start_daemon "$dir" "sqlite://$db" || { fail $name "restart after kill -9: $WHY"; return; }
    if ! spool_drained "$dir/spool" 20; then
        fail $name "spool still not empty 20 s after the restart"
        return
    fi
    local waited=$WAITED summary rc replayed
    replayed=$(sed -n 's/.*replaying the appeal spool.*operations=\([0-9]*\).*/\1/p' "$DAEMON_LOG" | head -n 1)
    python3 - "$db" >"$dir/appeals.txt" <<'PY'
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for call_id, kinds in con.execute(
    "SELECT a.call_id, COALESCE(GROUP_CONCAT(e.kind), '') FROM appeals a"
    " LEFT JOIN appeal_events e ON e.appeal_id = a.id GROUP BY a.id"
):
    print(f"{call_id}|{kinds}")
PY
    summary=$(check_appeals "$dir/appeals.txt" "$dir/ringing.txt" created 2>"$dir/check.err")
    rc=$?
    stop_daemon
    local facts="killed pid $killed_pid 5 s in; SIPp: $completed calls completed, $failed failed, $inflight in flight at the kill; spool at the kill ${spool_bytes} B, ${replayed:-0} operations replayed and drained ${waited} after restart; $summary"
    if [ $rc -ne 0 ]; then
        fail $name "$facts"
        cat "$dir/check.err" >&2
    elif [ "$ringing" -lt 50 ] || [ "$inflight" -lt 1 ]; then
        fail $name "the kill did not land mid-load (want >=50 calls with 180, >=1 in flight): $facts"
    elif [ "$DAEMON_STATUS" != 0 ]; then
        fail $name "restarted daemon exited $DAEMON_STATUS on SIGTERM; $facts"
    else
        pass $name "$facts"
    fi
}

# ---------------------------------------------------------------------------
# db-outage-postgres
db_outage_postgres() {
    local name=db-outage-postgres dir="$OUT/db-outage-postgres"
    mkdir -p "$dir"
    if [ -z "${HOTLINE_TEST_PG_URL:-}" ] || [ -z "${HOTLINE_TEST_PG_CTL:-}" ]; then
        fail $name "no HOTLINE_TEST_PG_URL/HOTLINE_TEST_PG_CTL: run under scripts/with-postgres.sh"
        return
    fi
    if ! command -v psql >/dev/null; then
        fail $name "missing tool: psql (scripts/ensure-tools.sh psql)"
        return
    fi
    # A database of our own in the throw-away cluster.
    local url="${HOTLINE_TEST_PG_URL%/*}/hotline_durability"
    psql -q "$HOTLINE_TEST_PG_URL" -c 'DROP DATABASE IF EXISTS hotline_durability' \
        -c 'CREATE DATABASE hotline_durability' >"$dir/psql.log" 2>&1 ||
        { fail $name "cannot create the database: $(tail -n 1 "$dir/psql.log")"; return; }
    pick_port SIP_PORT 1 && pick_port SIP_PORT6 1 && pick_port ADMIN_PORT 1 ||
        { fail $name "no free ports"; return; }
    start_daemon "$dir" "$url" || { fail $name "start: $WHY"; return; }
    # A response has 10 s: calls must not notice the database at all.
    sipp_start "$dir/sipp" 10000 || { fail $name "no free ports for SIPp"; return; }
    sleep 3
    # shellcheck disable=SC2086 # a command prefix, split on purpose
    $HOTLINE_TEST_PG_CTL -w stop -m fast >>"$dir/pg_ctl.log" 2>&1 ||
        { fail $name "pg_ctl stop failed: $(tail -n 1 "$dir/pg_ctl.log")"; return; }
    local down_at=$SECONDS
    sleep 5
    # Calls went on meanwhile: their writes wait in the spool.
    local spool_bytes
    spool_bytes=$(stat -c %s "$dir/spool/appeals.jsonl" 2>/dev/null || echo 0)
    # shellcheck disable=SC2086
    $HOTLINE_TEST_PG_CTL -w start >>"$dir/pg_ctl.log" 2>&1 ||
        { fail $name "pg_ctl start failed: $(tail -n 1 "$dir/pg_ctl.log")"; return; }
    local down_for=$((SECONDS - down_at))
    sipp_wait
    logged ringing >"$dir/ringing.txt"
    local ringing ok failed
    ringing=$(wc -l <"$dir/ringing.txt")
    ok=$(sipp_counter 'SuccessfulCall(C)')
    failed=$(sipp_counter 'FailedCall(C)')
    local writer_errors
    writer_errors=$(grep -cE 'appeal database unavailable|appeal batch not committed' "$DAEMON_LOG")
    if ! spool_drained "$dir/spool" 30; then
        fail $name "spool still not empty 30 s after PostgreSQL came back"
        return
    fi
    local waited=$WAITED summary rc
    psql -qAt -F '|' "$url" -c \
        "SELECT a.call_id, COALESCE(string_agg(e.kind, ','), '') FROM appeals a
         LEFT JOIN appeal_events e ON e.appeal_id = a.id GROUP BY a.id" \
        >"$dir/appeals.txt" 2>"$dir/psql.err" ||
        { fail $name "psql: $(tail -n 1 "$dir/psql.err")"; return; }
    summary=$(check_appeals "$dir/appeals.txt" "$dir/ringing.txt" created ended 2>"$dir/check.err")
    rc=$?
    stop_daemon
    local facts="PostgreSQL down ${down_for}s from 3 s in; SIPp exit $SIPP_RC: $ok of $CALLS calls completed, $failed failed; spool ${spool_bytes} B before the restart, writer failures logged $writer_errors, drained ${waited} after SIPp ended; $summary"
    if [ $rc -ne 0 ]; then
        fail $name "$facts"
        cat "$dir/check.err" >&2
    elif [ "$SIPP_RC" != 0 ] || [ "$ok" != "$CALLS" ] || [ "$failed" != 0 ] || [ "$ringing" != "$CALLS" ]; then
        fail $name "calls were affected by the outage: $facts"
    elif [ "$spool_bytes" -eq 0 ] || [ "$writer_errors" -eq 0 ]; then
        fail $name "the outage was not seen by the writer: $facts"
    elif [ "$DAEMON_STATUS" != 0 ]; then
        fail $name "daemon exited $DAEMON_STATUS on SIGTERM; $facts"
    else
        pass $name "$facts"
    fi
}

wanted kill9-sqlite && kill9_sqlite
wanted db-outage-postgres && db_outage_postgres

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
