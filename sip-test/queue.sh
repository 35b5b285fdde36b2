#!/usr/bin/env bash
# The queue end to end (issue 5 "Must show"): the real `hotlined`, operator
# phones that register with digest and auto-answer, and callers who choose
# `benefits` in the city line's voice menu, all on 127.0.0.1.
#
#   queue-operators-register  10 SIPp operator phones (op1..op10) register
#                             with digest; the admin API logs them in to
#                             benefits
#   queue-50-callers          50 SIPp callers press 1 (RFC 4733) and wait;
#                             every call is answered by an operator phone,
#                             which talks 3 s and hangs up
#   queue-50-operators        the phones answered 50 calls in all and hung
#                             every one up cleanly
#   queue-50-appeals          every appeal names its operator and its wait,
#                             and who got which caller follows the queue's
#                             strategy (queue_check.py)
#   queue-50-rtp              RTP flowed both ways through each bridge: the
#                             caller's voice came back from the operator's
#                             echo (the call recordings, queue_check.py)
#   queue-live                GET /api/v1/queues and /api/v1/operators during
#                             the load showed callers waiting and operators
#                             on calls, and at the end nobody waiting and
#                             nobody on a call (queue_watch.py)
#   queue-baresip             a baresip (Debian baresip-core) in auto-answer
#                             registers as op11, is offered a caller,
#                             answers; the caller hangs up; the appeal names
#                             op11 and audio went both ways
#   queue-refer               an operator in benefits (op12) REFERs the caller
#                             to home-care: 202, NOTIFY 100 and 200; op13
#                             answers the caller there
#   queue-callback            a caller books a callback in home-care while
#                             op13 is paused; unpaused, op13 is rung and the
#                             trunk's far end (SIPp) answers the call to the
#                             booked number
#   queue-missed              before that, the same number called and hung up
#                             waiting in home-care: it is on the `missed`
#                             worklist, and the answered callback takes it off
#
# Usage: sip-test/queue.sh [CHECK-GLOB...]   (run.sh runs it with its own
# arguments, so `make test` does too; a glob matching any check of the load
# runs the whole load). Prints `PASS name (...)` / `FAIL name (...)` per check and
# `N passed, N failed` last; exits 1 when anything failed. Everything stays
# in sip-test/out/queue/ (see sip-test/README.md).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
# shellcheck source=sip-test/lib.sh
. "$ROOT/sip-test/lib.sh"
SELECT=("$@")

LOAD_CHECKS=(queue-operators-register queue-50-callers queue-50-operators queue-50-appeals
    queue-50-rtp queue-live)
BARESIP_CHECKS=(queue-baresip)
OUTBOUND_CHECKS=(queue-refer queue-callback queue-missed)

any_wanted() {
    local n
    for n in "$@"; do wanted "$n" && return 0; done
    return 1
}
if ! any_wanted "${LOAD_CHECKS[@]}" "${BARESIP_CHECKS[@]}" "${OUTBOUND_CHECKS[@]}"; then
    echo "0 passed, 0 failed"
    exit 0
fi
RUN_LOAD=0 RUN_BARESIP=0 RUN_OUTBOUND=0
any_wanted "${LOAD_CHECKS[@]}" && RUN_LOAD=1
any_wanted "${BARESIP_CHECKS[@]}" && RUN_BARESIP=1
any_wanted "${OUTBOUND_CHECKS[@]}" && RUN_OUTBOUND=1
# the load's checks are judged together; sipp_run consults SELECT
SELECT=()

OUT="$ROOT/sip-test/out/queue"
rm -rf "$OUT"
mkdir -p "$OUT"

HOTLINED=${HOTLINED:-target/debug/hotlined}
DAEMON_PID=
DAEMON_LOG="$OUT/hotlined.stderr.log"
DAEMON_DB="$OUT/hotline.db"
CONFIG_DIR="$OUT/config"
ADMIN_TOKEN=queue-test-token

# The load: OPERATORS phones, CALLERS callers at RATE/s. Each caller spends
# ~9 s in the menu (2 s ringing, the key, the queue's 6.9 s prompt), then
# waits; each operator talks 3 s (operator_answer.xml) and has WRAP_UP_S of
# wrap-up, so the callers queue up and each operator takes several.
OPERATORS=10
CALLERS=50
RATE=5
WRAP_UP_S=1

stop_daemon() {
    [ -z "$DAEMON_PID" ] && return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null
    local i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
}

BARESIP_PID=
BARESIP_CTRL=

# stop_baresip: `quit` over its ctrl_tcp socket (on SIGTERM baresip waits ~32 s
# for its un-REGISTER), up to 5 s to go, then TERM and KILL.
stop_baresip() {
    [ -z "$BARESIP_PID" ] && return 0
    if [ -n "$BARESIP_CTRL" ]; then
        python3 "$HARNESS_DIR/queue_watch.py" baresip-quit "$BARESIP_CTRL" 2>/dev/null
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$BARESIP_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$BARESIP_PID" 2>/dev/null
    for ((i = 0; i < 20; i++)); do
        kill -0 "$BARESIP_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$BARESIP_PID" 2>/dev/null
    wait "$BARESIP_PID" 2>/dev/null
    forget_pid "$BARESIP_PID"
    BARESIP_PID=
}

cleanup() {
    trap - EXIT INT TERM
    stop_baresip
    kill_children
    stop_daemon
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

summary() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit
}

# api PATH [curl args...]: the admin API with the token; the body on stdout.
api() {
    local path=$1
    shift
    curl -sS --max-time 5 -H "Authorization: Bearer $ADMIN_TOKEN" "$@" "http://$ADMIN_ADDR$path"
}

# The numbers on the `missed` worklist, space-separated.
missed_numbers() {
    api /api/v1/worklists/missed | python3 -c \
        'import json, sys; print(" ".join(c["caller_number"] for c in json.load(sys.stdin)["callers"]))'
}
# What queue_caller_gives_up.xml and callback_caller.xml call from (-m 1: call number 1).
MISSED_NUMBER=+79137771

for tool in sipp python3 curl timeout; do
    if ! command -v "$tool" >/dev/null; then
        fail queue-setup "missing tool: $tool"
        summary
    fi
done
if [ ! -x "$HOTLINED" ]; then
    fail queue-setup "no daemon binary at $HOTLINED: build it first, e.g. make build"
    summary
fi

# The test's own configuration: the shipped one plus operators op7..op10, every
# operator in benefits, a short wrap-up and recorded calls (queue_config.py).
cp -r config "$CONFIG_DIR"
pick_port TRUNK_PORT 7 || {
    fail queue-setup "no free ports"
    summary
}
if ! STRATEGY=$(python3 "$HARNESS_DIR/queue_config.py" "$CONFIG_DIR" "$((OPERATORS + 1))" "$WRAP_UP_S" \
    "$TRUNK_PORT" 2>"$OUT/queue_config.err"); then
    fail queue-setup "queue_config.py: $(cat "$OUT/queue_config.err")"
    summary
fi

pick_port SIP_PORT 1 && pick_port SIP_PORT6 1 && pick_port ADMIN_PORT 1 || {
    fail queue-setup "no free ports"
    summary
}
TARGET4="127.0.0.1:$SIP_PORT"
ADMIN_ADDR="127.0.0.1:$ADMIN_PORT"

{
    echo "HOTLINED=$HOTLINED"
    echo "HOTLINE__SIP__LISTEN=127.0.0.1:$SIP_PORT"
    echo "HOTLINE__SIP__LISTEN_V6=[::1]:$SIP_PORT6"
    echo "HOTLINE__ADMIN__LISTEN=$ADMIN_ADDR"
    echo "HOTLINE__ADMIN__TOKEN=$ADMIN_TOKEN"
    echo "HOTLINE__DATABASE__URL=sqlite://$DAEMON_DB"
    echo "HOTLINE__DATABASE__SPOOL_DIR=$OUT/spool"
    echo "HOTLINE__RECORDING__DIR=$OUT/recordings"
    echo "HOTLINE__CALLS__SHUTDOWN_GRACE=5"
    echo "config: $CONFIG_DIR/hotline.toml (benefits strategy: $STRATEGY)"
} >"$OUT/env.txt"

HOTLINE__SIP__LISTEN="127.0.0.1:$SIP_PORT" \
    HOTLINE__SIP__LISTEN_V6="[::1]:$SIP_PORT6" \
    HOTLINE__ADMIN__LISTEN="$ADMIN_ADDR" \
    HOTLINE__ADMIN__TOKEN="$ADMIN_TOKEN" \
    HOTLINE__DATABASE__URL="sqlite://$DAEMON_DB" \
    HOTLINE__DATABASE__SPOOL_DIR="$OUT/spool" \
    HOTLINE__RECORDING__DIR="$OUT/recordings" \
    HOTLINE__CALLS__SHUTDOWN_GRACE=5 \
    "$HOTLINED" run --config "$CONFIG_DIR/hotline.toml" >"$OUT/hotlined.stdout.log" 2>"$DAEMON_LOG" &
DAEMON_PID=$!

ready=0
for ((i = 0; i < 300; i++)); do
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    if curl -fsS -o /dev/null --max-time 1 "http://$ADMIN_ADDR/health" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ $ready -ne 1 ]; then
    fail queue-setup "the daemon did not answer /health within 30 s"
    summary
fi
echo "queue daemon pid $DAEMON_PID: sip $TARGET4, admin $ADMIN_ADDR" >&2

# ---------------------------------------------------------------------------
# SIPp operator phones

OP_DIRS=()
OP_PIDS=()

# sipp_bg DIR SIP_PORT LIMIT SIPP_ARGS...: one SIPp in the background in DIR on
# SIP_PORT (its RTP echo on the two ports after, control on SIP_PORT+6), hard
# limit LIMIT s; its pid in BG_PID.
sipp_bg() {
    local dir=$1 sp=$2 limit=$3
    shift 3
    mkdir -p "$dir"
    ln -sfn /usr/share/sip-tester "$dir/pcap"
    local args=("$@"
        -i 127.0.0.1 -bind_local -mi 127.0.0.1 -p "$sp" -mp "$((sp + 2))"
        -ci 127.0.0.1 -cp "$((sp + 6))" -nostdin
        -trace_stat -stf stat.csv -fd 1 -trace_counts
        -trace_screen -screen_file screen.log
        -trace_err -error_file errors.log
        -trace_msg -message_file messages.log
        -trace_logs -log_file actions.log)
    printf '%q ' sipp "${args[@]}" >"$dir/command.txt"
    echo >>"$dir/command.txt"
    (cd "$dir" && exec timeout -k 5 "$limit" sipp "${args[@]}" >sipp.stdout 2>sipp.stderr) &
    BG_PID=$!
    CHILD_PIDS+=("$BG_PID")
}

# start_operator N [CALL_SCENARIO]: opN's phone in the background
# (operator_phone.xml; each offered call in CALL_SCENARIO, default
# operator_answer.xml; RTP echo), up for at most 170 s.
start_operator() {
    local n=$1 calls=${2:-operator_answer.xml} dir="$OUT/queue-operators/op$1" base
    # one free block: SIP, RTP echo (+2 and +4), control (+6)
    pick_port base 7 || return 1
    sipp_bg "$dir" "$base" 170 -sf "$SCENARIOS/operator_phone.xml" -oocsf "$SCENARIOS/$calls" \
        "$TARGET4" -t u1 -m 1 -d 150000 -rtp_echo \
        -s "op$n" -au "op$n" -ap "op$n-secret" -key domain 127.0.0.1
    OP_DIRS+=("$dir")
    OP_PIDS+=("$BG_PID")
}

# logout LOGIN...: log these operators out through the API (errors ignored:
# some are not logged in)
logout() {
    local op
    for op in "$@"; do api "/api/v1/operators/$op/logout" -X POST -o /dev/null 2>/dev/null; done
}

# stop_operators: TERM to every phone (`timeout` passes it on to SIPp; SIPp's
# remote-control quit keys do not end a scenario waiting in a <pause>), then
# wait for them. What the checks read (actions.log, the stat rows) is on disk.
stop_operators() {
    local p
    for p in "${OP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${OP_PIDS[@]}"; do
        wait "$p" 2>/dev/null
        forget_pid "$p"
    done
    OP_PIDS=()
}

# ---------------------------------------------------------------------------
# 1. Operators register and log in.

if [ $RUN_LOAD -eq 1 ]; then
    started=$SECONDS
    for ((n = 1; n <= OPERATORS; n++)); do
        start_operator "$n" || { fail queue-operators-register "no free ports"; summary; }
    done
    logins=$(OPERATORS=$OPERATORS python3 "$HARNESS_DIR/queue_watch.py" login \
        "http://$ADMIN_ADDR" "$ADMIN_TOKEN" benefits 15 $(seq -f 'op%g' 1 "$OPERATORS") 2>&1)
    if [ $? -eq 0 ]; then
        pass queue-operators-register "$((SECONDS - started))s, $logins"
    else
        fail queue-operators-register "$logins"
        summary
    fi
fi

# 2. The load, watched through the admin API.

if [ $RUN_LOAD -eq 1 ]; then
    mkdir -p "$OUT/queue-live"
    python3 "$HARNESS_DIR/queue_watch.py" watch "http://$ADMIN_ADDR" "$ADMIN_TOKEN" \
        "$OUT/queue-live/polls.jsonl" 120 >"$OUT/queue-live/watch.log" 2>&1 &
    WATCH_PID=$!
    CHILD_PIDS+=("$WATCH_PID")

    sipp_run queue-50-callers 90 127.0.0.1 \
        "SuccessfulCall(C)==$CALLERS" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/queue_caller.xml" "$TARGET4" -t u1 -s 3758787 \
        -m "$CALLERS" -r "$RATE" -l "$CALLERS" -cid_str "hotline-queue-%u-%p@%s"

    # the last operator's wrap-up, then what the board shows at rest
    sleep $((WRAP_UP_S + 2))
    touch "$OUT/queue-live/stop"
    wait "$WATCH_PID"
    forget_pid "$WATCH_PID"
    stop_operators

    if got=$(python3 "$HARNESS_DIR/queue_check.py" operators "$CALLERS" "${OP_DIRS[@]}"); then
        pass queue-50-operators "$got"
    else
        fail queue-50-operators "$got"
    fi
    if got=$(python3 "$HARNESS_DIR/queue_check.py" appeals "$DAEMON_DB" hotline-queue- "$CALLERS" \
        benefits "$STRATEGY" "$WRAP_UP_S" $(seq -f 'op%g' 1 "$OPERATORS")); then
        pass queue-50-appeals "$got"
    else
        fail queue-50-appeals "$got"
    fi
    if got=$(python3 "$HARNESS_DIR/queue_check.py" rtp "$DAEMON_DB" hotline-queue- "$CALLERS" \
        "$OUT/recordings"); then
        pass queue-50-rtp "$got"
    else
        fail queue-50-rtp "$got"
    fi
    if got=$(python3 "$HARNESS_DIR/queue_watch.py" check "$OUT/queue-live/polls.jsonl" benefits \
        $(seq -f 'op%g' 1 "$OPERATORS")); then
        pass queue-live "$got"
    else
        fail queue-live "$got"
    fi
fi
stop_operators

# 3. baresip as an operator phone.

if [ $RUN_BARESIP -eq 1 ]; then
    BARESIP_OP="op$((OPERATORS + 1))"
    bdir="$OUT/baresip"
    mkdir -p "$bdir/config" "$bdir/heard"
    if ! command -v baresip >/dev/null; then
        fail queue-baresip "baresip is not installed (make deps, or scripts/ensure-tools.sh baresip)"
        summary
    fi
    # the SIPp phones' bindings outlive them: log those operators out, so only baresip is offered
    logout $(seq -f 'op%g' 1 "$OPERATORS")
    pick_port bsp 2 && pick_port BARESIP_CTRL 1 || {
        fail queue-baresip "no free ports"
        summary
    }
    # what the operator says: the city greeting, then a minute of silence (baresip ends the
    # call when its audio file ends)
    python3 "$HARNESS_DIR/queue_watch.py" pad-wav "$CONFIG_DIR/prompts/ru/greeting-city.wav" \
        "$bdir/operator-voice.wav" 60
    {
        echo "# baresip as an auto-answering operator phone (sip-test/queue.sh)"
        echo "sip_listen 127.0.0.1:$bsp"
        echo "net_interface 127.0.0.1"
        echo "audio_player aubridge,nil"
        echo "audio_alert aubridge,nil"
        echo "audio_source aufile,$bdir/operator-voice.wav"
        echo "module_path /usr/lib/baresip/modules"
        echo "module g711.so"
        echo "module aufile.so"
        echo "module aubridge.so"
        echo "module sndfile.so"
        echo "module_tmp uuid.so"
        echo "module_tmp account.so"
        echo "module_app menu.so"
        echo "module_app ctrl_tcp.so"
        echo "ctrl_tcp_listen 127.0.0.1:$BARESIP_CTRL"
        echo "snd_path $bdir/heard"
    } >"$bdir/config/config"
    echo "<sip:$BARESIP_OP@127.0.0.1:$SIP_PORT>;auth_pass=$BARESIP_OP-secret;answermode=auto;regint=600;audio_codecs=PCMU,PCMA" \
        >"$bdir/config/accounts"
    started=$SECONDS
    (exec timeout -k 5 150 baresip -f "$bdir/config" -t 140 </dev/null >"$bdir/baresip.log" 2>&1) &
    BARESIP_PID=$!
    CHILD_PIDS+=("$BARESIP_PID")
    if ! logins=$(python3 "$HARNESS_DIR/queue_watch.py" login "http://$ADMIN_ADDR" "$ADMIN_TOKEN" \
        benefits 15 "$BARESIP_OP" 2>&1); then
        fail queue-baresip "$logins; see $bdir/baresip.log"
        summary
    fi
    SELECT=()
    # the caller's own PASS/FAIL line is folded into queue-baresip below
    sipp_run queue-baresip-caller 40 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/queue_caller_hangs_up.xml" "$TARGET4" -t u1 -s 3758787 \
        -m 1 -cid_str "hotline-baresip-%u-%p@%s" >"$OUT/queue-baresip-caller.result" 2>&1
    caller=$LAST_RESULT
    if [ "$caller" = PASS ]; then PASSED=$((PASSED - 1)); else FAILED=$((FAILED - 1)); fi
    sleep 1
    stop_baresip
    if [ "$caller" != PASS ]; then
        fail queue-baresip "the caller: $(cat "$OUT/queue-baresip-caller.result"); see $bdir/baresip.log"
    elif got=$(python3 "$HARNESS_DIR/queue_check.py" baresip "$DAEMON_DB" hotline-baresip- \
        "$BARESIP_OP" "$bdir/baresip.log" "$bdir/heard" "$OUT/recordings"); then
        pass queue-baresip "$((SECONDS - started))s, $got"
    else
        fail queue-baresip "$got"
    fi
fi

# 4. Blind transfer by REFER: an operator in benefits sends the caller to home-care.

if [ $RUN_OUTBOUND -eq 1 ]; then
    REFER_OP="op$((OPERATORS + 2))" HOME_OP="op$((OPERATORS + 3))"
    logout $(seq -f 'op%g' 1 "$((OPERATORS + 1))")
    started=$SECONDS
    start_operator $((OPERATORS + 2)) operator_refer.xml
    REFER_DIR="$OUT/queue-operators/$REFER_OP"
    start_operator $((OPERATORS + 3)) operator_answer.xml
    HOME_DIR="$OUT/queue-operators/$HOME_OP"
    if ! logins=$(python3 "$HARNESS_DIR/queue_watch.py" login "http://$ADMIN_ADDR" "$ADMIN_TOKEN" \
        benefits 15 "$REFER_OP" "$HOME_OP" 2>&1); then
        fail queue-refer "$logins"
        summary
    fi
    SELECT=()
    sipp_run queue-refer-caller 60 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/queue_caller.xml" "$TARGET4" -t u1 -s 3758787 \
        -m 1 -cid_str "hotline-refer-%u-%p@%s" >"$OUT/queue-refer-caller.result" 2>&1
    caller=$LAST_RESULT
    if [ "$caller" = PASS ]; then PASSED=$((PASSED - 1)); else FAILED=$((FAILED - 1)); fi
    if [ "$caller" != PASS ]; then
        fail queue-refer "the caller: $(cat "$OUT/queue-refer-caller.result")"
    elif got=$(python3 "$HARNESS_DIR/queue_check.py" refer "$DAEMON_DB" hotline-refer- \
        "$REFER_OP" "$HOME_OP" home-care "$REFER_DIR/actions.log"); then
        pass queue-refer "$((SECONDS - started))s, $got"
    else
        fail queue-refer "$got"
    fi

    # 5. Callback: the caller books one while home-care's operator is paused; unpaused, the
    # operator is rung first, then the ACD dials the caller's number through the trunk, where
    # a SIPp UAS answers.
    started=$SECONDS
    sipp_bg "$OUT/queue-callback-trunk" "$TRUNK_PORT" 90 -sf "$SCENARIOS/callback_trunk.xml" \
        -t u1 -m 1 -rtp_echo
    TRUNK_PID=$BG_PID
    api "/api/v1/operators/$HOME_OP/pause" -X POST -o /dev/null -d '{"reason":"callback test"}' \
        -H 'Content-Type: application/json'
    # 5a. The same number first gives up waiting: a missed caller until reached.
    missed_started=$SECONDS
    sipp_run queue-missed-caller 40 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/queue_caller_gives_up.xml" "$TARGET4" -t u1 -s 3758787 \
        -m 1 -cid_str "hotline-missed-%u-%p@%s" >"$OUT/queue-missed-caller.result" 2>&1
    missed_caller=$LAST_RESULT
    if [ "$missed_caller" = PASS ]; then PASSED=$((PASSED - 1)); elif [ "$missed_caller" = FAIL ]; then FAILED=$((FAILED - 1)); fi
    missed_before=""
    if [ "$missed_caller" = PASS ]; then
        for ((i = 0; i < 50; i++)); do
            missed_before=$(missed_numbers)
            case " $missed_before " in *" $MISSED_NUMBER "*) break ;; esac
            sleep 0.1
        done
    fi
    sipp_run queue-callback-caller 70 127.0.0.1 \
        "SuccessfulCall(C)==1" "FailedCall(C)==0" \
        -- -sf "$SCENARIOS/callback_caller.xml" "$TARGET4" -t u1 -s 3758787 \
        -m 1 -cid_str "hotline-callback-%u-%p@%s" >"$OUT/queue-callback-caller.result" 2>&1
    caller=$LAST_RESULT
    if [ "$caller" = PASS ]; then PASSED=$((PASSED - 1)); else FAILED=$((FAILED - 1)); fi
    api "/api/v1/operators/$HOME_OP/unpause" -X POST -o /dev/null
    # the operator talks 3 s (operator_answer.xml), so the callback is over within ~10 s
    for ((i = 0; i < 300; i++)); do
        kill -0 "$TRUNK_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$TRUNK_PID" 2>/dev/null
    wait "$TRUNK_PID"
    trunk_rc=$?
    forget_pid "$TRUNK_PID"
    if [ "$caller" != PASS ]; then
        fail queue-callback "the caller: $(cat "$OUT/queue-callback-caller.result")"
    elif [ $trunk_rc -ne 0 ]; then
        fail queue-callback "the trunk's SIPp exited $trunk_rc; see $OUT/queue-callback-trunk"
    elif got=$(python3 "$HARNESS_DIR/queue_check.py" callback "$DAEMON_DB" hotline-callback- \
        "$HOME_OP" "$OUT/queue-callback-trunk/actions.log"); then
        pass queue-callback "$((SECONDS - started))s, $got"
    else
        fail queue-callback "$got"
    fi
    if [ "$missed_caller" = PASS ] && wanted queue-missed; then
        missed_after=$(missed_numbers)
        case " $missed_before " in
        *" $MISSED_NUMBER "*)
            case " $missed_after " in
            *" $MISSED_NUMBER "*)
                fail queue-missed "$MISSED_NUMBER still missed after the answered callback: $missed_after" ;;
            *) pass queue-missed "$((SECONDS - missed_started))s, $MISSED_NUMBER listed after hanging up, gone after the callback" ;;
            esac ;;
        *) fail queue-missed "$MISSED_NUMBER not on the missed worklist after hanging up: [$missed_before]" ;;
        esac
    elif wanted queue-missed; then
        fail queue-missed "the caller: $(cat "$OUT/queue-missed-caller.result")"
    fi
fi
stop_operators

summary
