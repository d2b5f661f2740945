"""send-patches: the send plan and the git send-email run.

Message-IDs are derived from the change-id, the version, the patch number and a hash of the
version's files, so they are the same every time the same files are (re)sent. What was really
sent is recorded in the version's sent.yaml, and a v<N> cover letter replies to the Message-Id
recorded there for v<N-1>.

Every send is first run as `git send-email --dry-run` and git's own log is compared with the
plan (recipients, Message-ID, threading); only then, and only when asked, is it sent.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import git

from zcache_forge import kernel
from zcache_forge.errors import ForgeError
from zcache_forge.mail import sentrecord
from zcache_forge.mail.preflight import checked_patches
from zcache_forge.mail.recipients import (
    Maintainers,
    Recipients,
    cover_recipients,
    patch_recipients,
    touched_paths,
)
from zcache_forge.run import run, stream
from zcache_forge.series import Series, SeriesFile, replay, stamps
from zcache_forge.series.apply import branch_name, start_ref
from zcache_forge.series.checkpatch import is_cover
from zcache_forge.series.export import series_dir
from zcache_forge.series.patchfile import PatchFile, address

log = logging.getLogger(__name__)

PASSWORD_ENV = "ZCACHE_FORGE_SMTP_PASSWORD"
# git send-email must add nobody on its own: the plan is all there is.
SUPPRESS = ("author", "self", "sob", "misc-by", "bodycc", "cccmd")


@dataclass(frozen=True)
class Message:
    patch: PatchFile
    number: int  # 0 for the cover letter
    message_id: str
    in_reply_to: str | None
    recipients: Recipients


@dataclass(frozen=True)
class Plan:
    series: str
    version: int
    folder: Path
    key: str  # sha256 of the folder's patch files (the check stamp's key)
    sender: str
    messages: tuple[Message, ...]

    @property
    def cover(self) -> Message:
        return self.messages[0]


@dataclass(frozen=True)
class Smtp:
    server: str | None
    port: int | None
    user: str | None
    password_source: str  # where git send-email gets the password: "env", "git config" or "none"
    password: str | None = field(default=None, repr=False)

    def argv(self) -> list[str]:
        out = []
        if self.server:
            out.append(f"--smtp-server={self.server}")
        if self.port:
            out.append(f"--smtp-server-port={self.port}")
        if self.user:
            out.append(f"--smtp-user={self.user}")
        return out

    def env(self) -> dict[str, str]:
        """The password for git send-email as command-line config, never in argv or logs."""
        if not self.password:
            return {}
        n = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
        return {"GIT_CONFIG_COUNT": str(n + 1), f"GIT_CONFIG_KEY_{n}": "sendemail.smtpPass",
                f"GIT_CONFIG_VALUE_{n}": self.password}

    def describe(self) -> str:
        where = self.server or "git's default (sendmail or localhost)"
        port = f":{self.port}" if self.port else ""
        auth = f"user {self.user}, password from {self.password_source}" if self.user else "no auth"
        return f"{where}{port} ({auth})"


@dataclass(frozen=True)
class Logged:
    """One message as git send-email's log shows it."""

    headers: dict[str, str]
    rcpt: tuple[str, ...]


# --- the plan ------------------------------------------------------------------------------------


def message_id(series: Series, version: int, number: int, key: str, domain: str) -> str:
    return f"<{series.change_id}-v{version}-{number}-{key[:12]}@{domain}>"


def previous_cover_id(series: Series, patches_root: Path) -> str | None:
    """The Message-Id v<N-1>'s cover letter was sent with, from its sent record; None (and one line
    saying so) without a record. Never recomputed from v<N-1>'s files: they may have been
    regenerated since, and a reply to a Message-Id that never went out threads nowhere."""
    prev = patches_root / series.name / f"v{series.version - 1}"
    rec = sentrecord.load(prev)
    cover = rec.cover_message_id() if rec else None
    if cover is None:
        why = "has no cover letter" if rec else "not found"
        log.warning("%s v%d: %s %s (v%d not sent with send-patches --send, or the record is not committed): "
                    "the cover letter gets no In-Reply-To", series.name, series.version,
                    sentrecord.path(prev), why, series.version - 1)
    return cover


def series_tip(repo: git.Repo, series: Series) -> str:
    try:
        return kernel.git_cmd(repo, "rev-parse", "--verify", "-q", f"refs/heads/{branch_name(series)}")
    except ForgeError:
        raise ForgeError(f"branch {branch_name(series)} not in {repo.git_dir}: run invoke build-patches "
                         f"for {series.name} v{series.version} first") from None


def _recorded_base(folder: Path) -> str | None:
    covers = [f for f in stamps.patch_files(folder) if is_cover(f)]
    m = re.search(r"^base-commit: ([0-9a-f]{40})$", covers[0].read_text(), re.M) if covers else None
    return m.group(1) if m else None


def ensure_tip(repo: git.Repo, sf: SeriesFile, series: Series, patches_root: Path) -> str:
    """The series tip for get_maintainer.pl: its branch when build-patches made it here, else
    rebuilt from the committed patches/ of the series and those it stands on (a fresh clone):
    applied on the base-commit their cover letter records, or on the series file's base
    (imported when absent) when that commit is not in the cache."""
    try:
        return series_tip(repo, series)
    except ForgeError:
        pass
    tip: str | None = None
    for s in sf.chain(series.name):
        try:
            tip = series_tip(repo, s)
            continue
        except ForgeError:
            pass
        folder = series_dir(patches_root, s)
        if tip is None:
            recorded = _recorded_base(folder)
            if recorded and _has_commit(repo, recorded):
                tip = recorded
            else:
                tip = kernel.base_commit(repo, sf.base)
                if recorded and recorded != tip:
                    log.warning("%s v%d: base-commit %s of %s is not in %s; applying on the series file's "
                                "base %s (Linux %s) instead", s.name, s.version, recorded[:12], folder.name,
                                repo.git_dir, tip[:12], kernel.version_at(repo, tip))
        start = tip
        tip = replay.replay(repo, folder, start)
        kernel.git_cmd(repo, "update-ref", f"refs/heads/{branch_name(s)}", tip)
        kernel.git_cmd(repo, "update-ref", start_ref(s.name, s.version), start)
        log.info("%s v%d: no branch in the cache; rebuilt %s from %s", s.name, s.version, branch_name(s),
                 folder)
    assert tip is not None
    return tip


def _has_commit(repo: git.Repo, sha: str) -> bool:
    try:
        kernel.git_cmd(repo, "cat-file", "-e", f"{sha}^{{commit}}")
        return True
    except ForgeError:
        return False


def make_plan(sf: SeriesFile, series: Series, patches_root: Path, sender: str) -> Plan:
    """Check the version folder, compute every message's recipients, IDs and threading."""
    folder = series_dir(patches_root, series)
    patches = checked_patches(series, patches_root)
    repo = kernel.work_repo()
    tip = ensure_tip(repo, sf, series, patches_root)
    with tempfile.TemporaryDirectory(prefix="zcf-maint-", dir=kernel.cache_dir()) as tmp:
        maintainers = Maintainers(repo, tip, touched_paths(patches[1:]), Path(tmp))
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            each = list(pool.map(lambda p: patch_recipients(sf, maintainers, p, sender), patches[1:]))
    key = stamps.folder_key(folder)
    domain = sf.author_email.rpartition("@")[2]
    ids = [message_id(series, series.version, i, key, domain) for i in range(len(patches))]
    first_reply = previous_cover_id(series, patches_root) if series.in_reply_to_previous else None
    messages = [Message(patches[0], 0, ids[0], first_reply, cover_recipients(sf, each, sender))]
    messages += [Message(p, i, ids[i], ids[0], each[i - 1]) for i, p in enumerate(patches[1:], start=1)]
    for m in messages:
        if not m.recipients.to:
            raise ForgeError(f"{m.patch.path}: nobody to send it to (no 'to:' in {sf.path}, "
                             "no maintainer from get_maintainer.pl)")
    return Plan(series.name, series.version, folder, key, sender, tuple(messages))


# --- git send-email ------------------------------------------------------------------------------


def git_config(cwd: Path, key: str) -> str | None:
    try:
        return run(["git", "config", "--get", key], cwd=cwd).stdout.decode().strip() or None
    except ForgeError:
        return None


def _has_config(cwd: Path, key: str) -> bool:
    """Whether `key` is set, without reading its value (for the password)."""
    try:
        run(["git", "config", "--name-only", "--get-regexp", f"^{re.escape(key)}$"], cwd=cwd)
        return True
    except ForgeError:
        return False


def smtp_settings(cwd: Path, server: str | None, port: int | None, user: str | None) -> Smtp:
    """Options first, then git's sendemail.* config; the password from $ZCACHE_FORGE_SMTP_PASSWORD
    or sendemail.smtpPass (read by git send-email itself)."""
    server = server or git_config(cwd, "sendemail.smtpServer")
    port_s = str(port) if port else git_config(cwd, "sendemail.smtpServerPort")
    if port_s is not None and not port_s.isdigit():
        raise ForgeError(f"SMTP port {port_s!r} is not a number (--smtp-port or sendemail.smtpServerPort)")
    user = user or git_config(cwd, "sendemail.smtpUser")
    password = os.environ.get(PASSWORD_ENV) or None
    source = "env" if password else "git config" if _has_config(cwd, "sendemail.smtppass") else "none"
    return Smtp(server, int(port_s) if port_s else None, user, source, password)


def sender(cwd: Path, sf: SeriesFile) -> str:
    return git_config(cwd, "sendemail.from") or f"{sf.author_name} <{sf.author_email}>"


def outgoing_text(m: Message) -> str:
    """The patch file with the plan's To, Cc and Message-Id headers in place of format-patch's."""
    drop = {"to", "cc", "message-id", "in-reply-to", "references"}
    lines = [m.patch.from_line]
    for k, v in m.patch.headers:
        if k.lower() in drop:
            continue
        lines.append(f"{k}: {v}")
        if k.lower() == "subject":
            lines.append(_fold("To", m.recipients.to))
            if m.recipients.cc:
                lines.append(_fold("Cc", m.recipients.cc))
            lines.append(f"Message-Id: {m.message_id}")
    return "\n".join(lines) + "\n\n" + m.patch.body


def _fold(name: str, entries: tuple[str, ...]) -> str:
    return f"{name}: " + ",\n ".join(entries)


def write_outgoing(plan: Plan, dest: Path) -> list[Path]:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files = []
    for m in plan.messages:
        f = dest / m.patch.path.name
        f.write_text(outgoing_text(m))
        files.append(f)
    return files


def send_email_argv(plan: Plan, files: list[Path], smtp: Smtp, dry_run: bool) -> list[str]:
    argv = ["git", "send-email", "--no-format-patch", "--confirm=never", "--no-annotate",
            f"--from={plan.sender}", "--no-to", "--no-cc", "--no-bcc", "--no-to-cover", "--no-cc-cover",
            "--thread", "--no-chain-reply-to", "--no-signed-off-by-cc", "--8bit-encoding=UTF-8",
            *(f"--suppress-cc={c}" for c in SUPPRESS)]
    if plan.cover.in_reply_to:
        argv.append(f"--in-reply-to={plan.cover.in_reply_to}")
    argv += smtp.argv()
    if dry_run:
        argv.append("--dry-run")
    return argv + [str(f) for f in files]


def parse_log(text: str) -> list[Logged]:
    """The messages in git send-email's output ('[Dry-]OK. Log says:' blocks)."""
    out = []
    for block in re.split(r"^(?:Dry-)?OK\. Log says:\n", text, flags=re.M)[1:]:
        rcpt: list[str] = []
        headers: dict[str, str] = {}
        last = ""
        for line in block.split("\n"):
            if not line.strip():
                break
            if line.startswith("RCPT TO:"):
                rcpt.append(line[len("RCPT TO:"):].strip("<> "))
            elif line[:1] in (" ", "\t") and last:
                headers[last] += " " + line.strip()
            elif ":" in line:
                k, _, v = line.partition(":")
                last = k.strip().lower()
                headers[last] = v.strip()
        out.append(Logged(headers, tuple(rcpt)))
    return out


def _logged_addresses(entry: Logged) -> set[str]:
    found = set()
    for name in ("to", "cc"):
        for part in entry.headers.get(name, "").split(","):
            if part.strip():
                found.add(address(part))
    return found


def verify(plan: Plan, logged: list[Logged]) -> list[str]:
    """Differences between the plan and what git send-email did (or would do)."""
    if len(logged) != len(plan.messages):
        return [f"git send-email handled {len(logged)} messages, the plan has {len(plan.messages)}"]
    problems = []
    for m, got in zip(plan.messages, logged, strict=True):
        name = m.patch.path.name
        want = m.recipients.addresses()
        refs = got.headers.get("references", "").split()
        last_ref = refs[-1] if refs else None
        for header, value, expected in (("Message-Id", got.headers.get("message-id"), m.message_id),
                                        ("In-Reply-To", got.headers.get("in-reply-to"), m.in_reply_to),
                                        ("References (last)", last_ref, m.in_reply_to)):
            if value != expected:
                problems.append(f"{name}: {header} {value} instead of {expected}")
        if _logged_addresses(got) != want or (got.rcpt and {address(r) for r in got.rcpt} != want):
            extra = sorted((_logged_addresses(got) | {address(r) for r in got.rcpt}) - want)
            problems.append(f"{name}: recipients differ from the plan (extra: {extra or 'none'}, "
                            f"missing: {sorted(want - _logged_addresses(got)) or 'none'}); "
                            "check your sendemail.* git config")
    return problems


@dataclass(frozen=True)
class Prepared:
    plan: Plan
    files: list[Path]  # the outgoing copies, with the plan's headers
    dry_log: str       # git send-email --dry-run's output, checked against the plan


def prepare(plan: Plan, smtp: Smtp, cwd: Path) -> Prepared:
    """Write the outgoing copies and dry-run git send-email on them; its log must match the plan."""
    out = kernel.cache_dir() / "outgoing" / plan.series / f"v{plan.version}"
    files = write_outgoing(plan, out)
    dry = _send_email(plan, files, smtp, cwd, dry_run=True)
    problems = verify(plan, parse_log(dry))
    if problems:
        raise ForgeError("git send-email --dry-run does not match the plan:\n" + "\n".join(problems))
    return Prepared(plan, files, dry)


# git send-email (perl) buffers its log when stdout is a pipe: this makes it flush each line, so
# that every message is reported as it goes out.
AUTOFLUSH_MODULE = "ZcacheForgeAutoflush"
AUTOFLUSH_SOURCE = f"package {AUTOFLUSH_MODULE};\nuse IO::Handle;\nSTDOUT->autoflush(1);\n1;\n"


def _autoflush_env(tmp: Path) -> dict[str, str]:
    (tmp / f"{AUTOFLUSH_MODULE}.pm").write_text(AUTOFLUSH_SOURCE)
    lib = os.pathsep.join(filter(None, [str(tmp), os.environ.get("PERL5LIB")]))
    opt = " ".join(filter(None, [os.environ.get("PERL5OPT"), f"-M{AUTOFLUSH_MODULE}"]))
    return {"PERL5LIB": lib, "PERL5OPT": opt}


def _record_entry(m: Message, got: Logged) -> dict[str, object]:
    h = got.headers
    return {"number": m.number, "file": m.patch.path.name, "subject": h.get("subject", m.patch.subject),
            "message_id": h.get("message-id"), "in_reply_to": h.get("in-reply-to"), "date": h.get("date"),
            "to": sentrecord.split_addresses(h.get("to")), "cc": sentrecord.split_addresses(h.get("cc")),
            "envelope": list(got.rcpt)}


def already_sent(plan: Plan) -> str | None:
    rec = sentrecord.load(plan.folder)
    return None if rec is None else f"{plan.folder} was already sent on {rec.last_date()} ({rec.path.name})"


def send(prepared: Prepared, smtp: Smtp, cwd: Path) -> str:
    """Send for real, one progress line per message; record what went out in the version's
    sent.yaml (also after a failure half way); return git send-email's log (checked against the plan)."""
    plan = prepared.plan
    total = len(prepared.files)
    log.info("sending %s v%d: %d messages via %s", plan.series, plan.version, total, smtp.describe())
    argv = send_email_argv(plan, prepared.files, smtp, dry_run=False)
    count = 0

    def progress(line: str) -> None:
        nonlocal count
        if line.startswith("Result:") and count < total:
            m = plan.messages[count]
            count += 1
            log.info("sent %d/%d %s v%d: %s %s (%s)", count, total, plan.series, plan.version,
                     m.patch.subject, m.message_id, line.partition(":")[2].strip())

    started = datetime.now(UTC).replace(microsecond=0).isoformat()
    with tempfile.TemporaryDirectory(prefix="zcf-perl-") as tmp:
        rc, out, err = stream(argv, progress, cwd=cwd, env={**smtp.env(), **_autoflush_env(Path(tmp))})
    logged = parse_log(out)
    entries = [_record_entry(m, got) for m, got in zip(plan.messages, logged, strict=False)]
    if entries:
        rec = sentrecord.append(plan.folder, plan.series, plan.version, {
            "date": started, "complete": rc == 0 and len(entries) == total, "via": smtp.describe(),
            "command": argv, "messages": entries})
        log.info("%s: %d of %d messages recorded; commit it with patches/", rec, len(entries), total)
    if rc != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise ForgeError(f"git send-email of {plan.series} v{plan.version} failed (exit {rc}) after "
                         f"{len(entries)} of {total} messages:\n{tail}")
    problems = verify(plan, logged)
    if problems:
        raise ForgeError("git send-email sent something else than planned:\n" + "\n".join(problems))
    return out


def _send_email(plan: Plan, files: list[Path], smtp: Smtp, cwd: Path, dry_run: bool) -> str:
    argv = send_email_argv(plan, files, smtp, dry_run)
    what = f"git send-email{' --dry-run' if dry_run else ''} of {plan.series} v{plan.version}"
    proc = run(argv, cwd=cwd, env=smtp.env(), input=b"", what=what)
    return proc.stdout.decode(errors="replace")


def describe(plan: Plan, smtp: Smtp, missing: list[str]) -> str:
    """The plan as shown before anything is sent (never the password)."""
    checks = "all passed" if not missing else f"NOT passed: {', '.join(missing)} (sending needs --force)"
    lines = [f"{plan.series} v{plan.version}: {len(plan.messages)} messages from {plan.sender} "
             f"via {smtp.describe()}", f"checks for these files ({plan.folder}): {checks}",
             f"  {stamps.boot_line(stamps.load(plan.folder))}"]
    for m in plan.messages:
        lines += [f"  {m.patch.subject}", f"    Message-Id:  {m.message_id}"]
        if m.in_reply_to:
            lines.append(f"    In-Reply-To: {m.in_reply_to}")
        lines.append(f"    To: {', '.join(m.recipients.to)}")
        if m.recipients.cc:
            lines.append(f"    Cc: {', '.join(m.recipients.cc)}")
    return "\n".join(lines)
