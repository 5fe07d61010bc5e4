"""Run one file through the real HTTP path and a real worker; describe how it ended."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import Service, assert_problem

FINAL = ("succeeded", "failed", "canceled")


async def outcome(service: Service, path: Path, *, name: str | None = None, **fields: str) -> str:
    """``"succeeded"``, ``"failed <code>"`` or ``"<4xx> <code>"``. Fails the test on any 5xx,
    a worker crash (an exception out of ``run_once``), a job left unfinished, an
    ``internal_error``, or a succeeded job without results."""
    with path.open("rb") as fh:
        response = await service.client.post(
            "/v1/jobs", files={"file": (name or path.name, fh, "video/mp4")}, data=fields
        )
    assert response.status_code < 500, response.text
    if response.status_code != 202:
        body = assert_problem(response, response.status_code, response.json().get("code", ""))
        assert list((service.settings.videos_dir / ".tmp").iterdir()) == []
        return f"{response.status_code} {body['code']}"
    job_id = response.json()["id"]
    worker = service.new_worker()
    for _ in range(service.settings.max_attempts):
        assert worker.run_once() is True
        job = (await service.client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in FINAL:
            break
    assert job["status"] in FINAL, job
    if job["status"] == "failed":
        code = job["error"]["code"]
        assert code not in ("internal_error", "attempts_exhausted"), job["error"]
        return f"failed {code}"
    results = await service.client.get(f"/v1/jobs/{job_id}/results")
    assert results.status_code == 200, results.text
    assert results.json()["segments"], "a succeeded job has at least one segment"
    return str(job["status"])
