"""Errors of a job's explanation pictures (``explain``), beside ``app/errors.py``'s tree (that
module is at its size limit). Subclasses of its classes, so ``api/problems.py`` maps them by
their parent: ``NotFound`` is 404.

NotFound
 └── ExplainNotRequested   the job ran without ``explain``: it has no maps (code: explain_not_requested)
"""

from __future__ import annotations

from app.errors import NotFound


class ExplainNotRequested(NotFound):
    """The job was not run with ``explain=true``, so it has no explanations to draw."""

    code = "explain_not_requested"
    title = "Explain not requested"
