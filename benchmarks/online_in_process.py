"""Online training from an in-process model: batches drawn on the training thread vs by a producer thread.

``OnlineSource`` draws an in-process model's batches on the training thread, where
each trace's random stream applies and a seeded run repeats. The comparison point,
in the same run, is the producer thread that pools and remote simulators get: the
same ``LocalSimulator`` behind a wrapper that hides it from the source's check.
Both train the same small network for the same traces after the same warm-up;
printed are traces per second and their ratio (above 1: the training thread is faster).

    python -m benchmarks.online_in_process [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from benchmarks._processes import start_run
from inference.ic import NetworkConfig, OnlineSource, Trainer, TrainingConfig
from inference.local import LocalSimulator
from simulators import gaussian, tau_decay

NETWORK = NetworkConfig(lstm_dim=32, observation_dim=32)
MODELS: dict[str, tuple[Callable[[], Any], int, int]] = {
    "tau_decay": (tau_decay.model, 256, 32),  # model, traces timed, batch size
    "gaussian": (gaussian.model, 6400, 64),
}


class _InAnotherThread:
    """An in-process simulator that ``OnlineSource`` does not recognise, so it gets a producer thread."""

    def __init__(self, simulator: LocalSimulator) -> None:
        self.simulator = simulator

    def prior(self, *args: Any, **kwargs: Any) -> list:
        return self.simulator.prior(*args, **kwargs)


def traces_per_second(simulator: Any, traces: int, batch_size: int) -> float:
    source = OnlineSource(simulator, batch_size, seed=0)
    try:
        trainer = Trainer(source, NETWORK, TrainingConfig(batch_size=batch_size, validation_size=batch_size,
                                                          validate_every=10**9))
        trainer.train(2 * batch_size, progress_bar=False)  # the network built, every address met
        started = time.perf_counter()
        trainer.train(2 * batch_size + traces, progress_bar=False)
        return traces / (time.perf_counter() - started)
    finally:
        source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    start_run()
    for name, (model, traces, batch_size) in MODELS.items():
        for _ in range(args.repeats):
            own = traces_per_second(LocalSimulator(model), traces, batch_size)
            threaded = traces_per_second(_InAnotherThread(LocalSimulator(model)), traces, batch_size)
            print(f"{name}: training thread {own:7.1f} traces/s, producer thread {threaded:7.1f}; "
                  f"ratio {own / threaded:.2f}", flush=True)


if __name__ == "__main__":
    main()
