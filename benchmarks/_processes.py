"""Start and stop benchmark peers as real processes on fresh ipc addresses."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator

from ppx.transport import fresh_ipc_address


@contextlib.contextmanager
def simulator_process(module: str, *args: str) -> Iterator[str]:
    """Run ``python -m MODULE ARGS --address ADDR`` and yield ADDR."""
    address = fresh_ipc_address("bench")
    process = subprocess.Popen([sys.executable, "-m", module, *args, "--address", address])
    try:
        yield address
    finally:
        process.kill()
        process.wait()


def machine() -> str:
    import os
    import platform
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
