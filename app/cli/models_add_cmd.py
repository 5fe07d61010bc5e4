"""``models add NAME --checkpoint FILE --arch ARCH --labels FILE`` and ``models remove NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.errors import ServiceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_subcommands(sub: Any) -> None:
    add = sub.add_parser(
        "add",
        help="register a fine-tuned checkpoint as a model (weights, labels, manifest entry, hash)",
        description="ARCH is a catalog model (e.g. x3d_s, slowfast_r50): the new model is built like it, "
        "with its head sized to the labels, and analyses clips with its recipe (frames, rate, crop, mean/std).",
    )
    add.add_argument("name", help="catalog name of the new model")
    add.add_argument("--checkpoint", type=Path, required=True, help="the fine-tuned .pyth/.pt file")
    add.add_argument("--arch", required=True, help="catalog model whose builder and clip recipe to use")
    add.add_argument("--labels", type=Path, required=True, help="class names: JSON array or .txt, one a line")
    add.add_argument("--multilabel", action="store_true", help="independent sigmoid score per label")
    add.add_argument(
        "--from-pyslowfast", action="store_true", help="convert PySlowFast module names (s1.pathway0_stem...)"
    )
    add.add_argument("--override", action="store_true", help="NAME is a built-in model: replace it")
    add.set_defaults(handler=cmd_add)
    remove = sub.add_parser("remove", help="remove a model added with `models add` (entry, weights, hash)")
    remove.add_argument("name")
    remove.add_argument("--override", action="store_true", help="remove the override of a built-in model")
    remove.set_defaults(handler=cmd_remove)


def _models_dir() -> Path:
    from app.settings import Settings

    return Settings().models_dir


def _fail(exc: ServiceError) -> int:
    print(f"error [{exc.code}]: {exc.detail}", file=sys.stderr)
    return EXIT_USAGE if exc.code == "unknown_model" else EXIT_FAILED


def cmd_add(args: argparse.Namespace) -> int:
    from app.analysis.catalog import load_catalog
    from app.analysis.custom_model import AddRequest, add_model

    for path in (args.checkpoint, args.labels):
        if not path.is_file():
            print(f"error: {path} is not a file", file=sys.stderr)
            return EXIT_USAGE
    request = AddRequest(
        args.name,
        args.checkpoint,
        args.arch,
        args.labels,
        args.multilabel,
        args.from_pyslowfast,
        args.override,
    )
    models_dir = _models_dir()
    try:
        spec = add_model(models_dir, request)
    except ServiceError as exc:
        return _fail(exc)
    item = next(m for m in load_catalog(models_dir).describe() if m["name"] == spec.name)
    json.dump(item, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from app.analysis.catalog import builtin_names, builtin_weights, load_catalog
    from app.analysis.registry import manifest_entry, remove_entry

    models_dir = _models_dir()
    builtin = args.name in builtin_names()
    if builtin and not args.override:
        print(f"error: {args.name!r} is a built-in model and cannot be removed", file=sys.stderr)
        return EXIT_USAGE
    try:
        if manifest_entry(models_dir, args.name) is None:
            load_catalog(models_dir).get(args.name)  # unknown: says which models exist
            print(f"error: {args.name!r} is not in {models_dir}/manifest.json", file=sys.stderr)
            return EXIT_USAGE
        deleted = remove_entry(models_dir, args.name, builtin_weights())
    except ServiceError as exc:
        return _fail(exc)
    print(f"removed {args.name}" + (f" ({', '.join(deleted)} deleted)" if deleted else ""))
    return EXIT_OK
