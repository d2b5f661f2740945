"""send-patches: who gets each message, pre-flight checks, and the git send-email run.

Recipients come from the kernel's own scripts/get_maintainer.pl, taken from the series tip
together with its MAINTAINERS, plus the series file's `to:`/`cc:`. Each patch goes to its own
recipients, the cover letter to the union of all of them. Message-IDs are derived from the
change-id, the version, the patch number and a hash of the version's files, so they are
the same every time a version is (re)sent, and a v<N> cover letter can reply to v<N-1>'s.

Every send is first run as `git send-email --dry-run` and git's own log is compared with the
plan (recipients, Message-ID, threading); only then, and only when asked, is it sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

import git

from . import kernel, stamps
from .apply import branch_name
from .checkpatch import is_cover
from .errors import ForgeError
from .export import BLURB_PLACEHOLDER, SUBJECT_PLACEHOLDER, series_dir
from .run import run
from .series import Series, SeriesFile

log = logging.getLogger(__name__)

GET_MAINTAINER = "scripts/get_maintainer.pl"
# What get_maintainer.pl reads besides the patch: the tree's top level (it checks that it runs
# at the top of a kernel tree), MAINTAINERS, .mailmap and its optional config files.
TREE_FILES = ("COPYING", "CREDITS", "Kbuild", "MAINTAINERS", "Makefile", "README", ".mailmap",
              ".get_maintainer.conf", ".get_maintainer.ignore", GET_MAINTAINER)
# No git history (the cache repository holds an import commit), plain addresses.
GM_COMMON = ("--no-git", "--no-git-fallback", "--no-fixes", "--no-rolestats")
GM_TO = ("--no-l",)          # maintainers and reviewers
GM_CC = ("--no-m", "--no-r")  # mailing lists
SUBJECT_MAX = 75
PASSWORD_ENV = "ZCACHE_FORGE_SMTP_PASSWORD"
# git send-email must add nobody on its own: the plan is all there is.
SUPPRESS = ("author", "self", "sob", "misc-by", "bodycc", "cccmd")
TAG_RE = re.compile(r"^\[(?P<prefix>.+?)(?: v(?P<version>\d+))? (?P<i>\d+)/(?P<n>\d+)\] \S")
CHANGELOG_RE = re.compile(
    r"^\s*(changes (in|since|from|for) v\d+|v\d+\s*(->|\.\.|to)\s*v\d+|v\d+:|changelog\b)", re.I | re.M)


@dataclass(frozen=True)
class PatchFile:
    """A format-patch file: its mbox line, unfolded headers, and body."""

    path: Path
    from_line: str
    headers: tuple[tuple[str, str], ...]
    body: str

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @property
    def message(self) -> str:
        """The commit message: the body above the first '---' line."""
        return self.body.split("\n---\n", 1)[0]


@dataclass(frozen=True)
class Recipients:
    to: tuple[str, ...]
    cc: tuple[str, ...]

    def addresses(self) -> set[str]:
        return {address(a) for a in (*self.to, *self.cc)}


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


def address(entry: str) -> str:
    return parseaddr(entry)[1].lower()


# --- reading patch files -------------------------------------------------------------------


def read_patch(path: Path) -> PatchFile:
    text = path.read_text()
    head, sep, body = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("From "):
        raise ForgeError(f"{path}: not a git format-patch file (no 'From <commit>' line and headers)")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            k, v = headers[-1]
            headers[-1] = (k, f"{v} {line.strip()}")
        elif ":" in line:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        else:
            raise ForgeError(f"{path}: malformed header line {line!r}")
    return PatchFile(path, lines[0], tuple(headers), body)


def read_folder(folder: Path) -> list[PatchFile]:
    files = stamps.patch_files(folder)
    if not files:
        raise ForgeError(f"{folder}: no patch files (run invoke build-patches first)")
    return [read_patch(f) for f in files]


# --- pre-flight checks ---------------------------------------------------------------------


def preflight(series: Series, folder: Path, patches: list[PatchFile]) -> list[str]:
    """b4-like checks of a version folder; every problem names the file."""
    problems = []
    if folder.name != f"v{series.version}":
        problems.append(f"{folder}: folder name does not match version {series.version} of the series file")
    n = len(series.patches)
    if len(patches) != n + 1 or not is_cover(patches[0].path):
        problems.append(f"{folder}: expected a cover letter and {n} patches ({series.where}.patches), "
                        f"found {len(patches)} files")
    for i, p in enumerate(patches):
        problems += _check_placeholders(p)
        problems += _check_name(p, series.version, i)
        problems += _check_subject(p, series, i, n)
        if i == 0:
            problems += _check_cover(p, series)
        else:
            problems += _check_signoff(p)
            problems += _check_changelog(p)
    return problems


def _check_placeholders(p: PatchFile) -> list[str]:
    text = p.path.read_text()
    return [f"{p.path}: leftover placeholder {ph!r}" for ph in (SUBJECT_PLACEHOLDER, BLURB_PLACEHOLDER)
            if ph in text]


def _check_name(p: PatchFile, version: int, i: int) -> list[str]:
    m = re.match(r"^(?:v(\d+)-)?(\d{4})-", p.path.name)
    if not m:
        return [f"{p.path}: file name is not of the form [vN-]NNNN-*.patch"]
    out = []
    named = int(m[1]) if m[1] else 1
    if named != version or m[1] == "1":
        want = f"v{version}-" if version > 1 else "no 'vN-' prefix"
        out.append(f"{p.path}: file name says v{named}, the series file says version {version} ({want})")
    if int(m[2]) != i:
        out.append(f"{p.path}: file name numbers it {int(m[2])}, it is message {i} of the folder")
    return out


def _check_subject(p: PatchFile, series: Series, i: int, n: int) -> list[str]:
    s = p.subject
    out = []
    if len(s) > SUBJECT_MAX:
        out.append(f"{p.path}: Subject is {len(s)} columns, more than {SUBJECT_MAX}: {s!r}")
    m = TAG_RE.match(s)
    if not m:
        return out + [f"{p.path}: Subject {s!r} has no '[{series.subject_prefix} i/n]' tag"]
    version = int(m["version"]) if m["version"] else 1
    if m["version"] == "1":
        out.append(f"{p.path}: Subject says 'v1'; version 1 is sent as '[{series.subject_prefix} i/n]'")
    if version != series.version:
        out.append(f"{p.path}: Subject says v{version}, the series file says version {series.version}")
    if m["prefix"] != series.subject_prefix:
        out.append(f"{p.path}: Subject prefix {m['prefix']!r} is not {series.subject_prefix!r}")
    if (int(m["i"]), int(m["n"])) != (i, n):
        out.append(f"{p.path}: Subject numbers {m['i']}/{m['n']}, expected {i}/{n}")
    return out


def _check_cover(p: PatchFile, series: Series) -> list[str]:
    if f"\nchange-id: {series.change_id}\n" not in f"\n{p.body}":
        return [f"{p.path}: no 'change-id: {series.change_id}' line ({series.where}.change_id)"]
    return []


def _check_signoff(p: PatchFile) -> list[str]:
    author = address(p.header("From") or "")
    sobs = [address(m) for m in re.findall(r"^Signed-off-by: (.+)$", p.message, re.M)]
    if not sobs:
        return [f"{p.path}: no Signed-off-by above the '---'"]
    if author not in sobs:
        return [f"{p.path}: no Signed-off-by from the author <{author}>"]
    return []


def _check_changelog(p: PatchFile) -> list[str]:
    m = CHANGELOG_RE.search(p.message)
    if m:
        return [f"{p.path}: version changelog {m.group(0).strip()!r} above the '---' "
                "(put it in the YAML 'changes', it goes below the '---')"]
    return []


# --- recipients ------------------------------------------------------------------------------


def touched_paths(patches: Iterable[PatchFile]) -> set[str]:
    out: set[str] = set()
    for p in patches:
        for a, b in re.findall(r"^diff --git a/(\S+) b/(\S+)$", p.body, re.M):
            out |= {a, b}
    return out


def maintainers_tree(repo: git.Repo, tip: str, paths: set[str], dest: Path) -> Path:
    """What get_maintainer.pl looks at in the tip's tree, written to `dest`: the top-level files
    and directories, MAINTAINERS, .mailmap, the script itself, the patched files, and every
    directory that an F:/X: line names without a trailing '/' (the script tests those with -d)."""
    read = kernel.reader(repo, tip)
    maintainers = (read("MAINTAINERS") or b"").decode(errors="replace")
    named = set(re.findall(r"^[FX]:\s*(\S+)\s*$", maintainers, re.M))
    listing = kernel.git_cmd(repo, "ls-tree", "-r", "-d", "--name-only", "-z", tip)
    for d in filter(None, listing.split("\0")):
        if "/" not in d or d in named:
            (dest / d).mkdir(parents=True, exist_ok=True)
    for path in (*TREE_FILES, *sorted(paths)):
        data = read(path)
        if data is not None:
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            (dest / path).write_bytes(data)
    if not (dest / GET_MAINTAINER).is_file():
        raise ForgeError(f"the kernel tree at {tip[:12]} has no {GET_MAINTAINER}")
    return dest


def get_maintainer(tree: Path, patch: PatchFile, options: tuple[str, ...]) -> list[str]:
    proc = run(["perl", GET_MAINTAINER, *GM_COMMON, *options], cwd=tree, input=patch.path.read_bytes(),
               what=f"{GET_MAINTAINER} on {patch.path.name}")
    return [line.strip() for line in proc.stdout.decode().splitlines() if line.strip()]


@dataclass
class Maintainers:
    """get_maintainer.pl on the tree of `tip`. Results are cached by the tree, the patch, the
    options and the user's ~/.get_maintainer.conf; the tree is only written on a cache miss."""

    repo: git.Repo
    tip: str
    paths: set[str]
    workdir: Path
    tree: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, patch: PatchFile, options: tuple[str, ...]) -> list[str]:
        cached = self._cache_file(patch, options)
        if cached.is_file():
            return cached.read_text().splitlines()
        with self.lock:
            if self.tree is None:
                self.tree = maintainers_tree(self.repo, self.tip, self.paths, self.workdir)
        out = get_maintainer(self.tree, patch, options)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        tmp.write_text("".join(f"{line}\n" for line in out))
        tmp.replace(cached)
        return out

    def _cache_file(self, patch: PatchFile, options: tuple[str, ...]) -> Path:
        h = hashlib.sha256()
        conf = Path.home() / ".get_maintainer.conf"
        for part in (kernel.tree_of(self.repo, self.tip), " ".join((*GM_COMMON, *options)),
                     conf.read_text() if conf.is_file() else ""):
            h.update(part.encode() + b"\0")
        h.update(patch.path.read_bytes())
        return kernel.cache_dir() / "get_maintainer" / f"{h.hexdigest()}.txt"


def merge(to: Iterable[str], cc: Iterable[str], exclude: Iterable[str]) -> Recipients:
    """Deduplicate by address, first spelling wins, To before Cc; drop `exclude`."""
    seen = {address(a) for a in exclude}
    out: tuple[list[str], list[str]] = ([], [])
    for bucket, entries in zip(out, (to, cc), strict=True):
        for e in entries:
            a = address(e)
            if a and a not in seen:
                seen.add(a)
                bucket.append(e)
    return Recipients(tuple(out[0]), tuple(out[1]))


def patch_recipients(sf: SeriesFile, maintainers: Maintainers, patch: PatchFile, sender: str) -> Recipients:
    to = [*sf.to, *maintainers(patch, GM_TO)]
    cc = [*sf.cc, *maintainers(patch, GM_CC)]
    return merge(to, cc, [sender])


def cover_recipients(sf: SeriesFile, each: list[Recipients], sender: str) -> Recipients:
    to = [*sf.to, *(a for r in each for a in r.to)]
    cc = [*sf.cc, *(a for r in each for a in r.cc)]
    return merge(to, cc, [sender])


# --- the plan ------------------------------------------------------------------------------------


def message_id(series: Series, version: int, number: int, key: str, domain: str) -> str:
    return f"<{series.change_id}-v{version}-{number}-{key[:12]}@{domain}>"


def previous_cover_id(series: Series, patches_root: Path, domain: str) -> str:
    prev = patches_root / series.name / f"v{series.version - 1}"
    if not prev.is_dir():
        raise ForgeError(f"{series.where}.in_reply_to_previous: {prev} not found; the v{series.version - 1} "
                         "cover letter's Message-ID is derived from its files")
    return message_id(series, series.version - 1, 0, stamps.folder_key(prev), domain)


def series_tip(repo: git.Repo, series: Series) -> str:
    try:
        return kernel.git_cmd(repo, "rev-parse", "--verify", "-q", f"refs/heads/{branch_name(series)}")
    except ForgeError:
        raise ForgeError(f"branch {branch_name(series)} not in {repo.git_dir}: run invoke build-patches "
                         f"for {series.name} v{series.version} first") from None


def checked_patches(series: Series, patches_root: Path) -> list[PatchFile]:
    """The version folder's files, after the pre-flight checks (ForgeError listing all problems)."""
    folder = series_dir(patches_root, series)
    if not folder.is_dir():
        raise ForgeError(f"{folder} not found: run invoke build-patches ({series.where}.version is "
                         f"{series.version})")
    patches = read_folder(folder)
    problems = preflight(series, folder, patches)
    if problems:
        raise ForgeError(f"pre-flight checks of {folder} failed:\n" + "\n".join(problems))
    return patches


def make_plan(sf: SeriesFile, series: Series, patches_root: Path, sender: str) -> Plan:
    """Check the version folder, compute every message's recipients, IDs and threading."""
    folder = series_dir(patches_root, series)
    patches = checked_patches(series, patches_root)
    repo = kernel.work_repo()
    tip = series_tip(repo, series)
    with tempfile.TemporaryDirectory(prefix="zcf-maint-", dir=kernel.cache_dir()) as tmp:
        maintainers = Maintainers(repo, tip, touched_paths(patches[1:]), Path(tmp))
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            each = list(pool.map(lambda p: patch_recipients(sf, maintainers, p, sender), patches[1:]))
    key = stamps.folder_key(folder)
    domain = sf.author_email.rpartition("@")[2]
    ids = [message_id(series, series.version, i, key, domain) for i in range(len(patches))]
    first_reply = previous_cover_id(series, patches_root, domain) if series.in_reply_to_previous else None
    messages = [Message(patches[0], 0, ids[0], first_reply, cover_recipients(sf, each, sender))]
    messages += [Message(p, i, ids[i], ids[0], each[i - 1]) for i, p in enumerate(patches[1:], start=1)]
    for m in messages:
        if not m.recipients.to:
            raise ForgeError(f"{m.patch.path}: nobody to send it to (no 'to:' in {sf.path}, "
                             "no maintainer from get_maintainer.pl)")
    return Plan(series.name, series.version, folder, key, sender, tuple(messages))


def unchecked(folder: Path) -> list[str]:
    """The required checks that have not passed for exactly the folder's files."""
    if not folder.is_dir():
        raise ForgeError(f"{folder} not found: run invoke build-patches")
    return stamps.load(folder).missing()


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


def send(prepared: Prepared, smtp: Smtp, cwd: Path) -> str:
    """Send for real; return git send-email's log (checked against the plan)."""
    plan = prepared.plan
    log.info("sending %s v%d: %d messages via %s", plan.series, plan.version, len(prepared.files),
             smtp.describe())
    sent = _send_email(plan, prepared.files, smtp, cwd, dry_run=False)
    problems = verify(plan, parse_log(sent))
    if problems:
        raise ForgeError("git send-email sent something else than planned:\n" + "\n".join(problems))
    return sent


def _send_email(plan: Plan, files: list[Path], smtp: Smtp, cwd: Path, dry_run: bool) -> str:
    argv = send_email_argv(plan, files, smtp, dry_run)
    what = f"git send-email{' --dry-run' if dry_run else ''} of {plan.series} v{plan.version}"
    proc = run(argv, cwd=cwd, env=smtp.env(), input=b"", what=what)
    return proc.stdout.decode(errors="replace")


def describe(plan: Plan, smtp: Smtp, missing: list[str]) -> str:
    """The plan as shown before anything is sent (never the password)."""
    checks = "all passed" if not missing else f"NOT passed: {', '.join(missing)} (sending needs --force)"
    lines = [f"{plan.series} v{plan.version}: {len(plan.messages)} messages from {plan.sender} "
             f"via {smtp.describe()}", f"checks for these files ({plan.folder}): {checks}"]
    for m in plan.messages:
        lines += [f"  {m.patch.subject}", f"    Message-Id:  {m.message_id}"]
        if m.in_reply_to:
            lines.append(f"    In-Reply-To: {m.in_reply_to}")
        lines.append(f"    To: {', '.join(m.recipients.to)}")
        if m.recipients.cc:
            lines.append(f"    Cc: {', '.join(m.recipients.cc)}")
    return "\n".join(lines)
