"""Ranks leave the process group together, so none tears down a connection a peer still uses."""

from __future__ import annotations

import time
from pathlib import Path

from inference.ic.distributed import launch_local, process_group

RANK_0_BUSY = 1.0
"""Seconds rank 0 spends after its last collective (as it does writing the final checkpoint)."""


def _finish_unevenly(marks: str) -> None:
    with process_group() as group:
        if group.is_main:
            time.sleep(RANK_0_BUSY)
        Path(marks, f"done{group.rank}").write_text(repr(time.time()))
    Path(marks, f"left{group.rank}").write_text(repr(time.time()))


def test_no_rank_leaves_the_group_before_the_others_are_done(tmp_path):
    launch_local(2, _finish_unevenly, str(tmp_path))
    mark = {path.name: float(path.read_text()) for path in tmp_path.iterdir()}
    assert set(mark) == {"done0", "done1", "left0", "left1"}
    assert mark["left1"] >= mark["done0"]  # without waiting, rank 1 would leave about 1 s earlier
