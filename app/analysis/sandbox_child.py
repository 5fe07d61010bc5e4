"""The sandboxed child: the upload probe, or scan + plan-driven decode + numpy transform,
under resource limits.

Runs as ``python -m app.analysis.sandbox_child CONN RING EXIT`` (inherited file
descriptors: a socket to the parent, the shared-memory ring (-1 for a probe), and a pipe
end the child only holds, so that the parent sees it die). It imports numpy and PyAV
(before it reads its first message, so a spare child started ahead has paid for them) but
never torch, and never the parent's ``__main__``, so it starts in a few tenths of a
second. The first message says what it is for. A probe:

    parent -> child   ProbeConfig
    child  -> parent  ("probed", VideoInfo)

An annotated-video render (decode, draw, encode to ``target``):

    parent -> child   RenderConfig
    child  -> parent  ("rendered", frames written)

A decode, on the socket (pickled ``multiprocessing`` messages), in order:

    parent -> child   ChildConfig
    child  -> parent  ("scan", VideoScan)                  (not when the config holds the scan)
    parent -> child   ("plan", SamplingPlan, skip_nonref, start_pts, shot_frames)   or ("stop",)
    child  -> parent  ("clip", slot, segment, index, times)  ... as clips complete
    child  -> parent  ("frames", uint8 (n, 27, 48, 3), times) ... with ``shot_frames``: every
                                                           decoded frame, small (``shot_frames``)
    parent -> child   ("free", slot)                        ... as the parent copies them out
    child  -> parent  ("done", DecodeStats)

``("shots", grid, memory bytes)`` instead of the plan: ``segmentation=shots`` (``shot_child``).

A coded failure is ``("error", ServiceError)``; a fault is ``("fault", code, detail)`` with
code ``resource_limit`` (MemoryError under RLIMIT_AS) or ``decoder_crashed`` (anything
else). A signal or an exit without a message is classified by the parent.

The configs (and their test faults) are in ``sandbox_protocol``.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import signal
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle
from pathlib import Path
from typing import Any

from app.analysis.sandbox_protocol import ChildConfig, ProbeConfig, RenderConfig
from app.analysis.shm import SlotRing
from app.errors import ServiceError


def _set_limits(config: ChildConfig | ProbeConfig | RenderConfig) -> None:
    if config.memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (config.memory_bytes, config.memory_bytes))
    if config.cpu_seconds:
        _cpu_limit(config.cpu_seconds)


def _cpu_limit(seconds: float) -> None:
    """Soft limit (SIGXCPU) at ``seconds`` of CPU; the hard one (SIGKILL) 5 s later."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    soft = math.ceil(spent + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY and soft + 5 > hard:
        soft = max(int(hard) - 5, 1)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5 if hard == resource.RLIM_INFINITY else hard))


def _inject(fault: str) -> None:
    """Test-only faults, as a misbehaving decoder would produce them."""
    if fault == "segfault":
        import ctypes

        ctypes.string_at(0)
    elif fault == "hang":
        while True:  # a decoder spinning on a malformed stream
            pass
    elif fault == "oom":
        import numpy as np

        hog = []
        while True:  # a decoder allocating without bound
            hog.append(np.ones(64 * 1024**2, dtype=np.uint8))


def _tie_to_parent() -> None:
    """Die with the parent (Linux), and leave Ctrl-C to it: it stops the child itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call
        os._exit(1)


def main(argv: Sequence[str]) -> None:
    """Entry point of the child process: ``argv`` = [prog, conn fd, ring fd, exit fd]."""
    _tie_to_parent()
    logging.basicConfig(level=logging.WARNING, format="sandbox child: %(levelname)s %(message)s")
    conn = Connection(int(argv[1]))
    import av  # noqa: F401  (loaded before the wait: a spare child is ready to work at once)

    import app.analysis.child_decode
    import app.analysis.probe  # noqa: F401

    try:
        config = conn.recv()
    except (EOFError, OSError):
        return
    if isinstance(config, ProbeConfig):
        probe_main(conn, config)
    elif isinstance(config, RenderConfig):
        render_main(conn, config)
    else:
        child_main(conn, config, int(argv[2]))


def probe_main(conn: Connection, config: ProbeConfig) -> None:
    def work() -> None:
        from app.analysis.probe import probe_video

        _set_limits(config)
        if config.fault:
            _inject(config.fault)
        info = probe_video(
            Path(config.path),
            filename=config.filename,
            allowed_formats=config.allowed_formats,
            limits=config.limits,
        )
        conn.send(("probed", info))

    _guarded(conn, work)


def render_main(conn: Connection, config: RenderConfig) -> None:
    def work() -> None:
        from app.analysis.annotate import render

        _set_limits(config)
        fault, part = config.fault, Path(config.part)

        def strike_mid_encode(written: int) -> None:
            if fault and part.exists():  # the muxer has started writing the partial file
                _inject(fault)

        if config.pictures:
            from app.analysis.explain_pictures import write_pictures

            pictures = write_pictures(Path(config.source), Path(config.target), part, config.explanations)
            conn.send(("rendered", pictures))
            return
        frames = render(
            Path(config.source),
            Path(config.target),
            list(config.segments),
            allowed_formats=config.allowed_formats,
            max_height=config.max_height,
            threads=config.threads,
            limits=config.limits,
            part=part,
            on_frame=strike_mid_encode,
            lines=config.lines,
            explanations=config.explanations,
            detections=config.detections,
        )
        conn.send(("rendered", frames))

    _guarded(conn, work)


def child_main(conn: Connection, config: ChildConfig, ring_fd: int) -> None:
    """A decode; a spare (started without a ring, ``ring_fd`` -1) gets the ring's descriptor
    in the message after its config."""
    if ring_fd < 0:
        try:
            ring_fd = recv_handle(conn)
        except (EOFError, OSError):  # the parent went away
            return

    def work() -> None:
        _set_limits(config)
        ring = SlotRing.attach(ring_fd, config.slots, config.slot_bytes)
        try:
            _serve(conn, config, ring)
        finally:
            ring.close()

    _guarded(conn, work)


def _guarded(conn: Connection, work: Callable[[], None]) -> None:
    """Run ``work``; whatever goes wrong reaches the parent as a coded message."""
    try:
        work()
    except (EOFError, BrokenPipeError):  # the parent went away
        return
    except ServiceError as exc:
        _send(conn, ("error", exc))
    except MemoryError as exc:
        _send(conn, ("fault", "resource_limit", f"the decoder ran out of memory ({exc or 'MemoryError'})"))
    except Exception as exc:
        _send(conn, ("fault", "decoder_crashed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    try:
        conn.send(message)
    except (OSError, EOFError):
        pass


def _serve(conn: Connection, config: ChildConfig, ring: SlotRing) -> None:
    from app.analysis.child_decode import config_clips, send_clip, small_frames
    from app.analysis.decode import DecodeStats
    from app.analysis.scan import scan_video

    path = Path(config.path)
    if config.fault and config.fault_stage == "scan":
        _inject(config.fault)
    scan = config.scan or scan_video(path, config.allowed_formats, config.limits)
    if config.cpu_seconds:
        _cpu_limit(config.cpu_seconds + config.cpu_per_video_second * scan.duration)
    if config.scan is None:
        conn.send(("scan", scan))
    message = conn.recv()
    if message[0] == "shots":  # segmentation=shots: clips planned as shots become final
        from app.analysis.shot_child import serve_shots

        serve_shots(conn, config, ring, scan, message[1], message[2])
        return
    if message[0] != "plan":
        return
    _, plan, skip_nonref, start_pts, shot_frames = message
    free = list(range(config.slots))
    stats = DecodeStats()
    small = small_frames(conn, scan) if shot_frames else None
    clips = config_clips(
        config,
        scan,
        plan,
        stats,
        on_frame=small.add if small is not None else None,
        skip_nonref=skip_nonref,
        start_pts=start_pts,
    )
    for sent, clip in enumerate(clips, start=1):
        while not free:
            reply = conn.recv()
            if reply[0] != "free":
                return
            free.append(reply[1])
        send_clip(conn, config, ring, free.pop(), clip.frames, clip.plan.segment, clip.plan.index, clip.times)
        if config.fault and config.fault_stage == "decode" and sent == 1:
            _inject(config.fault)
    if small is not None:
        small.flush()
    conn.send(("done", stats))


if __name__ == "__main__":
    # The module proper, not this ``__main__`` copy: one copy of the child's code and state.
    from app.analysis import sandbox_child

    sandbox_child.main(sys.argv)
