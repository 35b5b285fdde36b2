#!/usr/bin/env python3
"""Hotline load benchmarks: the real `hotlined` (release build) driven by SIPp on 127.0.0.1.

Usage (from the repo root; `make bench` builds first and calls this):
    python3 bench/run.py [--quick] [--only SECTION,...] [--doc docs/BENCHMARKS.md]

SECTIONS
  micro        criterion micro-benchmarks of crates/sip and crates/media (built already)
  concurrency  N simultaneous calls held (500, 1000, 2000), a fresh daemon per N: CPU share of
               one core and RSS per call (SIP only until the daemon plays RTP)
  call-rate    calls answered and hung up at once, at rising rates, against hotlined and against
               SIPp's own `-sn uas` at the same rate (the baseline), until > 0.1 % fail

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


def proc_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
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
    """A copy of config/ whose lines.toml also has a bench line that answers at once."""
    cfg = os.path.join(tmp, "config")
    shutil.copytree(os.path.join(ROOT, "config"), cfg)
    lines = os.path.join(cfg, "lines.toml")
    with open(lines, encoding="utf-8") as fh:
        text = fh.read()
    if not re.search(r"(?m)^ring_seconds\s*=\s*0(\.0*)?\s*$", text):
        text += (
            "\n# added by bench/run.py: a line that answers without ringing\n"
            "[[line]]\n"
            'id = "bench"\n'
            f'number = "{BENCH_NUMBER}"\n'
            'name = "Bench line"\n'
            "ring_seconds = 0\n"
        )
        with open(lines, "w", encoding="utf-8") as fh:
            fh.write(text)
    return os.path.join(cfg, "hotline.toml")


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
    data = os.path.join(workdir, f"data-{tag}")
    os.makedirs(data, exist_ok=True)
    env = {
        "HOTLINE__SIP__LISTEN": f"127.0.0.1:{sip_port}",
        "HOTLINE__ADMIN__LISTEN": f"127.0.0.1:{admin_port}",
        "HOTLINE__DATABASE__URL": f"sqlite://{data}/hotline.db",
        "HOTLINE__DATABASE__SPOOL_DIR": f"{data}/spool",
        "HOTLINE__LOG__LEVEL": "warn",
        "HOTLINE__CALLS__SHUTDOWN_GRACE": "2",
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
                    return d
        except OSError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise SystemExit("hotlined not ready within 30 s")


def calls_active(d: Daemon) -> int | None:
    try:
        with urllib.request.urlopen(f"http://{d.admin}/metrics", timeout=1) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("hotline_calls_active "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


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
    procs = []
    calls_each = [load.calls // load.procs + (1 if i < load.calls % load.procs else 0)
                  for i in range(load.procs)]
    started = time.monotonic()
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
    for p, _ in procs:
        p.wait()
        res.exit_codes.append(p.returncode)
        STARTED.remove(p)
    res.elapsed = time.monotonic() - started
    sampler.finish()
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
    for _, pd in procs:
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
                        except ValueError:
                            pass
    return res, sampler


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
    for crate, bench in (("sip", "parse"), ("media", "media")):
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


def section_concurrency(binary: str, config: str, work: str, quick: bool) -> list[dict]:
    number = bench_number(config)
    rows = []
    levels = [200, 500] if quick else [500, 1000, 2000]
    ramp_rate = 250
    for n in levels:
        d = start_daemon(binary, config, work, f"conc{n}")
        time.sleep(1.0)
        idle = proc_rss_kib(d.pid)
        ramp = n / ramp_rate
        hold_s = ramp + 8
        load = Load(f"concurrency-{n}", d.sip, number, ramp_rate, n, hold_ms=int(hold_s * 1000),
                    limit=int(hold_s + 25), procs=max(1, math.ceil(n / 1000)))
        log(f"concurrency {n}: {n} calls at {ramp_rate}/s, each held {hold_s:.0f} s")
        # the plateau: every call up, none hung up yet
        peak = {"active": 0}
        stop_poll = threading.Event()

        def poll(d=d, peak=peak):
            while not stop_poll.is_set():
                a = calls_active(d)
                if a is not None and a > peak["active"]:
                    peak["active"] = a
                stop_poll.wait(0.5)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t0 = time.monotonic()
        res, sampler = run_load(load, work, {"hotlined": d.pid})
        stop_poll.set()
        poller.join()
        p0, p1 = t0 + ramp + 1.5, t0 + hold_s - 0.5
        rss = sampler.rss_max("hotlined", p0, p1)
        cpu = sampler.cpu_share("hotlined", p0, p1)
        cpu_ramp = sampler.cpu_share("hotlined", t0, t0 + ramp)
        rows.append({
            "n": n, "ok": res.ok, "failed": res.failed,
            "unfinished": res.unfinished, "peak_active": peak["active"], "idle_kib": idle,
            "rss_kib": rss, "per_call_kib": (rss - idle) / n if rss and idle else None,
            "cpu_hold": cpu, "cpu_ramp": cpu_ramp, "cmds": res.commands,
            "retrans": res.retrans, "daemon_env": d.env, "daemon_cmd": d.cmd,
        })
        stop(d.proc)
    return rows


def section_call_rate(binary: str, config: str, work: str, quick: bool) -> dict:
    number = bench_number(config)
    rates = [50, 100, 200] if quick else [50, 100, 200, 400, 600, 800, 1000]
    duration = 8 if quick else 20
    d = start_daemon(binary, config, work, "rate")
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
                uas_dir = os.path.join(work, f"uas-{rate}")
                os.makedirs(uas_dir, exist_ok=True)
                uas_cmd = ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-mp", str(ump),
                           "-cp", str(ucp), "-nostdin", "-timeout", f"{duration + 40}s"]
                uas = start(["timeout", "-k", "5", str(duration + 55), *uas_cmd], cwd=uas_dir,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(uas_dir, "stderr"), "wb"))
                time.sleep(0.5)
                uas_pid = sipp_child(uas.pid)
                addr, pids = f"127.0.0.1:{port}", {"server": uas_pid}
            load = Load(f"rate-{target}-{rate}", addr, number, rate, calls, hold_ms=0,
                        limit=duration + 10, procs=procs, capture_port=port)
            log(f"call rate {rate}/s against {target}: {calls} calls over {procs} SIPp")
            res, sampler = run_load(load, work, pids)
            if uas is not None:
                stop(uas)
                res.commands.insert(0, "(baseline server) " + " ".join(uas_cmd))
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


def render(meta: dict, micro, conc, rate) -> str:
    out = []
    w = out.append
    w(f"Run: `{meta['command']}` on {meta['date']}, {meta['wall']:.0f} s wall time.")
    mc = meta["machine"]
    w(f"Machine: {mc['nproc']} cores ({mc['model']}), {mc['mem']} RAM, Linux {mc['kernel']}, "
      f"load average before the run {' '.join(mc['load'])}; {mc['rustc']}; SIPp {mc['sipp']}. "
      "The machine is shared with other work: read the ratios to the SIPp baseline rather than "
      "the absolute times.")
    w("")
    if rate:
        steps = rate["steps"]
        held = {}
        for t in ("hotlined", "sipp-uas"):
            ok = [s["rate"] for s in steps if s["target"] == t and s["fail"] <= FAIL_LIMIT
                  and s["placed"] >= s["calls"] * 0.99]
            held[t] = max(ok) if ok else None
        at200 = {s["target"]: s for s in steps if s["rate"] == 200}
        w("### Summary")
        w("")
        w("| measure | hotlined | SIPp uas (baseline) | ratio hotlined/uas | target |")
        w("| --- | --- | --- | --- | --- |")
        tried = max(s["rate"] for s in steps)
        hh, hu = held["hotlined"], held["sipp-uas"]
        ratio = f"{hh / hu:.2f}" if hh and hu and not (hh == hu == tried) else "– (both held every step)"
        cap = lambda v: "–" if v is None else (f"≥ {v}" if v == tried else str(v))  # noqa: E731
        w(f"| highest call rate held {rate['duration']} s with < 0.1 % failed (calls/s) | "
          f"{cap(hh)} | {cap(hu)} | {ratio} | ≥ 500 (IVR calls with a 3 s prompt: not measurable yet) |")
        for key, label in (("wire_p50", "p50"), ("wire_p99", "p99")):
            a = at200.get("hotlined", {}).get(key)
            b = at200.get("sipp-uas", {}).get(key)
            r = f"{a / b:.1f}" if a and b else "–"
            tgt = "≤ 5 ms" if label == "p99" else ""
            w(f"| INVITE→200 {label} at 200 calls/s, on the wire (ms) | {fmt(a, 3)} | {fmt(b, 3)} | {r} | {tgt} |")
        for key, label in (("rtt_p50", "p50"), ("rtt_p99", "p99")):
            a = at200.get("hotlined", {}).get(key)
            b = at200.get("sipp-uas", {}).get(key)
            r = f"{a / b:.1f}" if a and b else "–"
            w(f"| INVITE→200 {label} at 200 calls/s, seen by SIPp (ms, 1 ms steps) | {fmt(a, 0)} | {fmt(b, 0)} | {r} | |")
        both = [r_ for r_ in sorted({s["rate"] for s in steps})
                if all(any(s["target"] == t and s["rate"] == r_ for s in steps) for t in held)
                and all(held[t] is not None and held[t] >= r_ for t in held)]
        if both:
            top = both[-1]
            at_top = {s["target"]: s for s in steps if s["rate"] == top}
            a, b = at_top["hotlined"]["wire_p99"], at_top["sipp-uas"]["wire_p99"]
            r = f"{a / b:.1f}" if a and b else "–"
            w(f"| INVITE→200 p99 at {top} calls/s (highest rate both held), on the wire (ms) | "
              f"{fmt(a, 3)} | {fmt(b, 3)} | {r} | |")
        a = at200.get("hotlined", {}).get("cpu_ms_per_call")
        b = at200.get("sipp-uas", {}).get("cpu_ms_per_call")
        r = f"{a / b:.1f}" if a and b else "–"
        w(f"| server CPU per call at 200 calls/s (ms) | {fmt(a, 3)} | {fmt(b, 3)} | {r} | |")
        w("")
    if conc:
        w("### Concurrency (SIP only: the daemon does not send RTP yet)")
        w("")
        w("N calls set up at 250/s and held together for 8 s; CPU and RSS measured while all N "
          "are up. RSS per call = (RSS with N calls − RSS of the fresh idle daemon) / N.")
        w("")
        w("| N | calls ok | failed / unfinished | peak active (metrics) | idle RSS | RSS at N | RSS per call | CPU while held (share of one core) | CPU while ramping at 250/s |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for c in conc:
            w(f"| {c['n']} | {c['ok']} | {c['failed']} / {c['unfinished']} | {c['peak_active']} | "
              f"{fmt(c['idle_kib'] / 1024 if c['idle_kib'] else None, 1)} MiB | "
              f"{fmt(c['rss_kib'] / 1024 if c['rss_kib'] else None, 1)} MiB | "
              f"{fmt(c['per_call_kib'], 1)} KiB | {fmt(c['cpu_hold'], 3)} | {fmt(c['cpu_ramp'], 3)} |")
        w("")
        w("Targets: 2 000 concurrent IVR calls with RTP using ≤ 1 core and ≤ 50 KiB RSS per call; "
          "RTP send jitter p99 ≤ 1 ms — the RTP part is measured once the daemon plays prompts.")
        w("")
    if rate:
        w(f"### Call rate (each step {rate['duration']} s; answer, ACK, BYE at once)")
        w("")
        w("`fail` counts failed and unfinished calls (those still open when SIPp's time limit hit). "
          "`wire` = INVITE→first 200 per Call-ID from a tcpdump capture on `lo` (µs timestamps); "
          "`sipp` = SIPp's `-trace_rtt` response time (whole ms, includes SIPp's own loop). "
          "`retr` = SIPp's retransmissions; `INV re / 200 re` = retransmitted INVITEs and 200s "
          "seen on the wire. CPU is the server's (hotlined or the SIPp uas) as a share of one core; "
          "`busy` is the whole machine (both cores, all processes).")
        w("")
        w("| target | calls/s | calls | ok | fail | fail % | retr | INV re / 200 re | wire p50 / p99 / max (ms) | sipp p50 / p99 (ms) | CPU (cores) | CPU per call (ms) | RSS max (MiB) | busy |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
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
    w("### Command lines")
    w("")
    w("```sh")
    if micro:
        for c in dict.fromkeys(m["cmd"] for m in micro):
            w(c)
    daemon = (rate or {}).get("daemon_env") or (conc[0]["daemon_env"] if conc else None)
    if daemon:
        w("# the daemon (ports differ per run; a copy of config/ whose lines.toml adds "
          f"line {BENCH_NUMBER} with ring_seconds = 0)")
        line = " ".join(f"{k}={v}" for k, v in daemon.items())
        w(re.sub(r"/tmp/hotline-bench-\w+", "TMP", line) + " target/release/hotlined run --config TMP/config/hotline.toml")
    for c in conc or []:
        w(f"# concurrency {c['n']}")
        for x in c["cmds"]:
            w(x)
    for s in (rate or {}).get("steps", []):
        w(f"# call rate {s['rate']}/s against {s['target']}")
        for x in s["cmds"]:
            w(x)
    w("```")
    return "\n".join(out)


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small loads and short steps (a smoke run)")
    ap.add_argument("--only", default="micro,concurrency,call-rate")
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--hotlined", default=os.environ.get("HOTLINED", os.path.join(ROOT, "target", "release", "hotlined")))
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, SIPp traces)")
    ap.add_argument("--from-json", metavar="FILE",
                    help="only re-render the doc from a saved target/bench-results.json")
    a = ap.parse_args()
    if a.from_json:
        saved = json.load(open(a.from_json))
        write_doc(a.doc, render(saved["meta"], saved["micro"], saved["concurrency"], saved["call_rate"]))
        return 0
    sections = set(a.only.split(","))
    for tool in ("sipp", "timeout"):
        if not shutil.which(tool):
            raise SystemExit(f"missing tool: {tool}")
    if ({"concurrency", "call-rate"} & sections) and not os.access(a.hotlined, os.X_OK):
        raise SystemExit(f"no daemon binary at {a.hotlined}: build it first (make bench does)")
    if not shutil.which("tcpdump"):
        log("tcpdump missing: no on-the-wire INVITE->200 times")
    work = tempfile.mkdtemp(prefix="hotline-bench-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    t0 = time.monotonic()
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "command": "make bench" + (" (--quick)" if a.quick else "")}
    micro = conc = rate = None
    try:
        config = bench_config(work)
        if "micro" in sections:
            micro = section_micro(a.quick)
        if "concurrency" in sections:
            conc = section_concurrency(a.hotlined, config, work, a.quick)
        if "call-rate" in sections:
            rate = section_call_rate(a.hotlined, config, work, a.quick)
    finally:
        stop_all()
        if a.keep:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["wall"] = time.monotonic() - t0
    body = render(meta, micro, conc, rate)
    write_doc(a.doc, body)
    with open(os.path.join(ROOT, "target", "bench-results.json"), "w") as fh:
        json.dump({"meta": meta, "micro": micro, "concurrency": conc, "call_rate": rate}, fh, indent=1, default=str)
    log(f"results written to {a.doc} ({meta['wall']:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
