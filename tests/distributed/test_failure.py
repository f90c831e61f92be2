"""A rank killed mid-run: the survivor fails fast with a clear error, and training resumes from the checkpoint.

The run uses the large-batch options (LAMB, square-root learning-rate scaling, warm-up), so the
resume also restores LAMB's state on both ranks.
"""

from __future__ import annotations

import signal
import time

import pytest
import torch

from inference.ic import TrainingConfig
from tests.distributed.conftest import GLOBAL_BATCH, TINY, ppx_train

SURVIVOR_DEADLINE = 30.0
"""Seconds the surviving rank may take to notice and exit (a hang would take the 300 s collective timeout)."""


def test_killed_rank_fails_the_job_cleanly_and_it_resumes(branching_file, tmp_path, rank_processes):
    checkpoint = tmp_path / "net.ckpt"
    args = ["--dataset", str(branching_file), "--out", str(checkpoint), "--checkpoint-every", "0.2", *TINY,
            "--optimizer", "lamb", "--lr-scaling", "sqrt", "--reference-batch-size", "8", "--warmup-steps", "3"]
    survivor, victim = rank_processes(2, *args, "-n", "1000000")
    deadline = time.monotonic() + 60
    while not checkpoint.exists():
        assert survivor.poll() is None and victim.poll() is None, survivor.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint written within 60 s"
        time.sleep(0.1)
    time.sleep(0.5)  # mid-run, a few steps past the first checkpoint
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = survivor.communicate(timeout=SURVIVOR_DEADLINE)
    assert time.monotonic() - killed < SURVIVOR_DEADLINE
    assert survivor.returncode == 2, stderr
    assert "ppx train: error: rank 0 of 2" in stderr and "another rank died" in stderr
    assert f"--resume ({checkpoint})" in stderr

    saved = torch.load(checkpoint, weights_only=True)  # whole: written atomically
    done = saved["progress"]["traces"]
    assert done > 0 and saved["progress"]["world_size"] == 2
    assert saved["progress"]["large_batch"]["optimizer"] == "lamb"
    assert saved["progress"]["training"]["learning_rate"] == pytest.approx(TrainingConfig.learning_rate * 2 ** 0.5)
    target = done + 4 * GLOBAL_BATCH
    resumed = ppx_train(*args, "--resume", "--nproc", "2", "-n", str(target))
    _, stderr = resumed.communicate(timeout=100)
    assert resumed.returncode == 0, stderr
    final = torch.load(checkpoint, weights_only=True)["progress"]
    assert final["traces"] == target
    assert final["steps"] == saved["progress"]["steps"] + 4
    assert final["loss"][:len(saved["progress"]["loss"])] == saved["progress"]["loss"]
