"""Jobs refused at submission because the worker would certainly fail them.

The form (``forms.py``) checks each field alone; these checks need the catalog's models
directory or the probed video. A job refused here costs the client one 422 instead of a
202 followed, seconds or an hour later, by a failed job:

* the model's weights are not where the workers look (``weights_missing``: the worker's
  own ``catalog.missing_weights`` error, naming ``python -m app models fetch``), unless
  workers may fetch them themselves (``auto_fetch`` and a download URL);
* the options cut the probed video into more than ``max_segments_per_job`` segments
  (``invalid_options``, naming the count and the limit), by the rule the planner applies;
* a chosen range (``segments``) ends after the probed video (``invalid_options``, naming it);
* a detection model with neither a person detector nor the caller's ``boxes``, ``boxes`` for
  a model that is not a detection model, a person detector named as the job's model, box
  times after the probed video, or more keyframes than ``max_segments_per_job``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from app.analysis.catalog import missing_weights
from app.analysis.segmenting import analysed_range, require_ranges_inside, segment_count, segment_lengths
from app.errors import InvalidOptions, NoFrames

if TYPE_CHECKING:
    from app.analysis.catalog import Catalog
    from app.domain import VideoInfo
    from app.options import JobOptions
    from app.settings import Settings


def require_weights(catalog: Catalog, model: str, settings: Settings) -> None:
    """WeightsMissing (422) when ``model``'s weights file is not in the catalog's models dir,
    the directory this API is configured with (workers are deployed with the same)."""
    spec = catalog.get(model)
    if catalog.weights_present(spec) or (settings.auto_fetch and spec.url):
        return
    raise missing_weights(spec, catalog.models_dir)


def require_segment_limit(
    catalog: Catalog, model: str, options: JobOptions, video: VideoInfo, settings: Settings
) -> None:
    """InvalidOptions (422) when the options cut the probed video into more segments than
    ``max_segments_per_job``, or name a range (``segments``) ending after it. A video of
    unknown duration, or a ``start``/``end`` past its end, is left to the worker (which
    applies the same limit, or fails the job ``no_frames``)."""
    if video.duration is None:
        return
    if catalog.get(model).task == "detection":
        require_keyframes_inside(options, video.duration, settings.max_segments_per_job)
        return
    if options.segments is not None:
        require_ranges_inside(video.duration, options.segments, limit=settings.max_segments_per_job)
        return
    _, stride = segment_lengths(catalog.get(model), options)
    if options.segmentation == "shots":  # at least one segment per max_segment_seconds
        stride = options.max_segment_seconds
    try:
        start, stop = analysed_range(video.duration, start=options.start, end=options.end)
    except NoFrames:
        return
    segment_count(start, stop, stride, limit=settings.max_segments_per_job)


def require_detection_inputs(catalog: Catalog, model: str, options: JobOptions, settings: Settings) -> None:
    """InvalidOptions (422) when the job's people cannot come from anywhere, or ``boxes`` are
    given to a model that does not read them; WeightsMissing when the detector's weights are
    not there (as for the model's own)."""
    spec = catalog.get(model)
    if spec.task == "person_detector":
        raise InvalidOptions(f"model {model!r} is a person detector, not a job model: name a detection model")
    if spec.task != "detection":
        if options.boxes is not None:
            raise InvalidOptions(
                f"boxes are for detection models; {model!r} labels whole frames ({spec.task})"
            )
        return
    if options.boxes is not None:
        return
    if spec.person_detector is None:
        raise InvalidOptions(
            f"model {model!r} has no person detector: give the people as boxes "
            '(e.g. [{"time": 1, "boxes": [[0.1, 0.2, 0.4, 0.9]]}])'
        )
    require_weights(catalog, spec.person_detector, settings)


def require_keyframes_inside(options: JobOptions, duration: float, limit: int) -> None:
    """Box times inside the video; at most ``limit`` keyframes (the planner's rule)."""
    if options.boxes is not None:
        late = [entry.time for entry in options.boxes if entry.time > duration]
        if late:
            raise InvalidOptions(f"boxes at {late[0]:g} s: after the video's end ({duration:g} s)")
        count = len(options.boxes)
    else:
        stop = duration if options.end is None else min(options.end, duration)
        count = max(1, math.ceil((stop - options.start) / options.keyframe_seconds - 0.5))
    if count > limit:
        raise InvalidOptions(
            f"{count:,} keyframes exceed the limit of {limit:,} per job (raise keyframe_seconds)"
        )
