"""Operator commands: ``flask --app wsgi sign|send|init-db``."""

import json
import sys
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

import click
from flask import current_app
from flask.cli import with_appcontext

from . import signing, storage


def _secret():
    secret = current_app.config["WEBHOOK_SECRET"]
    if not secret:
        raise click.ClickException("WEBHOOK_SECRET is not set")
    return secret


@click.command("sign")
@with_appcontext
@click.argument("file", type=click.File("rb"), default="-")
def sign_command(file):
    """Print the X-Signature of FILE's exact bytes (stdin with '-')."""
    click.echo(signing.sign(_secret(), file.read()))


@click.command("send")
@with_appcontext
@click.option("--url", default="http://localhost:8000", show_default=True, help="Server base URL.")
@click.option("--message-id", default=None, help="Default: a new random ID.")
@click.option("--from", "sender", default="+919876543210", show_default=True)
@click.option("--to", "recipient", default="+14155550100", show_default=True)
@click.option("--ts", default=None, help="Default: now, in UTC.")
@click.option("--text", default="Hello", show_default=True)
def send_command(url, message_id, sender, recipient, ts, text):
    """Sign a message and POST it to a running server's /webhook."""
    message = {
        "message_id": message_id or f"cli-{uuid.uuid4().hex}",
        "from": sender,
        "to": recipient,
        "ts": ts or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "text": text,
    }
    body = json.dumps(message).encode("utf-8")
    request = urllib.request.Request(
        url.rstrip("/") + "/webhook",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Signature": signing.sign(_secret(), body)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, reply = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, reply = exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc.reason}") from exc
    click.echo(f"{status} {reply.decode('utf-8', 'replace')}")
    if status != 200:
        sys.exit(1)


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database and its schema (the server also does this on its own)."""
    storage.ensure_schema()
    click.echo("schema applied")


def init_app(app):
    for command in (sign_command, send_command, init_db_command):
        app.cli.add_command(command)
