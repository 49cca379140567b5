"""Build a model-cache directory once, safely when several processes start at the same moment.

One process builds under a file lock into a temporary directory that is renamed into place with
a marker saying what it was built from; the others wait and reuse the result. A crash mid-build
leaves no half-written directory, and a directory built from something else is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def built_from(target: Path, marker: str) -> dict | None:
    """The marker of a finished build at ``target`` (None: missing or unreadable)."""
    try:
        return json.loads((target / marker).read_text())
    except (OSError, ValueError):
        return None


def build_once(target: Path, wanted: dict, build: Callable[[Path], None], marker: str) -> Path:
    """``target``, first built by ``build(directory)`` unless its ``marker`` file already says ``wanted``."""
    if built_from(target, marker) == wanted:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if built_from(target, marker) == wanted:
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            build(tmp)
            (tmp / marker).write_text(json.dumps(wanted, indent=2))
            if target.exists():  # incomplete, or built from something else
                shutil.rmtree(target)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
