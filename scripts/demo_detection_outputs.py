"""What ``scripts/train_demo_detection.py`` writes: weights (locked by sha256), the labels file,
both manifest entries and the pair's section of ``models/DEMO_MODEL.md``.

Kept apart from the training so that the entries (what the catalog reads) are in one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import demo_detection_data as data
import torch
from demo_training import write_entries

from app.analysis.lockfile import record_sha256
from app.demo.detection_models import ActionHead, StandInDetector

DETECTOR = "demo_person_detector"
HEAD = "demo_actions_detection"
MARKER = f"<!-- {HEAD} -->"
"""DEMO_MODEL.md: the pair's section starts here (the other scripts keep what is above)."""
DETECTOR_KWARGS: dict[str, Any] = {"short_side": 64, "width": 32, "max_objects": 10}
HEAD_KWARGS: dict[str, Any] = {
    "num_classes": len(data.CLASSES),
    "widths": [12, 24, 32, 48],
    "resolution": 7,
    "hidden": 128,
    "context": 1.0,
    "min_window": 0.5,
}


def detector_entry() -> dict[str, Any]:
    return {
        "name": DETECTOR,
        "task": "person_detector",
        "builder": "app.demo.detection_models.demo_person_detector",
        "builder_kwargs": DETECTOR_KWARGS,
        "weights": f"{DETECTOR}.pth",
        "checkpoint_key": None,
        "labelset": "person",
        "demo": True,
        "description": (
            "Demo person stand-in detector (scripts/train_demo_detection.py): finds the synthetic "
            "scenes' objects on single frames; NOT a person detector for real video."
        ),
    }


def head_entry() -> dict[str, Any]:
    return {
        "name": HEAD,
        "task": "detection",
        "person_detector": DETECTOR,
        "builder": "app.demo.detection_models.demo_action_detector",
        "builder_kwargs": HEAD_KWARGS,
        "weights": f"{HEAD}.pyth",
        "checkpoint_key": "model_state",
        "labels": f"{HEAD}_labels.json",
        "labelset": "demo-actions",
        "frames": data.FRAMES,
        "sampling_rate": data.SAMPLING_RATE,
        "short_side": data.SHORT_SIDE,
        "crop": data.SHORT_SIDE,
        "mean": [0.45, 0.45, 0.45],
        "std": [0.225, 0.225, 0.225],
        "output": "logits",
        "channel_order": "rgb",
        "default_min_score": 0.3,
        "demo": True,
        "description": (
            "Demo action detection head (scripts/train_demo_detection.py): each synthetic object's own "
            "demo action, one sigmoid per action; NOT AVA actions."
        ),
    }


def write_manifest(out: Path) -> None:
    """Add or replace the pair's entries in <out>/manifest.json, keeping every other entry."""
    write_entries(out, [detector_entry(), head_entry()])


def write_report(out: Path, facts: dict[str, Any], sizes: dict[str, int]) -> None:
    """The pair's section of DEMO_MODEL.md (replaced on retraining; the rest is kept)."""
    path = out / "DEMO_MODEL.md"
    head = path.read_text().split(MARKER)[0].rstrip() + "\n\n" if path.exists() else ""
    rows = "\n".join(
        f"| {c} | {r}/{n} | {100 * r / max(n, 1):.1f} % |" for c, (r, n) in facts["per_class"].items()
    )
    head_time = (
        "kept from the previous run (`--keep-head`; not in this total)"
        if facts["head_s"] is None
        else f"{facts['head_s']:.0f} s"
    )
    text = f"""{MARKER}
# Demo detection pair `{DETECTOR}` + `{HEAD}` (spatio-temporal known answers)

Two or three objects act differently at the same time, each with a box known at every frame
(`app/demo/detection_scene.py`: `write_detection_video(path, [[("moving right", 3.0), ("static",
3.0)], [("flashing", 6.0)]], rotation=90)` returns the scene, whose `boxes(t)` and `label(i, t)`
are the answers). Objects stay wholly on stage and never overlap; `flashing` dims an object to
half instead of hiding it, so a one-frame detector can still find it. **Neither model knows people
or AVA actions.**

- `{DETECTOR}` (`"task": "person_detector"`): `app.demo.detection_models.demo_person_detector`, a
  tiny CenterNet (centre heatmap, log box size, sub-cell offset at 1/4 of the frame scaled to a
  64-pixel short side), {sizes["detector_params"]:,} parameters, `{DETECTOR}.pth`
  ({sizes["detector_bytes"]:,} bytes, a bare state dict). Score: the log heat mass of the
  peak's 3x3 cells Platt-scaled, `sigmoid({facts["score_scale"]:.3f} * log(mass) + {facts["score_shift"]:.3f})`, fitted
  on {facts["cal"]} held-out scenes: the chance that a peak is an object, which is what the
  default `person_min_score` 0.8 asks of a Faster R-CNN's scores.
- `{HEAD}` (`"task": "detection"`, `"person_detector": "{DETECTOR}"`):
  `app.demo.detection_models.demo_action_detector`, a 4-layer 3D CNN (spatial stride 4, pooled to
  two time steps) and RoIAlign 7x7 on each box widened to at least half the short side,
  {sizes["head_params"]:,} parameters, `{HEAD}.pyth` ({sizes["head_bytes"]:,} bytes,
  `{{"model_state": ...}}`). Clip: 8 frames x 4 (1.07 s) centred on the keyframe, short side 64,
  no crop, mean/std 0.45/0.225; output logits, a sigmoid per label (`default_min_score` 0.3).
  Labels (`{HEAD}_labels.json`, class-id order): {", ".join(f"{i}: `{c}`" for i, c in enumerate(data.CLASSES))}.
- Training (`scripts/train_demo_detection.py`, CPU, 1 thread, `nice -n 10`): {facts["train"]:,}
  scenes of 1-3 objects (mostly 2-3), one action each; detector {facts["det_steps"]} steps
  (CenterNet focal + L1 losses), head {facts["head_steps"]} steps (BCE on true boxes jittered
  by 10 %); flips (and time reversal for the head) with their label changes; EMA weights.
  Wall time on the shared 2-vCPU machine: rendering {facts["render_s"]:.0f} s, detector
  {facts["det_s"]:.0f} s, head {head_time}, total {facts["total_s"]:.0f} s.

## Validation ({facts["images"]} held-out scenes, {facts["objects"]} objects, every clip through libx264)

Detector recall at IoU >= 0.5: **{100 * facts["recall_08"]:.1f} %** at score >= 0.8 (the
default `person_min_score`), {100 * facts["recall_05"]:.1f} % at >= 0.5; false boxes at >= 0.8:
{facts["false_08_per_image"]:.2f} per frame. Action accuracy given the true boxes (top label):
**{100 * facts["action_accuracy"]:.1f} %**.

| action | right | accuracy |
|---|---|---|
{rows}

`tests/known_answer/test_demo_detection.py` checks scripted videos through HTTP and the CLI, with
keyframes every 0.25 s: the pipeline's tracker links boxes of consecutive keyframes that overlap
(IoU >= 0.3), and these objects move more than their own width in a second (at AVA's one keyframe
a second a moving object's track breaks into pieces; people are large for their speed).

```
nice -n 10 python scripts/train_demo_detection.py --out models --processes 2
```
"""
    path.write_text(head + text)


def write_outputs(out: Path, det: StandInDetector, head: ActionHead, facts: dict[str, Any]) -> None:
    det_path, head_path = out / f"{DETECTOR}.pth", out / f"{HEAD}.pyth"
    torch.save(det.state_dict(), det_path)
    torch.save({"model_state": head.state_dict()}, head_path)
    for path in (det_path, head_path):
        print(f"wrote {path} (sha256 {record_sha256(out, path.name)})")
    (out / f"{HEAD}_labels.json").write_text(json.dumps(list(data.CLASSES)) + "\n")
    write_manifest(out)
    sizes = {
        "detector_params": sum(p.numel() for p in det.parameters()),
        "head_params": sum(p.numel() for p in head.parameters()),
        "detector_bytes": det_path.stat().st_size,
        "head_bytes": head_path.stat().st_size,
    }
    write_report(out, facts, sizes)
