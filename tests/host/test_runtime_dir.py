"""The private runtime directory: made private, refused when others could reach it, swap
it, or point it elsewhere, and files in it appear whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from asgi_supervisor._host.runtime_dir import (
    RuntimeDirError,
    check_ancestors,
    open_private,
    publish,
)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
OTHER = 65534  # nobody


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A path for the runtime directory, not yet created."""
    return tmp_path / "run"


def test_directory_is_created_private(run_dir: Path) -> None:
    """A missing directory is created with mode 0700, whatever the umask."""
    old = os.umask(0)
    try:
        os.close(open_private(run_dir, create=True))
    finally:
        os.umask(old)
    assert mode(run_dir) == 0o700


@pytest.mark.parametrize("bits", [0o750, 0o705, 0o777])
def test_directory_others_can_reach_is_refused(run_dir: Path, bits: int) -> None:
    """A directory with any group or other bit is refused, naming its mode and the fix."""
    run_dir.mkdir()
    run_dir.chmod(bits)
    with pytest.raises(RuntimeDirError, match=rf"has mode {bits:04o}.*chmod 700"):
        open_private(run_dir, create=True)


def test_symlink_and_file_are_refused_saying_which(run_dir: Path, tmp_path: Path) -> None:
    """A symlink (even to a private directory) is refused as a symlink, a plain file as not
    a directory: the message names the cause it has."""
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    run_dir.symlink_to(target)
    with pytest.raises(RuntimeDirError, match=r"cannot be opened: it is a symlink \(owned by"):
        open_private(run_dir, create=True)
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(RuntimeDirError, match="cannot be opened: it is not a directory"):
        open_private(plain, create=False)


@as_root
def test_directory_of_another_user_is_refused(run_dir: Path) -> None:
    """A directory owned by another user is refused even with mode 0700."""
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, OTHER, -1)
    with pytest.raises(RuntimeDirError, match=f"belongs to uid {OTHER}.*another user made it"):
        open_private(run_dir, create=True)


def test_missing_directory_without_create(run_dir: Path) -> None:
    """Looking (the command) never creates the directory."""
    with pytest.raises(FileNotFoundError):
        open_private(run_dir, create=False)
    assert not run_dir.exists()


def test_a_shared_parent_needs_the_sticky_bit(tmp_path: Path) -> None:
    """A parent every user may write to is refused without the sticky bit (anyone could
    rename the directory away and put another in its place) and accepted with it, as /tmp
    is; the message names the parent, its mode and the fix."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(RuntimeDirError, match=rf"{shared}'.* has mode 0777.*chmod \+t"):
        open_private(shared / "run", create=True)
    assert not (shared / "run").exists()
    shared.chmod(0o1777)
    os.close(open_private(shared / "run", create=True))
    check_ancestors(Path("/tmp"))


@as_root
def test_a_parent_or_link_of_another_user_is_refused(tmp_path: Path) -> None:
    """A directory above that another user owns, or a symlink on the way that another user
    owns (however safe where it points now), is refused; root's and ours are followed and
    checked where they lead."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER, -1)
    with pytest.raises(RuntimeDirError, match=rf"{theirs}'.* is a directory that belongs to"):
        open_private(theirs / "run", create=True)
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o755)
    link = tmp_path / "link"
    link.symlink_to(ours)
    os.lchown(link, OTHER, -1)
    with pytest.raises(RuntimeDirError, match=rf"{link}'.* is a symlink that belongs to uid"):
        open_private(link / "run", create=True)
    os.lchown(link, 0, -1)
    os.close(open_private(link / "run", create=True))
    relative = tmp_path / "relative"
    relative.symlink_to("theirs")  # ours, but leading to theirs
    with pytest.raises(RuntimeDirError, match=rf"{theirs}'.* is a directory that belongs to"):
        check_ancestors(relative / "run")


def test_publish_appears_whole_and_replaces_only_when_asked(run_dir: Path) -> None:
    """A published file is whole and private; a second publish of the name is refused
    unless it replaces, and no temporary file is left either way."""
    fd = open_private(run_dir, create=True)
    try:
        publish(fd, "f", b"one")
        with pytest.raises(FileExistsError):
            publish(fd, "f", b"two")
        publish(fd, "f", b"three", replace=True)
        assert (run_dir / "f").read_bytes() == b"three"
        assert mode(run_dir / "f") == 0o600
        assert os.listdir(fd) == ["f"]
    finally:
        os.close(fd)
