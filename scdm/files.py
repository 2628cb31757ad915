"""Writing files safely: through a temporary name in the same folder and a rename, with the user's umask; the cache.

A killed writer never leaves a half-written file behind, and what the project writes for the user (checkpoints,
run folders, samples) gets the permissions any other program would give it (0644 under the usual umask 022),
not the owner-only 0600 of a temporary file.
"""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Callable


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    try:  # Linux reports it without changing it (os.umask would, briefly, for every thread)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def cache_dir(*parts: str) -> Path:
    """The project's one cache folder (recomputable data: world splits, reference features): $SCDM_CACHE, else
    ~/.cache/scdm; `parts` name a sub-folder, e.g. cache_dir("world")."""
    root = os.environ.get("SCDM_CACHE") or Path.home() / ".cache" / "scdm"
    return Path(os.path.expanduser(root)).joinpath(*parts)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` to fill a temporary file next to `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (flushed to disk before the rename)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())
