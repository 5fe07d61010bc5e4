"""The CLI's decode, planned and started before torch is imported.

``python -m app analyze`` starts its first decode child at once; the child scans the video
(demux only) in a few tenths of a second, but the engine that plans the job exists only
after ``import torch`` and the model's load, about two seconds later on two vCPUs (when the
model runs on torch; on an OpenVINO export no torch is imported, and the engine is ready
sooner): until then the decode children sat idle beside a core that was importing. Planning needs no torch
(the catalog's spec, the options, the scan), so a thread here waits for the scan, plans the
job as the engine does (``plan_for_scan`` with the same settings; torch's linspace emulated,
``plan.WITHOUT_TORCH``, or the export report's answers: where the emulation's rounding
differed, the plans differ and the engine starts its own children), and starts every
decode child on its part (``decode_parts``; the others start now, once the split says how many,
on a thread that outlives them). The engine adopts it (``Analyzer.adopt_early``)
and uses these children when its own plan and fast-decode choice are the same; otherwise it
closes them and starts its own. A failure on the way (an unreadable video, bad options) is
left for the engine to meet and report as it always does.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from app.analysis.decode_parts import start_parts
from app.analysis.decode_split import children_for, split_plan
from app.analysis.plan import WITHOUT_TORCH, plan_for_scan
from app.analysis.sandbox_spares import SpareChildren
from app.errors import ServiceError

if TYPE_CHECKING:
    from app.analysis.decode_sandbox import DecodeSandbox
    from app.analysis.limits import MediaLimits
    from app.analysis.plan import SamplingPlan
    from app.analysis.spec import ModelSpec
    from app.options import JobOptions
    from app.settings import Settings

log = logging.getLogger(__name__)


class EarlyDecode:
    """A thread that plans the job from the first child's scan and starts the children."""

    def __init__(
        self,
        sandbox: DecodeSandbox,
        video_path: Path,
        spec: ModelSpec,
        options: JobOptions,
        settings: Settings,
        media_limits: MediaLimits,
    ) -> None:
        self.sandbox = sandbox
        self.planned = False
        """Whether the first child was given a plan (then it serves no other)."""
        self._started: tuple[SamplingPlan, bool, list[DecodeSandbox]] | None = None
        self._taken = False
        self._spares = SpareChildren(0)
        """The other children, started once the split says how many (a short video needs only the
        first) on the pool's thread, which lives until ``close``: a child dies with the thread
        that started it (``PR_SET_PDEATHSIG``), and this one's ends when the children start."""
        self._job = (video_path, spec, options, settings, media_limits)
        self._thread = threading.Thread(target=self._run, name="early-decode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        video_path, spec, options, settings, media_limits = self._job
        WITHOUT_TORCH.set(True)  # this thread's context only: planning must not import torch
        try:
            scan = self.sandbox.scan()
            plan = plan_for_scan(spec, options, scan, max_segments=settings.max_segments_per_job)
            fast = 0 < settings.fast_decode_min_seconds <= scan.duration
            parts = split_plan(scan, plan, children_for(settings.decode_children))
            self._spares.refill(len(parts) - 1)
            self.planned = True
            started = start_parts(
                self.sandbox,
                video_path,
                settings.allowed_format_list,
                media_limits,
                threads=settings.decode_threads,
                scan=scan,
                parts=parts,
                fast=fast,
                spares=self._spares,
            )
        except (ServiceError, OSError) as exc:  # the engine meets it again and reports it
            log.debug("early decode not started: %s", exc)
            return
        except Exception:
            log.warning("early decode failed; the engine starts its own", exc_info=True)
            return
        self._started = (plan, fast, started)

    def wait(self) -> None:
        self._thread.join()

    def take(self, plan: SamplingPlan, fast: bool) -> list[DecodeSandbox] | None:
        """The started children when they decode ``plan`` with ``fast``; else None (and any
        started ones are closed, the first child too once it was given a plan)."""
        self.wait()
        self._taken = True
        started, self._started = self._started, None
        if started is not None and started[:2] == (plan, fast):
            log.debug("the early decode's %d child(ren) taken", len(started[2]))
            return started[2]
        if started is not None:
            log.warning("the early decode planned another job than the engine: started again")
            for child in started[2]:
                child.close()
        elif self.planned:
            self.sandbox.close()
        return None

    def close(self) -> None:
        """After the job: close the children it started if the engine never took them (the
        first child is the caller's to close), and end the thread the others were started on."""
        self.wait()
        started, self._started = self._started, None
        if started is not None and not self._taken:
            for child in started[2][1:]:
                child.close()
        self._spares.close()
