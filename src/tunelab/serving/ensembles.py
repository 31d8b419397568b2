"""Ensembles in the store: a named group of models answering as one, ``ens:<name>``.

Members are model names the registry serves (the same fine-tune over several
seeds, or fine-tunes of several bases). ``average`` mixes the members'
next-token probabilities, which only means something when every member has
the same vocabulary, so that is checked when the ensemble is created (and
again when it loads); ``vote`` lets each member answer and returns the
majority answer, for members of any tokenizer.

A request names ``ens:<name>``; ``location`` turns that into a self-contained
location string (``ens:{json}`` with each member's loadable location), which
the chat registry and the evaluation runner load through
``serving.ensemble_model`` without going back to the store.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from tunelab.errors import InvalidInput, TunelabError
from tunelab.serving.named import add_named, check_name, find_named, newest_first
from tunelab.settings import Settings
from tunelab.store.models import Ensemble

PREFIX = "ens:"
METHODS = ("average", "vote")
MAX_MEMBERS = 8


def ensemble_name(model: str) -> str | None:
    """``ens:<name>`` -> name; None for another model name or an already resolved location."""
    if not model.startswith(PREFIX) or is_location(model):
        return None
    return model[len(PREFIX) :]


def is_location(location: str) -> bool:
    """Whether ``location`` is what ``location()`` returns (and not a model folder or id)."""
    return location.startswith(PREFIX + "{")


def parse_location(location: str) -> dict[str, Any]:
    """The ``{name, method, members: [{name, location}]}`` a location string holds."""
    return dict(json.loads(location[len(PREFIX) :]))


def _member_locations(
    session: Session, settings: Settings, members: list[str]
) -> tuple[list[str], list[str]]:
    """Each member's location, and the problems of those that do not resolve."""
    from tunelab.serving.registry import chat_location

    locations, problems = [], []
    for index, member in enumerate(members):
        if not isinstance(member, str) or not member or member.startswith(("exp:", PREFIX)):
            problems.append(
                f"members[{index}] must name a model (not an experiment or another ensemble)"
            )
            continue
        try:
            locations.append(chat_location(session, settings, member))
        except TunelabError as exc:
            problems.append(f"members[{index}] {member!r}: {exc.message}")
    return locations, problems


def create(session: Session, settings: Settings, name: str, members: list[str], method: str = "average",
           description: str = "") -> Ensemble:  # fmt: skip
    """Check and store an ensemble (committed): members that exist, a known method, one vocabulary to average."""
    check_name(name, "name")
    problems: list[str] = []
    if method not in METHODS:
        problems.append(f"method {method!r} is not one of {', '.join(METHODS)}")
    if not 2 <= len(members) <= MAX_MEMBERS:
        problems.append(f"an ensemble needs 2 to {MAX_MEMBERS} members, got {len(members)}")
    if len(set(members)) != len(members):
        problems.append("a member is named twice")
    locations, missing = _member_locations(session, settings, members)
    problems += missing
    if problems:
        raise InvalidInput("; ".join(problems), "name 2 or more models from GET /v1/models and a method "
                           f"({' or '.join(METHODS)})", details={"errors": problems})  # fmt: skip
    if method == "average":
        from tunelab.serving.ensemble_model import check_vocabularies, load_member_tokenizer

        check_vocabularies(members, [load_member_tokenizer(location) for location in locations])
    row = Ensemble(id=f"ens-{uuid.uuid4().hex[:12]}", name=name, method=method, members=list(members),
                   description=description)  # fmt: skip
    return add_named(session, row, "ensemble", "choose another name, or delete that one first")


def list_ensembles(session: Session) -> list[Ensemble]:
    return newest_first(session, Ensemble)


def get(session: Session, name: str) -> Ensemble:
    """An ensemble by name (or id)."""
    return find_named(session, Ensemble, name, "ensemble")


def delete(session: Session, name: str) -> None:
    session.delete(get(session, name))
    session.commit()


def location(session: Session, settings: Settings, model: str) -> str:
    """What ``ens:<name>`` loads: the method and every member's location, as one string."""
    row = get(session, ensemble_name(model) or model)
    locations, problems = _member_locations(session, settings, row.members)
    if problems:
        raise InvalidInput(f"ensemble {row.name!r} cannot load: " + "; ".join(problems),
                           "delete the ensemble and create it again with models that exist")  # fmt: skip
    members = [{"name": n, "location": loc} for n, loc in zip(row.members, locations, strict=True)]
    return PREFIX + json.dumps(
        {"name": row.name, "method": row.method, "members": members}, sort_keys=True
    )


def public(row: Ensemble) -> dict[str, Any]:
    return {**row.to_dict(), "model": PREFIX + row.name}
