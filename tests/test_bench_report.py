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
