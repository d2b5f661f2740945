"""The LAVA runner's parts without a kernel: the job and device dictionary made for a scenario,
lava-run's log read back into the console and the outcome, and a recorded lava-run log of a real
smoke boot (tests/data/lava-smoke.lava.log) judged exactly as a local run's console is.

`lava-run --validate` runs for real on the generated job when lava-dispatcher is installed
(setup.sh installs it); it takes a fraction of a second and boots nothing."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from zcache_forge.errors import ForgeError
from zcache_forge.guest import judge, qemu, qemutest
from zcache_forge.lava import job as jobmod
from zcache_forge.lava import logs, run

from .conftest import ROOT

DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def smoke():
    return qemutest.choose(["smoke"])[0]


@pytest.fixture(scope="module")
def recorded_log() -> logs.LavaLog:
    return logs.parse_log((DATA / "lava-smoke.lava.log").read_text())


def artifacts(tmp_path: Path, n: int = 1) -> jobmod.Artifacts:
    files = []
    for name in ("bzImage", "initramfs.cpio.gz", *(f"swap{i}.img" for i in range(n))):
        (tmp_path / name).write_bytes(b"x")
        files.append(tmp_path / name)
    return jobmod.Artifacts.files(files[0], files[1], files[2:])


def test_the_job_boots_what_a_local_run_boots(smoke, tmp_path):
    job = jobmod.definition(smoke, artifacts(tmp_path), "tcg")
    images = job["actions"][0]["deploy"]["images"]
    assert images["kernel"]["url"] == (tmp_path / "bzImage").as_uri()
    append = " ".join([*qemu.BASE_APPEND, *smoke.kernel_args(), f"zcf.linger={jobmod.LINGER_S}"])
    assert images["kernel"]["image_arg"] == f'-kernel {{kernel}} -append "{append}"'
    assert images["initrd"]["image_arg"] == "-initrd {initrd}"
    assert images["vda"]["image_arg"] == "-drive file={vda},if=virtio,format=raw,cache=unsafe"
    ctx = job["context"]
    assert ctx["memory"] == smoke.guest_ram_mib and ctx["no_kvm"] is True and "no_network" not in ctx
    assert f"-smp {smoke.cpus}" in ctx["extra_options"]
    assert f"-device {qemu.DEBUG_EXIT}" in ctx["extra_options"]
    boot = job["actions"][1]["boot"]
    assert boot["prompts"] == [jobmod.DONE_PROMPT] and boot["method"] == "qemu"
    assert boot["timeout"]["minutes"] * 60 >= smoke.wall_limit_s
    assert yaml.safe_load(jobmod.dump(job)) == job


def test_throttled_disks_and_kvm_reach_the_job(tmp_path):
    sc = qemutest.choose(["swap-devices"])[0]
    job = jobmod.definition(sc, artifacts(tmp_path, sc.swap_devices), "kvm", qemu.disk_model("ssd"))
    images = job["actions"][0]["deploy"]["images"]
    assert [k for k in images if k.startswith("vd")] == ["vda", "vdb"]
    assert "throttling.bps-total=" in images["vdb"]["image_arg"]
    assert job["context"]["no_kvm"] is False


@pytest.mark.parametrize("name", ["fs-reread", "mixed-cache"])
def test_the_fs_disk_is_attached_as_a_local_run_attaches_it(name, tmp_path, monkeypatch):
    """A file-system scenario's ext4 image: deployed after the swap disks and given to QEMU with the
    -drive options of the local runner's command line, in the same order (so the guest finds it as
    /dev/vdb); the swap disks' throttling is not put on it."""
    sc = qemutest.choose([name])[0]
    assert sc.fs_mib and sc.fs_disk == "vd" + "abc"[sc.swap_devices]
    art = artifacts(tmp_path, sc.swap_devices)
    (tmp_path / "fs.img").write_bytes(b"x")
    art = dataclasses.replace(art, fs_disk=(tmp_path / "fs.img").as_uri())
    job = jobmod.definition(sc, art, "tcg", qemu.disk_model("ssd"))
    images = job["actions"][0]["deploy"]["images"]
    swap_labels = [jobmod.disk_label(i) for i in range(sc.swap_devices)]
    labels = [*swap_labels, sc.fs_disk]  # the fs disk's label is its name in the guest (zcf.fs=)
    assert list(images) == ["kernel", "initrd", *labels]
    # a lava-server hands the worker the job with its keys sorted: the disks keep their order
    assert [k for k in sorted(images) if k.startswith("vd")] == labels
    assert images[sc.fs_disk]["url"] == (tmp_path / "fs.img").as_uri()
    # the local runner's command line, its files replaced by the deploy labels
    monkeypatch.setattr(qemu, "_qemu_binary", lambda: "qemu-system-x86_64")
    swaps = tuple(Path(f"{{{label}}}") for label in swap_labels)
    b = qemu._Boot(name=sc.name, kernel=Path("k"), initrd=Path("i"), memory_mib=sc.guest_ram_mib,
                   cpus=sc.cpus, append=[], swap_imgs=swaps, workdir=tmp_path, accel="tcg", timeout_s=1,
                   disk=qemu.disk_model("ssd"), data_imgs=(Path(f"{{{sc.fs_disk}}}"),))
    argv = qemu.qemu_argv(b, tmp_path / "console.log")
    local_drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    lava_drives = [images[k]["image_arg"].removeprefix("-drive ") for k in labels]
    assert lava_drives == local_drives
    assert "throttling" not in images[sc.fs_disk]["image_arg"]
    assert f"zcf.fs={sc.fs_disk}:{sc.fs_mib}:" in images["kernel"]["image_arg"]


def test_bad_jobs_are_refused_before_lava_sees_them(smoke, tmp_path):
    with pytest.raises(ForgeError, match="scenario smoke: 1 swap disks wanted, 2 given"):
        jobmod.definition(smoke, artifacts(tmp_path, 2))
    with pytest.raises(ForgeError, match="scenario smoke: has no file-system job, but an fs disk was given"):
        jobmod.definition(smoke, dataclasses.replace(artifacts(tmp_path), fs_disk="file:///fs.img"))
    fs = qemutest.choose(["fs-reread"])[0]
    with pytest.raises(ForgeError, match=r"fs-reread: its file-system job needs an fs disk \(/dev/vdb\)"):
        jobmod.definition(fs, artifacts(tmp_path))
    quoted = dataclasses.replace(smoke, cmdline_extra='foo="a b"')
    with pytest.raises(ForgeError, match="has a quote"):
        jobmod.definition(quoted, artifacts(tmp_path))


def test_the_device_dictionary_is_lavas_qemu_type_rendered_with_the_context(smoke):
    dev = yaml.safe_load(jobmod.device_dictionary(jobmod.context(smoke, "tcg")))
    params = dev["actions"]["boot"]["methods"]["qemu"]["parameters"]
    assert params["command"] == "qemu-system-x86_64"
    assert f"-m {smoke.guest_ram_mib}" in params["options"] and "-machine q35" in params["options"]
    assert "-enable-kvm" not in params["options"]
    assert f"-device {qemu.DEBUG_EXIT}" in params["extra"]
    assert "x86_64" in dev["available_architectures"]


def lava_line(lvl: str, msg: object) -> str:
    """One record as lava-run prints it (lava_common.log.dump: YAML flow style, double-quoted)."""
    return yaml.safe_dump({"dt": "2026-11-30T06:30:00", "lvl": lvl, "msg": msg}, default_flow_style=True,
                          default_style='"', width=10**6)[:-1]


def test_lava_quote_escaping_is_undone_exactly():
    console = ['ZCF-RESULT {"kind":"x","cmdline":"a=\\"b\\""}', 'plain line', 'a \\"quoted\\" word']
    text = "\n".join([
        *(lava_line("target", line.replace('"', '\\"')) for line in console),  # LAVA's shell.py edit
        "not a record",
        lava_line("error", "Connection closed"),
    ])
    parsed = logs.parse_log(text)
    assert parsed.console == console
    assert parsed.errors == ["Connection closed"] and parsed.unreadable == 1
    assert parsed.job_result is None


def test_recorded_lava_run_is_judged_as_a_local_run(smoke, recorded_log, tmp_path):
    """A real lava-run log of the smoke scenario: the rebuilt console gives the verdict a local
    run gives (pass, every page verified, zcache's counters there)."""
    assert recorded_log.job_result == "pass" and recorded_log.errors == []
    assert run.guest_status(recorded_log.console) == 0
    console = tmp_path / "console.log"
    console.write_text(recorded_log.console_text())
    kind, status, ended = run.outcome("zcf-smoke-1", recorded_log, tmp_path / "lava.log", "exit", "exited")
    assert (kind, status, ended) == ("exit", 0, "guest")
    r = judge.judge(smoke, console.read_text(), exit_kind=kind, guest_status=status, console_log=console)
    assert r.passed, r.reasons
    assert r.counters["pressure"]["zcache.pers_puts"] > 0
    assert all(w["pages_corrupted"] == 0 and w["pages_checked"] > 0 for w in r.workloads)


def test_a_job_that_ends_before_the_guest_names_its_id_errors_and_log(smoke, recorded_log, tmp_path):
    cut = dataclasses.replace(recorded_log, console=recorded_log.console[:40],
                              results=[{"definition": "lava", "case": "job", "result": "fail"}],
                              errors=["auto-login-action timed out after 300 seconds"])
    kind, status, ended = run.outcome("zcf-smoke-7", cut, tmp_path / "lava.log", "exit", "exited")
    assert kind == "lava-error" and status is None
    assert ended == (f"LAVA job zcf-smoke-7 failed before the guest finished: auto-login-action timed out "
                     f"after 300 seconds (log: {tmp_path / 'lava.log'})")
    r = judge.judge(smoke, cut.console_text(), exit_kind=kind, guest_status=status, ended_by=ended)
    assert not r.passed and ended in r.reasons


def test_a_silent_lava_job_is_a_hang(recorded_log, tmp_path):
    kind, status, ended = run.outcome("zcf-x-1", recorded_log, tmp_path / "lava.log", "hang",
                                      "hang: console silent for 15 s")
    assert (kind, status, ended) == ("hang", None, "hang: console silent for 15 s")


@pytest.mark.skipif(shutil.which("lava-run") is None,
                    reason="needs lava-run: apt-get install lava-dispatcher")
def test_lava_run_validates_an_fs_job(tmp_path):
    """The fs scenario's job with a real (small) ext4 image from the helper the runners use."""
    sc = dataclasses.replace(qemutest.choose(["fs-reread"])[0], fs_mib=16)
    with qemu.fs_image(sc, tmp_path) as fs:
        assert fs is not None and fs.stat().st_size == sc.fs_disk_mib * qemu.MIB
        art = dataclasses.replace(artifacts(tmp_path, sc.swap_devices), fs_disk=fs.as_uri())
        job = jobmod.definition(sc, art, "tcg")
        (tmp_path / "job.yaml").write_text(jobmod.dump(job))
        (tmp_path / "device.yaml").write_text(jobmod.device_dictionary(job["context"]))
        run.validate(run.new_job_id("fs"), tmp_path, tmp_path / "device.yaml", tmp_path / "job.yaml")
    assert not fs.exists()  # removed with its context, as the swap disks are


@pytest.mark.skipif(shutil.which("lava-run") is None,
                    reason="needs lava-run: apt-get install lava-dispatcher")
def test_lava_run_validates_the_generated_job(smoke, tmp_path):
    job = jobmod.definition(smoke, artifacts(tmp_path), "tcg")
    (tmp_path / "job.yaml").write_text(jobmod.dump(job))
    (tmp_path / "device.yaml").write_text(jobmod.device_dictionary(job["context"]))
    run.validate(run.new_job_id("smoke"), tmp_path, tmp_path / "device.yaml", tmp_path / "job.yaml")
    (tmp_path / "bzImage").unlink()
    with pytest.raises(ForgeError, match=r"job.yaml: LAVA refused the job \(lava-run --validate exit 1\): "
                                         r"Invalid job data: \[\"Image file '.*/bzImage' does not exist"):
        run.validate(run.new_job_id("smoke"), tmp_path, tmp_path / "device.yaml", tmp_path / "job.yaml")


def test_a_servers_log_reads_as_lava_runs(recorded_log):
    """GET /api/v0.2/jobs/ID/logs/ gives the same records as a YAML list ("- " before each)."""
    text = (DATA / "lava-smoke.lava.log").read_text()
    as_server = "".join(f"- {line}\n" for line in text.splitlines() if line.startswith("{"))
    from zcache_forge.lava import server

    again = logs.parse_log("\n".join(server.log_lines(as_server)))
    assert again.console == recorded_log.console and again.job_result == recorded_log.job_result


def test_images_are_published_under_the_served_url(tmp_path):
    from zcache_forge.lava import server

    lab = server.LabConfig("http://127.0.0.1:9/", "t", tmp_path / "srv", "http://127.0.0.1:8000/img/")
    (tmp_path / "bzImage").write_bytes(b"kernel")
    urls = server.publish([tmp_path / "bzImage"], lab, "smoke-1")
    assert urls == ["http://127.0.0.1:8000/img/smoke-1/bzImage"]
    assert (tmp_path / "srv" / "smoke-1" / "bzImage").read_bytes() == b"kernel"


def test_a_served_batch_makes_one_ext4_image_per_size(tmp_path):
    from zcache_forge.lava import server

    lab = server.LabConfig("http://127.0.0.1:9/", "t", tmp_path / "srv", "http://127.0.0.1:8000/img/")
    for name in ("bzImage", "initramfs.cpio.gz"):
        (tmp_path / name).write_bytes(b"x")
    images = server.Images(tmp_path / "bzImage", tmp_path / "initramfs.cpio.gz", lab, "b-1")
    sc = dataclasses.replace(qemutest.choose(["fs-reread"])[0], fs_mib=16)
    a, b = images.artifacts(sc), images.artifacts(sc)
    name = f"fs-{sc.fs_disk_mib}m.img"
    assert a.fs_disk == b.fs_disk == f"http://127.0.0.1:8000/img/b-1/{name}"
    img = tmp_path / "srv" / "b-1" / name
    assert img.stat().st_size == sc.fs_disk_mib * qemu.MIB
    assert img.read_bytes()[1024 + 0x38:1024 + 0x3A] == b"\x53\xef"  # the ext4 superblock's magic
    assert images.artifacts(qemutest.choose(["smoke"])[0]).fs_disk is None


def test_the_done_prompt_matches_the_line_as_lava_reads_it():
    import re

    for end in ("\r\r\n", "\r\n", "\n"):
        assert re.search(jobmod.DONE_PROMPT, f"ZCF-DONE status=0{end}")
    assert not re.search(jobmod.DONE_PROMPT, "ZCF-DONE status=0")  # not before its line end
