"""Wake idle workers the moment a job is queued: PostgreSQL LISTEN/NOTIFY.

The store sends ``NOTIFY vas_jobs`` in the transaction that queues a job (submission,
retry, release), so the notification is delivered on commit and never before the row
is visible. A ``JobListener`` holds one dedicated autocommit connection per worker
process, LISTENs, and sets the worker's wake event on each notification.

Notifications are a latency optimisation, not the source of truth: the worker still
polls (``listen_poll_interval``) for what sends none (expired leases) and for anything
missed while the listener reconnects after the database went away. SQLite has no
notifications; ``start_listener`` returns None there and the worker polls at
``poll_interval``. The figures behind this choice are in docs/DEPLOY.md.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.engine import make_url

from app.store.engine import normalize_url
from app.store.job_leases import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

RECONNECT_MAX_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5


def libpq_conninfo(url: str) -> str | None:
    """The libpq connection string of a PostgreSQL SQLAlchemy URL; None for other backends."""
    sa_url = normalize_url(url)
    if sa_url.get_backend_name() != "postgresql":
        return None
    parts = {
        "host": sa_url.host,
        "port": sa_url.port,
        "user": sa_url.username,
        "password": sa_url.password,
        "dbname": sa_url.database,
    }
    params = {k: v for k, v in parts.items() if v is not None}
    params.update({k: v for k, v in sa_url.query.items() if isinstance(v, str)})
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


class JobListener:
    """A daemon thread: LISTEN, set ``wake`` on every notification, reconnect with backoff.

    ``connected`` is set while LISTEN is active; on every (re)connect ``wake`` is set once
    too, so a worker re-checks the queue for anything queued while it was not listening.
    """

    def __init__(self, conninfo: str, wake: threading.Event, *, channel: str = NOTIFY_CHANNEL) -> None:
        self._conninfo, self._wake, self._channel = conninfo, wake, channel
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.notifications = 0
        self._thread = threading.Thread(target=self._run, name="job-listener", daemon=True)

    def start(self) -> JobListener:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._listen()
                backoff = 0.2
            except psycopg.Error as exc:
                if self.connected.is_set():
                    log.warning("job listener disconnected: %s", exc)
                self.connected.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        ) as conn:
            conn.execute(f"LISTEN {self._channel}")
            self.connected.set()
            self._wake.set()
            log.debug("listening for jobs on channel %s", self._channel)
            while not self._stop.is_set():
                # Returns after `timeout` with no notification, so stop() is seen within a second.
                for _ in conn.notifies(timeout=1.0):
                    self.notifications += 1
                    self._wake.set()


def start_listener(url: str, wake: threading.Event) -> JobListener | None:
    """A started listener for a PostgreSQL ``url``; None for SQLite."""
    conninfo = libpq_conninfo(url)
    if conninfo is None:
        return None
    log.info("workers wake on NOTIFY %s (%s)", NOTIFY_CHANNEL, make_url(url).render_as_string())
    return JobListener(conninfo, wake).start()
