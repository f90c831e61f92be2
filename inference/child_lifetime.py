"""Child processes that do not outlive the engine, even when it is killed with SIGKILL.

A killed engine runs no ``finally`` blocks, so its simulator copies and training
ranks would live on, orphaned. On Linux the kernel can send a child a signal when
its parent exits (``prctl(PR_SET_PDEATHSIG)``); the child asks for SIGKILL right
after it starts. Elsewhere these functions do nothing.

The kernel sends the signal when the *thread* that started the child exits, not
only the whole process: start long-lived children from a thread that outlives them
(``SimulatorPool`` restarts copies from whichever thread uses the pool; ``OnlineSource``'s
producer thread lives as long as the pool is used).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from typing import Callable, Optional

_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Optional[Callable[..., int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with(parent_pid: int, prctl: Callable[..., int]) -> None:
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent_pid:  # the parent exited before the request was made
        os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent_pid: int) -> None:
    """Make this process receive SIGKILL when ``parent_pid`` (its parent) exits; call it first thing."""
    prctl = _prctl()
    if prctl is not None:
        _die_with(parent_pid, prctl)


def dies_with_this_process() -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` for ``subprocess.Popen`` that ties the child's life to this process's, or None
    where the platform cannot (libc is looked up here, before the fork, not in the child)."""
    prctl = _prctl()
    if prctl is None:
        return None
    return functools.partial(_die_with, os.getpid(), prctl)
