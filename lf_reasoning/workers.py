"""CPU-bound work over a stream in worker processes, results in input order (convert's parse-read-render step)."""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")
MAX_WORKERS = 32
# glibc's malloc serves every allocation over 128 KiB from a fresh mmap() and trims its heap as soon as 128 KiB at
# its top are free (it raises both limits only gradually): each megabyte-sized block, message and result passed
# between the processes then costs a page fault per 4 KiB, about a sixth of convert's CPU time. Freed memory up to
# these sizes is kept for reuse instead; peak memory stays that of the blocks in flight.
_MMAP_THRESHOLD = 16 << 20
_TRIM_THRESHOLD = 64 << 20


def ordered_map(func: Callable[[_T], _R], items: Iterator[_T], workers: int) -> Iterator[tuple[_T, _R]]:
    """``(item, func(item))`` for every item, in order, computed in up to ``workers`` processes.

    ``func`` and the items must pickle (a module-level function, e.g. a ``functools.partial`` of one). Each
    worker holds at most one item; its next item is sent only after its result is received, so results come
    back in dispatch order and no pipe can deadlock. There are no helper threads, so an error or Ctrl-C can
    always stop the workers at once (``multiprocessing.Pool.terminate`` can hang when a worker dies in the
    middle of a large reply). Close the iterator (``contextlib.closing``) to stop them when the caller fails.
    Fewer than two items, or one worker, run in this process: starting processes would cost more than it saves.
    """
    head = list(itertools.islice(items, 2))
    n = min(workers, MAX_WORKERS)
    items = itertools.chain(head, items)
    if len(head) < 2 or n < 2:
        for item in items:
            yield item, func(item)
        return
    reuse_freed_memory()  # in this process, and in the workers it forks
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        in_flight: deque[tuple[Connection, _T]] = deque()
        for item in itertools.islice(items, n):
            conn, child = multiprocessing.Pipe()
            proc = multiprocessing.Process(target=_worker, args=(child, func), daemon=True)
            proc.start()
            child.close()
            procs.append(proc)
            conn.send(item)
            in_flight.append((conn, item))
        while in_flight:
            conn, item = in_flight.popleft()
            result = conn.recv()
            following = next(items, None)
            if following is None:
                conn.send(None)  # no more work: the worker exits
            else:
                conn.send(following)
                in_flight.append((conn, following))
            yield item, result
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join()


def _worker(conn: Connection, func: Callable[[object], object]) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the main process alone decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reuse_freed_memory()  # a spawned (not forked) worker starts with the defaults
    while (item := conn.recv()) is not None:
        conn.send(func(item))


def reuse_freed_memory() -> None:
    """Raise glibc's mmap and trim thresholds (see ``_MMAP_THRESHOLD``); nothing where the C library has no
    ``mallopt``."""
    try:
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    except (OSError, TypeError):  # no C library to load this way (Windows)
        return
    if mallopt is not None:
        mallopt(-3, _MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        mallopt(-1, _TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
