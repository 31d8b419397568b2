"""ONNX exports through optimum's exporter: a decoder with its KV cache, for onnxruntime.

optimum (``optimum-onnx``) knows how to trace each architecture with past
key/values as inputs and outputs, which a hand-written ``torch.onnx.export``
would have to redo per model; ``optimum.onnxruntime.ORTModelForCausalLM`` then
loads the folder and generates like a transformers model. Both are imported only
when an ONNX export or check runs.
"""

from __future__ import annotations

from pathlib import Path

from tunelab.errors import TunelabError

TASK = "text-generation-with-past"


class OnnxExportFailed(TunelabError):
    """optimum could not trace the model."""

    code = "onnx_export_failed"


def write_onnx(model_dir: Path, out_dir: Path) -> Path:
    """Export the plain model folder ``model_dir`` as ``model.onnx`` plus config and tokenizer in ``out_dir``."""
    try:
        from optimum.exporters.onnx import main_export
    except ImportError as error:
        raise OnnxExportFailed("ONNX export needs optimum's exporter, which is not installed",
                               "pip install 'optimum-onnx[onnxruntime]'") from error  # fmt: skip
    try:
        main_export(str(model_dir), output=str(out_dir), task=TASK, device="cpu", do_validation=False)
    except Exception as error:  # optimum raises ValueError, KeyError, RuntimeError by architecture
        raise OnnxExportFailed(f"optimum could not export this model to ONNX: {error}",
                               "export `merged` and run optimum-cli export onnx on it for details") from error  # fmt: skip
    return out_dir
