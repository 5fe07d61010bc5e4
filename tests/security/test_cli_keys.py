"""``python -m app keys create | list | revoke`` (in process), against the API on the same database."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.__main__ import main
from app.api.app import create_app
from tests.integration.conftest import close_app, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path / "data"


async def test_create_use_list_revoke(
    data_dir: Path, tmp_path: Path, zoo_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--tenant", "acme", "--name", "ci"]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("vas_") and "\n" not in secret, "the key alone on stdout"
    assert "cannot be shown again" in err

    assert main(["keys", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["tenant"] == "acme" and listed["name"] == "ci" and listed["revoked_at"] is None
    assert secret not in json.dumps(listed) and secret.startswith(listed["prefix"])

    app = create_app(make_settings(tmp_path, zoo_models_dir, data_dir=data_dir, auth_enabled=True))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            headers = {"Authorization": f"Bearer {secret}"}
            assert (await client.get("/v1/jobs", headers=headers)).status_code == 200
            assert main(["keys", "revoke", listed["id"]]) == 0
            assert "revoked key" in capsys.readouterr().out
            assert (await client.get("/v1/jobs", headers=headers)).status_code == 401
    finally:
        close_app(app)

    assert main(["keys", "list"]) == 0
    table = capsys.readouterr().out
    assert "acme" in table and listed["prefix"] in table and secret not in table


@pytest.mark.parametrize("tenant", ["../etc", "", "a b", "x" * 200])
def test_bad_tenant_names_are_usage_errors(
    data_dir: Path, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--tenant", tenant]) == 2
    assert "tenant" in capsys.readouterr().err


def test_revoking_an_unknown_key_fails(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "revoke", "nope"]) == 1
    assert "no key" in capsys.readouterr().err
