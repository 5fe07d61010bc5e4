"""All runtime settings in one place, read from the environment (prefix ``VAS_``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Service settings. Built once at start-up and passed down, never read at import."""

    model_config = SettingsConfigDict(env_prefix="VAS_", env_file=None, extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "VAS_DATABASE_URL"),
        description="SQLAlchemy URL; default: a SQLite file under the data dir.",
    )
    data_dir: Path = Field(default=REPO_ROOT / "data", description="Uploaded videos and the SQLite file.")
    models_dir: Path = Field(default=REPO_ROOT / "models", description="Weights files and manifest.json.")
    auto_fetch: bool = Field(
        default=False,
        description="Workers download a zoo model's missing weights on first use (needs internet).",
    )
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0, description="Largest accepted upload body.")
    upload_read_timeout_seconds: float = Field(
        default=60.0, gt=0, description="An upload whose body sends no bytes this long is refused (408)."
    )
    source_fetch_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Deadline of fetching a job's source_url as a whole (lookup, redirects, body); then 422.",
    )
    source_url_allowed_networks: str = Field(
        default="",
        description="CIDRs a source_url may be fetched from although loopback/private/link-local (comma list).",
    )
    default_model: str = Field(default="x3d_s", description="Model used when a job names none.")
    lease_seconds: float = Field(default=60.0, gt=0, description="How long a claim lasts without renewal.")
    max_attempts: int = Field(default=3, ge=1, description="Claims before a job fails attempts_exhausted.")
    embedded_worker: bool = Field(default=True, description="Run a worker thread inside `serve`.")
    auto_migrate: bool = Field(default=True, description="`serve`/`worker` apply migrations at start.")
    device: str = Field(default="cpu", description="Torch device for inference: cpu, cuda, cuda:1, auto.")
    batch_size: int = Field(
        default=1, ge=1, le=256, description="Clips per inference batch (1 is fastest on CPU; 16+ on GPU)."
    )
    torch_threads: int = Field(default=1, ge=1, description="Torch intra-op threads per worker process.")
    decode_threads: int = Field(default=0, ge=0, description="PyAV codec threads (0: FFmpeg decides).")
    decode_children: int = Field(
        default=0,
        ge=0,
        le=4,
        description="Decode children per job, each from a keyframe on (0: two where this process may "
        "use two or more cores, else one; 1: one pass; see PERFORMANCE).",
    )
    decode_in_subprocess: bool = Field(
        default=True, description="Scan and decode in a sandboxed child process (false: in the worker)."
    )
    decode_memory_bytes: int = Field(
        default=4 * 1024**3,
        ge=256 * 1024**2,
        description="Address-space limit of the decode child and of the upload probe's child.",
    )
    decode_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Wall-clock allowance of the decode child, plus the next setting."
    )
    decode_timeout_per_video_second: float = Field(
        default=2.0, ge=0, description="Extra decode allowance per second of video (also its CPU-time limit)."
    )
    probe_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Wall-clock deadline of the upload probe's child (then 422)."
    )
    max_segments_per_job: int = Field(
        default=20_000,
        ge=1,
        le=1_000_000,
        description="Most segments one job may cut its video into (more: 422 invalid_options at submission).",
    )
    job_timeout_base_seconds: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Whole-job wall-clock budget, from claim to results: (this + job_timeout_per_video_second"
            " x seconds analysed x (model cost x clips_per_segment x crops + shot cost)) x"
            " worker_jobs_in_flight; past it the job fails `timeout` (not retried). Model cost: the"
            " catalog's gflops / 3 (X3D-S), at least 1; 25 for a model without gflops. Shot cost: 3"
            " with detect_shots (TransNetV2 reads every frame), else 0."
        ),
    )
    job_timeout_per_video_second: float = Field(
        default=5.0,
        ge=0,
        description="Whole-job budget per analysed second of video (see job_timeout_base_seconds).",
    )
    decode_queue_bytes: int = Field(
        default=128 * 1024**2, ge=1024**2, description="Shared memory for clips decoded ahead of inference."
    )
    batch_max_wait_seconds: float = Field(
        default=0.0, ge=0, description="How long a partial batch waits for more clips before it runs."
    )
    fast_decode_min_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Videos this long skip non-reference frames (0: never; see PERFORMANCE).",
    )
    worker_jobs_in_flight: int = Field(
        default=1, ge=1, le=16, description="Jobs a worker holds at once (their clips share batches)."
    )
    poll_interval: float = Field(default=0.5, gt=0, description="Worker idle poll period, seconds.")
    db_pool_size: int = Field(default=5, ge=1, description="Connection pool size (PostgreSQL).")
    listen_poll_interval: float = Field(
        default=5.0, gt=0, description="Idle poll period while LISTEN/NOTIFY wakes workers (PostgreSQL)."
    )
    drain_seconds: float = Field(
        default=5.0, ge=0, description="On SIGTERM, `serve` answers 503 this long, then stops."
    )
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Worker /metrics port (0: off).")
    retention_days: float | None = Field(
        default=None, ge=0, description="Delete videos of finished jobs after N days (None/0: keep)."
    )
    retention_delete_results: bool = Field(
        default=False, description="With retention_days, also delete finished jobs and their results."
    )
    orphan_grace_seconds: float = Field(
        default=3600.0, ge=0, description="Age before a stored video with no job row is swept."
    )
    host: str = Field(default="127.0.0.1", description="Bind address for `serve`.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port for `serve`.")
    model_cache_bytes: int = Field(default=2 * 1024**3, ge=0, description="Memory bound of the model LRU.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = Field(default=False, description="Structured JSON logs (one object per line).")
    auth_enabled: bool = Field(
        default=False, description="Require an API key on /v1 (off: one open tenant; bind to loopback)."
    )
    cors_allow_origins: str = Field(
        default="", description="Origins allowed by CORS, comma list ('': CORS off, '*': any origin)."
    )
    tenant_requests_per_second: int = Field(
        default=0, ge=0, description="API requests per second per tenant (0: unlimited)."
    )
    tenant_max_active_jobs: int = Field(
        default=0, ge=0, description="Queued + running jobs per tenant (0: unlimited)."
    )
    tenant_bytes_per_day: int = Field(
        default=0, ge=0, description="Uploaded bytes per tenant per UTC day (0: unlimited)."
    )
    max_duration_seconds: float = Field(
        default=4 * 3600.0, gt=0, description="Longest accepted video, seconds (probe and decode)."
    )
    max_frame_pixels: int = Field(
        default=7680 * 4320, ge=1, description="Most pixels per frame (width x height) a decoder may produce."
    )
    max_streams: int = Field(default=32, ge=1, le=1000, description="Most streams (of any kind) in a file.")
    allowed_formats: str = Field(
        default="mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv,ogg,ivf,h264,hevc,m4v,asf,mxf",
        description="FFmpeg demuxers an upload may be opened with (comma list).",
    )
    events_poll_interval: float = Field(
        default=0.5, gt=0, description="How often an events (SSE) stream polls the store, seconds."
    )
    events_max_seconds: float = Field(
        default=3600.0, gt=0, description="An events stream closes after this long (clients reconnect)."
    )
    webhook_allowed_networks: str = Field(
        default="",
        description="CIDRs webhooks may target although loopback/private/link-local (comma list).",
    )
    webhook_max_attempts: int = Field(default=8, ge=1, le=50, description="Sends before a delivery fails.")
    webhook_backoff_seconds: float = Field(
        default=5.0, gt=0, description="Delay before the first retry; doubles per attempt (with jitter)."
    )
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0, description="Longest retry delay.")
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Deadline of one webhook send as a whole (lookup, connect, request, answer's headers).",
    )
    webhook_concurrency: int = Field(
        default=4, ge=1, le=64, description="Webhooks a worker process sends at once (a slow one holds one)."
    )
    webhook_poll_interval: float = Field(
        default=1.0, gt=0, description="How often a worker's delivery loop looks for due webhooks."
    )
    annotate_max_height: int = Field(
        default=720, ge=64, le=4320, description="Annotated videos are scaled down to this height."
    )
    render_every_jobs: int = Field(
        default=4,
        ge=1,
        description="A worker busy with analysis still renders one waiting annotated video per this many jobs.",
    )
    render_max_attempts: int = Field(
        default=3, ge=1, description="Claims of an annotated-video render before it fails."
    )
    backends: dict[str, Literal["torch", "onnx", "openvino", "openvino-bf16", "auto"]] = Field(
        default_factory=dict,
        description='Inference backend per model, JSON: {"x3d_xs": "openvino"} (others: backend_default); '
        "openvino-bf16 (lossy) only here, per model.",
    )
    backend_default: Literal["torch", "onnx", "openvino", "auto"] = Field(
        default="auto",
        description="Backend of models not in backends (auto: the export measured fastest here, else torch).",
    )
    shot_backend: Literal["auto", "torch", "openvino"] = Field(
        default="auto",
        description="Backend of the shot detector (auto: its OpenVINO export, made and verified once per "
        "machine, when it ran faster than PyTorch).",
    )

    @field_validator("data_dir", "models_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        """Absolute from the start, so messages (e.g. where to put missing weights) and child
        processes with another working directory name the same folder."""
        return path.expanduser().resolve()

    @field_validator("source_url_allowed_networks")
    @classmethod
    def _networks(cls, text: str) -> str:
        """A bad entry stops the start, rather than failing every fetch later."""
        for part in filter(None, (p.strip() for p in text.split(","))):
            ipaddress.ip_network(part, strict=False)
        return text

    @property
    def allowed_format_list(self) -> list[str]:
        """``allowed_formats`` as the list of demuxer names every probe and decode takes."""
        return [f.strip() for f in self.allowed_formats.split(",") if f.strip()]

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'jobs.sqlite3').resolve()}"

    @property
    def videos_dir(self) -> Path:
        return self.data_dir / "videos"
