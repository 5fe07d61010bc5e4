"""Annotated-video renders: a follow-up job per analysed job, in the ``renders`` table.

Requested by the API (insert ``queued``), claimed by a worker with a lease in one
atomic UPDATE, renewed while it renders (the worker's ``LeaseKeeper``), finished fenced
by the lease token: the table is a ``LeaseQueue`` like the jobs' (``app.store.lease_queue``
has the locking model). A render whose worker died is claimed again once its lease
lapses, up to ``render_max_attempts`` claims.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from app.domain import RenderStatus, RenderVariant
from app.errors import LeaseLost
from app.settings import Settings
from app.store.engine import SqlTables
from app.store.lease_queue import LeaseQueue, work_queue
from app.store.schema import renders


def renders_dir(settings: Settings) -> Path:
    """Where rendered videos are cached (under the data dir: a shared volume in scale-out)."""
    return settings.data_dir / "renders"


def render_key(job_id: str, settings: Settings, variant: RenderVariant = RenderVariant.ANNOTATED) -> str:
    """The cache entry's name: a video file per variant and height cap (a different cap makes
    a different file), or for the explanation pictures a folder of full-size PNGs."""
    if variant is RenderVariant.PICTURES:
        return f"{job_id}.pictures"
    middle = ".heatmap" if variant is RenderVariant.HEATMAP else ""
    return f"{job_id}{middle}.{settings.annotate_max_height}p.mp4"


def variant_of(job_id: str, key: str | None, settings: Settings) -> RenderVariant:
    """The variant a render row's ``file_key`` names (a row from before variants has none:
    the annotated video)."""
    for variant in RenderVariant:
        if key == render_key(job_id, settings, variant):
            return variant
    return RenderVariant.ANNOTATED


def picture_name(segment: int, class_id: int) -> str:
    """A picture's file in the pictures folder (as ``explain_png.write_pngs`` names it)."""
    return f"segment-{segment:04d}-{class_id}.png"


def remove_cached(path: Path) -> None:
    """Remove one cache entry: a rendered video, or a folder of pictures."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def delete_cached(job_id: str, settings: Settings) -> None:
    """Remove a job's renders (every variant and height cap, and its pictures)."""
    folder = renders_dir(settings)
    if folder.is_dir():
        for path in [*folder.glob(f"{job_id}.*p.mp4"), *folder.glob(f"{job_id}.pictures")]:
            remove_cached(path)


def cached_renders(settings: Settings) -> dict[str, list[Path]]:
    """The renders in the cache by job id (every variant and height cap, and picture folders),
    from one listing of the folder, so a sweep need not list it again per job."""
    folder = renders_dir(settings)
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in [*folder.glob("*.*p.mp4"), *folder.glob("*.pictures")]:
            found.setdefault(path.name.split(".", 1)[0], []).append(path)
    return found


def cached_job_ids(settings: Settings) -> set[str]:
    """Job ids that have a rendered video in the cache."""
    return set(cached_renders(settings))


@dataclass(frozen=True)
class Render:
    job_id: str
    status: RenderStatus
    attempts: int
    file_key: str | None
    error: str | None
    lease_token: str | None = None


def _render(m: RowMapping) -> Render:
    return Render(
        m["job_id"],
        RenderStatus(m["status"]),
        int(m["attempts"]),
        m["file_key"],
        m["error"],
        m["lease_token"],
    )


def render_queue(max_attempts: int) -> LeaseQueue:
    """The ``renders`` table as a lease queue: oldest request first, ``max_attempts`` claims."""
    return work_queue(
        renders,
        id_column="job_id",
        queued=RenderStatus.QUEUED.value,
        running=RenderStatus.RUNNING.value,
        attempts_left=lambda candidate: candidate.c.attempts < max_attempts,
        order_by=("created_at", "job_id"),
    )


class RenderStore(SqlTables):
    def __init__(self, engine: Engine, *, max_attempts: int, clock: Callable[[], float] = time.time) -> None:
        super().__init__(engine, clock=clock)
        self._max_attempts = max_attempts
        self._queue = render_queue(max_attempts)

    def get(self, job_id: str) -> Render | None:
        with self._read() as conn:
            row = conn.execute(select(renders).where(renders.c.job_id == job_id)).first()
        return None if row is None else _render(row._mapping)

    def request(self, job_id: str, file_key: str | None = None) -> Render:
        """Queue a render unless one is queued or running; a finished one (stale cache,
        failure, another variant) is queued again with a fresh attempt count. ``file_key``
        names what to render (``render_key``; None: the annotated video) until it succeeds."""
        now = self._clock()
        queued = RenderStatus.QUEUED.value
        try:
            with self._write() as conn:
                row = conn.execute(select(renders).where(renders.c.job_id == job_id)).first()
                if row is None:
                    conn.execute(
                        insert(renders).values(
                            job_id=job_id,
                            status=queued,
                            attempts=0,
                            file_key=file_key,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                elif row.status in (RenderStatus.SUCCEEDED, RenderStatus.FAILED):
                    conn.execute(
                        update(renders)
                        .where(renders.c.job_id == job_id)
                        .values(status=queued, attempts=0, error=None, file_key=file_key, updated_at=now)
                    )
        except IntegrityError:
            pass  # a concurrent request inserted it first
        found = self.get(job_id)
        assert found is not None
        return found

    def claim(self, lease_seconds: float) -> Render | None:
        """Lease the oldest queued render (or one whose lease lapsed) with claims left."""
        now = self._clock()
        with self._write() as conn:
            claimed = self._queue.claim(
                conn, now=now, lease_seconds=lease_seconds, values={"updated_at": now}
            )
        return None if claimed is None else _render(claimed.row)

    def renew(self, render: Render, lease_seconds: float) -> Render:
        """Push the lease ``lease_seconds`` past now, so a render longer than one lease is
        not claimed again by another worker. ``LeaseLost`` when the token no longer holds."""
        now = self._clock()
        with self._write() as conn:
            row = self._queue.renew(
                conn,
                render.job_id,
                render.lease_token,
                expires_at=now + lease_seconds,
                values={"updated_at": now},
            )
        if row is None:
            raise LeaseLost(f"the render of job {render.job_id} is no longer leased by this worker")
        return render

    def finish(self, render: Render, *, file_key: str | None = None, error: str | None = None) -> bool:
        """Succeeded with ``file_key``, or failed with ``error`` (queued again while claims
        remain). False when the lease was lost."""
        now = self._clock()
        values: dict[str, Any]
        if error is None:
            values = {
                "status": RenderStatus.SUCCEEDED.value,
                "file_key": file_key,
                "error": None,
                "finished_at": now,
            }
        elif render.attempts < self._max_attempts:
            values = {"status": RenderStatus.QUEUED.value, "error": error}
        else:
            values = {"status": RenderStatus.FAILED.value, "error": error, "finished_at": now}
        values |= {**self._queue.released(), "updated_at": now}
        with self._write() as conn:
            return self._queue.fenced_write(conn, render.job_id, render.lease_token, values)
