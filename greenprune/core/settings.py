"""Settings of every service, read from the environment through pydantic-settings.

Each service has its own prefix (``GREENPRUNE_RESULTS_``, ``GREENPRUNE_PRUNING_``,
``GREENPRUNE_EVAL_``); the bearer token is shared as ``GREENPRUNE_TOKEN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from greenprune.core.limits import EVAL_SPEC, default


def default_home() -> Path:
    """Returns the folder greenprune keeps its state in (``GREENPRUNE_HOME`` or ``./.state``)."""
    import os

    return Path(os.environ.get("GREENPRUNE_HOME", ".state")).resolve()


class ServerSettings(BaseSettings):
    """What every gRPC server needs."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    state_dir: Path = Field(default_factory=lambda: default_home())
    token: str | None = Field(
        default=None, validation_alias=AliasChoices("GREENPRUNE_TOKEN", "token")
    )
    max_message_bytes: int = 64 * 1024 * 1024
    grace_seconds: float = 10.0
    max_queued_jobs: int = 256

    @property
    def address(self) -> str:
        """The ``host:port`` the server binds."""
        return f"{self.host}:{self.port}"


class ResultsSettings(ServerSettings):
    """Settings of the ResultsService (prefix ``GREENPRUNE_RESULTS_``)."""

    model_config = SettingsConfigDict(env_prefix="GREENPRUNE_RESULTS_", extra="ignore")

    port: int = Field(default=50053, ge=0, le=65535)
    db_path: Path | None = None

    @model_validator(mode="after")
    def _default_db_path(self) -> ResultsSettings:
        if self.db_path is None:
            self.db_path = self.state_dir / "results" / "results.duckdb"
        return self


class WorkerServiceSettings(ServerSettings):
    """Settings shared by the services that run jobs and report to the ResultsService."""

    results_address: str = "127.0.0.1:50053"
    models_root: Path = Field(default_factory=lambda: default_home() / "models")
    checkpoints_dir: Path | None = None
    warm_job_process: bool = Field(
        default=True,
        description="Keep a job process warm (imports, CodeCarbon's detection done) while idle,"
        " so a job starts in milliseconds; costs the memory of one idle process. The server"
        " reports SERVING once it is warm.",
    )
    reuse_job_process: bool = Field(
        default=False,
        description="Run a lane's next job in the process (local child or Ray actor) that ran"
        " its last one well, rather than a fresh process per job: saves each job the start"
        " (seconds of imports); memory is not returned between jobs.",
    )

    backend: Literal["local", "ray"] = Field(
        default="local",
        description="Where jobs run: local child processes, or actors on a Ray cluster (the"
        " job table stays in this service either way).",
    )
    ray_address: str = Field(
        default="",
        description="The Ray cluster: 'auto' (one running on this machine), 'ray://head:10001'"
        " (Ray Client), or empty to start a local instance.",
    )
    ray_num_cpus: float = Field(default=1.0, ge=0, description="CPUs per job of a CPU lane.")
    ray_num_gpus: float = Field(default=1.0, ge=0, description="GPUs per job of a CUDA lane.")
    ray_max_concurrent: int = Field(
        default=0, ge=0, description="Most jobs of one lane at once; 0: what the cluster fits."
    )
    ray_lane_resources: Literal["device", "gpu", "cpu"] = Field(
        default="device",
        description="device: CUDA lanes ask for ray_num_gpus, others ray_num_cpus; gpu or cpu:"
        " every job asks for GPUs (or CPUs) whatever its lane.",
    )
    ray_local_num_cpus: int | None = Field(default=None, ge=1)
    ray_local_num_gpus: int | None = Field(
        default=None, ge=0, description="GPUs of a local instance; logical ones simulate a cluster."
    )
    job_worker: str | None = Field(
        default=None,
        description="Replaces the worker function ('module:function'), for simulations only.",
    )

    @model_validator(mode="after")
    def _default_checkpoints_dir(self) -> WorkerServiceSettings:
        if self.checkpoints_dir is None:
            self.checkpoints_dir = self.state_dir / "checkpoints"
        return self


class PruningSettings(WorkerServiceSettings):
    """Settings of the PruningService (prefix ``GREENPRUNE_PRUNING_``)."""

    model_config = SettingsConfigDict(env_prefix="GREENPRUNE_PRUNING_", extra="ignore")

    port: int = Field(default=50051, ge=0, le=65535)


class EvalSettings(WorkerServiceSettings):
    """Settings of the EvalService (prefix ``GREENPRUNE_EVAL_``)."""

    model_config = SettingsConfigDict(env_prefix="GREENPRUNE_EVAL_", extra="ignore")

    port: int = Field(default=50052, ge=0, le=65535)
    default_batch_size: int = default(EVAL_SPEC, "batch_size")
    default_repeats: int = default(EVAL_SPEC, "repeats")
    allow_task_code: bool = False  # task YAML with !function / class: runs Python in the worker
    task_roots: list[Path] = Field(default_factory=lambda: [default_home() / "tasks"])
