"""Operator commands for the data's lifecycle: ``flask --app wsgi purge|backup|export|import``."""

import json
import sys
import time

import click
from flask.cli import with_appcontext
from marshmallow import ValidationError

from lyftr import store, timestamps
from lyftr.api import schemas
from lyftr.api.messages import record_item
from lyftr.api.schemas import parse_instant
from lyftr.ops.import_lines import fast_load


@click.command("purge", short_help="Delete messages that arrived before a date.")
@with_appcontext
@click.option(
    "--before",
    required=True,
    help="ISO-8601 instant with a zone, e.g. 2026-01-01T00:00:00Z: messages that arrived "
    "(received_at) before it are deleted.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def purge_command(before, dry_run):
    """Delete the messages that arrived before --before, as RETENTION_DAYS does automatically.

    Their IDs are remembered (PURGED_IDS_KEEP_DAYS) so that a provider's retry of one is answered
    as a duplicate. Runs in small transactions: the service keeps ingesting meanwhile.
    """
    cutoff = parse_instant(before)
    if cutoff is None:
        raise click.BadParameter(
            "an ISO-8601 date-time with a zone ('Z' or +hh:mm)", param_hint="--before"
        )
    if dry_run:
        click.echo(
            f"would purge {store.purge(cutoff, dry_run=True)} messages received before {cutoff}"
        )
        return
    with store.exclusive_purge() as ours:
        if not ours:
            raise click.ClickException(
                "another purge is running (a worker's retention?): try again"
            )
        purged = store.purge(cutoff)
    click.echo(f"purged {purged} messages received before {cutoff}")


@click.command("backup", short_help="Snapshot the SQLite database to a file, live.")
@with_appcontext
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def backup_command(path):
    """Write a consistent snapshot of the SQLite database to PATH while the service runs.

    Restore: stop the service, replace the database file with PATH (and remove any -wal and -shm
    files beside it), start the service. On PostgreSQL this says how to use pg_dump instead.
    """
    started = time.perf_counter()
    try:
        store.backup(path)
    except NotImplementedError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backup written to {path} in {time.perf_counter() - started:.1f} s (integrity ok)")


@click.command("export", short_help="Write every message as NDJSON to stdout.")
@with_appcontext
@click.option("--since", default=None, help="Only messages with ts >= this ISO-8601 date(-time).")
@click.option("--from", "sender", default=None, help="Only this sender's messages.")
def export_command(since, sender):
    """Write every message as one JSON object per line (NDJSON) to stdout, in arrival order.

    Each line is the full record of GET /messages/<message_id>; `flask import` reads it back.
    """
    since_key = None
    if since is not None:
        since_key = timestamps.query_ts_key(since)
        if since_key is None:
            raise click.BadParameter("an ISO-8601 date or date-time", param_hint="--since")
    out = sys.stdout
    for record in store.export(from_msisdn=sender, since_key=since_key):
        out.write(json.dumps(record_item(record), ensure_ascii=False) + "\n")


@click.command("import", short_help="Store the messages of an NDJSON file.")
@with_appcontext
@click.argument("file", type=click.File("r", encoding="utf-8"))
def import_command(file):
    """Store the messages of an NDJSON FILE ('-': stdin), each line validated as /webhook would.

    Lines written by `flask export` keep their provider, type, raw payload and arrival time. A
    message already stored (or imported before) is skipped: a re-run adds nothing. Bad lines are
    reported by number on stderr and the good ones are stored; the exit status is 1 if any was bad.
    """
    schema = schemas.ImportedMessageSchema()
    started, read, bad = time.perf_counter(), 0, 0

    def valid_messages():
        nonlocal read, bad
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            read += 1
            try:
                data = json.loads(line)
                # The schema's own answer (and its error messages) for a line the fast path
                # does not accept.
                message = fast_load(data) or schema.load(data)
            except (ValueError, ValidationError) as exc:
                bad += 1
                reason = exc.messages if isinstance(exc, ValidationError) else "not JSON"
                click.echo(f"line {number}: {json.dumps(reason, ensure_ascii=False)}", err=True)
                continue
            yield message

    # One stream: the storage layer cuts it into its large transactions and merges once.
    stored = store.bulk_insert(valid_messages())
    store.after_bulk_load()
    elapsed = time.perf_counter() - started
    good = read - bad
    click.echo(
        f"imported {stored} new messages ({good - stored} already stored, {bad} bad lines) "
        f"in {elapsed:.1f} s: {read / elapsed if elapsed else 0:,.0f} lines/s"
    )
    if bad:
        sys.exit(1)


COMMANDS = (purge_command, backup_command, export_command, import_command)
