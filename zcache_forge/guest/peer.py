"""RAMster's two guests as data: the peer (B) a scenario may have, and what each guest is told.

A two-guest scenario boots the peer B first and then the guest under test A; the two QEMU
processes are joined by a socket netdev on 127.0.0.1 (B listens, A connects), the only host
traffic of the run. In the guests the link is link-local: A is 169.254.0.1, B 169.254.0.2.

A (node 1) swaps; its zcache remotifies zpages to B once its pool needs room. A's /init sets
``ramster_peer`` at run time, once eth0 is up (the kernel connects lazily). B (node 2) serves
A's pages on RAMSTER_PORT (``zcache.ramster_listen``, boot only) and takes at most
``pool_percent`` of its RAM for them.

Besides the kernel's own connection, the two /inits talk over CONTROL_PORT: at every counters
record A sends B the record's phase and B prints its own counters record of that phase, so the
host reads both sides' counters per phase with the same code; ``done`` ends B's run.

This module is pure data (no QEMU): guest/pair.py runs the two guests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

A_NODE, B_NODE = 1, 2
A_ADDR, B_ADDR = "169.254.0.1", "169.254.0.2"
PREFIX_LEN = 16  # 169.254.0.0/16, link-local
A_MAC, B_MAC = "52:54:00:12:34:01", "52:54:00:12:34:02"
RAMSTER_PORT = 7100   # B's zcache serves A's pages here
CONTROL_PORT = 7101   # B's /init listens here for A's phases and "done"
HOST = "127.0.0.1"    # the socket netdev: B's QEMU listens, A's connects
MIN_MEMORY_MIB = 128  # B's kernel, /init and a pool worth the name
# B's counters are printed under this prefix in the verdict: peer.zcache.peer_puts
COUNTER_PREFIX = "peer."
# B's console record that it serves pages (the host starts A only after it)
READY_STEP = "peer-ready"
READY_RE = re.compile(r'"step"\s*:\s*"' + READY_STEP + '"')
# A's console record after which it is under load: the workloads start right after it
LOADED_RE = re.compile(r'"kind"\s*:\s*"counters"\s*,\s*"phase"\s*:\s*"before"')


@dataclass(frozen=True)
class PeerSpec:
    """The peer B of a two-guest scenario (scenarios.yaml ``peer:``)."""

    memory_mib: int = 512
    pool_percent: int = 50           # zcache.ramster_peer_pool_percent: B's RAM A's pages may take
    kill_after_s: int | None = None  # the host SIGKILLs B's QEMU this long after A is loaded
    cpus: int = 1
    hang_after_s: int | None = None  # the host SIGSTOPs B's QEMU this long after A is loaded,
    hang_for_s: int | None = None    # and SIGCONTs it this long after that

    @property
    def killed(self) -> bool:
        """The scenario kills B mid-run (lost pages are then allowed, wrong pages never)."""
        return self.kill_after_s is not None

    @property
    def hung(self) -> bool:
        """The scenario stops B mid-run and lets it go on: A's remote requests time out meanwhile
        (zcache.ramster_timeout_ms), so lost pages are allowed, wrong pages never; B lives on."""
        return self.hang_after_s is not None

    @property
    def disrupted(self) -> bool:
        """The host kills or stops B on purpose: a page A had on B may be lost (SIGBUS)."""
        return self.killed or self.hung


def sender_args(spec: PeerSpec) -> list[str]:
    """A's kernel parameters: its node id, and the zcf.* words its /init sets the peer up with
    (the ramster_peer parameter is written at run time, after eth0 is up)."""
    return [
        f"zcache.ramster_node={A_NODE}",
        f"zcf.net={A_ADDR}/{PREFIX_LEN}",
        f"zcf.peer={B_NODE}@{B_ADDR}:{RAMSTER_PORT}",
        f"zcf.peerctl={B_ADDR}:{CONTROL_PORT}",
        *(["zcf.lost_ok=1"] if spec.disrupted else []),
    ]


def peer_args(spec: PeerSpec, name: str, heartbeat_s: int) -> list[str]:
    """B's kernel parameters: zcache serves peers on RAMSTER_PORT from boot, and /init runs as the peer."""
    return [
        f"zcache.ramster_node={B_NODE}",
        f"zcache.ramster_listen={RAMSTER_PORT}",
        f"zcache.ramster_peer_pool_percent={spec.pool_percent}",
        f"zcf.name={name}-peer",
        "zcf.role=peer",
        f"zcf.net={B_ADDR}/{PREFIX_LEN}",
        f"zcf.peerctl={CONTROL_PORT}",
        f"zcf.heartbeat={heartbeat_s}",
    ]


def netdev_args(side: str, port: int) -> list[str]:
    """QEMU's network for one side ("peer": B listens, "sender": A connects) on 127.0.0.1:port.
    romfile= (none): no iPXE option ROM, the guest boots with -kernel and never from the network."""
    if side not in ("peer", "sender"):
        raise ValueError(f"side {side!r}: expected peer or sender")
    mode, mac = ("listen", B_MAC) if side == "peer" else ("connect", A_MAC)
    return ["-netdev", f"socket,id=net0,{mode}={HOST}:{port}",
            "-device", f"virtio-net-pci,netdev=net0,mac={mac},romfile="]
