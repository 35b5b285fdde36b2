#!/usr/bin/env python3
"""Heap profile of hotlined under a steady IVR load, with heaptrack: what stays allocated per call.

Usage: python3 bench/heap.py [RATE] [SECONDS] [BINARY]   (defaults 50 calls/s, 90 s a phase,
       target/hotlined-system-alloc)

heaptrack hooks malloc, so the daemon must be built with the system allocator (the release
build uses mimalloc):

    cargo build --release -p hotlined --features system-alloc
    cp target/release/hotlined target/hotlined-system-alloc
    cargo build --release -p hotlined          # the normal binary back

Starts that binary under `heaptrack` with the bench config (see run.py), then runs two equal
phases of IVR calls (line 5550101: a 3.75 s prompt over RTP, -rtp_echo, then our BYE), each
followed by the daemon going idle and 40 s for the last transactions to end (Timer L/J, 32 s).
The heap at the end of the first idle is the level after the warm-up; what the second phase
adds to it is what a call leaves behind. The daemon is then killed (not stopped), so that
heaptrack's "leaked" list is everything still allocated at that moment, by allocation site.
Prints the heap over time, the growth per call, and the top sites; the data file stays in
target/heaptrack-hotlined.gz for `heaptrack_print` (or heaptrack_gui).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

RATE = int(sys.argv[1]) if len(sys.argv) > 1 else 50
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 90
BINARY = sys.argv[3] if len(sys.argv) > 3 else os.path.join(run.ROOT, "target", "hotlined-system-alloc")
DATA = os.path.join(run.ROOT, "target", "heaptrack-hotlined")  # heaptrack appends .gz/.zst
SETTLE = 40  # seconds idle after a phase: Timer L/J (64·T1 = 32 s) end the last transactions


def daemon_pid(wrapper: int) -> int:
    """The hotlined process under the heaptrack script (one of the script's children)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            kids = open(f"/proc/{wrapper}/task/{wrapper}/children").read().split()
        except OSError:
            kids = []
        for k in kids:
            try:
                if open(f"/proc/{k}/comm").read().startswith("hotlined"):
                    return int(k)
            except OSError:
                pass
        time.sleep(0.1)
    raise SystemExit("no hotlined process under heaptrack")


def phase(d, cfg: str, work: str, name: str, pid: int) -> tuple[int, int | None]:
    """One phase of IVR calls, then idle until the transactions are gone. Returns the calls
    that completed and the RSS at the end."""
    load = run.Load(name, d.sip, run.IVR_NUMBER, RATE, RATE * SECONDS, limit=SECONDS + 60,
                    procs=max(1, -(-RATE * 4 // run.RTP_PER_SIPP)),
                    scenario=os.path.join(run.SCENARIOS, "uac_ivr.xml"), extra=["-rtp_echo"])
    res, _ = run.run_load(load, work, {"hotlined": pid})
    run.wait_idle(d, 60)
    time.sleep(SETTLE)
    rss = run.proc_rss_kib(pid)
    run.log(f"{name}: ok {res.ok}/{load.calls} failed {res.failed}; RSS {rss} KiB after {SETTLE} s idle")
    return res.ok, rss


def massif_series(path: str) -> list[tuple[float, int]]:
    """(seconds since start, heap bytes) of every snapshot of a massif file."""
    out, t = [], None
    for line in open(path, errors="replace"):
        if line.startswith("time="):
            t = float(line[5:])  # heaptrack writes seconds
        elif line.startswith("mem_heap_B=") and t is not None:
            out.append((t, int(line[11:])))
    return out


def heap_at(series: list[tuple[float, int]], t: float) -> int | None:
    before = [b for s, b in series if s <= t]
    return before[-1] if before else None


def main() -> int:
    for tool in ("heaptrack", "heaptrack_print", "sipp"):
        if not run.shutil.which(tool):
            raise SystemExit(f"missing tool: {tool}")
    if not os.access(BINARY, os.X_OK):
        raise SystemExit(f"no binary at {BINARY}: build it with --features system-alloc (see --help)")
    work = tempfile.mkdtemp(prefix="hotline-heap-")
    for old in (DATA + ".gz", DATA + ".zst"):
        if os.path.exists(old):
            os.remove(old)
    wrapper = os.path.join(work, "hotlined-under-heaptrack")
    with open(wrapper, "w") as fh:
        fh.write(f'#!/bin/sh\nexec heaptrack -o "{DATA}" "{BINARY}" "$@"\n')
    os.chmod(wrapper, 0o755)
    pid = None
    try:
        cfg = run.bench_config(work)
        t0 = time.monotonic()
        d = run.start_daemon(wrapper, cfg, work, "heap")
        pid = daemon_pid(d.pid)
        run.log(f"hotlined {pid} under heaptrack; {RATE} calls/s for {SECONDS} s, twice")
        ok1, rss1 = phase(d, cfg, work, "heap-warm", pid)
        t1 = time.monotonic() - t0
        ok2, rss2 = phase(d, cfg, work, "heap-steady", pid)
        t2 = time.monotonic() - t0
        os.kill(pid, signal.SIGKILL)  # what is allocated now is heaptrack's "leaked"
        d.proc.wait(120)
        run.STARTED.remove(d.proc)
    finally:
        if pid is not None and os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)  # the script above it does not pass signals on
        run.stop_all()
        if os.environ.get("KEEP") is None:
            run.shutil.rmtree(work, ignore_errors=True)
    data = next(p for p in (DATA + ".zst", DATA + ".gz") if os.path.exists(p))
    massif = os.path.join(run.ROOT, "target", "heaptrack-hotlined.massif")
    summary = subprocess.run(["heaptrack_print", "-f", data, "-M", massif, "--massif-detailed-freq", "0",
                              "-p", "1", "-n", "12", "-s", "3", "-a", "0", "-T", "0", "-l", "1"],
                             capture_output=True, text=True).stdout
    series = massif_series(massif)
    # heaptrack's clock starts when the daemon does, a moment after t0: read a little early
    h1, h2 = heap_at(series, t1 - 2), heap_at(series, t2 - 2)
    print(f"calls: {ok1} warm-up, {ok2} measured")
    print(f"heap after the warm-up + {SETTLE} s idle: {h1} B (RSS {rss1} KiB)")
    print(f"heap after the second phase + {SETTLE} s idle: {h2} B (RSS {rss2} KiB)")
    if h1 is not None and h2 is not None and ok2:
        print(f"growth: {h2 - h1} B, {(h2 - h1) / ok2:.1f} B per call")
    for line in summary.splitlines():
        if re.match(r"(peak heap memory|peak RSS|total memory leaked|calls to allocation|"
                    r"temporary memory allocations|total runtime)", line):
            print(line)
    print(f"\nfull report: heaptrack_print -f {os.path.relpath(data, run.ROOT)} -l 1")
    with open(os.path.join(run.ROOT, "target", "heaptrack-hotlined.txt"), "w") as fh:
        fh.write(summary)
    print("(written to target/heaptrack-hotlined.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
