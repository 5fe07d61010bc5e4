"""API keys: created and revoked with the CLI, presented by clients, stored only as hashes.

A key is ``vas_`` + 43 URL-safe characters (256 random bits). The database keeps its
SHA-256 (hex) and its first ``PREFIX_LENGTH`` characters: the prefix (not secret, shown
by ``keys list``) finds the candidate rows through an index, then the hashes are
compared with ``hmac.compare_digest``. A high-entropy key needs no slow password hash:
nobody can guess a preimage of its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from app.store.engine import SqlTables
from app.store.schema import api_keys

KEY_PREFIX = "vas_"
PREFIX_LENGTH = 12
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SECRET_PATTERN = re.compile(r"^vas_[A-Za-z0-9_-]{20,200}$")


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def validate_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.match(tenant):
        raise ValueError("a tenant is 1-128 characters: letters, digits, '.', '_', '-' (not first)")
    return tenant


class KeyStore(ABC):
    @abstractmethod
    def create_key(self, tenant: str, name: str = "") -> tuple[ApiKey, str]:
        """A new active key for ``tenant``: (its record, the secret). The secret is not
        stored and cannot be shown again."""

    @abstractmethod
    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, or None (unknown, malformed or revoked)."""

    @abstractmethod
    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Oldest first, revoked ones included."""

    @abstractmethod
    def revoke_key(self, key_id: str) -> ApiKey | None:
        """Revoke (idempotent: a revoked key keeps its first revocation time); None if unknown."""


def _key_from_row(row: Any) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=m["id"],
        tenant=m["tenant"],
        name=m["name"],
        prefix=m["prefix"],
        created_at=float(m["created_at"]),
        revoked_at=None if m["revoked_at"] is None else float(m["revoked_at"]),
    )


class SqlKeyStore(SqlTables, KeyStore):
    """Keys in the job store's database (share its engine: ``SqlKeyStore(store.engine)``)."""

    def create_key(self, tenant: str, name: str = "") -> tuple[ApiKey, str]:
        validate_tenant(tenant)
        secret = new_secret()
        key = ApiKey(
            id=uuid.uuid4().hex[:16],
            tenant=tenant,
            name=name[:255],
            prefix=secret[:PREFIX_LENGTH],
            created_at=self._clock(),
        )
        values = {
            "id": key.id,
            "tenant": key.tenant,
            "name": key.name,
            "prefix": key.prefix,
            "key_hash": hash_secret(secret),
            "created_at": key.created_at,
            "revoked_at": None,
        }
        with self._write() as conn:
            conn.execute(insert(api_keys).values(**values))
        return key, secret

    def authenticate(self, secret: str) -> ApiKey | None:
        if not SECRET_PATTERN.match(secret):
            return None  # also keeps NUL and other bytes PostgreSQL refuses out of the query
        presented = hash_secret(secret)
        stmt = select(api_keys).where(api_keys.c.prefix == secret[:PREFIX_LENGTH])
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        found = None
        for row in rows:
            if hmac.compare_digest(row._mapping["key_hash"], presented):
                found = _key_from_row(row)
        return found if found is not None and found.active else None

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant is not None:
            stmt = stmt.where(api_keys.c.tenant == tenant)
        with self._read() as conn:
            return [_key_from_row(row) for row in conn.execute(stmt).all()]

    def revoke_key(self, key_id: str) -> ApiKey | None:
        with self._write() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return None if row is None else _key_from_row(row)
