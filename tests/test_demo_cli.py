"""`python -m demo` flags: conflicting options and unknown models end with a message and exit code 2."""
from __future__ import annotations

import pytest

from demo.__main__ import main, parse_args


def test_defaults_are_the_bundled_models_without_share() -> None:
    args = parse_args([])
    assert args.checkpoint is None and args.scdm is None and args.sdm is None
    assert not args.share and args.host == "127.0.0.1" and args.precision is None  # None: each card's precision
    assert parse_args(["--precision", "auto-fp16"]).precision == "auto-fp16"


@pytest.mark.parametrize("argv", [["--checkpoint", "a", "--scdm", "b"], ["--tiny", "d", "--sdm", "b"]])
def test_conflicting_flags(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2


def test_unknown_checkpoint_is_a_message(capsys, tmp_path) -> None:
    assert main(["--checkpoint", str(tmp_path / "missing")]) == 2
    assert "not a checkpoint directory and not a bundled name" in capsys.readouterr().err
