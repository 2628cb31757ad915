"""Sharded, resumable sampling to PNG: corrupt each label with its own seed, generate, write atomically.

Seeds (`scdm.seeds`): label i under run seed s is corrupted with `seed_for(s, "corruption", i)`, and its
sample j starts from `seed_for(s, "sample", i, j)`. Neither depends on batch size, shard or process count, and
the sampling seed does not depend on the corruption, so clean and corrupted cells (and different models) share
their initial noise: differences between cells are not seed noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from scdm.labels import ClassTable
from scdm.seeds import seed_for

from .datasets import Split, flat_paint
from .store import Cell, Condition, label_path, sample_path, write_png

Progress = Callable[[int], None]  # called with the number of images just finished


def shard(n: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """Image indices of one process: i % world_size == rank."""
    return list(range(rank, n, world_size))


class LabelBank:
    """Clean and corrupted label maps of a split, computed once per condition (noise_sim, seeded per map).

    DS starts from the split's original-resolution label files when it has them, as the paper's DS folder was
    made (docs/method.md §6: 683 x 512 -> 64 x 64 -> 256 x 256, not 256 -> 64 -> 256); Edge and Random, like the
    reference's scripts, corrupt the maps at the evaluation resolution.
    """

    def __init__(self, split: Split, unlabeled: int, table: ClassTable | None = None):
        self.split = split
        self.unlabeled = unlabeled
        self.table = table  # the maps' encoding: kinds that need it (colour's palette) get it; None: their defaults
        self._cache: dict[Condition, np.ndarray] = {}

    def get(self, condition: Condition) -> np.ndarray:
        """(N, H, W) int32 raw ids under `condition`."""
        if condition.is_clean:
            return self.split.labels
        if condition not in self._cache:
            self._cache[condition] = self._corrupt(condition)
        return self._cache[condition]

    def _corrupt(self, c: Condition) -> np.ndarray:
        import noise_sim

        out = np.empty_like(self.split.labels)
        inst, originals = self.split.instances, self.split.originals
        if c.corruption == "ds" and originals is not None:
            from noise_sim.paper import ds_from_original

            factor = noise_sim.resolve_params("ds", c.severity)["factor"]
            for i in range(len(self.split)):
                out[i] = ds_from_original(torch.from_numpy(originals[i]), factor=factor, size=out.shape[1:]).numpy()
            return out
        options = {} if self.table is None else noise_sim.encoding_options(c.corruption, self.table)
        for i in range(len(self.split)):
            g = torch.Generator().manual_seed(seed_for(c.seed, "corruption", i))
            out[i] = noise_sim.corrupt(
                torch.from_numpy(self.split.labels[i]), c.corruption, severity=c.severity, generator=g,
                instances=None if inst is None else torch.from_numpy(inst[i]), unlabeled=self.unlabeled,
                **options).numpy()
        return out

    def write(self, run: Path, condition: Condition, indices: Sequence[int]) -> None:
        """Save the label maps of `indices` beside the samples (skipping existing files)."""
        maps = self.get(condition)
        for i in indices:
            path = label_path(run, condition, i)
            if not path.exists():
                write_png(path, maps[i])


@dataclass(frozen=True)
class Job:
    """One image to make: sample j of label `index` in `cell`."""

    cell: Cell
    index: int
    j: int


def job_seed(job: Job) -> int:
    """The sampling seed of one image: `seed_for(run seed, "sample", label, j)`, the same for every model."""
    return seed_for(job.cell.condition.seed, "sample", job.index, job.j)


def pending(run: Path, cells: Sequence[Cell], indices: Sequence[int], counts: Sequence[int]) -> list[Job]:
    """Jobs whose PNG does not exist yet; counts[i] = samples wanted for label i."""
    return [Job(c, i, j) for c in cells for i in indices for j in range(counts[i])
            if not sample_path(run, c, i, j).exists()]


def sample_diffusion(pipe, jobs: Sequence[Job], bank: LabelBank, run: Path, *, batch_size: int,
                     progress: Progress | None = None) -> None:
    """Generate every job with `pipe` in batches and write the PNGs; all jobs share one resolved sampler setting."""
    if not jobs:
        return
    settings = jobs[0].cell.settings
    assert settings is not None and all(job.cell.settings == settings for job in jobs)
    # The edge channel comes from the dataset's clean instance maps when it has them (corruptions change only
    # the label map); without instance maps the pipeline derives it from the label it is given.
    instances = bank.split.instances if pipe.card.labels.use_edges else None
    for s in range(0, len(jobs), batch_size):
        chunk = jobs[s:s + batch_size]
        labels = np.stack([bank.get(job.cell.condition)[job.index] for job in chunk])  # (B, H, W)
        edges = None if instances is None else np.stack([instances[job.index] for job in chunk])
        images = pipe.generate(labels, settings=settings, seed=[job_seed(job) for job in chunk], edges=edges)
        for job, image in zip(chunk, images):
            write_png(sample_path(run, job.cell, job.index, job.j), image)
        if progress is not None:
            progress(len(chunk))


def sample_plugin(plugin, jobs: Sequence[Job], bank: LabelBank, run: Path, *, batch_size: int,
                  progress: Progress | None = None) -> None:
    """Generate every job with a `bench.plugin.Plugin` in batches, one seed per image, and write the PNGs."""
    for s in range(0, len(jobs), batch_size):
        chunk = jobs[s:s + batch_size]
        labels = np.stack([bank.get(job.cell.condition)[job.index] for job in chunk])  # (B, H, W)
        for job, image in zip(chunk, plugin.generate(labels, [job_seed(job) for job in chunk])):
            write_png(sample_path(run, job.cell, job.index, job.j), image)
        if progress is not None:
            progress(len(chunk))


def write_real(jobs: Sequence[Job], split: Split, run: Path, progress: Progress | None = None) -> None:
    """The held-out images themselves, stored like samples."""
    for job in jobs:
        write_png(sample_path(run, job.cell, job.index, job.j), split.images[job.index])
    if progress is not None:
        progress(len(jobs))


def write_flat_paint(jobs: Sequence[Job], bank: LabelBank, colours: np.ndarray, run: Path,
                     progress: Progress | None = None) -> None:
    """Each (possibly corrupted) label painted with its classes' mean training colours."""
    for job in jobs:
        label = bank.get(job.cell.condition)[job.index]
        write_png(sample_path(run, job.cell, job.index, job.j), flat_paint(label[None], colours)[0])
    if progress is not None:
        progress(len(jobs))
