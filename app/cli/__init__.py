"""Command-line front ends of the analysis engine (registered by app/__main__.py)."""
