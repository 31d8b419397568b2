"""Where an export lands: a new folder, written beside itself and renamed in one step.

A half-written export (a crash, a full disk, a converter that fails on layer 20)
must never look like a finished one, and an export must never overwrite a
folder a user already has. So every format builds into a hidden temporary
sibling (``models.builtin.install_atomically``) and renames it into place at the
end; on failure the temporary folder is removed and the target never appears.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tunelab.errors import InvalidInput
from tunelab.models.builtin import install_atomically


class TargetExists(InvalidInput):
    """The export target is a file or a non-empty folder."""

    code = "export_target_exists"


def check_target(out_dir: str | Path) -> Path:
    """``out_dir`` resolved, or ``TargetExists`` when something is already there."""
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TargetExists(f"{out} already exists and is not an empty folder",
                           "choose a new output folder, or remove that one first")  # fmt: skip
    return out


def write_folder(out_dir: str | Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` into a temporary sibling of ``out_dir`` and rename it to ``out_dir``."""
    out = check_target(out_dir)
    if out.exists():
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    return install_atomically(out, build)
