"""Hub push: repo ids are checked when the job is created, and every reason a push cannot work is told."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tunelab.errors import ConfigError, http_status
from tunelab.export.hub import HubError, hub_target, push_to_hub, validate_repo_id
from tunelab.jobs import service


@pytest.mark.parametrize(
    "name", ["my-model", "", None, "a/b/c", "/name", "user/", "us er/x", "u/x..y"]
)
def test_push_needs_a_user_slash_name_model_name(session: Session, make_config, name) -> None:
    options = {"save_model": True, "model_name": name, "push_to_hub": True, "make_public": False}
    with pytest.raises(ConfigError) as caught:
        service.create_job(session, make_config(), save_options=options)
    assert http_status(caught.value) == 422 and "user/name" in caught.value.message
    assert "alice/" in caught.value.hint
    assert service.list_jobs(session)[1] == 0  # nothing was queued


def test_valid_repo_id_or_no_push_is_accepted(session: Session, make_config) -> None:
    ok = {"model_name": "alice/smollm2-support.v1", "push_to_hub": True, "public": True}
    assert service.create_job(session, make_config(), save_options=ok).status == "queued"
    local = {"model_name": "just-a-name", "push_to_hub": False}
    assert service.create_job(session, make_config(), save_options=local).status == "queued"
    assert validate_repo_id(" org/name_1 ") == "org/name_1"


def test_public_and_make_public_both_mean_public() -> None:
    assert hub_target({"push_to_hub": False, "model_name": "x"}) is None
    assert hub_target({"push_to_hub": True, "model_name": "a/b"}) == ("a/b", True)
    assert hub_target({"push_to_hub": True, "model_name": "a/b", "public": True}) == ("a/b", False)
    assert hub_target({"push_to_hub": True, "model_name": "a/b", "make_public": True}) == (
        "a/b",
        False,
    )


def test_offline_push_says_so_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(HubError) as caught:  # HF_HUB_OFFLINE=1 comes from tests/conftest.py
        push_to_hub(tmp_path, "alice/model", private=True, token="hf_not_used")
    assert caught.value.code == "hub_offline"
    assert "HF_HUB_OFFLINE" in caught.value.hint and "hf upload alice/model" in caught.value.hint


def test_settings_offline_is_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TUNELAB_OFFLINE", "1")
    with pytest.raises(HubError) as caught:
        push_to_hub(tmp_path, "alice/model", private=True, token="hf_not_used")
    assert caught.value.code == "hub_offline"


def test_no_token_is_told_before_any_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(HubError) as caught:
        push_to_hub(tmp_path, "alice/model", private=True)
    assert caught.value.code == "hub_token_missing" and "HF_TOKEN" in caught.value.hint


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(HubError, match="nothing to push"):
        push_to_hub(tmp_path / "absent", "alice/model", private=True)
