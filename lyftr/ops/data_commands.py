"""Operator commands for the data's lifecycle: ``flask --app wsgi purge|backup|export|import``."""

import json
import sys
import time

import click
from flask.cli import with_appcontext
from marshmallow import ValidationError

from lyftr import store, timestamps
from lyftr.api import schemas, strict_json
from lyftr.api.messages import record_item
from lyftr.api.schemas import parse_instant
from lyftr.api.strict_json import MAX_STORED_DEPTH

# Messages validated and stored per transaction by `import`.
IMPORT_BATCH = 10_000


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
@click.argument("path", type=click.Path(dir_okay=False))
def backup_command(path):
    """Write a consistent snapshot of the SQLite database to PATH while the service runs.

    PATH must not exist (nor be a symbolic link); the copy is created readable by its owner only.

    Restore: stop the service, replace the database file with PATH (and remove any -wal and -shm
    files beside it), start the service. On PostgreSQL this says how to use pg_dump instead.
    """
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
@click.argument("file", type=click.File("rb"))
def import_command(file):
    """Store the messages of an NDJSON FILE ('-': stdin), each line validated as /webhook would.

    Lines written by `flask export` keep their provider, type, raw payload and arrival time. A
    message already stored (or imported before) is skipped: a re-run adds nothing. Bad lines are
    reported by number on stderr and the good ones are stored; the exit status is 1 if any was bad.
    A line that is not UTF-8, not strict JSON, nested deeper than 64 levels or arrived in the
    future (received_at) is such a bad line.
    """
    schema = schemas.ImportedMessageSchema()
    started, stored, read, bad = time.perf_counter(), 0, 0, 0
    batch = []
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        read += 1
        try:
            document = strict_json.loads(line.decode("utf-8"), max_depth=MAX_STORED_DEPTH)
            batch.append(schema.load(document))
        except ValidationError as exc:
            bad += 1
            click.echo(f"line {number}: {json.dumps(exc.messages, ensure_ascii=False)}", err=True)
            continue
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, too deep
            bad += 1
            reason = str(exc) if isinstance(exc, strict_json.TooDeep) else "not JSON"
            click.echo(f"line {number}: {json.dumps(reason)}", err=True)
            continue
        if len(batch) >= IMPORT_BATCH:
            stored += store.bulk_insert(batch)
            batch = []
    if batch:
        stored += store.bulk_insert(batch)
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
