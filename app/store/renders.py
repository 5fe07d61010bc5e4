"""Annotated-video renders: a follow-up job per analysed job, in the ``renders`` table.

Requested by the API (insert ``queued``), claimed by a worker with a lease in one
atomic UPDATE (as jobs are), renewed while it renders (the worker's ``LeaseKeeper``),
finished fenced by the lease token. A render whose worker died is claimed again once
its lease lapses, up to ``MAX_ATTEMPTS`` times.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.errors import LeaseLost
from app.settings import Settings
from app.store.schema import renders
from app.store.sql import SqlTables

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
MAX_ATTEMPTS = 3


def renders_dir(settings: Settings) -> Path:
    """Where rendered videos are cached (under the data dir: a shared volume in scale-out)."""
    return settings.data_dir / "renders"


def render_key(job_id: str, settings: Settings) -> str:
    """The cache file name; a different height cap makes a different file."""
    return f"{job_id}.{settings.annotate_max_height}p.mp4"


def delete_cached(job_id: str, settings: Settings) -> None:
    """Remove a job's rendered videos (every height cap)."""
    folder = renders_dir(settings)
    if folder.is_dir():
        for path in folder.glob(f"{job_id}.*p.mp4"):
            path.unlink(missing_ok=True)


def cached_renders(settings: Settings) -> dict[str, list[Path]]:
    """The rendered videos in the cache by job id (every height cap), from one listing of
    the folder, so a sweep need not list it again per job."""
    folder = renders_dir(settings)
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in folder.glob("*.*p.mp4"):
            found.setdefault(path.name.split(".", 1)[0], []).append(path)
    return found


def cached_job_ids(settings: Settings) -> set[str]:
    """Job ids that have a rendered video in the cache."""
    return set(cached_renders(settings))


@dataclass(frozen=True)
class Render:
    job_id: str
    status: str
    attempts: int
    file_key: str | None
    error: str | None
    lease_token: str | None = None


def _render(row: object) -> Render:
    m = row._mapping  # type: ignore[attr-defined]
    return Render(m["job_id"], m["status"], int(m["attempts"]), m["file_key"], m["error"], m["lease_token"])


class RenderStore(SqlTables):
    def get(self, job_id: str) -> Render | None:
        with self._read() as conn:
            row = conn.execute(select(renders).where(renders.c.job_id == job_id)).first()
        return None if row is None else _render(row)

    def request(self, job_id: str) -> Render:
        """Queue a render unless one is queued or running; a finished one (stale cache,
        failure) is queued again with a fresh attempt count."""
        now = self._clock()
        try:
            with self._write() as conn:
                row = conn.execute(select(renders).where(renders.c.job_id == job_id)).first()
                if row is None:
                    conn.execute(
                        insert(renders).values(
                            job_id=job_id, status=QUEUED, attempts=0, created_at=now, updated_at=now
                        )
                    )
                elif row.status in (SUCCEEDED, FAILED):
                    conn.execute(
                        update(renders)
                        .where(renders.c.job_id == job_id)
                        .values(status=QUEUED, attempts=0, error=None, file_key=None, updated_at=now)
                    )
        except IntegrityError:
            pass  # a concurrent request inserted it first
        found = self.get(job_id)
        assert found is not None
        return found

    def claim(self, lease_seconds: float) -> Render | None:
        now = self._clock()
        token = uuid.uuid4().hex
        candidate = renders.alias("candidate")
        pick = (
            select(candidate.c.job_id)
            .where(
                or_(
                    candidate.c.status == QUEUED,
                    and_(candidate.c.status == RUNNING, candidate.c.lease_expires_at < now),
                ),
                candidate.c.attempts < MAX_ATTEMPTS,
            )
            .order_by(candidate.c.created_at, candidate.c.job_id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(renders)
            .where(renders.c.job_id == pick)
            .values(
                status=RUNNING,
                attempts=renders.c.attempts + 1,
                lease_token=token,
                lease_expires_at=now + lease_seconds,
                updated_at=now,
            )
            .returning(*renders.c)
        )
        with self._write() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _render(row)

    def renew(self, render: Render, lease_seconds: float) -> Render:
        """Push the lease ``lease_seconds`` past now, so a render longer than one lease is
        not claimed again by another worker. ``LeaseLost`` when the token no longer holds."""
        now = self._clock()
        with self._write() as conn:
            result = conn.execute(
                update(renders)
                .where(self._fence(render))
                .values(lease_expires_at=now + lease_seconds, updated_at=now)
            )
        if result.rowcount != 1:
            raise LeaseLost(f"the render of job {render.job_id} is no longer leased by this worker")
        return render

    def finish(self, render: Render, *, file_key: str | None = None, error: str | None = None) -> bool:
        """Succeeded with ``file_key``, or failed with ``error`` (queued again while attempts
        remain). False when the lease was lost."""
        now = self._clock()
        if error is None:
            values = {"status": SUCCEEDED, "file_key": file_key, "error": None, "finished_at": now}
        elif render.attempts < MAX_ATTEMPTS:
            values = {"status": QUEUED, "error": error}
        else:
            values = {"status": FAILED, "error": error, "finished_at": now}
        with self._write() as conn:
            result = conn.execute(
                update(renders)
                .where(self._fence(render))
                .values(**values, lease_token=None, lease_expires_at=None, updated_at=now)
            )
        return result.rowcount == 1

    @staticmethod
    def _fence(render: Render) -> ColumnElement[bool]:
        """Only the holder of the current lease may change a running render."""
        return and_(
            renders.c.job_id == render.job_id,
            renders.c.lease_token == render.lease_token,
            renders.c.status == RUNNING,
        )
