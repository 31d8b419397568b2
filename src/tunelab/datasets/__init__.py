"""Datasets: read any supported file, validate it, report its quality, normalise and repair it.

The public API the training engine, the service and the CLI use:

- ``inspect_file(path, ...) -> InspectionReport``: validation issues, quality report, preview.
- ``iter_records(path, ...) -> Iterator[Record]``: canonical records; raises ``DatasetError``.
- ``normalize_file(path, ...) -> DatasetVersion``: store an immutable, content-addressed version.
- ``load_version(version_id)`` / ``list_versions()`` and ``DatasetVersion.iter_records()``.
- ``repair_file(path, out_path, ...)`` / ``repair_version(version_id)`` -> ``RepairReport``.
"""

from tunelab.datasets.formats import FORMATS, detect_format
from tunelab.datasets.inspection import InspectionReport, PreviewRow, inspect_file
from tunelab.datasets.issues import CODES, Issue
from tunelab.datasets.mapping import Mapping, parse_mapping
from tunelab.datasets.quality import QualityReport
from tunelab.datasets.records import Message, Record, ToolCall
from tunelab.datasets.repair import RepairReport, repair_file, repair_version
from tunelab.datasets.source import iter_records
from tunelab.datasets.versions import DatasetVersion, list_versions, load_version, normalize_file

__all__ = [
    "CODES",
    "FORMATS",
    "DatasetVersion",
    "InspectionReport",
    "Issue",
    "Mapping",
    "Message",
    "PreviewRow",
    "QualityReport",
    "Record",
    "RepairReport",
    "ToolCall",
    "detect_format",
    "inspect_file",
    "iter_records",
    "list_versions",
    "load_version",
    "normalize_file",
    "parse_mapping",
    "repair_file",
    "repair_version",
]
