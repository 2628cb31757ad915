"""One benchmark run: validate everything, sample (sharded over torchrun processes), score, write the report.

Order: config -> models (checkpoints, plug-ins) -> dataset files (a label-only folder read in the models' encoding)
-> models vs label ids and a plug-in probe -> metric weights -> sampling -> metrics -> report, so bad input fails
before any long work. Under `torchrun` each process samples the images with
index % WORLD_SIZE == RANK (files shared through the run folder); rank 0 then scores and writes the table.
Finished images and scored cells are skipped on a re-run, so a killed run resumes where it stopped. A cell is
identified by its model's weights (`Pipeline.digest`, a plug-in's `digest`) and its fully resolved sampler setting
on this device (`scdm.settings.resolve`): a different setting is a new cell, and a cell folder whose identity
changed (other weights under the same model name) stops the run before any sampling, so one table never mixes them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from scdm.checkpoint import atomic_write_bytes
from scdm.distributed import Distributed, setup
from scdm.labels import ClassTable, fill_id
from scdm.serialize import to_json_value

from . import report
from .config import (BenchConfig, Mode, ModelKind, ModelSpec, Reference, config_document, config_from_document,
                     requested_settings, validate)
from .datasets import (Split, class_names, dataset_labels, encoding_kind, label_encoding, load_eval, load_train,
                       mean_colours, naming_labels, unlabeled_id)
from .robustness import drop_summary
from .sampling import LabelBank, pending, sample_diffusion, sample_plugin, shard, write_flat_paint, write_real
from .scoring import Scorer, build_scorer, plan_metrics
from .store import (CLEAN, IDENTITY_NAME, Cell, Condition, cell_identity, identity_changes, read_json, read_png,
                    rows_path, sample_path, setting_dir, setting_folder, unidentified_folder, write_json)

if TYPE_CHECKING:
    from scdm.config import LabelSpec
    from scdm.pipeline import Pipeline
    from scdm.settings import SamplingSettings

    from .plugin import Plugin


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
    settings: tuple[SamplingSettings, ...] = ()  # distinct resolved sampler settings; empty for the other rows
    plugin: Plugin | None = None  # for plug-in models

    @property
    def digest(self) -> str | None:
        """Which weights (or plug-in version) made the images; None for the reference rows."""
        return self.pipe.digest if self.pipe else self.plugin.digest if self.plugin else None

    @property
    def labels(self) -> LabelSpec | None:
        """The label encoding the model takes: its card's, a plug-in's declared one, else None."""
        return self.pipe.card.labels if self.pipe else self.plugin.encoding if self.plugin else None

    def identity(self, settings: SamplingSettings | None) -> dict:
        """The cell.json of this model's `settings` folder."""
        return cell_identity(self.spec.name, self.spec.kind.value, settings, self.digest)


# ---------------------------------------------------------------------------------------------- setup

def conditions(config: BenchConfig) -> list[Condition]:
    """Clean and corrupted label conditions, one per seed."""
    out = [Condition(CLEAN, 0.0, s) for s in config.seeds] if config.clean else []
    out += [Condition(c.kind, float(v), s) for c in config.corruptions for v in c.severities for s in config.seeds]
    return out


def check_precisions(config: BenchConfig, device: str) -> None:
    """Every precision the config names must run on `device` (fp16 needs a GPU); checked before loading data."""
    from scdm.precision import autocast_dtype

    asked = [("precision", config.precision)] + [(f"samplers[{i}].precision", s.precision)
                                                 for i, s in enumerate(config.samplers)]
    for where, precision in asked:
        if precision is not None:
            try:
                autocast_dtype(precision, device)
            except ValueError as e:
                raise ValueError(f"{where} on {device}: {e}") from None


def skipped_rows(config: BenchConfig) -> dict[str, str]:
    """Reference rows a run leaves out, with why: a label-only folder has no photos for `real` and `flat-paint`."""
    if config.dataset.kind.has_photos:
        return {}
    why = {ModelKind.REAL: "no photos in a label-only folder",
           ModelKind.FLAT_PAINT: "no training photos for its class colours in a label-only folder"}
    return {m.name: why[m.kind] for m in config.models if m.kind in why}


def load_models(config: BenchConfig, device: str) -> list[Model]:
    """Load every diffusion checkpoint and plug-in, and resolve the checkpoints' sampler settings on `device` (the
    cells' identities); `check_models` then checks them against the labels."""
    from scdm.pipeline import load_pipeline

    from .plugin import load_plugin

    models = []
    for spec in config.models:
        if spec.name in skipped_rows(config):
            continue
        if spec.kind == ModelKind.PLUGIN:
            try:
                models.append(Model(spec, plugin=load_plugin(spec.source, device=device)))
            except ValueError as e:
                raise ValueError(f"model {spec.name!r}: {e}") from None
            continue
        if spec.kind != ModelKind.DIFFUSION:
            models.append(Model(spec))
            continue
        try:
            pipe = load_pipeline(spec.source, device=device)
        except ValueError as e:
            raise ValueError(f"model {spec.name!r}: {e}") from None
        if spec.mode == Mode.SCDM and not pipe.is_scdm:
            raise ValueError(f"model {spec.name!r}: mode 'scdm' needs a Label Diffusion schedule, but {spec.source} is an "
                             f"SDM checkpoint; use mode 'sdm' or 'auto'")
        resolved = []
        for i, asked in enumerate(requested_settings(config, spec)):
            try:
                resolved.append(pipe.resolve(asked))
            except ValueError as e:
                raise ValueError(f"model {spec.name!r}, samplers[{i}]: {e}") from None
        models.append(Model(spec, pipe, tuple(dict.fromkeys(resolved))))
    return models


def check_corrupted(models: Sequence[Model], bank: LabelBank, conds: Sequence[Condition]) -> None:
    """Every corrupted map holds only ids every model has a class for (a corruption that writes other ids, such as
    a colour palette of another dataset, stops the run here, before any sampling, naming condition and map)."""
    from scdm.labels import valid_ids

    for c in dict.fromkeys(conds):
        maps = bank.get(c)
        ids = set(np.unique(maps).tolist())
        for model in models:
            bad = sorted(ids - valid_ids(model.labels)) if model.labels is not None else []
            if bad:
                where = next(n for n, lab in zip(bank.split.names, maps) if np.isin(lab, bad).any())
                raise ValueError(f"corruption {c.corruption!r} at severity {c.severity:g} wrote label ids {bad[:10]} "
                                 f"(first in {where}) that model {model.spec.name!r} has no class for")


def check_models(models: Sequence[Model], split: Split, unlabeled: int | None) -> None:
    """Every model with an encoding has a class for every label id the run feeds it (`unlabeled`: the id the
    corruptions write, if any), and every plug-in's generate passes a 1-label probe."""
    from scdm.labels import valid_ids

    from .plugin import probe

    needed = set(np.unique(split.labels).tolist()) | ({unlabeled} if unlabeled is not None else set())
    for model in models:
        spec, labels = model.spec, model.labels
        bad = sorted(needed - valid_ids(labels)) if labels is not None else []
        if bad:
            where = next((n for n, lab in zip(split.names, split.labels) if np.isin(lab, bad).any()), "the corruptions' unlabeled id")
            raise ValueError(f"model {spec.name!r} ({spec.source}) has no class for label ids {bad[:10]} (first in {where}); "
                             f"its encoding has {labels.num_classes} classes — is it trained on this dataset?")
        if model.plugin is not None:
            try:
                probe(model.plugin, split.labels[0])
            except ValueError as e:
                raise ValueError(f"model {spec.name!r}: {e}") from e


def _sample_counts(config: BenchConfig, n: int, kind: ModelKind, condition: Condition) -> list[int]:
    """Samples wanted per label: extra ones on the diversity subset (clean labels unless diversity_corrupted)."""
    if not kind.generative or not (condition.is_clean or config.diversity_corrupted):
        return [config.samples if kind.generative else 1] * n
    extra = max(config.samples, config.diversity_samples)
    return [extra if i < config.diversity_labels else config.samples for i in range(n)]


def _cells(model: Model, config: BenchConfig, conds: Sequence[Condition]) -> list[Cell]:
    if model.spec.kind == ModelKind.REAL:
        return [Cell(model.spec.name, None, Condition(CLEAN, 0.0, config.seeds[0]))]
    if model.spec.kind in (ModelKind.FLAT_PAINT, ModelKind.PLUGIN):  # no sampler settings
        return [Cell(model.spec.name, None, c) for c in conds]
    return [Cell(model.spec.name, s, c) for s in model.settings for c in conds]


def _check_run_folder(out: Path, config: BenchConfig) -> None:
    """A run folder holds one dataset setting; models, settings, corruptions and seeds may be added on a re-run."""
    old = read_json(out / "config.json")
    try:  # through the loader, so a field added since (default value) is no change
        same = old is None or config_from_document(old).dataset == config.dataset
    except ValueError:
        same = old.get("dataset") == to_json_value(config.dataset)
    if not same:
        raise ValueError(f"{out} holds a run on another dataset setting ({old.get('dataset')}); use a new --out")
    legacy = unidentified_folder(out)
    if legacy is not None:
        raise ValueError(f"{legacy} has samples but no {IDENTITY_NAME}: it was made by an older bench that did not "
                         f"record settings and weights, so new cells could not be told from it; use a new --out")


def _check_identities(out: Path, models: Sequence[Model]) -> list[tuple[Path, dict]]:
    """(folder, identity) of every setting folder the run will use; raises when a folder holds other content."""
    wanted = []
    for model in models:
        for settings in model.settings or (None,):
            folder, ident = setting_dir(out, model.spec.name, setting_folder(settings)), model.identity(settings)
            old = read_json(folder / IDENTITY_NAME) if (folder / IDENTITY_NAME).exists() else ident
            if old != ident:
                changes = identity_changes(old, ident) if isinstance(old, dict) else [f"{IDENTITY_NAME}: unreadable"]
                raise ValueError(f"{folder} was made with other inputs ({'; '.join(changes)}); use a new --out to keep "
                                 f"both, or delete that folder to sample it again")
            wanted.append((folder, ident))
    return wanted


# ---------------------------------------------------------------------------------------------- run

def run(config: BenchConfig, out: str | Path, events: Events | None = None) -> Path | None:
    """Run the benchmark into folder `out`; returns the table path on rank 0 (None on other ranks)."""
    events = events or Events()
    out = Path(out)
    config = validate(config)
    with setup(config.device) as ranks:  # ValueError on every rank for a bad device or LOCAL_RANK
        return _run(config, out, events, ranks)


def _run(config: BenchConfig, out: Path, events: Events, ranks: Distributed) -> Path | None:
    t0 = time.time()
    rank, world, device = ranks.rank, ranks.world_size, str(ranks.device)
    error: BaseException | None = None
    try:
        check_precisions(config, device)
        models = load_models(config, device)
        photos, encoding = config.dataset.kind.has_photos, None
        if not photos:  # label maps alone are read in the models' encoding; config.json records which
            name, encoding = label_encoding(config.dataset, [(m.spec.name, m.labels) for m in models if m.labels is not None])
            config = replace(config, dataset=replace(config.dataset, encoding=name))
        if rank == 0:
            _check_run_folder(out, config)
        events.message(f"loading {config.dataset.kind.value} labels" + (" and images" if photos else ""))
        split = load_eval(config.dataset, config.limit, encoding)
        unlabeled = fill_id(encoding) if encoding is not None else unlabeled_id(config.dataset.kind)
        check_models(models, split, unlabeled if config.corruptions else None)
        identities = _check_identities(out, models) if rank == 0 else []
        plan = plan_metrics(config)
        needs_train = photos and (any(m.spec.kind == ModelKind.FLAT_PAINT for m in models)
                                  or config.dataset.reference == Reference.TRAIN)
        n_ref = config.dataset.reference_images or len(split)
        train = load_train(config.dataset, max(n_ref, config.dataset.flat_paint_images)) if needs_train else None
        scorer = None
        if rank == 0:
            if not photos:  # the feature spaces serve the diversity metrics only
                ref_images, ref_key = None, f"labels-{config.dataset.resolution}"
            elif config.dataset.reference == Reference.TRAIN:
                ref_images, ref_key = train.images[:n_ref], f"{config.dataset.kind.value}-train-{config.dataset.resolution}"
            else:
                ref_images = split.images
                ref_key = f"{config.dataset.kind.value}-{config.dataset.split or 'eval'}-{config.dataset.resolution}"
            events.message(f"loading metric models ({', '.join(m.value for m in plan.metrics)})")
            scorer = build_scorer(plan, ref_images, ref_key, device=device, batch_size=config.metric_batch_size)
            write_json(out / "config.json", config_document(config))
            for folder, ident in identities:  # before any image, so every image has its identity beside it
                if not (folder / IDENTITY_NAME).exists():
                    write_json(folder / IDENTITY_NAME, ident)
    except Exception as e:  # noqa: BLE001 - every process must hear about it, or the others would wait at the next collective
        error = e
    if not ranks.all_ok(error is None):
        if error is not None:
            raise error
        raise ValueError("setup failed on another process; see its error")

    conds = conditions(config)
    spec = encoding or dataset_labels(encoding_kind(config.dataset)) or next((m.labels for m in models if m.labels), None)
    bank = LabelBank(split, unlabeled, None if spec is None else ClassTable.from_spec(spec))
    mine = shard(len(split), rank, world)
    check_corrupted(models, bank, conds)  # every rank, before any sampling
    for c in dict.fromkeys([Condition(CLEAN, 0.0, config.seeds[0])] + conds):
        bank.write(out, c, mine)
    colours = mean_colours(Split(train.images[:config.dataset.flat_paint_images], train.labels[:config.dataset.flat_paint_images],
                                 None, ())) if train is not None else None
    for model in models:
        cells = _cells(model, config, conds)
        for setting in dict.fromkeys(c.settings for c in cells):
            jobs = [job for c in cells if c.settings == setting
                    for job in pending(out, [c], mine, _sample_counts(config, len(split), model.spec.kind, c.condition))]
            events.stage(f"sampling {model.spec.name}" + (f" {setting_folder(setting)}" if setting else ""), len(jobs))
            if model.spec.kind == ModelKind.DIFFUSION:
                sample_diffusion(model.pipe, jobs, bank, out, batch_size=config.batch_size, progress=events.advance)
            elif model.spec.kind == ModelKind.PLUGIN:
                sample_plugin(model.plugin, jobs, bank, out, batch_size=config.batch_size, progress=events.advance)
            elif model.spec.kind == ModelKind.REAL:
                write_real(jobs, split, out, events.advance)
            else:
                write_flat_paint(jobs, bank, colours, out, events.advance)
    ranks.barrier()
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
    clean_cms: list[tuple[dict, np.ndarray]] = []  # (model + setting columns, (K, K)) of clean cells, for per-class IoU
    classes = list(scorer.segmenter.classes) if scorer.segmenter is not None else None
    for model, cell in all_cells:
        counts = _sample_counts(config, n, model.spec.kind, cell.condition)
        context = f"{scorer.context}|n{n}|s{config.samples}|d{config.diversity_labels}x{config.diversity_samples}"
        if config.diversity_corrupted and model.spec.kind.generative and not cell.condition.is_clean:
            context += "|dc"  # corrupted cells with diversity samples: their rows add feat/lpips diversity
        path = rows_path(out, cell, model.identity(cell.settings), context)
        cached = read_json(path)
        needs_cm = "miou" in wanted and cell.condition.is_clean and classes is not None
        if cached is None or not wanted <= set(cached.get("metrics", ())) or (needs_cm and cached.get("classes") != classes):
            images = _load_samples(out, cell, range(n), config.samples if model.spec.kind.generative else 1)
            groups = [np.stack([read_png(sample_path(out, cell, i, j)) for j in range(counts[i])])
                      for i in range(n) if counts[i] >= 2]
            reps = len(images) // n
            clean = np.repeat(split.labels, reps, axis=0)
            noisy = None if cell.condition.is_clean else np.repeat(bank.get(cell.condition), reps, axis=0)
            scored, cm = scorer.score(images, groups, clean, noisy)
            cached = {"metrics": sorted(wanted), "rows": [{"metric": m.value, "value": v, "n": k} for m, v, k in scored]}
            if needs_cm:  # the clean-label confusion behind the mIoU row, for the per-class IoU table
                cached.update(classes=classes, confusion=cm.tolist())
            write_json(path, cached)
        if needs_cm:
            clean_cms.append(({"model": cell.model, **report.setting_columns(cell.settings)}, np.asarray(cached["confusion"])))
        for r in cached["rows"]:
            if r["metric"] in wanted:
                rows.append({"model": cell.model, "dataset": config.dataset.kind.value,
                             "corruption": cell.condition.corruption, "severity": cell.condition.severity,
                             "seed": cell.condition.seed, **report.setting_columns(cell.settings),
                             "weights": model.digest or "", **r})
        events.advance(1)
    df = report.frame(rows)
    csv, _ = report.write_table(df, out)
    notes = _notes(config, scorer, split)
    cards = [m.labels for m in models if m.labels is not None]
    seg = scorer.segmenter
    seg_names = dict(zip(seg.classes, seg.class_names)) if seg is not None and len(seg.class_names) == len(seg.classes) else {}
    names = class_names(encoding_kind(config.dataset), cards, seg_names)
    per_class = report.per_class_markdown(clean_cms, classes, names) if classes is not None else ""
    atomic_write_bytes(out / report.SUMMARY_NAME, report.summary_markdown(
        df, title=f"Label-noise benchmark: {config.dataset.kind.value}", notes=notes,
        sections=[report.normalised_distances(df), per_class, drop_summary(df)]).encode())
    if config.figures:
        _figures(config, out, df, all_cells, conds, n, cards)
    return csv


def _figures(config: BenchConfig, out: Path, df, all_cells, conds: Sequence[Condition], n: int,
             cards: Sequence = ()) -> None:
    """plots/<metric>.png from the table and grids/<condition>.png from the run folder (labels coloured and named
    by the dataset's encoding, else a model card's)."""
    from scdm.labels import ClassTable, id_table

    from .grids import make_grid
    from .plots import plot_all

    plot_all(df, out / "plots")
    kind = encoding_kind(config.dataset)
    spec = naming_labels(kind, cards) or dataset_labels(kind)
    table = ClassTable.from_spec(spec) if spec is not None else id_table(range(256), unlabeled_id(kind))
    shown = list(range(min(config.grid_labels, n)))
    for c in dict.fromkeys(Condition(x.corruption, x.severity, config.seeds[0]) for x in conds):
        cells = [cell for m, cell in all_cells if cell.condition == c or (m.spec.kind == ModelKind.REAL)]
        cells = list(dict.fromkeys(cells))
        first: dict[str, Cell] = {}
        for cell in sorted(cells, key=lambda x: x.model != "real"):  # real first, then one setting per model
            first.setdefault(cell.model, cell)
        name = "clean" if c.is_clean else f"{c.corruption}_{c.severity:g}"
        make_grid(out, c, list(first.values()), shown, table, out / "grids" / f"{name}.png")


def _load_samples(out: Path, cell: Cell, indices: Sequence[int], samples: int) -> np.ndarray:
    paths = [sample_path(out, cell, i, j) for i in indices for j in range(samples)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"{len(missing)} samples of {cell.model} are missing (e.g. {missing[0]}); re-run to finish them")
    return np.stack([read_png(p) for p in paths])


def _notes(config: BenchConfig, scorer: Scorer, split: Split | None = None) -> list[str]:
    import noise_sim

    notes = []
    for c in config.corruptions:
        params = "; ".join(f"{s:g} -> {noise_sim.resolve_params(c.kind, s)}" for s in c.severities)
        notes.append(f"`{c.kind}` severities: {params}")
    ref = config.dataset.reference
    if config.dataset.kind.has_photos:
        notes.append("Fréchet/kernel distance reference: " + (
            "an independent training-split draw (`real` shows the floor at this N)" if ref == Reference.TRAIN
            else "the evaluated images (papers' protocol)"))
    else:
        encoding = config.dataset.encoding
        notes.append("label-only folder: maps read in the " + (f"`{encoding.value}` encoding" if encoding is not None
                                                              else "models' own encoding (no known dataset's)"))
    notes += list(split.notes if split is not None else ())
    notes += [f"not run: `{name}`: {why}" for name, why in skipped_rows(config).items()]
    if scorer.plan.segmenter:
        notes.append(f"mIoU segmenter: `{scorer.plan.segmenter}`")
    notes += [f"not computed: {s}" for s in scorer.plan.skipped]
    return notes
