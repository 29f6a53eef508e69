"""Bulk loads on two cores: the rows are made (parsed and validated, or generated) and staged
(``store.staging``) in a forked child process while this one stores the previous ones.

The child writes its chunks' files in a temporary folder of the load and hands over each chunk,
pickled to a file there too, through a ``multiprocessing.Queue`` of up to ``AHEAD`` names, so it
goes on working while the writer is inside a long insert. Nothing big goes through the queue's
pipe: its feeder thread needs the child's GIL back after every 64 KiB it writes, waiting up to the
5 ms switch interval each time while the child works (with rows pickled through the pipe, the
writer waited 10 s of a 33 s import for it). The writer takes a chunk only when it needs the next
one, so no thread of this process competes with the insert for the GIL.
"""

import gc
import itertools
import multiprocessing
import os
import pickle
import queue
import shutil
import sys
import tempfile
import traceback

from lyftr.store import staging

# Chunks made ahead of the writer, waiting in files (of CHUNK rows each: megabytes).
AHEAD = 4
CHUNK = staging.ROWS
# How often each side, waiting for the other, checks that the other is still there (seconds).
_POLL_S = 1.0


class ProducerFailed(RuntimeError):
    """The child process raised, or died, before its last chunk."""


def made_in_child(chunks):
    """What the generator ``chunks(folder)`` yields, in order, made in a forked child; ``folder``
    is the load's temporary folder, where it may write files for the writer (removed at the end).

    Fork, not spawn: the child inherits open files (stdin too) and loaded modules. It reads,
    computes and writes its chunks' files, never touches the parent's database connections, and
    leaves with ``os._exit``, so their finalizers never run there."""
    context = multiprocessing.get_context("fork")
    handover = context.Queue(maxsize=AHEAD)
    folder = tempfile.mkdtemp(prefix="lyftr-load-")
    child = context.Process(
        target=_produce, args=(chunks, handover, os.getpid(), folder), daemon=True
    )
    # A child multiprocessing starts closes sys.stdin, and so the buffer under it, which
    # `flask import -` reads: hidden from it while the child starts. And every object of this
    # process is frozen for the child's garbage collector, which then never walks the heap it
    # inherited (nor copies its pages by touching them): 12% off the import's parsing.
    stdin, sys.stdin = sys.stdin, None
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
        sys.stdin = stdin
    try:
        while True:
            kind, value = _next(handover, child)
            if kind == "end":
                return
            if kind == "failed":
                raise ProducerFailed(value)
            yield _taken(value)
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        handover.close()
        shutil.rmtree(folder, ignore_errors=True)


def _taken(path):
    with open(path, "rb") as file:
        data = file.read()
    os.unlink(path)
    return pickle.loads(data)


def _next(handover, child):
    while True:
        try:
            return handover.get(timeout=_POLL_S)
        except queue.Empty:
            if not child.is_alive():
                status = child.exitcode
                raise ProducerFailed(f"the child process ended with status {status}") from None


def _produce(chunks, handover, writer, folder):
    # The rows a chunk is made of (decoded JSON, dicts and tuples) hold no reference cycles, yet
    # the collector walked the tens of thousands of them alive at each of its passes: 5% of the
    # import's parsing. It runs once a chunk instead, for whatever cycles errors left behind.
    gc.disable()
    try:
        try:
            for number, chunk in enumerate(chunks(folder)):
                path = os.path.join(folder, f"{number}.pickle")
                with open(path, "wb") as file:
                    pickle.dump(chunk, file, protocol=pickle.HIGHEST_PROTOCOL)
                _hand_over(handover, ("chunk", path), writer)
                gc.collect()
            last = ("end", None)
        except _WriterGone:
            raise
        except BaseException:  # the writer says what went wrong, not a stray traceback on stderr
            last = ("failed", traceback.format_exc())
        _hand_over(handover, last, writer)
    except _WriterGone:
        # Nobody will read what is still queued: leave without waiting to flush it, and take
        # the chunks nobody will read with it.
        handover.cancel_join_thread()
        shutil.rmtree(folder, ignore_errors=True)


class _WriterGone(Exception):
    pass


def _hand_over(handover, item, writer):
    """Put ``item`` in the queue; if the writer process is gone (killed: nobody told this child),
    stop rather than wait for it for ever."""
    while True:
        try:
            handover.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            if os.getppid() != writer:
                raise _WriterGone from None


def chunk_sizes():
    """Rows in each chunk of a load: CHUNK, but a tenth of it first, so that the writer starts
    after a tenth of the time (the import's child takes about 0.9 s to make 50,000 rows)."""
    yield max(1, CHUNK // 10)
    yield from itertools.repeat(CHUNK)


def staged_in_child(rows):
    """The iterable ``rows``, made and staged in a forked child: ``staging.Staged`` chunks (see
    ``chunk_sizes``), in order."""
    return made_in_child(lambda folder: staging.stage_all(rows, folder, chunk_sizes()))
