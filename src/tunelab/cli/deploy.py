"""`tunelab deploy k8s|compose|systemd`: write what runs the studio on Kubernetes, Compose or systemd.

The files come from ``cli/deploy_files.py`` (one builder each); this module
only takes the options, writes them (never over an existing file unless
``--force``) and says what to run next. A fresh PostgreSQL password is made
for each deployment and written only into its Secret (Kubernetes) or ``.env``
(Compose). See docs/deployment.md.
"""

from __future__ import annotations

import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

import typer

from tunelab.cli.deploy_files import (
    DeployOptions,
    compose_file,
    k8s_studio,
    k8s_training_job,
    systemd_unit,
)
from tunelab.errors import InvalidInput

deploy_app = typer.Typer(help="Write Kubernetes manifests, a Compose file or a systemd unit for the studio.",
                         no_args_is_help=True)  # fmt: skip

OutOpt = typer.Option(Path("deploy"), "--out", "-o", help="Folder to write into (made if missing).")
ImageOpt = typer.Option("tunelab:latest", "--image", help="Container image with tunelab installed.")
WorkersOpt = typer.Option(1, "--workers", min=0, max=1000, help="Worker replicas.")
GpusOpt = typer.Option(
    0, "--gpus", min=0, max=64, help="GPUs per worker (and per training Job); 0: CPU."
)
ShmOpt = typer.Option(
    8, "--shm-gb", min=1, max=1024, help="Size of /dev/shm for each worker, in GB."
)
ArtifactsOpt = typer.Option(
    "",
    "--artifacts-url",
    help="Shared artifact storage (s3://bucket/prefix); empty: the home volume.",
)
EndpointOpt = typer.Option(
    "", "--artifacts-endpoint-url", help="Endpoint of an S3-compatible store (MinIO...)."
)
ForceOpt = typer.Option(False, "--force", help="Overwrite files that exist.")


def _options(**values: Any) -> DeployOptions:
    return DeployOptions(**{key: value for key, value in values.items() if value is not None})


def _write(folder: Path, files: dict[str, str], force: bool) -> None:
    """Write every file or none: an existing one stops the command before anything is written."""
    existing = [name for name in files if (folder / name).exists()]
    if existing and not force:
        raise InvalidInput(f"{', '.join(str(folder / name) for name in existing)} already exist(s)",
                           "pass --force to overwrite, or --out another folder")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
        typer.echo(f"wrote {folder / name}")


def _yaml(*documents: Any) -> str:
    """YAML documents written out in full (no ``&id001`` anchors where two parts share a value)."""
    import yaml

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return "---\n".join(
        yaml.dump(doc, Dumper=Plain, sort_keys=False, width=120) for doc in documents
    )


@deploy_app.command("k8s")
def k8s(
    out: Path = OutOpt,
    image: str = ImageOpt,
    namespace: str = typer.Option("tunelab", "--namespace", help="Kubernetes namespace."),
    workers: int = WorkersOpt,
    gpus: int = GpusOpt,
    shm_gb: int = ShmOpt,
    artifacts_url: str = ArtifactsOpt,
    artifacts_endpoint_url: str = EndpointOpt,
    train: Path = typer.Option(
        None, "--train", help="Also write a Kubernetes Job that trains this config once."
    ),
    force: bool = ForceOpt,
) -> None:
    """PostgreSQL, the API and the workers as Deployments; with --train, a Job for one training run."""
    options = _options(image=image, namespace=namespace, workers=workers, gpus=gpus, shm_gb=shm_gb,
                       artifacts_url=artifacts_url, artifacts_endpoint_url=artifacts_endpoint_url)  # fmt: skip
    files = {"tunelab-studio.yaml": _yaml(*k8s_studio(options, secrets.token_urlsafe(24)))}
    if train is not None:
        if not train.is_file():
            raise InvalidInput(
                f"training config {train} not found",
                "pass a YAML file such as examples/identity-lora.yaml",
            )
        name = re.sub(r"[^a-z0-9-]+", "-", train.stem.lower()).strip("-")[:40] or "run"
        files[f"tunelab-train-{name}.yaml"] = _yaml(
            *k8s_training_job(options, name, train.read_text())
        )
    _write(out, files, force)
    typer.echo(f"next: kubectl apply -f {out / 'tunelab-studio.yaml'}, then create the first API token:\n"
               f"  kubectl -n {namespace} exec deploy/tunelab-api -- tunelab tokens create admin --scope admin")  # fmt: skip


@deploy_app.command("compose")
def compose(
    out: Path = OutOpt,
    image: str = ImageOpt,
    workers: int = WorkersOpt,
    gpus: int = GpusOpt,
    shm_gb: int = ShmOpt,
    artifacts_url: str = ArtifactsOpt,
    artifacts_endpoint_url: str = EndpointOpt,
    force: bool = ForceOpt,
) -> None:
    """docker-compose.yml with the API, PostgreSQL and the worker(s); the password in .env beside it."""
    options = _options(image=image, workers=workers, gpus=gpus, shm_gb=shm_gb,
                       artifacts_url=artifacts_url, artifacts_endpoint_url=artifacts_endpoint_url)  # fmt: skip
    files = {
        "docker-compose.yml": _yaml(compose_file(options)),
        ".env": f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}\n",
    }
    _write(out, files, force)
    typer.echo(f"next: cd {out} && docker compose run --rm api tunelab tokens create admin --scope admin "
               "&& docker compose up -d")  # fmt: skip


def _executable() -> str:
    beside = Path(sys.executable).parent / "tunelab"
    found = str(beside) if beside.exists() else shutil.which("tunelab")
    return str(Path(found).resolve()) if found else "/usr/local/bin/tunelab"


@deploy_app.command("systemd")
def systemd(
    out: Path = OutOpt,
    user: str = typer.Option("tunelab", "--user", help="System user the worker runs as."),
    executable: str = typer.Option(
        None, "--executable", help="Absolute path of `tunelab` (default: this one)."
    ),
    artifacts_url: str = ArtifactsOpt,
    artifacts_endpoint_url: str = EndpointOpt,
    force: bool = ForceOpt,
) -> None:
    """tunelab-worker.service: one worker on this machine against the shared store."""
    path = executable or _executable()
    if not Path(path).is_absolute():
        raise InvalidInput(
            f"--executable must be an absolute path, not {path!r}",
            "e.g. --executable /opt/tunelab/bin/tunelab",
        )
    options = _options(artifacts_url=artifacts_url, artifacts_endpoint_url=artifacts_endpoint_url)
    _write(out, {"tunelab-worker.service": systemd_unit(options, path, user)}, force)
    typer.echo(f"next: put TUNELAB_DATABASE_URL=postgresql+psycopg://... in /etc/tunelab/worker.env, then\n"
               f"  sudo cp {out / 'tunelab-worker.service'} /etc/systemd/system/ && "
               "sudo systemctl enable --now tunelab-worker")  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
