"""The store on SQLite and PostgreSQL: migrations, catalog, configurations, tokens, metrics."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tunelab.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from tunelab.jobs import configurations
from tunelab.store import catalog, tokens
from tunelab.store.db import get_engine, init_db, is_sqlite
from tunelab.store.models import Job, Metric

TABLES = {
    "alembic_version", "alert_thresholds", "alerts", "api_tokens", "artifacts", "checkpoints", "configurations", "dataset_versions",
    "datasets", "job_events", "jobs", "metrics", "models", "notification_channels", "resource_samples",
    "sweeps", "sweep_trials",  # sweeps (0005), and Optuna's study tables beside them:
    "studies", "study_directions", "study_system_attributes", "study_user_attributes", "trial_heartbeats",
    "trial_intermediate_values", "trial_params", "trial_system_attributes", "trial_user_attributes",
    "trial_values", "trials", "version_info",
    "evaluations",  # evaluations (0006)
    "ratings",  # side-by-side ratings (0007)
    "experiments", "experiment_requests", "ensembles",  # A/B experiments and ensembles (0008)
    "workers",  # workers and their resources (0009)
}


def test_migrations_reach_head_and_are_idempotent(db_url: str) -> None:
    engine = init_db(db_url)
    assert set(inspect(engine).get_table_names()) == TABLES
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from tunelab.store.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert version == ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")  # a second upgrade is a no-op


def test_sqlite_uses_wal_and_busy_timeout(db_url: str) -> None:
    if not is_sqlite(db_url):
        pytest.skip("SQLite pragmas only")
    with get_engine(db_url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_dataset_versions(session: Session) -> None:
    first = catalog.register_dataset_version(
        session, name="alpaca", version_id="v1abc", path="/data/v1.jsonl", format="alpaca", num_rows=10
    )
    catalog.register_dataset_version(
        session, name="alpaca", version_id="v2def", path="/data/v2.jsonl", parent_id="v1abc", note="repair"
    )
    catalog.register_dataset_version(session, name="alpaca", version_id="v2def", path="/data/v2.jsonl")
    dataset = catalog.get_dataset(session, "alpaca")
    assert dataset.latest_version_id == "v2def" and first.dataset_id == dataset.id
    assert [v.id for v in catalog.list_dataset_versions(session, dataset.id)] == ["v1abc", "v2def"]
    assert catalog.list_datasets(session)[1] == 1
    assert catalog.delete_dataset(session, "alpaca") == ["/data/v1.jsonl", "/data/v2.jsonl"]
    with pytest.raises(NotFound):
        catalog.get_dataset_version(session, "v1abc")


def test_model_collection(session: Session) -> None:
    catalog.add_model(session, "smollm2-135m-instruct", source="builtin", info={"params": 135})
    with pytest.raises(Conflict):
        catalog.add_model(session, "smollm2-135m-instruct", exist_ok=False)
    assert catalog.set_trust_remote_code(session, "smollm2-135m-instruct", True).trust_remote_code
    assert [m.id for m in catalog.list_models(session)] == ["smollm2-135m-instruct"]
    catalog.remove_model(session, "smollm2-135m-instruct")
    with pytest.raises(NotFound):
        catalog.get_model(session, "smollm2-135m-instruct")


def test_configuration_ids_are_stable_and_best_is_lowest_eval_loss(session: Session) -> None:
    a = {"model": "m", "dataset": "d", "hyperparameters": {"learning_rate": 1e-4, "epochs": 1}}
    same = {"hyperparameters": {"epochs": 1, "learning_rate": 1e-4}, "dataset": "d", "model": "m"}
    b = {"model": "m", "dataset": "d", "hyperparameters": {"learning_rate": 3e-4}}
    assert configurations.save_configuration(session, a).id == configurations.save_configuration(session, same).id
    assert configurations.configuration_id(a) != configurations.configuration_id(b)
    with pytest.raises(NotFound):
        configurations.best_configuration(session, "m", "d")
    configurations.record_result(session, a, {"eval_loss": 2.0}, job_id="job-1")
    configurations.record_result(session, b, {"eval_loss": 1.5}, job_id="job-2")
    configurations.record_result(session, a, {"eval_loss": 2.5}, job_id="job-3")  # worse: kept 2.0
    best = configurations.best_configuration(session, "m", "d")
    assert best.id == configurations.configuration_id(b) and best.job_id == "job-2"
    assert configurations.get_configuration(session, configurations.configuration_id(a)).eval_loss == 2.0
    assert len(configurations.list_configurations(session, model="m")) == 2


def test_tokens_hashed_scoped_revocable(session: Session) -> None:
    row, secret = tokens.create_token(session, "ci", ["read"])
    assert secret.startswith("tl_") and secret not in row.token_hash and "token_hash" not in row.to_dict()
    assert tokens.verify_token(session, secret, "read").last_used_at is not None
    with pytest.raises(Forbidden):
        tokens.verify_token(session, secret, "train")
    admin, admin_secret = tokens.create_token(session, "root", ["admin"])
    assert tokens.verify_token(session, admin_secret, "train").id == admin.id
    with pytest.raises(Unauthorized):
        tokens.verify_token(session, "tl_wrong")
    tokens.revoke_token(session, "ci")
    with pytest.raises(Unauthorized):
        tokens.verify_token(session, secret)
    with pytest.raises(InvalidInput):
        tokens.create_token(session, "x", ["superuser"])
    assert len(tokens.list_tokens(session)) == 2


def test_metrics_unique_per_job_and_step(session: Session) -> None:
    session.add(Job(id="job-m", config={}))
    session.add(Metric(job_id="job-m", step=1, loss=1.0, data={}))
    session.commit()
    session.add(Metric(job_id="job-m", step=1, loss=2.0, data={}))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_dataset_tags_column_from_0002_defaults_to_an_empty_list(db_url: str, session: Session) -> None:
    engine = init_db(db_url)
    assert "tags" in {column["name"] for column in inspect(engine).get_columns("datasets")}
    with engine.begin() as connection:  # a row written without tags (as before 0002) reads back as []
        connection.execute(text("INSERT INTO datasets (id, name, description, created_at) "
                                "VALUES ('ds-old', 'old', '', CURRENT_TIMESTAMP)"))  # fmt: skip
    assert catalog.get_dataset(session, "old").tags == []
    catalog.register_dataset_version(session, name="old", version_id="v1", path="/p", tags=["a", "b"])
    catalog.register_dataset_version(session, name="old", version_id="v2", path="/q", tags=["b", "c"])
    session.expire_all()
    assert catalog.get_dataset(session, "old").tags == ["a", "b", "c"]
    assert [d.name for d in catalog.list_datasets(session, tag="c")[0]] == ["old"]
