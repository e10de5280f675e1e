"""Data-parallel training over several processes: PyTorch DistributedDataParallel under ``torchrun``.

``torchrun --nproc_per_node=N -m rnnlab train ...`` starts N processes and gives each
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`launch` reads them, joins the process group (gloo on the CPU,
nccl on CUDA, one GPU ``cuda:LOCAL_RANK`` per process) and leaves it at the end, also
on errors. Without torchrun (or with one process) it yields :data:`SINGLE` and nothing
distributed happens.

What the rest of rnnlab sees is the :class:`Distributed` record: ``rank``,
``world_size``, ``is_main`` (the one gate of every side effect: checkpoints,
``metrics.jsonl``, figures, baselines, progress bar, log lines, the CLI's output), the
``device`` of this process, and the few collectives the loop needs (sums, a maximum,
rank 0's value broadcast, rank 0 doing something for everyone). Distribution wraps
the loop (:mod:`rnnlab.training.loop`): DDP around the model, the iterator's shard
per rank (:mod:`rnnlab.data.batches`), rank-0 side effects.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from rnnlab.errors import RnnlabError, TrainingError, UsageError
from rnnlab.precision import check_device

T = TypeVar("T")

# The variables torchrun sets in every process it starts.
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a distributed run; the default is a single process.

    ``device``: this process's device (``cuda:LOCAL_RANK`` on GPUs), or None in a single
    process, where the ``--device`` option decides.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files, logs and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process: the collectives below talk to the others."""
        return self.world_size > 1

    # -- collectives (no-ops in a single process); every rank must call them alike ------------
    def _tensor(self, values) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float64, device=self.device or "cpu")

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the ranks, in float64 on this process's device (NaN
        anywhere gives NaN everywhere, so every rank takes the same decision on it)."""
        if not self.enabled:
            return [float(v) for v in values]
        tensor = self._tensor(values)
        _collective(torch.distributed.all_reduce, tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor.tolist()

    def max(self, values: list[float]) -> list[float]:
        """Element-wise maxima over the ranks."""
        if not self.enabled:
            return [float(v) for v in values]
        tensor = self._tensor(values)
        _collective(torch.distributed.all_reduce, tensor, op=torch.distributed.ReduceOp.MAX)
        return tensor.tolist()

    def broadcast(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (a decision taken once, e.g. on the clock)."""
        if not self.enabled:
            return value
        tensor = self._tensor([value])
        _collective(torch.distributed.broadcast, tensor, src=0)
        return tensor.item()

    def gather_rows(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's ``tensor`` concatenated along ``dim`` in rank order (same shape on every rank)."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        _collective(torch.distributed.all_gather, parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def on_main(self, action: Callable[[], T]) -> T:
        """Run ``action`` on rank 0 only (creating a folder, say) and give its result to every
        rank; an rnnlab error it raises is raised on every rank, so all stop together."""
        if not self.enabled:
            return action()
        outcome: list = [None]
        if self.is_main:
            try:
                outcome = [("ok", action())]
            except RnnlabError as exc:
                outcome = [("error", exc)]
        _collective(torch.distributed.broadcast_object_list, outcome, src=0)
        kind, value = outcome[0]
        if kind == "error":
            raise value
        return value


SINGLE = Distributed()


# What the communication libraries say when a peer process is gone (gloo raises plain RuntimeErrors).
_PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "gloo/transport",
              "NCCL error", "Timed out", "timed out")


def _lost_peer(exc: BaseException) -> bool:
    return isinstance(exc, getattr(dist, "DistError", ())) or any(mark in str(exc) for mark in _PEER_LOST)


def _peer_error(exc: BaseException) -> TrainingError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", first)[:120]  # gloo's source location
    return TrainingError("another process of the distributed run failed or was stopped, so this one cannot go on "
                         f"({first}); torchrun's report names the process that failed first and its error")


def _collective(function, *args, **kwargs):
    """A collective whose failure (another process died or was stopped) is one clear error."""
    try:
        return function(*args, **kwargs)
    except RuntimeError as exc:  # DistBackendError, gloo's "Connection closed by peer", timeouts
        raise _peer_error(exc) from None


def _env_int(name: str, low: int = 0) -> int:
    value = os.environ.get(name, "")
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"the environment variable {name}={value!r:.40} (set by torchrun) is not an integer") from None
    if number < low:
        raise UsageError(f"the environment variable {name}={number} (set by torchrun) must be >= {low}")
    return number


def launched() -> bool:
    """Was this process started by torchrun (or another launcher setting RANK and WORLD_SIZE)?"""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def from_environment() -> Distributed:
    """Rank and world size as the launcher set them (no device, no process group): what
    the CLI needs to know whether this process prints. A single process without torchrun."""
    if not launched():
        return SINGLE
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK")
    if rank >= world:
        raise UsageError(f"RANK={rank} is outside WORLD_SIZE={world} (set by torchrun)")
    return Distributed(rank=rank, world_size=world, local_rank=_env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ
                       else 0)


def process_device(option: str, local_rank: int, local_world_size: int) -> torch.device:
    """This process's device under torchrun for the ``--device`` option.

    ``auto`` and ``cuda``: ``cuda:LOCAL_RANK`` when CUDA is there (``auto`` falls back to
    the CPU); ``cuda:N``: that GPU, only with one process per node; ``cpu``: the CPU.
    """

    check_device(option)
    if option == "mps":
        raise UsageError("--device mps cannot be used by several processes (torchrun); use --device cpu")
    if option == "cpu" or (option == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {option} was asked for but no CUDA GPU is available; use --device cpu or auto")
    count = torch.cuda.device_count()
    if option.startswith("cuda:"):
        index = int(option.split(":")[1])
        if local_world_size > 1:
            raise UsageError(f"--device {option} would put all {local_world_size} processes of this node on one GPU; "
                             "use --device cuda (each process takes the GPU of its LOCAL_RANK)")
    else:
        index = local_rank
    if index >= count:
        raise UsageError(f"process {local_rank} of this node needs GPU cuda:{index}, but only {count} GPU(s) are "
                         "visible; start at most that many processes per node (--nproc_per_node)")
    return torch.device("cuda", index)


@contextlib.contextmanager
def launch(device: str = "auto") -> Iterator[Distributed]:
    """The :class:`Distributed` record of this process for a run on ``device`` (the
    ``--device`` option); joins the process group first and leaves it afterwards.

    Outside torchrun, or with ``WORLD_SIZE=1``: :data:`SINGLE`. When the caller already
    joined a process group (``torch.distributed.init_process_group``), that group is used
    and left to the caller.
    """

    info = from_environment()
    if not info.enabled:
        yield SINGLE
        return
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed; run rnnlab without torchrun")
    local_world = _env_int("LOCAL_WORLD_SIZE", 1) if "LOCAL_WORLD_SIZE" in os.environ else 1
    own_group = not dist.is_initialized()
    where = process_device(device, info.local_rank, local_world)
    if own_group:
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise UsageError(f"RANK and WORLD_SIZE are set but {name} is not; start rnnlab with torchrun")
        if where.type == "cuda":
            torch.cuda.set_device(where)
        try:
            dist.init_process_group(backend="nccl" if where.type == "cuda" else "gloo")
        except (RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise TrainingError(f"cannot join the other processes of the distributed run at "
                                f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({first})") from None
    else:
        if dist.get_world_size() != info.world_size or dist.get_rank() != info.rank:
            raise UsageError(f"the process group (rank {dist.get_rank()} of {dist.get_world_size()}) disagrees with "
                             f"RANK={info.rank} WORLD_SIZE={info.world_size}")
    record = Distributed(rank=info.rank, world_size=info.world_size, local_rank=info.local_rank, device=where)
    try:
        yield record
        if own_group:
            # Leave together: a gloo process that tears down its connections while a peer still
            # works on them (rank 0 writes the summary after the last step) aborts at exit.
            dist.barrier()
    except RuntimeError as exc:  # a collective inside DDP (the gradient all-reduce) lost its peers
        if not _lost_peer(exc):
            raise
        raise _peer_error(exc) from None
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


def record_error(exc: BaseException) -> None:
    """Leave ``error: <message>`` where torchrun looks for a failed process's error
    (``TORCHELASTIC_ERROR_FILE``), so its report names the cause, whichever rank failed,
    while only rank 0 prints (a no-op outside torchrun)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    data = {"message": {"message": f"{type(exc).__name__}: {exc}",
                        "extraInfo": {"py_callstack": f"error: {exc}", "timestamp": str(int(time.time()))}}}
    try:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
    except OSError:
        pass  # the report then says less; the exit code is still the error's


class DistributedModel:
    """What a task's ``loss`` receives under DDP: calling it runs the forward through
    :class:`torch.nn.parallel.DistributedDataParallel` (so the backward averages the
    gradients over the ranks); every attribute (``begin_state``, ``device``, ``config()``,
    ``parameters()``, ``training``) is the unwrapped model's, and ``module`` is that model."""

    def __init__(self, model: torch.nn.Module, dist: Distributed) -> None:
        device = dist.device
        self.__dict__["module"] = model
        self.__dict__["ddp"] = DistributedDataParallel(
            model, device_ids=[device.index] if device is not None and device.type == "cuda" else None)

    def __call__(self, *args, **kwargs):
        return self.ddp(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["module"], name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.module, name, value)


def unwrap(model):
    """The model itself, whether ``model`` is a :class:`DistributedModel`, a DDP module or ``torch.compile``'s wrapper."""
    while True:
        if isinstance(model, DistributedModel):
            model = model.module
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


__all__ = ["Distributed", "DistributedModel", "SINGLE", "from_environment", "launch", "launched",
           "process_device", "record_error", "unwrap"]
