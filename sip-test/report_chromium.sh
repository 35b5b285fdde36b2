#!/usr/bin/env bash
# The HTML report for a day of calls, opened in headless Chromium, checked against the
# database (issue 6, "Must show").
#
#   1. start the real `hotlined` on free ports with its own SQLite database;
#   2. SIPp calls to both lines (answered by the line, and cancelled while ringing) — the
#      call path writes their appeals;
#   3. stop the daemon, then add a day's worth of operator-handled appeals straight into the
#      database (the queue/operator path that will write them is not built yet): categories,
#      operators, waits and talk times over the day's hours, fixed seed;
#   4. `hotlined report --format html` for that day to report.html;
#   5. Chromium (headless) loads it: --dump-dom gives the DOM it built, --screenshot a PNG
#      for a person to look at (report.png);
#   6. every figure Chromium shows (cards, the per-line/category/operator/service/
#      organisation/district tables with their overdue counts, the hour chart's bars: their
#      data-figure/data-value/data-calls attributes) is compared with the same figure
#      computed by python3's sqlite3 from the database;
#   7. the daemon again on that database: report_page_chromium.py signs in as the
#      supervisor in Chromium (chromium-driver, python3-selenium) and checks the /reports
#      page at 1366×768 — Russian (no English label), the period picker worked with the
#      keyboard alone (day → week → month), the month's cards and the services,
#      organisations and districts tables against the database, `?lang=en` in English —
#      with screenshots (report-page-*.png) to look at.
#
# Usage: sip-test/report_chromium.sh   (after a build; $HOTLINED overrides the binary)
# Output in sip-test/out/report-chromium/. Prints PASS/FAIL lines; exits 1 on failure.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
NAME=report-chromium
OUT="$ROOT/sip-test/out/report-chromium"
# shellcheck source=sip-test/browser_lib.sh
. "$ROOT/sip-test/browser_lib.sh"
SCENARIOS="$ROOT/sip-test/scenarios"
PROFILE=
cleanup_more() { [ -n "$PROFILE" ] && rm -rf "$PROFILE"; }

scripts/ensure-tools.sh chromium chromedriver selenium curl python3 >/dev/null ||
    fail "cannot install chromium, chromium-driver, python3-selenium"
CHROMIUM=$(command -v chromium || command -v chromium-browser) ||
    fail "no chromium: scripts/ensure-tools.sh chromium"
for tool in sipp python3 curl timeout; do
    command -v "$tool" >/dev/null || fail "missing tool: $tool"
done
[ -x "$HOTLINED" ] || fail "no daemon binary at $HOTLINED: build it first"

SIP_PORT=$(python3 sip-test/free_port.py 1) || fail "no free port"
ADMIN_PORT=$(python3 sip-test/free_port.py 1 "$SIP_PORT") || fail "no free port"
DB="$OUT/hotline.db"
export HOTLINE__DATABASE__URL="sqlite://$DB"
TZ_OFFSET=$("$HOTLINED" check --config config/hotline.toml >/dev/null && sed -n 's/^timezone = "\([^"]*\)".*/\1/p' config/hotline.toml)
[ -n "$TZ_OFFSET" ] || fail "cannot read reports.timezone from config/hotline.toml"

# run_daemon: `hotlined run` on SIP_PORT and ADMIN_PORT with its data in OUT (stderr added to
# hotlined.stderr.log); back once /health answers.
run_daemon() {
    HOTLINE__SIP__LISTEN="127.0.0.1:$SIP_PORT" \
        HOTLINE__SIP__LISTEN_V6="[::1]:$SIP_PORT" \
        HOTLINE__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT" \
        HOTLINE__DATABASE__SPOOL_DIR="$OUT/spool" \
        HOTLINE__RECORDING__DIR="$OUT/recordings" \
        HOTLINE__CALLS__SHUTDOWN_GRACE=2 \
        "$HOTLINED" run --config config/hotline.toml >/dev/null 2>>"$OUT/hotlined.stderr.log" &
    DAEMON_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/health" 2>/dev/null && return
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon exited at start"
        sleep 0.1
    done
}

# 1. The daemon.
run_daemon

# 2. Calls: answered by the line on both lines, and cancelled while ringing.
sipp_calls() { # name args...
    local name=$1
    shift
    local sp mp
    sp=$(python3 sip-test/free_port.py 1 "$SIP_PORT" "$ADMIN_PORT") || fail "no free port"
    mp=$(python3 sip-test/free_port.py 4 "$SIP_PORT" "$ADMIN_PORT" "$sp") || fail "no free port"
    (cd "$OUT" && timeout -k 5 60 sipp "127.0.0.1:$SIP_PORT" -i 127.0.0.1 -bind_local -p "$sp" \
        -mi 127.0.0.1 -mp "$mp" -nostdin -timeout 45s -timeout_error \
        -trace_err -error_file "$OUT/$name.errors.log" "$@" >"$OUT/$name.out" 2>&1) ||
        fail "SIPp $name failed (see $OUT/$name.out)"
}
sipp_calls city -sn uac -s 3758787 -m 12 -r 6 -l 12 -d 500
sipp_calls regional -sn uac -s 88002015388 -m 7 -r 6 -l 7 -d 500
sipp_calls cancel -sf "$SCENARIOS/cancel.xml" -s 3758787 -m 4 -r 4
SIPP_CALLS=23

# Every call's appeal is written with its end before the daemon stops.
python3 - "$DB" "$SIPP_CALLS" <<'EOF' || fail "the calls' appeals did not reach the database"
import sqlite3, sys, time
db, want = sys.argv[1], int(sys.argv[2])
for _ in range(100):
    try:
        n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM appeals WHERE outcome IS NOT NULL").fetchone()[0]
        if n >= want:
            sys.exit(0)
    except sqlite3.Error:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "daemon did not stop cleanly"
DAEMON_PID=

# 3. A day of operator-handled appeals, on the day the calls were made (at the report offset).
DAY=$(python3 - "$DB" "$TZ_OFFSET" <<'EOF'
import sqlite3, sys, random, uuid, datetime as dt
db, off = sys.argv[1], sys.argv[2]
sign = -1 if off.startswith("-") else 1
h, m = off.lstrip("+-").replace(":", "")[:2], off.lstrip("+-").replace(":", "")[2:] or "0"
tz = dt.timezone(sign * dt.timedelta(hours=int(h), minutes=int(m)))
day = dt.datetime.now(tz).date()
rnd = random.Random(20261123)
cats = ["benefits", "home-care", "rehab", "volunteers", "psychologists", "regional"]
ops = ["op1", "op2", "op3", "op4", "op5", "op6"]
# the case fields (ids of the shipped directory), some appeals past their due date
services = ["home-care", "delivery", "social-rental", None]
districts = ["dzerzhinsky", "zheleznodorozhny", None]
orgs = {"dzerzhinsky": "kcson-dzerzhinsky", "zheleznodorozhny": "kcson-zheleznodorozhny"}
now_ms = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
DAY_MS = 86_400_000
# More calls in the morning and after lunch, as a help desk sees them.
weights = {8: 4, 9: 9, 10: 11, 11: 10, 12: 6, 13: 7, 14: 9, 15: 8, 16: 6, 17: 4, 18: 2, 19: 1}
con = sqlite3.connect(db)
rows = 0
for hour, n in weights.items():
    for _ in range(n):
        start = dt.datetime.combine(day, dt.time(hour, rnd.randrange(60), rnd.randrange(60)), tz)
        ms = int(start.timestamp() * 1000)
        r = rnd.random()
        line = "city" if rnd.random() < 0.7 else "regional"
        cat = rnd.choice(cats if line == "city" else ["regional", "home-care"])
        wait = min(int(rnd.expovariate(1 / 25)), 300)
        answered = talk = op = None
        if r < 0.72:
            outcome, answered, talk, op = "answered", ms + wait * 1000, rnd.randrange(45, 600), rnd.choice(ops)
        elif r < 0.86:
            outcome = "abandoned"
        elif r < 0.93:
            outcome = "callback"
        else:
            outcome, wait = "info_only", None
        ended = ms + ((wait or 0) + (talk or 20)) * 1000
        service, district = rnd.choice(services), rnd.choice(districts)
        org = orgs.get(district)
        # due 10 days ago (overdue while open) or in 10 days; some closed
        due = (now_ms + rnd.choice([-10, 10]) * DAY_MS) if service else None
        status = rnd.choice(["new", "in_progress", "forwarded", "done", "declined"])
        con.execute(
            "INSERT INTO appeals (id, call_id, line, caller_number, arrived_at, answered_at, ended_at, "
            "category, queue, wait_seconds, talk_seconds, operator, outcome, status, last_seq, updated_at, "
            "service, district, organisation, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), f"gen-{rows}", line, f"+7913{rnd.randrange(10**7):07d}", ms, answered,
             ended, cat, cat, wait, talk, op, outcome, status, ended, service, district, org, due))
        rows += 1
# A few on another day of the same month and ISO week (for the page's week and month views).
other = day - dt.timedelta(days=1) if day.day > 1 and day.weekday() > 0 else day + dt.timedelta(days=1)
for i in range(9):
    start = dt.datetime.combine(other, dt.time(10 + i, 15), tz)
    ms = int(start.timestamp() * 1000)
    con.execute(
        "INSERT INTO appeals (id, call_id, line, caller_number, arrived_at, answered_at, ended_at, "
        "category, queue, wait_seconds, talk_seconds, operator, outcome, status, last_seq, updated_at, "
        "service, district, organisation, due_at) "
        "VALUES (?, ?, 'city', ?, ?, ?, ?, 'home-care', 'home-care', 12, 90, 'op1', 'answered', ?, 0, ?, "
        "'home-care', 'dzerzhinsky', 'kcson-dzerzhinsky', ?)",
        (str(uuid.uuid4()), f"other-{i}", f"+7913{rnd.randrange(10**7):07d}", ms, ms + 12000, ms + 102000,
         "in_progress" if i % 3 else "done", ms + 102000, now_ms - 5 * DAY_MS))
con.commit()
print(day.isoformat())
EOF
) || fail "could not add the generated appeals"

# 4. The report.
"$HOTLINED" report --config config/hotline.toml --from "$DAY" --format html >"$OUT/report.html" ||
    fail "hotlined report failed"

# 5. Chromium renders it.
PROFILE=$(mktemp -d)
chromium_run() {
    timeout -k 5 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --user-data-dir="$PROFILE" "$@"
}
chromium_run --dump-dom "file://$OUT/report.html" >"$OUT/report.dom.html" 2>"$OUT/chromium.log" ||
    fail "chromium --dump-dom failed (see $OUT/chromium.log)"
chromium_run --screenshot="$OUT/report.png" --window-size=1280,2600 --hide-scrollbars \
    "file://$OUT/report.html" >>"$OUT/chromium.log" 2>&1 ||
    fail "chromium --screenshot failed (see $OUT/chromium.log)"
[ -s "$OUT/report.png" ] || fail "no screenshot"

# 6. What Chromium shows against the database.
python3 - "$DB" "$DAY" "$TZ_OFFSET" "$OUT/report.dom.html" "$SIPP_CALLS" <<'EOF' >"$OUT/check.log" 2>&1 ||
import sqlite3, sys, datetime as dt
from html.parser import HTMLParser

db, day, off, dom_path, sipp_calls = sys.argv[1:6]
sign = -1 if off.startswith("-") else 1
digits = off.lstrip("+-").replace(":", "")
tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0)))
d = dt.date.fromisoformat(day)
start = int(dt.datetime.combine(d, dt.time(0), tz).timestamp() * 1000)
end = start + 86_400_000
SL = 20
# overdue = open and due before now (due dates are ±10 days away: the moment does not matter)
NOW = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)

class Dom(HTMLParser):
    """Collects the figures: cards, table cells by (group, key, figure), bars."""
    def __init__(self):
        super().__init__()
        self.cards, self.cells, self.bars, self.hours = {}, {}, {}, {}
        self.group = self.key = self.cell = None
        self.text = ""
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.group = a.get("data-group")
        elif tag == "tr":
            self.key = a.get("data-key")
        elif tag == "div" and a.get("class") == "card":
            self.cards[a["data-figure"]] = a["data-value"]
        elif tag == "td" and "data-figure" in a and self.group:
            self.cell = (self.group, self.key, a["data-figure"])
            self.cells[self.cell] = a.get("data-value")
            self.text = ""
        elif tag == "text" and "data-hour" in a:
            self.hours[int(a["data-hour"])] = int(a["data-calls"])
        elif tag == "text" and "data-key" in a:
            self.bars.setdefault(a["data-key"], set()).add(int(a["data-calls"]))
    def handle_data(self, data):
        if self.cell:
            self.text += data
    def handle_endtag(self, tag):
        if tag == "td" and self.cell:
            if self.cells[self.cell] is None:
                self.cells[self.cell] = self.text.strip()
            self.cell = None
        elif tag == "table":
            self.group = None

dom = Dom()
dom.feed(open(dom_path, encoding="utf-8").read())
con = sqlite3.connect(db)
where = "arrived_at >= ? AND arrived_at < ? AND line NOT LIKE 'partner:%'"

def figures(extra="", args=()):
    r = con.execute(
        "SELECT COUNT(*), "
        " SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), "
        " SUM(CASE WHEN outcome = 'abandoned' AND answered_at IS NULL THEN 1 ELSE 0 END), "
        f" SUM(CASE WHEN answered_at IS NOT NULL AND wait_seconds <= {SL} THEN 1 ELSE 0 END), "
        " AVG(CASE WHEN answered_at IS NOT NULL THEN wait_seconds * 1.0 END), "
        " AVG(CASE WHEN outcome = 'abandoned' THEN wait_seconds * 1.0 END), "
        " AVG(CASE WHEN answered_at IS NOT NULL THEN talk_seconds * 1.0 END), "
        " SUM(CASE WHEN status NOT IN ('done', 'declined') AND due_at < ? THEN 1 ELSE 0 END) "
        f"FROM appeals WHERE {where}{extra}", (NOW, start, end, *args)).fetchone()
    calls, ans, abd, within, aw, awa, at, overdue = r
    ans, abd, within = ans or 0, abd or 0, within or 0
    f4 = lambda v: "" if v is None else f"{v:.4f}"
    sl = f4(within / (ans + abd)) if ans + abd else ""
    return {"calls": str(calls), "answered": str(ans), "abandoned": str(abd),
            "answered_within_sl": str(within), "service_level": sl,
            "avg_wait": f4(aw), "avg_wait_abandoned": f4(awa), "avg_talk": f4(at),
            "overdue": str(overdue or 0)}

problems, checked = [], 0
def same(what, shown, want):
    global checked
    checked += 1
    if shown != want:
        problems.append(f"{what}: Chromium shows {shown!r}, the database says {want!r}")

total = figures()
if int(total["calls"]) < int(sipp_calls) + 50:
    problems.append(f"only {total['calls']} calls in the day: the generated day is missing")
for k in ["calls", "answered", "abandoned", "service_level", "avg_wait", "avg_wait_abandoned", "avg_talk", "overdue"]:
    same(f"card {k}", dom.cards.get(k), total[k])
for group, column in [("line", "line"), ("category", "category"), ("operator", "operator"),
                      ("service", "service"), ("organisation", "organisation"), ("district", "district")]:
    keys = [r[0] for r in con.execute(
        f"SELECT DISTINCT {column} FROM appeals WHERE {where} AND {column} IS NOT NULL", (start, end))]
    shown_keys = {k for (g, k, _) in dom.cells if g == group}
    if not keys or not set(keys) <= shown_keys:
        problems.append(f"{group} table: rows {sorted(shown_keys)}, database has {sorted(keys)}")
    for key in keys:
        want = figures(f" AND {column} = ?", (key,))
        for fig, value in want.items():
            same(f"{group} {key} {fig}", dom.cells.get((group, key, fig)), value)
        if group in ("line", "category", "service", "organisation", "district"):
            same(f"{group} {key} bar", int(want["calls"]) in dom.bars.get(key, set()), True)
hours = {}
for (ms,) in con.execute(f"SELECT arrived_at FROM appeals WHERE {where}", (start, end)):
    h = dt.datetime.fromtimestamp(ms / 1000, tz).hour
    hours[h] = hours.get(h, 0) + 1
same("hour bars", dom.hours, hours)
print(f"{checked} figures checked; {total['calls']} calls, {total['answered']} answered, "
      f"{total['abandoned']} abandoned, service level {total['service_level']}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF
{
    cat "$OUT/check.log" >&2
    fail "the report Chromium rendered does not match the database (see $OUT/check.log)"
}
# 7. The /reports page on the same database, as the supervisor (the demo accounts the first
#    start made), in Chromium at 1366×768.
ADMIN_PORT=$(python3 sip-test/free_port.py 1 "$SIP_PORT") || fail "no free port"
run_daemon
# Debian's python3: python3-selenium is installed for it, whatever python3 comes first in PATH
timeout -k 5 240 /usr/bin/python3 sip-test/report_page_chromium.py "http://127.0.0.1:$ADMIN_PORT" \
    "$OUT" "$DB" "$DAY" "$TZ_OFFSET" || fail "the /reports page (see the lines above)"
echo "PASS report-chromium ($(head -n 1 "$OUT/check.log"); screenshots $OUT/report.png, $OUT/report-page-*.png)"
