"""The worker: claim a job (lease) -> analyze -> save results. The only place store and engine meet."""
