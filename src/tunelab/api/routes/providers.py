"""Providers: where jobs can train (``local`` and the remote services in the server's settings).

A listing only: names, kinds, URLs and whether a key is set, never the key.
Providers are configured in the settings of the server and its workers
(``TUNELAB_PROVIDERS``, ``TUNELAB_PROVIDER_<NAME>_URL/_KEY/_KIND``), not
through the API, so no caller can point the workers at an address or a key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tunelab.api.deps import ReadScope, SettingsDep
from tunelab.providers.registry import list_providers

router = APIRouter(prefix="/api/providers", tags=["providers"])


@router.get("", summary="Where jobs can train: local and the configured remote providers (keys never shown)")
def providers(settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    data = list_providers(settings)
    return {"data": data, "count": len(data)}
