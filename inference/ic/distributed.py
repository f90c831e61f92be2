"""Data-parallel IC training on torch.distributed: the same ``Trainer`` on every rank, kept in lock step.

Every rank trains on its own traces (its own simulator pool, or its own shard
of the trace files) and holds a full replica of the network. Per step:

1. *Address table.* One small all-reduce sums the ranks' batch sizes and counts
   of addresses new to them. If any rank met new addresses, their descriptions
   are all-gathered and every rank adds the union in one order (rank, then
   first appearance in that rank's batch), which is the order one process
   reading the concatenated global batch would add them in; the new
   parameters are then broadcast from rank 0, so they start identical.
2. *Gradients.* Each rank back-propagates its share of the global mean loss
   (its batch's mean times its batch size over the global batch size); the
   gradients of ``ordered_parameters()`` are packed into one buffer, summed
   with one all-reduce, and unpacked, so every rank takes the same optimizer step.
   The buffer also carries one "has a gradient" flag per parameter: a tensor
   that no rank's batch reached keeps ``grad = None``, so Adam skips it exactly
   as it would in one process.

DistributedDataParallel does not fit this network: it registers the parameter
set once, at construction, whereas this one grows whenever a new address
appears, and any rank's batch leaves most address heads without gradients.
Rebuilding DDP at each new address would re-broadcast and re-bucket every
parameter; the hand-written reduction costs one all-reduce of the same size
and follows the parameter set as it grows (it gives up DDP's overlap of
communication with the backward pass, which matters little for the LSTM).

Rank 0 alone writes checkpoints (atomically, as ``Trainer`` does). On resume
rank 0 reads the checkpoint and broadcasts its bytes, so every rank restores
the same network and optimizer state without a shared file system. A rank
that dies makes the others' next collective fail (gloo sees the closed
connection, or gives up after ``DistributedConfig.timeout``), and they raise
``PeerFailure`` naming the checkpoint to resume from instead of hanging.

Launch with ``ppx train --nproc N`` on one machine, or under torchrun on many
(``torchrun --nnodes ... -m inference train ...``): a ``ppx train`` that finds
``RANK`` and ``WORLD_SIZE`` in its environment joins the process group as that rank.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, astuple, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from inference.child_lifetime import die_with_parent
from inference.ic.checkpoint import save_checkpoint
from inference.ic.config import NetworkConfig
from inference.ic.network import Address, InferenceNetwork, controlled_samples
from inference.ic.optim import LargeBatchConfig, make_optimizer, scaled_learning_rate, warmup_factor
from inference.ic.sources import OfflineSource
from inference.ic.train import Trainer, TrainingConfig
from inference.trace import Trace
from inference.trace_frames import decode_traces, encode_traces

log = logging.getLogger(__name__)

Backend = Literal["auto", "gloo", "nccl"]


class PeerFailure(ConnectionError):
    """A collective operation failed: another rank died, or stopped answering within the timeout."""


@dataclass(frozen=True)
class DistributedConfig:
    """How the ranks talk.

    Attributes:
        backend: ``"gloo"`` (CPU tensors), ``"nccl"`` (gradients staged through this
            rank's GPU, ``cuda:LOCAL_RANK``), or ``"auto"``: gloo, as the IC network
            trains on CPU.
        timeout: seconds a collective may wait for the other ranks before failing.
        verify_every: steps between checks that all replicas hold bit-identical
            weights (0: only at the end of training).
    """

    backend: Backend = "auto"
    timeout: float = 300.0
    verify_every: int = 500

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "gloo", "nccl"):
            raise ValueError(f"DistributedConfig.backend must be auto, gloo or nccl, got {self.backend!r}")
        if not self.timeout > 0:
            raise ValueError(f"DistributedConfig.timeout must be positive, got {self.timeout}")
        if self.verify_every < 0:
            raise ValueError(f"DistributedConfig.verify_every must be >= 0, got {self.verify_every}")


# ---- where this process stands ------------------------------------------------------------

def ranks_from_environment() -> Optional[tuple[int, int, int]]:
    """``(rank, world_size, local_rank)`` from torchrun's variables, or None outside a launcher."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as err:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {err}") from err
    if not 0 <= rank < world:
        raise ValueError(f"RANK must lie in [0, WORLD_SIZE); got RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


class Group:
    """This rank's view of the process group: its rank and the collectives the trainer uses.

    With ``world_size == 1`` no process group exists and every collective is the identity.
    A failing collective raises ``PeerFailure``.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0,
                 device: torch.device = torch.device("cpu"), timeout: float = 300.0) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = device
        self.timeout = timeout
        self.resume_hint = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _run(self, what: str, operation: Callable[[], Any]) -> Any:
        try:
            return operation()
        except RuntimeError as err:  # gloo and nccl raise DistBackendError or plain RuntimeError
            raise PeerFailure(
                f"rank {self.rank} of {self.world_size}: {what} failed ({err}); another rank died or did not "
                f"answer within {self.timeout:g} s{self.resume_hint}") from err

    def all_reduce_sum(self, tensor: torch.Tensor, what: str) -> torch.Tensor:
        """Sum ``tensor`` over ranks (on the group's device); returns the summed tensor."""
        if self.world_size == 1:
            return tensor
        staged = tensor.to(self.device)
        self._run(what, lambda: dist.all_reduce(staged))
        return staged.to(tensor.device)

    def broadcast(self, tensor: torch.Tensor, what: str) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank."""
        if self.world_size == 1:
            return tensor
        staged = tensor.to(self.device)
        self._run(what, lambda: dist.broadcast(staged, src=0))
        return staged.to(tensor.device)

    def barrier(self, what: str) -> None:
        """Return once every rank has called ``barrier``."""
        if self.world_size > 1:
            self._run(what, dist.barrier)

    def all_gather_bytes(self, payload: bytes, what: str) -> list[bytes]:
        """Every rank's ``payload``, in rank order."""
        if self.world_size == 1:
            return [payload]
        size = torch.tensor([len(payload)], dtype=torch.int64, device=self.device)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        self._run(what, lambda: dist.all_gather(sizes, size))
        lengths = [int(s.item()) for s in sizes]
        padded = torch.zeros(max(lengths), dtype=torch.uint8)
        padded[:len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        padded = padded.to(self.device)
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        self._run(what, lambda: dist.all_gather(gathered, padded))
        return [part[:length].cpu().numpy().tobytes() for part, length in zip(gathered, lengths)]

    def broadcast_bytes(self, payload: Optional[bytes], what: str) -> bytes:
        """Rank 0's ``payload`` on every rank (other ranks pass None)."""
        if self.world_size == 1:
            return payload
        size = torch.tensor([len(payload) if self.is_main else 0], dtype=torch.int64, device=self.device)
        self._run(what, lambda: dist.broadcast(size, src=0))
        buffer = torch.zeros(int(size.item()), dtype=torch.uint8)
        if self.is_main:
            buffer[:] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        buffer = buffer.to(self.device)
        self._run(what, lambda: dist.broadcast(buffer, src=0))
        return buffer.cpu().numpy().tobytes()

    def all_gather_json(self, value: Any, what: str) -> list[Any]:
        """Every rank's ``value`` (numbers, strings, lists and dicts of them), in rank order.

        Values travel as JSON, never pickled, even with one rank (so what works on one
        rank works on many): a peer's bytes can describe data, not run code.
        """
        return [json.loads(part) for part in self.all_gather_bytes(json.dumps(value).encode(), what)]

    def broadcast_json(self, value: Any, what: str) -> Any:
        """Rank 0's ``value`` (as ``all_gather_json`` takes) on every rank."""
        payload = json.dumps(value).encode() if self.is_main else None
        return json.loads(self.broadcast_bytes(payload, what))


def _backend(name: Backend) -> str:
    if name == "nccl" and not torch.cuda.is_available():
        raise ValueError("backend nccl needs a CUDA device; use gloo on CPU")
    return "gloo" if name == "auto" else name


@contextmanager
def process_group(config: DistributedConfig = DistributedConfig()) -> Iterator[Group]:
    """Join the process group described by torchrun's environment variables, and leave it afterwards.

    Outside a launcher (no ``RANK``/``WORLD_SIZE``) or with one rank, yields a
    one-rank ``Group`` without initialising torch.distributed.
    """
    ranks = ranks_from_environment()
    rank, world, local = ranks or (0, 1, 0)
    if world == 1:
        yield Group(timeout=config.timeout)
        return
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(f"rank {rank} of {world}: {' and '.join(missing)} not set; launch with torchrun "
                         f"or `ppx train --nproc N`, which set them")
    backend = _backend(config.backend)
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=config.timeout))
    log.info("rank %d of %d joined the %s process group (pid %d)", rank, world, backend, os.getpid())
    failed = False
    group = Group(rank, world, local, device, config.timeout)
    try:
        yield group
    except BaseException:
        failed = True
        raise
    finally:
        if not failed:
            # The ranks leave together: a rank tearing down its connections while a peer still
            # uses them can fail that peer (gloo: "Connection closed by peer" as it connects).
            group.barrier("waiting for every rank to finish")
            dist.destroy_process_group()
        # After a failure the group is left to process exit: a barrier or an orderly shutdown
        # would wait on the rank that is gone.


def tag_log_records(rank: int) -> None:
    """Prefix this process's log lines with its rank."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(f"%(levelname)s [rank {rank}] %(name)s: %(message)s"))


# ---- launching ranks on this machine -------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_entry(index: int, nproc: int, port: int, launcher: int, function: Callable[..., Any],
                args: tuple) -> None:
    die_with_parent(launcher)  # a killed `ppx train --nproc` leaves no ranks (and so no simulators) behind
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    function(*args)


def launch_local(nproc: int, function: Callable[..., Any], *args: Any) -> None:
    """Run ``function(*args)`` in ``nproc`` fresh processes, as ranks of one group on 127.0.0.1.

    ``function`` must be importable (module-level). When a rank fails, the others
    are terminated and ``PeerFailure`` names the first that failed.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    try:
        mp.start_processes(_rank_entry, args=(nproc, free_port(), os.getpid(), function, args), nprocs=nproc,
                           join=True, start_method="spawn")
    except mp.ProcessExitedException as err:
        how = (f"was killed by {err.signal_name}" if err.signal_name
               else f"exited with code {err.exit_code} (its error is shown above)")
        raise PeerFailure(f"rank {err.error_index} of {nproc} {how}; the other ranks were stopped") from err
    except mp.ProcessRaisedException as err:
        raise PeerFailure(f"rank {err.error_index} of {nproc} failed:\n{err}") from err


# ---- sharding the data --------------------------------------------------------------------

def local_batch_size(global_batch_size: int, world_size: int) -> int:
    """Each rank's share of the global batch; the global batch must split evenly."""
    if global_batch_size % world_size:
        raise ValueError(f"the global batch of {global_batch_size} traces does not split evenly over "
                         f"{world_size} ranks; choose a multiple of {world_size}")
    return global_batch_size // world_size


def sharded_offline_source(paths: Sequence[str | Path], global_batch_size: int, group: Group,
                           seed: Optional[int] = None) -> OfflineSource:
    """This rank's ``OfflineSource``: every ``world_size``-th chunk of the files, in chunks of its batch share.

    Ranks hold disjoint chunks, so within an epoch no trace is read twice. All ranks
    shuffle with the same ``seed``; for one file whose length is a multiple of the
    global batch, step ``k`` of the ranks together then reads exactly the traces, in
    the same order, that step ``k`` of one process with the whole batch reads.
    """
    source = OfflineSource(paths, local_batch_size(global_batch_size, group.world_size), seed=seed,
                           shard=group.rank, num_shards=group.world_size)
    counts = group.all_gather_json(len(source.chunks), "counting trace chunks")
    if len(set(counts)) > 1:
        log.warning("trace chunks per rank differ (%s): ranks with fewer start their next epoch earlier",
                    counts)
    return source


# ---- the trainer ------------------------------------------------------------------------

def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors]) if tensors else torch.zeros(0)


def _unflatten_into(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
    offset = 0
    with torch.no_grad():
        for tensor in tensors:
            tensor.copy_(flat[offset:offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()


class DistributedTrainer(Trainer):
    """``Trainer`` as one rank of a data-parallel group.

    Args:
        source: this rank's trace source (its own simulators, or its shard of the files);
            its batches are this rank's share of the global batch.
        group: the process group (see ``process_group``).
        network_config: sizes of a new network (ignored when resuming).
        config: optimisation settings; ``batch_size`` is the global batch and
            ``learning_rate`` the rate at ``large_batch.reference_batch_size``.
        large_batch: learning-rate scaling, warm-up and optimizer.
        distributed: collective timeout and replica checks.
        checkpoint: where rank 0 writes checkpoints; with ``resume`` rank 0 reads it
            and every rank restores from its bytes.
    """

    def __init__(self, source: Any, group: Group, network_config: Optional[NetworkConfig] = None,
                 config: Optional[TrainingConfig] = None, large_batch: Optional[LargeBatchConfig] = None,
                 distributed: Optional[DistributedConfig] = None, checkpoint: Optional[str] = None,
                 resume: bool = False) -> None:
        self.group = group
        self.large_batch = large_batch or LargeBatchConfig()
        self.distributed = distributed or DistributedConfig()
        config = config or TrainingConfig()
        config = replace(config, learning_rate=scaled_learning_rate(config.learning_rate, config.batch_size,
                                                                    self.large_batch))
        if checkpoint is not None:
            group.resume_hint = f"; resume from the last checkpoint with --resume ({checkpoint})"
        # Seconds spent in each part of the steps so far; forward_backward_cpu is this process's CPU
        # time during forward and backward passes (below their wall time when cores are contended).
        self.timings = {"steps": 0, "compute": 0.0, "synchronise": 0.0, "all_reduce": 0.0,
                        "forward_backward": 0.0, "forward_backward_cpu": 0.0}
        self._step_count = 0
        if resume:
            if checkpoint is None:
                raise ValueError("resuming needs the checkpoint to resume from")
            local = self._fetch_checkpoint(checkpoint)
            try:
                super().__init__(source, network_config, config, checkpoint=local, resume=True)
            finally:
                if local != checkpoint:
                    os.unlink(local)
            self.checkpoint = checkpoint
            trained_with = self.progress.get("large_batch", {}).get("optimizer", "adam")
            if trained_with != self.large_batch.optimizer:
                raise ValueError(f"{checkpoint} was trained with the {trained_with} optimizer; resume it with "
                                 f"--optimizer {trained_with}, not {self.large_batch.optimizer}")
        else:
            super().__init__(source, network_config, config, checkpoint=checkpoint)
        self.progress.setdefault("address_sync", [])

    # ---- set-up ------------------------------------------------------------------------

    def _fetch_checkpoint(self, path: str) -> str:
        """A local path holding rank 0's checkpoint bytes (rank 0: ``path`` itself)."""
        payload, problem = None, None
        if self.group.is_main:
            try:
                payload = Path(path).read_bytes()
            except OSError as err:
                problem = f"cannot read network checkpoint {path}: {err}"
        problem = self.group.broadcast_json(problem, "broadcasting whether the checkpoint was read")
        if problem is not None:
            raise ValueError(problem)
        payload = self.group.broadcast_bytes(payload, "broadcasting the checkpoint")
        if self.group.is_main:
            return path
        handle, local = tempfile.mkstemp(prefix=f"rank{self.group.rank}-", suffix=".ckpt")
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        return local

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.large_batch.optimizer == "adam":
            return super()._optimizer()
        return make_optimizer(self.network.ordered_parameters(), self.config.learning_rate, self.large_batch)

    def _prepare(self) -> None:
        # The validation set is the concatenation, round by round, of every rank's batches:
        # the same traces, in the same order, on every rank.
        while len(self.validation) < self.config.validation_size:
            frames = self.group.all_gather_bytes(encode_traces(self.source.next_batch()),
                                                 "gathering validation traces")
            for frame in frames:
                self.validation.extend(decode_traces(frame))
        self.validation = self.validation[:self.config.validation_size]
        if self.network is None:
            self.network = InferenceNetwork.for_traces(self.network_config, self.validation)
            state = list(self.network.ordered_parameters()) + [b for b in self.network.buffers()
                                                               if b.is_floating_point()]
            _unflatten_into(self.group.broadcast(_flat(state), "broadcasting the initial network"), state)
            self.optimizer = self._optimizer()
        self.verify_replicas()

    # ---- per step ----------------------------------------------------------------------

    def _new_addresses(self, traces: Sequence[Trace]) -> list[Address]:
        new: dict[str, Address] = {}
        for trace in traces:
            for choice in controlled_samples(trace):
                if not self.network.knows(choice.key) and choice.key not in new:
                    new[choice.key] = Address.of(choice)
        return list(new.values())

    def _synchronise(self, traces: Sequence[Trace]) -> int:
        """Agree on the address table with every rank; returns the global number of traces."""
        local = self._new_addresses(traces)
        totals = self.group.all_reduce_sum(torch.tensor([len(traces), len(local)], dtype=torch.float64),
                                           "summing batch sizes")
        if totals[1] > 0:
            gathered = self.group.all_gather_json([astuple(a) for a in local], "gathering new addresses")
            union: dict[str, Address] = {}
            for part in gathered:
                for fields in part:
                    union.setdefault(fields[0], Address(*fields))
            if len({tuple(fields[0] for fields in part) for part in gathered}) > 1:
                # Ranks met different new addresses: kept as evidence that the union was taken.
                self.progress["address_sync"].append([self.progress["traces"], [len(p) for p in gathered]])
            new = [p for address in union.values() for p in self.network.add_address(address)]
            _unflatten_into(self.group.broadcast(_flat(new), "broadcasting new address parameters"), new)
            self.optimizer.param_groups[0]["params"].extend(new)
            log.debug("step %d: %d new addresses (per rank %s)", self._step_count, len(union),
                      [len(p) for p in gathered])
        return int(totals[0])

    def _learn_addresses(self, traces: list[Trace]) -> None:
        self._synchronise(traces)

    def _all_reduce_gradients(self, loss: torch.Tensor) -> float:
        """Sum gradients (and the loss) over ranks; a parameter no rank reached keeps ``grad = None``."""
        if self.group.world_size == 1:
            return float(loss)
        params = self.network.ordered_parameters()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        reached = torch.tensor([p.grad is not None for p in params], dtype=grads[0].dtype)
        flat = torch.cat([_flat(grads), reached, loss.reshape(1).to(grads[0].dtype)])
        flat = self.group.all_reduce_sum(flat, "all-reducing gradients")
        offset, flags = 0, flat[-1 - len(params):-1]
        for param, flag in zip(params, flags.tolist()):
            size = param.numel()
            param.grad = flat[offset:offset + size].view_as(param).clone() if flag else None
            offset += size
        return float(flat[-1])

    def _broadcast_running_buffers(self) -> None:
        """Rank 0's batch-norm statistics on every rank (the observation standardisation never changes)."""
        running = [b for name, b in self.network.named_buffers()
                   if b.is_floating_point() and not name.startswith("observation_")]
        if running and self.group.world_size > 1:
            _unflatten_into(self.group.broadcast(_flat(running), "broadcasting batch-norm statistics"), running)

    def step(self, traces: list[Trace]) -> float:
        started = time.perf_counter()
        total = self._synchronise(traces)
        synchronised, cpu = time.perf_counter(), time.process_time()
        self.optimizer.zero_grad()
        loss = self.network.loss(traces) * (len(traces) / total)
        loss.backward()
        computed, cpu = time.perf_counter(), time.process_time() - cpu
        global_loss = self._all_reduce_gradients(loss.detach())
        reduced = time.perf_counter()
        self.optimizer.step()
        self._broadcast_running_buffers()
        self.timings["forward_backward"] += computed - synchronised
        self.timings["forward_backward_cpu"] += cpu
        self._step_total = total
        self._step_count += 1
        self.timings["steps"] += 1
        self.timings["synchronise"] += synchronised - started
        self.timings["all_reduce"] += reduced - computed
        self.timings["compute"] += (computed - synchronised) + (time.perf_counter() - reduced)
        if self.distributed.verify_every and self._step_count % self.distributed.verify_every == 0:
            self.verify_replicas()
        return global_loss

    def _traces_in(self, batch: list[Trace]) -> int:
        return self._step_total

    def _set_learning_rate(self, done: float) -> None:
        super()._set_learning_rate(done)
        factor = warmup_factor(self.progress["steps"], self.large_batch.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] *= factor

    # ---- checkpoints and checks ------------------------------------------------------------

    def save(self) -> None:
        if self.checkpoint is not None and self.group.is_main:
            progress = dict(self.progress, training=asdict(self.config), large_batch=asdict(self.large_batch),
                            world_size=self.group.world_size)
            save_checkpoint(self.checkpoint, self.network, self.optimizer, progress)

    def replica_digest(self) -> str:
        """A hash of the address table, weights and buffers: equal on ranks in lock step."""
        digest = hashlib.sha256()
        digest.update(repr([astuple(a) for a in self.network.addresses]).encode())
        for tensor in list(self.network.ordered_parameters()) + list(self.network.buffers()):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def verify_replicas(self) -> None:
        """Raise unless every rank holds bit-identical weights and the same address table."""
        mine = self.replica_digest()
        digests = self.group.all_gather_json(mine, "comparing replicas")
        if len(set(digests)) > 1:
            raise RuntimeError(f"replicas diverged after {self.progress['traces']} traces: weight digests per "
                               f"rank {[d[:12] for d in digests]}")
        log.info("all %d replicas agree after %d traces: %d addresses, weights digest %s", self.group.world_size,
                 self.progress["traces"], len(self.network.addresses), mine[:16])

    def train(self, num_traces: int, progress_bar: bool = True) -> dict[str, Any]:
        progress = super().train(num_traces, progress_bar=progress_bar and self.group.is_main)
        self.verify_replicas()
        return progress
