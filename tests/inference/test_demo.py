"""``ppx demo`` at a tiny budget: the whole flagship workflow runs and writes its outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import arviz
import torch


def test_demo_runs_end_to_end_and_writes_its_outputs(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "inference", "demo", "--train-traces", "64", "-n", "12",
                          "--batch-size", "16", "--lstm-dim", "16", "--out", str(out), "--json", "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert set(summary["engines"]) == {"IC", "prior IS"}
    for engine in summary["engines"].values():
        assert set(engine["latents"]) == {"px", "py", "pz", "channel"}
        assert engine["ess"] >= 1.0
    assert summary["training"]["traces"] >= 64
    for name in ("momentum_posteriors.png", "channel_probabilities.png", "calorimeter.png", "loss.png"):
        assert (out / name).stat().st_size > 10_000
    assert arviz.from_netcdf(out / "posterior.nc").posterior["px"].size == 12
    checkpoint = torch.load(out / "network.ckpt", weights_only=True)
    assert len(checkpoint["addresses"]) >= 4
    assert json.loads((out / "summary.json").read_text())["truth"]["channel_name"]
