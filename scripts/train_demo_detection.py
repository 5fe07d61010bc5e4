#!/usr/bin/env python
"""Train the demo detection pair: ``demo_person_detector`` and ``demo_actions_detection``.

Why it exists: spatio-temporal action detection (who does what, where) needs a known
answer offline, as ``demo_motion`` gives one for clip labels. Scenes come from
``app.demo.detection_scene`` (two or three objects acting differently at once, boxes known
at every frame); data from ``scripts/demo_detection_data.py``; the networks from
``app.demo.detection_models``.

* detector: CenterNet losses (penalty-reduced focal loss on a Gaussian centre heatmap, L1
  on log box size and sub-cell offset at the centres);
* action head: binary cross-entropy per action (the service scores detection labels with
  independent sigmoids, as AVA's), on the true keyframe boxes jittered by up to
  :data:`JITTER` of their size (the detector's boxes are not exact).

Random flips (and, for the head, time reversal) with the label changes they imply. One torch
thread; deterministic (seeded data and order).

Usage: nice -n 10 python scripts/train_demo_detection.py [--out models] [--processes 2]
Writes the two weight files (sha256 into weights.lock.json), the labels file, both manifest
entries and their section of DEMO_MODEL.md.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "scripts"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import demo_detection_data as data  # noqa: E402
import demo_detection_outputs as outputs  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import train_demo_model as base  # noqa: E402
from demo_detection_eval import calibrate, evaluate  # noqa: E402
from demo_training import ema_update, smoothed  # noqa: E402

from app.demo.detection_models import STRIDE, ActionHead, StandInDetector  # noqa: E402

TRAIN = 2400
VAL = 300
CAL = 200
"""Held-out scenes (their own seeds) the detector's scores are calibrated on."""
DET_STEPS, DET_BATCH, DET_LR = 4000, 32, 4e-3
HEAD_STEPS, HEAD_BATCH, HEAD_LR = 1200, 16, 3e-3
JITTER = 0.1
EMA_DECAY = 0.99
FLIP_W, FLIP_H, REVERSE_T, _ = base.label_permutations(data.CLASSES)


def _schedule(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm))),
    )


@torch.no_grad()
def recalibrate(model: torch.nn.Module, feed: Any, batches: int = 30) -> None:
    """Exact BatchNorm statistics of the EMA weights over ``batches`` calls of ``feed(model)``."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for _ in range(batches):
        feed(model)
    for bn in norms:
        bn.momentum = 0.1
    model.eval()


def _batches(groups: dict[tuple[int, int], list[int]], batch: int, gen: torch.Generator) -> Any:
    sizes = list(groups)
    weights = torch.tensor([len(groups[s]) for s in sizes], dtype=torch.float)
    while True:
        g = groups[sizes[int(torch.multinomial(weights, 1, generator=gen))]]
        pick = torch.randint(len(g), (min(batch, len(g)),), generator=gen)
        yield [g[int(i)] for i in pick]


def heat_targets(
    boxes: list[np.ndarray], h: int, w: int, image_h: int, image_w: int
) -> tuple[torch.Tensor, list[tuple[int, int, int, float, float, float, float]]]:
    """Gaussian centre heatmaps (B, 1, h, w) and (image, y, x, log w, log h, dx, dy) per object;
    cell ``j`` starts at input pixel ``STRIDE * j`` (what ``StandInDetector.decode`` assumes)."""
    heat = torch.zeros(len(boxes), 1, h, w)
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    centres = []
    sx, sy = image_w / STRIDE, image_h / STRIDE
    for b, bb in enumerate(boxes):
        for x1, y1, x2, y2 in bb.tolist():
            cx, cy = (x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy  # cells
            bw, bh = max((x2 - x1) * sx, 0.25), max((y2 - y1) * sy, 0.25)
            ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
            sigma = max(0.6, 0.3 * min(bw, bh))
            g = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
            heat[b, 0] = torch.maximum(heat[b, 0], g)
            centres.append((b, iy, ix, math.log(bw), math.log(bh), cx - ix, cy - iy))
    return heat, centres


def detector_loss(model: StandInDetector, x: torch.Tensor, boxes: list[np.ndarray]) -> torch.Tensor:
    logits, size, offset = model(x)
    heat, centres = heat_targets(boxes, logits.shape[-2], logits.shape[-1], x.shape[-2], x.shape[-1])
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat >= 0.999
    pos_loss = -(torch.log(p) * (1 - p) ** 2)[pos].sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - heat) ** 4)[~pos].sum()
    idx = torch.tensor([c[:3] for c in centres])
    want = torch.tensor([c[3:] for c in centres])
    got_size = size[idx[:, 0], :, idx[:, 1], idx[:, 2]]
    got_off = offset[idx[:, 0], :, idx[:, 1], idx[:, 2]]
    reg = F.l1_loss(got_size, want[:, :2], reduction="sum") + F.l1_loss(got_off, want[:, 2:], reduction="sum")
    return (pos_loss + neg_loss + reg) / max(1, len(centres))


def _flip_boxes(b: np.ndarray, width: bool) -> np.ndarray:
    out = b.copy()
    if width:
        out[:, 0], out[:, 2] = 1 - b[:, 2], 1 - b[:, 0]
    else:
        out[:, 1], out[:, 3] = 1 - b[:, 3], 1 - b[:, 1]
    return out


def detector_batch(
    examples: list[data.Example], idx: list[int], gen: torch.Generator
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Randomly flipped images (B, 3, h, w) of examples ``idx`` (one size) and their boxes."""
    xs, boxes = [], []
    for i in idx:
        image, b = examples[i].frame(int(torch.randint(data.FRAMES, (1,), generator=gen)))
        x = torch.from_numpy(image).float()
        flips = torch.rand(2, generator=gen) < 0.5
        if flips[0]:
            x, b = x.flip(-1), _flip_boxes(b, True)
        if flips[1]:
            x, b = x.flip(-2), _flip_boxes(b, False)
        xs.append(x)
        boxes.append(b)
    return torch.stack(xs), boxes


def train_detector(examples: list[data.Example], steps: int) -> tuple[StandInDetector, float]:
    gen = torch.Generator().manual_seed(data.SEED)
    model = StandInDetector()
    opt = torch.optim.AdamW(model.parameters(), lr=DET_LR, weight_decay=1e-4)
    sched, ema = _schedule(opt, steps), copy.deepcopy(model).requires_grad_(False)
    batches, started, run = _batches(data.by_size(examples), DET_BATCH, gen), time.monotonic(), 0.0
    for step in range(1, steps + 1):
        x, boxes = detector_batch(examples, next(batches), gen)
        model.train()
        loss = detector_loss(model, x, boxes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_update(ema, model, step, EMA_DECAY, buffers=True)
        run = smoothed(run, loss.item(), step)
        if step % 100 == 0 or step == steps:
            print(
                f"  detector {step:4d}/{steps}  loss {run:.3f}  {time.monotonic() - started:5.0f} s",
                flush=True,
            )
    recalibrate(ema, lambda m: m(detector_batch(examples, next(batches), gen)[0]))
    return ema, time.monotonic() - started


def _jitter(rois: np.ndarray, gen: torch.Generator) -> torch.Tensor:
    r = torch.from_numpy(rois).float()
    size = torch.stack([r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]] * 2, dim=1)
    return r + (torch.rand(r.shape, generator=gen) * 2 - 1) * JITTER * size


def head_batch(
    examples: list[data.Example], idx: list[int], gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented (clips, (N, 5) rois, labels) of examples ``idx`` (one clip size)."""
    clips, rois, labels = [], [], []
    for b, i in enumerate(idx):
        e = examples[i]
        x, r, y = torch.from_numpy(e.clip).float(), _jitter(e.rois, gen), torch.from_numpy(e.labels)
        w, h = x.shape[-1], x.shape[-2]
        flips = torch.rand(3, generator=gen) < 0.5
        if flips[0]:
            x, r, y = x.flip(-1), torch.stack([w - r[:, 2], r[:, 1], w - r[:, 0], r[:, 3]], 1), FLIP_W[y]
        if flips[1]:
            x, r, y = x.flip(-2), torch.stack([r[:, 0], h - r[:, 3], r[:, 2], h - r[:, 1]], 1), FLIP_H[y]
        if flips[2]:
            x, y = x.flip(-3), REVERSE_T[y]
        clips.append(x)
        rois.append(torch.cat([torch.full((len(r), 1), float(b)), r], 1))
        labels.append(y)
    return torch.stack(clips), torch.cat(rois), torch.cat(labels)


def train_head(examples: list[data.Example], steps: int) -> tuple[ActionHead, float]:
    gen = torch.Generator().manual_seed(data.SEED + 1)
    model = ActionHead(num_classes=len(data.CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=HEAD_LR, weight_decay=1e-4)
    sched, ema = _schedule(opt, steps), copy.deepcopy(model).requires_grad_(False)
    batches, started, run, acc = _batches(data.by_size(examples), HEAD_BATCH, gen), time.monotonic(), 0.0, 0.0
    for step in range(1, steps + 1):
        x, rois, y = head_batch(examples, next(batches), gen)
        model.train()
        logits = model(x, rois)
        loss = F.binary_cross_entropy_with_logits(logits, F.one_hot(y, len(data.CLASSES)).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_update(ema, model, step, EMA_DECAY, buffers=True)
        run = smoothed(run, loss.item(), step)
        acc = 0.9 * acc + 0.1 * float((logits.argmax(1) == y).float().mean()) if step > 1 else 0.0
        if step % 50 == 0 or step == steps:
            print(
                f"  head {step:4d}/{steps}  bce {run:.3f}  acc {acc:.2f}  {time.monotonic() - started:5.0f} s",
                flush=True,
            )
    recalibrate(ema, lambda m: m(*head_batch(examples, next(batches), gen)[:2]))
    return ema, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "models", help="output directory (default: models)"
    )
    parser.add_argument("--processes", type=int, default=1, help="processes rendering examples (default 1)")
    parser.add_argument("--train", type=int, default=TRAIN, help=f"training scenes (default {TRAIN})")
    parser.add_argument("--val", type=int, default=VAL, help=f"held-out scenes (default {VAL})")
    parser.add_argument("--det-steps", type=int, default=DET_STEPS)
    parser.add_argument("--head-steps", type=int, default=HEAD_STEPS)
    parser.add_argument(
        "--keep-head", action="store_true", help="retrain the detector only; the head from <out>"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(data.SEED)
    t0 = time.monotonic()
    train = data.render("train", args.train, args.processes)
    render_s = time.monotonic() - t0
    print(f"rendered {len(train)} scenes in {render_s:.0f} s", flush=True)
    det, det_s = train_detector(train, args.det_steps)
    if args.keep_head:
        head, head_s = ActionHead(**outputs.HEAD_KWARGS), None
        head.load_state_dict(torch.load(args.out / f"{outputs.HEAD}.pyth", weights_only=True)["model_state"])
        head.eval()
    else:
        head, head_s = train_head(train, args.head_steps)
    del train
    scale, shift = calibrate(det, data.render("cal", CAL, args.processes))
    print(f"calibrated detector scores: sigmoid({scale:.3f} * logit + {shift:.3f})", flush=True)
    facts = evaluate(det, head, data.render("val", args.val, args.processes))
    facts.update(
        cal=CAL,
        score_scale=scale,
        score_shift=shift,
        train=args.train,
        det_steps=args.det_steps,
        head_steps=args.head_steps,
        processes=args.processes,
        render_s=render_s,
        det_s=det_s,
        head_s=head_s,
        total_s=time.monotonic() - t0,
    )
    print({k: v for k, v in facts.items()}, flush=True)
    outputs.write_outputs(args.out, det, head, facts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
