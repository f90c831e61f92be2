"""The result of an inference run: traces, their weights, statistics and diagnostics.

A ``Posterior`` holds the traces an engine produced and, for importance
sampling (IS), their log weights; MCMC samples come equally weighted with the
chain each draw belongs to. Variables are read by name (the named samples and
tags of ``Trace.variables()`` plus ``"result"``) or, for sampled choices without
a name, by address key (``Choice.key``).

Traces of one model need not share their structure, so a variable may be
missing from some traces. Every statistic of such a variable is *conditional*
on the variable existing: it is computed over the traces that hold it, with
their weights renormalised. ``presence(var)`` gives the posterior probability
that the variable exists at all.

Example:
    >>> posterior = Posterior(traces, log_weights)          # doctest: +SKIP
    >>> posterior.mean("mu"), posterior.ess, posterior.khat  # doctest: +SKIP
    >>> print(posterior.table(truth={"mu": 0.3}))            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Union

import numpy as np

from inference.atomic_file import atomic_path
from inference.trace import Trace
from ppx.messages import RECORD_SAMPLE

if TYPE_CHECKING:
    import arviz

logger = logging.getLogger(__name__)

KHAT_THRESHOLD = 0.7
"""Pareto k-hat above which importance weights are unreliable (Vehtari et al.)."""

SUMMARY_MAX_ELEMENTS = 16
"""Tensors with more elements than this are summarised by shape only."""

_MIN_MCMC_DRAWS = 4
"""ArviZ needs at least this many draws per chain to estimate an ESS."""


def _arviz():
    """ArviZ, imported on first use without its once-a-day refactor ``FutureWarning``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz
    return arviz


def _log_mean_exp(log_values: np.ndarray) -> float:
    top = float(np.max(log_values))
    return top + math.log(float(np.mean(np.exp(log_values - top))))


class _Column:
    """Which traces hold one variable (``index``), and its value in each of them."""

    __slots__ = ("index", "raw", "_stacked")

    def __init__(self, index: list[int], raw: list[Any]) -> None:
        self.index = np.asarray(index, dtype=np.int64)
        self.raw = raw
        self._stacked: Optional[np.ndarray] = None

    def stacked(self, var: str) -> np.ndarray:
        """The values as one ``(m, *shape)`` float64 array."""
        if self._stacked is None:
            try:
                self._stacked = np.array(self.raw, dtype=np.float64)
            except ValueError as err:
                shapes = sorted({np.shape(value) for value in self.raw})
                raise ValueError(f"variable {var!r} has different shapes in different traces "
                                 f"({shapes}); read them from the traces one by one") from err
        return self._stacked


def _columns(pairs_per_trace: Iterable[Iterable[tuple[str, Any]]]) -> dict[str, _Column]:
    """Columns from the ``(variable, value)`` pairs of each trace, in trace order."""
    index: dict[str, list[int]] = {}
    raw: dict[str, list[Any]] = {}
    for i, pairs in enumerate(pairs_per_trace):
        for var, value in pairs:
            if var in raw:
                raw[var].append(value)
                index[var].append(i)
            else:
                raw[var] = [value]
                index[var] = [i]
    return {var: _Column(index[var], raw[var]) for var in raw}


def _collect_named(traces: Sequence[Trace]) -> dict[str, _Column]:
    return _columns(trace.variables().items() for trace in traces)


def _collect_keys(traces: Sequence[Trace]) -> dict[str, _Column]:
    return _columns(((c.key, c.value) for c in trace.choices if c.kind == RECORD_SAMPLE)
                    for trace in traces)


def _check_log_weights(log_weights: np.ndarray, count: int) -> np.ndarray:
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.shape != (count,):
        raise ValueError(f"expected one log weight per trace, shape ({count},), "
                         f"got shape {log_weights.shape}")
    if np.isnan(log_weights).any() or (log_weights == np.inf).any():
        raise ValueError("log weights must be finite or -inf, got NaN or +inf; "
                         "check the proposal and likelihood that produced them")
    if not np.isfinite(log_weights).any():
        raise ValueError("every log weight is -inf: no trace is compatible with the observations")
    return log_weights


def _check_chain(chain: Optional[np.ndarray], count: int) -> np.ndarray:
    if chain is None:
        return np.zeros(count, dtype=np.int64)
    chain = np.asarray(chain)
    if chain.shape != (count,) or not np.issubdtype(chain.dtype, np.integer):
        raise ValueError(f"expected one integer chain index per trace, shape ({count},), "
                         f"got {chain.dtype} of shape {chain.shape}")
    return chain.astype(np.int64, copy=False)


def _pareto_khat(log_weights: np.ndarray) -> float:
    """PSIS k-hat of the weights; identical weights have no tail and get 0."""
    finite = log_weights[np.isfinite(log_weights)]
    if np.ptp(finite) == 0:
        return 0.0
    _, khat = _arviz().psislw(log_weights.copy(), reff=1.0)
    return float(khat)


def _warn_if_unreliable(khat: float, count: int) -> None:
    if math.isinf(khat):
        logger.warning("importance weights are unreliable: %d traces are too few to estimate "
                       "the Pareto k-hat of their tail", count)
    elif khat > KHAT_THRESHOLD:
        logger.warning("importance weights are unreliable: Pareto k-hat %.2f > %.1f, so a few "
                       "traces dominate; use a better proposal or many more traces",
                       khat, KHAT_THRESHOLD)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles ``q`` of each column of ``values`` (m, k): (len(q), k), midpoint CDF."""
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    order = np.argsort(values, axis=0)
    sorted_values = np.take_along_axis(values, order, axis=0)
    sorted_weights = weights[order]
    cdf = (np.cumsum(sorted_weights, axis=0) - 0.5 * sorted_weights) / weights.sum()
    return np.stack([np.interp(q, cdf[:, j], sorted_values[:, j])
                     for j in range(values.shape[1])], axis=-1)


def _python_key(row: np.ndarray) -> Union[int, float, tuple]:
    items = [int(x) if float(x).is_integer() else float(x) for x in row]
    return items[0] if len(items) == 1 else tuple(items)


def _json_float(value: Optional[float]) -> Optional[float]:
    """``value`` as a plain float, or None where JSON has no number for it."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _element_names(var: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [var]
    return [f"{var}[{','.join(map(str, index))}]" for index in np.ndindex(*shape)]


def _cell(value: Any, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float):
        return f"{value:{width}.5g}"
    return str(value).rjust(width)


def _percent(fraction: Optional[float]) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


_TABLE_COLUMNS = ("mean", "std", "ess", "r_hat", "presence", "truth")
_OPTIONAL_COLUMNS = ("r_hat", "truth")
"""Shown only when some variable has them (R-hat for MCMC draws, truth when given)."""


def _format_table(summary: dict[str, Any]) -> str:
    """Fixed-width text for a ``Posterior.summary()``."""
    header = (f"engine {summary['engine']}  traces {summary['num_traces']}  "
              f"ESS {_cell(summary['ess'], 0)} ({_percent(summary['ess_fraction'])})  "
              f"k-hat {_cell(summary['khat'], 0)}  "
              f"log evidence {_cell(summary['log_evidence'], 0)}")
    if "r_hat" in summary:
        header += f"  worst R-hat {_cell(summary['r_hat'], 0)}"
    names = list(summary["variables"]) or ["variable"]
    name_width = max(len("variable"), *(len(name) for name in names))
    columns = [c for c in _TABLE_COLUMNS
               if c not in _OPTIONAL_COLUMNS or any(c in e for e in summary["variables"].values())]
    lines = [header, "variable".ljust(name_width) + "".join(c.rjust(12) for c in columns)]
    for name, entry in summary["variables"].items():
        if "shape" in entry:
            shape = "varies" if entry["shape"] is None else tuple(entry["shape"])
            lines.append(f"{name.ljust(name_width)}  shape {shape}, presence "
                         f"{_cell(entry['presence'], 0)}")
        else:
            lines.append(name.ljust(name_width)
                         + "".join(_cell(entry.get(c), 12) for c in columns))
    return "\n".join(lines)


class Posterior:
    """Weighted (IS) or equally weighted (MCMC) traces and what they say about each variable.

    Args:
        traces: the traces the engine produced.
        log_weights: one unnormalised log importance weight per trace; None for
            equally weighted samples (MCMC, or resampled IS).
        chain: the MCMC chain of each trace (draws of a chain in trace order);
            defaults to a single chain.
        engine: a label for the engine that produced the traces, kept in summaries.
        log_evidence: the engine's own estimate of log p(y), where it has a better
            one than the log mean weight (sequential Monte Carlo's product over stages).

    Raises:
        ValueError: no traces, or weights or chain indices of the wrong shape,
            NaN or +inf log weights, or every log weight -inf.
    """

    def __init__(self, traces: Sequence[Trace], log_weights: Optional[np.ndarray] = None, *,
                 chain: Optional[np.ndarray] = None, engine: str = "is",
                 log_evidence: Optional[float] = None) -> None:
        if len(traces) == 0:
            raise ValueError("a posterior needs at least one trace, got none")
        self.traces = list(traces)
        self.engine = engine
        count = len(self.traces)
        self._chain = _check_chain(chain, count)
        self._log_weights = None if log_weights is None else _check_log_weights(log_weights, count)
        if self._log_weights is None:
            self._weights = np.full(count, 1.0 / count)
            self._khat: Optional[float] = None
        else:
            shifted = np.exp(self._log_weights - self._log_weights.max())
            self._weights = shifted / shifted.sum()
            self._khat = _pareto_khat(self._log_weights)
            _warn_if_unreliable(self._khat, count)
        self._named = _collect_named(self.traces)
        self._keys: Optional[dict[str, _Column]] = None
        self._log_evidence = log_evidence

    # ---- what there is ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.traces)

    @property
    def num_traces(self) -> int:
        return len(self.traces)

    @property
    def is_weighted(self) -> bool:
        """True for importance-weighted traces, False for equally weighted samples."""
        return self._log_weights is not None

    @property
    def log_weights(self) -> Optional[np.ndarray]:
        """The raw log weights as given (None when equally weighted)."""
        return self._log_weights

    @property
    def chain(self) -> np.ndarray:
        return self._chain

    @property
    def variable_names(self) -> tuple[str, ...]:
        """Named variables in order of first appearance."""
        return tuple(self._named)

    @property
    def address_keys(self) -> tuple[str, ...]:
        """Address keys of every sampled choice in any trace, in order of first appearance."""
        return tuple(self._key_columns())

    def _key_columns(self) -> dict[str, _Column]:
        if self._keys is None:
            self._keys = _collect_keys(self.traces)
        return self._keys

    def _column(self, var: str) -> _Column:
        column = self._named.get(var)
        if column is None:
            column = self._key_columns().get(var)
        if column is None:
            raise KeyError(f"no variable or address key {var!r} in the posterior; "
                           f"named variables are {list(self._named)}")
        return column

    # ---- values and weights -----------------------------------------------------------

    def values(self, var: str) -> np.ndarray:
        """``(m, *shape)`` values of ``var`` in the m traces that hold it."""
        return self._column(var).stacked(var)

    def weights(self, var: Optional[str] = None) -> np.ndarray:
        """Normalised weights of the traces holding ``var`` (of all traces when None).

        Raises:
            ValueError: ``var`` occurs only in traces of zero weight.
        """
        if var is None:
            return self._weights
        weights = self._weights[self._column(var).index]
        total = weights.sum()
        if total == 0:
            raise ValueError(f"variable {var!r} occurs only in traces of zero posterior weight")
        return weights / total

    def presence(self, var: str) -> float:
        """Posterior probability that ``var`` exists in a trace."""
        return min(1.0, float(self._weights[self._column(var).index].sum()))

    # ---- statistics (conditional on the variable existing) -----------------------------

    def mean(self, var: str) -> np.ndarray:
        """Weighted mean of ``var``, elementwise; a 0-d array for a scalar."""
        values = self.values(var)
        return np.tensordot(self.weights(var), values, axes=1)

    def std(self, var: str) -> np.ndarray:
        """Weighted standard deviation of ``var`` (the plug-in estimate, no bias correction)."""
        values = self.values(var)
        deviation = values - np.tensordot(self.weights(var), values, axes=1)
        return np.sqrt(np.tensordot(self.weights(var), deviation ** 2, axes=1))

    def quantile(self, var: str, q: Union[float, Sequence[float], np.ndarray]) -> np.ndarray:
        """Weighted quantiles of ``var``, elementwise: shape ``(*np.shape(q), *shape)``.

        Each trace's weight is centred on its value (midpoint rule), so equal
        weights give numpy's ``"hazen"`` quantiles.
        """
        values = self.values(var)
        q_array = np.asarray(q, dtype=np.float64)
        if ((q_array < 0) | (q_array > 1)).any():
            raise ValueError(f"quantiles must lie in [0, 1], got {q!r}")
        flat = values.reshape(len(values), -1)
        result = _weighted_quantiles(flat, self.weights(var), q_array.ravel())
        return result.reshape(q_array.shape + values.shape[1:])

    def cdf(self, var: str, value: Any) -> np.ndarray:
        """Posterior probability that ``var`` is at most ``value``, elementwise (``value``
        broadcast to the variable's shape); where a true value falls in the posterior."""
        values = self.values(var)
        flat = values.reshape(len(values), -1)
        bound = np.broadcast_to(np.asarray(value, dtype=np.float64), values.shape[1:]).ravel()
        below = self.weights(var) @ (flat <= bound)
        return below.reshape(values.shape[1:])

    def histogram(self, var: str, bins: Any = 10, range: Optional[tuple[float, float]] = None,
                  density: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Weighted ``numpy.histogram`` of a scalar variable: ``(heights, bin_edges)``.

        Without ``density`` the heights are posterior probabilities per bin (they
        sum to one over the range); with it, a probability density.
        """
        values = self.values(var)
        if values.ndim != 1:
            raise ValueError(f"histogram expects a scalar variable, {var!r} has shape "
                             f"{values.shape[1:]}; histogram values({var!r})[:, i] instead")
        return np.histogram(values, bins=bins, range=range, weights=self.weights(var),
                            density=density)

    def probabilities(self, var: str) -> dict[Union[int, float, tuple], float]:
        """Posterior probability of each distinct value of a discrete variable.

        Keys are Python numbers (ints where the value is integral) for scalars and
        tuples for tensors, in increasing order; values of zero probability are left out.
        """
        values = self.values(var)
        flat = values.reshape(len(values), -1)
        unique, inverse = np.unique(flat, axis=0, return_inverse=True)
        mass = np.bincount(inverse.ravel(), weights=self.weights(var), minlength=len(unique))
        return {_python_key(row): float(p) for row, p in zip(unique, mass) if p > 0}

    def resample(self, n: int, rng: Union[np.random.Generator, int, None] = None) -> "Posterior":
        """``n`` traces drawn with replacement by weight, as an equally weighted posterior."""
        generator = np.random.default_rng(rng)
        chosen = generator.choice(self.num_traces, size=n, p=self._weights)
        return Posterior([self.traces[i] for i in chosen], engine=f"{self.engine}-resampled")

    # ---- diagnostics -------------------------------------------------------------------

    @property
    def ess(self) -> float:
        """Kish effective sample size over all traces, (sum w)^2 / sum w^2.

        This is ``num_traces`` for equally weighted samples; their autocorrelation
        is reflected by ``variable_ess`` instead.
        """
        return float(1.0 / np.sum(self._weights ** 2))

    @property
    def ess_fraction(self) -> float:
        return self.ess / self.num_traces

    @property
    def khat(self) -> Optional[float]:
        """PSIS Pareto k-hat of the importance weights (None when equally weighted).

        Below 0.5 the weights are fine, up to 0.7 usable, above that unreliable
        (a warning is logged when the posterior is built). ``inf`` means too few
        traces to estimate it; identical weights have no tail and get 0.
        """
        return self._khat

    @property
    def log_evidence(self) -> Optional[float]:
        """Estimate of the log marginal likelihood log p(y): the engine's own where it gave one,
        else (IS) the log mean exp of the log weights."""
        if self._log_evidence is not None:
            return self._log_evidence
        if self._log_weights is None:
            return None
        return _log_mean_exp(self._log_weights)

    def variable_ess(self, var: str) -> np.ndarray:
        """Effective sample size of ``var``, elementwise.

        Weighted traces: Kish ESS of the traces holding ``var``. Equally weighted
        traces: ArviZ's bulk ESS across chains, truncated to the shortest chain's
        draws of ``var`` (NaN with fewer than four).
        """
        values = self.values(var)
        if self.is_weighted:
            weights = self._weights[self._column(var).index]
            ess = weights.sum() ** 2 / np.sum(weights ** 2) if weights.any() else 0.0
            return np.full(values.shape[1:], ess)
        return self._chain_statistic(var, values, "ess")

    @property
    def _is_mcmc(self) -> bool:
        """Equally weighted draws from chains (prior draws are equally weighted but independent)."""
        return not self.is_weighted and self.engine != "prior"

    def variable_rhat(self, var: str) -> np.ndarray:
        """ArviZ's rank-normalised split R-hat of ``var`` across MCMC chains, elementwise.

        Values well above 1 (ArviZ suggests 1.01) say the chains have not mixed: they
        disagree, or each is still drifting. NaN for weighted traces and for prior
        draws, which have no chains, and where a chain has fewer than four draws of
        ``var``.
        """
        values = self.values(var)
        if not self._is_mcmc:
            return np.full(values.shape[1:], np.nan)
        return self._chain_statistic(var, values, "rhat")

    def _chain_statistic(self, var: str, values: np.ndarray, statistic: str) -> np.ndarray:
        """ArviZ's ``statistic`` ("ess" or "rhat") over the chains' draws of ``var``, each cut
        to the shortest chain's count."""
        chains = self._chain[self._column(var).index]
        per_chain = [values[chains == c] for c in np.unique(chains)]
        draws = min(len(draws) for draws in per_chain)
        if draws < _MIN_MCMC_DRAWS:
            return np.full(values.shape[1:], np.nan)
        stacked = np.stack([draws_of_chain[:draws] for draws_of_chain in per_chain])
        az = _arviz()
        result = getattr(az, statistic)(az.convert_to_dataset({"v": stacked}))["v"].values
        return np.asarray(result, dtype=np.float64).reshape(values.shape[1:])

    # ---- reports -----------------------------------------------------------------------

    def summary(self, truth: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """A JSON-serialisable report of the run and of every named variable.

        Top level: engine, num_traces, ess, ess_fraction, khat, log_evidence and
        ``variables``; for equally weighted MCMC draws the top-level ess is the
        smallest per-variable ESS (for prior draws, the number of traces), and
        r_hat the largest per-variable R-hat. Each scalar, and each element
        ``name[i]`` of a tensor of at most ``SUMMARY_MAX_ELEMENTS`` elements, gets
        mean, std, ess, khat (the run's, repeated for convenience), presence, r_hat
        for MCMC draws and, when given, truth. Larger
        or varying-shape tensors get only presence and shape. Numbers JSON cannot
        hold (NaN, infinity) become None.
        """
        truth = truth or {}
        variables: dict[str, dict[str, Any]] = {}
        for var in self._named:
            variables.update(self._summarise_variable(var, truth.get(var)))
        ess = self.ess
        if self._is_mcmc:
            # Equally weighted MCMC draws are autocorrelated: report the worst variable's ESS.
            # (Prior draws are independent: each is a whole effective sample.)
            per_variable = [v["ess"] for v in variables.values() if v.get("ess") is not None]
            ess = min(per_variable) if per_variable else float("nan")
        summary = {
            "engine": self.engine,
            "num_traces": self.num_traces,
            "ess": _json_float(ess),
            "ess_fraction": _json_float(ess / self.num_traces),
            "khat": _json_float(self._khat),
            "log_evidence": _json_float(self.log_evidence),
            "variables": variables,
        }
        if self._is_mcmc:
            r_hats = [v["r_hat"] for v in variables.values() if v.get("r_hat") is not None]
            summary["r_hat"] = max(r_hats) if r_hats else None
        return summary

    def _summarise_variable(self, var: str, truth: Any) -> dict[str, dict[str, Any]]:
        presence = self.presence(var)
        try:
            values = self.values(var)
        except ValueError:
            return {var: {"presence": presence, "shape": None}}
        shape = values.shape[1:]
        if presence == 0 or math.prod(shape) > SUMMARY_MAX_ELEMENTS:
            return {var: {"presence": presence, "shape": list(shape)}}
        columns = {
            "mean": self.mean(var).ravel(),
            "std": self.std(var).ravel(),
            "ess": self.variable_ess(var).ravel(),
        }
        if self._is_mcmc:
            columns["r_hat"] = self.variable_rhat(var).ravel()
        if truth is not None:
            columns["truth"] = np.broadcast_to(np.asarray(truth, dtype=np.float64), shape).ravel()
        entries = {}
        for i, element in enumerate(_element_names(var, shape)):
            entry = {stat: _json_float(column[i]) for stat, column in columns.items()}
            entry.update(khat=_json_float(self._khat), presence=presence)
            entries[element] = entry
        return entries

    def table(self, truth: Optional[dict[str, Any]] = None) -> str:
        """The summary as a fixed-width text table."""
        return _format_table(self.summary(truth))

    # ---- ArviZ -------------------------------------------------------------------------

    def to_inference_data(self) -> "arviz.InferenceData":
        """The draws as ArviZ ``InferenceData``.

        The ``posterior`` group holds every variable present in all traces with one
        shape, as ``(chain, draw, *shape)``; MCMC chains are truncated to the
        shortest. ArviZ has no weighted-sample type, so IS traces are stored as raw
        (unweighted) draws in one chain, with their log weights in ``sample_stats``
        as ``log_weight``: weight them (or ``resample`` first) before using ArviZ's
        own statistics. Attributes: engine, num_traces, ess, and khat and
        log_evidence when defined.
        """
        layout = self._draw_layout()
        posterior = {}
        for var in self._named:
            values = self._fixed_shape_values(var)
            if values is not None:
                posterior[var] = values[layout]
        sample_stats = None
        if self._log_weights is not None:
            sample_stats = {"log_weight": self._log_weights[layout]}
        attrs = {"engine": self.engine, "num_traces": self.num_traces, "ess": self.ess}
        for name, value in (("khat", self._khat), ("log_evidence", self.log_evidence)):
            if value is not None:
                attrs[name] = value
        return _arviz().from_dict(posterior=posterior, sample_stats=sample_stats, attrs=attrs)

    def _draw_layout(self) -> np.ndarray:
        """Trace indices arranged ``(chain, draw)``, chains cut to the shortest."""
        per_chain = [np.flatnonzero(self._chain == c) for c in np.unique(self._chain)]
        draws = min(len(indices) for indices in per_chain)
        if any(len(indices) != draws for indices in per_chain):
            logger.warning("chains have different lengths; ArviZ export keeps the first %d "
                           "draws of each", draws)
        return np.stack([indices[:draws] for indices in per_chain])

    def _fixed_shape_values(self, var: str) -> Optional[np.ndarray]:
        if len(self._named[var].index) != self.num_traces:
            logger.info("ArviZ export leaves out %r: it is missing from some traces", var)
            return None
        if "/" in var:
            logger.warning("ArviZ export leaves out %r: netCDF names cannot contain '/'", var)
            return None
        try:
            return self.values(var)
        except ValueError:
            logger.info("ArviZ export leaves out %r: its shape varies between traces", var)
            return None

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write ``to_inference_data()`` to ``path`` as netCDF (h5netcdf), atomically."""
        data = self.to_inference_data()
        with atomic_path(path) as temporary:
            data.to_netcdf(temporary, engine="h5netcdf")

    @staticmethod
    def load_inference_data(path: Union[str, os.PathLike]) -> "arviz.InferenceData":
        """Read back a file written by ``save``."""
        return _arviz().from_netcdf(os.fspath(path), engine="h5netcdf")


__all__ = ["Posterior", "KHAT_THRESHOLD", "SUMMARY_MAX_ELEMENTS"]
