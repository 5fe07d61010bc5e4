"""Splitting one video's decode between several children at keyframes (``decode_children``).

Decoding is sequential within a GOP but not across random-access points: a pass that
starts at a keyframe gives every later frame exactly as a pass from the beginning does.
So the plan is cut at keyframes (from the scan: demux only) into parts of about equal
length; each part is decoded by its own child from its keyframe (the first from the
beginning, or from the last keyframe before a late ``start``). Pure arithmetic on the scan
and the plan (no av, no torch).

A segment goes whole to one part (the last one starting at or before its first frame),
so each segment's clips come from one child, in their order. A part's pass runs until its
last segment's last frame, which may lie past the next part's keyframe (a clip straddling
it): that stretch is decoded twice, and the clips are the same as from one pass.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.analysis.plan import SamplingPlan, SegmentPlan
    from app.analysis.scan import VideoScan

MIN_PART_SECONDS = 10.0
"""A part shorter than this (in video time) is not worth a child's start (~0.3 CPU-s)."""


def children_for(setting: int) -> int:
    """``decode_children`` resolved: 0 means two children where this process may use two or
    more cores (measured: two beat one in every idle round of ``make bench``), else one."""
    if setting > 0:
        return setting
    return 2 if len(os.sched_getaffinity(0)) >= 2 else 1


@dataclass(frozen=True)
class DecodePart:
    plan: SamplingPlan
    """The segments this part decodes (the whole plan's frame times, a subset of its segments)."""
    start_pts: int | None
    """The keyframe this part's pass starts at; None: the beginning of the video."""
    first_frame: int
    last_frame: int
    """Frame indices of the stretch this part's pass decodes (both included)."""


def split_plan(
    scan: VideoScan, plan: SamplingPlan, parts: int, *, min_part_seconds: float = MIN_PART_SECONDS
) -> tuple[DecodePart, ...]:
    """``plan`` cut into at most ``parts`` parts at keyframes, each at least
    ``min_part_seconds`` long; a single whole part where the video cannot be cut so."""
    for count in range(max(parts, 1), 1, -1):
        cut = _cut(scan, plan, count)
        if len(cut) == count and all(_seconds(scan, part) >= min_part_seconds for part in cut):
            return cut
    whole = max((i for clip in plan.clips for i in clip.frames), default=0)
    return (DecodePart(plan, None, 0, whole),)


def _seconds(scan: VideoScan, part: DecodePart) -> float:
    return scan.frame_times[part.last_frame] - scan.frame_times[part.first_frame]


def _cut(scan: VideoScan, plan: SamplingPlan, count: int) -> tuple[DecodePart, ...]:
    """Parts starting at the keyframes nearest ``i / count`` of the stretch to decode: from
    the last keyframe at or before the first sampled frame to the last sampled frame."""
    segments = [s for s in plan.segments if s.clips]
    if not segments or not scan.keyframes or not scan.packet_times:
        return ()
    first = min(i for s in segments for clip in s.clips for i in clip.frames)
    last = max(i for s in segments for clip in s.clips for i in clip.frames)
    starts = [max((k for k in scan.keyframes if k <= first), default=0)]
    for k in range(1, count):
        target = starts[0] + k * (last + 1 - starts[0]) / count
        nearest = min(scan.keyframes, key=lambda i: (abs(i - target), i))
        if nearest > starts[-1]:
            starts.append(nearest)
    groups: list[list[SegmentPlan]] = [[] for _ in starts]
    for segment in segments:
        begins = min(i for clip in segment.clips for i in clip.frames)
        groups[bisect_right(starts, begins) - 1].append(segment)
    out = []
    for start, group in zip(starts, groups, strict=True):
        if not group:
            continue
        end = max(i for s in group for clip in s.clips for i in clip.frames)
        pts = scan.frame_pts[start] if start else None
        out.append(DecodePart(replace(plan, segments=tuple(group)), pts, start, end))
    return tuple(out)
