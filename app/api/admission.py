"""Jobs refused at submission because the worker would certainly fail them.

The form (``forms.py``) checks each field alone; these checks need the catalog's models
directory or the probed video. A job refused here costs the client one 422 instead of a
202 followed, seconds or an hour later, by a failed job:

* the model's weights are not where the workers look (``weights_missing``: the worker's
  own ``catalog.missing_weights`` error, naming ``python -m app models fetch``), unless
  workers may fetch them themselves (``auto_fetch`` and a download URL);
* the options cut the probed video into more than ``max_segments_per_job`` segments
  (``invalid_options``, naming the count and the limit), by the rule the planner applies;
* a chosen range (``segments``) ends after the probed video (``invalid_options``, naming it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.analysis.catalog import missing_weights
from app.analysis.segmenting import analysed_range, require_ranges_inside, segment_count, segment_lengths
from app.errors import NoFrames

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
    if options.segments is not None:
        require_ranges_inside(video.duration, options.segments, limit=settings.max_segments_per_job)
        return
    _, stride = segment_lengths(catalog.get(model), options)
    try:
        start, stop = analysed_range(video.duration, start=options.start, end=options.end)
    except NoFrames:
        return
    segment_count(start, stop, stride, limit=settings.max_segments_per_job)
