"""Model categories, providers, parameter sizes and recommendations by use case.

The workflow guide lets users browse models by category and provider and pick one by
use case. These are facts about a model's *identity* (its Hub pipeline tag, tags, name
and size), so they live here once: the Hub search (``models/hub.py``), the collection
(``POST /api/models``), ``GET /api/meta`` and the dashboard all call ``categorize`` and
read ``CATEGORIES``, and nobody keeps a second list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, Field

from tunelab.errors import InvalidInput

# Display names, in the order the guide lists them; the API accepts these or their slugs.
CATEGORIES: tuple[str, ...] = (
    "Text Generation",
    "Code Generation",
    "Instruction Following",
    "Conversational",
    "Multimodal",
    "Compact Models",
)

# At or below this many parameters a model counts as compact: it fine-tunes with LoRA on a
# laptop GPU or a CPU (the guide's compact examples: TinyLlama 1.1B, StableLM 3B).
COMPACT_MAX_PARAMETERS = 3_500_000_000

_MULTIMODAL_PIPELINES = {
    "image-text-to-text", "visual-question-answering", "image-to-text", "any-to-any",
    "audio-text-to-text", "video-text-to-text", "document-question-answering",
}  # fmt: skip
_MULTIMODAL_WORDS = {"vision", "vl", "llava", "multimodal", "vlm", "omni"}
_CODE_WORDS = {"code", "coder", "codellama", "starcoder", "starcoder2", "codegen", "codet5", "codegemma",
               "santacoder", "wizardcoder", "codestral", "deepseek-coder"}  # fmt: skip
_CHAT_WORDS = {"chat", "dialogpt", "blenderbot", "conversational-only"}
_INSTRUCT_WORDS = {"instruct", "it", "flan", "sft", "tulu", "alpaca", "dolly", "hermes"}

# Hub organisation -> the provider name people know. Unknown organisations show as themselves.
PROVIDERS: dict[str, str] = {
    "meta-llama": "Meta",
    "facebook": "Meta",
    "codellama": "Meta",
    "mistralai": "Mistral AI",
    "google": "Google",
    "google-bert": "Google",
    "google-t5": "Google",
    "microsoft": "Microsoft",
    "Qwen": "Qwen (Alibaba)",
    "HuggingFaceTB": "Hugging Face",
    "HuggingFaceH4": "Hugging Face",
    "bigcode": "BigCode",
    "tiiuae": "TII",
    "stabilityai": "Stability AI",
    "EleutherAI": "EleutherAI",
    "TinyLlama": "TinyLlama",
    "openai-community": "OpenAI",
    "openai": "OpenAI",
    "deepseek-ai": "DeepSeek",
    "allenai": "Ai2",
    "ibm-granite": "IBM",
    "nvidia": "NVIDIA",
    "01-ai": "01.AI",
    "FacebookAI": "Meta",
    "distilbert": "Hugging Face",
    "Salesforce": "Salesforce",
}


def slug(category: str) -> str:
    """``Code Generation`` -> ``code-generation`` (what a URL or a CLI flag may use)."""
    return category.lower().replace(" ", "-")


def parse_category(value: str) -> str:
    """The display name for a category given as name or slug, any case; InvalidInput otherwise."""
    wanted = value.strip().lower().replace("_", "-")
    for category in CATEGORIES:
        if wanted in (category.lower(), slug(category)):
            return category
    raise InvalidInput(
        f"Unknown model category {value!r}.",
        hint=f"Use one of: {', '.join(CATEGORIES)} (GET /api/meta lists them as model_categories).",
    )


def provider_for(model_id: str, author: str | None = None) -> str:
    """The provider of ``org/name`` (or of the Hub's ``author``): a known name, else the org."""
    org = author or (model_id.split("/", 1)[0] if "/" in model_id else "")
    return PROVIDERS.get(org, org) if org else ""


def provider_orgs(provider: str) -> list[str]:
    """Hub organisations behind a provider name (``Meta`` -> meta-llama, facebook, ...) or the org itself."""
    wanted = provider.strip().lower()
    orgs = [org for org, name in PROVIDERS.items() if name.lower() == wanted or org.lower() == wanted]
    return orgs or [provider.strip()]


def matches_provider(provider: str, model_id: str, shown: str) -> bool:
    """Whether a model (its id and shown provider) belongs to the provider a user filtered on."""
    wanted = provider.strip().lower()
    org = model_id.split("/", 1)[0].lower() if "/" in model_id else ""
    return wanted in (shown.lower(), org) or org in {o.lower() for o in provider_orgs(provider)}


def display_name(model_id: str) -> str:
    """``meta-llama/Llama-3.1-8B-Instruct`` -> ``Llama 3.1 8B Instruct``."""
    base = model_id.rsplit("/", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"[-_]+", " ", base)).strip()


_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*([BMbm])(?![A-Za-z])")


def parameters_from_name(name: str) -> int | None:
    """A parameter count stated in a model name (``8B``, ``1.1B``, ``135M``); None when absent.

    ``8x7B`` style mixture names state the expert size, not the total, and are left alone.
    """
    for match in _SIZE.finditer(name.replace("_", "-")):
        start = match.start()
        if start > 0 and name[start - 1] in "xX":
            continue
        value, unit = float(match.group(1)), match.group(2).upper()
        return int(value * (1e9 if unit == "B" else 1e6))
    return None


def parameters_text(count: int | None) -> str | None:
    """``8_030_261_248`` -> ``8B``, ``1_100_048_384`` -> ``1.1B``, ``134_515_008`` -> ``135M``."""
    if not count:
        return None
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            value = count / size
            if value >= 10 or abs(value - round(value)) < 0.1:
                return f"{round(value)}{unit}"
            return f"{value:.1f}{unit}"
    return str(count)


_NOUNS = {
    "Text Generation": "text-generation model",
    "Code Generation": "code-generation model",
    "Instruction Following": "instruction-following model",
    "Conversational": "chat model",
    "Multimodal": "multimodal (vision-language) model",
    "Compact Models": "compact model",
}


def summary(category: str, parameters: str | None, provider: str) -> str:
    """A one-line description when the model card gives none: ``8B instruction-following model from Meta``."""
    text = " ".join(part for part in (parameters, _NOUNS.get(category, "model")) if part)
    return f"{text} from {provider}" if provider else text


def _words(*texts: str) -> set[str]:
    out: set[str] = set()
    for text in texts:
        out.update(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w)
    return out


def categorize(
    model_id: str,
    *,
    pipeline_tag: str | None = None,
    tags: Iterable[str] = (),
    parameter_count: int | None = None,
) -> str:
    """The one category of a model, first match wins:

    Multimodal (an image/audio/video pipeline or vision words), Code Generation (code words
    in name or tags), Compact Models (at most 3.5B parameters), Conversational (a chat model
    by name or the ``conversational`` pipeline), Instruction Following (instruct, ``-it``,
    FLAN, SFT), else Text Generation. Hub tags like ``conversational`` are on nearly every
    chat-template model, so only the name and the pipeline decide Conversational.
    """
    name = model_id.rsplit("/", 1)[-1]
    tag_list = [t.lower() for t in tags]
    name_words = _words(name)
    tag_words = {t for t in tag_list if ":" not in t}
    if (pipeline_tag or "") in _MULTIMODAL_PIPELINES or name_words & _MULTIMODAL_WORDS or "multimodal" in tag_words:
        return "Multimodal"
    if name_words & _CODE_WORDS or name.lower().startswith(("code", "starcoder")) or tag_words & {"code", "code-generation"}:
        return "Code Generation"
    size = parameter_count or parameters_from_name(name)
    if size is not None and size <= COMPACT_MAX_PARAMETERS:
        return "Compact Models"
    if name_words & _CHAT_WORDS or pipeline_tag == "conversational":
        return "Conversational"
    if name_words & _INSTRUCT_WORDS or pipeline_tag == "text2text-generation" or "instruct" in tag_words:
        return "Instruction Following"
    return "Text Generation"


# ---- recommendations by use case ------------------------------------------------------------


class Recommendation(BaseModel):
    """A model suggested for a use case, with the reason and how well tunelab trains it."""

    id: str = Field(description="Hub id (or built-in id) to search, check or add.")
    name: str = Field(description="Display name.")
    provider: str = Field(description="Who publishes it.")
    category: str = Field(description="Its category (one of model_categories).")
    parameters: str = Field(description="Size as text, e.g. 8B.")
    reason: str = Field(description="Why it suits the use case.")
    causal_lm: bool = Field(
        description="A decoder (causal LM) that tunelab's trainer fine-tunes; false for encoders "
        "(mBERT, XLM-R, DistilBERT), which the guide lists for classification-style work."
    )


def _rec(model_id: str, parameters: str, reason: str, *, causal_lm: bool = True, category: str | None = None) -> Recommendation:
    from tunelab.models.catalog import BUILTIN_MODELS

    builtin = BUILTIN_MODELS.get(model_id)
    source = (builtin.hub_id or model_id) if builtin is not None else model_id  # a built-in: its Hub repository's names
    return Recommendation(
        id=model_id, name=display_name(source), provider=provider_for(source), parameters=parameters,
        category=category or categorize(model_id, parameter_count=parameters_from_name(parameters)),
        reason=reason, causal_lm=causal_lm,
    )  # fmt: skip


USE_CASES: dict[str, str] = {
    "code": "Code generation and completion",
    "instruction_following": "Following instructions and answering questions",
    "resource_constrained": "Training and serving on small GPUs or CPUs",
    "multilingual": "Many languages",
}

RECOMMENDATIONS: dict[str, list[Recommendation]] = {
    "code": [
        _rec("codellama/CodeLlama-7b-Instruct-hf", "7B", "Meta's Llama 2 trained further on code; the instruct variant follows coding requests."),
        _rec("bigcode/starcoder2-15b", "15B", "Open code model trained on The Stack v2 (600+ languages); strong completion."),
        _rec("Qwen/Qwen2.5-Coder-1.5B-Instruct", "1.5B", "Small code model that LoRA-tunes on one consumer GPU.", category="Code Generation"),
    ],
    "instruction_following": [
        _rec("meta-llama/Llama-3.1-8B-Instruct", "8B", "Strong general-purpose instruction following; gated (accept Meta's licence)."),
        _rec("google/flan-t5-xl", "3B", "FLAN instruction-tuned T5; an encoder-decoder, so tunelab's causal-LM trainer does not train it.", causal_lm=False, category="Instruction Following"),
        _rec("mistralai/Mistral-7B-Instruct-v0.3", "7B", "Efficient 7B with sliding-window attention; Apache-2.0."),
    ],
    "resource_constrained": [
        _rec("smollm2-135m-instruct", "135M", "Built into tunelab: works offline and trains on a CPU in minutes."),
        _rec("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "1.1B", "Llama architecture at 1.1B parameters; LoRA fits in about 4 GB."),
        _rec("stabilityai/stablelm-3b-4e1t", "3B", "Efficient 3B base model (the guide's StableLM 3B)."),
        _rec("distilbert/distilbert-base-uncased", "66M", "Lightweight encoder for classification; not a text generator.", causal_lm=False),
    ],
    "multilingual": [
        _rec("Qwen/Qwen2.5-1.5B-Instruct", "1.5B", "Generates in 29+ languages and fine-tunes on small hardware."),
        _rec("google-bert/bert-base-multilingual-cased", "178M", "mBERT: encoder over 104 languages, for classification and tagging.", causal_lm=False),
        _rec("FacebookAI/xlm-roberta-base", "278M", "XLM-R: encoder over 100 languages, strong cross-lingual transfer.", causal_lm=False),
    ],
}  # fmt: skip


def parse_use_case(value: str) -> str:
    """A use case key from ``code``, ``instruction-following``, ``Resource Constrained``..."""
    wanted = value.strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {"code_generation": "code", "instruction": "instruction_following", "instructions": "instruction_following",
               "small": "resource_constrained", "compact": "resource_constrained", "multi_lingual": "multilingual"}  # fmt: skip
    wanted = aliases.get(wanted, wanted)
    if wanted not in USE_CASES:
        raise InvalidInput(
            f"Unknown use case {value!r}.",
            hint=f"Use one of: {', '.join(USE_CASES)} (GET /api/meta lists them as model_use_cases).",
        )
    return wanted


def recommendations(use_case: str | None = None) -> dict[str, list[Recommendation]]:
    """Recommendations for one use case (any spelling ``parse_use_case`` accepts), or all."""
    if use_case:
        key = parse_use_case(use_case)
        return {key: RECOMMENDATIONS[key]}
    return dict(RECOMMENDATIONS)
