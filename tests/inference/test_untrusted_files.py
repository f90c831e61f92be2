"""Files from outside are data, never code: every loader refuses pickled objects without running them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from inference.ic import load_checkpoint as load_network
from inference.ic.checkpoint import FORMAT as NETWORK_FORMAT
from inference.observations import load_observation_file
from inference.surrogate.checkpoint import FORMAT as SURROGATE_FORMAT
from inference.surrogate.serving import ShowerStage
from inference.surrogate.showers_file import read_showers
from inference.surrogate.surrogate import Surrogate
from inference.trace_file import read_traces


class RunsCode:
    """Unpickling this creates the folder ``marker``: proof that the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.mkdir, (str(self.marker),)


def checkpoint_with_payload(form: str) -> Callable[[Path, Path], None]:
    """A torch checkpoint in the given format whose metadata carries a code-running object."""
    def checkpoint(path: Path, marker: Path) -> None:
        torch.save({"format": form, "version": 1, "config": {"note": RunsCode(marker)},
                    "state_dict": {"weight": torch.zeros(2)}}, path)
    return checkpoint


def plain_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"weights": RunsCode(marker)}))


def npz_with_object_array(path: Path, marker: Path) -> None:
    with path.open("wb") as stream:  # numpy.savez stores object arrays as pickles
        np.savez(stream, obs0=np.array([RunsCode(marker)], dtype=object))


LOADERS = {
    "IC network checkpoint": (load_network, ".ckpt", ValueError),
    "surrogate checkpoint": (Surrogate.load, ".ckpt", ValueError),
    "surrogate stage (--surrogate)": (ShowerStage.load, ".ckpt", ValueError),
    "observation file": (load_observation_file, ".npz", ValueError),
    "trace file": (read_traces, ".h5", ValueError),
    "shower file": (read_showers, ".h5", OSError),
}

CASES = [
    ("IC network checkpoint", checkpoint_with_payload(NETWORK_FORMAT)),
    ("surrogate checkpoint", checkpoint_with_payload(SURROGATE_FORMAT)),
    ("surrogate stage (--surrogate)", checkpoint_with_payload(SURROGATE_FORMAT)),
    ("observation file", npz_with_object_array),
    *[(loader, plain_pickle) for loader in LOADERS],
]


# torch notes that a checkpoint uses a newer pickle protocol than it writes, then refuses the file anyway.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("loader, make_file", CASES, ids=[f"{loader}-{make.__name__}" for loader, make in CASES])
def test_pickled_code_is_refused_and_never_run(tmp_path, loader, make_file):
    load, suffix, error = LOADERS[loader]
    path, marker = tmp_path / f"untrusted{suffix}", tmp_path / "code-ran"
    make_file(path, marker)
    with pytest.raises(error, match=str(path.name)):
        load(path)
    assert not marker.exists(), f"loading a {loader} ran code from the file"


def test_the_payload_runs_code_when_unpickled(tmp_path):
    """The check above is only as good as its payload: unpickled naively, it does run."""
    path, marker = tmp_path / "untrusted.ckpt", tmp_path / "code-ran"
    plain_pickle(path, marker)
    pickle.loads(path.read_bytes())
    assert marker.is_dir()
