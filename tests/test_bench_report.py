"""bench report: the long table (exact columns, atomic files), markdown with seed error bars, plots, compare."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bench.report import COLUMNS, compare, frame, markdown_tables, read_table, write_table


def synthetic(seeds=(0, 1), samplers=(("ancestral", 25),), offset: float = 0.0) -> pd.DataFrame:
    rows = []
    conditions = [("clean", 0.0), ("ds", 0.4), ("ds", 0.6), ("edge", 0.3)]
    for model, (c, s), seed, (sampler, steps), metric in itertools.product(
            ("scdm", "sdm"), conditions, seeds, samplers, ("miou", "kid_effnetl0")):
        value = 0.7 - s + 0.01 * seed + (0.05 if model == "scdm" else 0) + offset
        rows.append(dict(model=model, dataset="embedded", corruption=c, severity=s, seed=seed, sampler=sampler,
                         steps=steps, guidance=1.5, metric=metric, value=value, n=50))
    rows.append(dict(model="real", dataset="embedded", corruption="clean", severity=0.0, seed=0, sampler="none",
                     steps=0, guidance=0.0, metric="miou", value=0.75, n=50))
    return frame(rows)


def test_table_roundtrip_is_exact(tmp_path) -> None:
    df = synthetic()
    df.loc[0, "value"] = float("nan")
    write_table(df, tmp_path)
    assert tuple(pd.read_csv(tmp_path / "metrics.csv").columns) == COLUMNS
    pd.testing.assert_frame_equal(read_table(tmp_path), df)
    pd.testing.assert_frame_equal(read_table(tmp_path / "metrics.csv"), df)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="duplicated rows"):
        frame(pd.concat([df, df.iloc[:1]]).to_dict("records"))
    with pytest.raises(ValueError, match="no results table"):
        read_table(tmp_path / "nowhere")


def test_markdown_shows_seed_spread_and_settings() -> None:
    text = markdown_tables(synthetic(seeds=(0, 1)))
    assert "**miou** (higher is better)" in text and "| clean | ds 0.4 | ds 0.6 | edge 0.3 |" in text
    assert "0.7550 ± 0.0071" in text  # scdm clean: mean of 0.75 and 0.76, sample std
    text = markdown_tables(synthetic(seeds=(0,), samplers=(("ancestral", 25), ("ddim", 10))))
    assert "scdm (ddim, 10 steps, g 1.5)" in text and "±" not in text
    df = synthetic(seeds=(0,), samplers=(("ddim", 10),))
    df = frame(pd.concat([df, df[df["model"] != "real"].assign(eta=1.0)]).to_dict("records"))
    text = markdown_tables(df)
    assert "scdm (ddim, 10 steps, g 1.5)" in text and "scdm (ddim, 10 steps, g 1.5, eta 1)" in text


def test_tables_written_before_the_eta_column_still_read(tmp_path) -> None:
    df = synthetic(seeds=(0,))
    df.drop(columns="eta").to_csv(tmp_path / "metrics.csv", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "metrics.csv"), df)
    assert (df["eta"] == 0).all()


def test_tables_written_before_the_setting_columns_read_as_not_recorded(tmp_path) -> None:
    from bench.robustness import drops

    df = synthetic(seeds=(0,))
    before = ["model", "dataset", "corruption", "severity", "seed", "sampler", "steps", "guidance", "eta", "metric",
              "value", "n"]  # the columns before cell identities
    df[before].to_csv(tmp_path / "metrics.csv", index=False)
    got = read_table(tmp_path / "metrics.csv")
    pd.testing.assert_frame_equal(got, df)
    assert got["extrapolation"].isna().all() and (got["precision"] == "").all() and got["label_diffusion"].isna().all()
    assert "| scdm | 0.7500 |" in markdown_tables(got)  # NaN settings are still one setting per model
    assert len(drops(got)) == 2 * 3


def test_settings_that_differ_in_any_column_stay_separate_rows(tmp_path) -> None:
    from bench.report import REFERENCE_COLUMNS, SETTING

    df = synthetic(seeds=(0,))
    models = df[df["model"] != "real"].assign(spacing="ddim", extrapolation=0.8, dynamic_threshold=0.95,
                                              precision="fp16", label_diffusion=True, weights="0123456789abcdef")
    real = df[df["model"] == "real"].assign(**REFERENCE_COLUMNS)
    bf16 = models[models["model"] == "scdm"].assign(precision="bf16", value=lambda d: d["value"] + 0.1)
    df = frame(pd.concat([models, real, bf16]).to_dict("records"))
    write_table(df, tmp_path)
    pd.testing.assert_frame_equal(read_table(tmp_path / "metrics.csv"), df)
    pd.testing.assert_frame_equal(read_table(tmp_path), df)
    assert df["label_diffusion"].tolist().count(False) == 1 and set(SETTING) < set(df.columns)
    text = markdown_tables(df)
    assert "| scdm (ancestral, 25 steps, g 1.5, fp16) | 0.7500 |" in text
    assert "| scdm (ancestral, 25 steps, g 1.5, bf16) | 0.8500 |" in text and "| sdm | 0.7000 |" in text


def test_plots_from_the_frame_alone(tmp_path) -> None:
    from bench.plots import plot_all

    paths = plot_all(synthetic(), tmp_path)
    assert sorted(p.name for p in paths) == ["kid_effnetl0.png", "miou.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_compare_aligns_rows() -> None:
    a, b = synthetic(seeds=(0,)), synthetic(seeds=(0, 1), offset=0.1)
    diff = compare(a, b)
    both = diff.dropna(subset=["value_a", "value_b"])
    np.testing.assert_allclose(both[both["model"] != "real"]["diff"], 0.1)
    assert both[both["model"] == "real"]["diff"].tolist() == [0.0]  # the synthetic real row has no offset
    assert diff["value_a"].isna().sum() == len(b) - len(a)


def test_per_class_table_names_classes_and_pools_seeds() -> None:
    from bench.config import DatasetKind
    from bench.datasets import class_names
    from bench.report import per_class_markdown
    from bench.segmenter import class_iou

    classes = tuple(range(1, 151))  # an ADE20K segmenter: output k is raw id k + 1
    a, b = np.zeros((150, 150), np.int64), np.zeros((150, 150), np.int64)
    a[0, 0], a[0, 2], a[2, 2] = 6, 2, 4  # wall (1) partly read as sky (3)
    b[0, 0], b[2, 2], b[2, 4] = 8, 3, 1  # seed 1; sky partly read as tree (5), which is in no label
    key = {"model": "scdm", "sampler": "ancestral", "steps": 25, "guidance": 1.5}
    text = per_class_markdown([(key, a), (key, b)], classes, class_names(DatasetKind.ADE20K))
    assert "| class | scdm |" in text and "class 1" not in text
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ") and "(" in line}
    assert list(rows) == ["wall (1)", "sky (3)"]  # classes in the labels only, named
    iou = class_iou(a + b)
    assert f"{iou[0]:.4f}" in rows["wall (1)"] and f"{iou[2]:.4f}" in rows["sky (3)"]
    unnamed = per_class_markdown([(key, a)], classes, {})
    assert "| id 1 |" in unnamed and per_class_markdown([], classes, {}) == ""


def test_grid_legend_names_the_classes_shown() -> None:
    from bench.grids import legend_entries
    from scdm.labels import ClassTable, id_table
    from scdm.presets import world_labels

    labels = np.array([[3, 3, 3], [10, 10, 0]])  # world ids: sky, grass and the unlabeled id
    entries = legend_entries(ClassTable.from_spec(world_labels()), [labels])
    assert [n for n, _ in entries] == ["sky", "grass", "unlabeled"]  # most pixels first
    assert entries[0][1] == "#06e6e6"  # ADE20K's sky colour
    assert [n for n, _ in legend_entries(id_table([3, 10]), [labels])][:2] == ["class 3", "class 10"]


def test_normalised_distance_puts_real_at_0_and_flat_paint_at_1() -> None:
    from bench.report import REFERENCE_COLUMNS, normalised_distances

    def row(model, metric, value, seed=0, corruption="clean", severity=0.0, **setting):
        setting = setting or REFERENCE_COLUMNS
        return dict(model=model, dataset="embedded", corruption=corruption, severity=severity, seed=seed,
                    metric=metric, value=value, n=64, **setting)

    sampler = dict(sampler="ddim", steps=15, guidance=1.5)
    rows = [row("real", "fd_effnetl0", 30.0), row("flat-paint", "fd_effnetl0", 130.0),
            row("scdm", "fd_effnetl0", 40.0, 0, **sampler), row("scdm", "fd_effnetl0", 50.0, 1, **sampler),
            row("scdm", "fd_effnetl0", 90.0, 0, "ds", 0.4, **sampler),  # corrupted labels: not in this table
            row("scdm", "miou", 0.7, **sampler), row("real", "miou", 0.75)]  # not a distance
    text = normalised_distances(frame(rows))
    assert "| model | fd_effnetl0 |" in text and "miou" not in text
    assert "| scdm | 0.150 |" in text  # mean over seeds 45 -> (45 - 30) / (130 - 30)
    no_flat = frame([r for r in rows if r["model"] != "flat-paint"])
    assert normalised_distances(no_flat) == ""
