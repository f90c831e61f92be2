"""Datasets as shards: a full disk keeps the completed shards, and the same command resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inference.cli import main
from inference.local import LocalSimulator
from inference.trace_file import read_traces, write_traces
from inference.trace_shards import dataset_paths, plan_shards
from simulators import gaussian
from tests.inference.file_size_limit import limited_file_size

PRIOR = [sys.executable, "-m", "inference", "prior", "--model", "simulators.gaussian:model", "--quiet"]


def test_shards_split_the_dataset_and_name_a_foreign_shard(tmp_path):
    shards = plan_shards(tmp_path, 2500, 1000)
    assert [(s.index, os.path.basename(s.path), s.num_traces) for s in shards] == [
        (0, "prior-000000.h5", 1000), (1, "prior-000001.h5", 1000), (2, "prior-000002.h5", 500)]
    assert not shards[0].complete
    write_traces(shards[0].path, LocalSimulator(gaussian.model).prior(700))
    with pytest.raises(ValueError, match=r"prior-000000.h5 holds 700 traces, expected 1000"):
        shards[0].complete


def test_dataset_paths_read_directories_globs_and_files(tmp_path):
    for name in ("prior-000001.h5", "prior-000000.h5", ".prior-000002.h5.x1y2z3.tmp", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    shards = [str(tmp_path / "prior-000000.h5"), str(tmp_path / "prior-000001.h5")]
    assert dataset_paths([str(tmp_path)]) == shards
    assert dataset_paths([str(tmp_path / "prior-*.h5"), shards[0]]) == shards
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .h5 trace files"):
        dataset_paths([str(tmp_path / "empty")])


def test_full_disk_keeps_completed_shards_and_the_same_command_resumes(tmp_path, capsys):
    out = tmp_path / "prior"
    flags = ["-n", "400", "--shard-size", "100", "--out", str(out), "--json"]
    command = [*PRIOR, *flags]
    # A first run got as far as two shards.
    for shard in plan_shards(out, 400, 100)[:2]:
        os.makedirs(out, exist_ok=True)
        write_traces(shard.path, LocalSimulator(gaussian.model).prior(shard.num_traces))
    first = {name: os.stat(out / name) for name in os.listdir(out)}

    # The disk fills up while the next shard is written (every shard file is about 100 kB, lzf-compressed).
    full = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          preexec_fn=limited_file_size(50_000))
    assert full.returncode == 2, full.stderr
    assert (f"ppx prior: error: disk full or file too large while writing {out}/prior-000002.h5 "
            f"(File too large); 200 of 400 traces are saved in {out} (2 of 4 shards)") in full.stderr
    assert "Traceback" not in full.stderr
    assert sorted(os.listdir(out)) == sorted(first)

    # With space again, the same command writes only the missing shards.
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["traces"], summary["shards"], summary["shards_written"]) == (200, 4, 2)
    assert summary["summarised_traces"] == 100 and summary["variables"]["mu"]["ess"] > 0
    assert sorted(os.listdir(out)) == [f"prior-00000{i}.h5" for i in range(4)]
    for name, stat in first.items():
        assert (os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert sum(len(read_traces(path)) for path in dataset_paths([str(out)])) == 400
    assert main(["prior", "--model", "simulators.gaussian:model", *flags[:-1]]) == 0
    assert "all 4 shards" in capsys.readouterr().out


def test_full_disk_with_one_output_file_says_nothing_was_saved(tmp_path):
    out = tmp_path / "prior.h5"
    run = subprocess.run([*PRIOR, "-n", "100", "--out", str(out)], capture_output=True, text=True, timeout=120,
                         preexec_fn=limited_file_size(50_000))
    assert run.returncode == 2, run.stderr
    assert f"disk full or file too large while writing {out} (File too large); no traces were saved" in run.stderr
    assert os.listdir(tmp_path) == []


def test_a_seeded_dataset_resumed_holds_the_traces_of_an_uninterrupted_run(tmp_path):
    """Each shard's traces follow the seed and the shard's number, not how many shards the run before
    had written: a resumed run neither repeats the first shards' traces nor differs from one run."""
    def mus(directory) -> list[list[float]]:
        return [[float(t.named("mu").value) for t in read_traces(path)] for path in dataset_paths([str(directory)])]

    flags = ["prior", "--simulator", "python -m simulators.gaussian", "--workers", "2", "-n", "300",
             "--shard-size", "100", "--batch-size", "16", "--seed", "4", "--quiet"]
    assert main([*flags, "--out", str(tmp_path / "whole")]) == 0
    assert main([*flags, "--out", str(tmp_path / "resumed")]) == 0
    os.remove(tmp_path / "resumed" / "prior-000001.h5")
    os.remove(tmp_path / "resumed" / "prior-000002.h5")
    assert main([*flags, "--out", str(tmp_path / "resumed")]) == 0
    whole = mus(tmp_path / "whole")
    assert mus(tmp_path / "resumed") == whole
    assert len({mu for shard in whole for mu in shard}) == 300
    assert main([*flags[:-2], "5", "--quiet", "--out", str(tmp_path / "other")]) == 0
    assert mus(tmp_path / "other")[0] != whole[0]
