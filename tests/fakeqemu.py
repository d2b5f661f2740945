#!/usr/bin/env python3
"""A stand-in for qemu-system-x86_64 in the two-guest tests (tests/test_ramster_pair.py): no guest,
only what the host sees of one. It reads the QEMU options the harness passes (-serial file:PATH,
-append, -netdev socket,listen=|connect=), plays the peer B (listen=) or the guest A (connect=) on
that console, and exits as isa-debug-exit makes QEMU exit ((status << 1) | 1).

B listens on the port as QEMU does, prints its boot and peer-ready records, then prints a counters
record for each phase A sends over the socket, and exits on "done". A connects (no listener: QEMU's
"Connection refused", exit 1), prints a passing two-guest console and sends B its phases.
FAKE_B (ready, silent, dies, stays) and FAKE_A (normal, slow) pick other behaviours: a slow A is under load
for 3 s (long enough for the host to kill or stop B) and reports its connection to B lost once."""

from __future__ import annotations

import json
import os
import socket
import sys
import time


def opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def rec(out, obj) -> None:
    out.write("ZCF-RESULT " + json.dumps(obj, separators=(",", ":")) + "\n")  # as /init prints them
    out.flush()


def counters(out, phase: str, **values: float) -> None:
    rec(out, {"kind": "counters", "phase": phase, "uptime_s": 1.0, "values": values})


def peer(out, port: int) -> int:
    mode = os.environ.get("FAKE_B", "ready")
    if mode == "dies":
        sys.stderr.write("qemu-system-x86_64: the fake peer dies at once\n")
        return 1
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    out.write("[    0.100000] Linux version 6.1.0 (fake)\n")
    rec(out, {"kind": "boot", "name": "t-peer", "kernel": "6.1.0", "nproc": 1})
    if mode == "silent":
        time.sleep(60)
        return 1
    rec(out, {"kind": "step", "step": "peer-ready", "addr": "169.254.0.2/16", "ctl_port": 7101})
    conn, _ = srv.accept()
    puts = 0
    for line in conn.makefile():
        phase = line.strip()
        if phase == "done":
            if mode == "stays":
                time.sleep(60)
            rec(out, {"kind": "step", "step": "peer-done"})
            out.write("ZCF-DONE status=0\n")
            out.flush()
            return 1  # (0 << 1) | 1
        puts += 1000 if phase == "pressure" else 0
        counters(out, phase, **{"zcache.peer_puts": puts, "zcache.peer_pages_max": puts,
                                "zcache.peer_pages": 0 if "after" in phase else puts,
                                "zcache.peer_gets": puts // 2})
    time.sleep(60)  # A went away without "done": wait to be killed
    return 1


def guest(out, port: int) -> int:
    try:
        conn = socket.create_connection(("127.0.0.1", port))
    except OSError as exc:
        sys.stderr.write(f"qemu-system-x86_64: -netdev socket,connect=127.0.0.1:{port}: {exc}\n")
        return 1
    tell = conn.makefile("w")

    def say(msg: str) -> None:
        try:
            tell.write(msg + "\n")
            tell.flush()
        except OSError:
            pass

    swap = {"meminfo.SwapTotal_kib": 524284, "meminfo.SwapFree_kib": 524284, "frontswap.succ_stores": 0,
            "zcache.pers_puts": 0, "zcache.failed_pers_puts": 0, "pswpout": 0}
    rec(out, {"kind": "boot", "name": "t", "kernel": "6.1.0", "nproc": 1})
    counters(out, "before", **swap)
    say("before")
    slow = os.environ.get("FAKE_A") == "slow"
    if slow:  # under load for a while: long enough for B to be killed or stopped
        for i in range(30):
            out.write(f"memhog: w0: pass 1 {i}%\n")
            out.flush()
            time.sleep(0.1)
    page = {"id": "w0", "pattern": "text", "bytes": 1 << 20, "pages": 256, "pages_corrupted": 0,
            "pages_sigbus": 0, "elapsed_s": 1.0}
    rec(out, {"kind": "workload", "phase": "run", "passes": 1, "pages_checked": 256, "pages_verified": 256,
              **page})
    loaded = {**swap, "meminfo.SwapFree_kib": 200000, "frontswap.succ_stores": 5000, "zcache.pers_puts": 5000,
              "zcache.remote_puts": 1000, "zcache.remote_pages": 1000, "zcache.remote_pages_max": 1000,
              "zcache.remote_gets": 500, "zcache.remote_get_us": 400000, "zcache.failed_remote_gets": 0,
              "zcache.remote_conn_lost": 1 if slow else 0}
    counters(out, "pressure", **loaded)
    say("pressure")
    rec(out, {"kind": "step", "step": "swapoff", "status": 0, "start_s": 3.0, "end_s": 4.0})
    rec(out, {"kind": "workload", "phase": "recheck", "passes": 1, "pages_checked": 256,
              "pages_verified": 256, **page})
    rec(out, {"kind": "exit", "id": "w0", "status": 0})
    time.sleep(0.3)  # B prints the pressure record before the next phase arrives
    counters(out, "after-swapoff", **{**loaded, "meminfo.SwapFree_kib": 524284, "zcache.remote_pages": 0})
    say("after-swapoff")
    time.sleep(0.3)
    say("done")
    out.write("ZCF-DONE status=0\n")
    out.flush()
    return 1


def main(argv: list[str]) -> int:
    console = opt(argv, "-serial").removeprefix("file:")
    netdev = opt(argv, "-netdev")
    where = netdev.split("listen=")[-1] if "listen=" in netdev else netdev.split("connect=")[-1]
    port = int(where.rsplit(":", 1)[1])
    with open(console, "a") as out:
        return peer(out, port) if "listen=" in netdev else guest(out, port)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
