"""Inference compilation: a proposal network trained on prior traces, used for importance sampling."""

from inference.ic.checkpoint import load_checkpoint, save_checkpoint
from inference.ic.config import NetworkConfig
from inference.ic.network import InferenceNetwork
from inference.ic.proposal import NetworkProposal
from inference.ic.sources import OfflineSource, OnlineSource
from inference.ic.train import Trainer, TrainingConfig

__all__ = [
    "InferenceNetwork", "NetworkConfig", "NetworkProposal", "OfflineSource", "OnlineSource", "Trainer",
    "TrainingConfig", "load_checkpoint", "save_checkpoint",
]
