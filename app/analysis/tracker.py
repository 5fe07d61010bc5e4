"""Linking people across keyframes: a greedy tracker on IoU and motion, and what each track did when.

Each live track predicts where its person is at the next keyframe (constant velocity from
its last two boxes, as SORT does, without the Kalman filter: keyframes are sparse and boxes
exact enough). A box continues a track when it overlaps the prediction or the last box by
IoU >= ``MIN_IOU`` (0.3); failing that, for a track seen at the keyframe before, when its
centre lies within ``NEAR`` (1.5) box sizes (the square root of the box's area) of the
predicted or the last centre (someone who stops) and its area is within ``SIZE_RATIO`` of the track's: at AVA's one
keyframe a second, someone walking across a wide shot moves more than their own width
between keyframes, and IoU alone would cut them into a new track at every keyframe. Pairs
are linked best first (every IoU link before any nearness link), each track and box once.
A track that finds no box waits ``MAX_GAP`` keyframes (a missed detection, someone passing
in front) before it ends; an unmatched box starts a new track. Greedy matching is enough
here: with few people and sparse keyframes the Hungarian assignment almost never differs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from app.analysis.detection_results import PersonDetection, Track
from app.analysis.detection_types import Box, box_iou
from app.analysis.results import Run

MIN_IOU = 0.3
NEAR = 1.5
"""How far (in the track's box sizes, the square root of its area) a box may be from the
predicted or the last centre and still continue the track when nothing overlaps it."""
SIZE_RATIO = 2.0
"""A box more than this much larger or smaller (in area) than the track's is someone else."""
MAX_GAP = 1
"""Keyframes a track may miss and still continue."""

_STILL: Box = (0.0, 0.0, 0.0, 0.0)


@dataclass
class _Live:
    id: int
    box: Box
    keyframe: int
    velocity: Box = _STILL
    """Change of each coordinate per keyframe, from the last two boxes."""

    def predicted(self, keyframe: int) -> Box:
        steps = keyframe - self.keyframe
        x1, y1, x2, y2 = (c + v * steps for c, v in zip(self.box, self.velocity, strict=True))
        return (x1, y1, x2, y2)

    def follow(self, box: Box, keyframe: int) -> None:
        steps = keyframe - self.keyframe
        d1, d2, d3, d4 = ((new - old) / steps for new, old in zip(box, self.box, strict=True))
        self.box, self.keyframe, self.velocity = box, keyframe, (d1, d2, d3, d4)


def _affinity(track: _Live, box: Box, keyframe: int, min_iou: float) -> float:
    """> 1: an IoU link (1 + IoU); in (0, 1]: a nearness link (closer is higher); 0: no link."""
    predicted = track.predicted(keyframe)
    iou = max(box_iou(predicted, box), box_iou(track.box, box))
    if iou >= min_iou:
        return 1.0 + iou
    area, own = _area(box), _area(track.box)
    if keyframe - track.keyframe != 1 or not (
        area > 0 and own > 0 and 1 / SIZE_RATIO <= area / own <= SIZE_RATIO
    ):
        return 0.0
    centre = _centre(box)
    distance = min(math.dist(_centre(predicted), centre), math.dist(_centre(track.box), centre)) / math.sqrt(
        own
    )
    return 1.0 - distance / NEAR if distance < NEAR else 0.0


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _centre(box: Box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def assign_tracks(
    keyframes: Sequence[Sequence[Box]], *, min_iou: float = MIN_IOU, max_gap: int = MAX_GAP
) -> list[list[int]]:
    """A track id (from 1) for every box of every keyframe, in the same nesting."""
    live: list[_Live] = []
    next_id = 1
    out: list[list[int]] = []
    for k, boxes in enumerate(keyframes):
        live = [t for t in live if k - t.keyframe <= max_gap + 1]
        pairs = sorted(
            (
                (_affinity(track, box, k, min_iou), -track.id, t_index, b_index)
                for t_index, track in enumerate(live)
                for b_index, box in enumerate(boxes)
            ),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for affinity, _, t_index, b_index in pairs:
            if affinity <= 0:
                break
            if t_index in taken or ids[b_index] is not None:
                continue
            taken.add(t_index)
            ids[b_index] = live[t_index].id
            live[t_index].follow(boxes[b_index], k)
        for b_index, box in enumerate(boxes):
            if ids[b_index] is None:
                ids[b_index] = next_id
                live.append(_Live(next_id, box, k))
                next_id += 1
        out.append([i for i in ids if i is not None])
    return out


def build_tracks(detections: Sequence[PersonDetection]) -> tuple[Track, ...]:
    """Each track's span (first and last keyframe) and runs: per label, consecutive keyframes
    of the track that kept it, scored by the label's mean over them."""
    by_track: dict[int, list[PersonDetection]] = defaultdict(list)
    for detection in detections:
        by_track[detection.track_id].append(detection)
    tracks = []
    for track_id in sorted(by_track):
        seen = sorted(by_track[track_id], key=lambda d: d.time)
        tracks.append(Track(track_id, seen[0].time, seen[-1].time, _runs(seen)))
    return tuple(tracks)


def _runs(seen: list[PersonDetection]) -> tuple[Run, ...]:
    """Runs of each label over consecutive keyframes of one track."""
    open_runs: dict[int, tuple[str, float, float, list[float]]] = {}
    done: list[Run] = []
    for detection in seen:
        kept = {label.class_id: label for label in detection.labels}
        for class_id in [c for c in open_runs if c not in kept]:
            done.append(_close(class_id, open_runs.pop(class_id)))
        for class_id, label in kept.items():
            name, start, _, scores = open_runs.get(
                class_id, (label.label, detection.time, detection.time, [])
            )
            open_runs[class_id] = (name, start, detection.time, [*scores, label.score])
    done.extend(_close(class_id, state) for class_id, state in open_runs.items())
    return tuple(sorted(done, key=lambda r: (r.start, -r.score, r.class_id)))


def _close(class_id: int, state: tuple[str, float, float, list[float]]) -> Run:
    name, start, end, scores = state
    return Run(label=name, class_id=class_id, start=start, end=end, score=round(sum(scores) / len(scores), 6))
