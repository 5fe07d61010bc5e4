"""A queue of short jobs through one worker: 1, 2, 3 jobs in flight (cross-job batching).

    .venv/bin/python bench/jobs.py [--jobs 12] [--seconds 4] [--model x3d_s] [--in-flight 1,2,3]

Each setting gets a fresh SQLite store under ``bench/out/jobs`` with the same ``--jobs``
queued jobs (640x360 H.264 videos of ``--seconds``), and one worker (``Worker`` for 1,
``MultiJobWorker`` otherwise) drains the queue in this process with a warm analyzer. Prints
a Markdown table: wall time, jobs per minute, video-seconds per wall-second, batches run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.runs import OUT, table, write_checkpoint  # noqa: E402
from bench.videos import write_bench_video  # noqa: E402


def drain(in_flight: int, videos: list[Path], model: str, analyzer: object) -> tuple[float, int]:
    from app.analysis.probe import probe_video
    from app.blobs import LocalBlobStore
    from app.domain import NewJob
    from app.settings import Settings
    from app.store.factory import open_store
    from app.store.migrate import upgrade
    from app.worker.multi import MultiJobWorker, worker_class

    data = OUT / "jobs" / f"in-flight-{in_flight}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    settings = Settings(
        data_dir=data, models_dir=OUT / "models", worker_jobs_in_flight=in_flight, poll_interval=0.05
    )
    upgrade(settings.resolved_database_url)
    store, blobs = open_store(settings), LocalBlobStore(settings.videos_dir)
    for video in videos:
        key = uuid.uuid4().hex
        writer = blobs.writer(key)
        writer.write(video.read_bytes())
        writer.commit()
        info = probe_video(blobs.path(key), filename=video.name, allowed_formats=settings.allowed_format_list)
        store.create_job(NewJob(id=key, model=model, options={}, video=info, blob_key=key, max_attempts=1))
    worker = worker_class(settings)(
        store=store, blobs=blobs, settings=settings, analyzer_factory=lambda: analyzer
    )
    started = time.perf_counter()
    while worker.run_once():
        pass
    seconds = time.perf_counter() - started
    batches = worker.scheduler.batches if isinstance(worker, MultiJobWorker) else -1
    failed = [j for j in store.list_jobs(limit=500).items if j.status.value != "succeeded"]
    store.close()
    if failed:
        raise RuntimeError(f"{len(failed)} jobs did not succeed: {failed[0].error}")
    return seconds, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--model", default="x3d_s")
    parser.add_argument("--in-flight", default="1,2,3")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from app.analysis.engine import Analyzer
    from app.options import JobOptions
    from app.settings import Settings

    write_checkpoint(OUT / "models", args.model)
    videos = [write_bench_video(640, 360, args.seconds)] * args.jobs
    analyzer = Analyzer.from_settings(Settings(models_dir=OUT / "models"))
    analyzer.analyze(videos[0], args.model, JobOptions())  # warm: model loaded once, as in a worker
    settings = [int(v) for v in args.in_flight.split(",")]
    results: dict[int, list[tuple[float, int]]] = {k: [] for k in settings}
    for r in range(args.repeats):
        for k in settings if r % 2 == 0 else list(reversed(settings)):
            results[k].append(drain(k, videos, args.model, analyzer))
            print(f"{k} in flight: {results[k][-1][0]:.1f} s", file=sys.stderr, flush=True)
    rows = []
    for k in settings:
        seconds = statistics.median(s for s, _ in results[k])
        batches = results[k][0][1]
        rows.append(
            [
                str(k),
                f"{seconds:.1f} s",
                f"{60 * args.jobs / seconds:.1f}",
                f"{args.jobs * args.seconds / seconds:.2f}",
                "-" if batches < 0 else str(batches),
            ]
        )
    head = ["jobs in flight", "wall (median)", "jobs / min", "video-s / wall-s", "batches"]
    batch = Settings().batch_size
    print(f"{args.jobs} jobs of {args.seconds:g} s 640x360, {args.model}, batch size {batch}, warm worker.\n")
    print(table(head, rows))


if __name__ == "__main__":
    main()
