"""Open a login link in the user's browser without putting it on any command line.

`webbrowser` starts the browser with the URL among its arguments, and every user of the host
can read a process's arguments (``/proc/<pid>/cmdline``): another user watching for it could
take a login code and use it before the browser does. So, as Jupyter does with its redirect
file, the link goes in a file only this user can read (mode 0600, in a fresh directory of
mode 0700 under ``$TMPDIR``), and the browser is given the file's path, which tells nothing.
The file moves on to the link by itself.

The file is removed once the browser has read it (its access time passes its write time),
or once the link has expired, whichever comes first (on a file system mounted ``noatime``,
the expiry); every wait is bounded by it. A browser that cannot read files there (a snap's
private ``/tmp``) shows an error: the command printed the link, which can be pasted instead.
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import tempfile
import time
import webbrowser
from pathlib import Path

__all__ = ["open_link"]

_POLL_PERIOD = 0.1
_SECOND = 1_000_000_000
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="0;url={link}">
<title>asgi-supervisor</title></head>
<body><p><a href="{link}">Open the tasks page</a> (this link works once).</p></body></html>
"""


def open_link(link: str, *, expiry: float) -> bool:
    """Open *link* in the browser through a private redirect file; False if no browser runs.

    Returns once the browser has read the file or at *expiry* (Unix seconds), whichever is
    first, having removed the file. Interrupting the wait (Ctrl-C) removes it too.
    """
    directory = Path(tempfile.mkdtemp(prefix="asgi-supervisor-open-"))  # mode 0700
    try:
        path = directory / "login.html"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(_PAGE.format(link=html.escape(link, quote=True)))
        # File times tick coarsely (a few milliseconds): dated back, the file's write is
        # older than any read to come, and its access older still, so the first read shows.
        written = time.time_ns()
        os.utime(path, ns=(written - 2 * _SECOND, written - _SECOND))
        if not webbrowser.open(path.as_uri()):
            return False
        with contextlib.suppress(KeyboardInterrupt):
            wait_read(path, expiry=expiry)
        return True
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def wait_read(path: Path, *, expiry: float) -> bool:
    """Wait until *path* has been read since it was written, or until *expiry* (Unix
    seconds); True if it was read."""
    while True:
        info = os.stat(path)
        if info.st_atime_ns > info.st_mtime_ns:
            return True
        remaining = expiry - time.time()
        if remaining <= 0:
            return False
        time.sleep(min(_POLL_PERIOD, remaining))
