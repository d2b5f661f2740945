"""gitops, the one way the tool drives git: errors, reading, streaming, plain vs user config."""

from __future__ import annotations

from pathlib import Path

import git as gitpython
import pytest

from zcache_forge import gitops
from zcache_forge.errors import ForgeError

from .conftest import git


@pytest.fixture
def repo(tmp_path: Path) -> gitpython.Repo:
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q")
    (work / "dir").mkdir()
    (work / "dir" / "a.txt").write_bytes(b"alpha\n")
    (work / "b.bin").write_bytes(bytes(range(256)))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "one")
    return gitpython.Repo(work)


def test_errors_name_what_failed_and_quote_git(repo: gitpython.Repo) -> None:
    with pytest.raises(ForgeError) as exc:
        gitops.git(repo, "rev-parse", "--verify", "no-such-ref", what="finding the base")
    text = str(exc.value)
    assert text.startswith("finding the base failed (exit 128): git --git-dir ")
    assert "fatal: Needed a single revision" in text
    with pytest.raises(ForgeError, match=r"^git cat-file failed \(exit 128\)"):
        gitops.git(repo, "cat-file", "-p", "no-such-ref")


def test_input_and_output(repo: gitpython.Repo) -> None:
    blob = gitops.git(repo, "hash-object", "-w", "--stdin", input=b"data\n")
    assert gitops.git_bytes(repo, "cat-file", "blob", blob) == b"data\n"


def test_reader_reads_files_and_knows_what_is_missing(repo: gitpython.Repo) -> None:
    read = gitops.reader(repo, "HEAD")
    assert read("dir/a.txt") == b"alpha\n"
    assert read("b.bin") == bytes(range(256))
    assert read("nope.txt") is None
    assert read("dir") is None  # a directory is not a file
    assert read("dir/a.txt") == b"alpha\n"  # the shared cat-file process is still in step


def test_stream_calls_back_per_line_and_raises_with_what(repo: gitpython.Repo) -> None:
    lines: list[str] = []
    rc, out, _ = gitops.git_stream(repo, "ls-files", on_line=lines.append)
    assert rc == 0 and lines == ["b.bin", "dir/a.txt"] and out == "b.bin\ndir/a.txt\n"
    with pytest.raises(ForgeError, match="^listing failed"):
        gitops.git_stream(repo, "ls-files", "--error-unmatch", "nope", on_line=lines.append, what="listing")
    rc, _, err = gitops.git_stream(repo, "ls-files", "--error-unmatch", "nope", on_line=lines.append,
                                   check=False)
    assert rc != 0 and "nope" in err


def test_plumbing_ignores_the_users_config_user_commands_see_it(repo: gitpython.Repo, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gitconfig"
    config.write_text("[sendemail]\n\tsmtpServer = smtp.example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    cwd = Path(str(repo.working_tree_dir))
    assert gitops.git(cwd, "config", "--get", "sendemail.smtpServer", user_config=True) == "smtp.example.org"
    with pytest.raises(ForgeError):
        gitops.git(cwd, "config", "--get", "sendemail.smtpServer")
