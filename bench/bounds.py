"""The two bounds of the benchmark, and the decode child's transfer overhead.

    .venv/bin/python bench/bounds.py decode VIDEO            # PyAV, every frame, no conversion
    .venv/bin/python bench/bounds.py infer --model M --clips N --models-dir D [--batch B]
    .venv/bin/python bench/bounds.py transfer VIDEO --model M --models-dir D
    .venv/bin/python bench/bounds.py warm VIDEO --model M --models-dir D --warm-up SMALL_VIDEO

``decode`` is the fastest this machine decodes the file: frame threads (``thread_type
AUTO``, FFmpeg's thread count), nothing converted. ``infer`` is the model alone on random
clips of the engine's input shape, in batches, one torch thread. ``transfer`` decodes and
prepares the same clips twice, in this process and through the sandboxed child's
shared-memory ring, so the difference is the price of the child. ``warm`` is our engine
as a worker runs it: ``Analyzer.analyze`` after a first job has loaded the model (settings
from the environment, as ``python -m app analyze`` has them). Each prints one JSON line
(seconds measured inside the process: start-up is not included).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def decode(video: Path) -> dict[str, float]:
    import av

    started = time.perf_counter()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        frames = sum(1 for _ in container.decode(stream))
        duration = float(stream.duration * stream.time_base) if stream.duration else frames / 30
    return {"seconds": time.perf_counter() - started, "frames": frames, "duration": duration}


def infer(model_name: str, models_dir: Path, clips: int, batch: int) -> dict[str, float]:
    import torch

    from app.analysis.catalog import load_catalog
    from app.analysis.classifier import predict
    from app.analysis.loader import ModelLoader
    from app.analysis.transforms import pack_pathway

    torch.set_num_threads(1)
    spec = load_catalog(models_dir).get(model_name)
    model = ModelLoader(models_dir).load(spec).module
    torch.manual_seed(0)
    views = []
    for _ in range(clips):
        view = torch.randn(3, spec.frames, spec.crop, spec.crop)
        views.append(pack_pathway(view, spec.alpha) if spec.alpha else view)
    device = torch.device("cpu")
    predict(model, views[:1], output=spec.output, num_classes=400, device=device)  # warm-up
    started = time.perf_counter()
    for i in range(0, clips, batch):
        predict(model, views[i : i + batch], output=spec.output, num_classes=400, device=device)
    return {"seconds": time.perf_counter() - started, "clips": clips}


def transfer(video: Path, model_name: str, models_dir: Path) -> dict[str, float]:
    import numpy as np

    from app.analysis.catalog import load_catalog
    from app.analysis.decode import decode_clips
    from app.analysis.decode_sandbox import DecodeSandbox
    from app.analysis.limits import DEFAULT_LIMITS
    from app.analysis.plan import plan_for
    from app.analysis.prep import FramePrep
    from app.analysis.scan import scan_video
    from app.options import JobOptions
    from app.settings import Settings

    allowed = Settings().allowed_format_list
    spec = load_catalog(models_dir).get(model_name)
    prep = FramePrep.for_spec(spec)
    options = JobOptions(segment_seconds=2)
    out: dict[str, float] = {}

    started = time.perf_counter()
    scan = scan_video(video, allowed)
    plan = plan_for(spec, options, scan.frame_times, scan.duration)
    for clip in decode_clips(video, allowed, scan, plan, prep.prepare_frame):
        views = np.empty(prep.clip_shape(spec.frames), np.float32)
        prep.write_views(clip.frames, views)
    out["in_process_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    with DecodeSandbox(video, allowed, DEFAULT_LIMITS, prep, spec.frames) as sandbox:
        out["child_start_and_scan_seconds"] = 0.0
        scan = sandbox.scan()
        out["child_start_and_scan_seconds"] = time.perf_counter() - started
        sandbox.decode(plan_for(spec, options, scan.frame_times, scan.duration))
        clips = 0
        while sandbox.next_clip() is not None:
            clips += 1
    out["child_seconds"] = time.perf_counter() - started
    out["clips"] = clips
    return out


def warm(video: Path, model_name: str, models_dir: Path, warm_up: Path) -> dict[str, float]:
    from app.analysis.engine import Analyzer
    from app.options import JobOptions
    from app.settings import Settings

    analyzer = Analyzer.from_settings(Settings(models_dir=models_dir))
    options = JobOptions(segment_seconds=2)
    analyzer.analyze(warm_up, model_name, options)
    started = time.perf_counter()
    result = analyzer.analyze(video, model_name, options)
    return {"seconds": time.perf_counter() - started, "segments": len(result.segments)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["decode", "infer", "transfer", "warm"])
    parser.add_argument("video", type=Path, nargs="?")
    parser.add_argument("--model", default="x3d_s")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warm-up", type=Path)
    args = parser.parse_args()
    if args.what == "decode":
        result = decode(args.video)
    elif args.what == "infer":
        result = infer(args.model, args.models_dir, args.clips, args.batch)
    elif args.what == "transfer":
        result = transfer(args.video, args.model, args.models_dir)
    else:
        result = warm(args.video, args.model, args.models_dir, args.warm_up)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
