"""One sandboxed child process, seen from the parent: start it, talk to it, say why it died.

Shared by the decode, probe and render sandboxes. A child is a spawned
``python -m app.analysis.sandbox_child`` (numpy + PyAV, no torch); a decoder bug must cost
one job or one request, never the process that started it. Its faults become coded errors
(``app.errors.DecoderFault``): a crash or a timeout is retried (the last attempt keeping the
code); a resource limit is deterministic for a file and fails the job at once:

* killed by a signal (SIGSEGV, SIGABRT, ...) or exited without a word -> ``decoder_crashed``
* over its wall-clock allowance (the parent kills it)                 -> ``timeout``
* MemoryError under RLIMIT_AS, SIGXCPU (RLIMIT_CPU), SIGKILL not ours  -> ``resource_limit``

Coded media errors raised in the child (unreadable, no frames, limits) come back as the
same ``ServiceError`` they would be in process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from app.errors import DecoderCrashed, DecoderFault, DecoderResourceLimit, DecoderTimeout, ServiceError

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

FAULT_CODES: dict[str, type[DecoderFault]] = {
    "decoder_crashed": DecoderCrashed,
    "resource_limit": DecoderResourceLimit,
    "timeout": DecoderTimeout,
}
"""The child's ``("fault", code, detail)`` codes and the errors they become."""


def cpu_seconds(wall_seconds: float, slack: float) -> float:
    """A child's CPU-time limit for a wall-clock allowance: every core busy all along, plus slack."""
    return (os.cpu_count() or 1) * wall_seconds + slack


class SandboxChild:
    """One spawned ``python -m app.analysis.sandbox_child``: its socket, a sentinel that
    becomes readable when it exits, and why it died. Shared by decode, probe and render;
    ``role`` names it in messages ("the decoder", "the probe", ...)."""

    def __init__(self, ring_fd: int | None = None, role: str = "the decoder") -> None:
        self.role = role
        ours, theirs = socket.socketpair()
        exit_r, exit_w = os.pipe()
        self.sentinel = exit_r
        self.conn = Connection(ours.detach())
        self.killed = False
        self._closed = False
        argv = (theirs.fileno(), -1 if ring_fd is None else ring_fd, exit_w)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.analysis.sandbox_child", *map(str, argv)],
                pass_fds=[fd for fd in argv if fd >= 0],
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        except BaseException:
            self.conn.close()
            os.close(exit_r)
            raise
        finally:
            theirs.close()
            os.close(exit_w)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def join(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        self.killed = True
        if self.alive():
            self.proc.kill()
            self.join(5)

    def close(self, grace: float = 0) -> None:
        """Give it ``grace`` seconds to exit, then kill it; release its descriptors."""
        if self._closed:
            return
        self._closed = True
        if grace:
            self.join(grace)
        if self.alive():
            self.proc.kill()
        self.join(5)
        self.conn.close()
        os.close(self.sentinel)

    def receive(self) -> tuple[Any, ...]:
        """The next message; the child gone (or a message cut short by its death) is its fault."""
        try:
            message: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError):
            raise self.death() from None
        except Exception as exc:
            log.warning("unreadable message from %s: %s", self.role, exc)
            raise self.death() from None
        return message

    def death(self) -> DecoderFault:
        """It is gone (or mute) without a final message: why, as a coded fault."""
        self.join(5)
        code, who = self.proc.returncode, self.role
        if code is None:
            self.kill()
            return DecoderCrashed(f"{who} stopped answering")
        if code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGXCPU:
                return DecoderResourceLimit(f"{who} exceeded its CPU-time limit ({name})")
            if -code == signal.SIGKILL and not self.killed:
                return DecoderResourceLimit(f"{who} was killed ({name}; most likely out of memory)")
            return DecoderCrashed(f"{who} was killed by {name}")
        return DecoderCrashed(f"{who} exited with status {code} before finishing")


def raise_final(message: tuple[Any, ...], role: str) -> NoReturn:
    """A child's last word other than its result: its coded error, its fault, or nonsense."""
    if message[0] == "error" and isinstance(message[1], ServiceError):
        raise message[1]
    if message[0] == "fault":
        raise FAULT_CODES.get(message[1], DecoderCrashed)(str(message[2]))
    raise DecoderCrashed(f"{role} sent an unexpected {message[0]!r} message")


def one_shot(
    child: SandboxChild,
    config: object,
    seconds: float,
    expected: str,
    replacement: Callable[[], SandboxChild] | None = None,
) -> Any:
    """Give a one-shot child (probe, render) its config and wait ``seconds`` for its one answer
    ``(expected, value)``; the child is closed after. Its coded error is raised as is; a fault,
    a death or the deadline (the child is killed) as a ``DecoderFault``. ``replacement`` starts
    another child when this one (a spare) died before it could take the config."""
    try:
        try:
            child.conn.send(config)
        except OSError:  # a spare that died while it waited: not this request's doing
            if replacement is None:
                raise child.death() from None
            child.close()
            child = replacement()
            try:
                child.conn.send(config)
            except OSError:
                raise child.death() from None
        if not child.conn.poll(seconds):
            child.kill()
            raise DecoderTimeout(f"{child.role} was stopped after {seconds:g} s")
        message = child.receive()
        if message[0] == expected:
            return message[1]
        raise_final(message, child.role)
    finally:
        child.close()


def _child_env() -> dict[str, str]:
    """The parent's environment, with the directory holding ``app`` first on the path."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
