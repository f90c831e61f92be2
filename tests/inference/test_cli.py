"""The ``ppx`` command, run as a user runs it: a separate process printing JSON or tables."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import arviz
import h5py
import pytest
import torch

from inference.cli import main
from inference.trace_file import read_traces
from simulators import gaussian

GAUSSIAN = ["--simulator", "python -m simulators.gaussian"]
OBSERVED = ["--observe", "obs0=8", "--observe", "obs1=9"]


def ppx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inference", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_posterior_json_summary_matches_analytic_answer():
    run = ppx("posterior", *GAUSSIAN, *OBSERVED, "-n", "8000", "--batch-size", "500", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    mu = summary["variables"]["mu"]
    assert set(mu) >= {"mean", "std", "ess", "khat"}
    assert summary["traces"] == 8000 and summary["traces_per_second"] > 0 and summary["seconds"] > 0
    true_mean, true_std = gaussian.posterior([8, 9])
    # Tolerance from the run's own ESS (4.5 standard errors of the weighted mean).
    assert abs(mu["mean"] - true_mean) < 4.5 * true_std / math.sqrt(summary["ess"])
    assert "result" in summary["variables"]


def test_rmh_writes_arviz_file(tmp_path):
    out = tmp_path / "posterior.nc"
    run = ppx("posterior", "--model", "simulators.gaussian:model", *OBSERVED, "--engine", "rmh",
              "-n", "500", "--seed", "3", "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    assert "mu" in run.stdout and "posterior written to" in run.stdout
    data = arviz.from_netcdf(out)
    assert data.posterior["mu"].size == 500


def test_prior_writes_trace_file_from_running_simulator(start_simulator, tmp_path):
    address = start_simulator("simulators.gaussian", "tcp")
    out = tmp_path / "prior.h5"
    run = ppx("prior", "--address", address, "-n", "300", "--out", str(out), "--json", "--quiet",
              "--timeout", "60")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["traces"] == 300
    traces = read_traces(out)
    assert len(traces) == 300 and [c.name for c in traces[0]] == ["mu", "obs0", "obs1"]


@pytest.mark.parametrize("flag, expected", [([], "lzf"), (["--compression", "gzip"], "gzip"),
                                            (["--compression", "none"], None)])
def test_prior_compresses_trace_files(tmp_path, flag, expected):
    out = tmp_path / "prior.h5"
    run = ppx("prior", "--model", "simulators.gaussian:model", "-n", "50", "--seed", "2", "--out", str(out),
              "--quiet", *flag)
    assert run.returncode == 0, run.stderr
    with h5py.File(out) as file:
        filters = {dataset.compression for dataset in _datasets(file) if dataset.dtype.kind in "iuf"}
    assert filters == {expected}
    assert len(read_traces(out)) == 50


def test_prior_writes_float32_trace_files_on_request(tmp_path):
    out = tmp_path / "prior.h5"
    run = ppx("prior", "--model", "simulators.gaussian:model", "-n", "50", "--seed", "2", "--out", str(out),
              "--quiet", "--precision", "float32")
    assert run.returncode == 0, run.stderr
    with h5py.File(out) as file:
        assert file["values/data"].dtype == file["params/data"].dtype == "float32"
    mu = [trace.choices[0].value for trace in read_traces(out)]
    assert len(mu) == 50 and all(value == value.astype("float32") for value in mu)


def _datasets(group: h5py.Group) -> list[h5py.Dataset]:
    found = []
    group.visititems(lambda _, item: found.append(item) if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("args, message", [
    (["posterior", *OBSERVED], "give exactly one of --address"),
    (["posterior", "--model", "simulators.gaussian:model", "--observe", "obs0"], "NAME=VALUE"),
    (["posterior", "--model", "simulators.gaussian:model", "--observe", "obs7=1", "-n", "5"],
     "'obs7' do not occur in the model"),
    (["posterior", "--model", "simulators.gaussian:model", "--observe", "obs0=[8,9]", "-n", "5"],
     "observation 'obs0' has shape [2], but the model observes shape [] there"),
    (["prior", "--model", "simulators.gaussian:model", "--observe", "obs7=1", "-n", "5"],
     "'obs7' do not occur in the model; its observe statements are named: obs0, obs1"),
    (["posterior", "--model", "simulators.nonexistent:model"], "cannot import module"),
    (["posterior", "--model", "simulators.gaussian:model", "--model-move", "simulators.tau.mass_shell:MassShellMove"],
     "--model-move is only used by --engine smc or rmh-joint, not --engine is"),
    (["posterior", "--model", "simulators.gaussian:model", "--engine", "smc", "--model-move", "MassShellMove"],
     "--model-move expects MODULE:NAME"),
    (["posterior", "--model", "simulators.gaussian:model", "--engine", "smc", "--model-move",
      "simulators.tau.mass_shell:NoSuchMove"], "has no function or class 'NoSuchMove'"),
    (["posterior", "--model", "simulators.gaussian:model", "--adapt-rounds", "2"],
     "--adapt-rounds needs --network CKPT, with --engine ic or smc, not --engine is"),
    (["posterior", "--model", "simulators.gaussian:model", "--engine", "smc", "--adapt-rounds", "2"],
     "--adapt-rounds needs --network CKPT, with --engine ic or smc"),
    (["posterior", "--model", "simulators.gaussian:model", "--engine", "rmh", "--network", "n.ckpt"],
     "--network is only used by --engine ic, smc or rmh-joint, not --engine rmh"),
    (["posterior", "--model", "simulators.gaussian:model", "--engine", "rmh", "--start-traces", "50"],
     "--start-traces is only used by --engine rmh-joint, not --engine rmh"),
    (["posterior", "--model", "simulators.gaussian:model", "--engine", "ic", "--adapt-rounds", "-1"],
     "--adapt-rounds must be 0 or more, got -1"),
    (["posterior", "--model", "simulators.gaussian:model", "--engine", "ic", "--adapt-steps", "40"],
     "--adapt-steps 40 is only used with --adapt-rounds R (R > 0)"),
    (["posterior", "--model", "simulators.gaussian:model", "--adapt-traces", "50"],
     "--adapt-traces 50 is only used with --adapt-rounds R (R > 0)"),
    (["posterior", "--model", "simulators.gaussian:model", "--adapt-keep-rounds"],
     "--adapt-keep-rounds is only used with --adapt-rounds R (R > 0)"),
    (["prior", "--model", "simulators.gaussian:model", "--observe-file", "/nonexistent.json"],
     "does not exist"),
    (["prior", "--model", "simulators.gaussian:model", "--precision", "float32"],
     "--precision float32 is only used with --out PATH"),
    (["train", "--model", "simulators.gaussian:model", "--out", "n.ckpt", "--device", "cuda:99"],
     "argument --device: 'cuda:99': torch"),
    (["train", "--model", "simulators.gaussian:model", "--out", "n.ckpt", "--device", "mps"],
     "argument --device: 'mps': the network trains on cpu or cuda, not mps"),
    (["train", "--model", "simulators.gaussian:model", "--out", "n.ckpt", "--device", "gpu0"],
     "argument --device: 'gpu0' is not a device: use cpu, cuda or cuda:N"),
    (["train", "--model", "simulators.gaussian:model", "--out", "n.ckpt", "--embedding", "obs0=transformer"],
     "--embedding obs0=transformer: unknown embedding 'transformer'; choose from cnn, cnn-clusters"),
])
def test_bad_input_gives_a_clear_error(args, message, capsys):
    threads = torch.get_num_threads()
    try:
        try:
            code = main([*args, "--quiet"])
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
    finally:
        torch.set_num_threads(threads)  # the command sets it for its process, here the test's
    stderr = capsys.readouterr().err
    assert code == 2
    assert message in stderr


def test_bad_input_through_the_command_exits_2_without_a_traceback():
    run = ppx("posterior", "--model", "simulators.gaussian:model", "--observe", "obs7=1", "-n", "5", "--quiet")
    assert run.returncode == 2
    assert "'obs7' do not occur in the model" in run.stderr
    assert "Traceback" not in run.stderr
