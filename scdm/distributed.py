"""torchrun jobs: which device each process uses, the process group, rank-0-only work and agreement between ranks.

Used by `scdm train`, `scdm sample` and `bench run`. torchrun sets RANK (global process index), WORLD_SIZE (number
of processes) and LOCAL_RANK (index on this machine); without them the job is one process and every collective
below is a no-op, so callers need no `if world > 1` branches.

    with setup(device) as d:          # device: None (GPU cuda:LOCAL_RANK if any, else CPU), "cpu", "cuda", "cuda:1"
        model = DistributedDataParallel(model, device_ids=d.device_ids) if d.world_size > 1 else model
        d.main_only(write_report)     # rank 0 writes, the others wait until it has
        if not d.all_ok(error is None): ...   # every rank hears about an error on any one of them

GPUs use NCCL with `torch.cuda.set_device(LOCAL_RANK)`, CPUs gloo. Bad input (a LOCAL_RANK beyond the visible GPUs,
"cuda" without CUDA) raises ValueError in `setup`, before the process group starts and before any long work.
"""
from __future__ import annotations

import datetime
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

# Ranks wait for each other at barriers while one of them samples or scores a longer share (bench, `scdm sample`);
# torch's default 30 min would abort such jobs.
TIMEOUT = datetime.timedelta(hours=12)


def read_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK) from torchrun's variables; (0, 1, 0) outside torchrun."""
    env = os.environ if environ is None else environ
    values = {}
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        raw = env.get(name, default)
        try:
            values[name] = int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not an integer; start the job with torchrun, "
                             f"which sets RANK, WORLD_SIZE and LOCAL_RANK, or unset {name}") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"inconsistent torchrun variables RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}: "
                         f"need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0; start the job with torchrun")
    return rank, world, local


def pick_device(requested: str | torch.device | None, local_rank: int, gpu_count: int,
                world_size: int = 1) -> torch.device:
    """The device of the process with `local_rank` when `gpu_count` CUDA GPUs are visible.

    None or "cuda" -> cuda:LOCAL_RANK (None falls back to the CPU without GPUs); "cpu" and other device types as
    given; an explicit "cuda:k" only in a one-process job (several ranks on one GPU would collide).
    """
    try:
        dev = torch.device(requested) if requested is not None else None
    except RuntimeError as e:
        raise ValueError(f"unknown device {requested!r} ({e}); use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev is None and gpu_count == 0:
        return torch.device("cpu")
    if dev is not None and dev.type != "cuda":
        return dev
    if gpu_count == 0:
        raise ValueError(f"device {str(requested)!r} requested but no CUDA GPU is visible to this process "
                         f"(torch.cuda.device_count() == 0); use device 'cpu' or leave the device unset")
    if dev is not None and dev.index is not None:
        if world_size > 1:
            raise ValueError(f"device {str(requested)!r} would put all {world_size} ranks on one GPU; use 'cuda' so "
                             f"that each rank takes cuda:LOCAL_RANK (choose GPUs with CUDA_VISIBLE_DEVICES)")
        if dev.index >= gpu_count:
            raise ValueError(f"device {str(requested)!r} requested but only {gpu_count} GPU(s) are visible "
                             f"(cuda:0..cuda:{gpu_count - 1}); check CUDA_VISIBLE_DEVICES")
        return dev
    if local_rank >= gpu_count:
        raise ValueError(f"LOCAL_RANK={local_rank} but only {gpu_count} GPU(s) are visible on this machine; start torchrun "
                         f"with --nproc_per_node <= {gpu_count} (or widen CUDA_VISIBLE_DEVICES), or use device 'cpu'")
    return torch.device("cuda", local_rank)


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def _group_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job. Collectives are no-ops when `world_size == 1`."""

    rank: int  # global process index; 0 writes files and prints
    world_size: int  # processes in the job
    local_rank: int  # process index on this machine (its GPU)
    device: torch.device  # where this process computes

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device_ids(self) -> list[int] | None:
        """`DistributedDataParallel(device_ids=...)`: this process's GPU, None on the CPU."""
        if self.device.type != "cuda":
            return None
        return [self.device.index if self.device.index is not None else torch.cuda.current_device()]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world_size > 1:
            dist.barrier()

    def all_ok(self, ok: bool) -> bool:
        """True when every rank passes ok=True (one all-reduce; also a barrier)."""
        if self.world_size == 1:
            return ok
        device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's `obj` (picklable), in rank order."""
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def main_only(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Run `fn` on rank 0 while the others wait; its result there, None elsewhere.

        An exception on rank 0 is re-raised there, and the other ranks raise RuntimeError instead of waiting
        forever at their next collective.
        """
        result, error = None, None
        if self.is_main:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks heard about it
                error = e
        if not self.all_ok(error is None):
            if error is not None:
                raise error
            raise RuntimeError(f"{getattr(fn, '__name__', 'a step')} failed on rank 0; see its error")
        return result


def current(device: str | torch.device | None = None) -> Distributed:
    """This process as the (possibly uninitialised) default process group and torchrun's LOCAL_RANK describe it.

    For library code called inside `setup` (or a process group opened elsewhere); `device` is taken as given
    (`setup` already checked it), None picks as `setup` does.
    """
    rank, world = _group_rank_world()
    local = read_env()[2] if world > 1 else 0
    return Distributed(rank, world, local, pick_device(device, local, torch.cuda.device_count()))


@contextmanager
def setup(device: str | torch.device | None = None, *,
          timeout: datetime.timedelta = TIMEOUT) -> Iterator[Distributed]:
    """Join the torchrun job (if any) on this rank's device; the process group is closed on exit if opened here."""
    rank, world, local = read_env()
    dev = pick_device(device, local, torch.cuda.device_count(), world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    created = False
    if world > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise ValueError(f"WORLD_SIZE={world} but this torch build has no torch.distributed; run one process")
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend_for(dev), timeout=timeout, **kwargs)
        created = True
    try:
        r, w = _group_rank_world()
        yield Distributed(r, w, local, dev)
        if created:
            # Every rank has finished its last collective before any closes its connections: a rank that tears
            # down while a peer still reads from it can abort that peer (gloo, seen once in CI as SIGABRT).
            dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()
