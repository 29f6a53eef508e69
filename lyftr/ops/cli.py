"""Operator commands: ``flask --app wsgi sign|send|seed`` (and ``data_commands``).

The schema is applied with Flask-Migrate's ``flask --app wsgi db upgrade``.
"""

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from lyftr import store
from lyftr.ops import data_commands
from lyftr.ops.producer import staged_in_child
from lyftr.ops.terminal import explained, plural, progress
from lyftr.providers import signing


def _secret():
    secret = current_app.config["WEBHOOK_SECRET"]
    if not secret:
        raise click.ClickException(
            "WEBHOOK_SECRET is not set: export the server's secret first "
            "(make run uses the development secret testsecret when none is set)"
        )
    return secret


@click.command("sign", short_help="Print the X-Signature of a file's bytes.")
@with_appcontext
@click.argument("file", type=click.File("rb"), default="-")
def sign_command(file):
    """Print the X-Signature of FILE's exact bytes (stdin with '-').

    Signs with WEBHOOK_SECRET from the environment, which must be the server's secret
    (`make run` uses the development secret `testsecret` when none is set).
    """
    click.echo(signing.sign(_secret(), file.read()))


@click.command("send", short_help="Sign a message and POST it to a running server.")
@with_appcontext
@click.option("--url", default="http://localhost:8000", show_default=True, help="Server base URL.")
@click.option("--message-id", default=None, help="Default: a new random ID.")
@click.option("--from", "sender", default="+919876543210", show_default=True)
@click.option("--to", "recipient", default="+14155550100", show_default=True)
@click.option("--ts", default=None, help="Default: now, in UTC.")
@click.option("--text", default="Hello", show_default=True)
def send_command(url, message_id, sender, recipient, ts, text):
    """Sign a message and POST it to a running server's /webhook.

    Signs with WEBHOOK_SECRET from the environment, which must be the server's secret
    (`make run` uses the development secret `testsecret` when none is set). Prints the status and
    the body of the answer; exits with 1 unless it is a 200.
    """
    message = {
        "message_id": message_id or f"cli-{uuid.uuid4().hex}",
        "from": sender,
        "to": recipient,
        "ts": ts or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "text": text,
    }
    body = json.dumps(message).encode("utf-8")
    headers = {"Content-Type": "application/json", "X-Signature": signing.sign(_secret(), body)}
    try:
        request = urllib.request.Request(
            url.rstrip("/") + "/webhook", data=body, method="POST", headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            status, reply = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, reply = exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc.reason}") from exc
    except (ValueError, OSError) as exc:  # not a URL (no http://), a reset connection, a timeout
        raise click.ClickException(
            f"cannot post to {url}: {exc} (--url is the server's base URL, e.g. "
            "http://127.0.0.1:8000)"
        ) from exc
    click.echo(f"{status} {reply.decode('utf-8', 'replace')}")
    if status != 200:
        sys.exit(1)


def _synthetic_messages():
    """bench/synthetic.py's generator, from the checkout lyftr is installed from (``pip install
    -e .``), whichever directory the command runs in."""
    root = str(Path(__file__).resolve().parents[2])
    if (Path(root) / "bench" / "synthetic.py").is_file() and root not in sys.path:
        sys.path.append(root)
    try:
        from bench.synthetic import synthetic_messages
    except ImportError as exc:
        if exc.name not in ("bench", "bench.synthetic"):
            raise
        raise click.ClickException(
            "seed needs bench/synthetic.py from the lyftr repository, which is not here "
            "(the container image ships without bench/): run it from a checkout, "
            "e.g. .venv/bin/flask --app wsgi seed --count 1000"
        ) from exc
    return synthetic_messages


@click.command("seed", short_help="Bulk-load synthetic messages (benchmarks, demos).")
@with_appcontext
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=100_000,
    show_default=True,
    help="Messages to generate.",
)
@click.option(
    "--senders",
    type=click.IntRange(min=1, max=1_000_000),
    default=5_000,
    show_default=True,
    help="Distinct senders (a few busy ones, a long tail).",
)
@click.option(
    "--vocabulary",
    type=click.IntRange(min=10, max=1_000_000),
    default=5_000,
    show_default=True,
    help="Distinct words in the texts (common words first).",
)
@click.option(
    "--seed",
    "seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed; message IDs derive from it, so a seed seeds once.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1, max=36_500),
    default=365,
    show_default=True,
    help="Timestamps spread over this many days from 2025-01-01.",
)
@explained
def seed_command(count, senders, vocabulary, seed, days):
    """Bulk-load --count synthetic messages (for benchmarks and demos).

    Deterministic for a --seed, and a seed seeds once: run again, it adds nothing (nor does it
    bring back messages purged since). The generator is bench/synthetic.py, so this command runs
    from a checkout of the repository, not in the container image.
    """
    synthetic_messages = _synthetic_messages()
    started = time.perf_counter()
    messages = synthetic_messages(
        count, senders=senders, vocabulary=vocabulary, seed=seed, days=days
    )
    with progress(count, "seeding") as bar:
        chunks = staged_in_child(store.message_rows(messages))
        stored = store.bulk_insert_staged(_counted(chunks, bar))
    elapsed = time.perf_counter() - started
    store.after_bulk_load()
    rate = count / elapsed if elapsed > 0 else 0.0
    click.echo(
        f"seeded {plural(stored, 'new message')} ({count - stored} skipped: already stored or "
        f"purged) in {elapsed:.1f} s: {rate:,.0f} rows/s"
    )


def _counted(chunks, bar):
    """The staged ``chunks``, moving ``bar`` on by each one's rows as it is read."""
    for chunk in chunks:
        yield chunk
        bar.update(chunk.rows)


def _name_the_migrations_directory(app):
    """Flask-Migrate's ``flask db`` help says its ``--directory`` defaults to "migrations"; this
    app binds its own (lyftr/store/migrations), used whenever the option is not given. Say so."""
    migrate = app.extensions.get("migrate")
    if migrate is None:
        return
    from flask_migrate.cli import db as db_group

    directory = os.path.relpath(migrate.directory, os.path.dirname(app.root_path))
    for command in (db_group, *db_group.commands.values()):
        for param in command.params:
            if param.name == "directory":
                param.help = f"Migration script directory (default: {directory})"


def init_app(app):
    for command in (sign_command, send_command, seed_command, *data_commands.COMMANDS):
        app.cli.add_command(command)
    _name_the_migrations_directory(app)


@click.command("serve", short_help="Serve the API with Gunicorn (gunicorn.conf.py).")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve_command(gunicorn_args):
    """Serve lyftr with Gunicorn and the repository's gunicorn.conf.py, as the container does.
    Extra arguments go to Gunicorn (e.g. ``lyftr serve -- --bind 127.0.0.1:8000``)."""
    root = Path(__file__).resolve().parents[2]
    config_file = root / "gunicorn.conf.py"
    if not (config_file.is_file() and (root / "wsgi.py").is_file()):
        raise click.ClickException(
            f"no gunicorn.conf.py and wsgi.py in {root}: run from a checkout of lyftr "
            "(pip install -e .)"
        )
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
    os.chdir(root)
    os.execvp(gunicorn, [gunicorn, "-c", str(config_file), *gunicorn_args, "wsgi:app"])
