"""The compose deployment on loopback, driven only through nginx (tests/deploy/conftest.py).

In order, on one deployment: a concurrent load with large uploads; ``kill -9`` of a worker
that holds a job; SIGTERM of an API replica during traffic; a PostgreSQL restart mid-run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import skip_or_fail
from tests.deploy.conftest import Deployment
from tests.deploy.harness import Proc, wait_http_ok
from tests.media import write_video

pytestmark = [pytest.mark.deploy, pytest.mark.postgres, pytest.mark.anyio, pytest.mark.timeout(420)]

SMALL_JOBS = 40
LARGE_JOBS = 3
FINAL = {"succeeded", "failed", "canceled"}


# ---------------------------------------------------------------- media


def _noise(index: int, t: float, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deploy-media")
    return {
        "small": write_video(root / "small.mp4", seconds=2.0, fps=15, width=96, height=72),
        # Lossless noise: ~20 MB that still decodes in a fraction of a second.
        "large": write_video(
            root / "large.mp4",
            seconds=2.0,
            fps=15,
            width=640,
            height=480,
            frame_fn=_noise,
            options={"qp": "0"},
        ),
        "long": write_video(root / "long.mp4", seconds=16.0, fps=15, width=96, height=72),
    }


# ---------------------------------------------------------------- client helpers


async def submit(
    client: httpx.AsyncClient,
    path: Path,
    *,
    key: str | None = None,
    retry_503: bool = False,
    seen: list[int] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """POST a video through nginx; with ``retry_503``, honour Retry-After (capped) and re-send
    with the same Idempotency-Key."""
    headers = {"Idempotency-Key": key} if key else {}
    data = {k: str(v) for k, v in fields.items()}
    deadline = time.monotonic() + 60
    while True:
        with path.open("rb") as fh:
            response = await client.post(
                "/v1/jobs", files={"file": (path.name, fh, "video/mp4")}, data=data, headers=headers
            )
        if seen is not None:
            seen.append(response.status_code)
        if response.status_code == 503 and retry_503 and time.monotonic() < deadline:
            assert response.headers.get("retry-after"), "503 without Retry-After"
            await asyncio.sleep(min(float(response.headers["retry-after"]), 0.5))
            continue
        assert response.status_code in (200, 202), response.text
        job: dict[str, Any] = response.json()
        return job


async def wait_final(
    client: httpx.AsyncClient, ids: list[str], timeout: float, logs: Callable[[], str]
) -> dict[str, dict[str, Any]]:
    pending, done = set(ids), {}
    deadline = time.monotonic() + timeout
    while pending:
        assert time.monotonic() < deadline, f"not final after {timeout}s: {sorted(pending)[:5]}\n{logs()}"
        for job_id in list(pending):
            response = await client.get(f"/v1/jobs/{job_id}")
            if response.status_code == 503:  # database away: retry later
                continue
            assert response.status_code == 200, response.text
            job = response.json()
            if job["status"] in FINAL:
                done[job_id] = job
                pending.discard(job_id)
        await asyncio.sleep(0.3)
    return done


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    return 0.0


def client_for(base: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=12, max_keepalive_connections=12)
    return httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=headers)


# ---------------------------------------------------------------- 1. load


async def test_concurrent_load_through_nginx(deployment: Deployment, media: dict[str, Path]) -> None:
    dep = deployment
    async with client_for(dep.base, dep.auth) as client:
        uploads = [media["large"]] * LARGE_JOBS + [media["small"]] * SMALL_JOBS
        started = time.monotonic()
        jobs = await asyncio.gather(*(submit(client, p, segment_seconds=1.0, top_k=2) for p in uploads))
        ids = [j["id"] for j in jobs]
        assert len(set(ids)) == len(uploads) and all(j["status"] == "queued" for j in jobs)
        done = await wait_final(client, ids, 150, dep.logs)
        elapsed = time.monotonic() - started
        bad = {i: j for i, j in done.items() if j["status"] != "succeeded"}
        assert not bad, f"not all succeeded: {list(bad.values())[:3]}\n{dep.logs()}"

        # Results are the same whichever replica serves them.
        for job_id in ids:
            answers = [
                httpx.get(f"{dep.replica_url(i)}/v1/jobs/{job_id}/results", headers=dep.auth, timeout=30)
                for i in (0, 1)
            ]
            assert [a.status_code for a in answers] == [200, 200], answers[0].text
            assert answers[0].json() == answers[1].json()
            assert answers[0].json()["segments"]
        large = [j for j in jobs if j["video"]["width"] == 640]
        assert len(large) == LARGE_JOBS and all(j["video"]["size_bytes"] > 15_000_000 for j in large)

        text = (await client.get("/metrics")).text
        assert metric(text, 'vas_jobs{status="succeeded"}') >= len(uploads)
        assert metric(text, "vas_queue_depth") == 0
    with dep.db() as db:
        workers = {row[0] for row in db.execute("SELECT worker_id FROM jobs WHERE status = 'succeeded'")}
        assert len(workers) == 2, f"both workers took jobs: {workers}"
        assert db.execute("SELECT count(*) FROM results").fetchone() == (len(uploads),)
    outcomes = sum(
        metric(
            httpx.get(f"http://127.0.0.1:{w.port}/metrics").text,
            'vas_job_outcomes_total{outcome="succeeded"}',
        )
        for w in dep.workers
    )
    assert outcomes == len(uploads)
    _assert_json_logs(dep.workers[0])
    print(f"load: {len(uploads)} jobs submitted and finished in {elapsed:.1f}s")


def _assert_json_logs(worker: Proc) -> None:
    entries = []
    for line in worker.log_path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    claimed = [e for e in entries if e.get("msg", "").startswith("job claimed")]
    assert claimed, "JSON log lines with job_id and worker_id"
    assert all(e.get("job_id") and e.get("worker_id") for e in claimed)


# ---------------------------------------------------------------- 2. kill -9 a worker


async def test_killed_worker_job_is_rerun_by_the_other(
    deployment: Deployment, media: dict[str, Path]
) -> None:
    dep = deployment
    async with client_for(dep.base, dep.auth) as client:
        job = await submit(client, media["long"], segment_seconds=0.5, top_k=1)
        deadline = time.monotonic() + 60
        while True:
            state = (await client.get(f"/v1/jobs/{job['id']}")).json()
            if state["status"] == "running" and state["progress"] > 0:
                break
            assert time.monotonic() < deadline and state["status"] in ("queued", "running"), state
            await asyncio.sleep(0.05)
        with dep.db() as db:
            (holder,) = db.execute("SELECT worker_id FROM jobs WHERE id = %s", (job["id"],)).fetchone()  # type: ignore[misc]
        victim = next(w for w in dep.workers if f"-{w.pid}-" in holder)
        survivor = next(w for w in dep.workers if w is not victim)
        victim.signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()

        done = (await wait_final(client, [job["id"]], 90, dep.logs))[job["id"]]
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2, "the killed attempt counts, the re-run succeeds"
    with dep.db() as db:
        (worker_id, attempts) = db.execute(  # type: ignore[misc]
            "SELECT worker_id, attempts FROM jobs WHERE id = %s", (job["id"],)
        ).fetchone()
        assert f"-{survivor.pid}-" in worker_id and attempts == 2
        assert db.execute("SELECT count(*) FROM results WHERE job_id = %s", (job["id"],)).fetchone() == (1,)
        if db.execute("SELECT to_regclass('partial_results')").fetchone() != (None,):
            leftovers = db.execute("SELECT count(*) FROM partial_results WHERE job_id = %s", (job["id"],))
            assert leftovers.fetchone() == (0,), "partial results of the killed attempt are gone"
    print(f"kill -9: re-run finished {time.monotonic() - killed_at:.1f}s after the kill")
    # Back to two workers for the next scenarios.
    index = dep.workers.index(victim)
    dep.workers[index] = dep.new_worker(index)
    wait_http_ok(f"http://127.0.0.1:{dep.workers[index].port}/metrics", dep.all_procs())


# ---------------------------------------------------------------- 3. SIGTERM an API replica


async def test_sigterm_replica_during_traffic_no_5xx(deployment: Deployment, media: dict[str, Path]) -> None:
    dep = deployment
    statuses: list[int] = []
    errors: list[str] = []
    submitted: list[str] = []
    stop = asyncio.Event()

    async def traffic(client: httpx.AsyncClient, n: int) -> None:
        while not stop.is_set():
            try:
                if n % 2 == 0:
                    with media["small"].open("rb") as fh:
                        response = await client.post(
                            "/v1/jobs", files={"file": ("clip.mp4", fh)}, data={"segment_seconds": "1"}
                        )
                    if response.status_code == 202:
                        submitted.append(response.json()["id"])
                else:
                    target = f"/v1/jobs/{submitted[-1]}" if submitted else "/v1/jobs?limit=5"
                    response = await client.get(target)
                statuses.append(response.status_code)
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
            await asyncio.sleep(0.15 if n % 2 == 0 else 0.02)

    replica = dep.apis[0]
    async with client_for(dep.base, dep.auth) as client:
        tasks = [asyncio.create_task(traffic(client, n)) for n in range(6)]
        await asyncio.sleep(1.5)
        before = len(statuses)
        replica.signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(replica.wait, 60)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)
        during = len(statuses) - before
        assert exit_code == 0, replica.tail()
        fives = [s for s in statuses if s >= 500]
        assert not errors and not fives, (
            f"clients saw {fives[:10]} / {errors[:5]}\n{dep.nginx.tail() if dep.nginx else ''}"
        )
        assert during > 20, "traffic kept flowing while the replica drained"
        assert "draining for" in replica.log_path.read_text()
        done = await wait_final(client, submitted, 90, dep.logs)
        assert all(j["status"] == "succeeded" for j in done.values())
    print(f"SIGTERM: {len(statuses)} requests, {during} after the signal, none 5xx; {len(submitted)} jobs")
    dep.apis[0] = dep.new_api(0, port=replica.port)
    wait_http_ok(f"{dep.replica_url(0)}/readyz", dep.all_procs())


# ---------------------------------------------------------------- 4. restart PostgreSQL


def _pg_restart_command() -> list[str] | None:
    ctl = shutil.which("pg_ctlcluster")
    lsc = shutil.which("pg_lsclusters")
    if not ctl or not lsc or os.geteuid() != 0:
        return None
    port = re.search(r"port=(\d+)", os.environ.get("VAS_TEST_PG_DSN", "port=5432"))
    for line in subprocess.run([lsc, "--no-header"], capture_output=True, text=True).stdout.splitlines():
        version, name, cluster_port, status, *_ = line.split()
        if port and cluster_port == port.group(1) and status == "online":
            return [ctl, "--skip-systemctl-redirect", "--mode=fast", version, name, "restart"]
    return None


async def test_postgres_restart_mid_run_loses_nothing(deployment: Deployment, media: dict[str, Path]) -> None:
    command = _pg_restart_command()
    if command is None:
        skip_or_fail("needs root and pg_ctlcluster for the local PostgreSQL cluster")
    dep = deployment
    with dep.db() as db:
        (booted,) = db.execute("SELECT pg_postmaster_start_time()").fetchone()  # type: ignore[misc]
    seen: list[int] = []
    readiness: list[int] = []
    keys: list[str] = []
    jobs: list[dict[str, Any]] = []

    async def submitter(client: httpx.AsyncClient, until: asyncio.Event) -> None:
        while not until.is_set():
            key = f"pg-restart-{uuid.uuid4().hex[:12]}"
            keys.append(key)
            jobs.append(
                await submit(client, media["small"], key=key, retry_503=True, seen=seen, segment_seconds=0.5)
            )
            await asyncio.sleep(0.1)

    async def probe(client: httpx.AsyncClient, until: asyncio.Event) -> None:
        while not until.is_set():
            response = await client.get("/readyz")
            readiness.append(response.status_code)
            if response.status_code == 503:
                assert response.headers.get("retry-after"), response.text
            await asyncio.sleep(0.05)

    async with client_for(dep.base, dep.auth) as client:
        # Work queued and running when the database goes away, more arriving while it is away.
        for _ in range(6):
            key = f"pg-restart-{uuid.uuid4().hex[:12]}"
            keys.append(key)
            jobs.append(await submit(client, media["small"], key=key, segment_seconds=0.5))
        done_restarting = asyncio.Event()
        tasks = [asyncio.create_task(submitter(client, done_restarting)) for _ in range(2)]
        tasks.append(asyncio.create_task(probe(client, done_restarting)))
        await asyncio.sleep(0.5)
        result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)
        await asyncio.sleep(1.5)
        done_restarting.set()
        await asyncio.gather(*tasks)
        assert result.returncode == 0, result.stderr
        assert 503 in readiness, "readiness answered 503 while the database was away"
        assert all(s in (200, 503) for s in readiness), readiness
        ids = [j["id"] for j in jobs]
        assert len(set(ids)) == len(keys)
        done = await wait_final(client, ids, 120, dep.logs)
        failed = [j for j in done.values() if j["status"] != "succeeded"]
        assert not failed, failed
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
    with dep.db() as db:
        (rebooted,) = db.execute("SELECT pg_postmaster_start_time()").fetchone()  # type: ignore[misc]
        assert rebooted > booted, "PostgreSQL really restarted"
        rows = db.execute(
            "SELECT idempotency_key FROM jobs WHERE idempotency_key LIKE 'pg-restart-%'"
        ).fetchall()
        assert sorted(k for (k,) in rows) == sorted(keys), "one job per accepted key, none lost"
        stuck = db.execute(
            "SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < extract(epoch from now())"
        ).fetchall()
        assert not stuck, "no job left running past its lease"
        orphans = db.execute(
            "SELECT count(*) FROM jobs j LEFT JOIN results r ON r.job_id = j.id "
            "WHERE j.status = 'succeeded' AND r.job_id IS NULL"
        )
        assert orphans.fetchone() == (0,)
    for proc in dep.all_procs():
        assert proc.alive(), f"{proc.name} died across the database restart\n{proc.tail()}"
    down = readiness.count(503)
    print(
        f"PostgreSQL restart: {len(keys)} jobs, {seen.count(503)} submissions answered 503 and retried, "
        f"{down}/{len(readiness)} readiness probes 503"
    )
