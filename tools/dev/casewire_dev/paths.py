"""Where the repository and the shared corpora are, wherever `casewire-dev` is run from."""

from __future__ import annotations

import os
from pathlib import Path

_MARKER = Path("tools") / "dev" / "casewire_dev"


def repo_root(start: Path | None = None) -> Path:
    """The checkout that holds `tools/dev/casewire_dev`: searched upwards from `start` (the
    current directory by default), then from this package's own location (editable install)."""
    candidates = [(start or Path.cwd()).resolve(), Path(__file__).resolve().parent]
    for candidate in candidates:
        for folder in (candidate, *candidate.parents):
            if (folder / _MARKER).is_dir():
                return folder
    raise RuntimeError("cannot find the Casewire checkout: run casewire-dev inside it")


def shared_data(root: Path) -> Path:
    """The shared data folder (read in place, never copied into the repository)."""
    configured = os.environ.get("CASEWIRE_SHARED_DATA")
    path = Path(configured) if configured else root.parent / "shared" / "data"
    if not (path / "corpus").is_dir():
        raise RuntimeError(f"no corpus under {path}: set CASEWIRE_SHARED_DATA to the data folder")
    return path
