"""``POST /v1/classify``: a trained classifier or regressor answers ``{input}`` with ``{label, scores}``.

``model`` is named as for chat (``serving/registry.py`` ``chat_location``): a
collection entry, a completed job's id or a built-in id, never a path. The
model is loaded and kept by ``serving/classify.py``; a generative model is a
422 (``not_a_classifier``) naming its task.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tunelab.api.deps import ReadScope, SessionDep, SettingsDep
from tunelab.api.errors import ErrorBody
from tunelab.serving.classify import MAX_INPUT_CHARS, LoadedClassifiers
from tunelab.serving.registry import chat_location

router = APIRouter(prefix="/v1", tags=["serving"])


class ClassifyBody(BaseModel):
    """One text (or a text pair) to classify."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=300, description="A classifier: collection entry, job id or built-in id.")
    input: str = Field(max_length=MAX_INPUT_CHARS, description="The text to classify.")
    input_pair: str | None = Field(None, max_length=MAX_INPUT_CHARS,
                                   description="Second text, for models trained on text pairs.")  # fmt: skip


class ClassifyAnswer(BaseModel):
    """The predicted label and the probability of every label (regression: ``value``, no scores)."""

    model: str = Field(description="The model as named in the request.")
    label: str | None = Field(description="The likeliest label; null for a regressor.")
    scores: dict[str, float] = Field(description="Probability per label name (softmax); empty for a regressor.")
    value: float | None = Field(None, description="The predicted number (regression only).")


def _classifiers(request: Request) -> LoadedClassifiers:
    state = request.app.state
    if not hasattr(state, "classifiers"):
        state.classifiers = LoadedClassifiers()
    classifiers: LoadedClassifiers = state.classifiers
    return classifiers


@router.post("/classify", response_model=ClassifyAnswer, summary="Classify a text with a trained classifier",
             responses={424: {"model": ErrorBody, "description": "The model could not be loaded."}})  # fmt: skip
async def classify(body: ClassifyBody, request: Request, session: SessionDep, settings: SettingsDep,
                   _: ReadScope) -> dict[str, Any]:  # fmt: skip
    location = await run_in_threadpool(chat_location, session, settings, body.model)
    found = await run_in_threadpool(_classifiers(request).classify, location, body.input, body.input_pair)
    return {"model": body.model, **found}
