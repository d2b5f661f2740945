"""send-patches: a real SMTP round trip on the mini kernel, with the kernel's real get_maintainer.pl.

The mini kernel gets the real scripts/get_maintainer.pl and the real MAINTAINERS of the Linux 6.1
base (read from Debian's tarball by conftest's linux_base_files; without the tarball these tests
skip), so the recipients are what they would be upstream. Messages go through git send-email to
an aiosmtpd server on 127.0.0.1; the received mbox is applied with git am. Checkpatch cannot run
on the mini kernel (no checkpatch.pl and its data files), so the check stamps are recorded
directly where a test needs them; the stamping by build-patches itself is tested with a stubbed
checkpatch."""

from __future__ import annotations

import email
import io
import logging
import mailbox
import os
import re
import shutil
import socket
import subprocess
import tarfile
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import pytest
import yaml

from zcache_forge import cli, gitops, kernel, series
from zcache_forge.errors import ForgeError
from zcache_forge.mail import preflight, recipients, sendmail, sentrecord
from zcache_forge.series import checkpatch, pipeline, stamps
from zcache_forge.series.patchfile import address, read_folder

from .conftest import MINI_FILES, git, make_project
from .test_build_patches import snapshot

SENDER = "zcache-forge@example.org"


# --- the world: a mini kernel with the real get_maintainer.pl and MAINTAINERS, a project, a cache ---


def make_world(root: Path, env: pytest.MonkeyPatch, base_files: dict[str, bytes]) -> Path:
    """Mini kernel with the real MAINTAINERS and get_maintainer.pl (`base_files`) + project copy +
    private cache and git config; returns the project directory."""
    env.setenv("ZCACHE_FORGE_CACHE", str(root / "cache"))
    env.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    env.setenv("GIT_CONFIG_NOSYSTEM", "1")
    env.setenv("HOME", str(root))  # no ~/.get_maintainer.conf of the user
    env.delenv(sendmail.PASSWORD_ENV, raising=False)
    tree = root / "linux"
    files = {**MINI_FILES, "MAINTAINERS": base_files["MAINTAINERS"].decode()}
    # get_maintainer.pl insists on running at the top of a kernel tree.
    for name in ("COPYING", "CREDITS", "Kbuild", "README"):
        files[name] = f"{name} of the mini kernel\n"
    for d in ("arch", "include", "fs", "init", "ipc", "kernel", "lib"):
        files[f"{d}/Makefile"] = "# mini\n"
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    (tree / "scripts").mkdir()
    (tree / recipients.GET_MAINTAINER).write_bytes(base_files[recipients.GET_MAINTAINER])
    git(tree, "init", "-q", "-b", "master")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "mini kernel")
    git(tree, "tag", "v6.1")
    return make_project(root, tree)


@pytest.fixture
def world(tmp_path, monkeypatch, linux_base_files) -> Path:
    proj = make_world(tmp_path, monkeypatch, linux_base_files)
    pipeline.build_patches(proj / "series.yaml", proj / "patches")
    return proj


def stamp_all(proj: Path) -> None:
    """Stands in for build-patches' checkpatch and build checks (the mini kernel has no
    checkpatch.pl and does not build; test_kernel_series stamps the real series for real)."""
    for folder in sorted((proj / "patches").glob("*/v*")):
        for check in stamps.REQUIRED:
            stamps.record(folder, check, True, {"note": "recorded by the test"})


def edit(proj: Path, fn) -> None:
    data = yaml.safe_load((proj / "series.yaml").read_text())
    fn(data)
    (proj / "series.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


# --- a real SMTP server -------------------------------------------------------------------


@dataclass
class Received:
    rcpt: tuple[str, ...]
    msg: Message


@dataclass
class Server:
    port: int
    received: list[Received] = field(default_factory=list)

    def write_mbox(self, path: Path) -> Path:
        box = mailbox.mbox(path)
        for r in self.received:
            box.add(r.msg)
        box.flush()
        box.close()
        return path


class Collect:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def handle_DATA(self, smtp, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw.replace(b"\r\n", b"\n"))
        self.server.received.append(Received(tuple(envelope.rcpt_tos), msg))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    server = Server(free_port())
    controller = Controller(Collect(server), hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


def send(proj: Path, server: Server, names: list[str] | None, really: bool, force: bool = False) -> int:
    return cli.send_patches(proj / "series.yaml", proj / "patches", names, really, force,
                            "127.0.0.1", str(server.port), None)


# --- recipients, computed independently in a full checkout of the tip ---------------------


def full_tree(tip: str, dest: Path) -> Path:
    repo = kernel.work_repo()
    data = subprocess.run(["git", "--git-dir", repo.git_dir, "archive", tip], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def get_maintainer(tree: Path, patch: Path, *opts: str) -> list[str]:
    out = subprocess.run(["perl", recipients.GET_MAINTAINER, "--no-git", "--no-git-fallback", "--no-fixes",
                          "--no-rolestats", *opts], cwd=tree, input=patch.read_bytes(), check=True,
                         capture_output=True).stdout.decode()
    return [line.strip() for line in out.splitlines() if line.strip()]


def expected_recipients(proj: Path, name: str, tmp: Path) -> list[tuple[set[str], set[str]]]:
    """(To, Cc) addresses of the cover and each patch, from get_maintainer.pl in a full tree."""
    sf = series.load(proj / "series.yaml")
    s = sf.get(name)
    tip = sendmail.series_tip(kernel.work_repo(), s)
    tree = full_tree(tip, tmp / f"full-{name}")
    folder = proj / "patches" / name / f"v{s.version}"
    per_patch = []
    for p in sorted(folder.glob("*.patch"))[1:]:
        to = {address(a) for a in [*sf.to, *get_maintainer(tree, p, "--no-l")]} - {SENDER}
        cc = {address(a) for a in [*sf.cc, *get_maintainer(tree, p, "--no-m", "--no-r")]} - to - {SENDER}
        per_patch.append((to, cc))
    cover_to = set().union(*(t for t, _ in per_patch))
    cover_cc = set().union(*(c for _, c in per_patch)) - cover_to
    return [(cover_to, cover_cc), *per_patch]


def addresses(header: str | None) -> set[str]:
    return {address(a) for a in (header or "").replace("\n", " ").split(",") if a.strip()}


def thread_of(server: Server, change_id: str) -> list[Received]:
    return [r for r in server.received if change_id in r.msg["Message-Id"]]


def subject(r: Received) -> str:
    return re.sub(r"\s+", " ", r.msg["Subject"])


# --- the tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sent_v1(tmp_path_factory, linux_base_files):
    """Both series, v1, sent for real once; the tests below look at what arrived."""
    root = tmp_path_factory.mktemp("sent")
    with pytest.MonkeyPatch.context() as env:
        proj = make_world(root, env, linux_base_files)
        pipeline.build_patches(proj / "series.yaml", proj / "patches")
        stamp_all(proj)
        from aiosmtpd.controller import Controller

        server = Server(free_port())
        controller = Controller(Collect(server), hostname="127.0.0.1", port=server.port)
        controller.start()
        try:
            rc = send(proj, server, None, really=True)
        finally:
            controller.stop()
        assert rc == 0
        expected = {name: expected_recipients(proj, name, root)
                    for name in ("zcache-staging", "zcache-promote")}
        tips = {s.name: sendmail.series_tip(kernel.work_repo(), s)
                for s in series.load(proj / "series.yaml").series}
        trees = {name: kernel.tree_of(kernel.work_repo(), tip) for name, tip in tips.items()}
        base = kernel.base_commit(kernel.work_repo(), series.load(proj / "series.yaml").base)
        yield {"proj": proj, "server": server, "expected": expected, "trees": trees, "base": base,
               "mbox": server.write_mbox(root / "received.mbox"), "root": root}


def test_real_send_one_message_each_threaded_to_the_cover(sent_v1):
    server, expected = sent_v1["server"], sent_v1["expected"]
    assert len(server.received) == 14 + 3
    for name, change_id, n in (("zcache-staging", "zcache-staging-7d3e91", 13),
                               ("zcache-promote", "zcache-promote-c41a08", 2)):
        thread = thread_of(server, change_id)
        width = len(str(n))  # format-patch pads the numbers
        assert [subject(r)[:len(f"[PATCH {i:0{width}d}/{n}]")] for i, r in enumerate(thread)] == \
            [f"[PATCH {i:0{width}d}/{n}]" for i in range(n + 1)]
        cover_id = thread[0].msg["Message-Id"]
        assert cover_id == f"<20261127-{change_id}-v1-0-" + cover_id.split("-v1-0-")[1]
        assert thread[0].msg["In-Reply-To"] is None
        for r in thread[1:]:
            assert r.msg["In-Reply-To"] == cover_id
            assert r.msg["References"] == cover_id
        for r, (to, cc) in zip(thread, expected[name], strict=True):
            assert addresses(r.msg["To"]) == to, subject(r)
            assert addresses(r.msg["Cc"]) == cc, subject(r)
            assert {a.lower() for a in r.rcpt} == to | cc  # the SMTP envelope: nobody else
    # The real MAINTAINERS at work: each patch goes to its own people, the cover to all of them.
    promote = thread_of(server, "zcache-promote-c41a08")
    assert "corbet@lwn.net" in addresses(promote[2].msg["To"])
    assert "corbet@lwn.net" not in addresses(promote[1].msg["To"]) | addresses(promote[1].msg["Cc"])
    assert "akpm@linux-foundation.org" in addresses(promote[1].msg["To"])
    assert {"corbet@lwn.net", "akpm@linux-foundation.org"} <= addresses(promote[0].msg["To"])
    staging = thread_of(server, "zcache-staging")
    assert "akpm@linux-foundation.org" in addresses(staging[1].msg["To"])  # cleancache: mm and fs
    assert "gregkh@linuxfoundation.org" not in addresses(staging[1].msg["To"])
    assert "gregkh@linuxfoundation.org" in addresses(staging[2].msg["To"])
    assert "linux-staging@lists.linux.dev" in addresses(staging[2].msg["Cc"])
    assert all(SENDER not in {a.lower() for a in r.rcpt} for r in server.received)


def test_received_mbox_applies_with_git_am_and_gives_the_same_trees(sent_v1, tmp_path):
    wt = tmp_path / "am"
    git(tmp_path, "init", "-q", str(wt))
    git(wt, "fetch", "-q", str(sent_v1["root"] / "linux"), "v6.1")
    git(wt, "checkout", "-q", "-b", "am", "FETCH_HEAD")
    assert git(wt, "rev-parse", "HEAD") == sent_v1["base"]
    # One mbox as received: the two cover letters have no diff and are dropped.
    git(wt, "am", "-q", "--empty=drop", str(sent_v1["mbox"]))
    assert git(wt, "rev-list", "--count", "HEAD", "^FETCH_HEAD") == "15"
    assert git(wt, "rev-parse", "HEAD~2^{tree}") == sent_v1["trees"]["zcache-staging"]
    assert git(wt, "rev-parse", "HEAD^{tree}") == sent_v1["trees"]["zcache-promote"]
    assert git(wt, "log", "-1", "--format=%an <%ae>%n%s", "HEAD~13") == \
        "Zcache Forge <zcache-forge@example.org>\nstaging: zcache: add the tmem key-value core"


def test_v2_has_changelog_and_range_diff_keeps_v1_and_replies_to_it(world, smtp, caplog):
    """v1 is sent (sent.yaml records it), then regenerated with another date (its files, and the
    Message-Ids derived from them, change), then v2: its cover letter replies to the Message-Id
    v1 really went out with, from the record, not to one recomputed from v1's files."""
    caplog.set_level(logging.INFO, logger="zcache_forge")
    v1_dir = world / "patches" / "zcache-staging" / "v1"
    stamp_all(world)
    assert send(world, smtp, ["zcache-staging"], really=True) == 0
    sent_v1_cover = smtp.received[0].msg["Message-Id"]
    assert "-v1-0-" in sent_v1_cover
    assert sentrecord.load(v1_dir).cover_message_id() == sent_v1_cover
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sent ")]
    assert [p.split(" zcache-staging")[0] for p in progress] == [f"sent {i}/14" for i in range(1, 15)]
    smtp.received.clear()

    edit(world, lambda d: d.update(date="2026-11-28 10:00:00 +0000"))
    pipeline.build_patches(world / "series.yaml", world / "patches")  # v1 regenerated after the send
    assert (v1_dir / "sent.yaml").is_file()  # kept: it belongs to the version, not to its files
    v1 = snapshot(v1_dir)
    v1_key = stamps.folder_key(v1_dir)
    recomputed = f"<20261127-zcache-staging-7d3e91-v1-0-{v1_key[:12]}@example.org>"
    assert recomputed != sent_v1_cover

    def bump(d):
        s = d["series"][0]
        s.update(version=2, in_reply_to_previous=True,
                 changelog={2: "- zbud: pick the fullest frame that fits"})
        s["patches"][2]["changes"] = {2: "pick the fullest frame that fits"}

    edit(world, bump)
    zbud = world / "templates" / "zcache" / "zbud.c.j2"
    zbud.write_text(zbud.read_text() + "/* v2: the fullest frame that fits */\n")
    pipeline.build_patches(world / "series.yaml", world / "patches")
    assert snapshot(v1_dir) == v1
    cover = (world / "patches" / "zcache-staging" / "v2" / "v2-0000-cover-letter.patch").read_text()
    assert "Subject: [PATCH v2 00/13]" in cover
    assert "Changes in v2:\n- zbud: pick the fullest frame that fits" in cover
    rd = cover[cover.index("Range-diff against v1:"):cover.index("base-commit:")]
    zbud_line = r"^ *3: +[0-9a-f]{7,} ! +3: +[0-9a-f]{7,} staging: zcache: add the zbud allocator$"
    assert re.search(zbud_line, rd, re.M)
    tmem_line = r"^ *2: +([0-9a-f]{7,}) = +2: +\1 staging: zcache: add the tmem key-value core$"
    assert re.search(tmem_line, rd, re.M)
    # zbud.c changed in patch 3; ramster's patch rewrites the end of zbud.c, where the line went,
    # so its diff context changes too
    ramster_line = r"^ *12: +[0-9a-f]{7,} ! +12: +[0-9a-f]{7,} staging: zcache: keep swap pages"
    assert re.search(ramster_line, rd, re.M)
    assert len(re.findall(r"^ *\d+: .* [=!] +\d+: ", rd, re.M)) == 13 and rd.count(" ! ") == 2
    assert "change-id: 20261127-zcache-staging-7d3e91" in cover
    v2 = snapshot(world / "patches" / "zcache-staging" / "v2")
    pipeline.build_patches(world / "series.yaml", world / "patches")
    assert snapshot(world / "patches" / "zcache-staging" / "v2") == v2  # range-diff included

    stamp_all(world)
    assert send(world, smtp, ["zcache-staging"], really=True) == 0
    thread = smtp.received
    assert [subject(r)[:16] for r in thread] == [f"[PATCH v2 {i:02d}/13]" for i in range(14)]
    v2_cover = thread[0].msg["Message-Id"]
    assert "-v2-0-" in v2_cover and thread[0].msg["In-Reply-To"] == sent_v1_cover
    for r in thread[1:]:
        assert r.msg["In-Reply-To"] == v2_cover
        assert r.msg["References"].split() == [sent_v1_cover, v2_cover]


def test_v2_without_a_record_of_v1_has_no_in_reply_to(world, smtp, caplog):
    def bump(d):
        d["series"][1].update(version=2, in_reply_to_previous=True)

    edit(world, bump)
    pipeline.build_patches(world / "series.yaml", world / "patches")
    caplog.clear()
    assert send(world, smtp, ["zcache-promote"], really=False) == 0
    said = [r.getMessage() for r in caplog.records if "sent.yaml not found" in r.getMessage()]
    assert len(said) == 1 and "the cover letter gets no In-Reply-To" in said[0], said
    assert "zcache-promote/v1/sent.yaml" in said[0]


def test_range_diff_on_a_new_machine_rebuilds_v1_from_patches(world):
    """A new cache has no v1 branch; build-patches of v2 rebuilds it from patches/.../v1/ and
    writes the very same cover letter (same range-diff, same commit ids) as with the branch."""
    def bump(d):
        d["series"][0].update(version=2, changelog={2: "- zbud: a comment"})

    edit(world, bump)
    zbud = world / "templates" / "zcache" / "zbud.c.j2"
    zbud.write_text(zbud.read_text() + "/* v2 */\n")
    pipeline.build_patches(world / "series.yaml", world / "patches")
    v2 = world / "patches" / "zcache-staging" / "v2"
    with_branch = snapshot(v2)
    assert "Range-diff against v1:" in (v2 / "v2-0000-cover-letter.patch").read_text()

    repo = kernel.work_repo()
    for ref in ("refs/heads/zcache-forge/zcache-staging/v1", "refs/zcache-forge/start/zcache-staging/v1"):
        gitops.git(repo, "update-ref", "-d", ref)
    shutil.rmtree(v2)
    pipeline.build_patches(world / "series.yaml", world / "patches")
    assert snapshot(v2) == with_branch
    assert gitops.git(repo, "rev-parse", "--verify", "-q", "refs/heads/zcache-forge/zcache-staging/v1")


def test_without_send_nothing_is_sent(world, smtp, capsys):
    stamp_all(world)
    assert send(world, smtp, None, really=False) == 0
    out = capsys.readouterr().out
    assert smtp.received == []
    assert out.count("Dry-OK. Log says:") == 17
    assert "dry run: nothing sent; 17 messages" in out
    assert "To: linux-mm@kvack.org, Greg Kroah-Hartman <gregkh@linuxfoundation.org>" in out


def test_send_is_refused_without_passed_checks_unless_forced(world, smtp, capsys):
    assert send(world, smtp, ["zcache-promote"], really=True) == 1
    assert "refusing to send: checks have not passed" in capsys.readouterr().err
    stamps.record(world / "patches" / "zcache-promote" / "v1", "checkpatch", False, {"errors": 1})
    assert send(world, smtp, ["zcache-promote"], really=True) == 1
    stamp_all(world)
    edit(world, lambda d: d["series"][1]["patches"][1].update(subject="Documentation: mm: document zcache"))
    pipeline.build_patches(world / "series.yaml", world / "patches")  # new files: the stamp is stale
    assert send(world, smtp, ["zcache-promote"], really=True) == 1
    assert smtp.received == []
    assert send(world, smtp, ["zcache-promote"], really=True, force=True) == 0
    assert len(smtp.received) == 3


def test_build_patches_stamps_a_clean_checkpatch(world, monkeypatch, capsys):
    def clean(tree, files):
        return [checkpatch.CheckResult(f, 0, 0, 0, "") for f in files if not checkpatch.is_cover(f)]

    monkeypatch.setattr(checkpatch, "check_series", clean)
    assert cli.build_patches(world / "series.yaml", world / "patches", None, True, False) == 0
    for name in ("zcache-staging", "zcache-promote"):
        stamp = stamps.load(world / "patches" / name / "v1")
        assert stamp.missing() == ["build"] and stamp.checks["checkpatch"]["errors"] == 0

    def dirty(tree, files):
        return [checkpatch.CheckResult(f, 0, 1, 0, "WARNING") for f in files if not checkpatch.is_cover(f)]

    monkeypatch.setattr(checkpatch, "check_series", dirty)
    # a failed patch check: exit 2
    assert cli.build_patches(world / "series.yaml", world / "patches", None, True, False) == 2
    assert stamps.load(world / "patches" / "zcache-staging" / "v1").missing() == ["checkpatch", "build"]


# --- pre-flight checks, series field, password ------------------------------------------------


def broken_copy(world: Path, tmp_path: Path, fn) -> tuple[series.Series, Path, list[str]]:
    s = series.load(world / "series.yaml").get("zcache-staging")
    folder = tmp_path / "bad" / "v1"
    shutil.copytree(world / "patches" / "zcache-staging" / "v1", folder)
    fn(folder)
    return s, folder, preflight.preflight(s, folder, read_folder(folder))


def rewrite(folder: Path, glob: str, old: str, new: str) -> Path:
    f = next(folder.glob(glob))
    text = f.read_text()
    assert old in text
    f.write_text(text.replace(old, new, 1))
    return f


def test_preflight_passes_the_generated_series(world):
    for s in series.load(world / "series.yaml").series:
        folder = world / "patches" / s.name / "v1"
        assert preflight.preflight(s, folder, read_folder(folder)) == []


@pytest.mark.parametrize("glob, old, new, expect", [
    ("0000-*", "Subject: [PATCH 00/13] staging: add the zcache compressed swap cache",
     "Subject: [PATCH 00/13] *** SUBJECT HERE ***", "leftover placeholder '*** SUBJECT HERE ***'"),
    ("0002-*", "\nSigned-off-by: Zcache Forge <zcache-forge@example.org>\n", "\n",
     "no Signed-off-by above the '---'"),
    ("0005-*", "Subject: [PATCH 05/13] staging: zcache: compress swap pages through frontswap",
     "Subject: [PATCH 05/13] staging: zcache: compress swap pages through frontswap and more words",
     "columns, more than 75"),
    ("0003-*", "\nSigned-off-by:", "\nChanges in v2:\n- none\n\nSigned-off-by:",
     "version changelog 'Changes in v2' above the '---'"),
    ("0006-*", "Subject: [PATCH 06/13]", "Subject: [PATCH v2 06/13]",
     "Subject says v2, the series file says version 1"),
    ("0001-*", "Subject: [PATCH 01/13]", "Subject: [PATCH 01/4]", "Subject numbers 01/4, expected 1/13"),
])
def test_preflight_finds(world, tmp_path, glob, old, new, expect):
    s, folder, problems = broken_copy(world, tmp_path, lambda d: rewrite(d, glob, old, new))
    bad = next(folder.glob(glob))
    assert any(p.startswith(f"{bad}: ") and expect in p for p in problems), problems


def test_preflight_checks_file_names_against_the_version(world, tmp_path):
    def rename(folder: Path) -> None:
        f = next(folder.glob("0002-*"))
        f.rename(f.with_name("v2-" + f.name))

    _, folder, problems = broken_copy(world, tmp_path, rename)
    assert any("v2-0002-" in p and "file name says v2, the series file says version 1" in p
               for p in problems), problems


def test_send_refuses_a_series_failing_preflight(world, smtp, capsys):
    stamp_all(world)
    rewrite(world / "patches" / "zcache-promote" / "v1", "0000-*", "Zcache Forge (2):", "*** BLURB HERE ***")
    assert send(world, smtp, None, really=True, force=True) == 2  # a failed patch check
    err = capsys.readouterr().err
    assert "pre-flight checks of" in err and "0000-cover-letter.patch: leftover placeholder" in err
    assert smtp.received == []


def test_in_reply_to_previous_is_validated(world):
    edit(world, lambda d: d["series"][0].update(in_reply_to_previous=True))
    with pytest.raises(ForgeError, match=r"series\[0\]\.in_reply_to_previous: expected false for version 1"):
        series.load(world / "series.yaml")
    edit(world, lambda d: d["series"][0].update(version=2, in_reply_to_previous="yes"))
    with pytest.raises(ForgeError, match=r"series\[0\]\.in_reply_to_previous: expected true or false"):
        series.load(world / "series.yaml")


def test_the_password_is_never_in_argv_output_or_repr(world, smtp, monkeypatch, capsys):
    monkeypatch.setenv(sendmail.PASSWORD_ENV, "s3cret-Pw")
    cfg = sendmail.smtp_settings(world, "127.0.0.1", smtp.port, "me")
    assert "s3cret-Pw" not in repr(cfg) + cfg.describe() + " ".join(cfg.argv())
    assert "s3cret-Pw" in cfg.env().values() and cfg.password_source == "env"
    stamp_all(world)
    assert cli.send_patches(world / "series.yaml", world / "patches", ["zcache-promote"], False, False,
                            "127.0.0.1", str(smtp.port), "me") == 0
    captured = capsys.readouterr()
    assert "s3cret-Pw" not in captured.out + captured.err
    assert "user me, password from env" in captured.out


def test_git_config_adding_recipients_is_caught_by_the_dry_run(world, smtp, tmp_path, monkeypatch, capsys):
    spy = tmp_path / "spy.sh"
    spy.write_text("#!/bin/sh\necho spy@example.net\n")
    spy.chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(f"[sendemail]\n\ttocmd = {spy}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    stamp_all(world)
    assert send(world, smtp, ["zcache-promote"], really=True) == 1
    err = capsys.readouterr().err
    assert "git send-email --dry-run does not match the plan" in err
    assert "extra: ['spy@example.net']" in err and "check your sendemail.* git config" in err
    assert smtp.received == []


# --- what was sent, a fresh clone, progress -------------------------------------------------


def test_real_send_writes_the_sent_record(sent_v1):
    """sent.yaml per version: every message's Message-Id, Date, To/Cc as received, and the command."""
    proj, server = sent_v1["proj"], sent_v1["server"]
    for name, change_id in (("zcache-staging", "zcache-staging-7d3e91"),
                            ("zcache-promote", "zcache-promote-c41a08")):
        rec = sentrecord.load(proj / "patches" / name / "v1")
        assert rec is not None and len(rec.sends) == 1
        send_ = rec.sends[0]
        assert send_["complete"] is True and send_["command"][:2] == ["git", "send-email"]
        assert "--dry-run" not in send_["command"]
        thread = thread_of(server, change_id)
        assert [m["message_id"] for m in send_["messages"]] == [r.msg["Message-Id"] for r in thread]
        assert [m["date"] for m in send_["messages"]] == [r.msg["Date"] for r in thread]
        files = sorted(p.name for p in (proj / "patches" / name / "v1").glob("*.patch"))
        assert [m["file"] for m in send_["messages"]] == files
        for m, r in zip(send_["messages"], thread, strict=True):
            assert {address(a) for a in m["to"]} == addresses(r.msg["To"])
            assert {address(a) for a in m["cc"]} == addresses(r.msg["Cc"])
            assert {a.lower() for a in m["envelope"]} == {a.lower() for a in r.rcpt}
        assert rec.cover_message_id() == thread[0].msg["Message-Id"]
    # the record is not a patch file: the check stamps' key and the pre-flight ignore it
    s = series.load(proj / "series.yaml").get("zcache-promote")
    assert len(preflight.checked_patches(s, proj / "patches")) == 3


def test_a_sent_version_is_not_sent_again_without_force(world, smtp, capsys):
    stamp_all(world)
    assert send(world, smtp, ["zcache-promote"], really=True) == 0
    assert send(world, smtp, ["zcache-promote"], really=True) == 1
    assert "refusing to send again: " in capsys.readouterr().err
    assert len(smtp.received) == 3
    assert send(world, smtp, ["zcache-promote"], really=True, force=True) == 0
    assert len(sentrecord.load(world / "patches" / "zcache-promote" / "v1").sends) == 2


def dry_plan(proj: Path, server: Server, capsys) -> str:
    """The dry run's plan (recipients, Message-Ids, threading), without git send-email's log."""
    assert send(proj, server, None, really=False) == 0
    out = capsys.readouterr().out
    return out[:out.index("--- git send-email --dry-run")]


def test_fresh_clone_dry_run_needs_no_build_patches(world, smtp, tmp_path, monkeypatch, capsys, caplog):
    """A clone has patches/ but its cache has no branches: send-patches rebuilds the tips from the
    committed files (on the recorded base-commit) and plans exactly what it plans after build-patches."""
    caplog.set_level(logging.INFO, logger="zcache_forge")
    with_branches = dry_plan(world, smtp, capsys)
    clone = tmp_path / "clone"
    clone.mkdir()
    for part in ("series.yaml", "templates", "patches"):
        src = world / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, clone / part)
    monkeypatch.setenv("ZCACHE_FORGE_CACHE", str(tmp_path / "fresh-cache"))
    caplog.clear()
    fresh = dry_plan(clone, smtp, capsys)
    assert fresh == with_branches.replace(str(world), str(clone))
    assert "NOT passed: checkpatch, build (sending needs --force)" in fresh
    rebuilt = [r.getMessage() for r in caplog.records if "no branch in the cache; rebuilt" in r.getMessage()]
    assert len(rebuilt) == 2, rebuilt
    assert smtp.received == []
    # sending from the clone still needs the checks (or --force): the stamps are per machine
    assert send(clone, smtp, ["zcache-promote"], really=True) == 1
    assert "refusing to send: checks have not passed" in capsys.readouterr().err


class RejectThird(Collect):
    async def handle_DATA(self, smtp, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        if len(self.server.received) == 2:
            return "554 rejected by the test"
        return await super().handle_DATA(smtp, session, envelope)


def test_a_send_failing_half_way_records_what_went_out(world, capsys):
    from aiosmtpd.controller import Controller

    stamp_all(world)
    server = Server(free_port())
    controller = Controller(RejectThird(server), hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        assert send(world, server, ["zcache-staging"], really=True) == 1
    finally:
        controller.stop()
    err = capsys.readouterr().err
    assert "failed (exit" in err and "after 2 of 14 messages" in err, err
    rec = sentrecord.load(world / "patches" / "zcache-staging" / "v1")
    assert rec is not None and rec.sends[0]["complete"] is False
    went_out = [r.msg["Message-Id"] for r in server.received]
    assert [m["message_id"] for m in rec.sends[0]["messages"]] == went_out
