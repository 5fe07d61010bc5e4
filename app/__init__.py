"""Video analysis service: upload videos, queue jobs, classify actions per segment."""

__version__ = "0.1.0"
