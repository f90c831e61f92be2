"""Files that appear at their path only once complete: written under a temporary name beside it, then renamed.

A writer killed half-way (SIGKILL, power loss) leaves at most its temporary file,
``.NAME.XXXXXXXX.tmp``, never a half-written ``NAME``; the next successful write
of ``NAME`` removes such leftovers. A full disk, or a file-size limit, raises
``OutOfSpace`` naming the file and removes the temporary. One writer per path at a time.

Example:
    >>> write_atomically("network.ckpt", content)     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import tempfile
from typing import Iterator

log = logging.getLogger(__name__)

_SUFFIX = ".tmp"
_NO_SPACE = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class OutOfSpace(OSError):
    """The disk, a quota or the process's file-size limit ran out while writing a file.

    Args:
        path: the file being written.
        cause: the operating system's error.
        outcome: what this means for the caller's data, appended to the message.
    """

    def __init__(self, path: str, cause: OSError, outcome: str = "") -> None:
        super().__init__(f"disk full or file too large while writing {path} ({cause.strerror or cause})"
                         + (f"; {outcome}" if outcome else ""))
        self.errno = cause.errno
        self.path = path
        self.cause = cause


def _prefix(path: str) -> str:
    return f".{os.path.basename(path)}."


def temporary_beside(path: str | os.PathLike) -> str:
    """A new, empty temporary file in ``path``'s directory (so the final rename stays on one file system)."""
    path = os.fspath(path)
    handle, temporary = tempfile.mkstemp(prefix=_prefix(path), suffix=_SUFFIX,
                                         dir=os.path.dirname(path) or ".")
    os.close(handle)
    return temporary


def leftover_temporaries(path: str | os.PathLike) -> list[str]:
    """Temporary files of earlier writes of ``path`` that never completed."""
    path = os.fspath(path)
    pattern = os.path.join(glob.escape(os.path.dirname(path) or "."), glob.escape(_prefix(path)) + "*" + _SUFFIX)
    return sorted(glob.glob(pattern))


def move_into_place(temporary: str, path: str | os.PathLike) -> None:
    """Sync ``temporary`` to disk, rename it onto ``path`` and sync the directory; then remove the
    temporaries that interrupted writes of ``path`` left behind."""
    path = os.fspath(path)
    _fsync(temporary, os.O_RDONLY)
    os.replace(temporary, path)
    with contextlib.suppress(OSError):  # not every file system lets a directory be synced
        _fsync(os.path.dirname(path) or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    for leftover in leftover_temporaries(path):
        with contextlib.suppress(OSError):
            os.remove(leftover)
            log.info("removed %s, left by an interrupted write of %s", leftover, path)


def discard(temporary: str) -> None:
    """Remove ``temporary`` if it is still there."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(temporary)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path to write ``path``'s content to; moved onto ``path`` when the block ends
    normally, removed when it raises (``path`` is then left as it was)."""
    temporary = temporary_beside(path)
    try:
        yield temporary
        move_into_place(temporary, path)
    except BaseException:
        discard(temporary)
        raise


def write_atomically(path: str | os.PathLike, content: bytes | memoryview) -> None:
    """Write ``content`` to ``path`` through a temporary file (see the module docstring).

    Raises:
        OutOfSpace: the disk or a size limit ran out; ``path`` is left as it was.
    """
    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as stream:
            stream.write(content)
    except OSError as err:
        if err.errno in _NO_SPACE:
            raise OutOfSpace(os.fspath(path), err, f"{os.fspath(path)} is left as it was") from err
        raise


def _fsync(path: str, flags: int) -> None:
    handle = os.open(path, flags)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
