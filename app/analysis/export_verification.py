"""Does an exported artifact compute what the PyTorch model computes? Run both on the same clips.

The same random clips and real clips (decoded and transformed by the service's own
pipeline) go through the model as the service runs it (Swish and all) and through the
artifact; ``compare`` gives the largest absolute output difference and the top-1
agreement, counting only the top-1 flips on clips whose reference top-1 leads its
runner-up by more than the tolerance (near-ties may flip on rounding).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from app.analysis.artifacts import ExportFormat
from app.analysis.spec import ModelSpec


def random_clips(spec: ModelSpec, count: int, *, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """Normalised-pixel-like noise in the model's input geometry, one clip per entry."""
    gen = torch.Generator().manual_seed(seed)
    shape = (1, 3, spec.frames, spec.crop, spec.crop)
    out: list[tuple[torch.Tensor, ...]] = []
    for _ in range(count):
        fast = torch.randn(shape, generator=gen)
        if spec.alpha:
            idx = torch.linspace(0, spec.frames - 1, spec.frames // spec.alpha).long()
            out.append((fast.index_select(2, idx), fast))
        else:
            out.append((fast,))
    return out


def real_clips(
    spec: ModelSpec, video: Path | None, count: int, allowed_formats: Sequence[str]
) -> list[tuple[torch.Tensor, ...]]:
    """Clips decoded and transformed exactly as a job would (default: a generated motion video)."""
    from app.analysis.decode import decode_clips
    from app.analysis.plan import plan_for
    from app.analysis.scan import scan_video
    from app.analysis.transforms import ClipTransform
    from app.options import JobOptions

    with tempfile.TemporaryDirectory() as tmp:
        if video is None:
            from app.demo.synthetic import write_scripted_video

            video = Path(tmp) / "motion.mp4"
            script = [("moving right", 2.0), ("rotating", 2.0), ("flashing", 2.0), ("moving up", 2.0)]
            write_scripted_video(video, script, width=320, height=240, seed=7)
        scan = scan_video(video, allowed_formats)
        plan = plan_for(spec, JobOptions(), scan.frame_times, scan.duration)
        transform = ClipTransform.for_spec(spec, 1)
        out: list[tuple[torch.Tensor, ...]] = []
        clips = decode_clips(video, allowed_formats, scan, plan, transform.prepare_frame)
        try:
            for clip in clips:
                view = transform.views(clip.frames)[0]
                paths = tuple(view) if isinstance(view, list) else (view,)
                out.append(tuple(torch.from_numpy(p).unsqueeze(0) for p in paths))
                if len(out) >= count:
                    break
        finally:
            clips.close()
    return out


class Runner:
    """Runs an exported artifact: tensors in, a (B, classes) float tensor out."""

    def __init__(self, fmt: ExportFormat, path: Path, names: Sequence[str], threads: int = 1) -> None:
        from app.analysis.runners import OnnxRunner, OpenVinoRunner
        from app.analysis.runners import Runner as ArrayRunner

        self.fmt, self.names = fmt, list(names)
        self.arrays: ArrayRunner | None = None
        """ONNX and OpenVINO: the runner a worker uses (``runners``), on numpy arrays."""
        if fmt is ExportFormat.ONNX:
            self.arrays = OnnxRunner(path, self.names, threads)
        elif fmt is ExportFormat.OPENVINO:
            from app.analysis.openvino_runtime import CompiledIR, Precision

            self.arrays = OpenVinoRunner(
                CompiledIR(path, threads=threads, precision=Precision.F32, cache_dir=None)
            )
        elif fmt is ExportFormat.TORCHSCRIPT:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        elif fmt is ExportFormat.TORCH_EXPORT:
            self.module = torch.export.load(str(path)).module()
        else:
            raise ValueError(f"{fmt.value} artifacts are run by export_tf.TfRunner")

    def __call__(self, *paths: torch.Tensor) -> torch.Tensor:
        if self.arrays is not None:
            return torch.from_numpy(self.arrays([p.detach().cpu().numpy() for p in paths]))
        with torch.inference_mode():
            out: torch.Tensor = self.module(*paths)
        return out


@dataclass
class Comparison:
    """How an artifact's outputs matched the reference's on a set of clips (see the module)."""

    clips: int
    max_abs_diff: float
    top1_agreement: float
    top1_disagreements_beyond_tolerance: int


def compare(
    reference: nn.Module,
    runner: Runner,
    clips: Sequence[tuple[torch.Tensor, ...]],
    spec: ModelSpec,
    atol: float,
) -> Comparison:
    worst, agree, bad = 0.0, 0, 0
    for paths in clips:
        with torch.inference_mode():
            want = reference(list(paths) if spec.alpha else paths[0]).float().reshape(1, -1)
        got = runner(*paths).float().reshape(1, -1)
        worst = max(worst, float((want - got).abs().max()))
        top2 = torch.topk(want[0], 2).values
        if int(want.argmax()) == int(got.argmax()):
            agree += 1
        elif float(top2[0] - top2[1]) > atol:
            bad += 1
    n = max(len(clips), 1)
    return Comparison(len(clips), worst, agree / n, bad)
