#!/usr/bin/env python
"""Train the demo MViT ("demo_mvit") on the demo model's synthetic motion clips, on CPU.

Why it exists: the MViT explanation (``app/analysis/explain_rollout.py``) needs a transformer
that really recognises something, so that "the map points at the action" can be tested
offline the way HiResCAM is on ``demo_motion``. Same classes, same clips and the same
preprocessing as ``demo_motion`` (``scripts/train_demo_model.py``'s rendering: 8 frames over
1.067 s, short side 64, centre crop 64; the same held-out validation clips), so the two
models are directly comparable.

The network is pytorchvideo's ``create_multiscale_vision_transformers`` cut down to four
blocks: a 3x11x11 convolutional patch embedding with stride 2x8x8 (a 4x8x8 token grid plus
the class token, the same 8x8 grid as ``demo_motion``'s explained stage), 64 channels and 2
heads, keys and values pooled 1x2x2 in blocks 0-1, queries pooled 1x2x2 at block 2 (4x4x4
tokens, 128 channels, 4 heads from there), pooling kernels ``stride + 1`` so windows overlap.
A 2x4x4 patch stride (16x16 tokens) took 1.1 s a step, too slow for the time budget.

Trained with ``demo_motion`` as a teacher (logits and stage-2 features, see ``Teacher``):
from scratch alone it stayed at chance for hundreds of steps.

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
from demo_training import budget_reached, ema_update, smoothed, write_entries  # noqa: E402

from app.analysis.lockfile import record_sha256  # noqa: E402
from app.demo.classes import CLASSES  # noqa: E402
from app.demo.clips import CROP, FRAMES  # noqa: E402

NAME = "demo_mvit"
SEED = 20250301
BUILDER = "pytorchvideo.models.vision_transformers.create_multiscale_vision_transformers"
BUILDER_KWARGS: dict[str, Any] = {
    "spatial_size": CROP,
    "temporal_size": FRAMES,
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
KD_T = 2.0
"""Distillation temperature (the teacher's softened logits)."""
HINT_TEACHER_BLOCK, HINT_STUDENT_BLOCK = 2, 1
"""X3D's stage 2 (8x8 at stride 8) and the MViT's block 1 (8x8 tokens, before the query pooling)."""


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


class Teacher:
    """``demo_motion`` (the X3D) as a teacher, DeiT-style (Touvron et al., 2021): its logits
    (knowledge distillation at temperature ``KD_T``) and, FitNets-style (Romero et al., 2015),
    its stage-2 features, an 8x8 grid at stride 8 like the student's tokens, which the
    student's block-1 tokens must predict through a linear adapter (thrown away after training).
    Without it the MViT sat at chance (loss ln 7) for the first 400 steps at LR 1e-3 and the
    first 200 at 3e-4 and 3e-3 (all tried), and a small convolutional probe only began to
    move at step 250:
    the objects are small on busy backgrounds, and a transformer trained from scratch on a few
    thousand clips finds them slowly. With the teacher the loss fell within 200 steps."""

    def __init__(self, models: Path, student: torch.nn.Module) -> None:
        self.net = base.build_model()
        self.net.load_state_dict(torch.load(models / "demo_motion.pyth", weights_only=True)["model_state"])
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.seen: dict[str, torch.Tensor] = {}
        self.net.blocks[HINT_TEACHER_BLOCK].register_forward_hook(
            lambda _, __, out: self._keep("teacher", out)
        )
        student.blocks[HINT_STUDENT_BLOCK].register_forward_hook(
            lambda _, __, out: self._keep("student", out[0])
        )
        with torch.no_grad():
            self.net(torch.zeros(1, 3, FRAMES, CROP, CROP))
        width = student.blocks[HINT_STUDENT_BLOCK].dim_out
        self.adapter = torch.nn.Linear(int(width), int(self.seen["teacher"].shape[1]))

    def _keep(self, name: str, out: torch.Tensor) -> None:
        self.seen[name] = out

    def loss(
        self, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the training loss, its cross-entropy part) for a batch the student just saw."""
        with torch.no_grad():
            teacher_logits = self.net(x)
            grid = (
                F.avg_pool3d(self.seen["teacher"], (2, 1, 1)).flatten(2).transpose(1, 2)
            )  # time pairs -> tokens
            target = F.layer_norm(grid, grid.shape[-1:])
        hint = F.mse_loss(self.adapter(self.seen["student"][:, 1:]), target)  # class token left out
        kd = F.kl_div(
            F.log_softmax(logits / KD_T, 1), F.softmax(teacher_logits / KD_T, 1), reduction="batchmean"
        ) * (KD_T**2)
        ce = F.cross_entropy(logits, y)
        return 0.5 * ce + 0.5 * kd + hint, ce


def train(
    model: torch.nn.Module,
    teacher: Teacher,
    clips: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    seconds_budget: float,
) -> tuple[torch.nn.Module, int, float]:
    """AdamW with warm-up and cosine decay; returns (EMA of the weights, steps done, seconds)."""
    gen = torch.Generator().manual_seed(SEED)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "pos_embed" in name or "cls_token" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay + list(teacher.adapter.parameters()), "weight_decay": WEIGHT_DECAY},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=LR,
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
        loss, ce = teacher.loss(x, logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema_update(ema, model, step, EMA_DECAY)
        run_loss = smoothed(run_loss, ce.item(), step)
        run_acc = smoothed(run_acc, float((logits.argmax(1) == y).float().mean()), step)
        elapsed = time.monotonic() - started
        if step % 20 == 0 or step == steps:
            print(
                f"  step {step:4d}/{steps}  ce {run_loss:.3f}  acc {run_acc:.2f}  {elapsed:5.0f} s",
                flush=True,
            )
        if budget_reached(elapsed, seconds_budget, step, steps):
            break
    ema.eval()
    return ema, step, time.monotonic() - started


def manifest_entry() -> dict[str, Any]:
    """``demo_motion``'s entry (same labels, clips and preprocessing) with this network."""
    return base.manifest_entry() | {
        "name": NAME,
        "builder": BUILDER,
        "builder_kwargs": BUILDER_KWARGS,
        "weights": f"{NAME}.pyth",
        "labels": "demo_motion_labels.json",
        "description": (
            "Demo MViT (4 blocks) trained on demo_motion's synthetic clips by scripts/train_demo_mvit.py, "
            "for the MViT explanation's known answers; recognises only its own classes, NOT Kinetics actions."
        ),
    }


def write_manifest(out: Path) -> None:
    """Add or replace this model's entry in <out>/manifest.json (last), keeping the others."""
    write_entries(out, [manifest_entry()])


def write_report(out: Path, facts: dict[str, Any]) -> None:
    rows = "\n".join(
        f"| {c} | {facts['per_class'][c][0]}/{facts['per_class'][c][1]} "
        f"| {100 * facts['per_class'][c][0] / facts['per_class'][c][1]:.1f} % |"
        for c in CLASSES
    )
    (out / f"{NAME}.md").write_text(
        f"""# Demo model `{NAME}` (an MViT for the MViT explanation's known answers)

Trained by `scripts/train_demo_mvit.py`, distilled from `demo_motion`, on its synthetic clips (same
classes, same rendering and preprocessing, same held-out clips: see `DEMO_MODEL.md`). It exists
so that the MViT explanation (`app/analysis/explain_rollout.py`) can be held to a known answer;
**it recognises only the demo classes, not Kinetics actions.**

## Architecture

`{BUILDER}(**builder_kwargs)` with

```json
{json.dumps(BUILDER_KWARGS)}
```

- parameters: {facts["params"]:,}; checkpoint `{NAME}.pyth`, {facts["file_bytes"]:,} bytes,
  `{{"model_state": state_dict}}`; output: logits.
- tokens: 4x8x8 patches + class token (blocks 0-1, keys/values pooled to 4x4x4), then
  4x4x4 + class token (block 2 pools the queries; its keys/values stay 4x8x8, block 3's are
  4x4x4); the head reads the class token.

## Training

- {facts["train_clips"]:,} training clips (`train_demo_model.py`'s, seeds and routes included),
  its flips, transpose and time reversal with the label changes they imply.
- distilled from `demo_motion` (the X3D), DeiT/FitNets-style: loss = 0.5 cross-entropy +
  0.5 KL to the X3D's logits at temperature {KD_T} + the mean squared error between the
  MViT's block-1 tokens (through a linear adapter, dropped after training) and the X3D's
  stage-2 features on the same 8x8 grid (time steps paired). Trained without the teacher, the
  MViT sat at chance for the first 400 steps at LR 1e-3 and the first 200 at 3e-4 and 3e-3.
  So its tokens are taught the CNN's local features; its attention is learnt from the
  classification and distillation losses only.
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
    parser.add_argument(
        "--teacher",
        type=Path,
        default=ROOT / "models",
        help="folder holding demo_motion.pyth (default: models)",
    )
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
    teacher = Teacher(args.teacher, model)
    model, steps, train_s = train(model, teacher, train_x, train_y, args.steps, args.seconds_budget)
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
