"""``models add`` against a running service: the worked example of docs/MODELS.md, run as
written, and a live API + embedded worker that list and run the new model without a restart.
/v1/models over real HTTP shows every model's task, label set, view combination and default
``min_score``."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch

from app.api.app import create_app
from tests.conftest import REPO
from tests.integration.conftest import make_settings
from tests.live import serving
from tests.media import write_video

MODELS_MD = REPO / "docs" / "MODELS.md"


def doc_block(name: str) -> str:
    found = re.search(
        rf"<!-- example: {re.escape(name)} -->\n```\w+\n(.*?)\n```", MODELS_MD.read_text(), re.S
    )
    assert found, f"MODELS.md has no example {name}"
    return found.group(1)


def vas(argv: list[str], cwd: Path, models: Path) -> subprocess.CompletedProcess[str]:
    """A second process, as an operator's shell would run it (``.venv/bin/vas`` = ``-m app``)."""
    env = {**os.environ, "VAS_MODELS_DIR": str(models), "VAS_DATA_DIR": str(cwd / "cli-data")}
    return subprocess.run(
        [sys.executable, "-m", "app", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_worked_example_runs_on_a_live_service_without_a_restart(tmp_path: Path) -> None:
    from pytorchvideo.models.hub import x3d_s

    models = tmp_path / "models"
    models.mkdir()
    labels = doc_block("kitchen_labels.txt").splitlines()
    (tmp_path / "kitchen_labels.txt").write_text("\n".join(labels) + "\n")
    torch.manual_seed(0)
    torch.save(
        {"model_state": x3d_s(model_num_class=len(labels)).state_dict()}, tmp_path / "kitchen_x3d_s.pyth"
    )
    write_video(tmp_path / "kitchen.mp4", seconds=6.0, width=160, height=120)
    add_line, analyze_line = doc_block("models-add").splitlines()

    settings = make_settings(tmp_path, models, embedded_worker=True, default_model="x3d_xs")
    with serving(create_app(settings)) as base, httpx.Client(base_url=base, timeout=30) as client:
        listed = client.get("/v1/models").json()["items"]
        assert "kitchen_x3d_s" not in {m["name"] for m in listed}
        for item in listed:
            assert {"task", "labelset", "view_combine", "min_score", "default_min_score"} <= set(item)
        charades = next(m for m in listed if m["name"] == "slowfast_r50_charades")
        assert (charades["task"], charades["min_score"], charades["view_combine"]) == (
            "multilabel",
            0.5,
            "max",
        )
        assert (charades["labelset"], charades["mAP"], charades["channel_order"]) == (
            "charades",
            37.24,
            "bgr",
        )
        ssv2 = next(m for m in listed if m["name"] == "slow_r50_ssv2")
        assert (ssv2["task"], ssv2["min_score"], ssv2["labelset"]) == ("classification", 0.0, "ssv2")

        added = vas(shlex.split(add_line)[1:], tmp_path, models)  # drop ".venv/bin/vas"
        assert added.returncode == 0, added.stderr
        entry = json.loads(added.stdout)
        assert entry["name"] == "kitchen_x3d_s" and entry["builder_kwargs"] == {"model_num_class": 5}
        assert (entry["frames"], entry["sampling_rate"], entry["crop"]) == (13, 6, 182)

        listed = {m["name"]: m for m in client.get("/v1/models").json()["items"]}
        assert listed["kitchen_x3d_s"]["weights_present"] is True
        assert listed["kitchen_x3d_s"]["sha256"] == entry["sha256"]
        with (tmp_path / "kitchen.mp4").open("rb") as fh:
            response = client.post(
                "/v1/jobs", files={"file": ("kitchen.mp4", fh, "video/mp4")}, data={"model": "kitchen_x3d_s"}
            )
        assert response.status_code == 202, response.text
        job_url = f"/v1/jobs/{response.json()['id']}"
        deadline = time.monotonic() + 240
        while (job := client.get(job_url).json())["status"] not in {"succeeded", "failed"}:
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["status"] == "succeeded", job
        served = client.get(f"{job_url}/results").json()

    assert served["model"] == "kitchen_x3d_s" and served["labelset"] == "kitchen_x3d_s"
    assert served["segments"] and all(
        {label["label"] for label in seg["labels"]} <= set(labels) for seg in served["segments"]
    )
    analyzed = vas(shlex.split(analyze_line)[1:], tmp_path, models)
    assert analyzed.returncode == 0, analyzed.stderr
    result = json.loads(analyzed.stdout)
    assert len(result["segments"]) == 3  # 6 s in segments of 2.5 s (X3D-S's 2.6 s clip, rounded)
    for segment in result["segments"]:
        assert sorted(label["label"] for label in segment["labels"]) == sorted(labels)
        assert all(labels[label["class_id"]] == label["label"] for label in segment["labels"])
