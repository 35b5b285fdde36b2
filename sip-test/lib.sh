# shellcheck shell=bash
# Shared pieces of the SIP end-to-end harness: port picking, running one SIPp
# with fixed options and judging it, PASS/FAIL bookkeeping, clean-up of every
# process we started, and the scenario functions themselves.
#
# Sourced by run.sh (against the real daemon) and selftest.sh (against SIPp
# fakes). The caller sets:
#   OUT         folder for this run's output (one sub-folder per scenario)
#   TARGET4     daemon address over IPv4, e.g. 127.0.0.1:25060
#   TARGET6     daemon address over IPv6, e.g. [::1]:25062
#   DAEMON_PID  (optional) pid of the daemon, checked after every scenario
#   DAEMON_LOG  (optional) the daemon's stderr log, its tail shown on failure
#   DAEMON_DB   (optional) the daemon's SQLite file, for the appeal checks
#   CONFIG_DIR  (optional) the daemon's own copy of config/, which the reload
#               scenario edits; ADMIN_ADDR and ADMIN_TOKEN reach its admin API

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCENARIOS="$HARNESS_DIR/scenarios"

PASSED=0
FAILED=0
LAST_RESULT=
USED_PORTS=()
CHILD_PIDS=()
SELECT=()

# pick_port VAR SPAN: store in VAR a port P with P..P+SPAN-1 free (TCP and
# UDP, IPv4 and IPv6 loopback) and not handed out before in this run.
pick_port() {
    local __var=$1 span=${2:-1} port i
    port=$(python3 "$HARNESS_DIR/free_port.py" "$span" "${USED_PORTS[@]}") || return 1
    for ((i = 0; i < span; i++)); do USED_PORTS+=($((port + i))); done
    printf -v "$__var" '%s' "$port"
}

# wanted NAME: true when NAME matches one of the patterns given on the command
# line (glob), or when none was given.
wanted() {
    local pat
    [ ${#SELECT[@]} -eq 0 ] && return 0
    for pat in "${SELECT[@]}"; do
        # shellcheck disable=SC2053
        [[ $1 == $pat ]] && return 0
    done
    return 1
}

# forget_pid PID: drop PID from the list cleanup() kills.
forget_pid() {
    local keep=() p
    for p in "${CHILD_PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    CHILD_PIDS=("${keep[@]}")
}

# kill_children: TERM every process we started and still track, then KILL
# the ones that do not go within 3 s. `timeout` passes the TERM to SIPp.
kill_children() {
    local p i
    for p in "${CHILD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for ((i = 0; i < 30; i++)); do
        local alive=0
        for p in "${CHILD_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    for p in "${CHILD_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    CHILD_PIDS=()
}

pass() {
    PASSED=$((PASSED + 1))
    LAST_RESULT=PASS
    echo "PASS $1 ($2)"
}

# fail NAME WHY: count and print the failure, then (on stderr) the tails of
# the scenario's SIPp logs and of the daemon's log.
fail() {
    FAILED=$((FAILED + 1))
    LAST_RESULT=FAIL
    echo "FAIL $1 ($2)"
    show_tails "$1" >&2
}

tail_of() { # tail_of FILE LINES TITLE
    [ -s "$1" ] || return 0
    echo "  --- $3: last $2 lines of $1"
    tail -n "$2" "$1" | sed 's/^/  | /'
}

show_tails() {
    local dir="$OUT/$1"
    tail_of "$dir/errors.log" 20 "SIPp unexpected messages"
    tail_of "$dir/sipp.stderr" 10 "SIPp stderr"
    tail_of "$dir/torture.log" 15 "torture sender"
    if [ -n "${DAEMON_LOG:-}" ]; then tail_of "$DAEMON_LOG" 30 "daemon stderr"; fi
}

daemon_alive() {
    [ -z "${DAEMON_PID:-}" ] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null
}

# sipp_run NAME LIMIT LOCAL_IP CHECK... -- SIPP_ARGS...
# Runs one SIPp in $OUT/NAME with its own ports, bound to LOCAL_IP only, with
# SIPp's own global timeout LIMIT seconds (-timeout_error) and a hard kill at
# LIMIT+15 s. PASS needs exit status 0, every CHECK (see sipp_stats.py) true
# and the daemon still running.
sipp_run() {
    local name=$1 limit=$2 local_ip=$3
    shift 3
    local checks=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        checks+=("$1")
        shift
    done
    shift
    wanted "$name" || { LAST_RESULT=SKIP; return 0; }
    if ! daemon_alive; then
        fail "$name" "daemon is not running"
        return 0
    fi
    local dir="$OUT/$name" sp mp cp
    rm -rf "$dir"
    mkdir -p "$dir"
    # play_pcap_audio and the built-in uac_pcap look for pcap/ in the working folder
    ln -s /usr/share/sip-tester "$dir/pcap"
    pick_port sp 1 && pick_port mp 4 && pick_port cp 1 || {
        fail "$name" "no free ports"
        return 0
    }
    local args=("$@"
        -i "$local_ip" -bind_local -mi "$local_ip" -p "$sp" -mp "$mp"
        -ci 127.0.0.1 -cp "$cp" -nostdin
        -timeout "${limit}s" -timeout_error
        -trace_stat -stf stat.csv -fd 1 -trace_counts
        -trace_screen -screen_file screen.log
        -trace_err -error_file errors.log
        -trace_msg -message_file messages.log
        -trace_logs -log_file actions.log)
    printf '%q ' sipp "${args[@]}" >"$dir/command.txt"
    echo >>"$dir/command.txt"
    local started=$SECONDS
    (cd "$dir" && exec timeout -k 5 $((limit + 15)) sipp "${args[@]}" >sipp.stdout 2>sipp.stderr) &
    local pid=$!
    CHILD_PIDS+=("$pid")
    wait "$pid"
    local rc=$?
    forget_pid "$pid"
    local took=$((SECONDS - started))
    local stats stats_rc
    stats=$(python3 "$HARNESS_DIR/sipp_stats.py" "$dir" "${checks[@]}")
    stats_rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "$name" "hard time limit $((limit + 15))s hit; $stats"
    elif [ $rc -ne 0 ]; then
        fail "$name" "sipp exit $rc; $stats"
    elif [ $stats_rc -ne 0 ]; then
        fail "$name" "sipp exit 0 but $stats"
    elif ! daemon_alive; then
        fail "$name" "daemon died during the scenario"
    else
        pass "$name" "exit 0, ${took}s, $stats"
    fi
}

# ---------------------------------------------------------------------------
# Scenarios. Each takes the scenario name first and the SIPp transport
# (u1 = UDP, t1 = TCP) second where it has one.

# SIPp's built-in uac: CALLS calls at RATE/s to 3758787, each held 1 s.
sc_uac() { # name transport calls rate
    local name=$1 t=$2 calls=$3 rate=$4
    sipp_run "$name" 60 127.0.0.1 \
        "SuccessfulCall(C)==$calls" "FailedCall(C)==0" "Retransmissions(C)<=$((calls / 20))" \
        -- -sn uac "$TARGET4" -t "$t" -s 3758787 -m "$calls" -r "$rate" -l "$calls" -d 1000
}

# The same with 10 % of SIPp's sent and received messages dropped: every call
# must still succeed, through retransmissions on both sides.
sc_uac_lossy() { # name calls rate
    local name=$1 calls=$2 rate=$3
    sipp_run "$name" 100 127.0.0.1 \
        "SuccessfulCall(C)==$calls" "FailedCall(C)==0" "Retransmissions(C)>0" \
        -- -sn uac "$TARGET4" -t u1 -s 3758787 -m "$calls" -r "$rate" -l "$calls" -d 1000 -lost 10
}

# op1 registers with digest, then removes its binding.
sc_register() { # name transport user password
    local name=$1 t=$2 user=$3 password=$4
    sipp_run "$name" 10 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" "*_401_Recv==2" \
        -- -sf "$SCENARIOS/register.xml" "$TARGET4" -t "$t" -m 1 \
        -s "$user" -au "$user" -ap "$password" -key domain 127.0.0.1
}

# A wrong password is refused: 401, bad credentials, 401 (or 403) again.
sc_register_badpass() { # name transport user password
    local name=$1 t=$2 user=$3 password=$4
    sipp_run "$name" 10 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/register_badpass.xml" "$TARGET4" -t "$t" -m 1 \
        -s "$user" -au "$user" -ap "$password" -key domain 127.0.0.1
}

# INVITE, CANCEL right after 180: 200 for the CANCEL, 487 for the INVITE.
sc_cancel() { # name transport
    sipp_run "$1" 10 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" "*_487_Retrans==0" \
        -- -sf "$SCENARIOS/cancel.xml" "$TARGET4" -t "$2" -m 1 -s 3758787
}

# OPTIONS -> 200 with Allow listing INVITE, ACK, BYE, CANCEL, OPTIONS.
sc_options() { # name transport target local_ip
    sipp_run "$1" 10 "$4" \
        "SuccessfulCall(C)==3" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/options.xml" "$3" -t "$2" -m 3 -r 10
}

# INVITE to a number no line has -> 404, ACKed in the transaction.
sc_unknown_number() { # name transport
    sipp_run "$1" 10 127.0.0.1 \
        "SuccessfulCall(C)==3" "FailedCall(C)==0" "*_404_Recv==3" "*_404_Retrans==0" \
        -- -sf "$SCENARIOS/invite_404.xml" "$TARGET4" -t "$2" -m 3 -r 10 -s 9999999
}

# One answered call with a PCMU/PCMA/telephone-event offer, checked answer.
sc_call() { # name transport target local_ip
    sipp_run "$1" 15 "$4" \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/call.xml" "$3" -t "$2" -m 1 -d 1000 -s 3758787
}

# DTMF end to end: a call that plays the RFC 4733 pcaps 1, 2, 2, # and hangs
# up; then the digits must be in the appeal's ivr_choice events in the
# daemon's SQLite database ($DAEMON_DB, when the caller set it).
sc_dtmf() { # name transport
    local name=$1
    sipp_run "$name" 20 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/dtmf.xml" "$TARGET4" -t "$2" -m 1 -s 3758787 \
        -cid_str "hotline-dtmf-%u-%p@%s"
    [ "$LAST_RESULT" = PASS ] && [ -n "${DAEMON_DB:-}" ] || return 0
    local got
    if got=$(python3 "$HARNESS_DIR/appeal_digits.py" "$DAEMON_DB" hotline-dtmf- "122#" 10); then
        pass "$name-digits" "appeal events: $got"
    else
        fail "$name-digits" "expected digits 122# in the appeal, $got"
    fi
}

# The city line's menu end to end: the caller waits 3 s into the greeting,
# presses 1 (RFC 4733 pcap), hears the queue prompt and waits; then the
# appeal in $DAEMON_DB must show queue benefits, category benefits and an
# entered_queue event.
sc_ivr_benefits() { # name transport
    local name=$1
    sipp_run "$name" 30 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/ivr_benefits.xml" "$TARGET4" -t "$2" -m 1 -s 3758787 \
        -cid_str "hotline-ivr-%u-%p@%s"
    [ "$LAST_RESULT" = PASS ] && [ -n "${DAEMON_DB:-}" ] || return 0
    local got
    if got=$(python3 "$HARNESS_DIR/appeal_ivr.py" "$DAEMON_DB" hotline-ivr- benefits benefits 10); then
        pass "$name-appeal" "$got"
    else
        fail "$name-appeal" "expected queue benefits and category benefits, $got"
    fi
}

# Hot reload under load: 100 calls to 3758787 held 10 s each (SIPp's uac);
# meanwhile the city menu in $CONFIG_DIR is edited (a valid change of the
# main menu's timeout) and reloaded twice, first with SIGHUP, then with
# POST /api/v1/reload. Every call must succeed (exit 0, FailedCall 0), the
# POST must answer 200 and the daemon must log both reloads.
sc_reload_during_calls() { # name
    local name=$1
    wanted "$name" || { LAST_RESULT=SKIP; return 0; }
    if [ -z "${CONFIG_DIR:-}" ] || [ -z "${DAEMON_PID:-}" ] || [ -z "${ADMIN_ADDR:-}" ]; then
        fail "$name" "needs the daemon's pid, config copy and admin address"
        return 0
    fi
    local rdir="$OUT/$name-reloads" menu="$CONFIG_DIR/ivr/city.toml" before
    rm -rf "$rdir"
    mkdir -p "$rdir"
    before=$(grep -c "hotlined::reload: configuration reloaded" "$DAEMON_LOG")
    (
        sleep 4
        sed -i 's/^timeout = 7 /timeout = 8 /' "$menu"
        echo "SIGHUP at $(date +%T.%N)"
        kill -HUP "$DAEMON_PID"
        sleep 3
        sed -i 's/^timeout = 8 /timeout = 9 /' "$menu"
        echo "POST at $(date +%T.%N)"
        curl -sS --max-time 60 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \
            -o "$rdir/post.json" -w '%{http_code}' "http://$ADMIN_ADDR/api/v1/reload" >"$rdir/post.status"
        echo "POST answered at $(date +%T.%N)"
    ) >"$rdir/reloads.log" 2>&1 &
    local rpid=$!
    CHILD_PIDS+=("$rpid")
    sipp_run "$name" 60 127.0.0.1 \
        "SuccessfulCall(C)==100" "FailedCall(C)==0" \
        -- -sn uac "$TARGET4" -t u1 -s 3758787 -m 100 -r 20 -l 100 -d 10000
    wait "$rpid"
    forget_pid "$rpid"
    local status after i
    status=$(cat "$rdir/post.status" 2>/dev/null)
    for ((i = 0; i < 50; i++)); do
        after=$(grep -c "hotlined::reload: configuration reloaded" "$DAEMON_LOG")
        [ $((after - before)) -ge 2 ] && break
        sleep 0.1
    done
    if [ "$status" = 200 ] && grep -q '"reloaded":true' "$rdir/post.json" &&
        [ $((after - before)) -eq 2 ] && grep -q '^timeout = 9 ' "$menu"; then
        pass "$name-reloads" "SIGHUP and POST /api/v1/reload both applied during the calls"
    else
        fail "$name-reloads" "POST status ${status:-none}, $((after - before)) reloads logged; see $rdir"
    fi
}

# An operator's feature code: op4 registers with digest and dials *1
# (challenged, then authenticated): 200, the confirmation, the daemon's BYE.
# Then GET /api/v1/operators must show op4 logged in (available).
sc_feature_login() { # name transport
    local name=$1
    sipp_run "$name" 20 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" "*_401_Recv==2" \
        -- -sf "$SCENARIOS/feature_login.xml" "$TARGET4" -t "$2" -m 1 \
        -s op4 -au op4 -ap op4-secret -key domain 127.0.0.1 -key code '*1'
    [ "$LAST_RESULT" = PASS ] && [ -n "${ADMIN_ADDR:-}" ] || return 0
    local got
    got=$(curl -sS --max-time 5 -H "Authorization: Bearer $ADMIN_TOKEN" \
        "http://$ADMIN_ADDR/api/v1/operators" 2>&1 |
        python3 -c 'import json,sys; o=[x for x in json.load(sys.stdin)["operators"] if x["id"]=="op4"]; print(o[0]["state"] if o else "missing")' 2>&1)
    if [ "$got" = available ]; then
        pass "$name-api" "GET /api/v1/operators: op4 available"
    else
        fail "$name-api" "GET /api/v1/operators: op4 is ${got:-?}, expected available"
    fi
}

# Every RFC 4475 torture message over UDP and TCP; the daemon must survive
# and still answer OPTIONS.
sc_torture() { # name host port [tcp-port]
    local name=$1 host=$2 port=$3 tcp_port=${4:-$3}
    wanted "$name" || { LAST_RESULT=SKIP; return 0; }
    if ! daemon_alive; then
        fail "$name" "daemon is not running"
        return 0
    fi
    local dir="$OUT/$name"
    rm -rf "$dir"
    mkdir -p "$dir"
    local pidargs=()
    [ -n "${DAEMON_PID:-}" ] && pidargs=(--pid "$DAEMON_PID")
    (exec timeout -k 5 90 python3 "$HARNESS_DIR/torture_send.py" --host "$host" --port "$port" --tcp-port "$tcp_port" \
        "${pidargs[@]}" --results "$dir/results.csv" >"$dir/torture.out" 2>"$dir/torture.log") &
    local pid=$!
    CHILD_PIDS+=("$pid")
    wait "$pid"
    local rc=$?
    forget_pid "$pid"
    local summary
    summary=$(tail -n 1 "$dir/torture.out" 2>/dev/null)
    if [ $rc -eq 0 ] && daemon_alive; then
        pass "$name" "$summary"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "$name" "time limit 90s hit; $summary"
    else
        fail "$name" "exit $rc; ${summary:-no summary}"
    fi
}
