"""A scenario as a LAVA job definition, and the qemu device dictionary that runs it.

The job boots exactly what a local run boots: our bzImage, our initramfs (whose /init runs the
scenario's job and prints the console records the verdict reads), the scenario's swap disks as
virtio drives and, for a scenario with a file-system job (fs_mib), its ext4 disk as the virtio
drive after them, with the same kernel command line and the same -drive options. It ends when the
console shows ``ZCF-DONE status=N``, the last line /init prints; LAVA then powers the guest off.

The job is ours, not tuxlava's: tuxlava's qemu job boots a root file system on a disk and logs in
to run test definitions, and our guest has neither a login nor a LAVA test shell. The device
dictionary is the lab's side: a lab renders its qemu device type with the job's `context`
(arch, machine, cpu, memory, no_kvm, extra_options; not no_network, which lava-server 2023.01's job
schema refuses: the guest gets the device type's user-mode NIC and has no driver for it). For
lava-run here we render the same device type from tuxlava, a maintained copy of LAVA's qemu
template, with the same context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zcache_forge.errors import ForgeError
from zcache_forge.guest import qemu
from zcache_forge.guest.scenarios import Scenario

# /init's last line (qemu/init, finish()), with its line end: LAVA logs a console line only once its
# newline has come, and powers the guest off as soon as the prompt matches, so a prompt without the
# newline can end the job before the line reaches the log (seen on a loaded host). And /init lingers
# LINGER_S after it (zcf.linger) instead of exiting at once: a QEMU that exits with the line end
# still unread closes LAVA's connection before the prompt matches (seen on a lava-server worker).
# The line ends in "\r\r\n" as LAVA reads it (the guest's tty and then the host's pty each add a \r).
DONE_PROMPT = "ZCF-DONE status=[0-9]+\r*\n"
LINGER_S = 5
DEPLOY_MINUTES = 5
DEVICE_TEMPLATE = "qemu.yaml.jinja2"


def disk_label(index: int) -> str:
    """The deploy label of the guest's index-th virtio disk: its name in the guest (vda, vdb, ...).
    QEMU gets the -drive options in the order of the labels, and that order is not always the
    job's: lava-run keeps the job's order, but lava-server hands the worker the definition with its
    keys sorted (seen: fs0, initrd, kernel, swap0, which made the ext4 image /dev/vda and mkswap'd
    it). The guest's names sort in the guest's order, so either way the disks come in it."""
    if not 0 <= index < 26:
        raise ForgeError(f"virtio disk {index}: the guest names only 26 (vda to vdz)")
    return "vd" + chr(ord("a") + index)


@dataclass(frozen=True)
class Artifacts:
    """Where the job downloads its images from: file:// paths for lava-run here, http(s) URLs for
    a lab. swap_disks: one per swap device of the scenario, in /dev/vda, /dev/vdb order; fs_disk:
    the ext4 image of a scenario with a file-system job (qemu.make_fs_image), the disk after them."""

    kernel: str
    initrd: str
    swap_disks: tuple[str, ...]
    fs_disk: str | None = None

    @classmethod
    def files(cls, kernel: Path, initrd: Path, swap_disks: list[Path] | tuple[Path, ...],
              fs_disk: Path | None = None) -> Artifacts:
        return cls(kernel.resolve().as_uri(), initrd.resolve().as_uri(),
                   tuple(p.resolve().as_uri() for p in swap_disks),
                   fs_disk.resolve().as_uri() if fs_disk is not None else None)


def append_line(scenario: Scenario) -> str:
    args = [*qemu.BASE_APPEND, *scenario.kernel_args(), f"zcf.linger={LINGER_S}"]
    quoted = [a for a in args if '"' in a or "'" in a]
    if quoted:
        raise ForgeError(f"scenario {scenario.name}: kernel argument {quoted[0]!r} has a quote, which "
                         "a LAVA image_arg cannot carry")
    return " ".join(args)


def context(scenario: Scenario, accel: str) -> dict[str, Any]:
    """The job's context: what the lab's qemu device type is rendered with."""
    return {
        "arch": "x86_64",
        "machine": "q35",
        "cpu": "qemu64",
        "memory": scenario.guest_ram_mib,
        "no_kvm": accel != "kvm",
        "extra_options": [f"-smp {scenario.cpus}", "-no-reboot", f"-device {qemu.DEBUG_EXIT}"],
    }


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def definition(scenario: Scenario, art: Artifacts, accel: str = "tcg",
               disk: qemu.DiskModel = qemu.DISK_MODELS[0], name: str | None = None) -> dict[str, Any]:
    """The LAVA job definition (a mapping; yaml.safe_dump it) for one run of `scenario`."""
    if len(art.swap_disks) != scenario.swap_devices:
        raise ForgeError(f"scenario {scenario.name}: {scenario.swap_devices} swap disks wanted, "
                         f"{len(art.swap_disks)} given")
    if bool(scenario.fs_mib) != (art.fs_disk is not None):
        raise ForgeError(f"scenario {scenario.name}: " + (
            f"its file-system job needs an fs disk (/dev/{scenario.fs_disk}), none given" if scenario.fs_mib
            else "has no file-system job, but an fs disk was given"))
    images: dict[str, Any] = {
        "kernel": {"image_arg": f'-kernel {{kernel}} -append "{append_line(scenario)}"', "url": art.kernel},
        "initrd": {"image_arg": "-initrd {initrd}", "url": art.initrd},
    }
    # the swap disks, throttled to the disk model, then the fs disk, never throttled: qemu.qemu_argv's
    # swap_imgs and data_imgs
    drives = [(url, disk.drive_options()) for url in art.swap_disks]
    drives += [(art.fs_disk, "")] if art.fs_disk is not None else []
    for i, (url, options) in enumerate(drives):
        label = disk_label(i)
        images[label] = {"image_arg": f"-drive file={{{label}}},if=virtio,format=raw,cache=unsafe{options}",
                         "url": url}
    boot_minutes = _minutes(scenario.wall_limit_s)
    return {
        "device_type": "qemu",
        "job_name": name or f"zcache-forge {scenario.name}",
        "priority": "medium",
        "visibility": "public",
        "timeouts": {
            "job": {"minutes": DEPLOY_MINUTES + boot_minutes + 1},
            "action": {"minutes": DEPLOY_MINUTES},
            "connection": {"minutes": 2},
        },
        "context": context(scenario, accel),
        "actions": [
            {"deploy": {"to": "tmpfs", "timeout": {"minutes": DEPLOY_MINUTES}, "images": images}},
            {"boot": {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": boot_minutes},
                      "prompts": [DONE_PROMPT]}},
        ],
    }


def device_dictionary(ctx: dict[str, Any]) -> str:
    """The qemu device configuration lava-run needs, rendered from tuxlava's copy of LAVA's qemu
    device-type template with the job's context, as a lab's server renders its own."""
    try:
        from tuxlava import templates
    except ImportError as exc:
        raise ForgeError("the lava-run runner needs tuxlava (pip install tuxlava; setup.sh installs it)") \
            from exc
    return templates.devices().get_template(DEVICE_TEMPLATE).render(**ctx)


def dump(job: dict[str, Any]) -> str:
    return yaml.safe_dump(job, sort_keys=False, width=1000)
