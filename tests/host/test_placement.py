"""Where the runtime directory goes: the named one as named, else a place no other user can
make first or swap, where the siblings already are."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from asgi_supervisor._host.listener_folder import folder_name
from asgi_supervisor._host.placement import candidates, locate
from asgi_supervisor._host.runtime_dir import remove_if_empty

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
OTHER = 65534
UID = os.geteuid()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """A shared temporary directory, as /tmp is (mode 1777)."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared


def test_the_setting_wins_then_the_variable_and_named_ones_stay(tmp_path: Path) -> None:
    """The ``runtime_dir`` setting wins over the variable; a directory named by either is
    used as named and never removed."""
    environ = {"ASGI_SUPERVISOR_RUNTIME_DIR": "/x/y", "XDG_RUNTIME_DIR": str(tmp_path)}
    assert locate("/set/in/code", environ).path == Path("/set/in/code")
    assert locate(" /p ", environ).path == Path("/p")
    assert not locate("/set/in/code", environ).removable
    assert (locate(None, environ).path, locate(None, environ).removable) == (Path("/x/y"), False)
    assert candidates(environ) == [Path("/x/y")]


def test_xdg_runtime_dir_first_when_it_is_ours_alone(tmp_path: Path, tmp: Path) -> None:
    """``$XDG_RUNTIME_DIR`` (ours, mode 0700) holds the default directory, made there; the
    command looks there first, then in the temporary directories."""
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    default = locate(None, {"XDG_RUNTIME_DIR": str(xdg), "TMPDIR": str(tmp)})
    assert (default.path, default.removable, default.skipped) == (xdg / "asgi-supervisor", True, ())
    assert default.path.is_dir()
    found = candidates({"XDG_RUNTIME_DIR": str(xdg), "TMPDIR": str(tmp)})
    assert found[0] == xdg / "asgi-supervisor"
    assert found[-2:] == [tmp / f"asgi-supervisor-{UID}", Path(f"/tmp/asgi-supervisor-{UID}")]


def test_an_xdg_runtime_dir_others_may_enter_is_skipped_saying_why(
    tmp_path: Path, tmp: Path
) -> None:
    """An ``$XDG_RUNTIME_DIR`` that is not ours alone is skipped, and the reason kept for
    the log; the temporary directory is used instead."""
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o755)
    xdg.chmod(0o755)
    default = locate(None, {"XDG_RUNTIME_DIR": str(xdg), "TMPDIR": str(tmp)})
    assert default.path == tmp / f"asgi-supervisor-{UID}"
    assert len(default.skipped) == 1
    assert "not to this user alone, so it is not used" in default.skipped[0]


def test_a_tmpdir_without_the_sticky_bit_is_skipped(tmp_path: Path) -> None:
    """A ``TMPDIR`` every user may write to, without the sticky bit, is skipped (another
    user could swap our directory there); /tmp is used instead."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    usual = Path(f"/tmp/asgi-supervisor-{UID}")
    made = not usual.exists()
    default = locate(None, {"TMPDIR": str(shared)})
    try:
        assert default.path == usual
        assert any("has mode 0777" in reason for reason in default.skipped)
        assert list(shared.iterdir()) == []
    finally:
        if made:  # as the last member leaving would: only if nobody else is there
            remove_if_empty(usual)


@as_root
def test_an_xdg_runtime_dir_that_is_another_users_symlink_is_skipped(
    tmp_path: Path, tmp: Path
) -> None:
    """A symlink of another user as ``$XDG_RUNTIME_DIR`` is skipped, even pointing at a
    directory of ours: its owner could point it elsewhere at any time."""
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    link = tmp_path / "xdg"
    link.symlink_to(ours)
    os.lchown(link, OTHER, -1)
    default = locate(None, {"XDG_RUNTIME_DIR": str(link), "TMPDIR": str(tmp)})
    assert default.path == tmp / f"asgi-supervisor-{UID}"
    assert any("is a symlink that belongs to uid 65534" in r for r in default.skipped)
    assert list(ours.iterdir()) == []


@as_root
@pytest.mark.parametrize("taken_as", ["directory", "symlink"])
def test_a_name_another_user_made_first_moves_us_to_a_random_one(tmp: Path, taken_as: str) -> None:
    """Another user made ``asgi-supervisor-<uid>`` first (a private directory of theirs, or
    a symlink): the directory goes under a random name instead, the reason is kept for the
    log, every later look finds the same one, and the command lists it."""
    taken = tmp / f"asgi-supervisor-{UID}"
    if taken_as == "directory":
        taken.mkdir(mode=0o700)
        os.chown(taken, OTHER, -1)
    else:
        taken.symlink_to(tmp)
        os.lchown(taken, OTHER, -1)
    environ = {"TMPDIR": str(tmp)}
    first = locate(None, environ)
    assert first.path.parent == tmp
    assert first.path.name.startswith(f"asgi-supervisor-{UID}.")
    assert len(first.path.name) == len(taken.name) + 17
    assert any(str(taken) in reason and "Using" in reason for reason in first.skipped)
    assert locate(None, environ).path == first.path
    assert first.path in candidates(environ)


def test_a_place_where_siblings_are_wins(tmp_path: Path, tmp: Path) -> None:
    """A worker that starts once ``$XDG_RUNTIME_DIR`` exists still joins its siblings in
    the temporary directory, where they are; with no live sibling, the order decides."""
    siblings = tmp / f"asgi-supervisor-{UID}"
    siblings.mkdir(mode=0o700)
    endpoint = ("127.0.0.1", 8123)
    folder = siblings / folder_name(endpoint)
    folder.mkdir(mode=0o700)
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    environ = {"XDG_RUNTIME_DIR": str(xdg), "TMPDIR": str(tmp)}
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as member:
            member.bind(f"/proc/self/fd/{fd}/41.sock")  # short, whatever the path's length
            assert locate(None, environ, [endpoint]).path == siblings
    finally:
        os.close(fd)
    assert locate(None, environ, [endpoint]).path == xdg / "asgi-supervisor"
