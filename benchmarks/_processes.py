"""Start and stop benchmark peers as real processes on fresh ipc addresses; the set-up every run shares."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

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


def start_run(out: Optional[str] = None, seed: Optional[int] = 0) -> Optional[Path]:
    """A benchmark's start: one torch thread (the simulators have the other cores), torch seeded
    (unless ``seed`` is None), the machine line printed, and the output folder ``out`` made."""
    import torch
    torch.set_num_threads(1)
    if seed is not None:
        torch.manual_seed(seed)
    print(f"machine: {machine()}", flush=True)
    if out is None:
        return None
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
