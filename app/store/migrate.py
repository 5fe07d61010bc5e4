"""Schema migrations, run programmatically (``vas migrate``, tests, start-up checks).

The Alembic configuration is built in code and points at the ``migrations`` folder
next to this file, so an installed package needs no alembic.ini and no working
directory convention.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for this package; ``url`` travels as an attribute, not an
    ini option, so passwords containing ``%`` need no configparser escaping."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest revision (a no-op when it is there).

    Safe to run from several processes at once: env.py serialises them."""
    command.upgrade(alembic_config(url), "head")


@cache
def head_revisions() -> frozenset[str]:
    """The newest revision(s) shipped with this code (fixed for the process lifetime)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(bind: Engine | Connection) -> set[str]:
    """Revisions recorded in the database (empty before the first upgrade)."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return current_revisions(conn)
    return set(MigrationContext.configure(bind).get_current_heads())


def is_current(bind: Engine | Connection) -> bool:
    """True when the database schema is at head (readiness check, refuse-to-start)."""
    return current_revisions(bind) == head_revisions()
