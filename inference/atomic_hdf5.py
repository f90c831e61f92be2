"""HDF5 files that appear at their path only once complete: built in memory, then written and renamed.

The HDF5 library does not survive a failed write: once a write to a file has
failed (a full disk, a file-size limit), closing or even freeing that file
crashes the process. So the library is never given a disk to fail on: the file
is assembled in memory (HDF5's ``core`` driver without a backing store) and its
image is written by Python through ``inference.atomic_file``, where a full disk
is an ordinary ``OutOfSpace`` error. Memory use is the size of the file; write
big datasets as several files (``ppx prior --shard-size``).
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any, Callable, Optional

import h5py

from inference.atomic_file import write_atomically

log = logging.getLogger(__name__)


class AtomicHDF5Writer:
    """Base for writers whose file is built in memory and moved onto ``path`` complete.

    ``close()`` (leaving the ``with`` block normally) writes the file beside
    ``path`` and renames it onto ``path``; ``abort()`` (or an exception in the
    block) drops it. Either way ``path`` is never left half-written.

    Raises:
        OutOfSpace: from ``close()``, when the disk or a file-size limit ran out; ``path`` is
            left as it was.
    """

    def __init__(self, path: str | os.PathLike, layout: Callable[[h5py.File], None]) -> None:
        self.path = os.fspath(path)
        # HDF5 takes two in-memory files of one name for the same file: give each its own.
        self._file: Optional[h5py.File] = h5py.File(f"{self.path}.{uuid.uuid4().hex} (in memory)", "w",
                                                    driver="core", backing_store=False)
        try:
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
        """Write the file onto ``path``. Closing twice does nothing."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.flush()
            image = file.id.get_file_image()
        finally:
            file.close()
        write_atomically(self.path, image)
        log.debug("wrote %s", self.path)

    def abort(self) -> None:
        """Drop everything written; ``path`` is left as it was."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
