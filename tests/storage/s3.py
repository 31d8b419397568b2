"""An S3 endpoint for tests: moto's server mode on a free 127.0.0.1 port, speaking the real S3 protocol."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

#: Credentials moto accepts; set for this process and handed to worker processes.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_endpoint(bucket: str = "tunelab-artifacts") -> Iterator[str]:
    """Start moto's S3 server, create ``bucket``, yield the endpoint URL; the server stops at the end."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    import boto3
    from tests.api.live import free_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    port = free_port()
    server: Any = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=url, **_credentials()).create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()


def _credentials() -> dict[str, str]:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_ENV["AWS_DEFAULT_REGION"]}  # fmt: skip
