"""``segmentation=shots`` in pieces: shots -> segments and clips (``shot_plan``), the grid frames
kept on disk past memory (``grid_store``), and shots known before the video's end
(``shot_stream.final_shots``: always a prefix of the shots of the whole video)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from app.analysis.grid_store import GridStore, ShotClip, ShotClipQueue
from app.analysis.plan import model_clip_seconds
from app.analysis.results import Shot
from app.analysis.shot_plan import ShotPlanner, default_clips, grid_frames, shot_parts
from app.analysis.shot_stream import final_shots
from app.analysis.shots import shots_from_predictions
from app.errors import InvalidOptions
from app.options import JobOptions

F = Fraction
FPS, FRAMES, RATE = 30, 8, 4
"""The demo model's clip: 8 frames every 4 at 30 fps (32/30 s)."""
CLIP = F(FRAMES * RATE, FPS)


def frame_times(count: int, fps: int = FPS) -> tuple[Fraction, ...]:
    return tuple(F(i, fps) for i in range(count))


def planner(count: int, **kwargs: object) -> ShotPlanner:
    times = frame_times(count)
    options = {"clips_per_segment": None, "max_segment_seconds": 10.0, "limit": 1000, **kwargs}
    return ShotPlanner(
        times,
        F(count, FPS),
        grid_frames(times, CLIP / FRAMES),
        frames=FRAMES,
        clip_seconds=CLIP,
        **options,  # type: ignore[arg-type]
    )


def test_a_long_shot_is_cut_into_the_fewest_equal_parts() -> None:
    assert shot_parts(F(0), F(180), F(10)) == [(F(10 * i), F(10 * i + 10)) for i in range(18)]
    parts = shot_parts(F(2), F(27), F(10))
    assert len(parts) == 3 and {b - a for a, b in parts} == {F(25, 3)} and parts[-1][1] == 27
    assert shot_parts(F(0), F(10), F(10)) == [(F(0), F(10))]
    assert shot_parts(F(1), F(1, 2) + 1, F(10)) == [(F(1), F(3, 2))]


def test_default_clips_per_segment_is_the_length_over_the_clip_rounded_from_1_to_10() -> None:
    assert default_clips(F(1, 5), CLIP) == 1
    assert default_clips(3 * CLIP, CLIP) == 3
    assert default_clips(F(5, 2) * CLIP, CLIP) == 3  # half up
    assert default_clips(F(24, 10) * CLIP, CLIP) == 2
    assert default_clips(F(60), CLIP) == 10
    assert model_clip_seconds.__name__  # the planner's clip is the model's (plan.model_clip_seconds)


def test_the_grid_takes_one_frame_per_model_frame_spacing() -> None:
    assert grid_frames(frame_times(30), CLIP / FRAMES) == tuple(range(0, 30, 4))
    assert grid_frames(frame_times(12, fps=5), CLIP / FRAMES) == tuple(range(12))  # slower than the grid
    uneven = (F(0), F(1, 10), F(3, 10), F(31, 100), F(6, 10))
    assert grid_frames(uneven, F(3, 10)) == (0, 2, 4)


SHOTS = [Shot(0, 0.0, 3.0, None), Shot(1, 3.0, 3.2, "cut"), Shot(2, 3.2, 10.0, "cut")]
"""10 s at 30 fps: a 3 s shot, a 0.2 s one (shorter than a clip), a 6.8 s one."""


def test_one_segment_per_shot_its_clips_spread_over_it_and_inside_the_shot() -> None:
    plans = planner(300)
    segments = plans.plan(SHOTS[:1]) + plans.plan(SHOTS[1:], last=True)
    assert [(s.index, s.start, s.end) for s in segments] == [(0, 0.0, 3.0), (1, 3.0, 3.2), (2, 3.2, 10.0)]
    assert [len(s.clips) for s in segments] == [3, 1, 6]  # 2.81, 0.19 and 6.38 clip lengths
    grid = set(plans.grid)
    for seg, shot in zip(segments, SHOTS, strict=True):
        for clip in seg.clips:
            assert len(clip.frames) == FRAMES and set(clip.frames) <= grid
            assert all(shot.start * FPS <= i < shot.end * FPS for i in clip.frames), (seg.index, clip)
            assert shot.start <= clip.window_start < clip.window_end <= shot.end
        centres = [float(c.window_start + c.window_end) / 2 for c in seg.clips]
        assert centres == sorted(centres)
    short = segments[1].clips[0]
    assert len(set(short.frames)) < FRAMES, "a shot shorter than a clip repeats its frames"
    middle = segments[2].clips[2]
    assert float(middle.window_end - middle.window_start) == pytest.approx(float(CLIP))
    assert float(middle.window_start + middle.window_end) / 2 == pytest.approx(3.2 + 6.8 * 5 / 12)


def test_an_explicit_clips_per_segment_wins_and_start_end_bound_the_parts() -> None:
    segments = planner(300, clips_per_segment=2, max_segment_seconds=2.0, start=1.0, end=8.0).plan(
        SHOTS, last=True
    )
    assert all(len(s.clips) == 2 for s in segments)
    bounds = [(s.start, s.end) for s in segments]
    assert bounds[:2] == [(1.0, 3.0), (3.0, 3.2)] and len(bounds) == 5  # 4.8 s left: 3 parts of 1.6
    assert segments[-1].end == 8.0 and all(s.end - s.start == pytest.approx(1.6) for s in segments[2:])
    assert [s.index for s in segments] == list(range(len(segments)))


def test_more_segments_than_the_job_limit_is_refused() -> None:
    with pytest.raises(InvalidOptions, match="more than 3 segments"):
        planner(3000, limit=3).plan([Shot(0, 0.0, 100.0, None)], last=True)


@pytest.mark.parametrize(
    ("fields", "conflict"),
    [
        ({"segments": ((0.0, 4.0),)}, "segments conflicts with segmentation"),
        ({"segment_seconds": 2.0}, "segmentation=shots conflicts with segment_seconds"),
        ({"stride_seconds": 1.0}, "segmentation=shots conflicts with stride_seconds"),
    ],
)
def test_shots_conflict_with_other_ways_of_cutting(fields: dict[str, object], conflict: str) -> None:
    with pytest.raises(ValueError, match=conflict):
        JobOptions(segmentation="shots", **fields)  # type: ignore[arg-type]
    JobOptions(**fields)  # type: ignore[arg-type]  # fine with fixed windows


def test_grid_frames_past_memory_wait_on_disk_and_their_space_is_reused() -> None:
    store = GridStore(memory_bytes=1000)
    frames = {i: np.random.default_rng(i).random((4, 5, 3), dtype=np.float32) for i in range(50)}
    for i, frame in frames.items():
        store.put(i, frame, i / 10)
    assert store.spilled >= 45
    for i in (0, 17, 49):
        got, time = store.get(i)
        assert np.array_equal(got, frames[i]) and time == i / 10
    size = store.disk_bytes
    store.release_below(40)
    for i in range(50, 80):
        store.put(i, frames[i - 50], i / 10)
    assert store.disk_bytes == size, "released space is written again"
    assert np.array_equal(store.get(55)[0], frames[5])
    store.close()


def test_a_planned_clip_comes_out_once_its_frames_are_in() -> None:
    queue = ShotClipQueue(memory_bytes=10**6)
    queue.plan([ShotClip(0, 0, (0, 4, 4)), ShotClip(0, 1, (4, 8, 8))], keep_from=4)
    queue.add(0, np.zeros((2, 2, 3), np.float32), 0.0)
    queue.add(4, np.ones((2, 2, 3), np.float32), 0.4)
    assert list(queue.ready()) == []
    queue.add(8, np.full((2, 2, 3), 2, np.float32), 0.8)
    out = list(queue.ready())
    assert [(c.index, times) for c, _, times in out] == [(0, [0.0, 0.4, 0.4]), (1, [0.4, 0.8, 0.8])]
    assert not queue.waiting
    queue.close()


def predictions(seed: int, count: int = 900) -> tuple[np.ndarray, np.ndarray, list[float], np.ndarray]:
    """Made-up network outputs: cuts (1-2 lit frames), dissolves (long many-hot runs), flashes
    (two cuts around alike frames) at random places; and 48x27 frames, one scene per shot."""
    rng = np.random.default_rng(seed)
    single = rng.uniform(0, 0.3, count)
    many = rng.uniform(0, 0.3, count)
    scene = np.zeros(count, dtype=np.int64)
    k = 10
    while k < count - 40:
        kind = rng.choice(["cut", "dissolve", "flash", "near"])
        if kind == "cut":
            single[k : k + rng.integers(1, 3)] = 0.9
            scene[k:] += 1
        elif kind == "dissolve":
            many[k : k + 12] = 0.8
            scene[k + 6 :] += 1
        elif kind == "flash":
            single[k], single[k + 5] = 0.9, 0.9
        else:  # two cuts 4 frames apart, new scenes: no flash
            single[k], single[k + 4] = 0.9, 0.9
            scene[k:] += 1
            scene[k + 4 :] += 1
        k += int(rng.integers(8, 80))
    pictures = np.stack([np.full((27, 48, 3), (s * 47) % 256, np.uint8) for s in scene])
    return single, many, [i / FPS for i in range(count)], pictures


@pytest.mark.parametrize("seed", range(6))
def test_shots_final_early_are_the_shots_of_the_whole_video(seed: int) -> None:
    single, many, times, pictures = predictions(seed)
    whole = shots_from_predictions(single, many, times, lambda i: pictures[i])
    assert len(whole) > 5
    seen = 0
    for n in range(1, len(times) + 1, 5):
        early = final_shots(single[:n], many[:n], times[:n], lambda i: pictures[i])
        assert early == list(whole[: len(early)]), n
        assert len(early) >= seen, "a final shot stays final"
        seen = len(early)
    assert seen >= len(whole) - 3, "all but the shots near the end are known before it"
