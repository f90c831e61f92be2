"""The engine killed with SIGKILL in the middle of training: the checkpoint survives, training resumes
from it, and no simulator outlives the engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from inference.atomic_file import leftover_temporaries
from inference.ic import load_checkpoint

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="children are tied to the engine's life through Linux's prctl")


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid``, read from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _stat(int(entry))[1] == pid:
            children.append(int(entry))
    return children


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie waiting to be reaped."""
    state, _ = _stat(pid)
    return state not in ("", "Z")


def _stat(pid: int) -> tuple[str, int]:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            fields = stream.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return "", -1
    return fields[0], int(fields[1])


def wait_for(condition, what: str, seconds: float = 120.0, engine: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if engine is not None and engine.poll() is not None:
            pytest.fail(f"the engine exited with code {engine.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {seconds:g} s")
        time.sleep(0.001)


def kill_while_writing(engine: subprocess.Popen, checkpoint) -> None:
    """SIGKILL the engine at a moment when it is between starting and finishing a checkpoint write.

    The engine is stopped as soon as a temporary checkpoint shows up; if the temporary is still
    there while it is stopped, the write is under way and the kill lands in the middle of it.
    """
    while True:
        wait_for(lambda: leftover_temporaries(checkpoint), "a checkpoint being written", engine=engine)
        engine.send_signal(signal.SIGSTOP)
        if leftover_temporaries(checkpoint):
            engine.kill()
            engine.wait()
            return
        engine.send_signal(signal.SIGCONT)


def ppx_train(checkpoint, *flags: str) -> list[str]:
    return [sys.executable, "-m", "inference", "train", "--out", str(checkpoint), "--batch-size", "32",
            "--validation-size", "32", "--quiet", *flags]


def test_training_killed_while_checkpointing_resumes_and_leaves_no_simulator(tmp_path):
    checkpoint = tmp_path / "gaussian.ckpt"
    with open(tmp_path / "engine.log", "w") as log:
        engine = subprocess.Popen(ppx_train(checkpoint, "--simulator", "python -m simulators.gaussian",
                                            "--workers", "2", "-n", "10000000", "--checkpoint-every", "0"),
                                  stdout=log, stderr=log)
    simulators: list[int] = []
    try:
        wait_for(checkpoint.exists, "the first checkpoint", engine=engine)
        simulators = children_of(engine.pid)
        assert len(simulators) == 2 and all(is_running(pid) for pid in simulators)
        kill_while_writing(engine, checkpoint)
        assert leftover_temporaries(checkpoint)  # the interrupted write's temporary, never the checkpoint
        wait_for(lambda: not any(is_running(pid) for pid in simulators), "the simulators to die with the engine",
                 seconds=30)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        for pid in simulators:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)

    _, content = load_checkpoint(checkpoint)
    steps, traces = content["progress"]["steps"], content["progress"]["traces"]
    assert steps >= 1 and traces == 32 * steps

    # Any source of the same model's traces will do; in-process saves starting simulators again.
    resumed = subprocess.run(ppx_train(checkpoint, "--model", "simulators.gaussian:model", "--resume",
                                       "-n", str(traces + 64), "--json"),
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["steps"], summary["traces"]) == (steps + 2, traces + 64)
    _, content = load_checkpoint(checkpoint)
    assert (content["progress"]["steps"], content["progress"]["traces"]) == (steps + 2, traces + 64)
    assert not leftover_temporaries(checkpoint)


def test_a_child_that_asked_dies_with_its_parent():
    """How each rank of `ppx train --nproc` ties itself to the launching process."""
    with subprocess.Popen([sys.executable, "-c", """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import os, time; from inference.child_lifetime import die_with_parent; "
    "die_with_parent(os.getppid()); print('ready', flush=True); time.sleep(600)"],
    stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, text=True) as parent:
        try:
            child = int(parent.stdout.readline())
            assert is_running(child)
        finally:
            parent.kill()
    wait_for(lambda: not is_running(child), "the child to die with its parent", seconds=30)
