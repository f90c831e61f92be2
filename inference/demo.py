"""The flagship workflow end to end: inference over a tau decay seen in a 3D calorimeter.

A pool of tau-decay simulators generates training data for a brief IC training
run (or a network trained at length with ``ppx train`` is loaded); a ground-truth
event is generated; IC importance sampling and a prior-IS baseline infer its
latents (and, with ``adapt_rounds``, IC importance sampling with a copy of the
network first fitted to the event, ``inference.ic.adapt``); summaries, plots, the
network and the ArviZ file go to an output folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from inference import plots
from inference.ic import NetworkConfig, NetworkProposal, OnlineSource, Trainer, TrainingConfig
from inference.ic.adapt import Adaptation, adapted_importance_sampling
from inference.ic.checkpoint import load_checkpoint
from inference.ic.network import InferenceNetwork
from inference.importance import importance_sampling
from inference.pool import SimulatorPool
from inference.posterior import KHAT_THRESHOLD, Posterior

log = logging.getLogger(__name__)

LATENTS = ("px", "py", "pz", "channel")


@dataclass(frozen=True)
class DemoConfig:
    """How big a demo to run; the defaults take a few minutes on 2 cores.

    Attributes:
        out: output folder.
        simulator: the tau-decay simulator command.
        workers: simulator processes in the pool.
        train_traces: traces the IC network trains on.
        traces: importance-sampling traces per engine.
        seed: seeds the ground-truth event and the engine.
        batch_size: training batch size.
        lstm_dim: IC network LSTM size.
        observation_dim: IC network observation embedding size.
        learning_rate: Adam's step size while training.
        embeddings: observation embedding kind per observed name (``inference.ic.embeddings``),
            e.g. ``{"calorimeter": "cnn-clusters"}``; unnamed observations get their shape's default.
        device: where the network trains, ``cpu`` or ``cuda[:N]``; it proposes on the CPU.
        network: a trained IC checkpoint to use instead of training one (``train_traces``,
            ``batch_size``, ``lstm_dim``, ``observation_dim``, ``learning_rate``, ``embeddings``
            and ``device`` are then not used).
        image_source: ``showers`` or ``likelihood``, passed to the simulators as
            ``--image-source`` and used for the ground-truth event; a network trained on
            likelihood images (README's longer run) is meant for ``likelihood``.
        adapt_rounds: rounds of ``traces`` runs each that fit a copy of the network to the
            event before a third engine, "IC adapted", draws ``traces`` more; 0 runs no such
            engine. Its posterior keeps the rounds' traces (``keep_rounds``).
    """

    out: str = "demo-output"
    simulator: str = "python -m simulators.tau_decay"
    workers: int = 2
    train_traces: int = 3000
    traces: int = 200
    seed: int = 1
    batch_size: int = 32
    lstm_dim: int = 64
    observation_dim: int = 64
    learning_rate: float = 3e-3
    embeddings: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    network: Optional[str] = None
    image_source: str = "showers"
    adapt_rounds: int = 0

    def __post_init__(self) -> None:
        from simulators.tau_decay import IMAGE_SOURCES

        for name in ("workers", "train_traces", "traces", "batch_size", "lstm_dim", "observation_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"demo {name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"demo learning-rate must be positive, got {self.learning_rate}")
        if self.adapt_rounds < 0:
            raise ValueError(f"demo adapt-rounds must be 0 or more, got {self.adapt_rounds}")
        if self.image_source not in IMAGE_SOURCES:
            raise ValueError(f"demo image-source must be one of {', '.join(IMAGE_SOURCES)}, "
                             f"got {self.image_source!r}")

    @property
    def simulator_command(self) -> str:
        if self.image_source == "showers":
            return self.simulator
        return f"{self.simulator} --image-source {self.image_source}"


def _engine_row(posterior: Posterior, truth: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"ess": posterior.ess, "ess_fraction": posterior.ess_fraction,
                           "runs": getattr(posterior, "simulator_runs", posterior.num_traces),
                           "khat": posterior.khat, "latents": {}}
    for name in LATENTS:
        entry = {"truth": truth[name], "mean": float(np.ravel(posterior.mean(name))[0]),
                 "std": float(np.ravel(posterior.std(name))[0]),
                 "ess": float(np.ravel(posterior.variable_ess(name))[0])}
        if name == "channel":
            entry["probability_of_truth"] = posterior.probabilities(name).get(truth[name], 0.0)
        row["latents"][name] = entry
    return row


def summary_table(summary: dict[str, Any]) -> str:
    engines = summary["engines"]
    lines = [f"tau event (seed {summary['config']['seed']}): true channel {summary['truth']['channel_name']}",
             f"{'latent':<10}{'truth':>10}" + "".join(f"{e + ' mean':>16}{e + ' std':>14}" for e in engines)]
    for name in LATENTS:
        cells = "".join(f"{engines[e]['latents'][name]['mean']:>16.3f}{engines[e]['latents'][name]['std']:>14.3f}"
                        for e in engines)
        lines.append(f"{name:<10}{summary['truth'][name]:>10.3f}{cells}")
    unreliable = [engine for engine, row in engines.items()
                  if row["khat"] is not None and not row["khat"] <= KHAT_THRESHOLD]
    for engine, row in engines.items():
        khat = "-" if row["khat"] is None else f"{row['khat']:.2f}"
        lines.append(f"{engine}: ESS {row['ess']:.1f} from {row['runs']} runs "
                     f"({100 * row['ess'] / row['runs']:.1f}%), k-hat {khat}, "
                     f"P(true channel) {row['latents']['channel']['probability_of_truth']:.3f}"
                     + (" (unreliable: a few traces carry the weight, so a std is no uncertainty)"
                        if engine in unreliable else ""))
    if any(engine.startswith("IC") for engine in unreliable):
        lines.append("IC needs a better-trained network: raise --train-traces, or pass one trained at length "
                     "with --network (README, \"The longer run\")")
    return "\n".join(lines)


def _predicted_image(posterior: Posterior) -> np.ndarray:
    """Posterior-predictive mean calorimeter image: the weighted mean of each trace's expected image."""
    images = np.stack([trace.named("calorimeter").wire.params[0] for trace in posterior.traces])
    return np.tensordot(posterior.weights(), images, axes=1)


def _train(pool: SimulatorPool, config: DemoConfig, progress: bool) -> tuple[InferenceNetwork, dict]:
    """A briefly trained network, written to ``out/network.ckpt``, and its training progress."""
    source = OnlineSource(pool, config.batch_size)
    try:
        trainer = Trainer(source, NetworkConfig(lstm_dim=config.lstm_dim, observation_dim=config.observation_dim,
                                                embeddings=config.embeddings),
                          TrainingConfig(batch_size=config.batch_size, learning_rate=config.learning_rate,
                                         validation_size=min(128, config.train_traces),
                                         validate_every=max(config.batch_size, config.train_traces // 10)),
                          checkpoint=str(Path(config.out) / "network.ckpt"), device=config.device)
        training = trainer.train(config.train_traces, progress_bar=progress)
        return trainer.network.cpu(), training
    finally:
        source.close()


def _load(path: str) -> tuple[InferenceNetwork, dict]:
    network, content = load_checkpoint(path)
    training = content.get("progress") or {}
    if not training.get("validation"):
        raise ValueError(f"demo network {path} has no training history to plot; "
                         "pass a checkpoint written by ppx train")
    return network, training


def run_demo(config: DemoConfig, progress: bool = True) -> dict[str, Any]:
    """Run the whole workflow and return its summary (also written to ``out/summary.json``)."""
    from simulators import tau_decay

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    truth, observation = tau_decay.generate_event(config.seed, image_source=config.image_source)
    import torch
    torch.manual_seed(config.seed)
    loaded = _load(config.network) if config.network else None
    with SimulatorPool(config.simulator_command, workers=config.workers, timeout=120, reproducible=True) as pool:
        network, training = loaded or _train(pool, config, progress)
        trained = time.perf_counter()
        ic = importance_sampling(pool, config.traces, observation,
                                 proposal=NetworkProposal(network, observation), progress=progress)
        prior = importance_sampling(pool, config.traces, observation, progress=progress)
        posteriors = {"IC": ic, "prior IS": prior}
        if config.adapt_rounds:
            adaptation = Adaptation(rounds=config.adapt_rounds, traces_per_round=config.traces)
            posteriors["IC adapted"] = adapted_importance_sampling(pool, network, config.traces, observation,
                                                                   adaptation, progress=progress, keep_rounds=True)
    inferred = time.perf_counter()

    channel_names = [channel.name for channel in tau_decay.CHANNELS.channels]
    figures = [
        plots.posterior_histograms(posteriors, ["px", "py", "pz"], truth, out / "momentum_posteriors.png"),
        plots.category_probabilities(posteriors, "channel", channel_names, truth["channel"],
                                     out / "channel_probabilities.png"),
        plots.image_comparison({"observed": observation["calorimeter"],
                                "IC posterior predictive": _predicted_image(ic)}, out / "calorimeter.png"),
        plots.loss_curve(training, out / "loss.png"),
    ]
    ic.save(out / "posterior.nc")
    summary = {
        "config": asdict(config),
        "truth": {name: truth[name] for name in LATENTS} | {"channel_name": truth["channel_name"]},
        "engines": {name: _engine_row(posterior, truth) for name, posterior in posteriors.items()},
        "training": {"traces": training["traces"], "validation_loss": training["validation"][-1][1],
                     "seconds": training["seconds"] if loaded else trained - started,
                     "network": config.network or str(out / "network.ckpt")},
        "seconds": {"training": trained - started, "inference": inferred - trained,
                    "total": time.perf_counter() - started},
        "files": [str(path) for path in figures] + [str(out / "posterior.nc")]
                 + ([] if loaded else [str(out / "network.ckpt")]),
    }
    summary["table"] = summary_table(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


__all__ = ["DemoConfig", "LATENTS", "run_demo"]
