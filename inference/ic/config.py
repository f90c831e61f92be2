"""Configuration of the inference-compilation network, validated and saved in checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the IC network's parts.

    Attributes:
        lstm_dim: hidden size of the LSTM core.
        lstm_layers: stacked LSTM layers.
        observation_dim: size of the combined observation embedding.
        address_dim: size of each address's learned embedding.
        kind_dim: size of the distribution-kind embedding.
        value_dim: size of the embedding of the previous sample's value.
        components: mixture components of continuous and count proposals.
        embeddings: observation embedding per observed name, e.g.
            ``{"calorimeter": "cnn"}``; names not listed get one chosen by shape.
    """

    lstm_dim: int = 128
    lstm_layers: int = 1
    observation_dim: int = 64
    address_dim: int = 16
    kind_dim: int = 4
    value_dim: int = 8
    components: int = 5
    embeddings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("lstm_dim", "lstm_layers", "observation_dim", "address_dim", "kind_dim", "value_dim",
                     "components"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NetworkConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.embeddings, dict):
            raise ValueError(f"NetworkConfig.embeddings must map observed names to embedding kinds, "
                             f"got {self.embeddings!r}")

    def to_dict(self) -> dict:
        return asdict(self)
