"""An Ollama ``Modelfile`` whose TEMPLATE is the chat template the model was trained with.

The usual complaint about exported fine-tunes is that they answer differently
outside the studio because the chat template got lost. Ollama templates are Go
templates, not Jinja, so the Jinja template cannot be copied over. Instead the
template's pieces are measured by rendering it (the tokenizer's own
``apply_chat_template``) around sentinel messages: the text before and after
each role's content, the generation prompt, and the system prompt the template
inserts when a conversation has none (which becomes Ollama's ``SYSTEM``). The
pieces are then checked by rebuilding a few conversations and comparing with the
Jinja render; a template that is not "role wrappers around content" gets no
TEMPLATE line, and Ollama falls back to the template stored in the GGUF.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_S, _U, _A, _U2 = "SYS_7f3a", "USER_7f3a", "ASSISTANT_7f3a", "NEXT_7f3a"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatPieces:
    """The literal text around each role's content, the generation prompt and the default system prompt."""

    wrappers: dict[str, tuple[str, str]]
    generation_prompt: str
    default_system: str | None


def _render(tokenizer: Any, messages: list[tuple[str, str]], prompt: bool = False) -> str:
    chat = [{"role": role, "content": content} for role, content in messages]
    return str(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=prompt))


def _after(longer: str, shorter: str) -> str:
    if not longer.startswith(shorter):
        raise ValueError("a longer conversation does not extend the shorter one")
    return longer[len(shorter) :]


def _split(block: str, sentinel: str) -> tuple[str, str]:
    before, found, after = block.partition(sentinel)
    if not found:
        raise ValueError(f"{sentinel} not found")
    return before, after


def _rebuild(pieces: ChatPieces, messages: list[tuple[str, str]], prompt: bool) -> str:
    if messages[0][0] != "system" and pieces.default_system is not None:
        messages = [("system", pieces.default_system), *messages]
    text = "".join(pieces.wrappers[role][0] + content + pieces.wrappers[role][1] for role, content in messages)
    return text + (pieces.generation_prompt if prompt else "")


def measure_template(tokenizer: Any) -> ChatPieces | None:
    """The template as role wrappers, or None when it is not expressible that way."""
    if not isinstance(getattr(tokenizer, "chat_template", None), str):
        return None
    try:
        system = _render(tokenizer, [("system", _S)])
        with_user = _render(tokenizer, [("system", _S), ("user", _U)])
        with_reply = _render(tokenizer, [("system", _S), ("user", _U), ("assistant", _A)])
        wrappers = {
            "system": _split(system, _S),
            "user": _split(_after(with_user, system), _U),
            "assistant": _split(_after(with_reply, with_user), _A),
        }
        generation = _after(_render(tokenizer, [("system", _S), ("user", _U)], prompt=True), with_user)
        alone, user_block = _render(tokenizer, [("user", _U)]), _U.join(wrappers["user"])
        if not alone.endswith(user_block):
            return None
        lead = alone[: len(alone) - len(user_block)]
        default = None
        if lead:
            start, end = wrappers["system"]
            if not (lead.startswith(start) and lead.endswith(end)):
                return None
            default = lead[len(start) : len(lead) - len(end)]
        pieces = ChatPieces(wrappers, generation, default)
        probes = [[("user", _U), ("assistant", _A), ("user", _U2)],
                  [("system", _S), ("user", _U), ("assistant", _A), ("user", _U2)]]  # fmt: skip
        for probe in probes:
            if _rebuild(pieces, probe, True) != _render(tokenizer, probe, prompt=True):
                return None
    except Exception:  # templates that reject a role or raise on a probe: no TEMPLATE line
        return None
    return pieces


def _go_literal(text: str) -> str:
    """Literal text inside a Go template (``{{`` would open an action)."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(pieces: ChatPieces) -> str:
    """The Ollama TEMPLATE: each message in its role's wrapper, then the generation prompt."""
    branches = []
    for index, role in enumerate(ROLES):
        start, end = (_go_literal(part) for part in pieces.wrappers[role])
        keyword = "if" if index == 0 else "else if"
        branches.append(f'{{{{ {keyword} eq .Role "{role}" }}}}{start}{{{{ .Content }}}}{end}')
    return "{{ range .Messages }}" + "".join(branches) + "{{ end }}{{ end }}" + _go_literal(pieces.generation_prompt)


def render_modelfile(tokenizer: Any, gguf_name: str) -> str:
    """The Modelfile text for ``gguf_name`` (a file beside it) with the tokenizer's chat template."""
    lines = ["# Ollama: ollama create NAME -f Modelfile && ollama run NAME", f"FROM ./{gguf_name}", ""]
    pieces = measure_template(tokenizer)
    if pieces is None:
        lines += ["# The chat template is not role wrappers; Ollama uses the template inside the GGUF.", ""]
    else:
        lines += [f'TEMPLATE """{go_template(pieces)}"""', ""]
        if pieces.default_system is not None:
            lines += [f"SYSTEM {json.dumps(pieces.default_system)}", ""]
    stops = []
    for token in (tokenizer.eos_token, *(pieces.wrappers["user"][0:1] if pieces else ())):
        if token and token.strip() and token not in stops:
            stops.append(token.strip())
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stops]
    lines += ["# greedy, like the studio's evaluation replies; raise it for varied answers", "PARAMETER temperature 0"]
    return "\n".join(lines) + "\n"
