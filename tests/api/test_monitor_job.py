"""`tunelab monitor JOB --once` reads a job through the SDK from a real server."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from tunelab.cli.main import app
from tunelab.jobs.events import add_event
from tunelab.jobs.tailer import upsert_metric


def test_monitor_once_on_a_job(base_url: str, make_job: Callable[[str], str],
                               sessions: sessionmaker[Session]) -> None:
    job_id = make_job("running")
    with sessions() as session:
        for step in range(1, 6):
            upsert_metric(session, job_id, {"type": "train", "step": step, "loss": 3.0 - 0.2 * step,
                                            "learning_rate": 1e-4, "grad_norm": 0.5, "tokens_per_second": 900.0,
                                            "samples_per_second": 4.5, "mfu": 0.31, "elapsed_s": step * 1.0,
                                            "eta_s": 5.0 - step})
        add_event(session, job_id, "event", {"type": "started", "message": "training lora on cpu",
                                             "data": {"total_steps": 10}})
        add_event(session, job_id, "event", {"type": "diagnosis", "message": "loss flat. Raise the rate",
                                             "data": {"code": "loss_flat"}})
        add_event(session, job_id, "resources", {"cpu_percent": 40.0, "cpu_count": 2, "ram_percent": 30.0,
                                                 "gpus": [{"index": 0, "name": "Fake GPU", "utilization_percent": 75.0,
                                                           "memory_percent": 50.0}]})
        session.commit()
    frame = CliRunner().invoke(app, ["monitor", job_id, "--once", "--url", base_url], env={"COLUMNS": "140"})
    assert frame.exit_code == 0, frame.output
    text = frame.output
    assert "[running]" in text and "step 5 / 10" in text and "50.0%" in text
    assert "31.0%" in text  # MFU
    assert "4.5 samples/s" in text and "diagnosis" in text and "loss flat" in text
    assert "GPU 0" in text and "75.0%" in text and "worker's last sample" in text
