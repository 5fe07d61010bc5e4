"""Linking people across keyframes: a greedy IoU tracker, and what each track did when.

Keyframes are a second apart (AVA's rate), so a person's box moves little between two of
them; the pair of (track, box) with the highest IoU is linked first, then the next, as long
as the IoU is at least ``MIN_IOU`` (0.3). A track that finds no box waits ``MAX_GAP``
keyframes (a missed detection, someone passing in front) before it ends; an unmatched box
starts a new track. Greedy matching is enough here: with few people and sparse keyframes
the Hungarian assignment almost never differs, and greedy never links a worse pair first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from app.analysis.detection_results import PersonDetection, Track
from app.analysis.detection_types import Box, box_iou
from app.analysis.results import Run

MIN_IOU = 0.3
MAX_GAP = 1
"""Keyframes a track may miss and still continue."""


@dataclass
class _Live:
    id: int
    box: Box
    keyframe: int


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
                (box_iou(track.box, box), -track.id, t_index, b_index)
                for t_index, track in enumerate(live)
                for b_index, box in enumerate(boxes)
            ),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for iou, _, t_index, b_index in pairs:
            if iou < min_iou:
                break
            if t_index in taken or ids[b_index] is not None:
                continue
            taken.add(t_index)
            ids[b_index] = live[t_index].id
            live[t_index].box, live[t_index].keyframe = boxes[b_index], k
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
