"""``keys create --tenant T [--name N] | list [--tenant T] | revoke ID``: API keys.

``create`` prints the key once, alone on stdout (``KEY=$(vas keys create --tenant acme)``);
only its SHA-256 is stored. A revoked key is refused from the next request on.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from app.errors import ServiceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("keys", help="create, list and revoke API keys")
    sub = parser.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key for a tenant and print it (once)")
    create.add_argument("--tenant", required=True, help="the tenant whose jobs the key may see")
    create.add_argument("--name", default="", help="a label for the key (who or what uses it)")
    create.set_defaults(handler=cmd_create)
    listing = sub.add_parser("list", help="keys with their tenant, prefix and state (never the key)")
    listing.add_argument("--tenant", default=None, help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)
    revoke = sub.add_parser("revoke", help="revoke a key by its id (see `keys list`)")
    revoke.add_argument("id")
    revoke.set_defaults(handler=cmd_revoke)


def _open_keys() -> Any:
    from app.settings import Settings
    from app.store.engine import build_engine
    from app.store.keys import SqlKeyStore
    from app.store.migrate import upgrade

    settings = Settings()
    if settings.auto_migrate:
        upgrade(settings.resolved_database_url)
    return SqlKeyStore(build_engine(settings.resolved_database_url, pool_size=1))


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def cmd_create(args: argparse.Namespace) -> int:
    from app.store.keys import validate_tenant

    try:
        validate_tenant(args.tenant)
        key, secret = _open_keys().create_key(args.tenant, args.name)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ServiceError as exc:
        return _fail(f"[{exc.code}] {exc.detail}")
    print(secret)
    print(
        f"created key {key.id} for tenant {key.tenant!r}; store it now, it cannot be shown again",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    try:
        keys = _open_keys().list_keys(args.tenant)
    except ServiceError as exc:
        return _fail(f"[{exc.code}] {exc.detail}")
    if args.json:
        rows = [
            {
                "id": k.id,
                "tenant": k.tenant,
                "name": k.name,
                "prefix": k.prefix,
                "created_at": k.created_at,
                "revoked_at": k.revoked_at,
            }
            for k in keys
        ]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"{'id':<16}  {'tenant':<20} {'prefix':<12}  {'created':<20}  {'revoked':<20}  name")
    for k in keys:
        print(
            f"{k.id:<16}  {k.tenant:<20} {k.prefix:<12}  {_when(k.created_at):<20}  "
            f"{_when(k.revoked_at):<20}  {k.name}"
        )
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace) -> int:
    try:
        key = _open_keys().revoke_key(args.id)
    except ServiceError as exc:
        return _fail(f"[{exc.code}] {exc.detail}")
    if key is None:
        return _fail(f"no key with id {args.id!r}")
    print(f"revoked key {key.id} of tenant {key.tenant!r} at {_when(key.revoked_at)}")
    return EXIT_OK
