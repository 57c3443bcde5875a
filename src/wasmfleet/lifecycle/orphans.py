"""Children that die with their parent, so a killed `wasmfleet up` (or host) leaves no process behind.

Linux's parent-death signal (prctl PR_SET_PDEATHSIG) is asked for in the child itself. It is chosen
over a watchdog on a pipe from the parent because it needs nothing from the child once set: it
survives exec, so it works for nats-server (a Go binary that would never watch a pipe) as well as for
our Python children, and a child stuck in a guest, in C code or in a blocked event loop is still
signalled by the kernel. It covers one generation; grandchildren are covered by each generation
asking for it in turn (`up` for its children, a host for its wasm worker processes), and by every
generation's stop being bounded (see `stopping`).

Two Linux details shape the calls below: the signal fires when the *thread* that forked the child
exits, so children must be started from a long-lived thread (the event loop's thread, never an
`asyncio.to_thread` worker); and a parent that dies between fork and prctl is missed, so the child
compares its parent pid with the one it expected and signals itself when they differ.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    # Resolved once here, in the parent: between fork and exec the child must not dlopen (the loader's
    # lock may be held by another thread of the parent at fork time).
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def die_with_parent(signum: int, parent_pid: int) -> None:
    """Ask the kernel to send `signum` to this process when its parent dies (Linux; no-op elsewhere).

    `parent_pid` is the pid the caller expects as its parent: if that parent is already gone (it died
    before the request was registered), the signal is sent at once."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)


def new_session_dying_with(parent_pid: int, signum: int = signal.SIGTERM) -> None:  # pragma: no cover
    """`preexec_fn` for a supervised child: its own session (a terminal's Ctrl-C reaches only the
    supervisor, which stops children in order) and `signum` when the supervisor dies. Runs in the
    child between fork and exec, so it only makes system calls."""
    os.setsid()
    die_with_parent(signum, parent_pid)
