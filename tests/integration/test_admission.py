"""Jobs the worker would certainly fail are refused at submission (422), and nothing is kept:
options that cut the video into too many (or denormal) segments, a model without weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.analysis.loader import ModelLoader
from app.api.app import create_app
from app.errors import WeightsMissing
from tests.integration.conftest import Service, assert_problem, close_app, make_settings, submit

pytestmark = pytest.mark.anyio


async def assert_nothing_kept(service: Service) -> None:
    assert service.stored_files() == []
    assert (await service.client.get("/v1/jobs")).json()["items"] == []


@pytest.mark.parametrize("field", ["segment_seconds", "stride_seconds"])
@pytest.mark.parametrize("value", ["5e-324", "1e-300", "0.00001"])
async def test_a_denormal_or_tiny_segment_is_refused(
    service: Service, short_clip: Path, field: str, value: str
) -> None:
    """Issue 12 item 1: these were accepted (202) and crashed the worker with OverflowError."""
    body = assert_problem(await submit(service, short_clip, **{field: value}), 422, "invalid_options")
    assert field in body["detail"] and "greater than or equal to 0.01" in body["detail"]
    await assert_nothing_kept(service)


@pytest.mark.settings(max_segments_per_job=10)
async def test_more_segments_than_the_limit_are_refused_with_the_count(
    service: Service, short_clip: Path
) -> None:
    """Issue 12 item 2: the count comes from the probed duration (4 s) and the options."""
    body = assert_problem(await submit(service, short_clip, segment_seconds=0.25), 422, "invalid_options")
    assert "makes 16 segments; at most 10 per job" in body["detail"] and body["limit"] == 10
    over = await submit(service, short_clip, segment_seconds=1.0, stride_seconds=0.25)
    assert "makes 16 segments" in assert_problem(over, 422, "invalid_options")["detail"]
    await assert_nothing_kept(service)
    for fields in ({"segment_seconds": 0.4}, {"segment_seconds": 0.25, "start": 1.0, "end": 3.5}):
        assert (await submit(service, short_clip, **fields)).status_code == 202, fields


async def test_a_model_without_weights_is_refused_with_the_workers_message(
    service: Service, short_clip: Path
) -> None:
    """Issue 12 item 8: accepted with 202 and failed seconds later, although the catalog knew."""
    body = assert_problem(await submit(service, short_clip, model="x3d_s"), 422, "weights_missing")
    spec = service.app.state.catalog.get("x3d_s")
    with pytest.raises(WeightsMissing) as worker_says:
        ModelLoader(service.settings.models_dir).weights_path(spec)
    assert body["detail"] == worker_says.value.detail
    assert "X3D_S.pyth" in body["detail"] and "`python -m app models fetch x3d_s`" in body["detail"]
    assert body["file"] == "X3D_S.pyth"
    await assert_nothing_kept(service)


@pytest.mark.settings(auto_fetch=True)
async def test_a_model_the_workers_may_fetch_is_accepted(service: Service, short_clip: Path) -> None:
    assert (await submit(service, short_clip, model="x3d_s")).status_code == 202


async def test_the_check_reads_the_apis_models_dir_and_the_worker_still_fails_a_file_gone_since(
    tmp_path: Path, zoo_models_dir: Path, short_clip: Path
) -> None:
    import httpx

    from tests.integration.conftest import app_worker

    models = tmp_path / "models"
    models.mkdir()
    settings = make_settings(tmp_path, models)
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            service = Service(settings, app, client, lambda: None)  # type: ignore[arg-type,return-value]
            assert_problem(await submit(service, short_clip), 422, "weights_missing")
            shutil.copy(zoo_models_dir / "X3D_XS.pyth", models / "X3D_XS.pyth")
            accepted = await submit(service, short_clip)
            assert accepted.status_code == 202, accepted.text
            (models / "X3D_XS.pyth").unlink()  # removed between submission and the worker
            worker = app_worker(app)
            assert worker.run_once()
            job = (await client.get(f"/v1/jobs/{accepted.json()['id']}")).json()
    finally:
        close_app(app)
    assert job["status"] == "failed" and job["attempts"] == 1, "not retried"
    assert job["error"]["code"] == "weights_missing" and str(models) in job["error"]["message"]
