"""One benchmark run: validate everything, sample (sharded over torchrun processes), score, write the report.

Order: config -> dataset files -> models vs label ids -> metric weights -> sampling -> metrics -> report, so
bad input fails before any long work. Under `torchrun` each process samples the images with
index % WORLD_SIZE == RANK (files shared through the run folder); rank 0 then scores and writes the table.
Finished images and scored cells are skipped on a re-run, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from scdm.checkpoint import atomic_write_bytes

from . import report
from .config import BenchConfig, Mode, ModelKind, ModelSpec, Reference, Sampler, SamplerSpec, to_dict, validate
from .datasets import Split, dataset_labels, load_eval, load_train, mean_colours, unlabeled_id
from .sampling import LabelBank, pending, sample_diffusion, shard, write_flat_paint, write_real
from .scoring import Scorer, build_scorer, plan_metrics
from .store import CLEAN, Cell, Condition, Setting, read_json, read_png, rows_path, sample_path, write_json

if TYPE_CHECKING:
    from scdm.pipeline import Pipeline


class Events:
    """Progress hooks; the CLI overrides them with progress bars. The library itself never prints."""

    def stage(self, name: str, total: int) -> None:
        """A stage with `total` units of work starts."""

    def advance(self, n: int) -> None:
        """`n` more units of the current stage are done."""

    def message(self, text: str) -> None:
        """A one-line status message."""


@dataclass
class Model:
    """A loaded table row family."""

    spec: ModelSpec
    pipe: Pipeline | None = None  # for diffusion models
    label_diffusion: bool = False

    def settings(self, config: BenchConfig) -> list[Setting]:
        if self.pipe is None:
            return [Setting()]
        card = self.pipe.card.sampler
        return list(dict.fromkeys(Setting(s.sampler.value, s.steps, card.guidance if s.guidance is None else float(s.guidance),
                                          _eta(s, card.eta)) for s in config.samplers))


def _eta(spec: SamplerSpec, default: float) -> float:
    """The DDIM eta a setting runs with: the spec's, else the checkpoint's; 0 for the other samplers."""
    if spec.sampler != Sampler.DDIM:
        return 0.0
    return float(default if spec.eta is None else spec.eta)


# ---------------------------------------------------------------------------------------------- distributed

def _distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether this call initialised the process group) from torchrun's variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=12))
        created = True
    return dist.get_rank(), dist.get_world_size(), created


def _all_ok(ok: bool, world: int) -> bool:
    """True when every process reports ok (one all-reduce)."""
    if world == 1:
        return ok
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _device(config: BenchConfig) -> str:
    if config.device:
        return config.device
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


# ---------------------------------------------------------------------------------------------- setup

def conditions(config: BenchConfig) -> list[Condition]:
    """Clean and corrupted label conditions, one per seed."""
    out = [Condition(CLEAN, 0.0, s) for s in config.seeds] if config.clean else []
    out += [Condition(c.kind, float(v), s) for c in config.corruptions for v in c.severities for s in config.seeds]
    return out


def load_models(config: BenchConfig, split: Split, device: str) -> list[Model]:
    """Load every diffusion checkpoint and check it can encode every label id the run will feed it."""
    from scdm.labels import lookup_table
    from scdm.pipeline import load_pipeline

    models = []
    needed = set(np.unique(split.labels).tolist())
    if config.corruptions:
        needed.add(unlabeled_id(config.dataset.kind))
    for spec in config.models:
        if spec.kind != ModelKind.DIFFUSION:
            models.append(Model(spec))
            continue
        try:
            pipe = load_pipeline(spec.source, device=device)
        except ValueError as e:
            raise ValueError(f"model {spec.name!r}: {e}") from None
        table = lookup_table(pipe.card.labels).numpy()
        bad = sorted(i for i in needed if i >= len(table) or table[i] == -2)
        if bad:
            where = next((n for n, lab in zip(split.names, split.labels) if np.isin(lab, bad).any()), "the corruptions' unlabeled id")
            raise ValueError(f"model {spec.name!r} ({spec.source}) has no class for label ids {bad[:10]} (first in {where}); "
                             f"its encoding has {pipe.card.labels.num_classes} classes — is it trained on this dataset?")
        if spec.mode == Mode.SCDM and not pipe.is_scdm:
            raise ValueError(f"model {spec.name!r}: mode 'scdm' needs a Label Diffusion schedule, but {spec.source} is an "
                             f"SDM checkpoint; use mode 'sdm' or 'auto'")
        ld = pipe.is_scdm if spec.mode == Mode.AUTO else spec.mode == Mode.SCDM
        models.append(Model(spec, pipe, ld))
    return models


def _sample_counts(config: BenchConfig, n: int, kind: ModelKind, condition: Condition) -> list[int]:
    """Samples wanted per label: extra ones on the diversity subset (clean labels unless diversity_corrupted)."""
    if kind != ModelKind.DIFFUSION or not (condition.is_clean or config.diversity_corrupted):
        return [config.samples if kind == ModelKind.DIFFUSION else 1] * n
    extra = max(config.samples, config.diversity_samples)
    return [extra if i < config.diversity_labels else config.samples for i in range(n)]


def _cells(model: Model, config: BenchConfig, conds: Sequence[Condition]) -> list[Cell]:
    if model.spec.kind == ModelKind.REAL:
        return [Cell(model.spec.name, Setting(), Condition(CLEAN, 0.0, config.seeds[0]))]
    return [Cell(model.spec.name, s, c) for s in model.settings(config) for c in conds]


def _check_run_folder(out: Path, config: BenchConfig) -> None:
    """A run folder holds one dataset setting; models, corruptions and seeds may be added on a re-run."""
    old = read_json(out / "config.json")
    if old is not None and old.get("dataset") != to_dict(config.dataset):
        raise ValueError(f"{out} holds a run on another dataset setting ({old.get('dataset')}); use a new --out")


# ---------------------------------------------------------------------------------------------- run

def run(config: BenchConfig, out: str | Path, events: Events | None = None) -> Path | None:
    """Run the benchmark into folder `out`; returns the table path on rank 0 (None on other ranks)."""
    events = events or Events()
    out = Path(out)
    config = validate(config)
    rank, world, created = _distributed()
    try:
        return _run(config, out, events, rank, world)
    finally:
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run(config: BenchConfig, out: Path, events: Events, rank: int, world: int) -> Path | None:
    t0 = time.time()
    device = _device(config)
    error: BaseException | None = None
    try:
        _check_run_folder(out, config)
        events.message(f"loading {config.dataset.kind.value} labels and images")
        split = load_eval(config.dataset, config.limit)
        models = load_models(config, split, device)
        plan = plan_metrics(config)
        needs_train = any(m.spec.kind == ModelKind.FLAT_PAINT for m in models) or config.dataset.reference == Reference.TRAIN
        n_ref = config.dataset.reference_images or len(split)
        train = load_train(config.dataset, max(n_ref, config.dataset.flat_paint_images)) if needs_train else None
        scorer = None
        if rank == 0:
            if config.dataset.reference == Reference.TRAIN:
                ref_images, ref_key = train.images[:n_ref], f"{config.dataset.kind.value}-train-{config.dataset.resolution}"
            else:
                ref_images = split.images
                ref_key = f"{config.dataset.kind.value}-{config.dataset.split or 'eval'}-{config.dataset.resolution}"
            events.message(f"loading metric models ({', '.join(m.value for m in plan.metrics)})")
            scorer = build_scorer(plan, ref_images, ref_key, device=device, batch_size=config.metric_batch_size)
            write_json(out / "config.json", to_dict(config))
    except Exception as e:  # every process must hear about it, or the others would wait at the next collective
        error = e
    if not _all_ok(error is None, world):
        if error is not None:
            raise error
        raise ValueError("setup failed on another process; see its error")

    conds = conditions(config)
    bank = LabelBank(split, unlabeled_id(config.dataset.kind))
    mine = shard(len(split), rank, world)
    for c in dict.fromkeys([Condition(CLEAN, 0.0, config.seeds[0])] + conds):
        bank.write(out, c, mine)
    colours = mean_colours(Split(train.images[:config.dataset.flat_paint_images], train.labels[:config.dataset.flat_paint_images],
                                 None, ())) if train is not None else None
    for model in models:
        cells = _cells(model, config, conds)
        for setting in dict.fromkeys(c.setting for c in cells):
            jobs = [job for c in cells if c.setting == setting
                    for job in pending(out, [c], mine, _sample_counts(config, len(split), model.spec.kind, c.condition))]
            events.stage(f"sampling {model.spec.name}" + (f" {setting.folder}" if setting.sampler != "none" else ""), len(jobs))
            if model.spec.kind == ModelKind.DIFFUSION:
                sample_diffusion(model.pipe, jobs, bank, out, batch_size=config.batch_size,
                                 label_diffusion=model.label_diffusion, precision=config.precision, progress=events.advance)
            elif model.spec.kind == ModelKind.REAL:
                write_real(jobs, split, out, events.advance)
            else:
                write_flat_paint(jobs, bank, colours, out, events.advance)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank != 0:
        return None
    t_sample = time.time() - t0
    table = score_and_report(config, out, models, split, bank, conds, scorer, events)
    events.message(f"sampling {t_sample:.0f} s, total {time.time() - t0:.0f} s; report: {out / report.SUMMARY_NAME}")
    return table


def score_and_report(config: BenchConfig, out: Path, models: list[Model], split: Split, bank: LabelBank,
                     conds: Sequence[Condition], scorer: Scorer, events: Events) -> Path:
    """Score every cell (cached per cell in RUN/rows), then write the table, summary, plots and grids."""
    all_cells = [(m, c) for m in models for c in _cells(m, config, conds)]
    n = len(split)
    wanted = {m.value for m in scorer.plan.metrics}
    events.stage("scoring", len(all_cells))
    rows: list[dict] = []
    for model, cell in all_cells:
        counts = _sample_counts(config, n, model.spec.kind, cell.condition)
        context = f"{scorer.context}|n{n}|s{config.samples}|d{config.diversity_labels}x{config.diversity_samples}"
        path = rows_path(out, cell, context)
        cached = read_json(path)
        if cached is None or not wanted <= set(cached.get("metrics", ())):
            images = _load_samples(out, cell, range(n), config.samples if model.spec.kind == ModelKind.DIFFUSION else 1)
            groups = [np.stack([read_png(sample_path(out, cell, i, j)) for j in range(counts[i])])
                      for i in range(n) if counts[i] >= 2]
            reps = len(images) // n
            clean = np.repeat(split.labels, reps, axis=0)
            noisy = None if cell.condition.is_clean else np.repeat(bank.get(cell.condition), reps, axis=0)
            scored = scorer.score(images, groups, clean, noisy)
            cached = {"metrics": sorted(wanted), "rows": [{"metric": m.value, "value": v, "n": k} for m, v, k in scored]}
            write_json(path, cached)
        for r in cached["rows"]:
            if r["metric"] in wanted:
                rows.append({"model": cell.model, "dataset": config.dataset.kind.value,
                             "corruption": cell.condition.corruption, "severity": cell.condition.severity,
                             "seed": cell.condition.seed, "sampler": cell.setting.sampler, "steps": cell.setting.steps,
                             "guidance": cell.setting.guidance, "eta": cell.setting.eta, **r})
        events.advance(1)
    df = report.frame(rows)
    csv, _ = report.write_table(df, out)
    notes = _notes(config, scorer)
    atomic_write_bytes(out / report.SUMMARY_NAME, report.summary_markdown(
        df, title=f"Label-noise benchmark: {config.dataset.kind.value}", notes=notes).encode())
    if config.figures:
        _figures(config, out, df, all_cells, conds, n)
    return csv


def _figures(config: BenchConfig, out: Path, df, all_cells, conds: Sequence[Condition], n: int) -> None:
    """plots/<metric>.png from the table and grids/<condition>.png from the run folder."""
    from .grids import make_grid, palette_lut
    from .plots import plot_all

    plot_all(df, out / "plots")
    spec = dataset_labels(config.dataset.kind)
    lut = palette_lut(spec.palette, spec.raw_ids) if spec is not None else palette_lut()
    shown = list(range(min(config.grid_labels, n)))
    for c in dict.fromkeys(Condition(x.corruption, x.severity, config.seeds[0]) for x in conds):
        cells = [cell for m, cell in all_cells if cell.condition == c or (m.spec.kind == ModelKind.REAL)]
        cells = list(dict.fromkeys(cells))
        first: dict[str, Cell] = {}
        for cell in sorted(cells, key=lambda x: x.model != "real"):  # real first, then one setting per model
            first.setdefault(cell.model, cell)
        name = "clean" if c.is_clean else f"{c.corruption}_{c.severity:g}"
        make_grid(out, c, list(first.values()), shown, lut, out / "grids" / f"{name}.png")


def _load_samples(out: Path, cell: Cell, indices: Sequence[int], samples: int) -> np.ndarray:
    paths = [sample_path(out, cell, i, j) for i in indices for j in range(samples)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"{len(missing)} samples of {cell.model} are missing (e.g. {missing[0]}); re-run to finish them")
    return np.stack([read_png(p) for p in paths])


def _notes(config: BenchConfig, scorer: Scorer) -> list[str]:
    import noise_sim

    notes = []
    for c in config.corruptions:
        params = "; ".join(f"{s:g} -> {noise_sim.resolve_params(c.kind, s)}" for s in c.severities)
        notes.append(f"`{c.kind}` severities: {params}")
    ref = config.dataset.reference
    notes.append("Fréchet/kernel distance reference: " + ("an independent training-split draw (`real` shows the floor at this N)"
                                          if ref == Reference.TRAIN else "the evaluated images (papers' protocol)"))
    if scorer.plan.segmenter:
        notes.append(f"mIoU segmenter: `{scorer.plan.segmenter}`")
    notes += [f"not computed: {s}" for s in scorer.plan.skipped]
    return notes
