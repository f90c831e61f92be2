"""A full disk without root: a file-size limit (RLIMIT_FSIZE) on a child process.

With SIGXFSZ ignored (the disposition survives ``exec``), a write beyond the limit
fails with EFBIG, as a write to a full disk fails with ENOSPC.
"""

from __future__ import annotations

import resource
import signal
from typing import Callable


def limited_file_size(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` that lets the child's files grow to ``limit`` bytes and no further."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply
