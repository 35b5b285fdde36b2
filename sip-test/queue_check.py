#!/usr/bin/env python3
"""Checks of the queue test (standard library only).

Usage:
  queue_check.py operators CALLS DIR...
      The SIPp operator phones (operator_phone.xml + operator_answer.xml) in
      DIR... answered CALLS calls in all (`answered` lines in actions.log) and
      every one ended cleanly (`operator hung up` or `caller hung up`), with no
      call SIPp counted as failed.
  queue_check.py appeals DB PREFIX CALLS QUEUE STRATEGY WRAP_UP_S OPERATOR...
      The CALLS appeals whose call_id starts with PREFIX (retried up to 15 s
      while the spool catches up) are in QUEUE, `answered`, name one of the
      logged-in OPERATORs and a wait (`wait_seconds`, and an `answered` event
      with both); no operator held two calls at once; and who got each caller
      follows STRATEGY (see check_longest_idle / check_fewest_calls).
  queue_check.py rtp DB PREFIX CALLS RECORDINGS
      For each of those appeals, RECORDINGS/<appeal>.wav (left: what the
      caller sent, right: what the daemon sent the caller) shows the bridge
      both ways: in the operator's part of the call the right channel follows
      the caller's voice a moment later (the operator's phone echoes what it
      gets), and in the 2.4 s before it does not (see echo_score).

  queue_check.py baresip DB PREFIX OPERATOR LOG HEARD_DIR RECORDINGS
      The one call with call_id PREFIX… was answered by OPERATOR on baresip
      and ended by the caller, with audio both ways (see check_baresip).

  queue_check.py refer DB PREFIX REFERRER TARGET_OP TARGET_QUEUE PHONE_LOG
      The caller REFERRER transferred by REFER landed in TARGET_QUEUE and was
      answered there by TARGET_OP (see check_refer).
  queue_check.py callback DB PREFIX OPERATOR TRUNK_LOG
      The caller's booked callback was rung to OPERATOR and dialled through
      the trunk to the booked number, and answered (see check_callback).

Prints one line; exits 0 when everything holds, 1 otherwise, 2 on bad usage.
"""
import glob
import json
import math
import os
import sqlite3
import struct
import sys
import time
import wave
from collections import defaultdict

# --- the operator phones -------------------------------------------------------------------


def check_operators(calls, dirs):
    answered, ended, failed, problems = 0, 0, 0, []
    for d in dirs:
        name = os.path.basename(d)
        try:
            log = open(os.path.join(d, "actions.log"), encoding="latin-1").read().splitlines()
        except OSError:
            problems.append(f"{name}: no actions.log")
            continue
        a = sum(1 for l in log if l.startswith("answered "))
        e = sum(1 for l in log if l.startswith(("operator hung up ", "caller hung up ")))
        answered += a
        ended += e
        if a != e:
            problems.append(f"{name}: {a} answered, {e} ended")
        stats = glob.glob(os.path.join(d, "*_.csv")) + [os.path.join(d, "stat.csv")]
        for path in stats:
            if os.path.exists(path):
                failed += last_int(path, "FailedCall(C)")
    if answered != calls:
        problems.append(f"{answered} calls answered by the phones, expected {calls}")
    if failed:
        problems.append(f"SIPp counted {failed} failed calls on the phones")
    if problems:
        print("; ".join(problems))
        return 1
    print(f"{len(dirs)} phones answered {answered} calls and ended all of them")
    return 0


def last_int(path, column):
    rows = [l.rstrip("\n").split(";") for l in open(path, encoding="latin-1") if l.strip()]
    if len(rows) < 2 or column not in rows[0]:
        return 0
    try:
        return int(rows[-1][rows[0].index(column)] or 0)
    except (ValueError, IndexError):
        return 0


# --- the appeals ---------------------------------------------------------------------------


def read_appeals(db, prefix, calls, timeout=15.0):
    """The appeals with call_id PREFIX…, once CALLS of them have ended (or at the timeout)."""
    deadline = time.monotonic() + timeout
    rows, events = [], {}
    while True:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
            try:
                rows = con.execute(
                    "SELECT id, call_id, queue, operator, wait_seconds, talk_seconds, outcome, "
                    "answered_at, ended_at FROM appeals WHERE call_id LIKE ? ORDER BY arrived_at",
                    (prefix.replace("%", "") + "%",),
                ).fetchall()
                events = defaultdict(list)
                for appeal, kind, at, data in con.execute(
                    "SELECT appeal_id, kind, at, data FROM appeal_events ORDER BY appeal_id, seq"
                ):
                    events[appeal].append((kind, at, json.loads(data)))
            finally:
                con.close()
        except sqlite3.Error:
            rows = []
        if sum(1 for r in rows if r[6] is not None) >= calls or time.monotonic() > deadline:
            return rows, events
        time.sleep(0.3)


class Call:
    """One answered caller: who took it, when it was connected and when it ended (ms)."""

    def __init__(self, appeal, operator, connected, ended):
        self.appeal = appeal
        self.operator = operator
        self.connected = connected
        self.ended = ended


# Timing slack of the strategy checks, in ms: the appeal's `answered` event is written at the
# connect, up to RING_MS after the ACD picked the operator (the phone rings 200 ms), and events
# are stamped by the daemon's clock a little after the ACD acted.
RING_MS = 1000
SLACK_MS = 300


def busy(calls_of, op, t, wrap_ms):
    """Could `op` have been ringing, talking or in wrap-up at `t`?"""
    return any(c.connected - RING_MS <= t <= c.ended + wrap_ms + SLACK_MS for c in calls_of[op])


def last_end_before(calls_of, op, t):
    ends = [c.ended for c in calls_of[op] if c.ended <= t]
    return max(ends) if ends else None


def check_longest_idle(calls, operators, wrap_ms):
    """Longest-idle: each caller goes to the free operator whose last call ended longest ago
    (never having had a call counts as longest). So at every pick, no other operator that was
    surely free can have been idle clearly longer than the one chosen. Equal talk times then
    give every operator its share: the counts may differ by at most 2 (the pick order can swap
    within the timing slack)."""
    calls_of = defaultdict(list)
    for c in calls:
        calls_of[c.operator].append(c)
    problems = []
    for c in calls:
        pick = c.connected - RING_MS
        mine = last_end_before(calls_of, c.operator, pick)
        for other in operators:
            if other == c.operator or busy(calls_of, other, pick, wrap_ms):
                continue
            if busy(calls_of, other, c.connected, wrap_ms):
                continue
            theirs = last_end_before(calls_of, other, pick)
            never = theirs is None and mine is not None
            longer = theirs is not None and mine is not None and theirs < mine - SLACK_MS
            if never or longer:
                problems.append(
                    f"{c.appeal} went to {c.operator} (idle since {fmt(mine)}) while {other} "
                    f"was free and idle since {fmt(theirs)}"
                )
    counts = spread(calls, operators)
    if max(counts.values()) - min(counts.values()) > 2:
        problems.append(f"uneven share for longest-idle: {counts}")
    return problems


def check_fewest_calls(calls, operators, wrap_ms):
    """Fewest-calls: each caller goes to the free operator who answered fewest calls from the
    queue so far; at every pick no surely free operator had fewer answered calls."""
    calls_of = defaultdict(list)
    for c in calls:
        calls_of[c.operator].append(c)
    problems = []
    for c in calls:
        pick = c.connected - RING_MS
        answered = {op: sum(1 for d in calls_of[op] if d.connected < c.connected) for op in operators}
        for other in operators:
            if other == c.operator or busy(calls_of, other, pick, wrap_ms):
                continue
            if busy(calls_of, other, c.connected, wrap_ms):
                continue
            if answered[other] < answered[c.operator]:
                problems.append(
                    f"{c.appeal} went to {c.operator} ({answered[c.operator]} calls) while "
                    f"{other} was free with {answered[other]}"
                )
    counts = spread(calls, operators)
    if max(counts.values()) - min(counts.values()) > 2:
        problems.append(f"uneven share for fewest-calls: {counts}")
    return problems


STRATEGIES = {"longest-idle": check_longest_idle, "fewest-calls": check_fewest_calls}


def spread(calls, operators):
    counts = {op: 0 for op in operators}
    for c in calls:
        counts[c.operator] = counts.get(c.operator, 0) + 1
    return counts


def fmt(ms):
    return "never" if ms is None else time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + (
        f".{ms % 1000:03d}"
    )


def check_appeals(db, prefix, calls, queue, strategy, wrap_up_s, operators):
    rows, events = read_appeals(db, prefix, calls)
    problems = []
    if len(rows) != calls:
        problems.append(f"{len(rows)} appeals for {calls} calls")
    answered = []
    waits = []
    for appeal, call_id, q, op, wait, talk, outcome, answered_at, ended_at in rows:
        evs = events.get(appeal, [])
        ans = [e for e in evs if e[0] == "answered"]
        why = []
        if q != queue:
            why.append(f"queue {q}")
        if outcome != "answered":
            why.append(f"outcome {outcome}")
        if op not in operators:
            why.append(f"operator {op}")
        if wait is None or wait < 0:
            why.append(f"wait {wait}")
        if len(ans) != 1 or ans[0][2].get("operator") != op or ans[0][2].get("wait_seconds") != wait:
            why.append(f"answered events {[e[2] for e in ans]}")
        if ended_at is None:
            why.append("not ended")
        if why:
            problems.append(f"{call_id}: {', '.join(why)}")
            continue
        waits.append(wait)
        answered.append(Call(appeal, op, ans[0][1], ended_at))
    if problems:
        print(f"{len(problems)} bad appeals: " + "; ".join(problems[:5]))
        return 1
    calls_of = defaultdict(list)
    for c in answered:
        calls_of[c.operator].append(c)
    for op, cs in calls_of.items():
        cs.sort(key=lambda c: c.connected)
        for a, b in zip(cs, cs[1:]):
            if b.connected < a.ended:
                problems.append(f"{op} held {a.appeal} and {b.appeal} at once")
    check = STRATEGIES.get(strategy)
    if check is None:
        problems.append(f"no distribution check for strategy {strategy!r}")
    else:
        answered.sort(key=lambda c: c.connected)
        problems += check(answered, operators, wrap_up_s * 1000)
    counts = spread(answered, operators)
    share = " ".join(f"{op}={n}" for op, n in counts.items())
    if problems:
        print(f"{len(problems)} problems: " + "; ".join(problems[:5]) + f" [{share}]")
        return 1
    print(
        f"{len(answered)} appeals in {queue}, each with its operator and wait "
        f"(max {max(waits)} s); {strategy} held at every pick; calls per operator: {share}"
    )
    return 0


# --- RTP through the bridge ----------------------------------------------------------------

FRAME = 800  # 100 ms at 8 kHz: coarse enough that a delay wandering by a few tens of ms under
# load (the bridge's inbox refills after a dropped burst) does not hide the echo


def envelope(samples):
    """Mean absolute amplitude of each 100 ms frame."""
    return [
        sum(abs(s) for s in samples[i : i + FRAME]) / FRAME
        for i in range(0, len(samples) - FRAME + 1, FRAME)
    ]


def corr(a, b):
    n = min(len(a), len(b))
    if n < 5:
        return 0.0
    a, b = a[:n], b[:n]
    ma, mb = sum(a) / n, sum(b) / n
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    if va == 0 or vb == 0:
        return 0.0
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / math.sqrt(va * vb)


def echo_score(path, start, stop, lags=range(0, 6)):
    """How well the right channel (to the caller) follows the left (from the caller) between
    `start` and `stop` seconds into the recording, at the best delay among `lags` (100 ms
    steps; 0 to 500 ms): the correlation of the two loudness envelopes, that delay (ms), and
    the right channel's mean loudness."""
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 2 or w.getsampwidth() != 2:
            raise ValueError("not a 16-bit stereo WAV")
        rate = w.getframerate()
        first = max(0, int(start * rate))
        w.setpos(min(first, w.getnframes()))
        raw = w.readframes(max(0, int(stop * rate) - first))
    pcm = struct.unpack(f"<{len(raw) // 2}h", raw)
    left, right = envelope(pcm[0::2]), envelope(pcm[1::2])
    best = max((corr(left[: len(left) - lag], right[lag:]), lag) for lag in lags)
    loud = sum(right) / len(right) if right else 0.0
    return best[0], best[1] * 100, loud


def wav_seconds(path):
    with wave.open(path, "rb") as w:
        return w.getnframes() / w.getframerate()


# In the operator's part of the call the echo follows the caller (0.6-1.0 seen, with 12
# processes on two busy cores); in the 2.4 s before the operator answered (the queue's prompt
# and announcements) the daemon's audio does not (-0.4 to 0.36), nor does a real operator's
# own voice (baresip: 0.1).
ECHO_MIN = 0.5


def check_rtp(db, prefix, calls, recordings):
    """The recording ends when the call ends (the operator's BYE), so the operator's part is its
    last (ended - connected) seconds; the 2.4 s before the connect are the control."""
    rows, events = read_appeals(db, prefix, calls)
    problems, shares, controls, delays = [], [], [], []
    for appeal, call_id, _q, _op, _w, _t, _o, _a, ended_at in rows:
        path = os.path.join(recordings, f"{appeal}.wav")
        connected = [at for kind, at, _ in events.get(appeal, []) if kind == "answered"]
        if not connected or ended_at is None:
            problems.append(f"{call_id}: never connected")
            continue
        try:
            end = wav_seconds(path)
            joined = end - (ended_at - connected[0]) / 1000
            share, delay, loud = echo_score(path, joined + 0.3, end - 0.1)
            before, _, _ = echo_score(path, joined - 2.6, joined - 0.2)
        except (OSError, ValueError, EOFError, wave.Error, struct.error) as e:
            problems.append(f"{call_id}: {path}: {e}")
            continue
        shares.append(share)
        controls.append(before)
        delays.append(delay)
        if share < ECHO_MIN or loud < 50 or before >= share:
            problems.append(
                f"{call_id}: in the operator's part what the caller got follows the caller's "
                f"voice by {share:.2f} (before the operator {before:.2f}), loudness {loud:.0f}"
            )
    if len(rows) != calls:
        problems.append(f"{len(rows)} appeals for {calls} calls")
    if problems:
        print(f"{len(problems)} calls without audio both ways: " + "; ".join(problems[:5]))
        return 1
    delays.sort()
    print(
        f"{len(shares)} calls: the caller's voice came back through the bridge from the "
        f"operator's echo (envelope correlation min {min(shares):.2f}, before the operator "
        f"max {max(controls):.2f}; median delay {delays[len(delays) // 2]} ms)"
    )
    return 0


# --- baresip ---------------------------------------------------------------------------


def loud_seconds(samples, rate, threshold=200):
    """Seconds of `samples` whose mean absolute amplitude reaches `threshold` (speech-loud)."""
    return sum(
        1
        for i in range(0, len(samples) - rate + 1, rate)
        if sum(abs(x) for x in samples[i : i + rate]) / rate >= threshold
    )


def read_pcm(path, channel=None):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16-bit")
        n, rate, channels = w.getnframes(), w.getframerate(), w.getnchannels()
        raw = w.readframes(n)
    pcm = struct.unpack(f"<{len(raw) // 2}h", raw)
    if channels == 2 and channel is not None:
        pcm = pcm[channel::2]
    return pcm, rate


def check_baresip(db, prefix, operator, log_path, heard_dir, recordings):
    """baresip registered as OPERATOR, was offered the caller, answered, and the caller hung
    up: the appeal says so (operator, wait, outcome `answered`, ended by `caller_hung_up`);
    baresip's log shows the call established and terminated; what baresip heard (its sndfile
    `*-dec.wav`) has the caller's voice, and what the daemon sent the caller (the right channel
    of the call recording, operator's part) has baresip's."""
    rows, events = read_appeals(db, prefix, 1)
    if len(rows) != 1:
        print(f"{len(rows)} appeals with call_id {prefix}…, expected 1")
        return 1
    appeal, call_id, q, op, wait, talk, outcome, _answered_at, ended_at = rows[0]
    evs = events.get(appeal, [])
    ended = [d for k, _, d in evs if k == "ended"]
    connected = [at for k, at, _ in evs if k == "answered"]
    problems = []
    if op != operator or outcome != "answered" or wait is None or not connected:
        problems.append(f"appeal: operator {op}, outcome {outcome}, wait {wait}")
    if not ended or ended[0].get("reason") != "caller_hung_up":
        problems.append(f"appeal ended {ended}")
    if talk is None or talk < 2:
        problems.append(f"talk {talk} s")
    log = open(log_path, encoding="utf-8", errors="replace").read()
    for needle in ("Call established", "terminated"):
        if needle not in log:
            problems.append(f"no {needle!r} in the baresip log")
    heard = glob.glob(os.path.join(heard_dir, "*-dec.wav"))
    heard_loud = 0
    if len(heard) != 1:
        problems.append(f"{len(heard)} *-dec.wav recordings from baresip, expected 1")
    else:
        pcm, rate = read_pcm(heard[0])
        heard_loud = loud_seconds(pcm, rate)
        if heard_loud < 3:
            problems.append(f"baresip heard only {heard_loud} s of the caller's voice")
    said_loud = 0
    if connected and ended_at is not None and not problems:
        path = os.path.join(recordings, f"{appeal}.wav")
        pcm, rate = read_pcm(path, channel=1)
        talk_frames = int((ended_at - connected[0]) / 1000 * rate)
        said_loud = loud_seconds(pcm[len(pcm) - talk_frames :], rate)
        if said_loud < 2:
            problems.append(f"the caller got only {said_loud} s of baresip's voice")
    if problems:
        print(f"{call_id}: " + "; ".join(problems))
        return 1
    print(
        f"{operator} on baresip answered after {wait} s, talked {talk} s, the caller hung up; "
        f"{heard_loud} s of the caller's voice reached baresip, {said_loud} s of baresip's the caller"
    )
    return 0


# --- transfer and callback -----------------------------------------------------------------


def check_refer(db, prefix, referrer, target_op, target_queue, phone_log):
    """The caller answered by REFERRER was blind-transferred to TARGET_QUEUE by REFER: the
    phone got 202 and both NOTIFYs (100, then 200 with the subscription terminated); the appeal
    has `transferred` {target, kind queue, operator, status 200}, then `entered_queue` for the
    target queue, then TARGET_OP's answer, and ends answered by TARGET_OP."""
    rows, events = read_appeals(db, prefix, 1)
    if len(rows) != 1:
        print(f"{len(rows)} appeals with call_id {prefix}…, expected 1")
        return 1
    appeal, call_id, q, op, _wait, talk, outcome, _a, _e = rows[0]
    evs = events.get(appeal, [])
    kinds = [(k, d) for k, _, d in evs if k in ("answered", "transferred", "entered_queue")]
    want = [
        ("answered", lambda d: d.get("operator") == referrer),
        (
            "transferred",
            lambda d: d.get("target") == target_queue
            and d.get("kind") == "queue"
            and d.get("operator") == referrer
            and d.get("status") == 200,
        ),
        ("entered_queue", lambda d: d.get("queue") == target_queue),
        ("answered", lambda d: d.get("operator") == target_op),
    ]
    problems = []
    after_first_queue = kinds[1:] if kinds and kinds[0][0] == "entered_queue" else kinds
    if len(after_first_queue) != len(want) or not all(
        k == wk and ok(d) for (k, d), (wk, ok) in zip(after_first_queue, want)
    ):
        problems.append(f"events {after_first_queue}")
    if q != target_queue or op != target_op or outcome != "answered":
        problems.append(f"appeal queue {q}, operator {op}, outcome {outcome}")
    log = open(phone_log, encoding="latin-1").read().splitlines()
    if not any(l.startswith("transfer NOTIFY") and "SIP/2.0 1" in l for l in log) or not any(
        l.startswith("transfer NOTIFY") and "SIP/2.0 200 terminated" in l for l in log
    ) or not any(l.startswith("transferred ") for l in log):
        problems.append(f"the phone's log: {log}")
    if problems:
        print(f"{call_id}: " + "; ".join(problems))
        return 1
    print(
        f"{referrer} REFERred the caller to {target_queue} (202, NOTIFY 100 then 200, "
        f"terminated); the appeal shows the transfer and {target_op}'s answer, talk {talk} s"
    )
    return 0


def check_callback(db, prefix, operator, trunk_log):
    """The caller booked a callback (`callback_requested` with its number, the call ended by
    the daemon); later the ACD rang OPERATOR and dialled that number through the trunk, where
    the SIPp UAS saw the INVITE for it and answered: `callback_attempt` 1 `answered` by
    OPERATOR, an `ended` with reason `callback_ended`, outcome `callback`."""
    rows, events = read_appeals(db, prefix, 1)
    if len(rows) != 1:
        print(f"{len(rows)} appeals with call_id {prefix}…, expected 1")
        return 1
    appeal, call_id, _q, op, _wait, talk, outcome, _a, _e = rows[0]
    evs = [(k, d) for k, _, d in events.get(appeal, [])]
    booked = [d.get("number") for k, d in evs if k == "callback_requested"]
    attempts = [d for k, d in evs if k == "callback_attempt"]
    ends = [d.get("reason") for k, d in evs if k == "ended"]
    problems = []
    if len(booked) != 1 or not booked[0]:
        problems.append(f"callback_requested {booked}")
    if len(attempts) != 1 or attempts[0].get("result") != "answered" or attempts[0].get(
        "operator"
    ) != operator or (booked and attempts[0].get("number") != booked[0]):
        problems.append(f"callback attempts {attempts}")
    if ends != ["ivr_hangup", "callback_ended"]:
        problems.append(f"ended events {ends}")
    if outcome != "callback" or op != operator:
        problems.append(f"appeal outcome {outcome}, operator {op}")
    dialled = [l for l in open(trunk_log, encoding="latin-1").read().splitlines() if l.startswith("callback ")]
    if len(dialled) != 1 or not booked or f"sip:{booked[0]}@" not in dialled[0]:
        problems.append(f"the trunk saw {dialled}")
    if problems:
        print(f"{call_id}: " + "; ".join(problems))
        return 1
    print(
        f"callback to {booked[0]} booked in the queue, then {operator} rang and the trunk end "
        f"answered the INVITE for that number: attempt 1 answered, talk {talk} s, outcome callback"
    )
    return 0


def main():
    a = sys.argv[1:]
    try:
        if len(a) == 7 and a[0] == "refer":
            return check_refer(a[1], a[2], a[3], a[4], a[5], a[6])
        if len(a) == 5 and a[0] == "callback":
            return check_callback(a[1], a[2], a[3], a[4])
        if len(a) == 7 and a[0] == "baresip":
            return check_baresip(a[1], a[2], a[3], a[4], a[5], a[6])
        if len(a) >= 3 and a[0] == "operators":
            return check_operators(int(a[1]), a[2:])
        if len(a) >= 8 and a[0] == "appeals":
            return check_appeals(a[1], a[2], int(a[3]), a[4], a[5], int(a[6]), a[7:])
        if len(a) == 5 and a[0] == "rtp":
            return check_rtp(a[1], a[2], int(a[3]), a[4])
    except (OSError, ValueError, KeyError) as e:
        print(f"{a[0]}: {e}")
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
