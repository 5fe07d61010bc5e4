"""A Hypothesis state machine over the job lifecycle, on real SQLite and PostgreSQL.

Random interleavings of submit, claim, renew, progress, complete, fail (retryable or
not), release, cancel, delete, lease expiry and the exhausted-lease sweep, driven by
several "workers" whose leases may have gone stale. After every step the store must
agree with a small model, and the invariants hold for every job:

* a job that reached a final state keeps exactly that state (one final state);
* results exist only for succeeded jobs (and every succeeded job has them);
* attempts never exceed max_attempts; finished_at is set exactly for final jobs;
* a stale lease (expired and re-claimed, canceled, finished) can change nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete

from app.domain import JobError, JobStatus, Lease, NewJob, VideoInfo
from app.errors import LeaseLost
from app.store.job_leases import ATTEMPTS_EXHAUSTED
from app.store.schema import jobs as jobs_table
from app.store.schema import results as results_table
from app.store.sql import SqlJobStore
from tests.contract.conftest import FakeClock

LEASE = 30.0
VIDEO = VideoInfo("v.mp4", 10, 1.0, 64, 48, 25.0, "h264", 0)
FINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}


@dataclass
class Model:
    created_at: float
    max_attempts: int
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    token: str | None = None
    expires_at: float | None = None
    error_code: str | None = None
    ever_final: JobStatus | None = None


class Lifecycle(RuleBasedStateMachine):
    leases = Bundle("leases")

    def __init__(self, store: SqlJobStore, clock: FakeClock) -> None:
        super().__init__()
        self.store, self.clock = store, clock
        self.jobs: dict[str, Model] = {}
        with store.engine.begin() as conn:  # every example starts from an empty queue
            conn.execute(delete(results_table))
            conn.execute(delete(jobs_table))

    # -- helpers

    def _valid(self, lease: Lease) -> bool:
        model = self.jobs.get(lease.job.id)
        return model is not None and model.status is JobStatus.RUNNING and model.token == lease.token

    def _claimable(self) -> list[str]:
        now = self.clock.now
        ready = [
            (m.created_at, job_id)
            for job_id, m in self.jobs.items()
            if m.attempts < m.max_attempts
            and (
                m.status is JobStatus.QUEUED
                or (m.status is JobStatus.RUNNING and m.expires_at is not None and m.expires_at < now)
            )
        ]
        return [job_id for _, job_id in sorted(ready)]

    def _finish(self, job_id: str, status: JobStatus, code: str | None = None) -> None:
        model = self.jobs[job_id]
        assert model.ever_final is None, "a job reaches a final state once"
        model.status, model.token, model.expires_at, model.error_code = status, None, None, code
        model.ever_final = status

    # -- rules

    @rule(max_attempts=st.integers(1, 3))
    def submit(self, max_attempts: int) -> None:
        job_id = str(uuid.uuid4())
        new = NewJob(job_id, "x3d_s", {}, VIDEO, f"k{job_id}", max_attempts, tenant="machine")
        job, created = self.store.create_job(new)
        assert created and job.status is JobStatus.QUEUED
        self.jobs[job_id] = Model(created_at=job.created_at, max_attempts=max_attempts)
        self.clock.advance(0.001)

    @rule(target=leases, worker=st.sampled_from(["w1", "w2", "w3"]))
    def claim(self, worker: str) -> Lease | None:
        expected = self._claimable()
        lease = self.store.claim(worker, LEASE)
        if not expected:
            assert lease is None
            return None
        assert lease is not None and lease.job.id == expected[0], (lease, expected)
        model = self.jobs[lease.job.id]
        model.status, model.token, model.expires_at = JobStatus.RUNNING, lease.token, lease.expires_at
        model.attempts += 1
        assert lease.job.attempts == model.attempts
        return lease

    @rule(lease=leases)
    def renew(self, lease: Lease | None) -> None:
        if lease is None:
            return
        valid = self._valid(lease)
        try:
            renewed = self.store.renew(lease, LEASE)
        except LeaseLost:
            assert not valid
            return
        assert valid
        self.jobs[lease.job.id].expires_at = renewed.expires_at

    @rule(lease=leases, fraction=st.floats(0, 1))
    def progress(self, lease: Lease | None, fraction: float) -> None:
        if lease is None:
            return
        valid = self._valid(lease)
        try:
            self.store.report_progress(lease, fraction)
        except LeaseLost:
            assert not valid
            return
        assert valid

    @rule(lease=consumes(leases))
    def complete(self, lease: Lease | None) -> None:
        if lease is None:
            return
        valid = self._valid(lease)
        try:
            job = self.store.complete(lease, {"segments": [], "job": lease.job.id})
        except LeaseLost:
            assert not valid
            return
        assert valid and job.status is JobStatus.SUCCEEDED
        self._finish(job.id, JobStatus.SUCCEEDED)

    @rule(lease=consumes(leases), retryable=st.booleans())
    def fail(self, lease: Lease | None, retryable: bool) -> None:
        if lease is None:
            return
        valid = self._valid(lease)
        try:
            job = self.store.fail(lease, JobError("boom", "it broke"), retryable=retryable)
        except LeaseLost:
            assert not valid
            return
        assert valid
        model = self.jobs[job.id]
        if retryable and model.attempts < model.max_attempts:
            model.status, model.token, model.expires_at = JobStatus.QUEUED, None, None
            model.error_code = "boom"
        else:
            self._finish(job.id, JobStatus.FAILED, ATTEMPTS_EXHAUSTED if retryable else "boom")

    @rule(lease=consumes(leases))
    def release(self, lease: Lease | None) -> None:
        if lease is None:
            return
        valid = self._valid(lease)
        try:
            self.store.release(lease)
        except LeaseLost:
            assert not valid
            return
        assert valid
        model = self.jobs[lease.job.id]
        model.status, model.token, model.expires_at = JobStatus.QUEUED, None, None
        model.attempts = max(0, model.attempts - 1)

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        model = self.jobs[job_id]
        job = self.store.cancel(job_id, "machine")
        assert job is not None
        if model.status in FINAL:
            assert job.status is model.status
        else:
            assert job.status is JobStatus.CANCELED
            self._finish(job_id, JobStatus.CANCELED, model.error_code)

    @precondition(lambda self: any(m.status in FINAL for m in self.jobs.values()))
    @rule(data=st.data())
    def delete_finished(self, data: st.DataObject) -> None:
        done = sorted(job_id for job_id, m in self.jobs.items() if m.status in FINAL)
        job_id = data.draw(st.sampled_from(done))
        assert self.store.delete_job(job_id, "machine")
        assert self.store.get_job(job_id) is None and self.store.get_results(job_id) is None
        del self.jobs[job_id]

    @rule(seconds=st.sampled_from([1.0, LEASE / 2, LEASE + 1]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def sweep_exhausted(self) -> None:
        swept = set(self.store.fail_exhausted())
        now = self.clock.now
        expected = {
            job_id
            for job_id, m in self.jobs.items()
            if m.status is JobStatus.RUNNING
            and m.expires_at is not None
            and m.expires_at < now
            and m.attempts >= m.max_attempts
        }
        assert swept & set(self.jobs) == expected
        for job_id in expected:
            self._finish(job_id, JobStatus.FAILED, ATTEMPTS_EXHAUSTED)

    # -- invariants

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        for job_id, model in self.jobs.items():
            job = self.store.get_job(job_id)
            assert job is not None
            assert job.status is model.status, (job_id, job.status, model)
            assert job.attempts == model.attempts <= job.max_attempts == model.max_attempts
            if model.ever_final is not None:
                assert job.status is model.ever_final
            assert (job.finished_at is not None) == (job.status in FINAL)
            assert (job.lease_expires_at is not None) == (job.status is JobStatus.RUNNING)
            if model.error_code is not None and job.status is not JobStatus.SUCCEEDED:
                assert job.error is not None and job.error.code == model.error_code
            results = self.store.get_results(job_id)
            assert (results is not None) == (job.status is JobStatus.SUCCEEDED)
            if results is not None:
                assert results["job"] == job_id


@pytest.mark.parametrize("steps", [40])
def test_job_lifecycle_state_machine(store: SqlJobStore, clock: FakeClock, steps: int) -> None:
    run_state_machine_as_test(
        lambda: Lifecycle(store, clock),
        settings=settings(
            max_examples=25,
            stateful_step_count=steps,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
