"""Tau decays end to end: IC importance sampling vs prior IS vs RMH on held-out events.

The issue's acceptance run and its benchmark in one script. An IC network is
trained on prior traces from a pool of tau-decay simulators (or loaded with
``--network``); then, on each held-out event (generated from seeds the
training never sees), IC IS and prior IS run with the same number of simulator
runs, then IC IS with the network first fitted to the event (``inference.ic.adapt``;
``--adapt-rounds`` rounds of ``--adapt-traces`` runs, which its ESS per run counts; reported
for the final draw alone and with the rounds' traces kept), and on
the first ``--rmh-events`` events RMH runs twice: ``--rmh-chains`` chains
started from the most probable of 100 prior traces, and as many started from IC's
most probable traces, the adapted copy's when there is one (the tau posterior has separate
modes close in density, so chains from one start find one mode). On the first ``--smc-events`` events tempered SMC
runs twice, from different seeds: the reference that mixes, and a second run that shows
how far the reference agrees with itself. Its ladder starts from the trained network's
proposal (``inference.ic.bridge``; ``--smc-start prior`` for the prior). It prints:

* how often the true decay channel is the posterior mode;
* how often the central 68% and 95% credible intervals of px, py and pz hold the
  truth (with the binomial standard error of that rate, so a reader can judge
  whether it is compatible with the nominal level), and beside it the count a
  calibrated engine gives on the same truths (``benchmarks.tau_bound_coverage``:
  short of the nominal rate where truths lie next to the prior's bounds);
* effective samples per simulator run and per second for each engine (Kish's ESS
  for IS, ArviZ's for the RMH chain, on px);
* how many nats below the true trace's log p(x, y) each engine's best and median
  traces lie, which shows a proposal improving long before its ESS leaves 1, and per
  event the true trace's pi/q under IC's proposal (``benchmarks.tau_truth_weight``),
  which tells a miss of the model's posterior from a region the proposal skips;
* IC and RMH posterior means and standard deviations side by side, with each RMH
  run's R-hat across its chains (near 1 only where the chains agree);
* the same for IC against SMC, and for the two SMC runs against each other.

In ``--out`` it writes the numbers (``tau_inference.json``), each event's momentum
posteriors per engine with the truth marked (``event-N-momenta.png``) and
``calibration.png``: where the truth falls in each engine's posteriors over all events
and momenta, which follows the diagonal for a calibrated engine.

SMC's ESS is that of its final weights: resampling's copies count as distinct
particles there, so it is an upper bound; the two runs' agreement is the check.

Training traces and held-out events come, by default, from simulators whose images are
drawn from the calorimeter likelihood (``--image-source likelihood``): with the stage's
real showers the likelihood is misspecified (``simulators.tau.observation``) and even
the exact posterior need not cover the truth at its nominal rate.

This takes hours at its defaults on 2 cores (see README); CI runs none of it.

    python -m benchmarks.tau_inference [--train-traces 100000] [--events 20] [--traces 2000]
        [--smc-events 3 --smc-particles 128 --smc-moves 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch

from benchmarks._processes import start_run
from inference import plots
from inference.ic import NetworkConfig, NetworkProposal, OnlineSource, Trainer, TrainingConfig
from inference.ic.adapt import Adaptation, adapted_importance_sampling
from inference.ic.bridge import NetworkBridge
from inference.ic.checkpoint import load_checkpoint
from inference.importance import importance_sampling
from inference.mcmc import metropolis_hastings
from inference.pool import SimulatorPool
from inference.posterior import Posterior
from inference.smc import tempered_smc
from inference.trace import Trace
from ppx.errors import SimulatorError
from ppx.simulator import record_prior_trace
from simulators import tau_decay
from simulators.tau.channels import CHANNELS

MOMENTA = ("px", "py", "pz")
LEVELS = (0.68, 0.95)
RMH_ENGINES = ("RMH", "RMH from IC")
SMC_ENGINES = ("SMC", "SMC again")
IC_ADAPTED = "IC IS adapted"
IC_ROUNDS_KEPT = "IC IS adapted, rounds kept"
COMPARISONS = (("IC IS", "RMH"), ("IC IS", "RMH from IC"), (IC_ADAPTED, "RMH from IC"),
               (IC_ROUNDS_KEPT, "RMH from IC"), ("IC IS", "SMC"), (IC_ADAPTED, "SMC"), ("SMC", "SMC again"))
"""Pairs of engines whose posterior moments are printed side by side, on the events both ran."""
FIRST_EVENT_SEED = 1_000_000
"""Held-out events use seeds from here on; the demo and the tests use small seeds."""


def train_network(pool: SimulatorPool, args: argparse.Namespace, out: Path):
    if args.network:
        network, _ = load_checkpoint(args.network)
        return network
    source = OnlineSource(pool, args.batch_size)
    try:
        trainer = Trainer(source, NetworkConfig(lstm_dim=args.lstm_dim),
                          TrainingConfig(batch_size=args.batch_size, validation_size=256,
                                         validate_every=max(args.batch_size, args.train_traces // 20)),
                          checkpoint=str(out / "tau-network.ckpt"))
        training = trainer.train(args.train_traces, progress_bar=not args.quiet)
    finally:
        source.close()
    print(f"trained on {training['traces']} traces; validation loss {training['validation'][-1][1]:.2f}")
    return trainer.network


def covered(posterior: Posterior, name: str, truth: float, level: float) -> bool:
    low, high = np.ravel(posterior.quantile(name, [(1 - level) / 2, (1 + level) / 2]))
    return bool(low <= truth <= high)


def assess(posterior: Posterior, truth: dict, seconds: float, runs: int, ess: float) -> dict:
    probabilities = posterior.probabilities("channel")
    return {
        "truth": {name: truth[name] for name in MOMENTA},
        "mode_is_true_channel": max(probabilities, key=probabilities.get) == truth["channel"],
        "probability_of_true_channel": probabilities.get(truth["channel"], 0.0),
        "channel_probabilities": {CHANNELS.names[int(channel)]: probability
                                  for channel, probability in probabilities.items() if probability >= 0.001},
        "covered": {f"{name}@{level}": covered(posterior, name, truth[name], level)
                    for name in MOMENTA for level in LEVELS},
        "mean": {name: float(np.ravel(posterior.mean(name))[0]) for name in MOMENTA},
        "std": {name: float(np.ravel(posterior.std(name))[0]) for name in MOMENTA},
        "ess": ess, "ess_per_run": ess / runs, "ess_per_second": ess / seconds,
        "nats_below_truth": below_truth(posterior, truth),
        "mass_below_truth": {name: float(posterior.cdf(name, truth[name])) for name in MOMENTA},
        "r_hat": {name: float(np.ravel(posterior.variable_rhat(name))[0]) for name in MOMENTA},
    }


def true_trace(seed: int, image_source: str) -> Trace:
    """The trace ``tau_decay.generate_event(seed, image_source=image_source)`` drew, drawn again."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        records, result = record_prior_trace(tau_decay.make_model(image_source=image_source))
    return Trace.from_records(records, result)


def true_log_joint(seed: int, truth: dict, image_source: str) -> float:
    """log p(x, y) of the event ``tau_decay.generate_event(seed, image_source=image_source)`` drew."""
    return log_joint(true_trace(seed, image_source), truth)


def log_joint(trace: Trace, truth: dict) -> float:
    """log p(x, y) of ``trace``, the true trace of the event whose latents are ``truth``."""
    assert float(trace.named("px").value) == truth["px"], "the repeated draw is not the event's"
    return trace.log_prior + trace.log_likelihood


class HeldOutRun(NamedTuple):
    """IC IS on one held-out likelihood-image event."""

    network: Any
    event: int
    truth: dict
    true_trace: Trace
    proposal: NetworkProposal
    posterior: Posterior


def held_out_ic_runs(network_path: str, events: int, runs: int, workers: int) -> Iterator[HeldOutRun]:
    """IC IS with a trained network on held-out likelihood-image events 0 .. ``events`` - 1, each
    with ``runs`` draws."""
    from inference.ic.adapt import quiet_weight_warnings

    torch.set_num_threads(1)
    network, _ = load_checkpoint(network_path)
    network.eval()
    command = "python -m simulators.tau_decay --image-source likelihood"
    with SimulatorPool(command, workers=workers, timeout=120) as pool, quiet_weight_warnings():
        for event in range(events):
            seed = FIRST_EVENT_SEED + event
            truth, observations = tau_decay.generate_event(seed, image_source="likelihood")
            proposal = NetworkProposal(network, observations)
            posterior = importance_sampling(pool, runs, observations, proposal=proposal)
            yield HeldOutRun(network, event, truth, true_trace(seed, "likelihood"), proposal, posterior)


def truth_log_weight_ratio(network, proposal: NetworkProposal, posterior: Posterior, trace: Trace) -> float:
    """log(w* / Z): the true trace weighed as the IC run weighs its draws, over the run's evidence
    estimate; far above log(runs) where the proposal seldom visits the truth's region
    (``benchmarks.tau_truth_weight``)."""
    from benchmarks.tau_truth_weight import log_weight

    return log_weight(network, trace, proposal.observation_embedding) - posterior.log_evidence


def below_truth(posterior: Posterior, truth: dict) -> dict:
    """How far below the true trace's log p(x, y) the engine's best and median traces lie: a
    measure of a proposal that still moves where every ESS is 1."""
    gaps = truth["log_joint"] - np.array([t.log_prior + t.log_likelihood for t in posterior.traces])
    return {"best": float(gaps.min()), "median": float(np.median(gaps))}


def timed(run):
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def rate(rows: list[dict], test) -> str:
    hits = sum(bool(test(row)) for row in rows)
    fraction = hits / len(rows)
    error = np.sqrt(fraction * (1 - fraction) / len(rows))
    return f"{hits}/{len(rows)} = {fraction:.2f} +- {error:.2f}"


def report(results: dict[str, list[dict]]) -> None:
    print(f"\n{'engine':<28}{'events':>7}  {'true channel at mode':<24}" +
          "".join(f"{name + ' ' + str(level):<24}" for name in MOMENTA for level in LEVELS))
    for engine, rows in results.items():
        cells = "".join(f"{rate(rows, lambda row, k=f'{name}@{level}': row['covered'][k]):<24}"
                        for name in MOMENTA for level in LEVELS)
        print(f"{engine:<28}{len(rows):>7}  {rate(rows, lambda row: row['mode_is_true_channel']):<24}{cells}")
    print(f"\n{'engine':<28}{'mean ESS':>10}{'ESS/run':>10}{'ESS/s':>10}   nats below the truth's log p(x, y): "
          f"best trace, median trace (medians over events)")
    for engine, rows in results.items():
        best = np.median([r["nats_below_truth"]["best"] for r in rows])
        median = np.median([r["nats_below_truth"]["median"] for r in rows])
        print(f"{engine:<28}{np.mean([r['ess'] for r in rows]):>10.1f}"
              f"{np.mean([r['ess_per_run'] for r in rows]):>10.4f}{np.mean([r['ess_per_second'] for r in rows]):>10.3f}"
              f"   {best:.0f}, {median:.0f}")
    ratios = [row["truth_log_weight_ratio"] for row in results.get("IC IS", []) if "truth_log_weight_ratio" in row]
    if ratios:
        print(f"\nIC IS: the true trace's log(pi/q), median {np.median(ratios):.1f} over events "
              f"(range {min(ratios):.1f} to {max(ratios):.1f}); about log(runs) per effective sample")
    report_bound_coverage(results)
    for first, second in COMPARISONS:
        if results.get(first) and results.get(second):
            compare(results, first, second)


def report_bound_coverage(results: dict[str, list[dict]], min_ess: float = 2.0) -> None:
    """Beside each count of intervals that hold the truth, the count a calibrated engine gives on
    the same truths, which falls short of the nominal rate where truths lie next to the prior's
    bounds (``benchmarks.tau_bound_coverage``)."""
    from benchmarks.tau_bound_coverage import expected_counts

    kept_by_engine = {engine: kept for engine, rows in results.items()
                      if (kept := [row for row in rows if row["ess"] >= min_ess])}
    if not kept_by_engine:
        return
    print(f"\nintervals holding the truth, against a calibrated engine's count on the same truths "
          f"(events with ESS >= {min_ess:g}):")
    rng = np.random.default_rng(0)
    for engine, kept in kept_by_engine.items():
        counts = expected_counts(kept, {row["event"]: row["truth"] for row in kept}, rng)
        print(f"  {engine} ({len(kept)} events): " + "; ".join(
            f"{name} {level}: {observed} vs {expected:.1f} +- {spread:.1f}"
            for (name, level), (expected, spread, observed) in counts.items()))


def compare(results: dict[str, list[dict]], first: str, second: str) -> None:
    """Posterior moments of two engines on each event the second ran; R-hat for MCMC, stages for SMC."""
    print(f"\n{first} vs {second} on the same events (mean +- std):")
    by_event = {row["event"]: row for row in results[first]}
    for row in results[second]:
        other = by_event[row["event"]]
        detail = (lambda name: f"R-hat {row['r_hat'][name]:.2f}") if second in RMH_ENGINES else (
            lambda name: f"{row['stages']} stages")
        print(f"  event {row['event']}: " + "; ".join(
            f"{name}: {other['mean'][name]:.2f} +- {other['std'][name]:.2f} vs {row['mean'][name]:.2f} +- "
            f"{row['std'][name]:.2f} ({detail(name)})" for name in MOMENTA))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-traces", type=int, default=100_000)
    parser.add_argument("--network", help="use this IC checkpoint instead of training one")
    parser.add_argument("--events", type=int, default=20, help="held-out events")
    parser.add_argument("--traces", type=int, default=2000, help="simulator runs per IS engine per event")
    parser.add_argument("--adapt-rounds", type=int, default=5,
                        help="rounds fitting the network to each event before IC IS (0: no adapted IC IS)")
    parser.add_argument("--adapt-traces", type=int, default=200, help="simulator runs per adaptation round")
    parser.add_argument("--adapt-steps", type=int, default=20, help="Adam steps per adaptation round")
    parser.add_argument("--rmh-events", type=int, default=3)
    parser.add_argument("--rmh-steps", type=int, default=20_000, help="kept RMH steps per event, all chains")
    parser.add_argument("--rmh-chains", type=int, default=8, help="RMH chains per event and start")
    parser.add_argument("--smc-events", type=int, default=3, help="events with two SMC reference runs")
    parser.add_argument("--smc-particles", type=int, default=128)
    parser.add_argument("--smc-moves", type=int, default=20, help="RMH steps per particle and stage")
    parser.add_argument("--smc-start", choices=("network", "prior"), default="network",
                        help="where SMC's ladder starts: the trained network's proposal (default) or the prior")
    parser.add_argument("--image-source", choices=tau_decay.IMAGE_SOURCES, default="likelihood",
                        help="what the simulators' images are made of (default likelihood: events that follow the "
                             "model, so that coverage measures the engines; showers: the stage's real showers)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lstm-dim", type=int, default=128)
    parser.add_argument("--out", default="tau-inference-output")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    out = start_run(args.out)
    adaptation = Adaptation(rounds=args.adapt_rounds, traces_per_round=args.adapt_traces,
                            steps_per_round=args.adapt_steps)
    results: dict[str, list[dict]] = {"IC IS": [], IC_ADAPTED: [], IC_ROUNDS_KEPT: [], "prior IS": [],
                                      **{engine: [] for engine in RMH_ENGINES + SMC_ENGINES}}
    command = f"python -m simulators.tau_decay --image-source {args.image_source}"
    with SimulatorPool(command, workers=args.workers, timeout=120) as pool:
        network = train_network(pool, args, out)
        for index in range(args.events):
            truth, observation = tau_decay.generate_event(FIRST_EVENT_SEED + index, image_source=args.image_source)
            truth_trace = true_trace(FIRST_EVENT_SEED + index, args.image_source)
            truth["log_joint"] = log_joint(truth_trace, truth)
            proposal = NetworkProposal(network, observation)
            ic, ic_seconds = timed(lambda: importance_sampling(pool, args.traces, observation, proposal=proposal))
            prior, prior_seconds = timed(lambda: importance_sampling(pool, args.traces, observation))
            truth_ratio = truth_log_weight_ratio(network, proposal, ic, truth_trace)
            results["IC IS"].append(dict(assess(ic, truth, ic_seconds, args.traces, ic.ess), event=index,
                                         truth_log_weight_ratio=truth_ratio))
            results["prior IS"].append(dict(assess(prior, truth, prior_seconds, args.traces, prior.ess),
                                            event=index))
            line = (f"event {index} ({truth['channel_name']}): IC ESS {ic.ess:.1f}, "
                    f"P(true channel) {results['IC IS'][-1]['probability_of_true_channel']:.2f}, best trace "
                    f"{results['IC IS'][-1]['nats_below_truth']['best']:.0f} nats below the truth (prior IS "
                    f"{results['prior IS'][-1]['nats_below_truth']['best']:.0f}), the truth's pi/q e^{truth_ratio:.1f}")
            adapted = None
            if args.adapt_rounds:
                kept, adapted_seconds = timed(lambda: adapted_importance_sampling(
                    pool, network, args.traces, observation, adaptation, keep_rounds=True))
                # The final draw alone: its weights, self-normalised, are the last ones of the mixture.
                adapted = Posterior(kept.traces[-args.traces:], kept.log_weights[-args.traces:], engine="ic-adapted")
                runs = args.traces + adaptation.runs
                rounds = kept.adaptation["records"]
                for engine, posterior in ((IC_ADAPTED, adapted), (IC_ROUNDS_KEPT, kept)):
                    results[engine].append(dict(assess(posterior, truth, adapted_seconds, runs, posterior.ess),
                                                event=index, rounds=rounds))
                line += (f"; adapted IC ESS {adapted.ess:.1f}, {kept.ess:.1f} with the rounds kept (rounds' ESS "
                         + ", ".join(f"{r['ess']:.1f}" for r in rounds)
                         + f"), best trace {results[IC_ADAPTED][-1]['nats_below_truth']['best']:.0f} nats below")
            shown = {"IC IS": ic, "prior IS": prior}
            if adapted is not None:
                shown.update({IC_ADAPTED: adapted, IC_ROUNDS_KEPT: kept})
            if index < args.rmh_events:
                for engine, starts in zip(RMH_ENGINES, (None, (ic if adapted is None else adapted).traces)):
                    try:
                        rmh, rmh_seconds = timed(lambda: metropolis_hastings(
                            pool, args.rmh_steps, observation, chains=args.rmh_chains, starts=starts, seed=index))
                    except SimulatorError as err:  # reported, so that one failure does not cost the run
                        line += f"; {engine} failed: {str(err)[:300]}"
                        continue
                    ess = float(np.ravel(rmh.variable_ess("px"))[0])
                    results[engine].append(dict(assess(rmh, truth, rmh_seconds, rmh.num_traces, ess), event=index))
                    shown[engine] = rmh
                    line += f"; {engine} ESS(px) {ess:.1f}, R-hat(px) {results[engine][-1]['r_hat']['px']:.2f}"
            if index < args.smc_events:
                for run, engine in enumerate(SMC_ENGINES):
                    bridge = NetworkBridge(network, observation) if args.smc_start == "network" else None
                    smc, smc_seconds = timed(lambda: tempered_smc(
                        pool, args.smc_particles, observation, moves=args.smc_moves, seed=2 * index + run,
                        bridge=bridge))
                    results[engine].append(dict(assess(smc, truth, smc_seconds, smc.simulator_runs, smc.ess),
                                                event=index, stages=len(smc.acceptance_rates)))
                    line += (f"; {engine}: {len(smc.acceptance_rates)} stages, {smc.simulator_runs} runs, "
                             f"{smc_seconds:.0f} s")
            plots.posterior_histograms(shown, MOMENTA, truth, out / f"event-{index}-momenta.png")
            print(line, flush=True)
    report({engine: rows for engine, rows in results.items() if rows})
    plots.calibration({engine: [row["mass_below_truth"][name] for row in rows for name in MOMENTA]
                       for engine, rows in results.items() if rows}, out / "calibration.png")
    (out / "tau_inference.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2,
                                                      default=float))


if __name__ == "__main__":
    main()
