"""One exception tree for the whole service. Each class has a stable ``code``.

ServiceError
 ├── RequestError            the client asked for something invalid (HTTP 4xx, see api/problems.py)
 │    ├── NotFound           unknown job, route or model (code: not_found)
 │    ├── JobNotFinished     results asked for too early (code: job_not_finished)
 │    ├── RenderFailed       the annotated video failed to render; ?retry=1 (code: render_failed; 409)
 │    ├── InvalidOptions     bad form fields or job options (code: invalid_options)
 │    │    ├── UnknownModel      model name not in the catalog (code: unknown_model)
 │    │    └── InvalidSourceUrl  source_url not http(s), or it reaches a refused address (code: invalid_source_url)
 │    ├── UploadTooLarge     body over the configured limit (code: upload_too_large)
 │    │    └── SourceTooLarge    the video at source_url is over it (code: source_too_large)
 │    ├── UnsupportedMedia   not a video: text, playlist, unreadable (code: unsupported_media)
 │    │    ├── FormatNotAllowed  demuxer not on the allow-list (code: format_not_allowed)
 │    │    └── NoVideoStream     a readable container without video, e.g. audio only (code: no_video_stream)
 │    ├── MediaLimitExceeded  a media limit from settings (upload probe or worker decode)
 │    │    ├── VideoTooLong      longer than max_duration_seconds (code: video_too_long)
 │    │    ├── FrameTooLarge     more pixels per frame than max_frame_pixels (code: frame_too_large)
 │    │    └── TooManyStreams    more streams than max_streams (code: too_many_streams)
 │    ├── ProbeFailed        the sandboxed upload probe crashed or hit a resource limit (code: probe_failed)
 │    │    └── ProbeTimeout      the probe ran past probe_timeout_seconds (code: probe_timeout)
 │    ├── Unauthorized       no, unknown or revoked API key (code: unauthorized; 401 + WWW-Authenticate)
 │    ├── RateLimited        a per-tenant limit was reached (code: rate_limited; 429 + Retry-After)
 │    ├── UploadTimeout      the upload body stalled past upload_read_timeout_seconds (code: upload_timeout; 408)
 │    ├── SourceUnreachable  source_url not fetched: no such host, refused, HTTP error, redirects (code: source_unreachable; 422)
 │    │    └── SourceTimeout     the fetch ran past source_fetch_timeout_seconds (code: source_timeout)
 │    ├── IdempotencyKeyReused  an Idempotency-Key sent again with a different request (code: idempotency_key_reused)
 │    └── BadUpload          malformed multipart body, missing/duplicate file part (code: bad_upload)
 ├── Unavailable             database or storage unreachable right now (code: unavailable)
 │    └── InsufficientStorage  the disk of the videos or the database is full (code: insufficient_storage; 507)
 ├── LeaseLost               a worker's lease token no longer owns the job (never shown to clients)
 ├── DataDirUnusable         serve/worker/migrate cannot create or write the data dir (code: data_dir_unusable)
 ├── ExportUnconvertible     `models export` met a layer the target framework cannot express (code: export_unconvertible)
 └── AnalysisError           a job failed inside the engine; ``retryable`` says if another attempt may help
      ├── WeightsMissing     weights file absent from the models dir (code: weights_missing)
      ├── WeightsInvalid     hash or key/shape mismatch (code: weights_invalid)
      ├── ManifestInvalid    manifest.json / zoo.json / labels file malformed (code: manifest_invalid)
      ├── VideoUnreadable    container/codec cannot be decoded (code: video_unreadable)
      ├── NoFrames           the video or the asked-for time range has no decodable frame (code: no_frames)
      ├── DecoderFault       the sandboxed decode child failed; retried, then the job fails with its code
      │    ├── DecoderCrashed        killed by a signal or died unexpectedly (code: decoder_crashed)
      │    ├── DecoderTimeout        over its wall-clock allowance (code: timeout)
      │    └── DecoderResourceLimit  over its memory or CPU-time limit (code: resource_limit; not retried)
      ├── JobTimeout         the whole job ran past its wall-clock budget (code: timeout; not retried)
      └── WorkerStopping     the worker is shutting down; the job is released, not failed
"""

from __future__ import annotations


class ServiceError(Exception):
    """Something went wrong in the video analysis service."""

    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip().splitlines()[0]
        self.extra = extra
        super().__init__(self.detail)


class RequestError(ServiceError):
    """The request cannot be served as sent."""

    code = "bad_request"
    title = "Bad request"


class NotFound(RequestError):
    """No such resource."""

    code = "not_found"
    title = "Not found"


class JobNotFinished(RequestError):
    """The job has no results (yet)."""

    code = "job_not_finished"
    title = "Job not finished"


class RenderFailed(RequestError):
    """The annotated video could not be rendered; ``?retry=1`` queues it again."""

    code = "render_failed"
    title = "Render failed"


class InvalidOptions(RequestError):
    """The job options are invalid."""

    code = "invalid_options"
    title = "Invalid options"


class UnknownModel(InvalidOptions):
    """The requested model is not in the catalog."""

    code = "unknown_model"
    title = "Unknown model"


class InvalidSourceUrl(InvalidOptions):
    """``source_url`` is no absolute http(s) URL, or it (or a redirect) reaches a refused address."""

    code = "invalid_source_url"
    title = "Invalid source URL"


class UploadTooLarge(RequestError):
    """The upload is larger than this service accepts."""

    code = "upload_too_large"
    title = "Upload too large"


class SourceTooLarge(UploadTooLarge):
    """The video at ``source_url`` is larger than this service accepts."""

    code = "source_too_large"
    title = "Source too large"


class UnsupportedMedia(RequestError):
    """The upload is not a video this service can read."""

    code = "unsupported_media"
    title = "Unsupported media"


class FormatNotAllowed(UnsupportedMedia):
    """The container format is not on this service's allow-list."""

    code = "format_not_allowed"
    title = "Format not allowed"


class NoVideoStream(UnsupportedMedia):
    """A readable container without a video stream (audio only, subtitles, data)."""

    code = "no_video_stream"
    title = "No video stream"


class MediaLimitExceeded(RequestError):
    """The video exceeds a media limit of this service.

    Raised by the upload probe (the request is refused) and while a worker decodes
    (the job fails with the subclass's code; another attempt would not help)."""

    code = "media_limit_exceeded"
    title = "Media limit exceeded"


class VideoTooLong(MediaLimitExceeded):
    """The video is longer than this service accepts."""

    code = "video_too_long"
    title = "Video too long"


class FrameTooLarge(MediaLimitExceeded):
    """The video's frames have more pixels than this service accepts."""

    code = "frame_too_large"
    title = "Frame too large"


class TooManyStreams(MediaLimitExceeded):
    """The file has more streams than this service accepts."""

    code = "too_many_streams"
    title = "Too many streams"


class ProbeFailed(RequestError):
    """The upload could not be examined: its sandboxed probe crashed or exceeded a resource limit.

    The file made FFmpeg misbehave while it was read; only this request is refused."""

    code = "probe_failed"
    title = "Probe failed"


class ProbeTimeout(ProbeFailed):
    """Examining the upload took longer than this service allows."""

    code = "probe_timeout"
    title = "Probe timed out"


class Unauthorized(RequestError):
    """A valid API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str | None = None, *, invalid_token: bool = False) -> None:
        super().__init__(detail)
        challenge = 'Bearer realm="video-analysis"'
        if invalid_token:
            challenge += ', error="invalid_token"'
        self.headers = {"WWW-Authenticate": challenge}


class RateLimited(RequestError):
    """A per-tenant limit was reached; retry later."""

    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, limit: str, retry_after: int) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(detail, limit=limit, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


class UploadTimeout(RequestError):
    """The upload body stalled: no bytes arrived for ``upload_read_timeout_seconds``.

    The connection is closed with the answer (the rest of the body is not awaited)."""

    code = "upload_timeout"
    title = "Upload timed out"
    headers = {"Connection": "close"}


class SourceUnreachable(RequestError):
    """The video at ``source_url`` could not be fetched (its answer is named in the detail)."""

    code = "source_unreachable"
    title = "Source unreachable"


class SourceTimeout(SourceUnreachable):
    """Fetching ``source_url`` took longer than ``source_fetch_timeout_seconds``."""

    code = "source_timeout"
    title = "Source timed out"


class IdempotencyKeyReused(RequestError):
    """The Idempotency-Key already names a job submitted with a different request (file,
    model or options); use a new key for a new request."""

    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class BadUpload(RequestError):
    """The multipart body is malformed or has no single file part."""

    code = "bad_upload"
    title = "Bad upload"


class Unavailable(ServiceError):
    """A backing service (database, storage) is unavailable; retry later."""

    code = "unavailable"
    title = "Service unavailable"


class InsufficientStorage(Unavailable):
    """The disk holding the uploaded videos or the database is full; retry once space is freed.

    An ``Unavailable`` (retry later, nothing kept), told apart so that clients get 507 and
    operators a log line that names the disk rather than an unreachable database."""

    code = "insufficient_storage"
    title = "Insufficient storage"
    headers = {"Retry-After": "60"}  # read by problems.py, as an instance's own headers are


class LeaseLost(ServiceError):
    """The worker no longer holds the job's lease (expired, canceled or taken over)."""

    code = "lease_lost"
    title = "Lease lost"


class DataDirUnusable(ServiceError):
    """The data dir cannot be created or written: the process refuses to start (never HTTP)."""

    code = "data_dir_unusable"
    title = "Data dir unusable"


class ExportUnconvertible(ServiceError):
    """A layer of the model has no equivalent in the export's target framework (the message
    names the layer and its op; never HTTP)."""

    code = "export_unconvertible"
    title = "Layer cannot be converted"


class AnalysisError(ServiceError):
    """The analysis of a video failed."""

    code = "analysis_failed"
    title = "Analysis failed"
    retryable: bool = True
    keep_code: bool = False
    """Retryable errors whose code the job keeps when the last attempt fails this way
    (instead of ``attempts_exhausted``)."""


class WeightsMissing(AnalysisError):
    """The model's weights file is not in the models directory."""

    code = "weights_missing"
    title = "Weights missing"
    retryable = False


class WeightsInvalid(AnalysisError):
    """The weights file does not match the model (hash, keys or shapes)."""

    code = "weights_invalid"
    title = "Weights invalid"
    retryable = False


class ManifestInvalid(AnalysisError):
    """The model manifest (or a labels file it names) is malformed."""

    code = "manifest_invalid"
    title = "Model manifest invalid"
    retryable = False


class VideoUnreadable(AnalysisError):
    """The video cannot be opened or decoded."""

    code = "video_unreadable"
    title = "Video unreadable"
    retryable = False


class NoFrames(AnalysisError):
    """The video (or the requested time range) has no decodable frames."""

    code = "no_frames"
    title = "No frames"
    retryable = False


class DecoderFault(AnalysisError):
    """The sandboxed decoder failed."""

    code = "decoder_fault"
    title = "Decoder fault"
    retryable = True
    keep_code = True


class DecoderCrashed(DecoderFault):
    """The decoder process crashed (killed by a signal or exited unexpectedly)."""

    code = "decoder_crashed"
    title = "Decoder crashed"


class DecoderTimeout(DecoderFault):
    """The decoder did not finish within its wall-clock allowance."""

    code = "timeout"
    title = "Decoder timed out"


class DecoderResourceLimit(DecoderFault):
    """The decoder exceeded its memory or CPU-time limit.

    Deterministic, so not retried: the same file decoded under the same limits needs the same
    memory and CPU time again (a MemoryError under RLIMIT_AS, SIGXCPU, or the OOM killer's
    SIGKILL). The other faults are retried: a crash (SIGSEGV, an unexpected exit) may be the
    machine's rather than the file's, and a wall-clock timeout depends on the load; their last
    attempt keeps the code."""

    code = "resource_limit"
    title = "Decoder resource limit"
    retryable = False


class JobTimeout(AnalysisError):
    """The job ran past its wall-clock budget (``job_timeout_*`` settings); not retried, since
    another attempt would take as long, and the worker moves on to the next job."""

    code = "timeout"
    title = "Job timed out"
    retryable = False


class WorkerStopping(AnalysisError):
    """The worker is shutting down; the job goes back to the queue."""

    code = "worker_stopping"
    title = "Worker stopping"
