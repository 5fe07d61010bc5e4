"""The streaming shot detector against TransNetV2's reference windowing, and the rules that
turn its per-frame probabilities into shots."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from app.analysis.shot_runner import ShotRunner
from app.analysis.shots import ShotDetector, load_model, shots_from_predictions, transitions


def frames(n: int, seed: int = 0) -> np.ndarray:
    """Two flat colours with a hard change in the middle, plus noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 27, 48, 3), dtype=np.uint8)
    out[: n // 2] = (200, 40, 40)
    out[n // 2 :] = (30, 90, 220)
    noise = rng.integers(0, 12, out.shape, dtype=np.uint8)
    return out + noise


@pytest.mark.parametrize(("n", "batch"), [(1, 1), (50, 7), (51, 50), (137, 23)])
def test_streaming_equals_the_reference(n: int, batch: int) -> None:
    """Same padding and windows as ``TransNetV2.predict_frames``, whatever the batches."""
    video = frames(n)
    detector = ShotDetector()
    for i in range(0, n, batch):
        detector.add(video[i : i + batch], [k / 25 for k in range(i, min(i + batch, n))])
    detector.finish()
    single, many = detector.predictions()
    ref_single, ref_many = load_model().predict_frames(torch.from_numpy(video), quiet=True)
    np.testing.assert_allclose(single[:n], ref_single.numpy(), atol=1e-6)
    np.testing.assert_allclose(many[:n], ref_many.numpy(), atol=1e-6)


def test_loading_leaves_torch_as_it_was() -> None:
    import app.analysis.shots as shots

    shots._model = None
    before = torch.are_deterministic_algorithms_enabled()
    state = torch.random.get_rng_state()
    load_model()
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.equal(torch.random.get_rng_state(), state)


def test_no_frames_no_shots_and_bad_frames_refused() -> None:
    detector = ShotDetector()
    assert detector.finish() == ()
    with pytest.raises(ValueError):
        detector.add(np.zeros((2, 48, 27, 3), dtype=np.uint8), [0.0, 0.1])


def probabilities(
    n: int, single: dict[int, float], many: dict[range, float]
) -> tuple[np.ndarray, np.ndarray]:
    s, m = np.zeros(n), np.zeros(n)
    for k, v in single.items():
        s[k] = m[k] = v
    for r, v in many.items():
        m[list(r)] = v
    return s, m


def test_one_lit_frame_is_a_cut_and_a_long_many_hot_run_is_gradual() -> None:
    single, many = probabilities(100, {20: 0.9, 70: 0.6}, {range(40, 52): 0.8, range(69, 72): 0.7})
    assert transitions(single, many) == [(20, 20, "cut"), (40, 51, "gradual"), (69, 71, "gradual")]
    times = [k / 25 for k in range(100)]
    shots = shots_from_predictions(single, many, times, duration=4.0)
    assert [(round(s.start * 25), s.transition) for s in shots] == [
        (0, None),
        (21, "cut"),
        (46, "gradual"),
        (70, "gradual"),
    ]
    assert shots[-1].end == 4.0 and all(a.end == b.start for a, b in itertools.pairwise(shots))


def test_short_many_hot_blips_and_edge_transitions_are_no_shots() -> None:
    single, many = probabilities(60, {1: 0.9, 58: 0.9}, {range(30, 33): 0.9})
    shots = shots_from_predictions(single, many, [k / 30 for k in range(60)])
    assert len(shots) == 1 and shots[0].start == 0.0 and shots[0].end == pytest.approx(2.0)


def test_a_flash_between_two_alike_frames_is_dropped() -> None:
    single, many = probabilities(90, {40: 0.9, 48: 0.9}, {})
    scene, bright = np.full((27, 48, 3), 60, np.uint8), np.full((27, 48, 3), 250, np.uint8)
    times = [k / 30 for k in range(90)]
    alike = shots_from_predictions(single, many, times, lambda k: scene)
    assert len(alike) == 1
    changed = shots_from_predictions(single, many, times, lambda k: scene if k < 45 else bright)
    assert [round(s.start * 30) for s in changed] == [0, 41, 49]


def test_the_runner_reports_the_detectors_error() -> None:
    runner = ShotRunner()
    runner.add(np.zeros((1, 10, 10, 3), dtype=np.uint8), [0.0])
    with pytest.raises(ValueError):
        runner.finish()
