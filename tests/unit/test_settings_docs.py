"""The README's settings table is generated from ``Settings`` (scripts/settings_table.py):
every field has a row with its variable and default, and no row outlives its field.
The meaning column is README prose (longer than the fields' descriptions), so it is only
required to be there; a new field's row starts from the field's description."""

from __future__ import annotations

from pydantic import Field

from app.settings import Settings
from scripts.settings_table import (
    README,
    default_text,
    documented_meanings,
    env_name,
    refreshed,
    render_table,
    table_in,
)

REFRESH = "run: .venv/bin/python scripts/settings_table.py --write"


def rows(table: str) -> list[list[str]]:
    lines = table.strip().splitlines()[2:]  # after the header and its rule
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def test_readme_table_is_what_the_generator_writes() -> None:
    readme = README.read_text(encoding="utf-8")
    assert refreshed(readme) == readme, f"the README's settings table is stale; {REFRESH}"


def test_every_setting_has_one_row_with_its_default_and_a_meaning() -> None:
    documented = rows(table_in(README.read_text(encoding="utf-8")))
    expected = [(f"`{env_name(n, f)}`", default_text(f)) for n, f in Settings.model_fields.items()]
    assert [(name, default) for name, default, _ in documented] == expected, REFRESH
    assert all(meaning for *_, meaning in documented)


def test_defaults_are_written_as_a_user_would_set_them() -> None:
    fields = Settings.model_fields
    assert env_name("database_url", fields["database_url"]) == "DATABASE_URL"
    assert default_text(fields["database_url"]) == "unset"  # the SQLite file: computed, in the meaning
    assert default_text(fields["data_dir"]) == "`./data`"
    assert default_text(fields["lease_seconds"]) == "`60`"
    assert default_text(fields["poll_interval"]) == "`0.5`"
    assert default_text(fields["embedded_worker"]) == "`true`"
    assert default_text(fields["cors_allow_origins"]) == "empty"
    assert default_text(fields["backends"]) == "`{}`"


class _Grown(Settings):
    """Settings as they will be once someone adds a field."""

    example_retries: int = Field(default=3, ge=1, description="Tries of an example before it fails.")


def test_a_new_field_gets_a_row_and_a_removed_one_loses_it() -> None:
    meanings = {"VAS_DATA_DIR": "kept prose", "VAS_GONE_SINCE_LONG": "stale"}
    table = render_table(_Grown, meanings)
    by_name = {name: (default, meaning) for name, default, meaning in rows(table)}
    assert by_name["`VAS_EXAMPLE_RETRIES`"] == ("`3`", "tries of an example before it fails")
    assert by_name["`VAS_DATA_DIR`"] == ("`./data`", "kept prose")
    assert "`VAS_GONE_SINCE_LONG`" not in by_name
    assert list(by_name)[-1] == "`VAS_EXAMPLE_RETRIES`"
    assert documented_meanings(table)["VAS_EXAMPLE_RETRIES"] == "tries of an example before it fails"


def test_refresh_fixes_defaults_drops_stale_rows_and_touches_nothing_else() -> None:
    readme = README.read_text(encoding="utf-8")
    table = table_in(readme)
    stale_table = table.replace("| `VAS_DATA_DIR` | `./data` |", "| `VAS_DATA_DIR` | `./old` |")
    stale_table += "| `VAS_GONE` | `1` | a setting that no longer exists |\n"
    assert stale_table.count("./old") == 1
    assert refreshed(readme.replace(table, stale_table)) == readme
