"""Push a run's output folder to the Hugging Face Hub.

Pushing needs the network and a write token; tunelab runs happily without
either, so every reason a push cannot happen is a ``TunelabError`` with a
hint (offline, no token, bad repo id, the Hub said no) that the worker records
as a ``push_failed`` event rather than failing a job whose training succeeded.
``huggingface_hub`` is imported only when a push really starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError, TunelabError

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_TRUE = ("1", "true", "yes", "on")


class HubError(TunelabError):
    """The push could not happen or the Hub refused it."""

    code = "hub_push_failed"


def validate_repo_id(model_name: object, field: str = "save_options.model_name") -> str:
    """``model_name`` as a Hub repo id (``user/name``), or ``ConfigError`` naming ``field`` and the fix."""
    name = model_name.strip() if isinstance(model_name, str) else ""
    if not REPO_ID.match(name) or ".." in name or name.endswith((".git", ".")):
        short = field.rsplit(".", 1)[-1]
        raise ConfigError(
            f"`{short}` {model_name!r} is not a Hub repository id; push_to_hub needs `user/name`",
            f"set {short} to your Hub user or organisation and a name, e.g. 'alice/smollm2-support' "
            "(letters, digits, '-', '_' and '.'), or turn push_to_hub off",
            details={"field": field},
        )
    return name


def hub_target(save_options: dict[str, Any] | None) -> tuple[str, bool] | None:
    """``(repo_id, private)`` when the job asked to push, else None; accepts `public` and `make_public`."""
    options = save_options or {}
    if not options.get("push_to_hub"):
        return None
    public = bool(options.get("make_public") or options.get("public"))
    return validate_repo_id(options.get("model_name")), not public


def is_offline(offline: bool | None = None) -> bool:
    """True when tunelab (``settings.offline``) or the environment (``HF_HUB_OFFLINE``) says so."""
    if offline is None:
        from tunelab.settings import get_settings

        offline = get_settings().offline
    return bool(offline) or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def resolve_token(token: str | None = None) -> str | None:
    """The token to push with: the argument, ``HF_TOKEN``, or the one saved by ``hf auth login``."""
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    try:
        return get_token()
    except Exception:  # e.g. a failed OIDC exchange: treated as "no token", which has a hint
        return None


def push_to_hub(
    output_dir: Path | str,
    repo_id: str,
    *,
    private: bool,
    token: str | None = None,
    offline: bool | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``output_dir`` to it; returns the repo URL."""
    repo_id = validate_repo_id(repo_id)
    folder = Path(output_dir)
    if not folder.is_dir():
        raise HubError(f"nothing to push: {folder} does not exist", "push a completed job's output")
    if is_offline(offline):
        raise HubError(
            f"cannot push to {repo_id}: tunelab is offline",
            "unset HF_HUB_OFFLINE / TUNELAB_OFFLINE and push again with "
            f"`hf upload {repo_id} {folder}`; the model is saved locally",
            code="hub_offline",
        )
    token = resolve_token(token)
    if not token:
        raise HubError(
            f"cannot push to {repo_id}: no Hugging Face token",
            "set HF_TOKEN to a token with write access (https://huggingface.co/settings/tokens) "
            f"or run `hf auth login`, then `hf upload {repo_id} {folder}`",
            code="hub_token_missing",
        )
    from huggingface_hub import HfApi

    from tunelab.models.hub import hub_endpoint

    api = HfApi(endpoint=hub_endpoint(), token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), repo_type="model",
            commit_message="Upload model trained with tunelab",
        )  # fmt: skip
    except Exception as error:  # the Hub client raises many types (HTTP, OS, validation)
        raise HubError(
            f"pushing to {repo_id} failed: {error}",
            "check that the token can write to this user/organisation and the network is up; "
            f"retry with `hf upload {repo_id} {folder}`",
        ) from error
    return str(url)
