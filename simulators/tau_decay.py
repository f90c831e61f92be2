"""Tau decays seen by a 3D calorimeter: the SHERPA-like flagship simulator, with a replaceable shower stage.

A tau lepton flies from the origin towards a barrel calorimeter section and
decays; its visible products shower in a 35 x 35 x 20 (eta, phi, depth) voxel
calorimeter and its neutrinos escape, showing up as missing transverse
momentum. The model, site by site (addresses as the engine sees them):

    px ~ Uniform(30, 50), py ~ Uniform(-3, 3), pz ~ Uniform(-3, 3)   "px", "py", "pz" (GeV)
    channel ~ Categorical(CHANNELS.fractions)                        "channel"
    the decay, boosted to the lab (simulators.tau.decays): angles,   "tau/tau_cos_theta", "rho/rho_mass",
        resonance masses, rejection-loop candidates, one scope        "a1/a1_s12_candidate",
        per decaying particle, names prefixed by it                  "pi0/pi0_phi", ...
    each particle's lab four-momentum (E, px, py, pz), tagged        "LABEL/LABEL_momentum", e.g.
        (labels in simulators.tau.channels; photons LABEL_gamma_i)   "pi0_gamma_1/pi0_gamma_1_momentum"
    the visible products' summed four-momentum, tagged               "visible_momentum"
    per showering particle, its deposited energy (GeV), log-normal   "LABEL/LABEL_deposit", e.g.
        about the average shower's visible total                     "pi_minus/pi_minus_deposit"
    detector_seed ~ Uniform(0, 2^32), control=False                  "detector_seed"
    calorimeter ~ Normal(expected, sigma), shape (35, 35, 20)        "calorimeter", observed
    met ~ Normal(neutrinos' (px, py), sigma_met), shape (2,)         "met", observed

Quoted are addresses. The engine reads posteriors by name, the part after
the last "/": ``rho_mass`` (the accepted mass, tagged) or ``pi_minus_momentum``
are unique within a trace, while the rejection loops' ``*_candidate`` and
``*_accept`` samples repeat, which makes the trace length vary (9 to about 100
samples, median 17). The model returns the channel index.

The calorimeter likelihood (``simulators.tau.observation``) is centred on the
average response to each particle, measured once on the shower stage itself
(``simulators.tau.response``) and scaled to the particle's deposit;
its per-voxel variance covers the showers' shape fluctuations and electronic
noise. The image the simulator reports, which prior traces and generated events
carry, is made of real stochastic showers from the stage, each rescaled to its
deposit. ``sigma_met`` is 1 GeV and 0.5 sqrt(sum E_T / GeV) of the
visible products in quadrature.

The shower stage is the expensive part. It is called through a hook,
``SHOWER_STAGE`` (by default ``simulators.calorimeter.shower``), which
``model(shower_stage=...)`` or ``make_model(shower_stage)`` override: any
function ``(kind, energy, rng) -> (layer0 (3, 96), layer1 (12, 12), layer2
(12, 6))`` of visible cell energies, such as a trained surrogate. The stage
draws from its own numpy generator, seeded by the control=False
``detector_seed``, so its randomness is fresh in every run, as for any
nuisance choice, and reproducible from the trace. The first traces in a
process also build the average responses (a few seconds in all).

Cost, measured on the 2-core development machine: about 10 ms per prior
trace in-process, some 4 ms of it in the shower stage (the largest single
part; the rest is the ppx sites, the voxel mapping and the 24,500-voxel
likelihood); served over ipc, about 8 ms per trace in prior batches and 28 ms
per engine-driven trace, which takes a round trip per site.

Run it as its own process with ``python -m simulators.tau_decay --address ADDR``;
``--image-source likelihood`` makes the process report images drawn from the
calorimeter likelihood (``model``'s ``image_source``), for calibration checks.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np
import pyro.distributions as dist
import torch

import ppx
from simulators import calorimeter
from simulators.tau.channels import CHANNELS
from simulators.tau.decays import decay_tau
from simulators.tau.detector import VOXELS, ShowerStage
from simulators.tau.kinematics import four_vector
from simulators.tau.observation import IMAGE_SOURCES, check_image_source, observe_calorimeter
from simulators.tau.particles import TAU_MASS, Response

__all__ = ["CHANNELS", "IMAGE_SOURCES", "SHOWER_STAGE", "VOXELS", "generate_event", "make_model", "model"]

SHOWER_STAGE: ShowerStage = calorimeter.shower
"""The shower stage ``model`` uses when given none; replace it to swap the stage everywhere."""

MOMENTUM_PRIOR = {"px": (30.0, 50.0), "py": (-3.0, 3.0), "pz": (-3.0, 3.0)}
"""Uniform ranges (GeV) of the tau momentum; px points at the centre of the calorimeter."""
MET_FLOOR = 1.0
MET_STOCHASTIC = 0.5


def _float64(value: Any) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


def _uniform(low: float, high: float) -> dist.Uniform:
    return dist.Uniform(_float64(low), _float64(high))


def _tag_momenta(particles: list) -> np.ndarray:
    visible = np.zeros(4)
    for particle in particles:
        with ppx.scope(particle.label):
            ppx.tag(_float64(particle.momentum), name=f"{particle.label}_momentum")
        if particle.visible:
            visible += particle.momentum
    ppx.tag(_float64(visible), name="visible_momentum")
    return visible


def _observe_met(particles: list) -> None:
    invisible = sum((p.momentum[1:3] for p in particles if p.species.response == Response.INVISIBLE), np.zeros(2))
    visible_et = sum(math.hypot(*p.momentum[1:3]) for p in particles if p.visible)
    sigma = math.hypot(MET_FLOOR, MET_STOCHASTIC * math.sqrt(visible_et))
    ppx.observe(dist.Normal(_float64(invisible), _float64(np.full(2, sigma))), name="met")


def model(shower_stage: Optional[ShowerStage] = None, image_source: str = "showers") -> torch.Tensor:
    """One tau decay and its detector response; returns the channel index.

    Args:
        shower_stage: the shower stage to use; None takes the module's ``SHOWER_STAGE``.
        image_source: ``"showers"`` (the stage's showers) or ``"likelihood"`` (the reported image
            drawn from the calorimeter likelihood itself, for calibration checks; see
            ``simulators.tau.observation``).
    """
    momentum = np.array([float(ppx.sample(_uniform(*MOMENTUM_PRIOR[name]), name=name)) for name in ("px", "py", "pz")])
    channel = ppx.sample(dist.Categorical(probs=_float64(CHANNELS.fractions)), name="channel")
    particles = decay_tau(CHANNELS[int(channel)], four_vector(TAU_MASS, momentum))
    _tag_momenta(particles)
    observe_calorimeter(particles, shower_stage if shower_stage is not None else SHOWER_STAGE, image_source)
    _observe_met(particles)
    return channel


def make_model(shower_stage: Optional[ShowerStage] = None, image_source: str = "showers"
               ) -> Callable[[], torch.Tensor]:
    """``model`` bound to a shower stage and image source, as a function of no arguments for
    ``ppx.serve`` or the engine."""
    check_image_source(image_source)

    def tau_decay_model() -> torch.Tensor:
        return model(shower_stage, image_source)

    tau_decay_model.__name__ = "model"
    return tau_decay_model


def generate_event(seed: int, shower_stage: Optional[ShowerStage] = None, image_source: str = "showers"
                   ) -> tuple[dict, dict]:
    """Draw one prior trace and return its truth and its observations (``image_source`` as for ``model``).

    Torch's global generator is seeded with ``seed`` for the run and restored
    afterwards, so the same seed gives the same event.

    Returns:
        ``truth``: ``px``, ``py``, ``pz``, ``channel`` (index), ``channel_name``,
        ``momenta`` (label ->
        lab four-momentum), ``visible_momentum`` and ``num_samples`` (the trace's
        sample count); ``observation``: ``calorimeter`` (35, 35, 20) and ``met``
        (2,), as the engine takes them.
    """
    from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG
    from ppx.simulator import record_prior_trace

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        records, _ = record_prior_trace(make_model(shower_stage, image_source))
    samples = {record.address: record.value for record in records if record.kind == RECORD_SAMPLE}
    tags = {record.address: record.value for record in records if record.kind == RECORD_TAG}
    channel = int(samples["channel"])
    truth = {name: float(samples[name]) for name in ("px", "py", "pz")}
    truth.update(
        channel=channel,
        channel_name=CHANNELS[channel].name,
        momenta={address.split("/")[0]: value for address, value in tags.items()
                 if "/" in address and address.endswith("_momentum")},
        visible_momentum=tags["visible_momentum"],
        num_samples=sum(record.kind == RECORD_SAMPLE for record in records),
    )
    observation = {record.name: record.value for record in records if record.kind == RECORD_OBSERVE}
    return truth, observation


if __name__ == "__main__":
    import argparse

    from simulators._cli import serve_main

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--image-source", choices=IMAGE_SOURCES, default="showers")
    known, remaining = options.parse_known_args()
    serve_main(make_model(image_source=known.image_source),
               description=__doc__.splitlines()[0] + " Also takes --image-source showers|likelihood "
                                                     "(default showers; likelihood for calibration checks).",
               argv=remaining)
