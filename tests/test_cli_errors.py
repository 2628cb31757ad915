"""Every command line turns a user error (a bad flag or value, a missing file or folder) into ONE line on stderr,
`PROG: error: ...`, and exit code 2 (`scdm.cli`), never a traceback or a usage block."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(main: Callable, argv: list[str], capsys) -> str:
    """Run `main(argv)`; assert exit code 2 (returned, or argparse's SystemExit) and one stderr line; return it."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and ": error: " in err[0], err
    return err[0]


def test_scdm(tmp_path, capsys) -> None:
    from scdm.__main__ import main

    empty = tmp_path / "labels"
    empty.mkdir()
    line = one_line_error(main, ["sample", "--checkpoint", "embedded-scdm", "--labels", str(empty), "--out",
                                 str(tmp_path / "out")], capsys)
    assert line.startswith("python -m scdm: error: no .png label maps in")
    assert "the following arguments are required: --checkpoint" in one_line_error(main, ["sample"], capsys)
    missing = tmp_path / "model.pt"
    assert str(missing) in one_line_error(main, ["convert", str(missing), str(tmp_path / "ckpt")], capsys)


def test_scdm_world(tmp_path, capsys) -> None:
    from scdm.world.__main__ import main

    assert "WorldConfig.size" in one_line_error(main, ["preview", "--size", "7", "--out", str(tmp_path / "p.png")],
                                                capsys)
    target = tmp_path / "no-such-folder" / "p.png"  # an OSError from the image writer
    assert "No such file or directory" in one_line_error(main, ["preview", "--n", "1", "--size", "32", "--out",
                                                                str(target)], capsys)
    assert "invalid int value" in one_line_error(main, ["stats", "--n", "many"], capsys)


def test_noise_sim(tmp_path, capsys) -> None:
    from noise_sim.__main__ import main

    missing = tmp_path / "missing"
    line = one_line_error(main, ["--labels", str(missing), "--out", str(tmp_path / "o"), "--kind", "edge"], capsys)
    assert line.startswith("python -m noise_sim: error: --labels") and str(missing) in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no readable PNG label map" in one_line_error(main, ["--labels", str(empty), "--preview",
                                                                str(tmp_path / "p.png")], capsys)
    assert "severity" in one_line_error(main, ["--labels", str(empty), "--out", str(tmp_path / "o"), "--kind", "edge",
                                               "--severity", "2"], capsys)


def test_bench(tmp_path, capsys) -> None:
    from bench.__main__ import main

    missing = tmp_path / "run"
    line = one_line_error(main, ["plot", str(missing)], capsys)
    assert line.startswith("python -m bench: error: no results table") and str(missing) in line
    assert "unknown model" in one_line_error(main, ["run", "--out", str(tmp_path / "x"), "--model", "nope",
                                                    "--quiet"], capsys)
    assert "invalid choice" in one_line_error(main, ["run", "--out", str(tmp_path / "x"), "--sampler", "euler"],
                                              capsys)


def test_bench_train_segmenter(tmp_path, capsys) -> None:
    from bench.train_segmenter import main

    missing = tmp_path / "seg"
    assert str(missing) in one_line_error(main, ["--out", str(missing), "--eval-only", "--n-test", "1"], capsys)
    assert "--steps must be a positive" in one_line_error(main, ["--out", str(missing), "--steps", "0"], capsys)
    assert "invalid int value" in one_line_error(main, ["--out", str(missing), "--steps", "x"], capsys)
    assert "--out" in one_line_error(main, [], capsys)


def test_bench_train_segmenter_as_a_program(tmp_path) -> None:
    """`python -m bench.train_segmenter` exits with the code main returns (it used to print a traceback)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "bench.train_segmenter", "--out", str(tmp_path / "seg"), "--eval-only",
                          "--n-test", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(err) == 1 and err[0].startswith("python -m bench.train_segmenter: error:"), err


def test_demo(tmp_path, capsys) -> None:
    from demo.__main__ import main

    line = one_line_error(main, ["--checkpoint", str(tmp_path / "missing")], capsys)
    assert line.startswith("python -m demo: error:") and "not a checkpoint directory" in line
    assert "use either --checkpoint or --scdm/--sdm" in one_line_error(main, ["--checkpoint", "a", "--scdm", "b"],
                                                                       capsys)


def test_message_folds_lines_and_names_files() -> None:
    from scdm.cli import message

    assert message(ValueError("first\n  second\n")) == "first second"
    assert message(FileNotFoundError(2, "No such file or directory", "/x/y")) == "No such file or directory: /x/y"
    assert message(ValueError()) == "ValueError"
    assert message(OSError("disk full")) == "disk full"
