"""A client for a running server: ``submit FILE [--wait]`` (or ``submit --source-url URL``:
the server fetches the video), ``status ID``, ``results ID``.

The server's base URL comes from ``VAS_URL`` (default ``http://127.0.0.1:8000``) or
``--url``; the API key from ``VAS_API_KEY`` (sent as ``Authorization: Bearer``). Results
go to stdout, progress and errors to stderr; the job id goes to stdout too unless
``--format`` gives stdout to the results (``submit --wait --format csv > out.csv`` must
leave a clean CSV), then to stderr. Exit codes: 0 done, 1 the job or the request failed,
2 usage or connection problems.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

import httpx

from app.cli.analyze_cmd import ranges_arg
from app.cli.progress import ProgressBar

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:8000"
FINAL = ("succeeded", "failed", "canceled")
RESULT_FORMATS = ("json", "jsonl", "csv", "vtt", "srt")
_FORM_FLAGS = (
    "model",
    "segment_seconds",
    "stride_seconds",
    "segments",
    "clips_per_segment",
    "crops",
    "top_k",
    "detect_shots",
    "segmentation",
    "max_segment_seconds",
    "callback_url",
)


def register(subparsers: Any) -> None:
    submit = subparsers.add_parser("submit", help="upload a video (or name its URL) to a running server")
    submit.add_argument("file", type=Path, nargs="?", help="the video to upload (or give --source-url)")
    submit.add_argument("--source-url", default=None, help="http(s) URL the server fetches the video from")
    submit.add_argument("--model", default=None)
    submit.add_argument("--segment-seconds", type=float, default=None)
    submit.add_argument("--stride-seconds", type=float, default=None)
    submit.add_argument(
        "--segments",
        type=ranges_arg,
        default=None,
        metavar="START:END,...",
        help="analyse these time ranges, one segment each (e.g. 0:4,10:12.5)",
    )
    submit.add_argument("--clips-per-segment", type=int, default=None)
    submit.add_argument("--crops", type=int, choices=(1, 3), default=None)
    submit.add_argument("--top-k", type=int, default=None)
    submit.add_argument(
        "--detect-shots", action="store_const", const=True, default=None, help="also find shots"
    )
    submit.add_argument("--segmentation", choices=("fixed", "shots"), default=None)
    submit.add_argument("--max-segment-seconds", type=float, default=None)
    submit.add_argument("--callback-url", default=None, help="webhook for the final state")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.add_argument(
        "--format",
        default=None,
        choices=RESULT_FORMATS,
        help="with --wait: print the results on stdout (the job id then goes to stderr)",
    )
    submit.set_defaults(handler=cmd_submit)
    status = subparsers.add_parser("status", help="a job's status on a running server")
    status.add_argument("job_id")
    status.set_defaults(handler=cmd_status)
    results = subparsers.add_parser("results", help="a finished job's results from a running server")
    results.add_argument("job_id")
    results.add_argument("--format", default="json", choices=RESULT_FORMATS)
    results.set_defaults(handler=cmd_results)
    for parser in (submit, status, results):
        parser.add_argument(
            "--url", default=None, help=f"server base URL (default: $VAS_URL or {DEFAULT_URL})"
        )


def client(args: argparse.Namespace, *, timeout: float = 30.0) -> httpx.Client:
    base = (args.url or os.environ.get("VAS_URL") or DEFAULT_URL).rstrip("/")
    headers = {"User-Agent": "vas-cli"}
    if key := os.environ.get("VAS_API_KEY", "").strip():
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=base, headers=headers, timeout=timeout)


class _Counting:
    """A file wrapper that reports how much httpx has read (the upload progress)."""

    def __init__(self, fh: BinaryIO, total: int, bar: ProgressBar) -> None:
        self.fh, self.total, self.bar, self.done = fh, max(total, 1), bar, 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.done += len(data)
        self.bar.update(self.done / self.total)
        return data

    def fileno(self) -> int:
        return self.fh.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()


def _problem(response: httpx.Response) -> int:
    try:
        body = response.json()
        message = f"{body.get('code', response.status_code)}: {body.get('detail', response.text)}"
    except ValueError:
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    print(f"error: {message}", file=sys.stderr)
    return EXIT_FAILED


def _unreachable(exc: httpx.HTTPError) -> int:
    print(
        f"error: cannot reach the server ({type(exc).__name__}: {exc}); set VAS_URL or --url", file=sys.stderr
    )
    return EXIT_USAGE


def _usage_error(args: argparse.Namespace) -> str | None:
    if (args.file is None) == (args.source_url is None):
        return "give a video FILE or --source-url URL (one of them)"
    if args.file is not None and not args.file.is_file():
        return f"{args.file} is not a file"
    if args.format and not args.wait:
        return "--format prints the results, so it needs --wait"
    return None


def _post_job(
    http: httpx.Client, args: argparse.Namespace, fields: dict[str, str], bar: ProgressBar
) -> httpx.Response:
    """Upload the file (progress on ``bar``), or send the URL for the server to fetch."""
    if args.source_url is not None:
        return http.post("/v1/jobs", json={"source_url": args.source_url, **fields})
    with args.file.open("rb") as fh:
        reader = _Counting(fh, args.file.stat().st_size, bar)
        return http.post("/v1/jobs", files={"file": (args.file.name, cast(BinaryIO, reader))}, data=fields)


def _field(value: Any) -> str:
    """A form field's text; a list (``--segments``) as its JSON, as the server reads it."""
    return json.dumps(value) if isinstance(value, list) else str(value)


def cmd_submit(args: argparse.Namespace) -> int:
    if problem := _usage_error(args):
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    fields = {name: _field(getattr(args, name)) for name in _FORM_FLAGS if getattr(args, name) is not None}
    bar = ProgressBar(f"upload {args.file.name}" if args.file else "fetch by URL")
    try:
        # A URL's job answers once the server fetched and probed the video: allow for its deadline.
        with client(args, timeout=600.0 if args.source_url else 300.0) as http:
            response = _post_job(http, args, fields, bar)
            bar.close()
            if response.status_code >= 400:
                return _problem(response)
            job = response.json()
            if args.format:
                print(f"job {job['id']}", file=sys.stderr)
            else:
                print(job["id"])
            if not args.wait:
                return EXIT_OK
            job = _follow(http, job)
            print(
                f"{job['status']}"
                + (f" ({job['error']['code']}: {job['error']['message']})" if job["error"] else ""),
                file=sys.stderr,
            )
            if job["status"] != "succeeded":
                return EXIT_FAILED
            if args.format:
                return _print_results(http, job["id"], args.format)
            return EXIT_OK
    except httpx.HTTPError as exc:
        bar.close()
        return _unreachable(exc)


def _follow(http: httpx.Client, job: dict[str, Any], poll: float = 0.5) -> dict[str, Any]:
    bar = ProgressBar(f"analyse {job['id'][:8]}")
    try:
        while job["status"] not in FINAL:
            bar.update(float(job["progress"]))
            time.sleep(poll)
            response = http.get(f"/v1/jobs/{job['id']}")
            response.raise_for_status()
            job = response.json()
        if job["status"] == "succeeded":
            bar.update(1.0)
    finally:
        bar.close()
    return job


def cmd_status(args: argparse.Namespace) -> int:
    try:
        with client(args) as http:
            response = http.get(f"/v1/jobs/{args.job_id}")
    except httpx.HTTPError as exc:
        return _unreachable(exc)
    if response.status_code >= 400:
        return _problem(response)
    json.dump(response.json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def cmd_results(args: argparse.Namespace) -> int:
    try:
        with client(args) as http:
            return _print_results(http, args.job_id, args.format)
    except httpx.HTTPError as exc:
        return _unreachable(exc)


def _print_results(http: httpx.Client, job_id: str, fmt: str) -> int:
    response = http.get(f"/v1/jobs/{job_id}/results", params={"format": fmt})
    if response.status_code >= 400:
        return _problem(response)
    if fmt == "json":
        json.dump(response.json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(response.text)
    return EXIT_OK
