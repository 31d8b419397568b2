"""Configuration ids: the guide's field order, stable, decodable, legacy rows still readable."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tunelab.errors import InvalidInput, NotFound
from tunelab.jobs import configurations as cfg
from tunelab.store.models import Configuration

GUIDE = {"learning_rate": 0.0002, "batch_size": 8, "epochs": 3, "lora_r": 16, "lora_alpha": 32}


def _config(**hyper: object) -> dict[str, object]:
    return {"model": "tiny", "dataset": "ds", "hyperparameters": hyper}


def test_id_spells_the_guide_fields_in_order_and_decodes_back() -> None:
    config_id = cfg.configuration_id(_config(**GUIDE), "manual")
    assert len(config_id) == cfg.ID_LENGTH == 26
    # [epochs 03][learning_rate 004abk = 200000e-9][batch 08][lora_r 0g][lora_alpha 02gw = 32.00][mode m]
    assert config_id[:17] == "03" "004abk" "08" "0g" "02gw" "m"
    decoded = cfg.decode_configuration_id(config_id)
    assert decoded == {"format": "v2", "epochs": 3, "learning_rate": 0.0002, "batch_size": 8, "lora_r": 16,
                       "lora_alpha": 32.0, "mode": "manual", "digest": config_id[17:]}  # fmt: skip
    automated = cfg.configuration_id(_config(**GUIDE), "automated")
    assert automated[16] == "a" and automated[:16] == config_id[:16] and automated[17:] == config_id[17:]


def test_id_is_stable_and_covers_the_whole_content() -> None:
    flat = cfg.configuration_id(_config(**GUIDE))
    nested = cfg.configuration_id(_config(learning_rate=2e-4, batch_size=8, epochs=3, lora={"r": 16, "alpha": 32}))
    assert flat == nested  # the guide's flat names and TrainConfig's sections are one configuration
    assert cfg.configuration_id(_config()) == cfg.configuration_id(_config())
    other_model = cfg.configuration_id({**_config(**GUIDE), "model": "other"})
    assert other_model[:17] == flat[:17] and other_model != flat  # same six fields, different digest
    defaults = cfg.decode_configuration_id(cfg.configuration_id(_config()))
    assert defaults["epochs"] == 3 and defaults["learning_rate"] is None and defaults["lora_r"] == 16
    full = cfg.decode_configuration_id(cfg.configuration_id(_config(method="full")))
    assert full["lora_r"] is None and full["lora_alpha"] is None


@pytest.mark.parametrize("bad", ["", "cfg", "x" * 26, "03004abk080g02gwz123456789", "03004abk080g02gw-m1234567"])
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        cfg.decode_configuration_id(bad)


@pytest.mark.parametrize("hyper", [{"epochs": -1}, {"learning_rate": "fast"}, {"batch_size": float("nan")}])
def test_values_that_cannot_be_encoded_are_invalid_input(hyper: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        cfg.configuration_id(_config(**hyper))


def test_legacy_rows_stay_readable_and_are_reused(session: Session) -> None:
    config = _config(learning_rate=1e-4)
    legacy_id = cfg.legacy_configuration_id(config)
    assert legacy_id.startswith("cfg-") and len(legacy_id) == 20
    session.add(Configuration(id=legacy_id, name="old", model="tiny", dataset="ds",
                              hyperparameters={"learning_rate": 1e-4}))  # fmt: skip
    session.commit()
    assert cfg.save_configuration(session, config).id == legacy_id  # same content: the old row
    shown = cfg.configuration_dict(cfg.get_configuration(session, legacy_id))
    assert shown["mode"] == "manual" and shown["uid"] == legacy_id and shown["fields"]["learning_rate"] == 1e-4
    assert cfg.decode_configuration_id(legacy_id)["format"] == "legacy"
    assert cfg.save_configuration(session, config, mode="automated").id != legacy_id


def test_best_over_all_and_by_mode(session: Session) -> None:
    with pytest.raises(NotFound):
        cfg.best_configuration(session, mode="manual")
    cfg.record_result(session, _config(epochs=1), {"eval_loss": 2.0}, job_id="job-a")
    auto_id = cfg.save_configuration(session, {**_config(epochs=2), "model": "m2"}, mode="automated").id
    cfg.record_result(session, {**_config(epochs=2), "model": "m2"}, {"eval_loss": 1.0}, job_id="job-b",
                      configuration_id=auto_id)  # fmt: skip
    assert cfg.best_configuration(session).id == auto_id  # over all: lowest eval loss
    assert cfg.best_configuration(session, mode="manual").job_id == "job-a"
    assert cfg.best_configuration(session, model="m2").id == auto_id
    with pytest.raises(NotFound):
        cfg.best_configuration(session, model="m2", mode="manual")
    assert [r.id for r in cfg.list_configurations(session, mode="automated")] == [auto_id]
    assert cfg.hyperparameters_from_id(auto_id) == {"epochs": 2, "batch_size": 8, "lora": {"r": 16, "alpha": 32.0}}
