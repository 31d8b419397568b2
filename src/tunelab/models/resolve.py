"""Turn whatever the user typed (built-in id, folder, Hub id) into a local model folder.

Everything downstream (training, evaluation, serving) loads plain Hugging Face
folders, so this is the one place that knows about built-ins, the tunelab model
cache, the Hugging Face cache and offline mode, and the one place that explains
how to make a missing model available.
"""

from __future__ import annotations

from pathlib import Path

from tunelab.errors import InvalidInput, ModelUnavailable, NotFound
from tunelab.models.builtin import (
    HUB_PATTERNS,
    cache_dir,
    ensure_builtin,
    gguf_file,
    install_atomically,
    is_complete,
)
from tunelab.models.catalog import (
    BUILTIN_MODELS,
    ModelInfo,
    ModelSource,
    hub_cache_name,
    is_hub_id,
    read_folder_info,
)
from tunelab.models.status import is_offline, status_line
from tunelab.settings import get_settings


def hub_dir(hub_id: str) -> Path:
    """Where ``tunelab models pull ORG/NAME`` stores a Hub model."""
    return get_settings().models_dir / "hub" / hub_cache_name(hub_id)


def _local_folder(name: str) -> Path | None:
    """The folder a path-like name points at; raises when it is not a model folder.

    A name the file system cannot even look up (too long, an unknown ``~user``)
    is ``NotFound`` like any other missing folder, never an ``OSError``.
    """
    try:
        return _checked_folder(name)
    except (OSError, RuntimeError) as error:
        raise NotFound(
            f"Model folder {name[:100]!r} cannot be looked up ({getattr(error, 'strerror', None) or error}).",
            hint="Pass a folder saved with save_pretrained, a built-in id (tunelab models list) or a Hub id.",
        ) from None


def _checked_folder(name: str) -> Path | None:
    path = Path(name).expanduser()
    looks_like_path = path.is_absolute() or name.startswith((".", "~")) or path.exists()
    if not looks_like_path:
        return None
    if not path.is_dir():
        raise NotFound(
            f"Model folder {name!r} does not exist.",
            hint="Pass a folder saved with save_pretrained, a built-in id (tunelab models list) or a Hub id.",
        )
    if (path / "adapter_config.json").exists() and not (path / "config.json").exists():
        raise InvalidInput(
            f"{name!r} is a PEFT adapter, not a base model.",
            hint="Use its base model here; `tunelab chat` loads adapters with their base.",
        )
    if not (path / "config.json").exists():
        raise NotFound(
            f"{name!r} is not a Hugging Face model folder (no config.json).",
            hint="Point at a folder saved with save_pretrained (config.json plus weights).",
        )
    return path.resolve()


def _hf_cached_snapshot(hub_id: str) -> Path | None:
    """The Hugging Face cache's snapshot of ``hub_id``, without touching the network."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # not cached, or a partial cache: both mean "not available offline"
        return None
    return folder if (folder / "config.json").exists() else None


def _offline_error(name: str) -> ModelUnavailable:
    return ModelUnavailable(
        f"Model {name!r} is not on this machine and tunelab is offline "
        "(TUNELAB_OFFLINE or HF_HUB_OFFLINE is set).",
        hint=f"Run `tunelab models pull {name}` once while online (TUNELAB_OFFLINE and "
        "HF_HUB_OFFLINE unset), or pass a local model folder (any folder saved with "
        "save_pretrained).",
    )


def _resolve_hub(hub_id: str, progress: bool) -> Path:
    target = hub_dir(hub_id)
    if is_complete(target):
        return target
    cached = _hf_cached_snapshot(hub_id)
    if cached is not None:
        return cached
    if is_offline():
        raise _offline_error(hub_id)
    from filelock import FileLock
    from huggingface_hub import snapshot_download

    def download(folder: Path) -> None:
        with status_line(f"Downloading {hub_id} from the Hugging Face Hub", enabled=progress):
            snapshot_download(hub_id, local_dir=folder, allow_patterns=HUB_PATTERNS)

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(target.parent / f".{target.name}.lock")):
            return target if is_complete(target) else install_atomically(target, download)
    except ModelUnavailable:
        raise
    except Exception as error:
        raise ModelUnavailable(
            f"Could not download {hub_id!r} from the Hugging Face Hub: {error}",
            hint="Check the id on huggingface.co, your network, and HF_TOKEN for gated models.",
        ) from error


def resolve_model(name_or_path: str, *, progress: bool = True) -> Path:
    """A local Hugging Face folder for a built-in id, a local folder or a Hub id."""
    name = name_or_path.strip()
    if name in BUILTIN_MODELS:
        return ensure_builtin(name, progress=progress)
    folder = _local_folder(name)
    if folder is not None:
        return folder
    if is_hub_id(name):
        return _resolve_hub(name, progress)
    raise NotFound(
        f"Unknown model {name!r}.",
        hint=f"Use a built-in id ({', '.join(BUILTIN_MODELS)}), a local model folder or a Hub "
        "id like HuggingFaceTB/SmolLM2-135M-Instruct.",
    )


def is_available(name: str) -> bool:
    """True when ``resolve_model(name)`` can succeed now (on disk, convertible or downloadable)."""
    name = name.strip()
    if name in BUILTIN_MODELS:
        return (
            is_complete(cache_dir(name)) or gguf_file(name) is not None or not is_offline()
        )
    try:
        if _local_folder(name) is not None:
            return True
    except (NotFound, InvalidInput):
        return False
    if not is_hub_id(name):
        return False
    return is_complete(hub_dir(name)) or not is_offline() or _hf_cached_snapshot(name) is not None


def model_info(name_or_path: str) -> ModelInfo:
    """Catalog facts for a model, from disk only; never converts or downloads weights."""
    name = name_or_path.strip()
    if name in BUILTIN_MODELS:
        folder = cache_dir(name)
        info = BUILTIN_MODELS[name].model_copy()
        info.path = str(folder) if is_complete(folder) else None
        info.available = is_available(name)
        return info
    folder = _local_folder(name)
    if folder is not None:
        return read_folder_info(folder, id=str(folder), source=ModelSource.local)
    if is_hub_id(name):
        local = hub_dir(name) if is_complete(hub_dir(name)) else _hf_cached_snapshot(name)
        if local is not None:
            return read_folder_info(local, id=name, source=ModelSource.hub, hub_id=name)
        if is_offline():
            raise _offline_error(name)
        return _resolve_hub_info(name)
    raise NotFound(
        f"Unknown model {name!r}.",
        hint=f"Use a built-in id ({', '.join(BUILTIN_MODELS)}), a local model folder or a Hub id.",
    )


def _resolve_hub_info(hub_id: str) -> ModelInfo:
    """Online: fetch only config and tokenizer config into the HF cache and read them."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(hub_id, allow_patterns=["*.json", "*.jinja", "README.md"]))
    except Exception as error:
        raise ModelUnavailable(
            f"Could not read {hub_id!r} from the Hugging Face Hub: {error}",
            hint="Check the id on huggingface.co, your network, and HF_TOKEN for gated models.",
        ) from error
    info = read_folder_info(folder, id=hub_id, source=ModelSource.hub, hub_id=hub_id)
    info.available = True
    info.path = None  # only config files are here; weights come with `tunelab models pull`
    try:  # parameter count and licence from the Hub's metadata, without the weights
        from huggingface_hub import HfApi

        meta = HfApi().model_info(hub_id)
        if meta.safetensors is not None:
            info.parameters = meta.safetensors.total
        info.licence = info.licence or getattr(meta.card_data, "license", None)
    except Exception:  # metadata is a nicety; the config facts above stand on their own
        pass
    return info


def list_models() -> list[ModelInfo]:
    """Built-in models, then every Hub model pulled into the tunelab home."""
    models = [model_info(name) for name in BUILTIN_MODELS]
    pulled = get_settings().models_dir / "hub"
    if pulled.is_dir():
        for folder in sorted(pulled.iterdir()):
            if is_complete(folder):
                hub_id = folder.name.replace("--", "/", 1)
                models.append(
                    read_folder_info(folder, id=hub_id, source=ModelSource.hub, hub_id=hub_id)
                )
    return models
