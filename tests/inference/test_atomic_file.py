"""Files written whole or not at all: a full disk (a file-size limit) and writers killed half-way."""

from __future__ import annotations

import os
import subprocess
import sys

from inference.atomic_file import leftover_temporaries
from inference.trace_file import TraceWriter, read_traces, write_traces
from tests.inference.file_size_limit import limited_file_size
from tests.inference.test_trace_file import make_trace

# Writes a file of well over 100 kB with each writer, to the paths given, printing each OutOfSpace error.
WRITE_EACH = """
import sys
from inference.atomic_file import OutOfSpace
from inference.ic.checkpoint import save_checkpoint
from inference.ic.config import NetworkConfig
from inference.ic.network import InferenceNetwork
from inference.surrogate.showers_file import write_showers
from inference.trace_file import write_traces
from tests.inference.test_trace_file import make_trace
from tests.surrogate.blobs import blob_showers
writers = [lambda path: write_traces(path, [make_trace(i) for i in range(2000)]),
           lambda path: write_showers(path, blob_showers(500)),
           lambda path: save_checkpoint(path, InferenceNetwork(NetworkConfig(lstm_dim=256), {"obs": (1,)}))]
for write, path in zip(writers, sys.argv[1:]):
    try:
        write(path)
    except OutOfSpace as err:
        print(err)
"""


def test_full_disk_stops_each_writer_with_a_clear_error_and_keeps_the_old_file(tmp_path):
    paths = [tmp_path / name for name in ("traces.h5", "showers.h5", "network.ckpt")]
    for path in paths:
        path.write_bytes(b"the previous complete version")
    run = subprocess.run([sys.executable, "-c", WRITE_EACH, *map(str, paths)], capture_output=True, text=True,
                         timeout=120, preexec_fn=limited_file_size(100_000))
    # Exit code 0, not a crash: HDF5 never gets to fail a write of its own.
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"disk full or file too large while writing {path} (File too large); "
                                       f"{path} is left as it was" for path in paths]
    for path in paths:
        assert path.read_bytes() == b"the previous complete version"
    assert sorted(os.listdir(tmp_path)) == sorted(path.name for path in paths)


def test_leftovers_of_a_killed_writer_go_with_the_next_complete_write(tmp_path):
    path = tmp_path / "traces.h5"
    leftover = tmp_path / ".traces.h5.k1ll3d00.tmp"
    leftover.write_bytes(b"half a file")
    unrelated = tmp_path / ".other.h5.k1ll3d00.tmp"
    unrelated.write_bytes(b"another file's")
    assert leftover_temporaries(path) == [str(leftover)]
    write_traces(path, [make_trace(i) for i in range(3)])
    assert len(read_traces(path)) == 3
    assert sorted(os.listdir(tmp_path)) == [unrelated.name, path.name]


def test_two_writers_of_one_path_build_separate_files(tmp_path):
    path = tmp_path / "traces.h5"
    first, second = TraceWriter(path), TraceWriter(path)
    first.write([make_trace(1)])
    second.write([make_trace(2), make_trace(3)])
    first.close()
    second.close()
    assert len(read_traces(path)) == 2  # the last to finish wins, whole
    assert os.listdir(tmp_path) == [path.name]
