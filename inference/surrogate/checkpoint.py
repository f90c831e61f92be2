"""Surrogate checkpoints: weights, config and versions in one file, written atomically.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads
with ``torch.load(weights_only=True)`` (no pickled objects). Keys (version 2)::

    format, version        "ppx-surrogate", 1
    versions               {"ppx-inference", "torch", "python"} that wrote it
    config                 SurrogateConfig.to_dict()
    data                   kind_names, energy_unit, layer_shapes, extent_mm,
                           num_showers, energy_range of the training showers
    conditioning           Conditioning state dict (log-energy standardisation)
    response               ResponseModel state dict (fitted to the training showers)
    generator, critic      latest weights; generator_optimizer, critic_optimizer
    best_generator         the weights of the epoch with the lowest mean KS distance
    best                   {"epoch", "score"}
    epoch                  epochs completed
    history                one dict per epoch (losses, Wasserstein estimate, KS, seconds)

Version 1 checkpoints (a generator that learned the response itself) are
refused with a message that says to retrain.
"""

from __future__ import annotations

import os
import pickle
import platform
from importlib import metadata
from typing import Any, Union

import torch

from inference.atomic_file import atomic_path
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.geometry import Geometry

FORMAT = "ppx-surrogate"
VERSION = 2

PathLike = Union[str, os.PathLike]


def versions() -> dict[str, str]:
    """The software versions recorded in a checkpoint."""
    try:
        package = metadata.version("ppx-inference")
    except metadata.PackageNotFoundError:
        package = "unknown"
    return {"ppx-inference": package, "torch": str(torch.__version__), "python": platform.python_version()}


def save_checkpoint(path: PathLike, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a reader never sees a half-written file."""
    with atomic_path(path) as temporary:
        torch.save({"format": FORMAT, "version": VERSION, "versions": versions(), **checkpoint}, temporary)


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Read a checkpoint (weights only, never pickled code) and check its format.

    Raises:
        ValueError: the file is not a surrogate checkpoint or is of another version.
        OSError: the file cannot be read.
    """
    path = os.fspath(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:  # torch's errors for files that are not checkpoints
        raise ValueError(f"{path} is not a readable surrogate checkpoint: {err}") from err
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path} is not a surrogate checkpoint (no format {FORMAT!r})")
    version = checkpoint.get("version", 0)
    if version != VERSION:
        newer = "newer" if isinstance(version, int) and version > VERSION else "older"
        raise ValueError(f"{path} is a version {version} surrogate checkpoint, written by "
                         f"{checkpoint.get('versions')}; this code reads version {VERSION} only. The {newer} "
                         f"format has a different generator: "
                         + ("update ppx-inference" if newer == "newer" else "retrain the surrogate from its showers"))
    return checkpoint


def load_weights(module: torch.nn.Module, state: dict[str, Any], what: str, path: str) -> None:
    """``module.load_state_dict(state)``, with a mismatch reported as a ValueError naming the checkpoint."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: the saved {what} does not fit this version's network (it was written by "
                         f"a different version of the surrogate code); retrain it. {err}") from err


def checkpoint_config(checkpoint: dict[str, Any]) -> SurrogateConfig:
    return SurrogateConfig.from_dict(checkpoint["config"])


def checkpoint_geometry(checkpoint: dict[str, Any]) -> Geometry:
    data = checkpoint["data"]
    return Geometry(tuple(tuple(shape) for shape in data["layer_shapes"]), tuple(data["extent_mm"]))
