#!/usr/bin/env python3
"""The queue test's view through the admin API (standard library only).

Usage:
  queue_watch.py login URL TOKEN QUEUE TIMEOUT_S OPERATOR...
      Wait (up to TIMEOUT_S) until every OPERATOR's phone is registered
      (`registered: true` in GET /api/v1/operators), then log each in to QUEUE
      (POST /api/v1/operators/{id}/login) and check it is `available`.
  queue_watch.py watch URL TOKEN FILE MAX_S
      Poll GET /api/v1/queues and GET /api/v1/operators every 0.2 s and append
      one JSON line per poll to FILE ({"t", "queues", "operators"}), until a
      file named `stop` appears next to FILE or MAX_S passes.
  queue_watch.py check FILE QUEUE OPERATOR...
      Judge the polls: at some point QUEUE had callers waiting and some
      OPERATOR was on a call (`activity` "on_call"); in the last poll nobody
      waits in QUEUE and every OPERATOR is `available` with no call (activity
      null or "wrap_up").

  queue_watch.py baresip-quit PORT
      Send baresip's ctrl_tcp socket on 127.0.0.1:PORT the `quit` command (a
      netstring-framed JSON object).
  queue_watch.py pad-wav SRC DST SECONDS
      Write DST: the WAV file SRC followed by SECONDS of silence.

Prints one line (what was seen, or what failed); exits 0 when it holds.
"""
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
import wave


def call(url, token, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read().decode())


def operators_by_id(base, token):
    return {o["id"]: o for o in call(f"{base}/api/v1/operators", token)["operators"]}


def login(base, token, queue, timeout, ops):
    deadline = time.monotonic() + timeout
    seen = {}
    while True:
        try:
            seen = operators_by_id(base, token)
        except (urllib.error.URLError, OSError, ValueError) as e:
            seen = {}
            err = e
        missing = [o for o in ops if not seen.get(o, {}).get("registered")]
        if not missing:
            break
        if time.monotonic() > deadline:
            detail = f" ({err})" if not seen else ""
            print(f"not registered after {timeout} s: {' '.join(missing)}{detail}")
            return 1
        time.sleep(0.2)
    for op in ops:
        try:
            # no queues named: the operator's skill queues (naming one outside them is 422)
            got = call(f"{base}/api/v1/operators/{op}/login", token, "POST", {"queues": []})
        except urllib.error.HTTPError as e:
            print(f"login {op}: HTTP {e.code} {e.read().decode(errors='replace')}")
            return 1
        if got.get("state") != "available":
            print(f"login {op}: state {got.get('state')!r} after login")
            return 1
    contacts = sum(len(seen[o].get("contacts", [])) for o in ops)
    print(f"{len(ops)} operators registered ({contacts} contacts) and logged in to their skill queues")
    return 0


def watch(base, token, path, max_s):
    stop = os.path.join(os.path.dirname(path) or ".", "stop")
    start = time.monotonic()
    with open(path, "a", encoding="utf-8") as out:
        while not os.path.exists(stop) and time.monotonic() - start < max_s:
            t = round(time.monotonic() - start, 3)
            try:
                line = {
                    "t": t,
                    "queues": call(f"{base}/api/v1/queues", token)["queues"],
                    "operators": call(f"{base}/api/v1/operators", token)["operators"],
                }
            except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
                line = {"t": t, "error": str(e)}
            out.write(json.dumps(line) + "\n")
            out.flush()
            time.sleep(0.2)
        # one last look at rest, after the stop was asked for
        try:
            line = {
                "t": round(time.monotonic() - start, 3),
                "queues": call(f"{base}/api/v1/queues", token)["queues"],
                "operators": call(f"{base}/api/v1/operators", token)["operators"],
            }
            out.write(json.dumps(line) + "\n")
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            print(f"last poll failed: {e}", file=sys.stderr)
    return 0


def check(path, queue, ops):
    polls = []
    errors = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            p = json.loads(line)
            if "error" in p:
                errors += 1
            else:
                polls.append(p)
    if not polls:
        print(f"no successful poll ({errors} failed)")
        return 1
    max_waiting, max_on_call, max_ringing, max_wrap = 0, 0, 0, 0
    for p in polls:
        q = next((q for q in p["queues"] if q["name"] == queue), None)
        if q is not None:
            max_waiting = max(max_waiting, q["waiting"])
        mine = [o for o in p["operators"] if o["id"] in ops]
        max_on_call = max(max_on_call, sum(o.get("activity") == "on_call" for o in mine))
        max_ringing = max(max_ringing, sum(o.get("activity") == "ringing" for o in mine))
        max_wrap = max(max_wrap, sum(o.get("activity") == "wrap_up" for o in mine))
    problems = []
    if max_waiting == 0:
        problems.append(f"{queue} never showed a caller waiting")
    if max_on_call == 0:
        problems.append("no operator was ever shown on a call (activity on_call)")
    last = polls[-1]
    q = next((q for q in last["queues"] if q["name"] == queue), None)
    if q is None:
        problems.append(f"{queue} missing from the last poll")
    elif q["waiting"] != 0:
        problems.append(f"{q['waiting']} still waiting in {queue} at the end")
    for o in last["operators"]:
        if o["id"] not in ops:
            continue
        if o["state"] != "available" or o.get("activity") not in (None, "wrap_up"):
            problems.append(f"{o['id']} is {o['state']}/{o.get('activity')} at the end")
    seen = (
        f"{len(polls)} polls: up to {max_waiting} waiting in {queue}, {max_on_call} operators "
        f"on calls, {max_ringing} ringing, {max_wrap} in wrap-up; at the end none waiting, all "
        f"{len(ops)} available"
    )
    if errors:
        seen += f" ({errors} polls failed)"
    if problems:
        print("; ".join(problems) + f" [{seen}]")
        return 1
    print(seen)
    return 0


def baresip_quit(port):
    msg = json.dumps({"command": "quit", "token": "queue-test"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(str(len(msg)).encode() + b":" + msg + b",")
        try:
            s.recv(4096)  # its answer; closing first makes baresip log a broken pipe
        except OSError:
            pass
    return 0


def pad_wav(src, dst, seconds):
    with wave.open(src, "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    with wave.open(dst, "wb") as w:
        w.setparams(params)
        silence = b"\0" * (params.sampwidth * params.nchannels * params.framerate * seconds)
        w.writeframes(frames + silence)
    return 0


def main():
    args = sys.argv[1:]
    try:
        if len(args) == 2 and args[0] == "baresip-quit":
            return baresip_quit(int(args[1]))
        if len(args) == 4 and args[0] == "pad-wav":
            return pad_wav(args[1], args[2], int(args[3]))
        if len(args) >= 6 and args[0] == "login":
            return login(args[1], args[2], args[3], float(args[4]), args[5:])
        if len(args) == 5 and args[0] == "watch":
            return watch(args[1], args[2], args[3], float(args[4]))
        if len(args) >= 4 and args[0] == "check":
            return check(args[1], args[2], set(args[3:]))
    except (OSError, ValueError, EOFError, wave.Error) as e:
        print(f"{args[0]}: {e}")
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
