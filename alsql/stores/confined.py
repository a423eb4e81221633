"""Opening a local file confined: a regular file, reached through no symbolic link, never blocking.

The primitive every local read of a stored uri goes through when the file may have changed
since it was listed (ingest's probes, the media decoders of the loaders and of the web app):

- ``open_regular(path)``: the path must be absolute and reach the file through no symbolic
  link (ingest records link targets, so a link there now was swapped in since); it is
  opened ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO never blocks the caller) and checked by
  ``fstat`` on the descriptor (``S_ISREG``), then given back as a binary file object with
  blocking reads. Whatever happens to the name afterwards, reads come from the file that
  was checked.
- ``NotRegular`` (an ``OSError``): the refusal, with ``LINK_OUTSIDE`` or ``NOT_REGULAR`` as
  its message.
- ``reopenable(fh)``: a path that opens the very file behind ``fh`` again (``/proc/self/fd/N``
  on Linux), for a native reader (FFmpeg, libsndfile) that reads faster from a path than
  through Python; None where the platform has none.

A base module (as ``alsql.stores``): it imports no layer of ours, so the media decoders
and the loaders both use it (``alsql.loaders.confine`` re-exports it).
"""

from __future__ import annotations

import io
import os
import stat

__all__ = ["NotRegular", "LINK_OUTSIDE", "NOT_REGULAR", "OPEN_FLAGS", "open_regular", "reopenable"]

OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
LINK_OUTSIDE = "refused: a symbolic link to something outside the ingested folder (or to nothing)"
NOT_REGULAR = "refused: not a regular file (a FIFO, device or socket)"
_LINK_ERRNOS = (getattr(os, "ELOOP", -1), getattr(os, "EMLINK", -1))


class NotRegular(OSError):
    """A path that is not a regular file (or became a link after listing): never read."""


def open_regular(path: str | os.PathLike) -> io.BufferedReader:
    """A binary file object (blocking reads) of the regular file at ``path``, checked now.

    The path must be absolute and reach the file through no symbolic link; it is opened
    ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO never blocks) and checked by ``fstat`` on the
    descriptor. Raises ``NotRegular`` (``LINK_OUTSIDE`` / ``NOT_REGULAR``) or
    ``FileNotFoundError``. The caller closes the file (it is a context manager).
    """
    name = os.fspath(path)
    if not os.path.isabs(name) or os.path.realpath(name) != os.path.normpath(name):
        raise NotRegular(LINK_OUTSIDE)
    try:
        fd = os.open(name, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise NotRegular(LINK_OUTSIDE) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(NOT_REGULAR)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def reopenable(fh: io.IOBase) -> str | None:
    """``/proc/self/fd/N`` for the open file ``fh`` where the platform has it, else None.

    Opening that path opens the file the descriptor holds (the inode checked when it was
    opened), not whatever its name points to now; it stays valid while ``fh`` is open.
    """
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    path = f"/proc/self/fd/{fd}"
    try:
        same = os.path.samestat(os.stat(path), os.fstat(fd))
    except OSError:
        return None
    return path if same else None
