"""What ``tunelab deploy`` writes, as data: Kubernetes manifests, a Compose file, a systemd unit.

Each builder returns plain dicts (YAML is written by the caller) or, for
systemd, the unit's text, from one ``DeployOptions``; the tests validate them
against the Kubernetes schemas (``kubernetes-validate``), the Compose
specification's JSON schema and ``systemd-analyze verify``. Every part runs the
same image and the same settings (``TUNELAB_*`` variables, see
``tunelab.settings``): the API with ``serve --no-worker``, each worker with
``worker``, all on one PostgreSQL store, with checkpoints and outputs shared
through ``TUNELAB_ARTIFACTS_URL`` when it is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The label every object carries, so `kubectl get all -l app.kubernetes.io/part-of=tunelab` finds them.
PART_OF = {"app.kubernetes.io/part-of": "tunelab"}
API_PORT = 8420
HOME = "/var/lib/tunelab"


@dataclass(frozen=True)
class DeployOptions:
    """What differs between deployments; every field has the default a first deployment needs."""

    image: str = "tunelab:latest"
    namespace: str = "tunelab"
    workers: int = 1
    gpus: int = 0  # per worker (and per training Job); 0 trains on the CPU
    shm_gb: int = 8  # /dev/shm for data loaders and NCCL
    storage_gb: int = 50
    artifacts_url: str = ""
    artifacts_endpoint_url: str = ""
    postgres_image: str = "postgres:16"

    def settings_env(self) -> dict[str, str]:
        """The TUNELAB_* settings every part shares (the database URL is added per target)."""
        env = {"TUNELAB_HOME": HOME, "HF_HOME": f"{HOME}/hf"}
        if self.artifacts_url:
            env["TUNELAB_ARTIFACTS_URL"] = self.artifacts_url
        if self.artifacts_endpoint_url:
            env["TUNELAB_ARTIFACTS_ENDPOINT_URL"] = self.artifacts_endpoint_url
        return env


# -- Kubernetes -------------------------------------------------------------------------------
def _meta(name: str, options: DeployOptions, component: str) -> dict[str, Any]:
    labels = {**PART_OF, "app.kubernetes.io/name": name, "app.kubernetes.io/component": component}
    return {"name": name, "namespace": options.namespace, "labels": labels}


def _k8s_env(options: DeployOptions) -> list[dict[str, Any]]:
    secret = {"secretKeyRef": {"name": "tunelab-postgres", "key": "POSTGRES_PASSWORD"}}
    env: list[dict[str, Any]] = [{"name": "POSTGRES_PASSWORD", "valueFrom": secret}]
    env.append({"name": "TUNELAB_DATABASE_URL",
                "value": "postgresql+psycopg://tunelab:$(POSTGRES_PASSWORD)@tunelab-postgres:5432/tunelab"})  # fmt: skip
    env += [{"name": key, "value": value} for key, value in options.settings_env().items()]
    return env


def _gpu_resources(gpus: int) -> dict[str, Any]:
    if not gpus:
        return {"requests": {"cpu": "1", "memory": "4Gi"}}
    return {
        "requests": {"cpu": "2", "memory": "16Gi", "nvidia.com/gpu": gpus},
        "limits": {"nvidia.com/gpu": gpus},
    }


def _shm(options: DeployOptions) -> dict[str, Any]:
    return {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{options.shm_gb}Gi"}}


def _pvc(name: str, options: DeployOptions, size_gb: int, access: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(name, options, "storage"),
            "spec": {"accessModes": [access], "resources": {"requests": {"storage": f"{size_gb}Gi"}}}}  # fmt: skip


def _deployment(
    name: str, options: DeployOptions, component: str, replicas: int, pod: dict[str, Any]
) -> dict[str, Any]:
    meta = _meta(name, options, component)
    selector = {"app.kubernetes.io/name": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": meta["labels"]}, "spec": pod}}}  # fmt: skip


def _service(name: str, options: DeployOptions, component: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, options, component),
            "spec": {"selector": {"app.kubernetes.io/name": name},
                     "ports": [{"name": "http" if port == API_PORT else "postgres", "port": port,
                                "targetPort": port}]}}  # fmt: skip


def k8s_studio(options: DeployOptions, postgres_password: str) -> list[dict[str, Any]]:
    """Namespace, PostgreSQL (Secret, volume, Deployment, Service), the API and the workers."""
    home = {"name": "home", "persistentVolumeClaim": {"claimName": "tunelab-home"}}
    mounts = [{"name": "home", "mountPath": HOME}]
    postgres_pod = {"containers": [{
        "name": "postgres", "image": options.postgres_image, "ports": [{"containerPort": 5432}],
        "env": [{"name": "POSTGRES_USER", "value": "tunelab"}, {"name": "POSTGRES_DB", "value": "tunelab"},
                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "tunelab-postgres",
                                                                              "key": "POSTGRES_PASSWORD"}}}],
        "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "tunelab"]}, "periodSeconds": 5},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    }], "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "tunelab-postgres"}}]}  # fmt: skip
    api_pod = {"containers": [{
        "name": "api", "image": options.image,
        "command": ["tunelab", "serve", "--no-worker", "--host", "0.0.0.0", "--port", str(API_PORT)],
        "ports": [{"containerPort": API_PORT, "name": "http"}], "env": _k8s_env(options), "volumeMounts": mounts,
        "readinessProbe": {"httpGet": {"path": "/health", "port": API_PORT}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/health", "port": API_PORT}, "periodSeconds": 30,
                          "failureThreshold": 5},
    }], "volumes": [home]}  # fmt: skip
    worker_pod = {
        # A worker checkpoints its running job on SIGTERM however long the step takes; give it time.
        "terminationGracePeriodSeconds": 3600,
        "containers": [{"name": "worker", "image": options.image, "command": ["tunelab", "worker"],
                        "env": _k8s_env(options), "resources": _gpu_resources(options.gpus),
                        "volumeMounts": [*mounts, {"name": "shm", "mountPath": "/dev/shm"}]}],
        "volumes": [home, _shm(options)],
    }  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": options.namespace, "labels": PART_OF}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": _meta("tunelab-postgres", options, "database"),
         "type": "Opaque", "stringData": {"POSTGRES_PASSWORD": postgres_password}},
        _pvc("tunelab-postgres", options, 20, "ReadWriteOnce"),
        # Uploaded datasets and run folders: every pod mounts the same volume (ReadWriteMany).
        _pvc("tunelab-home", options, options.storage_gb, "ReadWriteMany"),
        _deployment("tunelab-postgres", options, "database", 1, postgres_pod),
        _service("tunelab-postgres", options, "database", 5432),
        _deployment("tunelab-api", options, "api", 1, api_pod),
        _service("tunelab-api", options, "api", API_PORT),
        _deployment("tunelab-worker", options, "worker", options.workers, worker_pod),
    ]  # fmt: skip


def k8s_training_job(options: DeployOptions, name: str, config_yaml: str) -> list[dict[str, Any]]:
    """A ConfigMap with one training config and a Job that trains it once (GPU requests, /dev/shm)."""
    job_name = f"tunelab-train-{name}"
    container = {
        "name": "train", "image": options.image,
        "command": ["tunelab", "train", "/etc/tunelab/train.yaml", "--run-dir", f"{HOME}/runs/{job_name}"],
        "env": _k8s_env(options), "resources": _gpu_resources(options.gpus),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/tunelab", "readOnly": True},
                         {"name": "home", "mountPath": HOME}, {"name": "shm", "mountPath": "/dev/shm"}],
    }  # fmt: skip
    pod = {"restartPolicy": "OnFailure", "containers": [container], "volumes": [
        {"name": "config", "configMap": {"name": job_name}},
        {"name": "home", "persistentVolumeClaim": {"claimName": "tunelab-home"}}, _shm(options)]}  # fmt: skip
    meta = _meta(job_name, options, "training")
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"train.yaml": config_yaml}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
         "spec": {"backoffLimit": 3, "template": {"metadata": {"labels": meta["labels"]}, "spec": pod}}},
    ]  # fmt: skip


# -- Docker Compose ---------------------------------------------------------------------------
def compose_file(options: DeployOptions) -> dict[str, Any]:
    """API, PostgreSQL and worker(s) on one machine; the password comes from the .env beside it."""
    env = {"TUNELAB_DATABASE_URL": "postgresql+psycopg://tunelab:${POSTGRES_PASSWORD}@postgres:5432/tunelab",
           **options.settings_env()}  # fmt: skip
    depends = {"postgres": {"condition": "service_healthy"}}
    worker: dict[str, Any] = {
        "image": options.image, "command": ["tunelab", "worker"], "environment": env, "depends_on": depends,
        "volumes": [f"tunelab-home:{HOME}"], "shm_size": f"{options.shm_gb}gb", "restart": "unless-stopped",
        "stop_grace_period": "1h",  # the running job checkpoints at the end of its step before the worker exits
        "deploy": {"replicas": options.workers},
    }  # fmt: skip
    if options.gpus:
        worker["deploy"]["resources"] = {"reservations": {"devices": [
            {"driver": "nvidia", "count": options.gpus, "capabilities": ["gpu"]}]}}  # fmt: skip
    return {  # the project is named after the folder (or `docker compose -p NAME`)
        "services": {
            "postgres": {
                "image": options.postgres_image, "restart": "unless-stopped",
                "environment": {"POSTGRES_USER": "tunelab", "POSTGRES_DB": "tunelab",
                                "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD}"},
                "volumes": ["postgres-data:/var/lib/postgresql/data"],
                "healthcheck": {"test": ["CMD", "pg_isready", "-U", "tunelab"], "interval": "5s", "retries": 10},
            },
            "api": {
                "image": options.image,
                "command": ["tunelab", "serve", "--no-worker", "--host", "0.0.0.0", "--port", str(API_PORT)],
                "environment": dict(env), "depends_on": dict(depends), "ports": [f"{API_PORT}:{API_PORT}"],
                "volumes": [f"tunelab-home:{HOME}"], "restart": "unless-stopped",
                "healthcheck": {"test": ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen("
                                         f"'http://127.0.0.1:{API_PORT}/health')"], "interval": "15s"},
            },
            "worker": worker,
        },
        "volumes": {"postgres-data": {}, "tunelab-home": {}},
    }  # fmt: skip


# -- systemd ----------------------------------------------------------------------------------
def systemd_unit(options: DeployOptions, executable: str, user: str = "tunelab") -> str:
    """A unit that runs one worker on this machine against the shared store (settings in an env file)."""
    lines = [
        "[Unit]",
        "Description=tunelab job worker",
        "Documentation=https://github.com/tunelab/tunelab/blob/main/docs/deployment.md",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        "StateDirectory=tunelab",  # /var/lib/tunelab, owned by the user: the worker's home and run folders
        # TUNELAB_DATABASE_URL (the shared PostgreSQL), TUNELAB_ARTIFACTS_URL, AWS_* credentials.
        "EnvironmentFile=-/etc/tunelab/worker.env",
        *(f"Environment={key}={value}" for key, value in options.settings_env().items()),
        f"ExecStart={executable} worker --worker-id %H",
        "Restart=on-failure",
        "RestartSec=5",
        # SIGTERM to the worker only: it asks its engine to checkpoint and waits for it (exit 75).
        "KillMode=mixed",
        "TimeoutStopSec=1h",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)
