"""``models list | fetch NAME... | hash NAME | schema`` (and ``add``/``remove``, ``export``/``import``):
the catalog and its weights files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.errors import ServiceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models", help="the model catalog: list, fetch, hash, add, remove, export, import"
    )
    sub = parser.add_subparsers(dest="models_command", required=True)
    listing = sub.add_parser("list", help="catalog models, clip specs and weight status")
    listing.add_argument("--json", action="store_true", help="print the catalog as JSON")
    listing.set_defaults(handler=cmd_list)
    fetch = sub.add_parser("fetch", help="download models' zoo weights into the models dir, sha256-checked")
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument(
        "--sha256", type=_sha256, default=None, help="expected sha256 of the file (one NAME only)"
    )
    fetch.add_argument("--force", action="store_true", help="download again when the file is present")
    fetch.add_argument("--timeout", type=float, default=30.0, help="network timeout, seconds")
    fetch.set_defaults(handler=cmd_fetch)
    hashing = sub.add_parser("hash", help="record the sha256 of a present weights file in weights.lock.json")
    hashing.add_argument("name")
    hashing.set_defaults(handler=cmd_hash)
    schema = sub.add_parser("schema", help="print the JSON Schema of models/manifest.json")
    schema.set_defaults(handler=cmd_schema)
    from app.cli import export_cmd, models_add_cmd

    export_cmd.add_subcommands(sub)
    models_add_cmd.add_subcommands(sub)


def _sha256(text: str) -> str:
    from app.analysis.fetch import check_sha256

    try:
        return check_sha256(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _models_dir() -> Path:
    from app.settings import Settings

    return Settings().models_dir


def _fail(exc: ServiceError) -> int:
    print(f"error [{exc.code}]: {exc.detail}", file=sys.stderr)
    return EXIT_FAILED if exc.code != "unknown_model" else EXIT_USAGE


def cmd_list(args: argparse.Namespace) -> int:
    from app.analysis.catalog import load_catalog

    try:
        catalog = load_catalog(_models_dir())
    except ServiceError as exc:
        return _fail(exc)
    for skipped in catalog.skipped:
        print(f"warning: manifest entry {skipped.name!r} skipped: {skipped.reason}", file=sys.stderr)
    items = catalog.describe()
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
    from app.analysis.fetch import HashSource, fetch_weights

    if args.sha256 is not None and len(args.names) > 1:
        print("error: --sha256 names the hash of one file: fetch one model with it", file=sys.stderr)
        return EXIT_USAGE
    models_dir = _models_dir()
    try:
        catalog = load_catalog(models_dir)
    except ServiceError as exc:
        return _fail(exc)
    status = EXIT_OK
    for name in args.names:
        bar = _DownloadBar(name)
        try:
            spec = catalog.get(name)
            if spec.url:
                print(f"fetching {spec.weights} for {spec.name} from {spec.url}", file=sys.stderr)
            fetched = fetch_weights(
                spec, models_dir, sha256=args.sha256, replace=args.force, timeout=args.timeout, progress=bar
            )
        except ServiceError as exc:
            bar.close()
            status = max(status, _fail(exc))
            continue
        bar.close()
        if fetched is None:
            print(f"{spec.weights} is already in {models_dir} (--force downloads it again)")
            continue
        print(f"{fetched.path}: {fetched.size} bytes, sha256 {fetched.sha256} ({fetched.hash_source.value})")
        if fetched.hash_source is HashSource.FIRST_FETCH:
            print(
                "note: the model zoo publishes no checksums, so this first download was trusted; later "
                "loads and fetches of this file are checked against the hash now in weights.lock.json",
                file=sys.stderr,
            )
    return status


class _DownloadBar:
    """Progress of one download on stderr, redrawn only when the whole percentage changes."""

    def __init__(self, label: str) -> None:
        from app.cli.progress import ProgressBar

        self._bar, self._shown = ProgressBar(label), -1

    def __call__(self, done: int, total: int | None) -> None:
        if total:
            percent = done * 100 // total
            if percent != self._shown:
                self._shown = percent
                self._bar.update(done / total)

    def close(self) -> None:
        self._bar.close()


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


def cmd_schema(args: argparse.Namespace) -> int:
    from app.analysis.catalog import builtin_names
    from app.analysis.manifest import manifest_json_schema

    json.dump(manifest_json_schema(builtin_names()), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK
