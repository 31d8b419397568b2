"""Which server-side paths a caller may name: the one rule for datasets, models and checkpoints.

A job names its data and model by stored id or catalog name. A path on the
server is a different thing: it lets the caller make the engine read any file
the server can read. So a path is accepted only from callers that could read
the file anyway:

- the local CLI and in-process callers (``LOCAL``): any path, relative ones
  taken from the current folder and stored absolute;
- an admin token when ``TUNELAB_ALLOW_SERVER_PATHS`` lists folders
  (``api_access``): an absolute path that resolves (symlinks followed) inside
  one of them or inside the home's own datasets, models and runs folders;
- a configuration admitted before (``ADMITTED``: the worker writing a run's
  config, a retry): the absolute paths admission produced, never a relative one.

Everyone else gets one refusal whose text depends only on what was sent, never
on whether the path exists, and never repeats a server path. The dataset
service (``jobs/datasets.resolve``) and the job translation
(``jobs/trainconfig``) both call ``server_path``; routes only pick the access.

Code is the same kind of thing as a path, only more so: ``loss.loss_fn``
(``package.module:function``) makes the engine import and run a module on the
server. ``admit_code`` takes it from the local CLI, admitted configurations and
admins (any admin, ``TUNELAB_ALLOW_SERVER_PATHS`` or not) and refuses everyone
else with 403 naming the field and the scope it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError, Forbidden
from tunelab.settings import Settings

__all__ = [
    "ADMITTED",
    "LOCAL",
    "NO_PATHS",
    "PathAccess",
    "admit_code",
    "admit_model_name",
    "api_access",
    "is_path_like",
    "refuse",
    "server_path",
    "shown_path",
]


@dataclass(frozen=True)
class PathAccess:
    """The server paths one caller may name: ``roots`` None means anywhere, ``()`` nowhere.

    ``code``: the caller may name code for the engine to import (``admit_code``).
    """

    roots: tuple[Path, ...] | None = ()
    relative: bool = False
    code: bool = False

    @property
    def allows_paths(self) -> bool:
        return self.roots is None or bool(self.roots)


LOCAL = PathAccess(None, relative=True, code=True)
ADMITTED = PathAccess(None, relative=False, code=True)
NO_PATHS = PathAccess((), relative=False)


def api_access(settings: Settings, *, admin: bool) -> PathAccess:
    """What an API caller may name: nothing, unless an admin and ``allow_server_paths`` is set (code: admins)."""
    if not admin:
        return NO_PATHS
    if not settings.allow_server_paths:
        return PathAccess((), relative=False, code=True)
    roots = [*settings.allow_server_paths, settings.datasets_dir, settings.models_dir, settings.runs_dir]
    return PathAccess(tuple(Path(root).expanduser().resolve() for root in roots), relative=False, code=True)


def is_path_like(value: str) -> bool:
    """Whether ``value`` can only be a path (absolute, ``~``, ``./``, a ``.``/``..`` part, a backslash).

    ``org/name`` is not path-like: it is a Hub id. A value that is neither
    path-like nor stored is a name, whatever exists on the disk.
    """
    if value.startswith(("/", "~", ".")) or "\\" in value or "\x00" in value:
        return True
    return any(part in (".", "..") for part in value.split("/"))


def refuse(field: str, access: PathAccess) -> ConfigError:
    """The one answer to a path the caller may not name: the same whether it exists or not."""
    if access.roots:
        return ConfigError(
            f"`{field}` names a server path outside the folders TUNELAB_ALLOW_SERVER_PATHS allows",
            "give an absolute path inside one of the allowed folders, or upload the file "
            "(POST /api/datasets) and send its id or name",
            code="path_not_allowed", details={"field": field},
        )  # fmt: skip
    return ConfigError(
        f"`{field}` names a server path; the API takes datasets and models by stored id or name only",
        "upload the file (POST /api/datasets or /v1/files) and send its id or name, or use a catalog or "
        "Hub model id; server paths need an admin token and TUNELAB_ALLOW_SERVER_PATHS on the server",
        code="path_not_allowed", details={"field": field},
    )  # fmt: skip


def server_path(value: str, field: str, access: PathAccess) -> Path:
    """The absolute path ``value`` names if ``access`` may name it; ``refuse`` otherwise.

    Only the text is looked at (``resolve`` is not strict), so a missing and an
    existing path get the same answer; existence is the caller's next question.
    """
    if not access.allows_paths or "\x00" in value or not value:
        raise refuse(field, access)
    try:
        raw = Path(value).expanduser()
        if not raw.is_absolute():
            if not access.relative:
                raise refuse(field, access)
            raw = Path.cwd() / raw
        resolved = raw.resolve()
    except (OSError, RuntimeError, ValueError):
        raise refuse(field, access) from None
    if access.roots is None or any(resolved.is_relative_to(root) for root in access.roots):
        return resolved
    raise refuse(field, access)


def shown_path(path: str | Path | None, settings: Settings) -> str | None:
    """A server path as an answer may show it: relative to the home, or None when it lies outside."""
    if not path:
        return None
    try:
        return Path(path).resolve().relative_to(Path(settings.home).resolve()).as_posix()
    except (OSError, RuntimeError, ValueError):
        return None


def admit_model_name(value: str, field: str, access: PathAccess) -> str:
    """A model reference as the caller may give it: a name as is, a path-like value only through ``server_path``."""
    return str(server_path(value, field, access)) if is_path_like(value) else value


def admit_code(
    hyperparameters: dict[str, Any], access: PathAccess, prefix: str = "hyperparameters"
) -> None:
    """Refuse ``loss.loss_fn`` (code the engine imports) unless ``access`` may name code: 403 naming field and scope."""
    loss = hyperparameters.get("loss")
    if not isinstance(loss, dict) or loss.get("loss_fn") in (None, "") or access.code:
        return
    field = f"{prefix}.loss.loss_fn"
    raise Forbidden(
        f"`{field}` makes the server import and run code; a job body with the 'train' scope may not name one",
        "send it with an 'admin' token (`tunelab tokens create NAME --scope admin`) or train locally with "
        "`tunelab train config.yaml`; the built-in loss.label_smoothing, loss.class_weights and "
        "loss.token_weights need no admin",
        code="loss_fn_not_allowed", details={"field": field, "scope": "admin"},
    )  # fmt: skip
