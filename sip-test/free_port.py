#!/usr/bin/env python3
"""Print one free port number for the SIP test harness.

Usage: free_port.py SPAN [USED...]

The port P printed has P..P+SPAN-1 free for both TCP and UDP on 127.0.0.1 and
[::1], and none of them is among USED (ports this run already handed out, so
two peers of one run never share a port). Ports come from 20000-32000: below
the kernel's ephemeral range (outgoing connections) and above the daemon's
default RTP range (10000-20000).
"""
import random
import socket
import sys


def bindable(port: int) -> bool:
    """True when every family/type combination can bind `port` right now."""
    targets = [(socket.AF_INET, "127.0.0.1")]
    if socket.has_ipv6:
        targets.append((socket.AF_INET6, "::1"))
    for family, host in targets:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            sock = socket.socket(family, kind)
            try:
                sock.bind((host, port))
            except OSError:
                return False
            finally:
                sock.close()
    return True


def main() -> int:
    span = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    used = {int(p) for p in sys.argv[2:]}
    rng = random.SystemRandom()
    for _ in range(2000):
        base = rng.randrange(20000, 32000 - span)
        ports = range(base, base + span)
        if any(p in used for p in ports):
            continue
        if all(bindable(p) for p in ports):
            print(base)
            return 0
    print("no free port found", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
