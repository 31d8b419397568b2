"""HTTP to a provider, with every failure turned into a ``ProviderError`` that says what to fix.

The key comes from the provider's settings and goes only into the
``Authorization`` header; no message here repeats it. Failures worth
retrying (the service unreachable, 429, 5xx) are ``transient``; the worker
retries them for the provider's ``unreachable_s``. The rest fail the job with
a code and a hint: 401 names the setting that holds the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tunelab.providers.base import ProviderError
from tunelab.settings import ProviderSettings


def env_name(name: str, part: str) -> str:
    """``TUNELAB_PROVIDER_PEER_KEY``: the variable that sets one part of provider ``name``."""
    return f"TUNELAB_PROVIDER_{name.upper()}_{part.upper()}"


def base_url(url: str) -> str:
    """The server root: a trailing ``/`` or ``/v1`` (as OpenAI's SDK takes it) is dropped."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _remote_message(response: httpx.Response) -> str:
    """The message of an error answer: OpenAI's and tunelab's ``{"error": {"message"}}``, or the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        text = str(error.get("message") or "")
        return f"{text} ({error['hint']})" if error.get("hint") else text
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])[:300]
    return str(body)[:300]


class Http:
    """One provider's HTTP client (base URL, bearer key, timeouts)."""

    def __init__(self, name: str, settings: ProviderSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.name = name
        self.url = base_url(settings.url)
        key = settings.key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=settings.request_timeout_s,
                                   transport=transport)  # fmt: skip

    def close(self) -> None:
        self.client.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer of a 2xx call; any other outcome is a ``ProviderError``."""
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ProviderError(
                f"provider {self.name!r} at {self.url} did not answer ({type(error).__name__}: {error})",
                f"check that the service runs and that {env_name(self.name, 'url')} (or its url in "
                "TUNELAB_PROVIDERS) is right; the worker keeps trying for the provider's unreachable_s",
                code="provider_unreachable", transient=True,
            ) from error
        if response.is_success:
            return response
        raise self.failure(method, path, response)

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.send(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as error:
            raise ProviderError(
                f"provider {self.name!r} answered {method} {path} with something that is not JSON",
                f"check that {env_name(self.name, 'url')} points at an OpenAI-compatible fine-tuning API",
                code="provider_bad_answer",
            ) from error
        if not isinstance(body, dict):
            raise ProviderError(f"provider {self.name!r} answered {method} {path} with a JSON {type(body).__name__}",
                                "expected an object; check the provider's URL", code="provider_bad_answer")
        return body

    def download(self, path: str, target: Path) -> int:
        """Stream ``path`` into ``target`` (through a temporary sibling); returns the bytes written."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        size = 0
        try:
            with self.client.stream("GET", path) as response:
                if not response.is_success:
                    response.read()
                    raise self.failure("GET", path, response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                        size += len(chunk)
        except httpx.TransportError as error:
            partial.unlink(missing_ok=True)
            raise ProviderError(f"provider {self.name!r}: downloading {path} failed ({error})",
                                "the worker tries again", code="provider_unreachable", transient=True) from error
        partial.replace(target)
        return size

    def failure(self, method: str, path: str, response: httpx.Response) -> ProviderError:
        """The error for a non-2xx answer, with the remote's own message and what to do."""
        status, said = response.status_code, _remote_message(response)
        what = f"provider {self.name!r} answered {method} {path} with {status}: {said}"
        if status == 401:
            return ProviderError(
                f"provider {self.name!r} refused the key ({status} unauthorized: {said})",
                f"check {env_name(self.name, 'key')} on the workers (for a tunelab provider: a token made on that "
                "server with `tunelab tokens create NAME --scope train`)",
                code="provider_unauthorized", status=status,
            )
        if status == 403:
            return ProviderError(what, f"the key in {env_name(self.name, 'key')} lacks the permission for this call",
                                 code="provider_forbidden", status=status)  # fmt: skip
        if status == 429 or status >= 500:
            return ProviderError(what, "the provider is busy or failing; the worker tries again",
                                 code="provider_busy", transient=True, status=status)  # fmt: skip
        if status == 404:
            return ProviderError(what, f"check {env_name(self.name, 'url')} and that the remote job still exists",
                                 code="provider_not_found", status=status)  # fmt: skip
        return ProviderError(what, "the provider refused the request; change what it names and submit the job "
                             "again", code="provider_rejected", status=status)  # fmt: skip
