"""The longer surrogate run: record the calorimeter stage, train its GAN surrogate, print the fidelity table.

Records training and test showers from ``simulators.calorimeter`` through a
pool of simulator processes (files already there are reused), trains the GAN
(resuming a checkpoint already there, so the run can be stopped and continued),
generates showers for the test showers' kinds and energies, and prints the
fidelity table with plots, against the targets: a classifier AUC below 0.75 and a
total-energy response separation power below 1e-3.

    python examples/surrogate_fidelity.py --out runs/fidelity --train 100000 --test 100000 --epochs 60

About 40 minutes on 2 cores. Keep the test set near 100k showers: with 10k the
classifier has too little to learn from and reports an AUC far below what a
well-trained one finds (0.74 against 0.94 for one surrogate), and response
differences below a few 1e-3 in separation power are lost in the histograms' noise.

Everything lands in --out: train.h5, test.h5, surrogate.pt, generated.h5,
plots/ and fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import torch

from inference.pool import SimulatorPool
from inference.surrogate import Surrogate, evaluate, read_showers, record_showers, train_surrogate, write_showers

STAGE = "python -m simulators.calorimeter"
AUC_TARGET, RESPONSE_TARGET = 0.75, 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/surrogate_fidelity", help="folder for data, checkpoint and plots")
    parser.add_argument("--train", type=int, default=100_000, help="training showers to record")
    parser.add_argument("--test", type=int, default=100_000, help="test showers to record")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs in all")
    parser.add_argument("--workers", type=int, default=2, help="simulator processes recording")
    parser.add_argument("--critic-steps", type=int, default=5, help="critic steps per generator step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--classifier-epochs", type=int, default=40)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    paths = {name: os.path.join(args.out, name) for name in
             ("train.h5", "test.h5", "surrogate.pt", "generated.h5", "plots", "fidelity.json")}

    for name, count in (("train.h5", args.train), ("test.h5", args.test)):
        if os.path.exists(paths[name]) and len(read_showers(paths[name])) >= count:
            print(f"reusing {paths[name]}")
            continue
        with SimulatorPool(STAGE, workers=args.workers, timeout=120) as pool:
            result = record_showers(pool, count, paths[name], progress=not args.quiet)
        print(f"recorded {count} showers in {result.seconds:.0f} s ({result.showers_per_second:.0f}/s) "
              f"to {paths[name]}")

    started = time.perf_counter()
    training = train_surrogate(read_showers(paths["train.h5"]), paths["surrogate.pt"], resume=True,
                               progress=not args.quiet, epochs=args.epochs, critic_steps=args.critic_steps)
    print(f"trained to epoch {training.epochs} in {time.perf_counter() - started:.0f} s; best epoch "
          f"{training.best_epoch} (mean KS {training.best_score:.4f} on held-out showers)")

    test = read_showers(paths["test.h5"])
    generated = Surrogate.load(paths["surrogate.pt"]).sample_like(test, seed=0)
    write_showers(paths["generated.h5"], generated)
    report = evaluate(test, generated, out_dir=paths["plots"], epochs=args.classifier_epochs)
    print(report.table())
    auc, response = report.cell_classifier.auc, report.row("response").separation_power
    print(f"targets: cell classifier AUC {auc:.3f} (target < {AUC_TARGET}: "
          f"{'met' if auc < AUC_TARGET else 'not met'}); response separation power {response:.2e} "
          f"(target < {RESPONSE_TARGET:.0e}: {'met' if response < RESPONSE_TARGET else 'not met'}; "
          f"real/real floor at this size {report.row('response').reference_separation_power:.1e})")
    with open(paths["fidelity.json"], "w") as file:
        json.dump({**report.summary(), "training": {"epochs": training.epochs, "best_epoch": training.best_epoch,
                                                     "best_mean_ks": training.best_score}}, file, indent=1)


if __name__ == "__main__":
    main()
