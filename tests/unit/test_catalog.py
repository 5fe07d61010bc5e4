"""The catalog: built-in zoo entries, the operator manifest, describe(), and staying torch-free."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.analysis.catalog import ModelSpec, default_segment_seconds, load_catalog, read_labels
from app.analysis.lockfile import read_lock, record_sha256
from app.errors import ManifestInvalid, UnknownModel

ZOO_PREFIX = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
K400 = {
    "x3d_xs", "x3d_s", "x3d_m", "x3d_l", "slow_r50", "c2d_r50", "i3d_r50", "slowfast_r50", "slowfast_r101",
    "slowfast_16x8_r101_50_50", "csn_r101", "r2plus1d_r50", "mvit_base_16x4", "mvit_base_32x3",
    "efficient_x3d_xs", "efficient_x3d_s", "slow_r50_4x16", "slowfast_r50_4x16",
}  # fmt: skip
OTHER_DATASETS = {"slow_r50_ssv2", "slowfast_r50_ssv2", "slow_r50_charades", "slowfast_r50_charades"}
OTHER_DATASETS |= {"slow_r50_detection", "slowfast_r50_detection", "fasterrcnn_resnet50_fpn_coco"}  # AVA
PROBABILITY_MODELS = {"x3d_xs", "x3d_s", "x3d_m", "x3d_l", "r2plus1d_r50"}

DEMO_ENTRY = {
    "name": "demo_motion",
    "builder": "pytorchvideo.models.x3d.create_x3d",
    "builder_kwargs": {
        "input_clip_length": 8,
        "input_crop_size": 112,
        "model_num_class": 3,
        "depth_factor": 1.0,
    },
    "weights": "demo_motion.pyth",
    "checkpoint_key": "model_state",
    "labels": "demo_motion_labels.json",
    "labelset": "demo-motion",
    "frames": 8,
    "sampling_rate": 4,
    "short_side": 112,
    "crop": 112,
    "mean": [0.45, 0.45, 0.45],
    "std": [0.225, 0.225, 0.225],
    "output": "logits",
    "channel_order": "rgb",
    "description": "synthetic motion demo",
    "demo": True,
}


def write_manifest(models: Path, *entries: dict[str, object]) -> None:
    (models / "manifest.json").write_text(json.dumps({"models": list(entries)}))


def test_every_kinetics_zoo_model_is_listed_and_valid(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    assert set(catalog.names()) == K400 | OTHER_DATASETS  # the others: test_catalog_datasets.py
    for name in K400:
        spec = catalog.get(name)
        assert spec.builder.startswith("pytorchvideo.models.")
        assert spec.url is not None and spec.url.startswith(ZOO_PREFIX) and spec.url.endswith(spec.weights)
        assert spec.crop <= spec.short_side
        assert spec.mean == (0.45, 0.45, 0.45) and spec.std == (0.225, 0.225, 0.225)
        assert spec.channel_order == "rgb" and spec.labelset == "kinetics400"
        assert len(read_labels(spec)) == 400
        assert spec.output == ("probabilities" if name in PROBABILITY_MODELS else "logits")
        assert spec.checkpoint_key == (None if name.startswith("efficient") else "model_state")
        assert (spec.alpha is not None) == name.startswith("slowfast")
        assert spec.top1 and spec.top5 and spec.params_m
    assert catalog.get("mvit_base_16x4").crop_geometry(1) == (256, 224)
    assert catalog.get("mvit_base_16x4").crop_geometry(3) == (224, 224)
    assert catalog.get("x3d_s").crop_geometry(1) == (182, 182)  # the Torch Hub tutorial's
    assert catalog.get("x3d_s").crop_geometry(3) == (182, 182)
    assert catalog.get("slowfast_r50_4x16").alpha == 8


def test_clip_duration_and_default_segment(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    assert catalog.get("x3d_xs").clip_seconds == pytest.approx(1.6)
    assert catalog.get("slowfast_r50").clip_seconds == pytest.approx(32 * 2 / 30)
    assert [
        default_segment_seconds(catalog.get(n)) for n in ("x3d_xs", "x3d_s", "slow_r50", "mvit_base_32x3")
    ] == [
        1.5,
        2.5,
        2.0,
        3.0,
    ]
    tiny = ModelSpec(
        name="t",
        builder="pytorchvideo.models.x",
        weights="t",
        labels_path=tmp_path,
        frames=2,
        sampling_rate=2,
    )
    assert tiny.default_segment_seconds == 1.0


def test_unknown_model_lists_the_models_with_weights_first(tmp_path: Path) -> None:
    """Issue 12: the error named six models that could not run and left out the one that could."""
    (tmp_path / "SLOW_8x8_R50.pyth").write_bytes(b"weights")
    with pytest.raises(UnknownModel) as info:
        load_catalog(tmp_path).get("x3d_ss")
    detail = info.value.detail
    assert info.value.code == "unknown_model"
    ready, waiting = detail.split("; models without weights")
    assert ready.endswith(f"models with weights in {tmp_path}: slow_r50")
    assert "did you mean 'x3d_s'?" in ready
    assert "models fetch NAME" in waiting
    assert all(name in waiting for name in K400 - {"slow_r50"})  # every other model, not the first six
    with pytest.raises(UnknownModel, match=re.escape(f"no model has weights in {tmp_path / 'empty'} yet")):
        load_catalog(tmp_path / "empty").get("nope")


def test_manifest_adds_the_demo_entry(tmp_path: Path) -> None:
    (tmp_path / "demo_motion_labels.json").write_text(json.dumps(["still", "left", "right"]))
    write_manifest(tmp_path, DEMO_ENTRY)
    catalog = load_catalog(tmp_path)
    spec = catalog.get("demo_motion")
    assert spec.source == "manifest" and spec.demo and spec.labelset == "demo-motion"
    assert read_labels(spec) == ("still", "left", "right")
    assert spec.builder_kwargs["input_crop_size"] == 112
    assert spec.url is None and spec.weights == "demo_motion.pyth"
    assert catalog.names()[-1] == "demo_motion" and "x3d_s" in catalog.names()


def test_manifest_overrides_a_builtin_field_by_field(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"name": "x3d_s", "crop": 182, "description": "3-crop-size single view"})
    spec = load_catalog(tmp_path).get("x3d_s")
    assert spec.crop == 182 and spec.description == "3-crop-size single view"
    assert spec.frames == 13 and spec.weights == "X3D_S.pyth" and spec.output == "probabilities"
    assert len(read_labels(spec)) == 400


def test_omitted_fields_get_defaults(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"name": "mine", "builder": "pytorchvideo.models.hub.slow_r50"})
    spec = load_catalog(tmp_path).get("mine")
    assert (spec.weights, spec.checkpoint_key, spec.output, spec.labelset) == (
        "mine.pyth",
        "model_state",
        "logits",
        "kinetics400",
    )


GOOD_ENTRY = {"name": "mine", "builder": "pytorchvideo.models.hub.slow_r50"}
BAD_ENTRIES = [
    ({"name": "evil", "builder": "os.system"}, "evil", "builder"),
    ({"name": "evil", "builder": "pytorchvideo.models.__builtins__.eval"}, "evil", "builder"),
    ({"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "weights": "../x.pyth"}, "x", "weights"),
    (
        {"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "labels": "missing.json"},
        "x",
        "missing.json",
    ),
    ({"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "frmaes": 8}, "x", "frmaes"),
    ({"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "crop": 300}, "x", "exceeds"),
    ({"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "labelset": "other"}, "x", "labels"),
    ({"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "output": "softmax"}, "x", "output"),
    ({"name": "nobuilder"}, "nobuilder", "builder: Field required"),
    ({"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "frames": "eight"}, "x", "frames"),
    ({"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "frames": "8"}, "x", "frames"),
    ({"name": "x", "builder": "pytorchvideo.models.hub.x3d_s", "mean": [0.4, 0.4]}, "x", "mean"),
    ({"name": "typo", "builder": "pytorchvideo.models.hub.x3d_sss"}, "typo", "does not exist"),
    ({"name": "typo", "builder": "pytorchvideo.models.nomodule.f"}, "typo", "does not exist"),
    ({"builder": "pytorchvideo.models.hub.x3d_s"}, "entry #1", "name: Field required"),
    (["not", "an", "object"], "entry #1", "not a JSON object"),
]


@pytest.mark.parametrize(("entry", "name", "match"), BAD_ENTRIES)
def test_a_bad_manifest_entry_is_skipped_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, entry: object, name: str, match: str
) -> None:
    """Issue 12 item 13: one bad entry made the whole catalog (and `models list`) fail."""
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [entry, GOOD_ENTRY]}))
    with caplog.at_level("WARNING", logger="app.analysis.catalog"):
        catalog = load_catalog(tmp_path)
    assert [s.name for s in catalog.skipped] == [name]
    assert match in catalog.skipped[0].reason
    assert "mine" in catalog.names() and set(catalog.names()) >= K400
    assert [r.getMessage() for r in caplog.records] == [
        f"model {name!r} in {tmp_path / 'manifest.json'} skipped: {catalog.skipped[0].reason}"
    ]


def test_a_malformed_labels_file_skips_only_its_entry(tmp_path: Path) -> None:
    (tmp_path / "mine_labels.json").write_text('{"0": "a"}')
    write_manifest(tmp_path, {**GOOD_ENTRY, "labels": "mine_labels.json", "labelset": "mine"})
    catalog = load_catalog(tmp_path)
    assert [(s.name, "non-empty JSON array" in s.reason) for s in catalog.skipped] == [("mine", True)]


def test_a_skipped_entry_is_logged_once_per_manifest_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_manifest(tmp_path, {"name": "once", "builder": "os.system"})
    with caplog.at_level("WARNING", logger="app.analysis.catalog"):
        load_catalog(tmp_path)
        load_catalog(tmp_path)  # workers read the catalog per job: one warning, not one per job
        assert len(caplog.records) == 1
        write_manifest(tmp_path, {"name": "once", "builder": "os.system"}, {"name": "twice"})
        os.utime(tmp_path / "manifest.json", ns=(0, 10**18))
        assert {s.name for s in load_catalog(tmp_path).skipped} == {"once", "twice"}
    assert len(caplog.records) == 3


def test_a_bad_override_leaves_the_builtin_model_as_it_was(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"name": "x3d_s", "crop": 999}, {"name": "x3d_m", "crop": 200})
    catalog = load_catalog(tmp_path)
    assert [s.name for s in catalog.skipped] == ["x3d_s"]
    assert catalog.get("x3d_s").crop == 182 and catalog.get("x3d_s").source == "builtin"
    assert catalog.get("x3d_m").crop == 200


def test_models_list_shows_a_skipped_entry_and_still_lists(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"name": "broken", "builder": "pytorchvideo.models.hub.x3d_s", "frames": -1})
    env = {**os.environ, "VAS_MODELS_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "app", "models", "list"], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "manifest entry 'broken' skipped: model 'broken' in manifest.json: frames:" in out.stderr
    assert "x3d_s" in out.stdout and "broken" not in out.stdout


def test_malformed_manifest_file(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestInvalid, match=r"manifest\.json"):
        load_catalog(tmp_path)
    (tmp_path / "manifest.json").write_text('{"models": {"name": "x"}}')
    with pytest.raises(ManifestInvalid, match="models"):
        load_catalog(tmp_path)


def test_describe_is_json_with_weights_status_and_hash(tmp_path: Path) -> None:
    (tmp_path / "X3D_S.pyth").write_bytes(b"weights")
    digest = record_sha256(tmp_path, "X3D_S.pyth")
    assert read_lock(tmp_path) == {"X3D_S.pyth": digest}
    items = {item["name"]: item for item in json.loads(json.dumps(load_catalog(tmp_path).describe()))}
    assert items["x3d_s"]["weights_present"] is True and items["x3d_s"]["sha256"] == digest
    assert items["x3d_m"]["weights_present"] is False and items["x3d_m"]["sha256"] is None
    for key in (
        "frames",
        "sampling_rate",
        "short_side",
        "crop",
        "mean",
        "std",
        "url",
        "top1",
        "clip_seconds",
        "output",
    ):
        assert key in items["x3d_s"]
    assert "labels_path" not in items["x3d_s"]


def test_importing_catalog_pulls_in_neither_torch_nor_av() -> None:
    code = (
        "import sys, pathlib, app.analysis.catalog as c; c.load_catalog(pathlib.Path('.')).describe();"
        "print(','.join(m for m in ('torch', 'av', 'pytorchvideo', 'torchvision', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_malformed_lock_file_does_not_break_the_listing(tmp_path: Path) -> None:
    (tmp_path / "weights.lock.json").write_text("[1, 2]")
    with pytest.raises(ManifestInvalid, match=r"weights\.lock\.json"):
        read_lock(tmp_path)
    assert all(item["sha256"] is None for item in load_catalog(tmp_path).describe())
