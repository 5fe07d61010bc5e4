"""Key store and usage counters on real SQLite and PostgreSQL (the ``store`` fixture's database)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.store.keys import PREFIX_LENGTH, SqlKeyStore, hash_secret
from app.store.sql import SqlJobStore
from app.store.usage import SqlUsageStore
from tests.contract.conftest import FakeClock


@pytest.fixture
def keys(store: SqlJobStore, clock: FakeClock) -> SqlKeyStore:
    return SqlKeyStore(store.engine, clock=clock)


@pytest.fixture
def usage(store: SqlJobStore) -> SqlUsageStore:
    return SqlUsageStore(store.engine)


def test_create_authenticate_list_revoke(keys: SqlKeyStore, clock: FakeClock) -> None:
    key, secret = keys.create_key("acme", "ci")
    assert secret.startswith("vas_") and len(secret) >= 40 and key.prefix == secret[:PREFIX_LENGTH]
    assert keys.authenticate(secret) == key and key.active
    clock.advance(1)
    other, other_secret = keys.create_key("globex")
    assert other_secret != secret and other.id != key.id
    assert [k.id for k in keys.list_keys()] == [key.id, other.id]
    assert [k.id for k in keys.list_keys("globex")] == [other.id]

    clock.advance(5)
    revoked = keys.revoke_key(key.id)
    assert revoked is not None and revoked.revoked_at == clock.now and not revoked.active
    assert keys.authenticate(secret) is None
    assert keys.authenticate(other_secret) == other
    clock.advance(5)
    assert keys.revoke_key(key.id) == revoked, "revoking twice keeps the first time"
    assert keys.revoke_key("nope") is None


@pytest.mark.parametrize(
    "presented",
    ["", "vas_", "vas_short", "not-a-vas-key", "vas_" + "A" * 43, "vas_" + "\x00" * 43, "x" * 100_000],
)
def test_unknown_or_malformed_secrets_are_refused(keys: SqlKeyStore, presented: str) -> None:
    keys.create_key("acme")
    assert keys.authenticate(presented) is None


def test_a_secret_sharing_the_prefix_is_not_enough(keys: SqlKeyStore) -> None:
    _, secret = keys.create_key("acme")
    forged = secret[:PREFIX_LENGTH] + "B" * (len(secret) - PREFIX_LENGTH)
    assert keys.authenticate(forged) is None
    assert keys.authenticate(secret[:-1]) is None and keys.authenticate(secret + "A") is None


def test_only_hashes_are_stored(keys: SqlKeyStore, store: SqlJobStore) -> None:
    _, secret = keys.create_key("acme")
    with store.engine.connect() as conn:
        dump = conn.exec_driver_sql("SELECT * FROM api_keys").all()
    assert secret not in repr(dump) and hash_secret(secret) in repr(dump)


@pytest.mark.parametrize("tenant", ["", "../x", "a b", "-lead", "x" * 129, "é"])
def test_tenant_names_are_validated(keys: SqlKeyStore, tenant: str) -> None:
    with pytest.raises(ValueError):
        keys.create_key(tenant)


def test_consume_stays_within_the_limit(usage: SqlUsageStore) -> None:
    window = 1_700_000_000
    assert usage.used("acme", "requests", window) == 0
    assert [
        usage.consume("acme", "requests", window, 1, limit=3, expires_at=window + 2) for _ in range(4)
    ] == [
        True,
        True,
        True,
        False,
    ]
    assert usage.used("acme", "requests", window) == 3
    assert usage.consume("acme", "requests", window + 1, 1, limit=3, expires_at=window + 3)
    assert usage.consume("globex", "requests", window, 3, limit=3, expires_at=window + 2)
    assert not usage.consume("acme", "bytes", window, 11, limit=10, expires_at=window + 2)
    assert usage.used("acme", "bytes", window) == 0, "a refused first amount inserts nothing"
    assert usage.consume("acme", "bytes", window, 6, limit=10, expires_at=window + 2)
    assert not usage.consume("acme", "bytes", window, 5, limit=10, expires_at=window + 2)
    assert usage.consume("acme", "bytes", window, 4, limit=10, expires_at=window + 2)
    assert usage.consume("acme", "bytes", window, 0, limit=10, expires_at=window + 2)
    assert usage.used("acme", "bytes", window) == 10


def test_large_counts_fit(usage: SqlUsageStore) -> None:
    ten_gib = 10 * 1024**3
    assert usage.consume("acme", "upload_bytes", 0, ten_gib, limit=4 * ten_gib, expires_at=1)
    assert usage.consume("acme", "upload_bytes", 0, ten_gib, limit=4 * ten_gib, expires_at=1)
    assert usage.used("acme", "upload_bytes", 0) == 2 * ten_gib


def test_purge_expired(usage: SqlUsageStore) -> None:
    usage.consume("acme", "requests", 100, 1, limit=5, expires_at=102)
    usage.consume("acme", "requests", 200, 1, limit=5, expires_at=202)
    assert usage.purge_expired(150) == 1
    assert usage.used("acme", "requests", 100) == 0 and usage.used("acme", "requests", 200) == 1


@pytest.fixture
def usage_pair(db_url: str) -> Iterator[tuple[SqlUsageStore, SqlUsageStore]]:
    """Two replicas: separate engines (connection pools) on one database."""
    a, b = SqlJobStore(db_url, pool_size=4), SqlJobStore(db_url, pool_size=4)
    try:
        yield SqlUsageStore(a.engine), SqlUsageStore(b.engine)
    finally:
        a.close()
        b.close()


def test_concurrent_consumers_never_exceed_the_limit(usage_pair: tuple[SqlUsageStore, SqlUsageStore]) -> None:
    granted: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def hammer(store: SqlUsageStore) -> None:
        start.wait()
        for _ in range(10):
            ok = store.consume("acme", "requests", 42, 1, limit=25, expires_at=1e12)
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=hammer, args=(usage_pair[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 80 and sum(granted) == 25
    assert usage_pair[0].used("acme", "requests", 42) == 25


def test_count_active(store: SqlJobStore) -> None:
    from tests.contract.test_job_store import new_job

    for i in range(3):
        store.create_job(new_job(tenant="acme", key=f"k{i}"))
    store.create_job(new_job(tenant="globex"))
    lease = store.claim("w", 30)
    assert lease is not None
    # Jobs created within one clock tick are claimed in id order, so either tenant's may run.
    assert store.count_active("acme") == 3 and store.count_active("globex") == 1  # running counts
    store.cancel(lease.job.id)
    expected = {"acme": 3, "globex": 1}
    expected[lease.job.tenant] -= 1
    assert {t: store.count_active(t) for t in expected} == expected
    assert store.count_active("nobody") == 0
