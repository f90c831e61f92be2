"""GAN surrogates of a simulator stage: record its input -> output pairs, train, sample, evaluate.

The stage modelled is a calorimeter shower (particle kind and incident energy
in, cell energies out; CaloGAN geometry by default)::

    from inference import LocalSimulator
    from inference.surrogate import Surrogate, evaluate, read_showers, record_showers, train_surrogate
    from simulators.calorimeter import model

    record_showers(LocalSimulator(model), 20_000, "showers.h5")
    train_surrogate(read_showers("showers.h5"), "surrogate.pt", epochs=30)
    surrogate = Surrogate.load("surrogate.pt")
    showers = surrogate.sample(kinds, energies)            # (N, 504) cell energies, GeV
    print(evaluate(read_showers("test.h5"), surrogate.sample_like(read_showers("test.h5"))).table())
"""

from inference.surrogate.classifier import ClassifierResult, classifier_auc
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.critic import ShowerCritic
from inference.surrogate.evaluate import Evaluation, evaluate
from inference.surrogate.generator import ShowerGenerator
from inference.surrogate.geometry import CALOGAN, Geometry
from inference.surrogate.metrics import ks_distance, roc_auc, separation_power
from inference.surrogate.observables import observable_names, shower_observables
from inference.surrogate.record import RecordResult, TraceNames, record_showers
from inference.surrogate.showers_file import ShowerData, ShowerWriter, read_showers, write_showers
from inference.surrogate.surrogate import Surrogate
from inference.surrogate.train import TrainingResult, train_surrogate

__all__ = [
    "CALOGAN", "ClassifierResult", "Evaluation", "Geometry", "RecordResult", "ShowerCritic", "ShowerData",
    "ShowerGenerator", "ShowerWriter", "Surrogate", "SurrogateConfig", "TraceNames", "TrainingResult",
    "classifier_auc", "evaluate", "ks_distance", "observable_names", "read_showers", "record_showers",
    "roc_auc", "separation_power", "shower_observables", "train_surrogate", "write_showers",
]
