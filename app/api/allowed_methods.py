"""The ``Allow`` header of a 405: every method some route serves for the requested path.

Starlette answers 405 from the first route whose path matched, so ``Allow`` named only that
route's methods (``GET`` for ``/v1/jobs/{id}``, which also has ``DELETE``). RFC 9110 §15.5.6
wants the target resource's whole list, so ask every route of the app, one method at a time.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match
from starlette.types import Scope

# The order Allow lists them in. OPTIONS is absent: outside CORS preflight (app/api/cors.py,
# answered before routing) no route serves it.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """The methods that some route fully matches for ``scope``'s path, in ``METHODS`` order."""
    allowed = []
    for method in METHODS:
        probe: Scope = {
            "type": "http",
            "method": method,
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "headers": scope.get("headers", []),
        }
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed
