#!/usr/bin/env python3
"""Hotline load benchmarks: the real `hotlined` (release build) driven by SIPp on 127.0.0.1.

Usage (from the repo root; `make bench` builds first and calls this):
    python3 bench/run.py [--quick] [--only SECTION,...] [--doc docs/BENCHMARKS.md]

SECTIONS
  micro        criterion micro-benchmarks of crates/sip, crates/media and crates/acd (built already)
  concurrency  N simultaneous IVR calls held (500, 1000, 2000) with RTP both ways, a fresh daemon
               per N: CPU share of one core, RSS per call, and our RTP send jitter against the
               20 ms grid (tcpdump on lo)
  bridged      N callers bridged to SIPp operator phones (registered with digest, -rtp_echo):
               CPU and RSS per call with RTP relayed both ways
  ivr-rate     IVR calls (a 3.75 s prompt over RTP, then our BYE) at rising rates, against
               hotlined and against a SIPp uas doing the same, until > 0.1 % fail
  call-rate    calls answered and hung up at once, at rising rates, against hotlined and against
               SIPp's own `-sn uas` at the same rate (the baseline), until > 0.1 % fail
  live         600 calls/s into queue `bench` (each waits 0.5 s with music, then hangs up: a
               join and an abandon per call) with 200 `GET /events` streams open (bearer token),
               against the same load without streams: every queue event's delivery latency
               (receipt - the event's `at`) on every stream, events per stream, and the
               daemon's extra CPU
  overload     a probe call held with RTP, then 15 s of INVITEs at 3x the clean call rate (the
               call-rate section's held rate when it ran, else 1 000/s): the probe's BYE is
               answered, its RTP send jitter p99 (tcpdump) and every flood INVITE answered 200/503
  soak         100 calls/s for 30 min (--quick: 50/s for 2 min), IVR calls with RTP both ways and
               10 % to SIPp operator phones: RSS, open fds, threads and CPU per call each minute;
               then a 15 s burst at 3x the rate: RSS before, at the peak and a minute after
  cases        the case store at size (crates/appeals/examples/cases_bench.rs): 1 000 000 appeals
               and 200 000 citizens (--quick: 100 000 / 20 000) filled into SQLite and into a
               throw-away PostgreSQL (scripts/with-postgres.sh), then full-text search and the
               first page of each worklist (mine, overdue, due-today, missed), cold and median

Every SIPp gets explicit -i/-p/-mp/-cp ports from sip-test/free_port.py, `-nostdin`,
`-timeout` (its own global limit) and a hard `timeout -k` around it; every load is bounded in
calls (-m, -l) and time. The daemon's CPU (utime+stime of /proc/PID/stat) and RSS (VmRSS of
/proc/PID/status) are sampled every 0.25 s. When tcpdump is present, each call-rate step is
captured on `lo` (SIP port only, 512-byte snap) and INVITE->200 is measured on the wire with
microsecond timestamps, next to SIPp's own response time (-trace_rtt, 1 ms resolution).

The results replace the part of the doc between the `bench:results` markers; the text around
them (analysis, profile notes) is kept.

Adding a scenario (RTP, IVR, bridged calls): write a `Load` with its SIPp scenario file and extra
SIPp arguments (`-rtp_echo`, pcap play), give `procs` so no SIPp carries more than ~400 RTP
calls (TEST-PEERS.md), and add a section function that runs it through `run_load` and a table
writer; `Load.capture_ports` can name the RTP ports for a jitter analysis of the capture.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SCENARIOS = os.path.join(BENCH, "scenarios")
FREE_PORT = os.path.join(ROOT, "sip-test", "free_port.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# The number the bench line answers (added to a copy of config/lines.toml, ring_seconds = 0).
BENCH_NUMBER = "5550100"
IVR_NUMBER = "5550101"  # a 3.75 s prompt, then the daemon hangs up (bench/config/ivr/bench-prompt.toml)
HOLD_NUMBER = "5550102"  # a prompt, then a menu waiting for a key (bench-hold.toml)
QUEUE_NUMBER = "5550103"  # straight into queue `bench` (bench-queue.toml)
BENCH_OPERATORS = 1000  # operators of queue `bench` in the bench config
RTP_MIN, RTP_MAX = 10000, 19999  # the daemon's RTP ports (below free_port.py's 20000-32000)
RTP_PER_SIPP = 400  # calls with RTP per SIPp process (-rtp_echo drops near 500: TEST-PEERS.md)
ADMIN_TOKEN = "change-me"  # config/hotline.toml's admin token (the bench logs operators in)
FAIL_LIMIT = 0.001  # a rate is "held" with fewer than 0.1 % failed calls
CALLS_PER_SIPP = 300  # call-rate: calls/s per SIPp client process before we split

STARTED: list[subprocess.Popen] = []  # every process we started, stopped at exit
USED_PORTS: list[int] = []


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pick_port(span: int = 1) -> int:
    out = subprocess.run(
        [sys.executable, FREE_PORT, str(span), *map(str, USED_PORTS)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    port = int(out)
    USED_PORTS.extend(range(port, port + span))
    return port


def start(cmd: list[str], **kw) -> subprocess.Popen:
    p = subprocess.Popen(cmd, **kw)
    STARTED.append(p)
    return p


def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 10.0) -> int | None:
    """Signal one process we started and wait for it; KILL after `wait` seconds."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in STARTED:
        STARTED.remove(p)
    return p.returncode


def stop_all() -> None:
    for p in list(STARTED):
        stop(p, wait=5)


# ---------------------------------------------------------------------------------------------
# /proc sampling


def proc_ticks(pid: int) -> int | None:
    """utime + stime of `pid`, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    except (OSError, IndexError, ValueError):
        return None


def proc_status(pid: int, key: str) -> int | None:
    """A number from /proc/PID/status (`VmRSS:` in KiB, `Threads:`…)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def proc_rss_kib(pid: int) -> int | None:
    return proc_status(pid, "VmRSS:")


def proc_threads(pid: int) -> int | None:
    return proc_status(pid, "Threads:")


def proc_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


class Sampler(threading.Thread):
    """Samples CPU ticks and RSS of some processes every `period` seconds, plus the machine."""

    def __init__(self, pids: dict[str, int], period: float = 0.25):
        super().__init__(daemon=True)
        self.pids = pids
        self.period = period
        self.samples: list[tuple[float, dict[str, tuple[int | None, int | None]], tuple[int, int]]] = []
        self._halt = threading.Event()

    def sample(self) -> None:
        now = time.monotonic()
        row = {name: (proc_ticks(pid), proc_rss_kib(pid)) for name, pid in self.pids.items()}
        self.samples.append((now, row, machine_ticks()))

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.period)

    def finish(self) -> None:
        self._halt.set()
        self.join()
        self.sample()

    def window(self, t0: float | None = None, t1: float | None = None):
        return [s for s in self.samples if (t0 is None or s[0] >= t0) and (t1 is None or s[0] <= t1)]

    def cpu_share(self, name: str, t0: float | None = None, t1: float | None = None) -> float | None:
        """CPU used by `name` between the first and last sample of the window, in cores."""
        w = [s for s in self.window(t0, t1) if s[1][name][0] is not None]
        if len(w) < 2 or w[-1][0] <= w[0][0]:
            return None
        return (w[-1][1][name][0] - w[0][1][name][0]) / CLK_TCK / (w[-1][0] - w[0][0])

    def cpu_seconds(self, name: str) -> float | None:
        w = [s for s in self.samples if s[1][name][0] is not None]
        if len(w) < 2:
            return None
        return (w[-1][1][name][0] - w[0][1][name][0]) / CLK_TCK

    def rss_max(self, name: str, t0: float | None = None, t1: float | None = None) -> int | None:
        vals = [s[1][name][1] for s in self.window(t0, t1) if s[1][name][1] is not None]
        return max(vals) if vals else None

    def machine_busy(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (b0, a0), (b1, a1) = self.samples[0][2], self.samples[-1][2]
        return (b1 - b0) / (a1 - a0) if a1 > a0 else None


# ---------------------------------------------------------------------------------------------
# The daemon


@dataclass
class Daemon:
    proc: subprocess.Popen
    sip: str
    admin: str
    env: dict[str, str]
    cmd: list[str]
    log_path: str

    @property
    def pid(self) -> int:
        return self.proc.pid


def bench_config(tmp: str) -> str:
    """A copy of config/ with the bench lines, menus, queue and operators of bench/config/.

    lines.toml gains lines 5550100 (answer, silence), 5550101 (a 3.75 s prompt, then BYE),
    5550102 (a prompt, then a menu waiting for a key) and 5550103 (straight to queue `bench`),
    all with ring_seconds = 0; queues.toml gains queue `bench` (wrap-up 0); operators.toml
    gains BENCH_OPERATORS operators `benchNNNN` (password `pw-benchNNNN`) in that queue."""
    cfg = os.path.join(tmp, "config")
    shutil.copytree(os.path.join(ROOT, "config"), cfg)
    src = os.path.join(BENCH, "config")
    for menu in glob.glob(os.path.join(src, "ivr", "*.toml")):
        shutil.copy(menu, os.path.join(cfg, "ivr"))
    for name in ("lines.toml", "queues.toml"):
        with open(os.path.join(src, name), encoding="utf-8") as fh:
            extra = fh.read()
        with open(os.path.join(cfg, name), "a", encoding="utf-8") as fh:
            fh.write(extra)
    with open(os.path.join(cfg, "operators.toml"), "a", encoding="utf-8") as fh:
        fh.write("\n# ---- added by bench/run.py: the bench queue's operators (SIPp phones) ----\n")
        for login, password in bench_operators():
            fh.write(f'[[operator]]\nlogin = "{login}"\nname = "Bench {login}"\npassword = "{password}"\n'
                     'skills = { bench = 1 }\n\n')
    return os.path.join(cfg, "hotline.toml")


def bench_operators(n: int | None = None) -> list[tuple[str, str]]:
    """(login, password) of the bench operators, the first `n` (all when None)."""
    return [(f"bench{i:04d}", f"pw-bench{i:04d}") for i in range(1, (n or BENCH_OPERATORS) + 1)]


def bench_number(config: str) -> str:
    """The number of a line with ring_seconds = 0 in the config's lines.toml."""
    text = open(os.path.join(os.path.dirname(config), "lines.toml"), encoding="utf-8").read()
    for block in text.split("[[line]]")[1:]:
        if re.search(r"(?m)^ring_seconds\s*=\s*0(\.0*)?\s*$", block):
            m = re.search(r'(?m)^number\s*=\s*"([^"]+)"', block)
            if m:
                return m.group(1)
    raise SystemExit("no line with ring_seconds = 0 in the bench config")


def start_daemon(binary: str, config: str, workdir: str, tag: str) -> Daemon:
    sip_port = pick_port()
    admin_port = pick_port()
    # a fresh folder at every start: a first start, whose demo-accounts line is waited for
    data = tempfile.mkdtemp(prefix=f"data-{tag}-", dir=workdir)
    env = {
        "HOTLINE__SIP__LISTEN": f"127.0.0.1:{sip_port}",
        # config/hotline.toml also listens on [::1]:5060: a second daemon (or another
        # helper's) on this machine could not start
        "HOTLINE__SIP__LISTEN_V6": f"[::1]:{pick_port()}",
        "HOTLINE__ADMIN__LISTEN": f"127.0.0.1:{admin_port}",
        "HOTLINE__DATABASE__URL": f"sqlite://{data}/hotline.db",
        "HOTLINE__DATABASE__SPOOL_DIR": f"{data}/spool",
        "HOTLINE__RECORDING__DIR": f"{data}/recordings",
        "HOTLINE__LOG__LEVEL": "warn",
        "HOTLINE__CALLS__SHUTDOWN_GRACE": "2",
        "HOTLINE__RTP__PORT_MIN": str(RTP_MIN),
        "HOTLINE__RTP__PORT_MAX": str(RTP_MAX),
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE__")}
    full_env.update(env)
    cmd = [binary, "run", "--config", config]
    log_path = os.path.join(workdir, f"hotlined-{tag}.log")
    proc = start(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"))
    d = Daemon(proc, f"127.0.0.1:{sip_port}", f"127.0.0.1:{admin_port}", env, cmd, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"hotlined exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://{d.admin}/health", timeout=1) as r:
                if r.status == 200:
                    wait_demo_accounts(d)
                    return d
        except OSError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise SystemExit("hotlined not ready within 30 s")


def wait_demo_accounts(d: Daemon, limit: float = 300.0) -> None:
    """A first start on a loopback admin address makes a demo account for every operator of
    the config (1 000 in the bench's), each an argon2id hash (19 MiB, tens of ms of CPU) on
    the blocking pool while the daemon already answers: measuring meanwhile would count the
    cores' worth of hashing against the calls. Waits (bounded) for the daemon's one line
    saying they are made (or not made), as the sip-test scripts do; the bench's data folder
    is always fresh, so a first start always says one of them."""
    t0 = time.monotonic()
    while time.monotonic() < t0 + limit:
        with open(d.log_path, "rb") as f:
            text = f.read()
        if b"demo accounts made" in text or b"demo accounts not made" in text:
            break
        if d.proc.poll() is not None:
            raise SystemExit(f"hotlined exited with {d.proc.returncode}; see {d.log_path}")
        time.sleep(0.5)
    log(f"  daemon ready; its demo accounts took {time.monotonic() - t0:.0f} s")


def metrics(d: Daemon) -> dict[str, float]:
    """The daemon's /metrics as {"name" or "name{labels}": value} ({} when unreachable)."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://{d.admin}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    key, _, val = line.rpartition(" ")
                    try:
                        out[key] = float(val)
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def metric_sum(m: dict[str, float], name: str) -> float:
    """The sum of a metric family over its labels."""
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


def calls_active(d: Daemon) -> int | None:
    m = metrics(d)
    return int(m["hotline_calls_active"]) if "hotline_calls_active" in m else None


def admin_post(d: Daemon, path: str, method: str = "POST") -> int:
    """POST (or `method`) to the admin API with the bench token; the HTTP status."""
    req = urllib.request.Request(f"http://{d.admin}{path}", data=b"" if method == "POST" else None,
                                 method=method, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def wait_idle(d: Daemon, limit: float = 40.0) -> int | None:
    """Waits (bounded) until the daemon reports no active call; returns what it last reported."""
    deadline = time.monotonic() + limit
    n = calls_active(d)
    while n and time.monotonic() < deadline:
        time.sleep(0.25)
        n = calls_active(d)
    return n


# ---------------------------------------------------------------------------------------------
# SIPp


@dataclass
class Load:
    """One bounded SIPp load against one target, possibly split over several client processes."""

    name: str
    target: str  # "host:port"
    number: str
    rate: float  # calls per second, all processes together
    calls: int  # all processes together
    hold_ms: int = 0
    limit: int = 60  # SIPp -timeout per process, seconds
    procs: int = 1
    scenario: str = os.path.join(SCENARIOS, "uac_rtd.xml")
    extra: list[str] = field(default_factory=list)
    capture_port: int | None = None  # SIP port to capture on lo (INVITE->200 on the wire)
    # capture the daemon's RTP to the SIPp media ports: (seconds after the start, seconds long)
    rtp_capture: tuple[float, float] | None = None


@dataclass
class LoadResult:
    load: Load
    placed: int = 0
    ok: int = 0
    failed: int = 0
    retrans: int = 0
    rtt_ms: list[float] = field(default_factory=list)
    wire_ms: list[float] = field(default_factory=list)
    wire_invite_retrans: int = 0
    wire_200_retrans: int = 0
    capture_drops: str = ""
    elapsed: float = 0.0
    commands: list[str] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    media_ports: list[int] = field(default_factory=list)
    jitter: dict = field(default_factory=dict)
    rtt_by_rtd: dict[str, list[float]] = field(default_factory=dict)  # rtd name -> ms

    @property
    def unfinished(self) -> int:
        return max(self.load.calls - self.ok - self.failed, 0)

    @property
    def fail_ratio(self) -> float:
        return (self.load.calls - self.ok) / self.load.calls if self.load.calls else 0.0


def last_row(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="latin-1") as fh:
            rows = [r.rstrip("\n").split(";") for r in fh if r.strip()]
    except OSError:
        return {}
    return dict(zip(rows[0], rows[-1])) if len(rows) >= 2 else {}


def as_int(v: str | None) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0


def run_load(load: Load, outdir: str, sampler_pids: dict[str, int]) -> tuple[LoadResult, Sampler]:
    """Runs `load` (all its SIPp processes at once) while sampling `sampler_pids`."""
    res = LoadResult(load)
    d = os.path.join(outdir, load.name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cap = None
    cap_path = os.path.join(d, "sip.pcap")
    if load.capture_port and shutil.which("tcpdump"):
        cap_err = open(os.path.join(d, "tcpdump.stderr"), "wb")
        cap = start(
            ["timeout", "-k", "5", str(load.limit + 30), "tcpdump", "-i", "lo", "-n", "-s", "512",
             "-B", "16384", "-w", cap_path, f"udp port {load.capture_port}"],
            stdout=subprocess.DEVNULL, stderr=cap_err,
        )
        time.sleep(0.7)  # tcpdump needs a moment before it sees packets
    sampler = Sampler(sampler_pids)
    sampler.start()
    started = time.monotonic()
    procs = launch_sipp(load, d, res)
    rtp_cap: dict = {}
    timer = None
    if load.rtp_capture and shutil.which("tcpdump"):
        timer = threading.Timer(max(0.0, started + load.rtp_capture[0] - time.monotonic()),
                                start_rtp_capture, (load, res.media_ports, d, rtp_cap))
        timer.start()
    for p, _ in procs:
        p.wait()
        res.exit_codes.append(p.returncode)
        STARTED.remove(p)
    res.elapsed = time.monotonic() - started
    sampler.finish()
    if timer is not None:
        timer.cancel()
        if "proc" in rtp_cap:
            rtp_cap["proc"].wait()
            STARTED.remove(rtp_cap["proc"])
            res.jitter = rtp_grid_jitter(rtp_cap["path"], set(res.media_ports))
            errs = open(os.path.join(d, "rtp-tcpdump.stderr"), errors="replace").read()
            m = re.search(r"(\d+) packets dropped by kernel", errs)
            res.jitter["drops"] = int(m.group(1)) if m else None
            try:
                os.remove(rtp_cap["path"])
            except OSError:
                pass
    if cap is not None:
        time.sleep(0.3)
        stop(cap, signal.SIGINT)
        cap_err.close()
        m = re.search(r"(\d+) packets dropped by kernel",
                      open(os.path.join(d, "tcpdump.stderr"), errors="replace").read())
        res.capture_drops = m.group(1) if m else "?"
        wire = pcap_sip_timings(cap_path, load.capture_port)
        res.wire_ms, res.wire_invite_retrans, res.wire_200_retrans = wire
        try:
            os.remove(cap_path)  # can be tens of MB; the numbers are what we keep
        except OSError:
            pass
    read_sipp(res, [pd for _, pd in procs])
    return res, sampler


def launch_sipp(load: Load, d: str, res: LoadResult) -> list[tuple[subprocess.Popen, str]]:
    """Starts the SIPp processes of `load` (its calls and rate split evenly) in d/sippN, each
    with its own ports; notes their command lines and media ports in `res`."""
    procs = []
    calls_each = [load.calls // load.procs + (1 if i < load.calls % load.procs else 0)
                  for i in range(load.procs)]
    for i in range(load.procs):
        sp, mp, cp = pick_port(), pick_port(4), pick_port()
        pd = os.path.join(d, f"sipp{i}")
        os.makedirs(pd)
        rate = load.rate / load.procs
        args = [
            "sipp", load.target, "-sf", load.scenario, "-s", load.number, "-t", "u1",
            "-i", "127.0.0.1", "-bind_local", "-mi", "127.0.0.1",
            "-p", str(sp), "-mp", str(mp), "-cp", str(cp), "-nostdin",
            "-m", str(calls_each[i]), "-r", f"{rate:g}", "-l", str(calls_each[i]),
            "-d", str(load.hold_ms), "-timeout", f"{load.limit}s",
            "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_rtt", "-rtt_freq", "50",
            *load.extra,
        ]
        res.commands.append(" ".join(args).replace(ROOT + "/", ""))
        p = start(["timeout", "-k", "5", str(load.limit + 15), *args], cwd=pd,
                  stdout=open(os.path.join(pd, "sipp.stdout"), "wb"),
                  stderr=open(os.path.join(pd, "sipp.stderr"), "wb"))
        procs.append((p, pd))
        res.media_ports.append(mp)
    return procs


def read_sipp(res: LoadResult, dirs: list[str]) -> None:
    """Adds what the SIPp processes that ran in `dirs` counted (stat.csv, *_rtt.csv) to `res`."""
    for pd in dirs:
        row = last_row(os.path.join(pd, "stat.csv"))
        res.placed += as_int(row.get("TotalCallCreated"))
        res.ok += as_int(row.get("SuccessfulCall(C)"))
        res.failed += as_int(row.get("FailedCall(C)"))
        res.retrans += as_int(row.get("Retransmissions(C)"))
        for path in glob.glob(os.path.join(pd, "*_rtt.csv")):
            with open(path) as fh:
                next(fh, None)
                for line in fh:
                    parts = line.split(";")
                    if len(parts) >= 2:
                        try:
                            res.rtt_ms.append(float(parts[1]))
                            res.rtt_by_rtd.setdefault(parts[2].strip() if len(parts) > 2 else "1",
                                                      []).append(float(parts[1]))
                        except ValueError:
                            pass


def start_rtp_capture(load: Load, ports: list[int], d: str, out: dict) -> None:
    """tcpdump (ns timestamps, headers only) of the daemon's RTP to the SIPp media ports for
    `load.rtp_capture[1]` seconds; ends with SIGINT so the file is complete."""
    path = os.path.join(d, "rtp.pcap")
    dst = " or ".join(f"dst port {p}" for p in ports)
    flt = f"udp and src portrange {RTP_MIN}-{RTP_MAX} and ({dst})"
    assert load.rtp_capture is not None
    secs = load.rtp_capture[1]
    out["path"] = path
    out["proc"] = start(
        ["timeout", "-s", "INT", "-k", "10", f"{secs:g}", "tcpdump", "-i", "lo", "-n", "-s", "60",
         "-B", "65536", "--time-stamp-precision=nano", "-w", path, flt],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "rtp-tcpdump.stderr"), "wb"))


def pcap_udp(path: str):
    """(time s, src port, dst port, UDP payload) of every IPv4 UDP packet of a pcap file."""
    try:
        data = open(path, "rb").read()
    except OSError:
        return
    if len(data) < 24:
        return
    magic = data[:4]
    endian, scale = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
                     b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}.get(magic, (None, 0))
    if endian is None:
        return
    l2 = {1: 14, 0: 4, 113: 16, 276: 20, 101: 0}.get(struct.unpack(endian + "I", data[20:24])[0])
    if l2 is None:
        return
    hdr = struct.Struct(endian + "IIII")
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = hdr.unpack_from(data, off)
        off += 16
        pkt = data[off:off + caplen]
        off += caplen
        ip = pkt[l2:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        sport, dport = struct.unpack_from(">HH", ip, ihl)
        yield sec + frac * scale, sport, dport, ip[ihl + 8:]


def rtp_grid_jitter(path: str, ports: set[int]) -> dict:
    """Send-time jitter of the daemon's RTP from a capture on `lo`.

    Each stream (daemon port -> SIPp port) should leave on a 20 ms grid: packet i with RTP
    timestamp ts_i belongs at t0 + (ts_i - ts_0) / 8000 s. For every packet d_i = capture time
    minus its grid offset; the stream's own grid phase is the median of its d_i (a leg may start
    anywhere in the 20 ms tick and later legs of a tick are sent later, a constant offset the
    receiver never notices); the deviation is |d_i - median|. Reported over all packets of all
    streams: p50, p99, max in ms, and the share of packets more than 1 ms off."""
    streams: dict[tuple[int, int], list[tuple[float, int]]] = {}
    for t, sport, dport, pl in pcap_udp(path):
        if dport not in ports or len(pl) < 12 or pl[0] >> 6 != 2 or 72 <= (pl[1] & 0x7F) <= 76:
            continue
        streams.setdefault((sport, dport), []).append((t, struct.unpack_from(">I", pl, 4)[0]))
    devs: list[float] = []
    packets = 0
    for pkts in streams.values():
        if len(pkts) < 10:
            continue
        packets += len(pkts)
        ts0 = pkts[0][1]
        d = [t - (((ts - ts0) & 0xFFFFFFFF) / 8000.0) for t, ts in pkts]
        mid = statistics.median(d)
        devs.extend(abs(x - mid) * 1000.0 for x in d)
    if not devs:
        return {"streams": 0, "packets": 0}
    devs.sort()
    return {
        "streams": sum(1 for p in streams.values() if len(p) >= 10), "packets": packets,
        "p50": pct(devs, 50), "p99": pct(devs, 99), "max": devs[-1],
        "over_1ms": sum(1 for x in devs if x > 1.0) / len(devs),
    }


def pcap_sip_timings(path: str, sip_port: int) -> tuple[list[float], int, int]:
    """INVITE->200 times (ms) per Call-ID from a pcap of UDP SIP to/from `sip_port`, and the
    INVITE and 200-to-INVITE retransmissions seen on the wire."""
    try:
        data = open(path, "rb").read()
    except OSError:
        return [], 0, 0
    if len(data) < 24:
        return [], 0, 0
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian, scale = "<", 1e-6
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian, scale = ">", 1e-6
    elif magic == b"\x4d\x3c\xb2\xa1":
        endian, scale = "<", 1e-9
    elif magic == b"\xa1\xb2\x3c\x4d":
        endian, scale = ">", 1e-9
    else:
        return [], 0, 0
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    l2 = {1: 14, 0: 4, 113: 16, 276: 20, 101: 0}.get(linktype)
    if l2 is None:
        return [], 0, 0
    invite_at: dict[bytes, float] = {}
    ok_at: dict[bytes, float] = {}
    inv_re = ok_re = 0
    callid = re.compile(rb"\r\n(?:Call-ID|i)\s*:\s*([^\r\n]+)", re.I)
    cseq_invite = re.compile(rb"\r\nCSeq\s*:\s*\d+\s+INVITE", re.I)
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + caplen]
        off += caplen
        t = sec + frac * scale
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        udp = ip[ihl:]
        if len(udp) < 8:
            continue
        sport, dport = struct.unpack(">HH", udp[:4])
        payload = udp[8:]
        m = callid.search(payload)
        if not m:
            continue
        cid = m.group(1).strip()
        if dport == sip_port and payload.startswith(b"INVITE "):
            if cid in invite_at:
                inv_re += 1
            else:
                invite_at[cid] = t
        elif sport == sip_port and payload.startswith(b"SIP/2.0 200") and cseq_invite.search(payload):
            if cid in ok_at:
                ok_re += 1
            else:
                ok_at[cid] = t
    times = [(ok_at[c] - t) * 1000.0 for c, t in invite_at.items() if c in ok_at]
    return times, inv_re, ok_re


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]


def fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# Sections


def section_micro(quick: bool) -> list[dict]:
    """Runs the criterion benches (already built by `make bench`) and reads their estimates."""
    crit = os.path.join(ROOT, "target", "criterion")
    shutil.rmtree(crit, ignore_errors=True)
    mt, wt = ("1", "0.5") if quick else ("2", "1")
    rows = []
    for crate, bench in (("sip", "parse"), ("media", "media"), ("acd", "pick")):
        cmd = ["cargo", "bench", "-q", "-p", crate, "--bench", bench, "--",
               "--measurement-time", mt, "--warm-up-time", wt]
        log(" ".join(cmd))
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            log(f"criterion failed: {r.stderr[-2000:]}")
            rows.append({"id": f"{crate}/{bench} FAILED (exit {r.returncode})", "cmd": " ".join(cmd)})
            continue
        for bj in sorted(glob.glob(os.path.join(crit, "**", "new", "benchmark.json"), recursive=True)):
            meta = json.load(open(bj))
            if any(r_["id"] == meta["full_id"] for r_ in rows):
                continue
            est = json.load(open(os.path.join(os.path.dirname(bj), "estimates.json")))
            rows.append({
                "id": meta["full_id"],
                "cmd": " ".join(cmd),
                "median_ns": est["median"]["point_estimate"],
                "lo_ns": est["median"]["confidence_interval"]["lower_bound"],
                "hi_ns": est["median"]["confidence_interval"]["upper_bound"],
                "throughput": meta.get("throughput"),
            })
    return rows


def ns_text(ns: float) -> str:
    if ns < 1e3:
        return f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


def plateau_poll(d: Daemon, keys: tuple[str, ...], period: float = 0.5):
    """Polls /metrics in a thread and keeps each family's highest sum; `.halt()` stops it."""
    peak = {k: 0.0 for k in keys}
    halt = threading.Event()

    def poll():
        while not halt.is_set():
            m = metrics(d)
            for k in keys:
                peak[k] = max(peak[k], metric_sum(m, k))
            halt.wait(period)

    t = threading.Thread(target=poll, daemon=True)
    t.start()

    def finish():
        halt.set()
        t.join()
        return peak
    return finish


def section_concurrency(binary: str, config: str, work: str, quick: bool) -> list[dict]:
    """N calls in the IVR (line 5550102: a prompt, then a menu waiting for a key) with RTP
    both ways: the daemon plays to SIPp, SIPp's -rtp_echo sends it back (at most RTP_PER_SIPP
    calls per SIPp). A fresh daemon per N. CPU and RSS while all N are up, then the daemon's
    RTP captured on lo for the send-jitter figures (rtp_grid_jitter)."""
    rows = []
    levels = [200, 500] if quick else [500, 1000, 2000]
    ramp_rate = 250
    for n in levels:
        d = start_daemon(binary, config, work, f"conc{n}")
        time.sleep(1.0)
        idle = proc_rss_kib(d.pid)
        ramp = n / ramp_rate
        cpu_s, cap_s = 4.0, 4.0  # CPU/RSS window, then the capture window
        hold_s = ramp + 1.5 + cpu_s + cap_s + 1.5
        load = Load(f"concurrency-{n}", d.sip, HOLD_NUMBER, ramp_rate, n, hold_ms=int(hold_s * 1000),
                    limit=int(hold_s + 25), procs=max(1, math.ceil(n / RTP_PER_SIPP)),
                    extra=["-rtp_echo"], rtp_capture=(ramp + 1.5 + cpu_s + 0.3, cap_s))
        log(f"concurrency {n}: {n} IVR calls with RTP at {ramp_rate}/s, each held {hold_s:.0f} s")
        finish = plateau_poll(d, ("hotline_calls_active", "hotline_rtp_legs_active"))
        m0 = {}
        t0 = time.monotonic()
        timer = threading.Timer(ramp + 1.5, lambda: m0.update(metrics(d)))
        timer.start()
        res, sampler = run_load(load, work, {"hotlined": d.pid})
        timer.cancel()
        peak = finish()
        p0, p1 = t0 + ramp + 1.5, t0 + ramp + 1.5 + cpu_s
        rss = sampler.rss_max("hotlined", p0, p1)
        m1 = metrics(d)
        sent = metric_sum(m1, "hotline_rtp_packets_sent_total") - metric_sum(m0, "hotline_rtp_packets_sent_total")
        recv = metric_sum(m1, "hotline_rtp_packets_received_total") - metric_sum(m0, "hotline_rtp_packets_received_total")
        span = hold_s - ramp - 1.5
        rows.append({
            "n": n, "ok": res.ok, "failed": res.failed, "unfinished": res.unfinished,
            "peak_active": int(peak["hotline_calls_active"]), "peak_legs": int(peak["hotline_rtp_legs_active"]),
            "idle_kib": idle, "rss_kib": rss, "per_call_kib": (rss - idle) / n if rss and idle else None,
            "cpu_hold": sampler.cpu_share("hotlined", p0, p1),
            "cpu_ramp": sampler.cpu_share("hotlined", t0, t0 + ramp), "busy": sampler.machine_busy(),
            "sent_pps": sent / span if m0 else None, "recv_pps": recv / span if m0 else None,
            "lost": metric_sum(m1, "hotline_rtp_packets_lost_total"),
            "jitter": res.jitter, "cmds": res.commands,
            "retrans": res.retrans, "daemon_env": d.env, "daemon_cmd": d.cmd,
        })
        log(f"  ok {res.ok}/{n} cpu {fmt(rows[-1]['cpu_hold'], 3)} rss/call {fmt(rows[-1]['per_call_kib'], 1)} KiB "
            f"jitter {res.jitter}")
        stop(d.proc)
    return rows


def section_bridged(binary: str, config: str, work: str, quick: bool) -> list[dict]:
    """N callers on line 5550103 (straight to queue `bench`) bridged to N SIPp operator
    phones; RTP both ways on both legs (-rtp_echo on callers and phones), relayed by the
    daemon. A fresh daemon per N; the idle RSS is taken with the operators registered."""
    rows = []
    levels = [50] if quick else [500, 1000]
    ramp_rate = 200
    for n in levels:
        d = start_daemon(binary, config, work, f"bridged{n}")
        ramp = n / ramp_rate
        cpu_s, cap_s = 5.0, 3.0
        hold_s = ramp + 2.5 + cpu_s + cap_s + 1.5
        phones, phone_cmds = start_operator_phones(d, n, work, int(hold_s + 60))
        time.sleep(1.0)
        idle = proc_rss_kib(d.pid)
        load = Load(f"bridged-{n}", d.sip, QUEUE_NUMBER, ramp_rate, n, hold_ms=int(hold_s * 1000),
                    limit=int(hold_s + 25), procs=max(1, math.ceil(n / RTP_PER_SIPP)),
                    extra=["-rtp_echo"], rtp_capture=(ramp + 2.5 + cpu_s + 0.3, cap_s))
        log(f"bridged {n}: {n} callers at {ramp_rate}/s to {n} operator phones, held {hold_s:.0f} s")
        finish = plateau_poll(d, ("hotline_calls_active", "hotline_rtp_legs_active"))
        waiting = {}
        t0 = time.monotonic()
        timer = threading.Timer(ramp + 2.5, lambda: waiting.update(metrics(d)))
        timer.start()
        res, sampler = run_load(load, work, {"hotlined": d.pid})
        timer.cancel()
        peak = finish()
        p0, p1 = t0 + ramp + 2.5, t0 + ramp + 2.5 + cpu_s
        rss = sampler.rss_max("hotlined", p0, p1)
        for p in phones:
            stop(p)
        rows.append({
            "n": n, "ok": res.ok, "failed": res.failed, "unfinished": res.unfinished,
            "peak_active": int(peak["hotline_calls_active"]), "peak_legs": int(peak["hotline_rtp_legs_active"]),
            "waiting": metric_sum(waiting, "hotline_queue_waiting") if waiting else None,
            "idle_kib": idle, "rss_kib": rss, "per_call_kib": (rss - idle) / n if rss and idle else None,
            "cpu_hold": sampler.cpu_share("hotlined", p0, p1),
            "cpu_ramp": sampler.cpu_share("hotlined", t0, t0 + ramp), "busy": sampler.machine_busy(),
            "jitter": res.jitter, "cmds": phone_cmds + res.commands, "daemon_env": d.env,
        })
        log(f"  ok {res.ok}/{n} legs {peak['hotline_rtp_legs_active']:.0f} cpu {fmt(rows[-1]['cpu_hold'], 3)} "
            f"rss/call {fmt(rows[-1]['per_call_kib'], 1)} KiB jitter {res.jitter}")
        stop(d.proc)
    return rows


class SseClient(threading.Thread):
    """One page's `GET /events`: counts the queue events whose `at` falls after `since` and
    their delivery latency (receipt time - `at`, both on this machine's clock)."""

    def __init__(self, admin: str, token: str):
        super().__init__(daemon=True)
        self.admin, self.token = admin, token
        self.since = float("inf")
        self.latencies: list[float] = []
        self.snapshot = 0
        self.error: str | None = None
        self.stop = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        import http.client
        host, port = self.admin.rsplit(":", 1)
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=30)
            c.request("GET", "/events", headers={"Authorization": f"Bearer {self.token}",
                                                  "Accept": "text/event-stream"})
            r = c.getresponse()
            if r.status != 200:
                self.error = f"HTTP {r.status}"
                return
            self.connected.set()
            kind = None
            while not self.stop.is_set():
                line = r.fp.readline()
                if not line:
                    break
                if line.startswith(b"event: "):
                    kind = line[7:].strip()
                elif line.startswith(b"data: ") and kind == b"queue":
                    now = time.time()
                    m = re.search(rb'"at":"([^"]+)"', line)
                    if not m:
                        continue
                    at = datetime.datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00")).timestamp()
                    if at >= self.since:
                        self.latencies.append(now - at)
                    else:
                        self.snapshot += 1
            c.close()
        except Exception as e:  # a stream that broke is reported, not fatal to the bench
            self.error = str(e)
            self.connected.set()


def section_live(binary: str, config: str, work: str, quick: bool) -> dict:
    """The same queue load twice on one daemon: without pages, then with 200 event streams."""
    rate, secs, clients = (600, 5, 200) if quick else (600, 20, 200)
    d = start_daemon(binary, config, work, "live")
    out: dict = {"rate": rate, "seconds": secs, "clients": clients, "daemon_env": d.env}
    try:
        runs = {}
        streams: list[SseClient] = []
        for phase in ("without", "with"):
            if phase == "with":
                streams = [SseClient(d.admin, ADMIN_TOKEN) for _ in range(clients)]
                for s in streams:
                    s.start()
                for s in streams:
                    s.connected.wait(30)
                time.sleep(1.0)
                idle_pages = metrics(d).get("hotline_live_pages")
                out["pages_open"] = idle_pages
                t_start = time.time()
                for s in streams:
                    s.since = t_start
            load = Load(f"live-{phase}", d.sip, QUEUE_NUMBER, rate, rate * secs, hold_ms=500,
                        limit=secs + 30, procs=max(1, math.ceil(rate * 0.5 / RTP_PER_SIPP)) + 1)
            log(f"live: {rate} calls/s for {secs} s into queue bench, {phase} {clients} event streams")
            res, sampler = run_load(load, work, {"hotlined": d.pid})
            runs[phase] = {"ok": res.ok, "failed": res.failed, "unfinished": res.unfinished,
                           "cpu": sampler.cpu_share("hotlined"), "elapsed": res.elapsed,
                           "cmds": res.commands}
            wait_idle(d)
            time.sleep(1.5)  # the last flushes reach the streams
        for s in streams:
            s.stop.set()
        lat = sorted(x for s in streams for x in s.latencies)
        counts = [len(s.latencies) for s in streams]
        out.update({
            "runs": runs,
            "errors": sorted({s.error for s in streams if s.error}),
            "events_min": min(counts) if counts else 0, "events_max": max(counts) if counts else 0,
            "events_total": len(lat),
            "lat_p50": pct(lat, 50), "lat_p99": pct(lat, 99), "lat_max": lat[-1] if lat else None,
            "late_over_1s": sum(1 for x in lat if x > 1.0),
        })
        log(f"  streams {clients}: events/stream {out['events_min']}..{out['events_max']}, "
            f"latency p50 {fmt(out['lat_p50'], 3)} p99 {fmt(out['lat_p99'], 3)} max {fmt(out['lat_max'], 3)} s, "
            f"cpu without {fmt(runs['without']['cpu'], 3)} with {fmt(runs['with']['cpu'], 3)}")
    finally:
        stop(d.proc)
    return out


def render_live(w, lv: dict) -> None:
    r = lv["runs"]
    w("### Live events: 200 pages during 600 calls/s")
    w("")
    w(f"{lv['rate']} calls/s for {lv['seconds']} s into queue `bench` (nobody answers: each caller "
      "waits 0.5 s with music and hangs up, so every call is a join and an abandon), first without "
      f"pages, then with {lv['clients']} `GET /events` streams open (admin bearer token: every "
      "queue event). A queue's changes go out at most every 100 ms as one event; latency is "
      "the stream's receipt time minus the event's `at` (its oldest change), same clock.")
    w("")
    w("| measure | without pages | with pages |")
    w("| --- | --- | --- |")
    w(f"| calls ok / failed / unfinished | {r['without']['ok']} / {r['without']['failed']} / "
      f"{r['without']['unfinished']} | {r['with']['ok']} / {r['with']['failed']} / {r['with']['unfinished']} |")
    w(f"| daemon CPU (share of one core) | {fmt(r['without']['cpu'], 3)} | {fmt(r['with']['cpu'], 3)} |")
    w("")
    w(f"Streams open (`hotline_live_pages`): {lv.get('pages_open')}; stream errors: "
      f"{', '.join(lv['errors']) or 'none'}. Queue events received per stream: "
      f"{lv['events_min']}–{lv['events_max']} ({lv['events_total']} in all). Delivery latency: "
      f"p50 {fmt(lv['lat_p50'], 3)} s, p99 {fmt(lv['lat_p99'], 3)} s, max {fmt(lv['lat_max'], 3)} s; "
      f"{lv['late_over_1s']} later than 1 s.")
    w("")


def section_call_rate(binary: str, config: str, work: str, quick: bool, ivr: bool = False) -> dict:
    """Rising call rates against hotlined and the SIPp baseline at each rate, until > 0.1 %
    fail. `ivr`: calls to line 5550101 (a 3.75 s prompt over RTP, then our BYE; uac_ivr.xml),
    30 s per step, against SIPp's uas_ivr.xml (answers, waits 3.75 s, BYE); otherwise calls
    answered and hung up at once (uac_rtd.xml), 20 s per step, against `sipp -sn uas`."""
    if ivr:
        number, scenario, call_s = IVR_NUMBER, os.path.join(SCENARIOS, "uac_ivr.xml"), 4
        rates = [50, 100] if quick else [100, 200, 400, 500, 600, 800]
        duration = 8 if quick else 30
        tag = "ivr"
    else:
        number, scenario, call_s = bench_number(config), os.path.join(SCENARIOS, "uac_rtd.xml"), 0
        rates = [50, 100, 200] if quick else [50, 100, 200, 400, 600, 800, 1000]
        duration = 8 if quick else 20
        tag = "rate"
    d = start_daemon(binary, config, work, tag)
    steps = []
    alive = {"hotlined": True, "sipp-uas": True}
    for rate in rates:
        for target in ("hotlined", "sipp-uas"):
            if not alive[target]:
                continue
            calls = int(rate * duration)
            procs = max(1, math.ceil(rate / CALLS_PER_SIPP))
            uas = None
            if target == "hotlined":
                addr, port, pids = d.sip, int(d.sip.rsplit(":", 1)[1]), {"server": d.pid}
            else:
                port, ump, ucp = pick_port(), pick_port(4), pick_port()
                uas_dir = os.path.join(work, f"uas-{tag}-{rate}")
                os.makedirs(uas_dir, exist_ok=True)
                uas_scn = ["-sf", os.path.join(SCENARIOS, "uas_ivr.xml")] if ivr else ["-sn", "uas"]
                uas_cmd = ["sipp", *uas_scn, "-i", "127.0.0.1", "-p", str(port), "-mp", str(ump),
                           "-cp", str(ucp), "-nostdin", "-timeout", f"{duration + 40}s"]
                uas = start(["timeout", "-k", "5", str(duration + 55), *uas_cmd], cwd=uas_dir,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(uas_dir, "stderr"), "wb"))
                time.sleep(0.5)
                uas_pid = sipp_child(uas.pid)
                addr, pids = f"127.0.0.1:{port}", {"server": uas_pid}
            load = Load(f"{tag}-{target}-{rate}", addr, number, rate, calls, hold_ms=0,
                        limit=duration + 10 + call_s * 3, procs=procs, capture_port=port,
                        scenario=scenario)
            log(f"call rate {rate}/s against {target}: {calls} calls over {procs} SIPp")
            res, sampler = run_load(load, work, pids)
            if uas is not None:
                stop(uas)
                res.commands.insert(0, "(baseline server) " + " ".join(uas_cmd).replace(ROOT + "/", ""))
            else:
                wait_idle(d, 40)
            cpu_s = sampler.cpu_seconds("server")
            step = {
                "target": target, "rate": rate, "calls": calls, "ok": res.ok,
                "failed": res.failed, "unfinished": res.unfinished, "fail": res.fail_ratio,
                "retrans": res.retrans, "placed": res.placed, "elapsed": res.elapsed,
                "rtt_p50": pct(res.rtt_ms, 50), "rtt_p99": pct(res.rtt_ms, 99),
                "rtt_n": len(res.rtt_ms),
                "wire_p50": pct(res.wire_ms, 50), "wire_p99": pct(res.wire_ms, 99),
                "wire_max": max(res.wire_ms) if res.wire_ms else None, "wire_n": len(res.wire_ms),
                "wire_inv_re": res.wire_invite_retrans, "wire_200_re": res.wire_200_retrans,
                "drops": res.capture_drops,
                "cpu": sampler.cpu_share("server"), "cpu_ms_per_call": (cpu_s * 1000 / res.ok) if cpu_s and res.ok else None,
                "rss_kib": sampler.rss_max("server"), "busy": sampler.machine_busy(),
                "cmds": res.commands, "exit": res.exit_codes,
            }
            steps.append(step)
            log(f"  ok {res.ok}/{calls} fail {res.fail_ratio:.4%} retrans {res.retrans} "
                f"wire p50/p99 {fmt(step['wire_p50'], 3)}/{fmt(step['wire_p99'], 3)} ms "
                f"cpu {fmt(step['cpu'])}")
            if res.fail_ratio > FAIL_LIMIT or res.placed < calls * 0.99:
                alive[target] = False
            if target == "hotlined" and d.proc.poll() is not None:
                log("hotlined died")
                alive["hotlined"] = False
    stop(d.proc)
    return {"steps": steps, "duration": duration, "daemon_env": d.env, "daemon_cmd": d.cmd}


SOAK_QUEUE_SHARE = 0.1  # of the soak's calls go to queue `bench` and talk 3 s to a SIPp operator phone


def soak_sample(d: Daemon, t0: float) -> dict:
    m = metrics(d)
    return {
        "t": time.monotonic() - t0, "rss_kib": proc_rss_kib(d.pid), "fds": proc_fds(d.pid),
        "threads": proc_threads(d.pid), "ticks": proc_ticks(d.pid),
        "calls_total": metric_sum(m, "hotline_calls_total"),
        "active": metric_sum(m, "hotline_calls_active"),
        "timers": metric_sum(m, "hotline_call_timers"),
        "shed": metric_sum(m, "hotline_sip_invites_shed_total"),
        # why (a soak on a busy machine sheds; the reason says which measure tripped)
        "shed_by_reason": {k.split('reason="')[1].rstrip('"}'): v for k, v in m.items()
                           if k.startswith("hotline_sip_invites_shed_total{")},
    }


def section_soak(binary: str, config: str, work: str, quick: bool) -> dict:
    """A fixed call rate for a set time: IVR calls (line 5550101: a 3.75 s prompt over RTP, both
    ways with -rtp_echo, then our BYE) and SOAK_QUEUE_SHARE of the calls to queue `bench`, where
    SIPp operator phones answer and the caller hangs up after 3 s. RSS, open fds, threads and
    CPU per call sampled every period; then, with the daemon idle again, a 15 s burst of IVR
    calls at 3x the rate with RSS before it, at its peak and a minute after it."""
    rate, duration, period, warm = (50, 120, 15, 30) if quick else (100, 1800, 60, 300)
    d = start_daemon(binary, config, work, "soak")
    q_rate = rate * SOAK_QUEUE_SHARE
    ivr_rate = rate - q_rate
    phones_n = max(4, math.ceil(q_rate * 4 * 1.5))
    phones, phone_cmds = start_operator_phones(d, phones_n, work, duration + 180)
    time.sleep(1.0)
    res_ivr = LoadResult(Load("soak-ivr", d.sip, IVR_NUMBER, ivr_rate, int(ivr_rate * duration),
                              limit=duration + 60, procs=max(1, math.ceil(ivr_rate * 4 / RTP_PER_SIPP)),
                              scenario=os.path.join(SCENARIOS, "uac_ivr.xml"), extra=["-rtp_echo"]))
    res_q = LoadResult(Load("soak-queue", d.sip, QUEUE_NUMBER, q_rate, int(q_rate * duration), hold_ms=3000,
                            limit=duration + 60, procs=1, extra=["-rtp_echo"]))
    log(f"soak: {rate}/s for {duration} s ({ivr_rate:g}/s IVR, {q_rate:g}/s to {phones_n} operator phones), "
        f"a sample every {period} s")
    t0 = time.monotonic()
    samples = [soak_sample(d, t0)]
    procs = []
    for r_ in (res_ivr, res_q):
        dd = os.path.join(work, r_.load.name)
        shutil.rmtree(dd, ignore_errors=True)
        os.makedirs(dd)
        procs += [(r_, p, pd) for p, pd in launch_sipp(r_.load, dd, r_)]
    next_at = t0 + period
    while any(p.poll() is None for _, p, _ in procs):
        time.sleep(0.5)
        if time.monotonic() >= next_at:
            samples.append(soak_sample(d, t0))
            s_ = samples[-1]
            log(f"  {s_['t']:.0f} s: rss {s_['rss_kib']} KiB fds {s_['fds']} threads {s_['threads']} "
                f"active {s_['active']:.0f} calls {s_['calls_total']:.0f} timers {s_['timers']:.0f}")
            next_at += period
        if time.monotonic() > t0 + duration + 120:
            break
    for r_, p, pd in procs:
        stop(p)
        r_.exit_codes.append(p.returncode)
    for r_ in (res_ivr, res_q):
        read_sipp(r_, [pd for rr, _, pd in procs if rr is r_])
    if samples[-1]["t"] < duration - 1:
        samples.append(soak_sample(d, t0))
    rows = []
    for a, b in zip(samples, samples[1:]):
        calls = b["calls_total"] - a["calls_total"]
        cpu = (b["ticks"] - a["ticks"]) / CLK_TCK if a["ticks"] is not None and b["ticks"] is not None else None
        rows.append({**b, "calls": calls, "cpu_ms_per_call": cpu * 1000 / calls if cpu is not None and calls else None,
                     "cpu_share": cpu / (b["t"] - a["t"]) if cpu is not None and b["t"] > a["t"] else None})
    steady = [r_ for r_ in rows if r_["t"] >= warm and r_["t"] <= duration + 1]
    rss_warm = next((r_["rss_kib"] for r_ in steady if r_["rss_kib"]), None)
    rss_end = steady[-1]["rss_kib"] if steady else None
    growth = (rss_end - rss_warm) / rss_warm if rss_warm and rss_end else None
    for p in phones:
        stop(p)
    failed = res_ivr.failed + res_q.failed + res_ivr.unfinished + res_q.unfinished
    log(f"soak: ok {res_ivr.ok + res_q.ok}/{res_ivr.load.calls + res_q.load.calls}, failed/unfinished {failed}, "
        f"RSS {rss_warm} -> {rss_end} KiB after the warm-up ({fmt(growth * 100 if growth is not None else None)} %)")

    # the burst, once the soak's calls are gone
    wait_idle(d, 60)
    time.sleep(5)
    before = proc_rss_kib(d.pid)
    b_rate = 3 * rate
    burst_s = 15
    burst = Load("soak-burst", d.sip, IVR_NUMBER, b_rate, b_rate * burst_s, limit=burst_s + 40,
                 procs=max(1, math.ceil(b_rate * 4 / RTP_PER_SIPP)),
                 scenario=os.path.join(SCENARIOS, "uac_ivr.xml"), extra=["-rtp_echo"])
    log(f"burst: {b_rate}/s IVR calls for {burst_s} s (RSS before {before} KiB)")
    res_b, sampler = run_load(burst, work, {"hotlined": d.pid})
    peak = sampler.rss_max("hotlined")
    ended = time.monotonic()
    wait_idle(d, 40)
    after_series = []
    while time.monotonic() < ended + 60:
        after_series.append((time.monotonic() - ended, proc_rss_kib(d.pid)))
        time.sleep(5)
    after = proc_rss_kib(d.pid)
    log(f"burst: ok {res_b.ok}/{burst.calls}; RSS before {before}, peak {peak}, a minute after {after} KiB")
    final = soak_sample(d, t0)
    stop(d.proc)
    return {
        "rate": rate, "duration": duration, "period": period, "warm": warm, "queue_share": SOAK_QUEUE_SHARE,
        "phones": phones_n, "rows": rows,
        "calls": res_ivr.load.calls + res_q.load.calls, "ok": res_ivr.ok + res_q.ok,
        "failed": res_ivr.failed + res_q.failed, "unfinished": res_ivr.unfinished + res_q.unfinished,
        "retrans": res_ivr.retrans + res_q.retrans,
        "rss_warm": rss_warm, "rss_end": rss_end, "growth": growth,
        "fds": [r_["fds"] for r_ in steady], "threads": [r_["threads"] for r_ in steady],
        "burst": {"rate": b_rate, "seconds": burst_s, "calls": burst.calls, "ok": res_b.ok,
                  "failed": res_b.failed, "unfinished": res_b.unfinished,
                  "before": before, "peak": peak, "after": after, "after_series": after_series,
                  "cmds": res_b.commands},
        "final": final,
        "cmds": phone_cmds + res_ivr.commands + res_q.commands, "daemon_env": d.env,
    }


def section_overload(binary: str, config: str, work: str, quick: bool, clean: int | None) -> dict:
    """A probe call (line 5550102, held with RTP both ways) set up first, then INVITEs at 3x the
    clean call rate for 15 s to a line that answers at once (bench/scenarios/uac_flood.xml: a
    503 is a final answer too). The probe's BYE goes out in the middle of the flood; the
    daemon's RTP to the probe is captured on lo during the flood (send jitter against the
    20 ms grid). Every flood INVITE must get a final answer: 200 (taken) or 503 (shed)."""
    clean = clean or (200 if quick else 1000)
    flood_s = 5 if quick else 15
    flood_rate = 3 * clean
    d = start_daemon(binary, config, work, "overload")
    lead = 2.0  # the probe is up this long before the flood starts
    bye_at = lead + flood_s * 0.6
    probe = Load("overload-probe", d.sip, HOLD_NUMBER, 1, 1, hold_ms=int(bye_at * 1000),
                 limit=int(bye_at + 60), scenario=os.path.join(SCENARIOS, "uac_probe.xml"),
                 extra=["-rtp_echo", "-rtt_freq", "1"], rtp_capture=(lead + 0.2, flood_s * 0.6 - 0.4))
    out: dict = {}
    probe_thread = threading.Thread(target=lambda: out.update(zip(("res", "sampler"), run_load(probe, work, {"hotlined": d.pid}))))
    log(f"overload: a probe call, then {flood_rate}/s INVITEs for {flood_s} s (3x {clean}/s)")
    probe_thread.start()
    time.sleep(lead)
    m0 = metrics(d)
    flood = Load("overload-flood", d.sip, bench_number(config), flood_rate, flood_rate * flood_s,
                 limit=flood_s + 40, procs=max(1, math.ceil(flood_rate / 1000)),
                 scenario=os.path.join(SCENARIOS, "uac_flood.xml"), extra=["-trace_counts"])
    res_f, sampler = run_load(flood, work, {"hotlined": d.pid})
    probe_thread.join(timeout=120)
    m1 = metrics(d)
    shed_503, taken_200 = 0, 0
    for path in glob.glob(os.path.join(work, flood.name, "sipp*", "*_counts.csv")):
        row = last_row(path)
        for k, v in row.items():
            if "503" in k and "Recv" in k:
                shed_503 += as_int(v)
    res_p = out.get("res")
    bye_ms = max(res_p.rtt_by_rtd.get("bye") or [None], key=lambda x: x or 0) if res_p else None
    shed = metric_sum(m1, "hotline_sip_invites_shed_total") - metric_sum(m0, "hotline_sip_invites_shed_total")
    taken = metric_sum(m1, "hotline_calls_total") - metric_sum(m0, "hotline_calls_total")
    by_reason = {k.split('reason="')[1].rstrip('"}'): v - m0.get(k, 0.0)
                 for k, v in m1.items() if k.startswith("hotline_sip_invites_shed_total{")}
    row = {
        "clean": clean, "flood_rate": flood_rate, "flood_s": flood_s, "invites": flood.calls,
        "flood_ok": res_f.ok, "flood_failed": res_f.failed, "flood_unfinished": res_f.unfinished,
        "flood_retrans": res_f.retrans, "sipp_503": shed_503, "daemon_shed": shed, "daemon_taken": taken,
        "shed_by_reason": by_reason,
        "probe_ok": res_p.ok if res_p else 0, "probe_failed": res_p.failed if res_p else 1,
        "probe_bye_ms": bye_ms, "probe_jitter": res_p.jitter if res_p else {},
        "cpu": sampler.cpu_share("hotlined"), "busy": sampler.machine_busy(),
        "cmds": (res_p.commands if res_p else []) + res_f.commands, "daemon_env": d.env,
    }
    j = row["probe_jitter"] or {}
    log(f"  probe ok {row['probe_ok']} BYE->200 {fmt(bye_ms)} ms jitter p99 {fmt(j.get('p99'))} ms; flood "
        f"ok {res_f.ok}/{flood.calls} failed {res_f.failed} unfinished {res_f.unfinished}; 503 seen {shed_503}, "
        f"shed {shed:.0f} {by_reason}, taken {taken:.0f}")
    stop(d.proc)
    return row


def start_operator_phones(d: Daemon, n: int, work: str, limit: int) -> tuple[list, list[str]]:
    """Registers bench operators 1..n from SIPp phones (op_register.xml + op_answer.xml,
    -rtp_echo; RTP_PER_SIPP operators per process) and logs them in through the admin API.
    Returns the processes (stop them when done) and their command lines."""
    procs, cmds = [], []
    ops = bench_operators(n)
    nproc = max(1, math.ceil(n / RTP_PER_SIPP))
    for i in range(nproc):
        mine = ops[i::nproc]
        pd = os.path.join(work, f"operators-{n}-{i}")
        os.makedirs(pd, exist_ok=True)
        with open(os.path.join(pd, "operators.csv"), "w") as fh:
            # SIPp expands no keyword inside [authentication …]; a field may hold the whole keyword
            fh.write("SEQUENTIAL\n" + "".join(
                f"{lg};[authentication username={lg} password={pw}]\n" for lg, pw in mine))
        sp, mp, cp = pick_port(), pick_port(4), pick_port()
        args = ["sipp", d.sip, "-sf", os.path.join(SCENARIOS, "op_register.xml"),
                "-oocsf", os.path.join(SCENARIOS, "op_answer.xml"), "-inf", "operators.csv",
                "-t", "u1", "-i", "127.0.0.1", "-bind_local", "-mi", "127.0.0.1",
                "-p", str(sp), "-mp", str(mp), "-cp", str(cp), "-nostdin",
                "-m", str(len(mine)), "-l", str(len(mine)), "-r", "200",
                "-d", str(limit * 1000), "-timeout", f"{limit}s", "-rtp_echo",
                "-trace_stat", "-stf", "stat.csv", "-fd", "1"]
        cmds.append(" ".join(args).replace(ROOT + "/", ""))
        procs.append(start(["timeout", "-k", "5", str(limit + 10), *args], cwd=pd,
                           stdout=open(os.path.join(pd, "sipp.stdout"), "wb"),
                           stderr=open(os.path.join(pd, "sipp.stderr"), "wb")))
    deadline = time.monotonic() + 30 + n / 100
    while time.monotonic() < deadline:
        if metric_sum(metrics(d), "hotline_registrations") >= n:
            break
        time.sleep(0.5)
    bad = [lg for lg, _ in ops if admin_post(d, f"/api/v1/operators/{lg}/login") != 200]
    reg = metric_sum(metrics(d), "hotline_registrations")
    log(f"operators: {reg:.0f} registered, {n - len(bad)} logged in")
    if bad:
        log(f"  login failed for {len(bad)}: {bad[:5]}")
    return procs, cmds


def sipp_child(pid: int) -> int:
    """The sipp process under a `timeout` wrapper we started (its only child)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = [int(x) for x in fh.read().split()]
        return kids[0] if kids else pid
    except OSError:
        return pid


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
    sipp_v = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout
    m = re.search(r"SIPp v?([\w.\-]+)", sipp_v)
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(), "model": model, "mem": mem, "kernel": platform.release(),
        "sipp": m.group(1).rstrip(".") if m else "?", "rustc": rustc,
        "load": open("/proc/loadavg").read().split()[:3],
    }


def held_rates(steps: list[dict]) -> dict:
    held = {}
    for t in ("hotlined", "sipp-uas"):
        ok = [s["rate"] for s in steps if s["target"] == t and s["fail"] <= FAIL_LIMIT
              and s["placed"] >= s["calls"] * 0.99]
        # held = every step up to it held (a later lucky step does not count)
        tried = sorted(s["rate"] for s in steps if s["target"] == t)
        top = None
        for r_ in tried:
            if r_ not in ok:
                break
            top = r_
        held[t] = top
    return held


def ratio(a, b, digits: int = 1) -> str:
    return f"{a / b:.{digits}f}" if a and b else "–"


def render_summary(w, rate: dict, what: str, target_rate: str, at: int = 200) -> None:
    steps = rate["steps"]
    held = held_rates(steps)
    tried = max(s["rate"] for s in steps)
    hh, hu = held["hotlined"], held["sipp-uas"]
    cap = lambda v: "–" if v is None else (f"≥ {v}" if v == tried else str(v))  # noqa: E731
    r = f"{hh / hu:.2f}" if hh and hu and not (hh == hu == tried) else "– (both held every step)"
    w(f"| {what}: highest rate held {rate['duration']} s with < 0.1 % failed (calls/s) | "
      f"{cap(hh)} | {cap(hu)} | {r} | {target_rate} |")
    for rate_at in dict.fromkeys([at, hh] if hh else [at]):
        on = {s["target"]: s for s in steps if s["rate"] == rate_at}
        for key, label in (("wire_p50", "p50"), ("wire_p99", "p99")):
            a, b = on.get("hotlined", {}).get(key), on.get("sipp-uas", {}).get(key)
            tgt = "≤ 5 ms" if label == "p99" and rate_at == 200 else ""
            w(f"| {what}: INVITE→200 {label} at {rate_at}/s, on the wire (ms) | {fmt(a, 3)} | {fmt(b, 3)} | {ratio(a, b)} | {tgt} |")
    on = {s["target"]: s for s in steps if s["rate"] == at}
    a, b = on.get("hotlined", {}).get("cpu_ms_per_call"), on.get("sipp-uas", {}).get("cpu_ms_per_call")
    w(f"| {what}: server CPU per call at {at}/s (ms) | {fmt(a, 3)} | {fmt(b, 3)} | {ratio(a, b)} | |")


def render_steps(w, rate: dict) -> None:
    w("| target | calls/s | calls | ok | fail | fail % | retr | INV re / 200 re | wire p50 / p99 / max (ms) | sipp p50 / p99 (ms) | CPU (cores) | CPU per call (ms) | RSS max (MiB) | busy |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    steps = rate["steps"]
    for s in steps:
        w(f"| {s['target']} | {s['rate']} | {s['calls']} | {s['ok']} | {s['failed'] + s['unfinished']} | "
          f"{s['fail'] * 100:.2f} | {s['retrans']} | {s['wire_inv_re']} / {s['wire_200_re']} | "
          f"{fmt(s['wire_p50'], 3)} / {fmt(s['wire_p99'], 3)} / {fmt(s['wire_max'], 1)} | "
          f"{fmt(s['rtt_p50'], 0)} / {fmt(s['rtt_p99'], 0)} | {fmt(s['cpu'])} | "
          f"{fmt(s['cpu_ms_per_call'], 3)} | {fmt(s['rss_kib'] / 1024 if s['rss_kib'] else None, 1)} | "
          f"{fmt(s['busy'] * 100 if s['busy'] is not None else None, 0)} % |")
    w("")
    if any(s["drops"] not in ("0", "") for s in steps):
        w("tcpdump reported kernel drops in some steps: "
          + ", ".join(f"{s['target']}@{s['rate']}: {s['drops']}" for s in steps) + ".")
        w("")


def jit(j: dict | None, key: str) -> str:
    return fmt((j or {}).get(key), 3)


CASES_BENCH = os.path.join(ROOT, "target", "release", "examples", "cases_bench")
CASES_TARGET_MS = 100


def section_cases(work: str, quick: bool) -> dict:
    """Fills SQLite and a throw-away PostgreSQL with appeals and citizens and times the case
    reads (the example prints one JSON object per database)."""
    appeals, citizens = (100_000, 20_000) if quick else (1_000_000, 200_000)
    if not os.access(CASES_BENCH, os.X_OK):
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "appeals", "--example", "cases_bench"],
                       cwd=ROOT, check=True)
    out: dict = {"appeals": appeals, "citizens": citizens, "runs": []}
    db = os.path.join(work, "cases.db")
    runs = [
        ("sqlite", [CASES_BENCH, f"sqlite://{db}", str(appeals), str(citizens)]),
        ("postgres", [os.path.join(ROOT, "scripts", "with-postgres.sh"), "sh", "-c",
                      f'exec "{CASES_BENCH}" "$HOTLINE_TEST_PG_URL" {appeals} {citizens}']),
    ]
    for name, cmd in runs:
        log(f"cases: filling {name} with {appeals} appeals and {citizens} citizens")
        p = subprocess.run(["timeout", "-k", "10", "3600"] + cmd, cwd=ROOT, capture_output=True, text=True)
        line = next((l for l in reversed(p.stdout.splitlines()) if l.startswith("{")), None)
        if p.returncode != 0 or line is None:
            log(f"cases: {name} failed ({p.returncode}): {p.stderr[-2000:]}")
            out["runs"].append({"backend": name, "error": (p.stderr or "")[-500:]})
            continue
        out["runs"].append(json.loads(line))
    return out


def render_cases(w, c: dict) -> None:
    w(f"### Cases at size: search and worklists over {c['appeals']:,} appeals and {c['citizens']:,} citizens"
      .replace(",", " "))
    w("")
    w("`crates/appeals/examples/cases_bench.rs` fills a fresh database (multi-row INSERTs; the "
      "full-text triggers and indexes of migration 7 work as for any insert) with a year of calls "
      "(60 % from a citizen's number, 14 % abandoned, notes on a third, a service and due date on "
      "half, open ones assigned to 50 operators) and Russian names and Novosibirsk addresses, "
      "fills `missed_callers`, runs ANALYZE, then runs each read 7 times through `appeals::Store`: "
      "the first (cold) run and the median. \"page\" is the first 50, newest first, as "
      f"`GET /api/v1/appeals?q=` gives them; \"count\" is its `total`, counted up to 10 000 (rows 10000: "
      f"\"more than 10 000\", `total_exact: false`). Target: under {CASES_TARGET_MS} ms. "
      f"Command: `target/release/examples/cases_bench sqlite://… {c['appeals']} {c['citizens']}`, and the same "
      "with `\"$HOTLINE_TEST_PG_URL\"` under `scripts/with-postgres.sh`.")
    w("")
    for r in c["runs"]:
        if "error" in r:
            w(f"- {r['backend']}: failed — `{r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}`")
            w("")
            continue
        f = r["fill_seconds"]
        if f is None:  # a database the example filled before: the reads only
            w(f"**{r['backend']}** — reads only, on a database filled before "
              f"({r['missed_callers']} callers missed)")
        else:
            w(f"**{r['backend']}** — fill: citizens {f['citizens']:.0f} s, appeals {f['appeals']:.0f} s, "
              f"missed list {f['missed']:.1f} s ({r['missed_callers']} callers missed)")
        w("")
        w("| read | rows | first (ms) | median (ms) | under target |")
        w("| --- | --- | --- | --- | --- |")
        for name, t in r["timings"].items():
            ok = "yes" if t["median_ms"] < CASES_TARGET_MS else "**no**"
            w(f"| {name} | {t['rows']} | {t['first_ms']:.1f} | {t['median_ms']:.1f} | {ok} |")
        w("")


def render(meta: dict, res: dict) -> str:
    out = []
    w = out.append
    micro, conc, bridged = res.get("micro"), res.get("concurrency"), res.get("bridged")
    ivr, rate = res.get("ivr-rate"), res.get("call-rate")
    live = res.get("live")
    w(f"Run: `{meta['command']}`, finished {meta['date']}, {meta['wall']:.0f} s wall time.")
    for name, r_ in (meta.get("runs") or {}).items():
        w(f"- `{name}` measured {r_['date']} ({r_['wall']:.0f} s; load average after it {' '.join(r_['load'])})")
    mc = meta["machine"]
    w("")
    w(f"Machine: {mc['nproc']} cores ({mc['model']}), {mc['mem']} RAM, Linux {mc['kernel']}, "
      f"load average before the run {' '.join(mc['load'])}; {mc['rustc']}; SIPp {mc['sipp']}. "
      "The machine is shared with other work (other builds and test runs were going on): read "
      "the ratios to the SIPp baseline rather than the absolute times.")
    w("")
    if ivr or rate or conc or bridged:
        w("### Summary")
        w("")
        w("| measure | hotlined | SIPp (baseline) | ratio hotlined/SIPp | target |")
        w("| --- | --- | --- | --- | --- |")
        if ivr:
            render_summary(w, ivr, "IVR calls, 3.75 s prompt", "≥ 500/s")
        if rate:
            render_summary(w, rate, "answer + hang up at once", "")
        for c in conc or []:
            w(f"| {c['n']} IVR calls with RTP both ways: CPU (share of one core) / RSS per call | "
              f"{fmt(c['cpu_hold'], 3)} / {fmt(c['per_call_kib'], 1)} KiB | | | ≤ 1 core / ≤ 50 KiB |")
        for c in conc or []:
            j = c.get("jitter") or {}
            w(f"| {c['n']} IVR calls: RTP send jitter p50 / p99 / max (ms) | {jit(j, 'p50')} / "
              f"{jit(j, 'p99')} / {jit(j, 'max')} | | | p99 ≤ 1 ms |")
        for b in bridged or []:
            w(f"| {b['n']} bridged calls, RTP relayed both ways: CPU (share of one core) / RSS per call | "
              f"{fmt(b['cpu_hold'], 3)} / {fmt(b['per_call_kib'], 1)} KiB | | | ≤ 1 core (1 000 calls) |")
        w("")
    if ivr:
        w(f"### IVR call rate (each step {ivr['duration']} s; a 3.75 s prompt over RTP, then the daemon's BYE)")
        w("")
        w("Line 5550101 answers, plays `common/no-input` (3.75 s) and hangs up (bench/config/ivr/"
          "bench-prompt.toml); the caller (bench/scenarios/uac_ivr.xml) answers our BYE and does not "
          "send RTP. Baseline: SIPp itself as the server (bench/scenarios/uas_ivr.xml: 200, wait 3.75 s, "
          "BYE; no RTP). Columns as in the call-rate table below; a call fails if our BYE does not "
          "come within 15 s.")
        w("")
        render_steps(w, ivr)
    if conc:
        w("### Concurrency: calls in the IVR with RTP both ways")
        w("")
        w("N calls to line 5550102 (a 3.75 s prompt, then a menu waiting for a key; dtmf = auto, so "
          "the in-band detector runs) set up at 250/s and held; every SIPp (≤ 400 calls each) runs "
          "`-rtp_echo`, so every packet we send comes back. CPU and RSS over 4 s once all N are up; "
          "RSS per call = (RSS with N calls − RSS of the fresh idle daemon) / N. `pps` = RTP packets "
          "per second sent / received by the daemon (its own counters). Jitter: 4 s of the daemon's "
          "RTP captured on `lo` (see \"RTP send jitter\" above the results).")
        w("")
        w("| N | ok | failed / unfinished | peak calls / RTP legs | idle RSS | RSS at N | RSS per call | CPU while held (cores) | CPU while ramping | pps out / in | jitter p50 / p99 / max (ms) | > 1 ms | packets (streams) | busy |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for c in conc:
            j = c.get("jitter") or {}
            w(f"| {c['n']} | {c['ok']} | {c['failed']} / {c['unfinished']} | {c['peak_active']} / {c['peak_legs']} | "
              f"{fmt(c['idle_kib'] / 1024 if c['idle_kib'] else None, 1)} MiB | "
              f"{fmt(c['rss_kib'] / 1024 if c['rss_kib'] else None, 1)} MiB | "
              f"{fmt(c['per_call_kib'], 1)} KiB | {fmt(c['cpu_hold'], 3)} | {fmt(c['cpu_ramp'], 3)} | "
              f"{fmt(c.get('sent_pps'), 0)} / {fmt(c.get('recv_pps'), 0)} | {jit(j, 'p50')} / {jit(j, 'p99')} / {jit(j, 'max')} | "
              f"{fmt(j['over_1ms'] * 100 if 'over_1ms' in j else None, 2)} % | {j.get('packets', '–')} ({j.get('streams', '–')}) | "
              f"{fmt(c['busy'] * 100 if c.get('busy') is not None else None, 0)} % |")
        w("")
    if bridged:
        w("### Bridged calls")
        w("")
        w("N SIPp operator phones (op_register.xml + op_answer.xml, ≤ 400 per SIPp, `-rtp_echo`) register "
          "with digest as operators of queue `bench` (wrap-up 0) and are logged in through the admin API; "
          "then N callers (`-rtp_echo`) dial line 5550103, which goes straight to that queue, at 200/s. "
          "Each caller is bridged to a phone; the daemon relays RTP both ways (re-packetised). CPU and "
          "RSS over 5 s once all are bridged; RSS per call = (RSS − RSS with the phones registered and "
          "no call) / N, a call being both legs. Jitter: 3 s of what we send to the callers.")
        w("")
        w("| N | ok | failed / unfinished | peak calls / RTP legs | waiting in queue | idle RSS | RSS at N | RSS per call | CPU while bridged (cores) | CPU while ramping | jitter p50 / p99 / max (ms) | busy |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for b in bridged:
            j = b.get("jitter") or {}
            w(f"| {b['n']} | {b['ok']} | {b['failed']} / {b['unfinished']} | {b['peak_active']} / {b['peak_legs']} | "
              f"{fmt(b['waiting'], 0)} | {fmt(b['idle_kib'] / 1024 if b['idle_kib'] else None, 1)} MiB | "
              f"{fmt(b['rss_kib'] / 1024 if b['rss_kib'] else None, 1)} MiB | {fmt(b['per_call_kib'], 1)} KiB | "
              f"{fmt(b['cpu_hold'], 3)} | {fmt(b['cpu_ramp'], 3)} | {jit(j, 'p50')} / {jit(j, 'p99')} / {jit(j, 'max')} | "
              f"{fmt(b['busy'] * 100 if b.get('busy') is not None else None, 0)} % |")
        w("")
    if rate:
        w(f"### Call rate, SIP only (each step {rate['duration']} s; answer, ACK, BYE at once)")
        w("")
        w("`fail` counts failed and unfinished calls (those still open when SIPp's time limit hit). "
          "`wire` = INVITE→first 200 per Call-ID from a tcpdump capture on `lo` (µs timestamps); "
          "`sipp` = SIPp's `-trace_rtt` response time (whole ms, includes SIPp's own loop). "
          "`retr` = SIPp's retransmissions; `INV re / 200 re` = retransmitted INVITEs and 200s "
          "seen on the wire. CPU is the server's (hotlined or the SIPp uas) as a share of one core; "
          "`busy` is the whole machine (both cores, all processes).")
        w("")
        render_steps(w, rate)
    if micro:
        w("### Micro-benchmarks (criterion, median and its 95 % interval)")
        w("")
        w("| benchmark | median | interval | throughput |")
        w("| --- | --- | --- | --- |")
        for m in micro:
            if "median_ns" not in m:
                w(f"| {m['id']} | – | – | – |")
                continue
            tp = m.get("throughput") or {}
            thr = ""
            if "Bytes" in tp:
                thr = f"{tp['Bytes'] / m['median_ns'] * 1e9 / 1048576:.0f} MiB/s"
            elif "Elements" in tp:
                thr = f"{tp['Elements'] / m['median_ns'] * 1e9 / 1e6:.2f} M elements/s"
            w(f"| {m['id']} | {ns_text(m['median_ns'])} | {ns_text(m['lo_ns'])} – {ns_text(m['hi_ns'])} | {thr} |")
        w("")
    ov, soak = res.get("overload"), res.get("soak")
    if ov:
        render_overload(w, ov)
    if soak:
        render_soak(w, soak)
    if res.get("cases"):
        render_cases(w, res["cases"])
    w("### Command lines")
    w("")
    w("```sh")
    if micro:
        for c in dict.fromkeys(m["cmd"] for m in micro):
            w(c)
    daemon = next((x.get("daemon_env") for x in [ivr, rate, *(conc or []), *(bridged or []), ov, soak] if x), None)
    if daemon:
        w("# the daemon (ports differ per run; a copy of config/ plus bench/config/: lines 5550100-5550103, "
          f"queue bench, {BENCH_OPERATORS} operators)")
        line = " ".join(f"{k}={v}" for k, v in daemon.items())
        w(re.sub(r"/tmp/hotline-bench-\w+", "TMP", line) + " target/release/hotlined run --config TMP/config/hotline.toml")
    for c in conc or []:
        w(f"# concurrency {c['n']} (IVR, RTP both ways)")
        for x in c["cmds"]:
            w(x)
    for b in bridged or []:
        w(f"# bridged {b['n']}: operator phones, then callers")
        for x in b["cmds"]:
            w(x)
    if ov:
        w(f"# overload: the probe, then the flood ({ov['flood_rate']}/s for {ov['flood_s']} s)")
        for x in ov["cmds"]:
            w(x)
    if soak:
        w(f"# soak {soak['rate']}/s for {soak['duration']} s: operator phones, IVR callers, queue callers; then the burst")
        for x in soak["cmds"] + soak["burst"]["cmds"]:
            w(x)
    for label, r_ in (("IVR call rate", ivr), ("call rate", rate)):
        for s in (r_ or {}).get("steps", []):
            w(f"# {label} {s['rate']}/s against {s['target']}")
            for x in s["cmds"]:
                w(x)
    w("```")
    if live:
        render_live(w, live)
    return "\n".join(out)


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**yes**" if ok else "**NO**")


def render_overload(w, o: dict) -> None:
    w(f"### Overload: a call up, then {o['flood_rate']} INVITEs/s for {o['flood_s']} s "
      f"(3× {o['clean']}/s)")
    w("")
    w("A probe call (line 5550102, RTP both ways with -rtp_echo) is set up 2 s before the flood; "
      "its BYE goes out 60 % into the flood. The flood (bench/scenarios/uac_flood.xml) calls line "
      "5550100, which answers at once; a 503 is a final answer there. Shedding is measured by the "
      "daemon (`hotline_sip_invites_shed_total`, by reason) and by SIPp (503s received).")
    w("")
    j = o.get("probe_jitter") or {}
    w("| measure | result | target | met |")
    w("| --- | --- | --- | --- |")
    w(f"| probe BYE answered (BYE→200) | {'yes' if o['probe_ok'] else 'no'} ({fmt(o['probe_bye_ms'], 1)} ms) | "
      f"answered | {verdict(bool(o['probe_ok']))} |")
    w(f"| probe RTP send jitter p50 / p99 / max during the flood (ms; {j.get('packets', 0)} packets) | "
      f"{jit(j, 'p50')} / {jit(j, 'p99')} / {jit(j, 'max')} | p99 < 5 ms | "
      f"{verdict(j.get('p99') < 5 if j.get('p99') is not None else None)} |")
    answered = o['flood_ok']
    w(f"| flood INVITEs with a final answer (200 or 503) | {answered} of {o['invites']} "
      f"(failed {o['flood_failed']}, unfinished {o['flood_unfinished']}) | all | "
      f"{verdict(o['flood_failed'] == 0 and o['flood_unfinished'] == 0)} |")
    w(f"| 503s SIPp received / INVITEs the daemon shed / calls it took | {o['sipp_503']} / "
      f"{o['daemon_shed']:.0f} / {o['daemon_taken']:.0f} | every shed INVITE got 503 | "
      f"{verdict(o['sipp_503'] + o['daemon_taken'] >= o['invites'] and o['flood_failed'] == 0)} |")
    reasons = ", ".join(f"{k} {v:.0f}" for k, v in sorted(o["shed_by_reason"].items()) if v)
    w(f"| shed by reason | {reasons or 'none'} | | |")
    w(f"| daemon CPU during the flood (share of one core) / machine busy | {fmt(o['cpu'])} / "
      f"{fmt(o['busy'])} | | |")
    w("")


def render_soak(w, s: dict) -> None:
    mins = s["duration"] / 60
    w(f"### Soak: {s['rate']} calls/s for {mins:g} min, then a burst at 3×")
    w("")
    w(f"{100 - s['queue_share'] * 100:g} % of the calls go to line 5550101 (a 3.75 s prompt, RTP both "
      f"ways with -rtp_echo, then our BYE), {s['queue_share'] * 100:g} % to queue `bench`, answered by "
      f"{s['phones']} SIPp operator phones (-rtp_echo) and hung up by the caller after 3 s. A sample "
      f"every {s['period']} s; the steady state starts after {s['warm']} s.")
    w("")
    g = s.get("growth")
    fds = [x for x in s["fds"] if x is not None]
    thr = [x for x in s["threads"] if x is not None]
    b = s["burst"]
    back = b["after"] / b["before"] if b.get("after") and b.get("before") else None
    w("| measure | result | target | met |")
    w("| --- | --- | --- | --- |")
    w(f"| calls placed / failed / unfinished | {s['calls']} / {s['failed']} / {s['unfinished']} | 0 failed | "
      f"{verdict(s['failed'] == 0 and s['unfinished'] == 0)} |")
    w(f"| RSS after the warm-up → at the end (KiB) | {s['rss_warm']} → {s['rss_end']} "
      f"({fmt(g * 100 if g is not None else None)} %) | growth < 5 % | {verdict(g < 0.05 if g is not None else None)} |")
    w(f"| open fds after the warm-up, min – max | {min(fds) if fds else '–'} – {max(fds) if fds else '–'} | flat | "
      f"{verdict(max(fds) - min(fds) <= 8 if fds else None)} |")
    w(f"| threads after the warm-up, min – max | {min(thr) if thr else '–'} – {max(thr) if thr else '–'} | flat | "
      f"{verdict(max(thr) - min(thr) <= 4 if thr else None)} |")
    w(f"| burst {b['rate']}/s for {b['seconds']} s: RSS before / peak / a minute after (KiB) | "
      f"{b['before']} / {b['peak']} / {b['after']} ({fmt(back * 100 if back else None, 0)} % of before) | "
      f"within 10 % of before | {verdict(back <= 1.10 if back else None)} |")
    w(f"| burst calls ok / failed / unfinished | {b['ok']} / {b['failed']} / {b['unfinished']} | | |")
    w("")
    w("| t (s) | RSS (KiB) | fds | threads | calls up | calls in the period | CPU ms per call | CPU (cores) | call timers |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r_ in s["rows"]:
        w(f"| {r_['t']:.0f} | {r_['rss_kib']} | {r_['fds']} | {r_['threads']} | {r_['active']:.0f} | "
          f"{r_['calls']:.0f} | {fmt(r_['cpu_ms_per_call'], 3)} | {fmt(r_['cpu_share'], 3)} | {r_['timers']:.0f} |")
    w("")
    if b.get("after_series"):
        w("RSS after the burst's calls ended: " + ", ".join(
            f"{t:.0f} s {v} KiB" for t, v in b["after_series"]) + ".")
        w("")


START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"


def write_doc(path: str, body: str) -> None:
    block = f"{START}\n{body}\n{END}"
    if os.path.exists(path):
        text = open(path, encoding="utf-8").read()
        if START in text and END in text:
            pre, rest = text.split(START, 1)
            post = rest.split(END, 1)[1]
            text = pre + block + post
        else:
            text = text.rstrip() + "\n\n## Results\n\n" + block + "\n"
    else:
        text = "# Benchmarks\n\n`make bench` writes the results below.\n\n## Results\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


SECTIONS = ("micro", "concurrency", "bridged", "ivr-rate", "call-rate", "live", "overload", "soak", "cases")
RESULTS = os.path.join(ROOT, "target", "bench-results.json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small loads and short steps (a smoke run)")
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--merge", action="store_true",
                    help=f"keep the sections not run now from the last {os.path.relpath(RESULTS, ROOT)}")
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--hotlined", default=os.environ.get("HOTLINED", os.path.join(ROOT, "target", "release", "hotlined")))
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, SIPp traces)")
    ap.add_argument("--from-json", metavar="FILE",
                    help="only re-render the doc from a saved target/bench-results.json")
    a = ap.parse_args()
    if a.from_json:
        saved = json.load(open(a.from_json))
        write_doc(a.doc, render(saved["meta"], saved["results"]))
        return 0
    sections = set(a.only.split(","))
    if sections - set(SECTIONS):
        raise SystemExit(f"unknown section(s) {sorted(sections - set(SECTIONS))}; known: {', '.join(SECTIONS)}")
    for tool in ("sipp", "timeout"):
        if not shutil.which(tool):
            raise SystemExit(f"missing tool: {tool}")
    if (sections - {"micro", "cases"}) and not os.access(a.hotlined, os.X_OK):
        raise SystemExit(f"no daemon binary at {a.hotlined}: build it first (make bench does)")
    if not shutil.which("tcpdump"):
        log("tcpdump missing: no on-the-wire INVITE->200 times, no RTP jitter")
    results: dict = {}
    runs: dict = {}
    if a.merge and os.path.exists(RESULTS):
        saved = json.load(open(RESULTS))
        results = saved.get("results", {})
        runs = saved.get("meta", {}).get("runs", {})
    work = tempfile.mkdtemp(prefix="hotline-bench-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    t0 = time.monotonic()
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "command": "make bench" + (" (--quick)" if a.quick else "")}
    try:
        config = bench_config(work)
        for name in SECTIONS:
            if name not in sections:
                continue
            s0 = time.monotonic()
            if name == "micro":
                results[name] = section_micro(a.quick)
            elif name == "concurrency":
                results[name] = section_concurrency(a.hotlined, config, work, a.quick)
            elif name == "bridged":
                results[name] = section_bridged(a.hotlined, config, work, a.quick)
            elif name == "ivr-rate":
                results[name] = section_call_rate(a.hotlined, config, work, a.quick, ivr=True)
            elif name == "call-rate":
                results[name] = section_call_rate(a.hotlined, config, work, a.quick)
            elif name == "live":
                results[name] = section_live(a.hotlined, config, work, a.quick)
            elif name == "overload":
                clean = None
                if results.get("call-rate") and not a.quick:
                    clean = held_rates(results["call-rate"]["steps"]).get("hotlined")
                results[name] = section_overload(a.hotlined, config, work, a.quick, clean)
            elif name == "soak":
                results[name] = section_soak(a.hotlined, config, work, a.quick)
            elif name == "cases":
                results[name] = section_cases(work, a.quick)
            runs[name] = {"date": meta["date"], "wall": time.monotonic() - s0,
                          "load": open("/proc/loadavg").read().split()[:3]}
    finally:
        stop_all()
        if a.keep:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["wall"] = time.monotonic() - t0
    meta["runs"] = runs
    write_doc(a.doc, render(meta, results))
    with open(RESULTS, "w") as fh:
        json.dump({"meta": meta, "results": results}, fh, indent=1, default=str)
    log(f"results written to {a.doc} ({meta['wall']:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
