"""Every file of the shared real-world corpus (``../shared/data/videos``, MANIFEST.tsv) through
the HTTP API and a real worker, with the outcome each must have. Files whose licence allows
it are kept in ``tests/data`` (see PROVENANCE.md) and used from there; a file found in
neither place is skipped, with its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_VIDEOS
from tests.integration.conftest import Service
from tests.security.outcome import outcome

pytestmark = pytest.mark.anyio
DATA = REPO / "tests" / "data"

# file -> outcome; "succeeded", "failed <code>" or "<status> <code>" (refused at upload).
EXPECTED: dict[str, str] = {
    "decord_flipping_a_pancake.mkv": "succeeded",
    "decord_video_0.mov": "succeeded",
    "decord_video_90.mov": "succeeded",
    "fate_av1_b8-05-mv.ivf": "succeeded",
    "fate_h264_high-qp_10bit.mkv": "succeeded",
    "fate_h264_spherical.mp4": "succeeded",
    "fate_h264_streamloop.flv": "succeeded",
    "fate_h264small.ts": "succeeded",
    "fate_hevc_dovi-p81.mp4": "succeeded",
    "fate_matrixbench_mpeg2.mpg": "succeeded",
    "fate_mjpeg_avid_meridian_ntsc.mov": "succeeded",
    "fate_mpeg2_interlaced_t.ts": "succeeded",
    "fate_prores_with_alpha.mov": "succeeded",
    "fate_theora_offset_test.ogv": "succeeded",
    "fate_vp8_dash_video4.webm": "succeeded",
    "fate_vp9_2pass-akiyo.webm": "succeeded",
    "fate_xdcam8mp2-1s_small.ts": "succeeded",
    "fuzzcorpus_Stirling_engine_anim.ogv": "succeeded",
    "fuzzcorpus_barsandtone_vp6.flv": "succeeded",
    "fuzzcorpus_bear_mpeg4asp_mp3.avi": "succeeded",
    "fuzzcorpus_matroska_16x8.mkv": "succeeded",
    "fuzzcorpus_mozilla_A4.ogv": "succeeded",
    "fuzzcorpus_mozilla_audio_only_aac.mp4": "415 no_video_stream",
    "fuzzcorpus_mozilla_bug1079747.mp4": "415 unsupported_media",
    "fuzzcorpus_mozilla_moof-testfragmented.mp4": "succeeded",
    "fuzzcorpus_mozilla_vp9_mp3_32x18.mp4": "succeeded",
    "fuzzcorpus_mozilla_xtrem-sport.mp4": "succeeded",
    "fuzzcorpus_mpeg4-amr_nb.3gp": "succeeded",
    "imageio_cockatoo.mp4": "succeeded",
    "imageio_realshort.mp4": "succeeded",
    "mmaction2_demo.mp4": "succeeded",
    "mmaction2_test.avi": "succeeded",
    "mmaction2_test.mp4": "succeeded",
    "mmaction2_test_video_structuralize.mp4": "succeeded",
    "mp4parse_bbb_mp4v_1f.mp4": "succeeded",
    "mp4parse_bipbop_nonfragment_header.mp4": "415 unsupported_media",
    "mp4parse_hevc_white_frame.mp4": "succeeded",
    "mp4parse_tiny_av1.mp4": "succeeded",
    "mp4parse_video_rotation_90.mp4": "succeeded",
    "small_mp4-with-audio.mp4": "415 no_video_stream",
}


def locate(name: str) -> Path | None:
    for folder in (DATA, SHARED_VIDEOS):
        if (folder / name).is_file():
            return folder / name
    return None


def test_the_table_covers_the_whole_corpus() -> None:
    manifest = SHARED_VIDEOS / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} is not present")
    listed = {line.split("\t", 1)[0] for line in manifest.read_text().splitlines()[1:] if line.strip()}
    assert listed == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_corpus_file(service: Service, name: str) -> None:
    path = locate(name)
    if path is None:
        pytest.skip(f"{name} is in neither tests/data nor {SHARED_VIDEOS}")
    # Whole-video segments and one clip each: the outcome, not the labels, is under test.
    assert await outcome(service, path, segment_seconds="3600", top_k="1") == EXPECTED[name]
