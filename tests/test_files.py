"""atomic_write: all or nothing, with the permissions a plain write would give; a failed write says which file."""

from __future__ import annotations

import os
import stat

import pytest

from density_nb.files import WriteError, atomic_write, write_bytes, write_text


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_gets_the_permissions_of_a_plain_write_not_0600(tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    out = atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("x"))
    assert out.read_text() == "x"
    assert mode(out) == mode(tmp_path / "plain.txt")  # 0644 under the usual umask 022
    assert not list(tmp_path.glob(".*.tmp"))


def test_replacing_keeps_the_old_files_permissions(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write(path, lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "new" and mode(path) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_os_error_is_a_write_error_naming_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(WriteError, match=r"a-file/out\.txt.*nothing partial was left \(no file was created\)") as err:
        write_text(blocker / "out.txt", "x")  # its folder cannot be made
    assert isinstance(err.value.__cause__, OSError)
    folder = tmp_path / "a-folder"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(WriteError, match=r"a-folder.*the file there is unchanged"):
        write_bytes(folder, b"x")  # the rename fails: a folder is there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]  # no temp file
    assert (folder / "inside").is_dir()


def test_text_and_bytes(tmp_path):
    assert write_text(tmp_path / "a.txt", "é").read_text(encoding="utf-8") == "é"
    assert write_bytes(tmp_path / "b.bin", b"\0\1").read_bytes() == b"\0\1"
