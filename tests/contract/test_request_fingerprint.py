"""One Idempotency-Key names one request: the store keeps the request's fingerprint with the
job and refuses the key for a different one (SQLite and PostgreSQL; revision 0005)."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import text

from app.domain import Job
from app.errors import IdempotencyKeyReused
from app.store import migrate
from app.store.engine import build_engine
from app.store.sql import SqlJobStore
from tests.contract.test_job_store import new_job

FIRST, OTHER = "a" * 64, "b" * 64


def test_the_same_request_gets_the_keys_job(store: SqlJobStore) -> None:
    first, created = store.create_job(new_job(key="k"), fingerprint=FIRST)
    again, created_again = store.create_job(new_job(key="k"), fingerprint=FIRST)
    assert created and not created_again and again == first
    assert store.get_job_by_idempotency_key("default", "k", fingerprint=FIRST) == first


def test_a_different_request_with_the_key_is_refused_and_inserts_nothing(store: SqlJobStore) -> None:
    first, _ = store.create_job(new_job(key="k"), fingerprint=FIRST)
    with pytest.raises(IdempotencyKeyReused, match="different request"):
        store.create_job(new_job(key="k"), fingerprint=OTHER)
    with pytest.raises(IdempotencyKeyReused):
        store.get_job_by_idempotency_key("default", "k", fingerprint=OTHER)
    assert store.get_job_by_idempotency_key("default", "k") == first, "without a fingerprint: no check"
    assert [job.id for job in store.list_jobs().items] == [first.id]


def test_the_fingerprint_is_per_tenant_like_the_key(store: SqlJobStore) -> None:
    store.create_job(new_job(key="k", tenant="a"), fingerprint=FIRST)
    _, created = store.create_job(new_job(key="k", tenant="b"), fingerprint=OTHER)
    assert created


def test_a_job_from_before_fingerprints_matches_any_request(store: SqlJobStore) -> None:
    legacy, _ = store.create_job(new_job(key="k"))  # fingerprint NULL, as rows before 0005
    assert store.get_job_by_idempotency_key("default", "k", fingerprint=OTHER) == legacy
    assert store.create_job(new_job(key="k"), fingerprint=OTHER) == (legacy, False)


@pytest.mark.parametrize("same_request", [True, False], ids=["same", "different"])
def test_concurrent_inserts_with_one_key(store: SqlJobStore, same_request: bool) -> None:
    """The race the look-up cannot see: every thread passes it, one insert wins, and each
    loser learns (from the unique constraint) whether it sent the winner's request."""
    threads_n = 6
    start = threading.Barrier(threads_n)
    created: list[Job] = []
    replayed: list[Job] = []
    refused: list[IdempotencyKeyReused] = []
    errors: list[BaseException] = []

    def submit_once(n: int) -> None:
        fingerprint = FIRST if same_request else f"{n:064d}"
        try:
            start.wait()
            job, new = store.create_job(new_job(key="race"), fingerprint=fingerprint)
            (created if new else replayed).append(job)
        except IdempotencyKeyReused as exc:
            refused.append(exc)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit_once, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(created) == 1
    if same_request:
        assert refused == [] and {job.id for job in replayed} == {created[0].id}
    else:
        assert replayed == [] and len(refused) == threads_n - 1


def test_0005_downgrade_keeps_jobs_and_their_results(empty_db_url: str) -> None:
    """Dropping the column must not rebuild ``jobs`` on SQLite: the rebuild's DROP TABLE would
    cascade to results, partial results and renders."""
    cfg = migrate.alembic_config(empty_db_url)
    command.upgrade(cfg, "head")
    engine = build_engine(empty_db_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, tenant, status, model, options, created_at, attempts,"
                    " max_attempts, updated_at, request_fingerprint)"
                    " VALUES ('j', 't', 'succeeded', 'm', '{}', 0, 0, 1, 0, :fp)"
                ),
                {"fp": FIRST},
            )
            conn.execute(text("INSERT INTO results (job_id, payload, created_at) VALUES ('j', '{}', 0)"))
        command.downgrade(cfg, "0004")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT job_id FROM results")).scalars().all() == ["j"]
        command.upgrade(cfg, "head")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT request_fingerprint FROM jobs")).scalars().all() == [None]
    finally:
        engine.dispose()
