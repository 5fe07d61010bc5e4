"""Engine-specific errors (subclasses of app.errors.AnalysisError).

AnalysisError
 └── ManifestInvalid   manifest.json / zoo.json / labels file malformed (code: manifest_invalid)
"""

from __future__ import annotations

from app.errors import AnalysisError


class ManifestInvalid(AnalysisError):
    """The model manifest (or a labels file it names) is malformed."""

    code = "manifest_invalid"
    title = "Model manifest invalid"
    retryable = False
