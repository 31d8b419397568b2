"""tunelab.api: the REST API, live streams and OpenAI-style aliases (``create_app``)."""

from tunelab.api.app import create_app

__all__ = ["create_app"]
