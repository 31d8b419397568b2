"""Storage-test fixtures: the job tests' dataset and config builders."""

from __future__ import annotations

from tests.jobs.conftest import dataset_file, make_config  # noqa: F401  (fixtures, shared)
