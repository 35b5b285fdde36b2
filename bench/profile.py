#!/usr/bin/env python3
"""Profile hotlined under a steady SIPp call rate with `perf record` (cpu-clock, DWARF stacks).

Usage: python3 bench/profile.py [RATE] [SECONDS]      (defaults 300 calls/s, 12 s)

Starts the release daemon with the bench config (see run.py), drives RATE calls/s for SECONDS+3
seconds with the bench scenario, records the daemon for SECONDS seconds, and prints the CPU
share per thread and the heaviest call paths of our own code (children-inclusive). The raw
data stays in target/perf-hotlined.data for `perf report -i`.
Needs `perf` (Debian linux-perf); software cpu-clock works where hardware counters do not.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

RATE = int(sys.argv[1]) if len(sys.argv) > 1 else 300
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 12
DATA = os.path.join(run.ROOT, "target", "perf-hotlined.data")
OURS = ("gateway::", "appeals::", "hotlined::", "sip::", "sqlx_sqlite::connection::worker",
        "udp_loop", "sqlite3_step", "Parker>::park", "try_send_to", "sync_data")


def main() -> int:
    work = tempfile.mkdtemp(prefix="hotline-prof-")
    try:
        cfg = run.bench_config(work)
        d = run.start_daemon(os.path.join(run.ROOT, "target", "release", "hotlined"), cfg, work, "prof")
        perf = run.start(["perf", "record", "-F", "999", "-g", "--call-graph", "dwarf,16384",
                          "-o", DATA, "-p", str(d.pid), "--", "sleep", str(SECONDS)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load = run.Load("profile", d.sip, run.bench_number(cfg), RATE, RATE * (SECONDS + 3),
                        limit=SECONDS + 15)
        res, sampler = run.run_load(load, work, {"hotlined": d.pid})
        perf.wait()
        run.stop(d.proc)
        cpu = sampler.cpu_seconds("hotlined") or 0.0
        print(f"{res.ok}/{load.calls} calls ok at {RATE}/s; hotlined {sampler.cpu_share('hotlined'):.2f} "
              f"cores, {cpu * 1000 / max(res.ok, 1):.2f} ms CPU per call")
        report = ["perf", "report", "-i", DATA, "--stdio", "-g", "none"]
        threads = subprocess.run(report + ["--no-children", "--sort", "comm"],
                                 capture_output=True, text=True).stdout
        print("CPU samples per thread:")
        print("\n".join(line for line in threads.splitlines() if line.strip() and not line.startswith("#")))
        syms = subprocess.run(report + ["--children", "--sort", "sym"], capture_output=True, text=True).stdout
        print("Our code and the hand-offs, children included (% of the daemon's samples):")
        shown = 0
        for line in syms.splitlines():
            keep = "{{closure}}" not in line or line.endswith(("writer::run::{{closure}}", "udp_loop::{{closure}}"))
            if any(k in line for k in OURS) and keep and shown < 40:
                print(line)
                shown += 1
    finally:
        run.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
