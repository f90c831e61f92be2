"""HDF5 files that appear at their path only once complete: written beside it, then renamed."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any, Callable, Optional

import h5py

log = logging.getLogger(__name__)


class AtomicHDF5Writer:
    """Base for writers whose file is built under a temporary name and moved onto ``path``.

    ``close()`` (leaving the ``with`` block normally) syncs the file to disk and
    renames it onto ``path``; ``abort()`` (or an exception in the block) removes it,
    leaving ``path`` as it was.
    """

    def __init__(self, path: str | os.PathLike, layout: Callable[[h5py.File], None]) -> None:
        self.path = os.fspath(path)
        handle, self._temporary = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp",
                                                   dir=os.path.dirname(self.path) or ".")
        os.close(handle)
        self._file: Optional[h5py.File] = None
        try:
            self._file = h5py.File(self._temporary, "w")
            layout(self._file)
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> None:
        """Finish the file and move it onto ``path``. Closing twice does nothing."""
        if self._file is None:
            return
        try:
            self._file.close()
            self._file = None
            _fsync(self._temporary)
            os.replace(self._temporary, self.path)
        except BaseException:
            self.abort()
            raise
        log.debug("wrote %s", self.path)

    def abort(self) -> None:
        """Drop everything written; ``path`` is left as it was."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if os.path.exists(self._temporary):
            os.remove(self._temporary)


def _fsync(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
