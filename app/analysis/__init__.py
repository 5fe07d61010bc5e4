"""The analysis engine: pure (no HTTP, no database). Heavy imports (torch, av) stay inside functions."""
