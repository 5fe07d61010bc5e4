"""Request dependencies: everything comes from ``app.state``, set up by create_app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from app.api.auth import PrincipalDep
from app.blobs import BlobStore
from app.settings import Settings
from app.store.base import JobStore

if TYPE_CHECKING:
    from app.analysis.catalog import Catalog


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def _blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def _tenant(principal: PrincipalDep) -> str:
    """The caller's tenant: its API key's, or ``default`` with auth off (docs/SECURITY.md)."""
    return principal.tenant


StoreDep = Annotated[JobStore, Depends(_store)]
BlobsDep = Annotated[BlobStore, Depends(_blobs)]
SettingsDep = Annotated[Settings, Depends(_settings)]
CatalogDep = Annotated["Catalog", Depends(_catalog)]
TenantDep = Annotated[str, Depends(_tenant)]
