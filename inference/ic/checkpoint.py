"""IC checkpoints: weights plus plain metadata, written atomically, loaded with ``weights_only=True``."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Optional

import torch

from inference.atomic_file import write_atomically
from inference.ic.config import NetworkConfig
from inference.ic.network import Address, InferenceNetwork

FORMAT = "ppx-ic-network"
VERSION = 5
"""2: Uniform and Beta heads read out mean and concentration, not alpha and beta, and value
embeddings read values relative to their prior. 3: log-normal heads learn how far to follow
their prior's centre (``centre_weight``). 4: that weight is stored as ``centre_drop``, which
moves it ten times faster. 5: heads mix their proposals with the prior by a fitted
``prior_weight``; a version-4 checkpoint loads with every weight 0, as it was written."""
READABLE_VERSIONS = (4, VERSION)


def save_checkpoint(path: str | os.PathLike, network: InferenceNetwork,
                    optimizer: Optional[torch.optim.Optimizer] = None,
                    progress: Optional[dict[str, Any]] = None) -> None:
    """Write the network (and optionally optimizer and training progress) to ``path`` atomically.

    A process killed while writing leaves the previous checkpoint at ``path`` intact.

    Raises:
        OutOfSpace: the disk ran out; ``path`` keeps the previous checkpoint.
    """
    content = {
        "format": FORMAT,
        "version": VERSION,
        "torch_version": str(torch.__version__),
        "config": network.config.to_dict(),
        "observation_shapes": {name: list(shape) for name, shape in network.observation_shapes.items()},
        "sparse_observations": sorted(network.sparse_observations),
        "addresses": [vars(address).copy() for address in network.addresses],
        "state_dict": network.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "progress": progress or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(content, buffer)
    write_atomically(path, buffer.getbuffer())


def _read(path: Path, mmap: bool = False) -> dict[str, Any]:
    if not path.exists():
        raise ValueError(f"network checkpoint {path} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises several types for foreign or truncated files
        raise ValueError(f"{path} is not a readable IC checkpoint: {err}") from err
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ValueError(f"{path} is not an IC network checkpoint (format {content.get('format')!r})"
                         if isinstance(content, dict) else f"{path} is not an IC network checkpoint")
    if content.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{path} has checkpoint version {content.get('version')}, this engine reads "
                         f"{' and '.join(map(str, READABLE_VERSIONS))}")
    return content


def checkpoint_progress(path: str | os.PathLike) -> dict[str, Any]:
    """The training progress saved at ``path`` (traces, steps, losses), without reading the weights."""
    return _read(Path(path), mmap=True).get("progress", {})


def load_checkpoint(path: str | os.PathLike) -> tuple[InferenceNetwork, dict[str, Any]]:
    """The network saved at ``path`` and the rest of the checkpoint (optimizer state, progress)."""
    path = Path(path)
    content = _read(path)
    network = InferenceNetwork(NetworkConfig(**content["config"]),
                               {name: tuple(shape) for name, shape in content["observation_shapes"].items()},
                               content.get("sparse_observations", ()))
    for address in content["addresses"]:
        network.add_address(Address(**address))
    missing, unexpected = network.load_state_dict(content["state_dict"], strict=False)
    if content["version"] < 5:
        missing = [key for key in missing if not key.endswith(".prior_weight")]
    if missing or unexpected:
        raise ValueError(f"{path} does not match the network its metadata describes: missing "
                         f"{', '.join(missing) or 'nothing'}, unexpected {', '.join(unexpected) or 'nothing'}")
    return network, content
