"""Download a catalog model's weights into the models directory, checked and atomic.

The zoo publishes no checksums, so the sha256 a download must match comes from the
caller (``models fetch --sha256``), else from ``weights.lock.json`` (a re-fetch must give
the bytes pinned before), else the first download is trusted and its hash recorded there
(later loads and fetches are checked against it). The file is streamed to a temp file
beside the target, fsynced, hashed, and renamed only when complete and matching: a
failed, partial or wrong download leaves nothing behind. A per-file lock keeps two
workers that auto-fetch at once from downloading twice.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import os
import re
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from app.analysis.catalog import missing_weights
from app.analysis.lockfile import read_lock, record_sha256
from app.analysis.spec import ModelSpec
from app.blobs import fsync_dir
from app.errors import WeightsInvalid, WeightsMissing

CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OFFLINE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ETIMEDOUT}

Progress = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None when the server did not say)."""


class HashSource(Enum):
    """Where the sha256 a download was checked against came from."""

    GIVEN = "as given"
    LOCK_FILE = "as recorded in weights.lock.json"
    FIRST_FETCH = "none known: recorded now in weights.lock.json"


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    size: int
    hash_source: HashSource


def check_sha256(value: str) -> str:
    digest = value.strip().lower()
    if not _SHA256.match(digest):
        raise ValueError(f"not a sha256 (64 hex digits): {value!r}")
    return digest


def fetch_weights(
    spec: ModelSpec,
    models_dir: Path,
    *,
    sha256: str | None = None,
    replace: bool = False,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> Fetched | None:
    """Download ``spec.url`` to ``models_dir/spec.weights``; None when the file is already
    there (and ``replace`` is false). Raises WeightsMissing when nothing usable arrived
    (offline, HTTP error, truncated, disk) and WeightsInvalid on a hash mismatch."""
    if not spec.url:
        raise missing_weights(spec, models_dir, why="the catalog has no download URL for it")
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        with _fetch_lock(models_dir, spec.weights):
            target = models_dir / spec.weights
            if target.is_file() and not replace:
                return None
            expected, source = _expected(spec, models_dir, sha256)
            digest, size = _download(spec.url, target, (expected, source), timeout=timeout, progress=progress)
            if source is not HashSource.LOCK_FILE:
                record_sha256(models_dir, spec.weights, digest)
            return Fetched(target, digest, size, source)
    except (WeightsMissing, WeightsInvalid):
        raise
    except OSError as exc:
        raise missing_weights(spec, models_dir, why=f"could not write into {models_dir}: {exc}") from exc
    except _DownloadFailed as exc:
        raise missing_weights(spec, models_dir, why=str(exc)) from exc


def _expected(spec: ModelSpec, models_dir: Path, given: str | None) -> tuple[str | None, HashSource]:
    if given is not None:
        return check_sha256(given), HashSource.GIVEN
    recorded = read_lock(models_dir).get(spec.weights)
    if recorded is not None:
        return recorded, HashSource.LOCK_FILE
    return None, HashSource.FIRST_FETCH


class _DownloadFailed(Exception):
    """Nothing usable arrived; the message says why (offline, HTTP status, truncation)."""


def _download(
    url: str,
    target: Path,
    pin: tuple[str | None, HashSource],
    *,
    timeout: float,
    progress: Progress | None,
) -> tuple[str, int]:
    expected, source = pin
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    done = 0
    try:
        with os.fdopen(fd, "wb") as out, _open(url, timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            while block := _read(response, url):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
            if total is not None and done != total:
                raise _DownloadFailed(f"download from {url} was cut short ({done} of {total} bytes)")
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if expected is not None and got != expected:
            raise WeightsInvalid(
                f"{target.name} downloaded from {url} has sha256 {got}, expected {expected} "
                f"({source.value}); nothing was written"
            )
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return got, done


def _open(url: str, timeout: float) -> http.client.HTTPResponse:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise _DownloadFailed(f"only http(s) downloads are supported, not {url!r}")
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _DownloadFailed(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _DownloadFailed(_unreachable(url, exc)) from exc
    return response


def _read(response: http.client.HTTPResponse, url: str) -> bytes:
    try:
        return response.read(CHUNK_BYTES)
    except (http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise _DownloadFailed(f"download from {url} broke off: {exc!r}") from exc


def _unreachable(url: str, exc: Exception) -> str:
    """Say plainly when the machine looks offline: that needs a different fix than a bad URL."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    host = urllib.parse.urlsplit(url).hostname
    offline = isinstance(reason, socket.gaierror | TimeoutError) or (
        isinstance(reason, OSError) and reason.errno in _OFFLINE_ERRNOS
    )
    if offline:
        return (
            f"cannot reach {host} ({reason}): this machine looks offline; on a machine with "
            f"internet access download {url}, copy it into the models directory and run "
            "`python -m app models hash NAME`"
        )
    return f"could not download {url}: {reason}"


@contextmanager
def _fetch_lock(models_dir: Path, file_name: str) -> Iterator[None]:
    with (models_dir / f".{file_name}.fetch.lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
