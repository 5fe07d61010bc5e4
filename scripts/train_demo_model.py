#!/usr/bin/env python
"""Train the demo X3D ("demo_motion") on synthetic motion clips, on CPU, in a few minutes.

Why it exists: zoo weights cannot be downloaded here, yet the service needs a model
that *really* recognises something so that "right labels at the right times" can
be tested offline. This model recognises only the classes of
``app.demo.classes.CLASSES`` (object moving left/right/up/down, rotating, static,
flashing); it knows nothing about Kinetics actions.

Training clips go through exactly the service's inference preprocessing
(``app.demo.clips``: 8 frames over a 1.067 s window of 30 fps video, /255,
mean 0.45 std 0.225, short side 64 bilinear, centre crop 64: the classes need
no more detail, and it trains ~3x faster than 112). Half of them, and
all validation clips, pass through a real libx264 encode + PyAV decode first.

Deterministic: clip ``i`` of a split comes from fixed seeds, the training order and
augmentations from a seeded generator, and torch runs single-threaded (also the
fastest setting for X3D on a 2-vCPU machine). ``--seconds-budget`` only stops the
loop early if a slow machine would otherwise overrun it (that run then differs).

Usage: python scripts/train_demo_model.py [--out models] [--seconds-budget N]
Writes <out>/demo_motion.pyth (its sha256 into weights.lock.json), demo_motion_labels.json,
manifest.json, DEMO_MODEL.md. About 18 minutes on the 2-vCPU dev machine (2 rendering, 16
training).
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from demo_training import budget_reached, ema_update, smoothed, write_entries  # noqa: E402

from app.analysis.lockfile import record_sha256  # noqa: E402
from app.demo.classes import CLASSES  # noqa: E402
from app.demo.clips import CROP, FRAMES, MEAN, SAMPLING_RATE, SHORT_SIDE, STD, preprocess, sample_indices  # noqa: E402
from app.demo.synthetic import SyntheticScene  # noqa: E402
from app.demo.video import h264_round_trip  # noqa: E402

NAME = "demo_motion"
SEED = 20240611
BUILDER = "pytorchvideo.models.x3d.create_x3d"
# Every kwarg passed to create_x3d (JSON-serialisable; the engine rebuilds the model from these).
BUILDER_KWARGS: dict[str, Any] = {
    "input_channel": 3,
    "input_clip_length": FRAMES,
    "input_crop_size": CROP,
    "model_num_class": len(CLASSES),
    "dropout_rate": 0.0,
    "width_factor": 1.0,
    "depth_factor": 0.5,
    "stem_dim_in": 8,
    # Wider spatial kernels than X3D's 3x3 in the stem and the two high-resolution
    # stages: an object moves several pixels between sampled frames, and 3x3 kernels
    # at 56x56 / 28x28 barely reach across that; direction was learnt much slower.
    "stem_conv_kernel_size": [5, 5, 5],
    "stage_conv_kernel_size": [[3, 5, 5], [3, 5, 5], [3, 3, 3], [3, 3, 3]],
    "bottleneck_factor": 1.5,
    "head_dim_out": 64,
    "head_activation": None,
}

TRAIN_PER_CLASS = 500
VAL_PER_CLASS = 40
STEPS = 2400
BATCH = 16
LR = 3e-3
EMA_DECAY = 0.99
WINDOW = FRAMES * SAMPLING_RATE  # frames of 30 fps video one clip covers (32)
# Frame sizes seen in training: 4:3, square, portrait, 16:9, small and large (the
# latter are downscaled without antialiasing, as at inference).
TRAIN_SIZES = [(160, 120), (160, 120), (128, 96), (128, 128), (176, 144), (120, 160), (256, 144), (320, 240)]
VAL_SIZES = [(160, 120), (192, 144), (128, 128), (320, 240)]
# Scene seeds: disjoint ranges per split (tests and the self-check use seeds < 1e6).
TRAIN_SEED_BASE, VAL_SEED_BASE = 1_000_000, 2_000_000


def label_permutations(
    classes: tuple[str, ...],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """How class ids of ``classes`` change under (flip W, flip H, time reversal, transpose)."""
    ids = {c: i for i, c in enumerate(classes)}

    def perm(pairs: list[tuple[str, str]]) -> torch.Tensor:
        p = list(range(len(classes)))
        for a, b in pairs:
            p[ids[a]], p[ids[b]] = ids[b], ids[a]
        return torch.tensor(p)

    return (
        perm([("moving left", "moving right")]),
        perm([("moving up", "moving down")]),
        perm([("moving left", "moving right"), ("moving up", "moving down")]),
        perm([("moving left", "moving up"), ("moving right", "moving down")]),
    )


FLIP_W, FLIP_H, REVERSE_T, TRANSPOSE = label_permutations(CLASSES)


def window_frames(scene: Any, k0: int, split: str, rng: np.random.Generator) -> list[np.ndarray]:
    """The 8 sampled frames of the window from frame ``k0`` of ``scene`` (anything with
    ``frame(k)``): validation's whole window through libx264, training's by a random route."""
    picks = sample_indices(WINDOW)
    route = "full" if split == "val" else str(rng.choice(["full", "picked", "raw"], p=[0.15, 0.35, 0.5]))
    crf = int(rng.integers(18, 31))
    if route == "full":  # the real thing: the whole 30 fps window through libx264 and back
        decoded = h264_round_trip([scene.frame(k0 + i) for i in range(WINDOW)], fps=30, crf=crf)
        return [decoded[i] for i in picks]
    if route == "picked":  # cheaper: only the 8 sampled frames (same kind of artefacts)
        return h264_round_trip([scene.frame(k0 + i) for i in picks], fps=30, crf=crf)
    return [scene.frame(k0 + i) for i in picks]


def make_example(job: tuple[str, int]) -> tuple[np.ndarray, int]:
    """Clip ``index`` of ``split`` ("train"/"val"): preprocessed float16 (3, T, CROP, CROP) and its class id."""
    split, index = job
    rng = np.random.default_rng([SEED, 0 if split == "train" else 1, index])
    label = index % len(CLASSES)
    sizes = TRAIN_SIZES if split == "train" else VAL_SIZES
    width, height = sizes[int(rng.integers(len(sizes)))]
    base = TRAIN_SEED_BASE if split == "train" else VAL_SEED_BASE
    scene = SyntheticScene([(CLASSES[label], 3.0)], fps=30, width=width, height=height, seed=base + index)
    k0 = int(rng.integers(0, scene.frame_count - WINDOW + 1))
    clip = preprocess(window_frames(scene, k0, split, rng))
    return clip.numpy().astype(np.float16), label


def _worker_init() -> None:
    torch.set_num_threads(1)


def render(split: str, count: int, processes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``count`` clips of ``split`` (ordered, so the result is independent of ``processes``)."""
    jobs = [(split, i) for i in range(count)]
    if processes > 1:
        with mp.get_context("fork").Pool(processes, initializer=_worker_init) as pool:
            results = list(pool.imap(make_example, jobs, chunksize=8))
    else:
        results = [make_example(j) for j in jobs]
    clips = torch.from_numpy(np.stack([r[0] for r in results]))
    labels = torch.tensor([r[1] for r in results])
    return clips, labels


def build_model() -> torch.nn.Module:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script in pytorchvideo
    from pytorchvideo.models.x3d import create_x3d

    return create_x3d(**BUILDER_KWARGS)


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips / transpose / time reversal of a (B, 3, T, H, W) batch, with the labels they imply."""
    x, y = x.clone(), y.clone()
    flags = torch.rand(4, x.shape[0], generator=gen) < 0.5
    for b in range(x.shape[0]):
        if flags[0, b]:
            x[b], y[b] = x[b].flip(-1), FLIP_W[y[b]]
        if flags[1, b]:
            x[b], y[b] = x[b].flip(-2), FLIP_H[y[b]]
        if flags[2, b]:
            x[b], y[b] = x[b].flip(-3), REVERSE_T[y[b]]
        if flags[3, b]:
            x[b], y[b] = x[b].transpose(-1, -2).clone(), TRANSPOSE[y[b]]
    return x, y


@torch.no_grad()
def predict(model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(clips[i : i + 32].float()).argmax(1) for i in range(0, len(clips), 32)])


def recalibrate_batchnorm(model: torch.nn.Module, clips: torch.Tensor, batches: int = 24) -> None:
    """Replace BatchNorm running statistics by exact averages over ``batches`` training batches.

    The momentum-0.1 running averages follow the last few noisy batches (and, for the
    EMA model, belong to other weights); exact statistics make eval-mode predictions
    steadier. Momentum is restored to the builder's default afterwards.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for i in range(batches):
            x = clips[i * BATCH : (i + 1) * BATCH].float()
            model(x)
    for bn in norms:
        bn.momentum = 0.1
    model.eval()


def train(
    model: torch.nn.Module, clips: torch.Tensor, labels: torch.Tensor, seconds_budget: float
) -> tuple[torch.nn.Module, int, float]:
    """Train ``model``; returns (EMA of its weights with recalibrated BatchNorm, steps done, wall seconds).

    The exponential moving average of the weights over the last ~100 steps is much
    less sensitive to where the noisy small-batch optimisation happens to stop.
    """
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=STEPS, pct_start=0.1)
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    order = torch.randperm(len(clips), generator=gen)
    cursor, started = 0, time.monotonic()
    run_loss = run_acc = 0.0
    step = 0
    for step in range(1, STEPS + 1):
        if cursor + BATCH > len(order):
            order, cursor = torch.randperm(len(clips), generator=gen), 0
        idx = order[cursor : cursor + BATCH]
        cursor += BATCH
        x, y = augment(clips[idx].float(), labels[idx], gen)
        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_update(ema, model, step, EMA_DECAY)
        run_loss = smoothed(run_loss, loss.item(), step)
        run_acc = smoothed(run_acc, float((logits.argmax(1) == y).float().mean()), step)
        elapsed = time.monotonic() - started
        if step % 20 == 0 or step == STEPS:
            print(
                f"  step {step:4d}/{STEPS}  loss {run_loss:.3f}  acc {run_acc:.2f} (train-mode BN)  {elapsed:5.0f} s",
                flush=True,
            )
        if budget_reached(elapsed, seconds_budget, step, STEPS):
            break
    recalibrate_batchnorm(ema, clips)
    return ema, step, time.monotonic() - started


def manifest_entry() -> dict[str, Any]:
    return {
        "name": NAME,
        "builder": BUILDER,
        "builder_kwargs": BUILDER_KWARGS,
        "weights": f"{NAME}.pyth",
        "checkpoint_key": "model_state",
        "labels": f"{NAME}_labels.json",
        "labelset": "demo-motion",
        "frames": FRAMES,
        "sampling_rate": SAMPLING_RATE,
        "short_side": SHORT_SIDE,
        "crop": CROP,
        "mean": list(MEAN),
        "std": list(STD),
        "output": "logits",
        "channel_order": "rgb",
        "demo": True,
        "description": (
            "Demo model trained on synthetic motion clips by scripts/train_demo_model.py; "
            "recognises only its own classes, NOT Kinetics actions."
        ),
    }


def write_manifest(out: Path) -> None:
    """Add or replace this model's entry in <out>/manifest.json, keeping any other entries."""
    write_entries(out, [manifest_entry()], first=True)


def write_report(out: Path, facts: dict[str, Any]) -> None:
    per_class = "\n".join(
        f"| {c} | {facts['val_per_class'][c]['correct']}/{facts['val_per_class'][c]['total']} "
        f"| {100 * facts['val_per_class'][c]['accuracy']:.1f} % |"
        for c in CLASSES
    )
    kwargs = json.dumps(BUILDER_KWARGS)
    text = f"""# Demo model `{NAME}` (known-answer model for offline tests)

Zoo weights cannot be downloaded in this environment, so the service ships this small
model, trained from scratch on synthetic clips, to make "right labels at the right
times" testable offline. **It recognises only the classes below — it is not a
Kinetics action model.**

## Classes (class-id order, `{NAME}_labels.json`)

{", ".join(f"{i}: `{c}`" for i, c in enumerate(CLASSES))}

One foreground object (random elongated polygon, colour, size; random speed/turn
rate/flash rate) over a random textured, noisy background with static distractor
shapes, rendered by `app/demo/synthetic.py`. Test videos with known answers:
`app.demo.synthetic.write_scripted_video(path, [("moving right", 4.0), ("static", 4.0), ...])`.

## Architecture

`{BUILDER}(**builder_kwargs)` with

```json
{kwargs}
```

- parameters: {facts["params"]:,}
- checkpoint: `{NAME}.pyth`, {facts["file_bytes"]:,} bytes, `{{"model_state": state_dict}}`
  (load with `torch.load(path, weights_only=True)["model_state"]`, strict `load_state_dict`)
- output: logits (no softmax head)

## Input (identical at training and inference)

8 frames chosen by `linspace(0, n-1, 8)` (truncated) over the n frames of a
{FRAMES}x{SAMPLING_RATE}/30 = {FRAMES * SAMPLING_RATE / 30:.3f} s window of 30 fps video;
RGB /255; normalise mean 0.45 std 0.225; short side -> {SHORT_SIDE} (bilinear,
align_corners=False); centre crop {CROP}. See `app/demo/clips.py`.

## Training

- {facts["train_clips"]:,} training clips ({TRAIN_PER_CLASS} per class, frame sizes {TRAIN_SIZES}),
  half of them through a libx264 (crf 18-30) encode/decode round trip; random
  flips, transpose and time reversal with the label changes they imply.
- {facts["steps"]} steps of batch {BATCH}, AdamW + one-cycle LR {LR}, CPU, 1 torch thread.
- wall time on the 2-vCPU dev machine: rendering {facts["render_s"]:.0f} s, training
  {facts["train_s"]:.0f} s, total {facts["total_s"]:.0f} s.

## Validation (held-out seeds, every clip through libx264 encode -> PyAV decode)

Overall clip accuracy: **{100 * facts["val_accuracy"]:.1f} %** ({facts["val_clips"]} clips)

| class | correct | accuracy |
|---|---|---|
{per_class}

Scripted-video self-check (`python scripts/check_demo_model.py`): 2-second segments of a
scripted video, centred clip per segment, predicted vs scripted label.

## Regenerate

```
python scripts/train_demo_model.py --out models      # ~18 min on 2 vCPUs (make demo-model)
python scripts/check_demo_model.py --models models   # self-check, needs >= 95 % agreement
```
"""
    path = out / "DEMO_MODEL.md"
    # The multi-label model's section (scripts/train_demo_multilabel.py) follows a marker: keep it.
    marker = "<!-- demo_motion_multi -->"
    old = path.read_text() if path.exists() else ""
    path.write_text(text + ("\n" + old[old.index(marker) :] if marker in old else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "models", help="output directory (default: models)"
    )
    parser.add_argument(
        "--seconds-budget",
        type=float,
        default=1800.0,
        help="stop the training loop early after this many seconds",
    )
    parser.add_argument("--processes", type=int, default=2, help="processes rendering clips (default 2)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    t0 = time.monotonic()
    print(f"rendering {TRAIN_PER_CLASS * len(CLASSES)} training clips ...", flush=True)
    train_x, train_y = render("train", TRAIN_PER_CLASS * len(CLASSES), args.processes)
    render_s = time.monotonic() - t0
    print(f"  done in {render_s:.0f} s", flush=True)

    model = build_model()
    params = sum(p.numel() for p in model.parameters())
    print(f"training X3D ({params:,} parameters) ...", flush=True)
    model, steps, train_s = train(model, train_x, train_y, args.seconds_budget)
    del train_x, train_y

    print(f"validating on {VAL_PER_CLASS * len(CLASSES)} held-out clips (libx264 round trip) ...", flush=True)
    val_x, val_y = render("val", VAL_PER_CLASS * len(CLASSES), args.processes)
    pred = predict(model, val_x)
    per_class: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(CLASSES):
        mask = val_y == i
        correct = int((pred[mask] == i).sum())
        per_class[c] = {"correct": correct, "total": int(mask.sum()), "accuracy": correct / int(mask.sum())}
        print(f"  {c:13s} {correct:3d}/{int(mask.sum())}  {100 * correct / int(mask.sum()):5.1f} %")
    val_acc = float((pred == val_y).float().mean())
    print(f"  overall       {100 * val_acc:.1f} %")
    confusion = torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.long)
    for t, p in zip(val_y.tolist(), pred.tolist(), strict=True):
        confusion[t, p] += 1
    print(
        "  confusion (rows: truth):\n"
        + "\n".join("    " + " ".join(f"{v:3d}" for v in r) for r in confusion.tolist())
    )

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    weights = out / f"{NAME}.pyth"
    torch.save({"model_state": model.state_dict()}, weights)
    # The loader verifies a recorded hash: record the new one (a stale entry would refuse the file).
    digest = record_sha256(out, weights.name)
    (out / f"{NAME}_labels.json").write_text(json.dumps(list(CLASSES)) + "\n")
    write_manifest(out)
    total_s = time.monotonic() - t0
    facts = {
        "params": params,
        "file_bytes": weights.stat().st_size,
        "train_clips": TRAIN_PER_CLASS * len(CLASSES),
        "val_clips": len(val_y),
        "steps": steps,
        "render_s": render_s,
        "train_s": train_s,
        "total_s": total_s,
        "val_accuracy": val_acc,
        "val_per_class": per_class,
    }
    write_report(out, facts)
    print(
        f"wrote {weights} ({weights.stat().st_size:,} bytes, sha256 {digest} in weights.lock.json), "
        "labels, manifest.json, DEMO_MODEL.md"
    )
    print(f"total wall time {total_s:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
