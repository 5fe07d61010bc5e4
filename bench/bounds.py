"""The bounds of the benchmarks, measured inside one process each (start-up not included).

    .venv/bin/python bench/bounds.py decode VIDEO            # PyAV, every frame, no conversion
    .venv/bin/python bench/bounds.py child-work VIDEO --model M --models-dir D
    .venv/bin/python bench/bounds.py children VIDEO --model M --models-dir D --children N --threads T
    .venv/bin/python bench/bounds.py infer --model M --clips N --models-dir D [--batch B] [--backend B]
    .venv/bin/python bench/bounds.py transfer VIDEO --model M --models-dir D
    .venv/bin/python bench/bounds.py resize VIDEO --model M --models-dir D
    .venv/bin/python bench/bounds.py warm VIDEO --model M --models-dir D --warm-up SMALL_VIDEO

``decode`` is the fastest this machine decodes the file: frame threads (``thread_type
AUTO``, FFmpeg's thread count), nothing converted. ``child-work`` is what the decode child
does for a job (scan, the exact-skip decode, RGB conversion of the sampled frames, resize,
views), one thread (the lower of two passes); the CPU time of the resize + views calls is
taken apart from the rest (scan, decode, RGB conversion). ``children`` runs the sandboxed decode child(ren) of a job (``decode_children``)
without inference: wall and CPU seconds. ``infer`` is the model alone on random clips of
the engine's input shape, in batches, one thread, on one backend (``torch``, ``onnx``,
``openvino``: the verified export must exist). ``transfer`` decodes and prepares the same
clips twice, in this process and through the sandboxed child's shared-memory ring, so the
difference is the price of the child. ``resize`` times the RGB conversion + resize of 30
frames of the video our way (swscale to RGB at full size, then ``prep``'s PyTorch
bilinear) against swscale converting and resizing in one step (``frame.reformat(w, h,
"rgb24", interpolation=...)``), with each one's distance from ours in grey levels. ``warm`` is our engine as a worker runs it:
``Analyzer.analyze`` after a first job has loaded the model (settings from the
environment, as ``python -m app analyze`` has them), with the CPU seconds of the process
and its decode children. Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any


def cpu_seconds() -> float:
    """User + system seconds of this process and of the children it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def decode(video: Path) -> dict[str, float]:
    import av

    started = time.perf_counter()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        frames = sum(1 for _ in container.decode(stream))
        duration = float(stream.duration * stream.time_base) if stream.duration else frames / 30
    return {"seconds": time.perf_counter() - started, "frames": frames, "duration": duration}


def infer(model_name: str, models_dir: Path, clips: int, batch: int, backend: str) -> dict[str, Any]:
    import torch

    from app.analysis.backends import Backends
    from app.analysis.catalog import load_catalog
    from app.analysis.classifier import predict
    from app.analysis.clip_views import pack_pathway
    from app.analysis.loader import ModelLoader

    torch.set_num_threads(1)
    spec = load_catalog(models_dir).get(model_name)
    loaded = ModelLoader(models_dir).load(spec)
    backends = Backends(models_dir, {model_name: backend}, default=backend, threads=1, batch=batch)
    model, choice = backends.resolve(loaded)
    torch.manual_seed(0)
    views = []
    for _ in range(clips):
        view = torch.randn(3, spec.frames, spec.crop, spec.crop).numpy()
        views.append(pack_pathway(view, spec.alpha) if spec.alpha else view)
    device = torch.device("cpu")
    predict(model, views[:1], output=spec.output, num_classes=400, device=device)  # warm-up
    started, cpu = time.perf_counter(), cpu_seconds()
    for i in range(0, clips, batch):
        predict(model, views[i : i + batch], output=spec.output, num_classes=400, device=device)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu,
        "clips": clips,
        "backend": choice.name,
    }


def child_work(video: Path, model_name: str, models_dir: Path) -> dict[str, float]:
    import numpy as np

    from app.analysis.catalog import load_catalog
    from app.analysis.decode import DecodeStats, decode_clips
    from app.analysis.plan import plan_for
    from app.analysis.prep import FramePrep
    from app.analysis.scan import scan_video
    from app.options import JobOptions
    from app.settings import Settings

    allowed = Settings().allowed_format_list
    spec = load_catalog(models_dir).get(model_name)
    prep = FramePrep.for_spec(spec)
    out: dict[str, float] = {}
    spent = [0.0]

    def timed(fn: Any, *args: Any) -> Any:
        """``fn(*args)``, its CPU time added to ``spent`` (one thread: the process's CPU time is its)."""
        started = time.process_time()
        try:
            return fn(*args)
        finally:
            spent[0] += time.process_time() - started

    for _ in range(2):  # the lower of two runs
        started, cpu = time.perf_counter(), cpu_seconds()
        spent[0] = 0.0
        scan = scan_video(video, allowed)
        plan = plan_for(spec, JobOptions(segment_seconds=2), scan.frame_times, scan.duration)
        stats = DecodeStats()
        views = np.empty(prep.clip_shape(spec.frames), np.float32)
        for clip in decode_clips(
            video, allowed, scan, plan, lambda rgb: timed(prep.prepare_frame, rgb), threads=1, stats=stats
        ):
            timed(prep.write_views, clip.frames, views)
        total = cpu_seconds() - cpu
        if total < out.get("total_cpu_seconds", float("inf")):
            out["total_cpu_seconds"], out["resize_cpu_seconds"] = total, spent[0]
            out["decode_cpu_seconds"] = total - spent[0]
            out["seconds"] = time.perf_counter() - started
        out["decoded"], out["converted"], out["frames"] = (
            stats.decoded,
            stats.converted,
            len(scan.frame_times),
        )
    return out


def children(video: Path, model_name: str, models_dir: Path, count: int, threads: int) -> dict[str, float]:
    from multiprocessing.connection import wait

    from app.analysis.catalog import load_catalog
    from app.analysis.decode_sandbox import DecodeSandbox
    from app.analysis.decode_split import split_plan
    from app.analysis.limits import DEFAULT_LIMITS
    from app.analysis.plan import plan_for
    from app.analysis.prep import FramePrep
    from app.options import JobOptions
    from app.settings import Settings

    allowed = Settings().allowed_format_list
    spec = load_catalog(models_dir).get(model_name)
    prep = FramePrep.for_spec(spec)
    started, cpu = time.perf_counter(), cpu_seconds()
    first = DecodeSandbox(video, allowed, DEFAULT_LIMITS, prep, spec.frames, threads=threads)
    sandboxes = [first]
    scan = first.scan()
    parts = split_plan(
        scan, plan_for(spec, JobOptions(segment_seconds=2), scan.frame_times, scan.duration), count
    )
    first.decode(parts[0].plan, start_pts=parts[0].start_pts)
    for part in parts[1:]:
        sandboxes.append(
            DecodeSandbox(video, allowed, DEFAULT_LIMITS, prep, spec.frames, threads=threads, scan=scan)
        )
        sandboxes[-1].decode(part.plan, start_pts=part.start_pts)
    clips = 0
    while not all(s.exhausted for s in sandboxes):
        taken = [c for s in sandboxes if (c := s.take()) is not None]
        clips += len(taken)
        if not taken:
            wait([w for s in sandboxes for w in s.waitables()], timeout=5.0)
    for sandbox in sandboxes:
        sandbox.close()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu,
        "clips": clips,
        "parts": len(parts),
    }


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


def resize(video: Path, model_name: str, models_dir: Path) -> dict[str, dict[str, float]]:
    import av
    import numpy as np

    from app.analysis.catalog import load_catalog
    from app.analysis.decode import frame_to_rgb
    from app.analysis.prep import FramePrep, short_side_size

    spec = load_catalog(models_dir).get(model_name)
    prep = FramePrep.for_spec(spec)
    frames = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 37 == 0:
                frames.append(frame)
            if len(frames) == 30:
                break
    height, width = short_side_size(frames[0].height, frames[0].width, prep.short_side)

    def timed(fn: Any) -> tuple[float, list[Any]]:
        best, out = float("inf"), []
        for _ in range(3):
            started = time.process_time()
            out = [fn(frame) for frame in frames]
            best = min(best, (time.process_time() - started) / len(frames))
        return 1000 * best, out

    ours_ms, reference = timed(lambda f: prep.prepare_frame(frame_to_rgb(f)))
    result = {"ours (rgb24 + numpy bilinear)": {"ms_per_frame": ours_ms, "mean_grey": 0.0, "max_grey": 0.0}}
    for mode in ("FAST_BILINEAR", "BILINEAR", "AREA", "POINT"):
        ms, got = timed(lambda f, m=mode: f.reformat(width, height, "rgb24", interpolation=m).to_ndarray())
        diff = np.concatenate(
            [np.abs(g.astype(np.float32) - r).ravel() for g, r in zip(got, reference, strict=True)]
        )
        result[f"swscale {mode}"] = {
            "ms_per_frame": ms,
            "mean_grey": float(diff.mean()),
            "max_grey": float(diff.max()),
        }
    return result


def warm(video: Path, model_name: str, models_dir: Path, warm_up: Path) -> dict[str, Any]:
    from app.analysis.engine import Analyzer
    from app.options import JobOptions
    from app.settings import Settings

    analyzer = Analyzer.from_settings(Settings(models_dir=models_dir))
    options = JobOptions(segment_seconds=2)
    analyzer.analyze(warm_up, model_name, options)
    analyzer.refill_spares()  # as a worker does between jobs
    time.sleep(2.0)  # a worker that waited for its next job: the spares have loaded
    started, cpu = time.perf_counter(), cpu_seconds()
    result = analyzer.analyze(video, model_name, options)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu,
        "segments": len(result.segments),
        "backend": result.provenance.backend,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", choices=["decode", "child-work", "children", "infer", "transfer", "resize", "warm"]
    )
    parser.add_argument("video", type=Path, nargs="?")
    parser.add_argument("--model", default="x3d_s")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--children", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--warm-up", type=Path)
    args = parser.parse_args()
    result: dict[str, Any]
    if args.what == "decode":
        result = decode(args.video)
    elif args.what == "child-work":
        result = child_work(args.video, args.model, args.models_dir)
    elif args.what == "children":
        result = children(args.video, args.model, args.models_dir, args.children, args.threads)
    elif args.what == "infer":
        result = infer(args.model, args.models_dir, args.clips, args.batch, args.backend)
    elif args.what == "transfer":
        result = transfer(args.video, args.model, args.models_dir)
    elif args.what == "resize":
        result = resize(args.video, args.model, args.models_dir)
    else:
        result = warm(args.video, args.model, args.models_dir, args.warm_up)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
