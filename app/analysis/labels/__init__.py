"""Label files (JSON arrays of class names, in model output order)."""
