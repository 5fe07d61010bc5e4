"""HTTP API (FastAPI). Never imports torch or av at module import."""
