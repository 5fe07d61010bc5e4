"""Training and validation data of the demo detection pair (``scripts/train_demo_detection.py``).

One example is one 1.2 s :class:`~app.demo.detection_scene.DetectionScene` of one to three
objects, each doing one demo action throughout; its clip is 8 frames 4 apart around the
keyframe (frame 18, 0.6 s), as the pipeline takes an AVA clip around its keyframe. An example
yields what each model is fed at inference:

* the action head: the window's 8 sampled frames scaled to a 64-pixel short side and
  normalised, the keyframe boxes in that clip's pixels, and each object's class id;
* the detector: each frame of the clip (at its scale) with its boxes, normalised; held-out
  checks use the keyframe, as the pipeline does.

Frames go through the same libx264 routes as ``demo_motion``'s training (the whole window,
only the sampled frames, or none), so both models learn compression artefacts.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np
import torch
import train_demo_model as base

from app.demo.classes import CLASSES
from app.demo.detection_models import MEAN, STD, scale_frames
from app.demo.detection_scene import DetectionScene
from app.demo.video import h264_round_trip

SEED = 20261206
SHORT_SIDE = 64
FRAMES, SAMPLING_RATE = 8, 4
WINDOW = FRAMES * SAMPLING_RATE
KEYFRAME = 18
"""Keyframe index in the 36-frame scene."""
OFFSETS = tuple(j * SAMPLING_RATE - WINDOW // 2 for j in range(FRAMES))
"""The clip's frames around its keyframe, as the pipeline takes them (PySlowFast's
``get_sequence``: -16, -12, ..., +12; the keyframe is the fifth)."""
COUNTS = (1, 2, 2, 3, 3)
"""Objects per scene, drawn uniformly from this tuple."""
ACTION_WEIGHTS = {"static": 0.8, "rotating": 1.3, "flashing": 1.3}
"""Relative odds of an action (others 1.0): rotating and flashing are their own mirror images,
so flips never make more of them."""
TRAIN_SIZES = [(160, 120), (160, 120), (192, 144), (128, 128), (176, 144), (120, 160), (256, 144), (320, 240)]
VAL_SIZES = [(160, 120), (192, 144), (128, 128), (120, 160), (320, 240)]
_P = np.array([ACTION_WEIGHTS.get(c, 1.0) for c in CLASSES])
_P = _P / _P.sum()


KEY = OFFSETS.index(0)
"""The keyframe's place in the clip: what the person detector sees at inference."""


@dataclass(frozen=True)
class Example:
    clip: np.ndarray  # float16 (3, T, h, w), normalised
    rois: np.ndarray  # float32 (N, 4) x1, y1, x2, y2 in clip pixels, at the keyframe
    labels: np.ndarray  # int64 (N,)
    frame_boxes: np.ndarray  # float32 (T, N, 4) normalised, on each frame of the clip

    def frame(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Clip frame ``j`` (3, h, w) at the detector's scale, and its boxes: every frame of a
        clip is a detector training image (eight times the images for no extra rendering)."""
        return self.clip[:, j], self.frame_boxes[j]

    @property
    def image(self) -> np.ndarray:
        return self.clip[:, KEY]

    @property
    def boxes(self) -> np.ndarray:
        return self.frame_boxes[KEY]


def _scene(split: str, index: int, rng: np.random.Generator) -> DetectionScene:
    sizes = TRAIN_SIZES if split == "train" else VAL_SIZES
    width, height = sizes[int(rng.integers(len(sizes)))]
    base_seed = {"train": 3_000_000, "val": 4_000_000, "cal": 5_000_000}[split]
    for attempt in range(20):
        count = int(rng.choice(COUNTS))
        actions = [CLASSES[int(i)] for i in rng.choice(len(CLASSES), size=count, p=_P)]
        try:
            return DetectionScene(
                [[(a, 1.2)] for a in actions],
                width=width,
                height=height,
                seed=base_seed + 1000 * index + attempt,
            )
        except ValueError:
            continue
    raise RuntimeError(f"no scene for {split} example {index}")


def clip_frames(scene: DetectionScene, split: str, rng: np.random.Generator) -> list[np.ndarray]:
    """The clip's frames: validation's whole window through libx264, training's by a random
    route (the whole window, only the clip's frames, or no codec), as ``demo_motion``'s."""
    picks = [KEYFRAME + o for o in OFFSETS]
    route = "full" if split == "val" else str(rng.choice(["full", "picked", "raw"], p=[0.15, 0.35, 0.5]))
    crf = int(rng.integers(18, 31))
    if route == "full":
        first = KEYFRAME - WINDOW // 2
        decoded = h264_round_trip([scene.frame(first + i) for i in range(WINDOW)], fps=30, crf=crf)
        return [decoded[k - first] for k in picks]
    if route == "picked":
        return h264_round_trip([scene.frame(k) for k in picks], fps=30, crf=crf)
    return [scene.frame(k) for k in picks]


def make_example(job: tuple[str, int]) -> Example:
    split, index = job
    rng = np.random.default_rng([SEED, {"train": 0, "val": 1}.get(split, 2), index])
    scene = _scene(split, index, rng)
    frames = clip_frames(scene, split, rng)
    x = torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2).float() / 255.0  # (3, T, H, W)
    clip = scale_frames((x - MEAN) / STD, SHORT_SIDE)
    h, w = clip.shape[-2:]
    t_key = KEYFRAME / scene.fps
    boxes = np.array(scene.boxes(t_key), dtype=np.float32)
    rois = boxes * np.array([w, h, w, h], dtype=np.float32)
    labels = np.array([CLASSES.index(scene.label(i, t_key)) for i in range(scene.object_count)])
    return Example(
        clip=clip.numpy().astype(np.float16),
        rois=rois,
        labels=labels,
        frame_boxes=np.array([scene.boxes((KEYFRAME + o) / scene.fps) for o in OFFSETS], dtype=np.float32),
    )


def render(split: str, count: int, processes: int) -> list[Example]:
    """``count`` examples of ``split``, in order (the result does not depend on ``processes``)."""
    jobs = [(split, i) for i in range(count)]
    if processes > 1:
        with mp.get_context("fork").Pool(processes, initializer=base._worker_init) as pool:
            return list(pool.imap(make_example, jobs, chunksize=8))
    return [make_example(j) for j in jobs]


def by_size(examples: list[Example]) -> dict[tuple[int, int], list[int]]:
    """Indices of examples grouped by clip size (a batch is one size)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(tuple(e.clip.shape[-2:]), []).append(i)  # type: ignore[arg-type]
    return groups
