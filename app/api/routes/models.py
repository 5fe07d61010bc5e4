"""/v1/models: the model catalog (reads specs and files only; never imports torch)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import CatalogDep, SettingsDep

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get(
    "",
    summary="Models this service can run, with their clip specs and weight status",
    description="`default_model` is the model a job gets when its submission names none.",
)
def list_models(catalog: CatalogDep, settings: SettingsDep) -> dict[str, Any]:
    return {"items": catalog.describe(), "default_model": settings.default_model}
