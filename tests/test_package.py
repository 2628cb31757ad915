"""Package hygiene: `import scdm` stays light, one version, and the data files the code reads are package data."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_scdm_does_not_start_the_trainer_or_the_apps():
    code = ("import sys, scdm; heavy = [m for m in sys.modules if m.split('.')[0] in ('gradio', 'pandas', 'matplotlib')"
            " or m in ('scdm.train', 'scdm.distributed', 'bench', 'demo')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_one_version_and_the_packaged_data_exists():
    import scdm

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "scdm.__version__"}
    assert scdm.__version__.count(".") == 2
    for package, patterns in meta["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern} matches no file"
