"""What the parent tells a sandboxed child: one config per kind of work, and the test faults.

The first message on a child's socket is one of these (pickled); it says what the child is
for (``sandbox_child`` describes the rest of each conversation). They live apart from the
child program so that the parent side of a probe (the API process) imports neither numpy
nor the decode code to build one.

``ChildConfig.fault`` / ``ProbeConfig.fault`` / ``RenderConfig.fault`` are test hooks: the
parent passes them only when a test sets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.analysis.limits import MediaLimits
    from app.analysis.prep import FramePrep
    from app.analysis.scan import VideoScan

FAULTS = ("segfault", "hang", "oom")


def check_fault(kind: str, fault: str | None) -> None:
    """Reject a test fault the child would not know (``kind`` names the child in the message)."""
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown {kind} fault {fault!r}; one of {FAULTS}")


@dataclass(frozen=True)
class ChildConfig:
    path: str
    allowed_formats: tuple[str, ...]
    limits: MediaLimits
    prep: FramePrep
    frames: int
    threads: int
    slots: int
    slot_bytes: int
    memory_bytes: int | None
    cpu_seconds: float | None
    """CPU-time limit until the scan is known (then ``cpu_per_video_second`` raises it)."""
    cpu_per_video_second: float
    fault: str | None = None
    fault_stage: str = "decode"
    """Where ``fault`` strikes: ``scan`` (before the scan) or ``decode`` (after the first clip)."""
    scan: VideoScan | None = None
    """The video's scan, known already (a second decode child): the child does not scan
    (nor send it) and waits for its plan at once."""


@dataclass(frozen=True)
class ProbeConfig:
    """``probe.probe_video`` of one upload, under ``memory_bytes`` and ``cpu_seconds``."""

    path: str
    filename: str
    allowed_formats: tuple[str, ...]
    limits: MediaLimits
    memory_bytes: int | None
    cpu_seconds: float | None
    fault: str | None = None
    """Test hook: fail this way before probing (``FAULTS``)."""


@dataclass(frozen=True)
class RenderConfig:
    """``annotate.render`` of one finished job's video, under ``memory_bytes`` and ``cpu_seconds``."""

    source: str
    target: str
    part: str
    """The temp file the child writes; the parent removes it whatever happens to the child."""
    segments: tuple[dict[str, Any], ...]
    allowed_formats: tuple[str, ...]
    limits: MediaLimits
    max_height: int
    threads: int
    memory_bytes: int | None
    cpu_seconds: float | None
    fault: str | None = None
    """Test hook: fail this way mid-encode, once the partial file exists (``FAULTS``)."""
    lines: int | None = 3
    """Labels drawn per cue (None: every kept label, for a multi-label model)."""
    explanations: tuple[dict[str, Any], ...] = ()
    detections: tuple[dict[str, Any], ...] = ()
    """A detection job's people (``box_overlay``): boxes in track colours with their actions."""
    """The results' maps: blended on the video (``overlay=heatmap``), or drawn as pictures."""
    pictures: bool = False
    """Draw the explanation pictures into the folder ``part`` and publish it as ``target``
    (``explain_pictures.write_pictures``) instead of a video."""
