"""Exit codes of ``python -m tunelab.training RUN_DIR``: the worker's contract.

The job worker maps them to job states: 0 completed, 1 failed, 2 invalid config
or failed preflight (retrying cannot help), 75 stopped on request after saving a
checkpoint (EX_TEMPFAIL: resumable, queue it again to continue).
"""

from __future__ import annotations

COMPLETED = 0
FAILED = 1
INVALID_CONFIG = 2
STOPPED = 75
