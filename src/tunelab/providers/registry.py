"""Which providers exist (``local`` plus the settings' ``providers``), and what a remote job may ask for.

``local`` is built in: the studio's own engine on its workers
(``jobs.supervisor.Supervisor``). Every other name comes from the settings
(``TUNELAB_PROVIDERS``, ``TUNELAB_PROVIDER_<NAME>_URL/_KEY/_KIND``) of the
process that reads it: the API checks a job's provider when the job is
created, the worker opens it when it runs the job, so both need the same
settings (the key only where the worker runs).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from tunelab.errors import ConfigError, InvalidInput
from tunelab.providers.base import Provider, ProviderError
from tunelab.providers.http import base_url, env_name
from tunelab.providers.openai import OpenAIProvider, TunelabProvider
from tunelab.settings import ProviderSettings, Settings

log = logging.getLogger("tunelab.providers")
LOCAL = "local"
#: Provider kinds and the class that speaks each.
KINDS: dict[str, type[OpenAIProvider]] = {"openai": OpenAIProvider, "tunelab": TunelabProvider}
#: Fields of a job that name local things a remote service cannot see.
LOCAL_ONLY = {
    "dataset_mix": "its datasets are not uploaded; merge them into the job's dataset",
    "resume_from": "a local checkpoint cannot be sent; resume a paused remote job instead",
}


def configured(settings: Settings) -> dict[str, ProviderSettings]:
    """The remote providers by name (a configured ``local`` is ignored: that name is the engine)."""
    if LOCAL in settings.providers:
        log.warning("a provider named 'local' in the settings is ignored: 'local' is this studio's engine")
    return {name: value for name, value in sorted(settings.providers.items()) if name != LOCAL}


def describe(name: str, provider: ProviderSettings) -> dict[str, Any]:
    """One provider as ``GET /api/providers`` and ``tunelab providers`` show it: never the key."""
    return {
        "name": name, "kind": provider.kind, "url": base_url(provider.url) or None,
        "key_set": bool(provider.key.get_secret_value()), "key_setting": env_name(name, "key"),
        "poll_s": provider.poll_s,
    }  # fmt: skip


def list_providers(settings: Settings) -> list[dict[str, Any]]:
    """``local`` first, then the configured providers by name."""
    local = {"name": LOCAL, "kind": "local", "url": None, "key_set": False, "key_setting": None, "poll_s": None}
    return [local, *(describe(name, value) for name, value in configured(settings).items())]


def check_provider(name: str, settings: Settings) -> str:
    """``name`` if a job may train there; ``InvalidInput`` naming the ones that exist otherwise."""
    providers = configured(settings)
    if name == LOCAL or name in providers:
        return name
    known = ", ".join([LOCAL, *providers])
    raise InvalidInput(
        f"unknown provider {name!r}; this studio has: {known}",
        f"set {env_name(name, 'url')} (and {env_name(name, 'key')}, {env_name(name, 'kind')}) on the server "
        "and its workers, or see `tunelab providers`",
        details={"provider": name, "known": [LOCAL, *providers]},
    )


def check_remote_config(provider: str, config: dict[str, Any]) -> None:
    """Refuse what a remote job cannot carry (``LOCAL_ONLY``), naming each field."""
    if provider == LOCAL:
        return
    hyper = config.get("hyperparameters") or {}
    problems = [f"`{field}`: {why}" for field, why in LOCAL_ONLY.items() if hyper.get(field) not in (None, [], "none")]
    if problems:
        raise ConfigError(
            f"provider {provider!r} trains elsewhere and cannot use: " + "; ".join(problems),
            "drop these fields, or train with provider 'local'",
            details={"errors": problems},
        )


def open_provider(name: str, settings: Settings, transport: httpx.BaseTransport | None = None) -> Provider:
    """A client for the remote provider ``name`` (``ProviderError`` when it is not usable as configured)."""
    providers = configured(settings)
    if name not in providers:
        raise ProviderError(
            f"provider {name!r} is not configured on this worker",
            f"set {env_name(name, 'url')} and {env_name(name, 'key')} where the workers run, then resume the job",
            code="provider_unknown",
        )
    provider = providers[name]
    if not provider.url:
        raise ProviderError(f"provider {name!r} has no URL", f"set {env_name(name, 'url')}", code="provider_unknown")
    return KINDS[provider.kind](name, provider, transport)
