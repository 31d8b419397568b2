"""Shared artifact storage: one interface for datasets, checkpoints and outputs.

``open_storage(settings)`` gives the installation's storage: ``None`` when
``TUNELAB_ARTIFACTS_URL`` is empty (the default: everything stays in the home
and its run directories, as on one machine), else an ``ArtifactStorage`` over
fsspec for a folder (a shared mount) or any fsspec URL (``s3://bucket/prefix``
with ``TUNELAB_ARTIFACTS_ENDPOINT_URL`` for S3-compatible stores such as
MinIO; ``gs://``, ``az://`` with their fsspec packages). Credentials come from
the environment the backend reads (``AWS_ACCESS_KEY_ID`` ...) or
``TUNELAB_ARTIFACTS_OPTIONS``, never from job bodies.
"""

from tunelab.storage.artifacts import ArtifactStorage, StorageError, open_storage

__all__ = ["ArtifactStorage", "StorageError", "open_storage"]
