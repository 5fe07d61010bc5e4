#!/usr/bin/env python
"""Train the demo MViT ("demo_mvit") on the demo model's synthetic motion clips, on CPU.

Why it exists: attention rollout (``app/analysis/explain_rollout.py``) needs a transformer
that really recognises something, so that "the map points at the action" can be tested
offline the way HiResCAM is on ``demo_motion``. Same classes, same clips and the same
preprocessing as ``demo_motion`` (``scripts/train_demo_model.py``'s rendering: 8 frames over
1.067 s, short side 64, centre crop 64; the same held-out validation clips), so the two
models are directly comparable.

The network is pytorchvideo's ``create_multiscale_vision_transformers`` cut down to four
blocks: a 3x7x7 convolutional patch embedding with stride 2x4x4 (a 4x16x16 token grid plus
the class token), 48 channels and 2 heads, query pooling 1x2x2 at block 2 (8x8 tokens,
96 channels, 4 heads from there), keys and values pooled 1x4x4 before it and 1x2x2 after
(MViT-B's adaptive rule), pooling kernels ``stride + 1`` so windows overlap.

Deterministic like the X3D script: fixed seeds per clip, a seeded training order, one torch
thread; ``--seconds-budget`` only stops the loop early on a slower machine.

Usage: python scripts/train_demo_mvit.py [--out models] [--processes 2] [--steps N] [--cache DIR]
Writes <out>/demo_mvit.pyth (its sha256 into weights.lock.json), its manifest entry (labels:
demo_motion_labels.json, the same classes) and <out>/demo_mvit.md (architecture, training,
held-out accuracy).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "scripts"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import train_demo_model as base  # noqa: E402

from app.analysis.lockfile import record_sha256  # noqa: E402
from app.demo.classes import CLASSES  # noqa: E402

NAME = "demo_mvit"
SEED = 20250301
BUILDER = "pytorchvideo.models.vision_transformers.create_multiscale_vision_transformers"
BUILDER_KWARGS: dict[str, Any] = {
    "spatial_size": base.CROP,
    "temporal_size": base.FRAMES,
    "depth": 4,
    "patch_embed_dim": 64,
    "num_heads": 2,
    "mlp_ratio": 2.0,
    "conv_patch_embed_kernel": [3, 11, 11],
    "conv_patch_embed_stride": [2, 8, 8],
    "conv_patch_embed_padding": [1, 5, 5],
    "embed_dim_mul": [[2, 2.0]],
    "atten_head_mul": [[2, 2.0]],
    "pool_q_stride_size": [[2, 1, 2, 2]],
    "pool_kv_stride_size": [[0, 1, 2, 2], [1, 1, 2, 2]],
    "dropout_rate_block": 0.0,
    "droppath_rate_block": 0.0,
    "head_dropout_rate": 0.0,
    "head_num_classes": len(CLASSES),
}
STEPS = 2000
BATCH = 16
LR = 1e-3
WEIGHT_DECAY = 0.05
WARMUP = 0.1
EMA_DECAY = 0.99


def build_model() -> torch.nn.Module:
    from pytorchvideo.models.vision_transformers import create_multiscale_vision_transformers

    def tuples(value: Any) -> Any:  # as the service's loader passes manifest kwargs
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value

    return create_multiscale_vision_transformers(**{k: tuples(v) for k, v in BUILDER_KWARGS.items()})


def rendered(split: str, count: int, processes: int, cache: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``train_demo_model``'s clips ``0..count-1`` of ``split``, kept in ``cache`` if given."""
    path = cache / f"demo-clips-{split}-{count}.pt" if cache is not None else None
    if path is not None and path.exists():
        clips, labels = torch.load(path, weights_only=True)
        return clips, labels
    clips, labels = base.render(split, count, processes)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save((clips, labels), path)
    return clips, labels


def schedule(step: int, steps: int) -> float:
    """LR factor: linear warm-up over ``WARMUP`` of the steps, then a cosine down to 0."""
    warm = max(1, int(steps * WARMUP))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def train(
    model: torch.nn.Module, clips: torch.Tensor, labels: torch.Tensor, steps: int, seconds_budget: float
) -> tuple[torch.nn.Module, int, float]:
    """AdamW with warm-up and cosine decay; returns (EMA of the weights, steps done, seconds)."""
    gen = torch.Generator().manual_seed(SEED)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "pos_embed" in name or "cls_token" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}], lr=LR
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, steps))
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    order, cursor, started = torch.randperm(len(clips), generator=gen), 0, time.monotonic()
    run_loss = run_acc = 0.0
    step = 0
    for step in range(1, steps + 1):
        if cursor + BATCH > len(order):
            order, cursor = torch.randperm(len(clips), generator=gen), 0
        idx = order[cursor : cursor + BATCH]
        cursor += BATCH
        x, y = base.augment(clips[idx].float(), labels[idx], gen)
        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        keep = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                p_ema.mul_(keep).add_(p, alpha=1 - keep)
        acc = float((logits.argmax(1) == y).float().mean())
        run_loss = 0.9 * run_loss + 0.1 * loss.item() if step > 1 else loss.item()
        run_acc = 0.9 * run_acc + 0.1 * acc if step > 1 else acc
        elapsed = time.monotonic() - started
        if step % 20 == 0 or step == steps:
            print(
                f"  step {step:4d}/{steps}  loss {run_loss:.3f}  acc {run_acc:.2f}  {elapsed:5.0f} s",
                flush=True,
            )
        if elapsed > seconds_budget and step < steps:
            print(
                f"  seconds budget ({seconds_budget:.0f} s) reached at step {step}; stopping early",
                flush=True,
            )
            break
    ema.eval()
    return ema, step, time.monotonic() - started


def manifest_entry() -> dict[str, Any]:
    return {
        "name": NAME,
        "builder": BUILDER,
        "builder_kwargs": BUILDER_KWARGS,
        "weights": f"{NAME}.pyth",
        "checkpoint_key": "model_state",
        "labels": "demo_motion_labels.json",
        "labelset": "demo-motion",
        "frames": base.FRAMES,
        "sampling_rate": base.SAMPLING_RATE,
        "short_side": base.SHORT_SIDE,
        "crop": base.CROP,
        "mean": list(base.MEAN),
        "std": list(base.STD),
        "output": "logits",
        "channel_order": "rgb",
        "demo": True,
        "description": (
            "Demo MViT (4 blocks) trained on demo_motion's synthetic clips by scripts/train_demo_mvit.py, "
            "for attention-rollout explanations; recognises only its own classes, NOT Kinetics actions."
        ),
    }


def write_manifest(out: Path) -> None:
    """Add or replace this model's entry in <out>/manifest.json (last), keeping the others."""
    path = out / "manifest.json"
    models: list[dict[str, Any]] = []
    if path.exists():
        models = [m for m in json.loads(path.read_text())["models"] if m.get("name") != NAME]
    models.append(manifest_entry())
    path.write_text(json.dumps({"models": models}, indent=2) + "\n")


def write_report(out: Path, facts: dict[str, Any]) -> None:
    rows = "\n".join(
        f"| {c} | {facts['per_class'][c][0]}/{facts['per_class'][c][1]} "
        f"| {100 * facts['per_class'][c][0] / facts['per_class'][c][1]:.1f} % |"
        for c in CLASSES
    )
    (out / f"{NAME}.md").write_text(
        f"""# Demo model `{NAME}` (an MViT for attention-rollout known answers)

Trained from scratch by `scripts/train_demo_mvit.py` on `demo_motion`'s synthetic clips (same
classes, same rendering and preprocessing, same held-out clips: see `DEMO_MODEL.md`). It exists
so that attention rollout (`app/analysis/explain_rollout.py`) can be held to a known answer;
**it recognises only the demo classes, not Kinetics actions.**

## Architecture

`{BUILDER}(**builder_kwargs)` with

```json
{json.dumps(BUILDER_KWARGS)}
```

- parameters: {facts["params"]:,}; checkpoint `{NAME}.pyth`, {facts["file_bytes"]:,} bytes,
  `{{"model_state": state_dict}}`; output: logits.
- tokens: 4x16x16 patches + class token (blocks 0-1, keys/values pooled to 4x4x4), then
  4x8x8 + class token (blocks 2-3, keys/values 4x4x4); the head reads the class token.

## Training

- {facts["train_clips"]:,} training clips (`train_demo_model.py`'s, seeds and routes included),
  its flips, transpose and time reversal with the label changes they imply.
- {facts["steps"]} steps of batch {BATCH}, AdamW (weight decay {WEIGHT_DECAY}), LR {LR} with
  {WARMUP:.0%} warm-up and cosine decay, gradient norm clipped at 1, EMA of the weights
  ({EMA_DECAY}); CPU, 1 torch thread.
- wall time on the shared 2-vCPU dev machine: rendering {facts["render_s"]:.0f} s, training
  {facts["train_s"]:.0f} s.

## Validation (held-out seeds, every clip through libx264 encode -> PyAV decode)

Overall clip accuracy: **{100 * facts["val_accuracy"]:.1f} %** ({facts["val_clips"]} clips)

| class | correct | accuracy |
|---|---|---|
{rows}

## Regenerate

```
python scripts/train_demo_mvit.py --out models
```
"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "models", help="output directory (default: models)"
    )
    parser.add_argument("--steps", type=int, default=STEPS, help=f"training steps (default {STEPS})")
    parser.add_argument("--seconds-budget", type=float, default=1500.0, help="stop training after this long")
    parser.add_argument("--processes", type=int, default=2, help="processes rendering clips (default 2)")
    parser.add_argument("--cache", type=Path, default=None, help="keep rendered clips here between runs")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    t0 = time.monotonic()
    count = base.TRAIN_PER_CLASS * len(CLASSES)
    print(f"rendering {count} training clips ...", flush=True)
    train_x, train_y = rendered("train", count, args.processes, args.cache)
    render_s = time.monotonic() - t0

    model = build_model()
    params = sum(p.numel() for p in model.parameters())
    print(f"training MViT ({params:,} parameters) ...", flush=True)
    model, steps, train_s = train(model, train_x, train_y, args.steps, args.seconds_budget)
    del train_x, train_y

    val_x, val_y = rendered("val", base.VAL_PER_CLASS * len(CLASSES), args.processes, args.cache)
    pred = base.predict(model, val_x)
    per_class = {
        c: (int((pred[val_y == i] == i).sum()), int((val_y == i).sum())) for i, c in enumerate(CLASSES)
    }
    val_acc = float((pred == val_y).float().mean())
    for c, (right, total) in per_class.items():
        print(f"  {c:13s} {right:3d}/{total}")
    print(f"  held-out accuracy {100 * val_acc:.1f} % ({len(val_y)} clips)", flush=True)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{NAME}.pyth"
    torch.save({"model_state": model.state_dict()}, weights)
    digest = record_sha256(out, weights.name)
    write_manifest(out)
    facts = {
        "params": params,
        "file_bytes": weights.stat().st_size,
        "train_clips": count,
        "val_clips": len(val_y),
        "steps": steps,
        "render_s": render_s,
        "train_s": train_s,
        "val_accuracy": val_acc,
        "per_class": per_class,
    }
    write_report(out, facts)
    print(f"wrote {weights} ({weights.stat().st_size:,} bytes, sha256 {digest}), manifest entry, {NAME}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
