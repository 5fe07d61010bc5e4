#!/usr/bin/env python
"""Self-check of the demo model on scripted videos: right labels at the right times?

Writes videos with ``write_scripted_video`` (a script of classes and durations, some
not multiples of the segment length so that segments straddle part boundaries),
decodes them with PyAV, cuts 2-second segments, takes each segment's centred clip
(8 frames over 1.067 s, preprocessed as in ``app.demo.clips`` with the manifest's
numbers), and classifies it with the model loaded the way the service loads it (the catalog entry
from ``models/manifest.json``, ``torch.load(weights_only=True)``, strict, sha256 checked).

A segment agrees when the prediction is the scripted label of any part it overlaps
(straddling segments may match either side). Exit status 1 below ``--min-agreement``.

Usage: python scripts/check_demo_model.py [--models models] [--min-agreement 0.95]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from app.analysis.catalog import load_catalog  # noqa: E402
from app.analysis.loader import ModelLoader  # noqa: E402
from app.analysis.spec import ModelSpec, read_labels  # noqa: E402
from app.demo.clips import clip_at  # noqa: E402
from app.demo.synthetic import write_scripted_video  # noqa: E402
from app.demo.video import read_video_rgb  # noqa: E402

NAME = "demo_motion"
SEGMENT_SECONDS = 2.0
SCRIPT: list[tuple[str, float]] = [
    ("moving right", 4.0),
    ("static", 4.0),
    ("moving up", 4.0),
    ("moving left", 4.0),
    ("rotating", 4.0),
    ("moving down", 4.0),
    ("flashing", 4.0),
    ("moving right", 3.0),
    ("rotating", 3.0),
    ("moving up", 2.0),
    ("static", 3.0),
    ("flashing", 3.0),
    ("moving left", 3.0),
    ("moving down", 3.0),
]
# (width, height, seed): the default 4:3 size and a larger one (downscaled by the preprocessing).
VIDEOS = [(160, 120, 424242), (320, 240, 515151)]


def load_model(models: Path) -> tuple[torch.nn.Module, tuple[str, ...], ModelSpec]:
    """The model as the service loads it: catalog entry from the manifest, strict weights_only load."""
    spec = load_catalog(models).get(NAME)
    model: torch.nn.Module = ModelLoader(models).load(spec).module
    model.eval()
    return model, read_labels(spec), spec


def scripted_labels(start: float, end: float) -> list[str]:
    """Labels of the script parts overlapping [start, end)."""
    out, t = [], 0.0
    for label, seconds in SCRIPT:
        if t < end and start < t + seconds and label not in out:
            out.append(label)
        t += seconds
    return out


def check_video(
    model: torch.nn.Module, labels: Sequence[str], spec: ModelSpec, width: int, height: int, seed: int
) -> tuple[int, int]:
    """Print per-segment results for one scripted video; returns (agreeing segments, segments)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scripted.mp4"
        write_scripted_video(path, SCRIPT, fps=30, width=width, height=height, seed=seed)
        frames, times = read_video_rgb(path)
    duration = sum(s for _, s in SCRIPT)
    segments = int(duration // SEGMENT_SECONDS)
    clips = [
        clip_at(
            frames,
            times,
            centre=(i + 0.5) * SEGMENT_SECONDS,
            frames_per_clip=spec.frames,
            sampling_rate=spec.sampling_rate,
            short_side=spec.short_side,
            crop=spec.crop,
            mean=spec.mean,
            std=spec.std,
        )
        for i in range(segments)
    ]
    with torch.no_grad():
        probs = torch.softmax(model(torch.stack(clips)), dim=1)
    agree = 0
    print(f"\nvideo {width}x{height} seed {seed}: {len(frames)} frames, {duration:.0f} s")
    print(f"  {'segment':>13}  {'scripted':27}  {'predicted':13}  p")
    for i in range(segments):
        start, end = i * SEGMENT_SECONDS, (i + 1) * SEGMENT_SECONDS
        expected = scripted_labels(start, end)
        p, k = probs[i].max(0)
        predicted = labels[int(k)]
        ok = predicted in expected
        agree += ok
        mark = "ok" if ok else "MISS"
        print(
            f"  {start:5.1f}-{end:5.1f} s  {' | '.join(expected):27}  {predicted:13}  {float(p):.2f}  {mark}"
        )
    print(f"  agreement {agree}/{segments} = {100 * agree / segments:.1f} %")
    return agree, segments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", type=Path, default=ROOT / "models", help="models directory (default: models)"
    )
    parser.add_argument("--min-agreement", type=float, default=0.95)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, labels, spec = load_model(args.models)
    agree = total = 0
    for width, height, seed in VIDEOS:
        a, n = check_video(model, labels, spec, width, height, seed)
        agree += a
        total += n
    fraction = agree / total
    print(
        f"\noverall agreement {agree}/{total} = {100 * fraction:.1f} % (required {100 * args.min_agreement:.0f} %)"
    )
    return 0 if fraction >= args.min_agreement else 1


if __name__ == "__main__":
    raise SystemExit(main())
