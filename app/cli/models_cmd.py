"""``models list | fetch NAME | hash NAME``: the catalog and its weights files."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from app.errors import ServiceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CHUNK_BYTES = 1 << 20


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="the model catalog: list, fetch, hash, export, import")
    sub = parser.add_subparsers(dest="models_command", required=True)
    listing = sub.add_parser("list", help="catalog models, clip specs and weight status")
    listing.add_argument("--json", action="store_true", help="print the catalog as JSON")
    listing.set_defaults(handler=cmd_list)
    fetch = sub.add_parser("fetch", help="download a model's zoo weights into the models dir")
    fetch.add_argument("name")
    fetch.add_argument("--timeout", type=float, default=30.0, help="network timeout, seconds")
    fetch.set_defaults(handler=cmd_fetch)
    hashing = sub.add_parser("hash", help="record the sha256 of a present weights file in weights.lock.json")
    hashing.add_argument("name")
    hashing.set_defaults(handler=cmd_hash)
    from app.cli import export_cmd

    export_cmd.add_subcommands(sub)


def _models_dir() -> Path:
    from app.settings import Settings

    return Settings().models_dir


def _fail(exc: ServiceError) -> int:
    print(f"error [{exc.code}]: {exc.detail}", file=sys.stderr)
    return EXIT_FAILED if exc.code != "unknown_model" else EXIT_USAGE


def cmd_list(args: argparse.Namespace) -> int:
    from app.analysis.catalog import load_catalog

    try:
        items = load_catalog(_models_dir()).describe()
    except ServiceError as exc:
        return _fail(exc)
    if args.json:
        json.dump(items, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"{'name':<26} {'T x tau':>8} {'clip s':>6} {'side/crop':>9} {'top1':>6} {'params':>7}  weights")
    for m in items:
        spec = f"{m['frames']}x{m['sampling_rate']}"
        top1 = f"{m['top1']:.2f}" if m["top1"] is not None else "-"
        params = f"{m['params_m']:.2f}M" if m["params_m"] is not None else "-"
        status = "present" if m["weights_present"] else f"missing ({m['weights']})"
        if m["sha256"]:
            status += f" sha256 {m['sha256'][:12]}"
        geometry = f"{m['short_side']}/{m['crop']}"
        print(
            f"{m['name']:<26} {spec:>8} {m['clip_seconds']:6.3f} {geometry:>9} {top1:>6} {params:>7}  {status}"
        )
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    from app.analysis.catalog import load_catalog
    from app.analysis.lockfile import record_sha256

    models_dir = _models_dir()
    try:
        spec = load_catalog(models_dir).get(args.name)
    except ServiceError as exc:
        return _fail(exc)
    if not spec.url:
        print(
            f"error: {spec.name} has no download URL; put {spec.weights} into {models_dir}", file=sys.stderr
        )
        return EXIT_FAILED
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / spec.weights
    try:
        digest = download(spec.url, target, timeout=args.timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(
            f"error: could not download {spec.weights} from {spec.url} ({reason}); on a machine with internet "
            f"access download that URL and copy the file into {models_dir}, then run `models hash {spec.name}`",
            file=sys.stderr,
        )
        return EXIT_FAILED
    record_sha256(models_dir, spec.weights, digest)
    print(f"{target} sha256 {digest} (recorded in weights.lock.json)")
    return EXIT_OK


def download(url: str, target: Path, *, timeout: float = 30.0) -> str:
    """Stream ``url`` to ``target`` atomically (temp + fsync + rename); returns the sha256."""
    from app.cli.progress import ProgressBar

    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    bar = ProgressBar(target.name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(CHUNK_BYTES):
                out.write(block)
                digest.update(block)
                done += len(block)
                if total:
                    bar.update(done / total)
            if total and done != total:
                raise OSError(f"incomplete download: {done} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return digest.hexdigest()


def cmd_hash(args: argparse.Namespace) -> int:
    from app.analysis.catalog import load_catalog
    from app.analysis.lockfile import record_sha256

    models_dir = _models_dir()
    try:
        spec = load_catalog(models_dir).get(args.name)
    except ServiceError as exc:
        return _fail(exc)
    if not (models_dir / spec.weights).is_file():
        print(f"error [weights_missing]: {spec.weights} is not in {models_dir}", file=sys.stderr)
        return EXIT_FAILED
    digest = record_sha256(models_dir, spec.weights)
    print(f"{spec.weights} sha256 {digest} (recorded in weights.lock.json)")
    return EXIT_OK
