"""One job's explanations (``explain``): a segment's middle clip, explained once the segment is scored.

The task offers every clip it takes (``offer``); each segment keeps only the clip whose
middle is nearest the segment's, so memory stays at one clip per segment in flight. When
the segment's last view is scored (``scored``), the PyTorch module runs forward and
backward on that clip's centre view for the segment's top-1 label (multi-label: each kept
label, up to ``MULTILABEL_MAX``), whatever backend ran the inference (ONNX Runtime and
OpenVINO have no backward pass; provenance says ``explain_backend: torch``). Maps are
small (the model's feature grid); they are put on the displayed frame at the end
(``explanations``), once the decoder has said how the video is rotated. The method follows
the model's family (``explain_methods.py``); a model without one, or one its method cannot
handle, is scored as usual and ``note`` says why it is not explained.

A method whose hooks act only for their own thread (``THREADED``) runs on a thread of its own,
so explaining overlaps decoding and inference (on another core) instead of pausing them; the
PyTorch module is built there too, on first use, when the inference runs on an export. At most
``PENDING_MAX`` scored clips wait for it (the inference thread waits beyond that), so memory
stays flat however long the video. Its errors reach the job's thread at the next ``offer``,
``scored`` or ``explanations``; ``close`` stops it (a failed or cancelled job). Other methods
run inline, between inference batches, as they must when the inference thread runs the same
module.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from app.analysis.classifier import top_k
from app.analysis.clip_views import ClipInput
from app.analysis.explain import METHOD as HIRESCAM
from app.analysis.explain import Cam, ExplainUnsupported, Geometry, display_size, register, rounded
from app.analysis.explain_methods import method_for
from app.analysis.explain_slowfast import METHOD as SLOWFAST
from app.analysis.prep import short_side_size, view_offsets
from app.analysis.results import Explanation, VideoInfo

if TYPE_CHECKING:
    from app.analysis.plan import SamplingPlan, SegmentPlan
    from app.analysis.spec import ModelSpec

MULTILABEL_MAX = 3
"""Most labels explained per segment of a multi-label model."""
PENDING_MAX = 2
"""Most scored clips waiting for the explainer thread (an x3d_s clip is about 5 MB)."""
THREADED = frozenset({HIRESCAM, SLOWFAST})
"""Methods whose hooks act only for the thread that explains (``explain.head_graph``)."""

_Work = tuple[int, list[float], ClipInput, list[int]]


class SegmentExplainer:
    """Collects one clip per segment and explains it once the segment is scored."""

    def __init__(
        self,
        module: nn.Module | Callable[[], nn.Module],
        spec: ModelSpec,
        labels: tuple[str, ...],
        plan: SamplingPlan,
        used: dict[str, Any],
    ) -> None:
        """``module``: the PyTorch module, or how to get it (built on first use)."""
        self._module, self.spec, self.labels, self.used = module, spec, labels, used
        self.crops = int(used["crops"])
        self.middles = {seg.index: (seg.start + seg.end) / 2 for seg in plan.segments}
        self.expected = {seg.index: len(seg.clips) * self.crops for seg in plan.segments}
        self._clips: dict[int, tuple[list[float], ClipInput]] = {}
        self._cams: list[tuple[int, list[float], Cam]] = []
        method = method_for(spec.builder)
        self.method = None if isinstance(method, str) else method
        self.note: str | None = method if isinstance(method, str) else None
        """Why the segments are not explained (None: they are); for the provenance."""
        self.seconds = 0.0
        """Time spent making maps (the explainer's own; on its thread, it overlaps the rest)."""
        self.threaded = self.method is not None and self.method.name in THREADED
        self._queue: queue.Queue[_Work | None] = queue.Queue(maxsize=PENDING_MAX)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stopped = threading.Event()

    @property
    def module(self) -> nn.Module:
        if not isinstance(self._module, nn.Module):
            self._module = self._module()
        return self._module

    def extend(self, segments: tuple[SegmentPlan, ...]) -> None:
        """Segments planned later (``segmentation=shots``)."""
        self.middles.update({seg.index: (seg.start + seg.end) / 2 for seg in segments})
        self.expected.update({seg.index: len(seg.clips) * self.crops for seg in segments})

    def offer(self, segment: int, times: list[float], views: list[ClipInput]) -> None:
        """A clip the task took: kept if its middle is the nearest yet to the segment's."""
        self._raise()
        if self.note is not None or self._stopped.is_set():
            return
        if self.threaded and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="explainer", daemon=True)
            self._thread.start()
        view = views[len(views) // 2]  # the centre crop of three
        middle = self.middles[segment]
        kept = self._clips.get(segment)
        if kept is None or abs(_mid(times) - middle) < abs(_mid(kept[0]) - middle):
            # a decoder's buffer may be reused; SlowFast's pathways are a list
            copy = view.copy() if isinstance(view, np.ndarray) else [v.copy() for v in view]
            self._clips[segment] = (list(times), copy)

    def scored(self, segment: int, views_done: int, probs: np.ndarray) -> None:
        """Explain ``segment`` once all its views are scored (``probs``: its combined scores);
        on the explainer's thread, this waits only while ``PENDING_MAX`` clips wait for it."""
        self._raise()
        if views_done < self.expected[segment] or segment not in self._clips:
            return
        times, view = self._clips.pop(segment)
        if self.method is None or self.note is not None or self._stopped.is_set():
            return
        multi = self.spec.task == "multilabel"
        chosen = top_k(probs, self.labels, MULTILABEL_MAX if multi else 1, float(self.used["min_score"]))
        if not chosen:
            return
        work = (segment, times, view, [label.class_id for label in chosen])
        if self.threaded:
            self._queue.put(work)
        else:
            self._explain(work)

    def close(self) -> None:
        """Stop the thread without explaining what still waits (the job failed or was
        cancelled); waits for the map in hand, if any. Idempotent."""
        self._stopped.set()
        self._clips.clear()
        self._join()

    def _join(self) -> None:
        """End the thread: after the maps still waiting, or at once if stopped."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            if self._stopped.is_set():
                while True:  # only the job's thread puts: once drained, the end marker fits
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        break
            self._queue.put(None)
            thread.join()
        self._stopped.set()

    def _run(self) -> None:
        try:
            self.module  # noqa: B018 (built now, while the first segments are scored)
        except BaseException as exc:  # re-raised in the job's thread
            self._error = exc
        while (work := self._queue.get()) is not None:
            if self._error is not None or self._stopped.is_set():
                continue  # drained until the end marker: ``put`` never blocks for good
            try:
                self._explain(work)
            except BaseException as exc:  # re-raised in the job's thread
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._stopped.set()
            raise error

    def _explain(self, work: _Work) -> None:
        segment, times, view, class_ids = work
        if self.method is None or self.note is not None:
            return
        started = time.monotonic()
        try:
            inputs = (
                torch.from_numpy(view)
                if isinstance(view, np.ndarray)
                else [torch.from_numpy(v) for v in view]
            )
            cams = self.method.explain(self.module, inputs, class_ids)
        except ExplainUnsupported as exc:
            self.note = (
                f"{self.method.name} cannot explain {self.spec.name}: {exc}; "
                "the segments are scored but not explained"
            )
            self._cams.clear()
            return
        finally:
            self.seconds += time.monotonic() - started
        self._cams.extend((segment, times, cam) for cam in cams)

    def explanations(self, video: VideoInfo) -> tuple[Explanation, ...]:
        """Every map, registered to the displayed frame of ``video``, once the thread made the
        last (its error, if any, raised here)."""
        self._join()
        self._raise()
        display = display_size(video.width, video.height, video.rotation)
        short_side, crop = self.spec.crop_geometry(self.crops)
        scaled = short_side_size(*display, short_side)
        offsets = view_offsets(*scaled, crop, self.crops)
        geometry = Geometry(display, scaled, crop, offsets[len(offsets) // 2])
        out = []
        for segment, times, cam in sorted(self._cams, key=lambda item: item[0]):
            grid = register(cam.cam, geometry)
            steps = grid.shape[0]
            step_times = [_mid(_step(times, k, steps)) for k in range(steps)]
            out.append(
                Explanation(
                    segment=segment,
                    label=self.labels[cam.class_id],
                    class_id=cam.class_id,
                    method=self.method.name if self.method else "",
                    frames=tuple((t, round(w, 3)) for t, w in zip(times, cam.frame_weights, strict=True)),
                    times=tuple(round(t, 6) for t in step_times),
                    data=rounded(grid),
                )
            )
        return tuple(out)


def _mid(times: list[float]) -> float:
    return (times[0] + times[-1]) / 2 if times else 0.0


def _step(times: list[float], k: int, steps: int) -> list[float]:
    """The clip frames feature step ``k`` of ``steps`` covers."""
    n = len(times)
    return times[k * n // steps : max(k * n // steps + 1, (k + 1) * n // steps)]
