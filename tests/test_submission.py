"""Reading submissions (autograder/submission.py): regular files only, never a link, capped."""

from __future__ import annotations

import os

from autograder import submission
from autograder.limits import Limits

LIMITS = Limits(notebook_bytes=1000, extra_bytes=100)


def test_regular_files_are_read(tmp_path):
    (tmp_path / "hw.ipynb").write_bytes(b"{}")
    (tmp_path / "timestamp.txt").write_text("2026-01-15 12:00:00 UTC\n")
    (tmp_path / "submission_secret.txt").write_text("abc\n")
    (tmp_path / "data.csv").write_text("1,2\n")
    sub = submission.read(tmp_path, "hw.ipynb", LIMITS)
    assert sub.notebook == b"{}"
    assert sub.timestamp == "2026-01-15 12:00:00 UTC"
    assert sub.secret == "abc"
    assert sub.extra == {"data.csv": b"1,2\n"}
    assert sub.skipped == [] and sub.notebook_problem is None


def test_links_devices_and_folders_are_never_read(tmp_path):
    target = tmp_path / "elsewhere.ipynb"
    target.write_bytes(b'{"secret": 1}')
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "hw.ipynb").symlink_to(target)
    (folder / "timestamp.txt").symlink_to(target)
    os.mkfifo(folder / "pipe")
    (folder / "inner").mkdir()
    sub = submission.read(folder, "hw.ipynb", LIMITS)
    assert sub.notebook is None and "symbolic link" in sub.notebook_problem
    assert sub.timestamp is None
    assert any("timestamp.txt" in s and "link" in s for s in sub.skipped)
    assert any("pipe" in s and "regular" in s for s in sub.skipped)
    assert any("inner/" in s for s in sub.skipped)
    assert '"secret": 1' not in repr(sub)


def test_a_linked_folder_is_not_entered(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "hw.ipynb").write_bytes(b"{}")
    (tmp_path / "link").symlink_to(real)
    sub = submission.read(tmp_path / "link", "hw.ipynb", LIMITS)
    assert sub.notebook is None and "link" in sub.notebook_problem


def test_sizes_are_capped(tmp_path):
    (tmp_path / "hw.ipynb").write_bytes(b"x" * 1001)
    (tmp_path / "a.bin").write_bytes(b"x" * 60)
    (tmp_path / "b.bin").write_bytes(b"x" * 60)
    sub = submission.read(tmp_path, "hw.ipynb", LIMITS)
    assert sub.notebook is None and "1001 bytes" in sub.notebook_problem
    assert list(sub.extra) == ["a.bin"]
    assert any("b.bin" in s and "limit" in s for s in sub.skipped)


def test_missing_folder_and_notebook(tmp_path):
    assert submission.read(tmp_path / "nope", "hw.ipynb", LIMITS).notebook_problem == "missing"
    (tmp_path / "other.txt").write_text("forgot to save")
    sub = submission.read(tmp_path, "hw.ipynb", LIMITS)
    assert sub.notebook is None and sub.notebook_problem == "missing"
