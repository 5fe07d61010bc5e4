"""/v1/models: the model catalog (reads specs and files only; never imports torch)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import CatalogDep

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", summary="Models this service can run, with their clip specs and weight status")
def list_models(catalog: CatalogDep) -> dict[str, Any]:
    return {"items": catalog.describe()}
