#!/usr/bin/env python3
"""Throw every RFC 4475 torture message at a running SIP daemon.

Each `*.dat` file is sent once over UDP (a fresh socket per message, so any
reply is attributable) and once over TCP (one connection per message, closed
after a reply or after --tcp-wait seconds). Replies are counted and their
status lines written to --results. Afterwards the daemon must still be
running (--pid) and must still answer OPTIONS with 200 over UDP and TCP.

Replies over UDP are rare by design: most torture messages carry a Via that
points elsewhere (RFC 3261 18.2.2 sends the response there), so only the
survival checks decide the exit status. Exit 0 when the daemon survived and
answers OPTIONS, 1 otherwise, 2 on a usage problem (no corpus found).

Only the Python standard library is used.
"""
import argparse
import concurrent.futures
import csv
import os
import socket
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS_DIRS = [
    os.path.join(ROOT, "crates", "sip", "tests", "data", "rfc4475"),
    os.path.join(ROOT, "..", "shared", "corpora", "rfc4475"),
    # a helper's worktree sits one level deeper (/work/wt/NAME)
    os.path.join(ROOT, "..", "..", "shared", "corpora", "rfc4475"),
]


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_host(host: str) -> str:
    """Loopback of the same family as the target: we bind nothing else."""
    return "::1" if ":" in host else "127.0.0.1"


def uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def status_line(data: bytes) -> str:
    first = data.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    return first.decode("latin-1", "replace")[:80]


def send_udp(host: str, port: int, payload: bytes, wait: float) -> str:
    """Send one datagram; return the first reply's first line or ''."""
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    try:
        sock.bind((bind_host(host), 0))
        sock.settimeout(wait)
        sock.sendto(payload, (host, port))
        data, _ = sock.recvfrom(65535)
        return status_line(data)
    except (socket.timeout, ConnectionRefusedError):
        return ""
    finally:
        sock.close()


def send_tcp(host: str, port: int, payload: bytes, wait: float) -> str:
    """Connect, send one message, read until a full header block or `wait`.

    Returns the reply's first line, '' for no reply, or 'closed' when the
    daemon closed the connection without replying (allowed for garbage).
    """
    deadline = time.monotonic() + wait
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    try:
        sock.bind((bind_host(host), 0))
        sock.settimeout(wait)
        sock.connect((host, port))
        sock.sendall(payload)
        got = b""
        while b"\r\n\r\n" not in got:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            chunk = sock.recv(65535)
            if not chunk:
                return status_line(got) if got else "closed"
            got += chunk
        return status_line(got) if got else ""
    except socket.timeout:
        return ""
    except ConnectionResetError:
        return "reset"
    finally:
        sock.close()


def options(host: str, port: int, transport: str) -> bytes:
    """A minimal valid OPTIONS from our own bound address (filled later)."""
    branch = "z9hG4bK-torture-" + uuid.uuid4().hex[:16]
    call_id = uuid.uuid4().hex + "@torture"
    target = f"{uri_host(host)}:{port}"
    lines = [
        f"OPTIONS sip:{target} SIP/2.0",
        f"Via: SIP/2.0/{transport} {uri_host(bind_host(host))}:LPORT;branch={branch};rport",
        "Max-Forwards: 70",
        "From: <sip:torture@127.0.0.1>;tag=" + uuid.uuid4().hex[:8],
        f"To: <sip:{target}>",
        "Call-ID: " + call_id,
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def options_check(host: str, port: int, transport: str, tries: int = 3) -> str:
    """Return the OPTIONS reply's first line ('' when none came)."""
    for _ in range(tries):
        kind = socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM
        sock = socket.socket(family_of(host), kind)
        try:
            sock.bind((bind_host(host), 0))
            lport = sock.getsockname()[1]
            msg = options(host, port, transport).replace(b"LPORT", str(lport).encode())
            sock.settimeout(2.0)
            if transport == "UDP":
                sock.sendto(msg, (host, port))
                data, _ = sock.recvfrom(65535)
            else:
                sock.connect((host, port))
                sock.sendall(msg)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(65535)
                    if not chunk:
                        break
                    data += chunk
            line = status_line(data)
            if line:
                return line
        except OSError:
            pass
        finally:
            sock.close()
    return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tcp-port", type=int, help="TCP port when not --port")
    ap.add_argument("--pid", type=int, help="daemon pid that must survive")
    ap.add_argument("--corpus", help="folder of *.dat files (default: the repo's copy)")
    ap.add_argument("--udp-wait", type=float, default=0.5)
    ap.add_argument("--tcp-wait", type=float, default=2.0)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--results", help="CSV file: file;transport;reply")
    args = ap.parse_args()
    tcp_port = args.tcp_port or args.port

    dirs = [args.corpus] if args.corpus else CORPUS_DIRS
    corpus = next((d for d in dirs if d and os.path.isdir(d)), None)
    if corpus is None:
        print("no RFC 4475 corpus in " + ", ".join(dirs), file=sys.stderr)
        print("no corpus")
        return 2
    files = sorted(f for f in os.listdir(corpus) if f.endswith(".dat"))
    if not files:
        print(f"no *.dat files in {corpus}")
        return 2
    payloads = {}
    for name in files:
        with open(os.path.join(corpus, name), "rb") as fh:
            payloads[name] = fh.read()
    print(f"corpus {os.path.abspath(corpus)}: {len(files)} messages", file=sys.stderr)

    rows = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for transport, fn, port, wait in (
            ("UDP", send_udp, args.port, args.udp_wait),
            ("TCP", send_tcp, tcp_port, args.tcp_wait),
        ):
            futures = {
                name: pool.submit(fn, args.host, port, payloads[name], wait)
                for name in files
            }
            for name in files:
                try:
                    reply = futures[name].result()
                except OSError as err:
                    reply = f"error: {err}"
                rows.append((name, transport, reply))
                print(f"{transport} {name}: {reply or '-'}", file=sys.stderr)

    if args.results:
        with open(args.results, "w", newline="") as fh:
            writer = csv.writer(fh, delimiter=";")
            writer.writerow(["file", "transport", "reply"])
            writer.writerows(rows)

    def replied(transport: str) -> int:
        return sum(
            1
            for _, t, r in rows
            if t == transport and r.startswith("SIP/2.0 ")
        )

    problems = []
    if args.pid is not None and not alive(args.pid):
        problems.append(f"daemon pid {args.pid} is gone")
    opt_udp = options_check(args.host, args.port, "UDP")
    opt_tcp = options_check(args.host, tcp_port, "TCP")
    for transport, line in (("UDP", opt_udp), ("TCP", opt_tcp)):
        if not line.startswith("SIP/2.0 200"):
            problems.append(f"OPTIONS over {transport} got {line or 'no reply'!r}")
    if args.pid is not None and not alive(args.pid):
        problems.append(f"daemon pid {args.pid} is gone after OPTIONS")

    summary = (
        f"{len(files)} messages; replies udp {replied('UDP')}/{len(files)}, "
        f"tcp {replied('TCP')}/{len(files)}; "
    )
    if problems:
        print(summary + "; ".join(problems))
        return 1
    print(summary + ("daemon alive, " if args.pid is not None else "")
          + "OPTIONS 200 over UDP and TCP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
