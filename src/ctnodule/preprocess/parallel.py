"""Run a function over many items on worker processes, in order, streaming results back.

Per-slice preprocessing is pure numpy/OpenCV/scikit-image and holds the GIL for much of it (watershed,
labelling), so threads do not scale; processes do. The function (a fitted `Pipeline` or a bound worker)
is sent to each worker once, at start-up; OpenCV runs single-threaded while workers exist (they would
otherwise fight over the cores, and a forked child cannot use its parent's OpenCV thread pool).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_FN: Callable[[Any], Any] | None = None


def usable_cores() -> int:
    """Cores this process may run on (the target laptop has 2)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init(fn: Callable[[Any], Any]) -> None:
    global _FN
    _FN = fn
    # the pool ends its workers with SIGTERM; a forked worker must not inherit the CLI's handler, which
    # turns SIGTERM into KeyboardInterrupt and printed a traceback per worker after every parallel run
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _call(item: Any) -> Any:
    assert _FN is not None  # set by _init in every worker
    return _FN(item)


#: below this many seconds per item, shipping items to workers costs more than it saves (measured in
#: bench/bench_preprocess.py: a 64 px nodule crop takes ~0.5 ms, a 512 px full slice with lung masking ~30)
PAYS_S = 0.002
PROBE = 4


def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int | None = None,
                 chunksize: int = 16) -> Iterator[Any]:
    """`map(fn, items)` in input order. `workers=None` decides by measuring: the first few items run
    here, and the rest go to one process per usable core only if an item takes over `PAYS_S` seconds."""
    items = iter(items)
    if workers is None:
        t0, n = time.perf_counter(), 0
        for item in itertools.islice(items, PROBE):
            yield fn(item)
            n += 1
        if n < PROBE or (time.perf_counter() - t0) / n < PAYS_S:
            yield from map(fn, items)
            return
        workers = usable_cores()
    if workers <= 1:
        yield from map(fn, items)
        return
    import cv2

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    threads = cv2.getNumThreads()
    # One OpenCV thread while the workers are forked: a child forked from a parent whose OpenCV thread
    # pool is running inherits a pool without its threads and hangs on its first parallel call.
    cv2.setNumThreads(1)
    try:
        with ctx.Pool(workers, initializer=_init, initargs=(fn,)) as pool:
            yield from pool.imap(_call, items, chunksize=max(1, chunksize))
    finally:
        cv2.setNumThreads(threads)
