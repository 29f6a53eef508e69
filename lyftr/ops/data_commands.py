"""Operator commands for the data's lifecycle: ``flask --app wsgi purge|backup|export|import``."""

import json
import os
import sys
import time

import click
from flask.cli import with_appcontext
from marshmallow import ValidationError

from lyftr import store, timestamps
from lyftr.api import schemas, strict_json
from lyftr.api.messages import record_item
from lyftr.api.strict_json import MAX_STORED_DEPTH
from lyftr.ops import producer
from lyftr.ops.import_lines import fast_load
from lyftr.ops.terminal import explained, plural, progress, require_database
from lyftr.store import staging

DATE_HELP = (
    "a date (2026-01-01) or date-time (2026-01-01T00:00:00Z, +05:30 offsets, no zone: UTC), "
    "as the API's since= takes"
)


def _instant(value, option):
    """A date option as created_at is written (UTC, microseconds, 'Z'), as since= reads it."""
    key = timestamps.query_ts_key(value)
    if key is None:
        raise click.BadParameter(f"{value!r} is not {DATE_HELP}", param_hint=option)
    seconds, fraction = key.split(".")
    return f"{seconds}.{(fraction + '000000')[:6]}Z"


@click.command("purge", short_help="Delete messages that arrived before a date.")
@with_appcontext
@click.option(
    "--before",
    required=True,
    help=f"Messages that arrived (received_at) before this are deleted: {DATE_HELP}.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@explained
def purge_command(before, dry_run):
    """Delete the messages that arrived before --before, as RETENTION_DAYS does automatically.

    Their IDs are remembered (PURGED_IDS_KEEP_DAYS) so that a provider's retry of one is answered
    as a duplicate. Runs in small transactions: the service keeps ingesting meanwhile.
    """
    cutoff = _instant(before, "--before")
    require_database()
    count = store.purge(cutoff, dry_run=True)
    if dry_run:
        click.echo(f"would purge {plural(count, 'message')} received before {cutoff}")
        return
    with store.exclusive_purge() as ours:
        if not ours:
            raise click.ClickException(
                "another purge is running (a worker's retention?): try again"
            )
        with progress(count, "purging") as bar:
            purged = store.purge(cutoff, progress=bar.update)
    click.echo(f"purged {plural(purged, 'message')} received before {cutoff}")


@click.command("backup", short_help="Snapshot the SQLite database to a file, live.")
@with_appcontext
@click.argument("path", type=click.Path(dir_okay=False))
@explained
def backup_command(path):
    """Write a consistent snapshot of the SQLite database to PATH while the service runs.

    PATH must not exist (nor be a symbolic link); the copy is created readable by its owner only.

    Restore: stop the service, replace the database file with PATH (and remove any -wal and -shm
    files beside it), start the service. On PostgreSQL this says how to use pg_dump instead.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path):
        raise click.ClickException(
            f"{path} exists: give a new file name (a backup never overwrites one)"
        )
    if not os.path.isdir(folder):
        raise click.ClickException(f"there is no folder {folder}: create it (mkdir -p {folder})")
    if not os.access(folder, os.W_OK):
        raise click.ClickException(f"cannot write in {folder}: choose a folder you can write to")
    require_database()
    started = time.perf_counter()
    try:
        store.backup(path)
    except NotImplementedError as exc:
        raise click.ClickException(str(exc)) from exc
    except FileExistsError as exc:
        raise click.ClickException(
            f"{path} exists (or is a symbolic link): a backup is written to a new file only"
        ) from exc
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot write the backup to {path}: {exc}") from exc
    click.echo(f"backup written to {path} in {time.perf_counter() - started:.1f} s (integrity ok)")


@click.command("export", short_help="Write every message as NDJSON to stdout.")
@with_appcontext
@click.option("--since", default=None, help=f"Only messages with ts at or after this: {DATE_HELP}.")
@click.option("--from", "sender", default=None, help="Only this sender's messages.")
@explained
def export_command(since, sender):
    """Write every message as one JSON object per line (NDJSON) to stdout, in arrival order.

    Each line is the full record of GET /messages/<message_id>; `flask import` reads it back.
    Only the records go to stdout (logs and the progress bar go to stderr). A database that does
    not exist is an error, not an empty export.
    """
    since_key = None
    if since is not None:
        since_key = timestamps.query_ts_key(since)
        if since_key is None:
            raise click.BadParameter(f"{since!r} is not {DATE_HELP}", param_hint="--since")
    require_database()
    out = sys.stdout
    # The total is the bar's end; a filtered export ends before it.
    with progress(store.stats().total, "exporting") as bar:
        for record in store.export(from_msisdn=sender, since_key=since_key):
            out.write(json.dumps(record_item(record), ensure_ascii=False) + "\n")
            bar.update(1)


@click.command("import", short_help="Store the messages of an NDJSON file.")
@with_appcontext
@click.argument("file", type=click.File("rb"))
@explained
def import_command(file):
    """Store the messages of an NDJSON FILE ('-': stdin), each line validated as /webhook would.

    Lines written by `flask export` keep their provider, type, raw payload and arrival time. A
    message already stored (or imported before), or purged and still remembered, is skipped: a
    re-run adds nothing. Bad lines are reported by number on stderr and the good ones are stored;
    the exit status is 1 if any was bad. A line that is not UTF-8, not strict JSON, nested deeper
    than 64 levels or arrived in the future (received_at) is such a bad line.
    """
    started, read, bad = time.perf_counter(), 0, 0
    # Arrivals later than this go to the schema, which compares each with the time it is read.
    started_at = timestamps.now_iso()
    size = _size(file)

    def valid_rows(bar):
        nonlocal read, bad
        for chunk, complaints, lines, consumed in producer.made_in_child(
            lambda folder: _parsed_chunks(file, started_at, folder)
        ):
            if size:
                bar.update(consumed)
            for complaint in complaints:
                click.echo(complaint, err=True)
            read += lines
            bad += len(complaints)
            yield chunk

    with progress(size or 0, "importing") as bar:
        # One stream of chunks: the storage layer stores each in a transaction and merges once.
        stored = store.bulk_insert_staged(valid_rows(bar))
    store.after_bulk_load()
    elapsed = time.perf_counter() - started
    skipped = read - bad - stored
    click.echo(
        f"imported {plural(stored, 'new message')} ({skipped} skipped: already stored "
        f"or purged; {plural(bad, 'bad line')}) in {elapsed:.1f} s: "
        f"{read / elapsed if elapsed else 0:,.0f} lines/s"
    )
    if bad:
        sys.exit(1)


def _parsed_chunks(file, started_at, folder):
    """The lines of ``file`` as chunks of (the valid messages' rows staged in ``folder``, a
    complaint per bad line, lines read, bytes read); made in the import's child process."""
    schema = schemas.ImportedMessageSchema()
    sizes = producer.chunk_sizes()
    size, messages, complaints, lines, consumed = next(sizes), [], [], 0, 0
    for number, line in enumerate(file, 1):
        consumed += len(line)
        if not line.strip():
            continue
        lines += 1
        try:
            data = strict_json.loads(line.decode("utf-8"), max_depth=MAX_STORED_DEPTH)
            # The schema's own answer (and its error messages) for a line the fast path does
            # not accept.
            messages.append(fast_load(data, started_at) or schema.load(data))
        except ValidationError as exc:
            complaints.append(f"line {number}: {json.dumps(exc.messages, ensure_ascii=False)}")
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, too deep
            reason = str(exc) if isinstance(exc, strict_json.TooDeep) else "not JSON"
            complaints.append(f"line {number}: {json.dumps(reason)}")
        if len(messages) + len(complaints) >= size:
            yield _staged(messages, folder, number), complaints, lines, consumed
            size, messages, complaints, lines, consumed = next(sizes), [], [], 0, 0
    yield _staged(messages, folder, "last"), complaints, lines, consumed


def _staged(messages, folder, name):
    return staging.write(os.path.join(folder, f"{name}.staged"), list(store.message_rows(messages)))


def _size(file):
    """The size of a regular file in bytes (the import's progress), or None (stdin, a pipe)."""
    try:
        return os.fstat(file.fileno()).st_size if os.path.isfile(file.name) else None
    except (AttributeError, OSError, ValueError):
        return None


COMMANDS = (purge_command, backup_command, export_command, import_command)
