"""The demo model's label catalogue: its class names, in class-id order, and what each means.

The shipped label file, the training script and the known-answer tests all read
their class list from here, so adding or renaming a class is a change to this
module (and a retrain), nothing else.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "rotating",
    "static",
    "flashing",
)
"""Class names in class-id order (the demo model's label file)."""

DIRECTIONS: dict[str, tuple[float, float]] = {
    "moving left": (-1.0, 0.0),
    "moving right": (1.0, 0.0),
    "moving up": (0.0, -1.0),
    "moving down": (0.0, 1.0),
}
"""Unit direction (x right, y down) of each moving class; the other classes stay in place."""


def class_id(label: str) -> int:
    """Class id of ``label``; raises ValueError for names outside :data:`CLASSES`."""
    try:
        return CLASSES.index(label)
    except ValueError:
        raise ValueError(f"unknown demo class {label!r}; expected one of {list(CLASSES)}") from None
