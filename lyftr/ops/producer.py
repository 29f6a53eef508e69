"""Bulk loads on two cores: the rows are made (parsed and validated, or generated) in a forked
child process while this one writes the previous ones to the database.

The child writes each chunk, pickled, to a file of a temporary folder and hands over its name
through a ``multiprocessing.Queue`` of up to ``AHEAD`` names, so it goes on working while the
writer is inside a long insert. Chunks do not go through the queue's pipe themselves: a chunk
pickles to megabytes (2 MB for 10,000 short messages), and the queue's feeder thread needed the
child's GIL back after every 64 KiB it wrote, waiting up to the 5 ms switch interval each time
while the child parsed (the writer waited 10 s of a 33 s import for it; 1 s through files). The
writer takes a chunk only when it needs the next row, so no thread of this process competes with
the insert for the GIL.
"""

import multiprocessing
import os
import pickle
import queue
import shutil
import tempfile
import traceback

from lyftr.store.sql import batched

# Chunks made ahead of the writer, waiting in files (of CHUNK rows each: megabytes).
AHEAD = 4
CHUNK = 10_000
# How often each side, waiting for the other, checks that the other is still there (seconds).
_POLL_S = 1.0


class ProducerFailed(RuntimeError):
    """The child process raised, or died, before its last chunk."""


def made_in_child(chunks):
    """What the generator ``chunks()`` yields, in order, made in a forked child.

    Fork, not spawn: the child inherits open files (stdin too) and loaded modules. It reads,
    computes and writes its chunks' files, never touches the parent's database connections, and
    leaves with ``os._exit``, so their finalizers never run there."""
    context = multiprocessing.get_context("fork")
    handover = context.Queue(maxsize=AHEAD)
    folder = tempfile.mkdtemp(prefix="lyftr-load-")
    child = context.Process(
        target=_produce, args=(chunks, handover, os.getpid(), folder), daemon=True
    )
    child.start()
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
    try:
        try:
            for number, chunk in enumerate(chunks()):
                path = os.path.join(folder, f"{number}.pickle")
                with open(path, "wb") as file:
                    pickle.dump(chunk, file, protocol=pickle.HIGHEST_PROTOCOL)
                _hand_over(handover, ("chunk", path), writer)
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


def each_made_in_child(items):
    """The items of the iterable ``items``, in order, made in a forked child CHUNK at a time."""
    for chunk in made_in_child(lambda: batched(items, CHUNK)):
        yield from chunk
