"""Operator commands: ``flask --app wsgi sign|send|init-db|seed``."""

import itertools
import json
import random
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

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
    """Create the database and apply its migrations (as `flask db upgrade`; the server also does)."""
    storage.ensure_schema()
    click.echo("schema applied")


# --- synthetic data ----------------------------------------------------------------------------

# The most frequent words of the synthetic texts, most frequent first (a Zipf distribution over the
# vocabulary follows them with made-up words). A few are not ASCII, for case folding beyond ASCII.
COMMON_WORDS = (
    "the", "you", "to", "and", "is", "order", "hello", "please", "thanks", "your", "for", "my", "it",
    "we", "delivery", "can", "ok", "when", "payment", "today", "will", "this", "not", "have", "at",
    "yes", "no", "tomorrow", "status", "help", "refund", "address", "call", "me", "received", "sent",
    "price", "time", "good", "morning", "evening", "need", "update", "invoice", "confirm", "booking",
    "ticket", "account", "number", "store", "pickup", "shipped", "waiting", "sorry", "great", "where",
    "café", "über", "straße", "naïve", "résumé", "école", "señor", "größe", "déjà", "vu",
)
# Each turns up in about one message in 100,000: a search that matches a handful of rows.
RARE_WORDS = ("quixotic", "zeppelin", "xylophone", "marmalade", "kumquat")
RARE_RATE = 5e-5
_SYLLABLES = (
    "ba", "be", "bi", "bo", "da", "de", "di", "do", "fa", "fe", "ga", "go", "ha", "he", "ka", "ke",
    "ki", "ko", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne", "ni", "no", "pa", "pe",
    "pi", "po", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti", "to", "va", "ve",
    "vi", "vo", "ya", "yo", "za", "zu", "an", "en", "in", "on", "ar", "er", "or", "ul",
)
# Words per text: mostly short messages, some long ones.
_LENGTHS = tuple(range(1, 25))
_LENGTH_WEIGHTS = tuple(1.0 / (1 + abs(n - 6) ** 1.5) for n in _LENGTHS)
_SECONDS_PER_DAY = 86_400
_HMS = tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(_SECONDS_PER_DAY))


def _zipf_table(population, exponent):
    """``population`` repeated in proportion to a Zipf weight of its rank (each at least once): a
    uniform pick from the table is a Zipf-distributed pick, without a bisection per draw."""
    weights = [1.0 / (rank ** exponent) for rank in range(1, len(population) + 1)]
    size = max(1 << 17, 8 * len(population))
    scale = size / sum(weights)
    table = []
    for item, weight in zip(population, weights):
        table.extend(itertools.repeat(item, max(1, round(weight * scale))))
    return table


def _vocabulary(rng, size):
    words = list(COMMON_WORDS[:size])
    taken = set(words) | set(RARE_WORDS)
    while len(words) < size:
        word = "".join(rng.choices(_SYLLABLES, k=rng.choice((2, 3, 3, 4))))
        if word not in taken and not any(rare in word for rare in RARE_WORDS):
            taken.add(word)
            words.append(word)
    return words


def synthetic_messages(count, *, senders=5_000, vocabulary=5_000, seed=0,
                       start=datetime(2025, 1, 1, tzinfo=timezone.utc), days=365, batch=10_000):
    """``count`` valid messages (dicts as the webhook schema loads them), the same for the same seed.

    Senders: ``senders`` numbers with a Zipf-like share each (a few busy, a long tail). Timestamps:
    increasing over ``days`` days from ``start``, about a quarter with fractional seconds of 1 to 6
    digits. Texts: 1 to 24 words from a Zipf distribution over ``vocabulary`` words (common words
    first), sometimes capitalised, a few with a RARE_WORDS word, some null or empty.
    ``message_id`` is ``s<seed>-<index>``: seeding twice with one seed adds nothing the second time.
    """
    rng = random.Random(seed)
    sender_numbers = [f"+91{n}" for n in rng.sample(range(7_000_000_000, 9_999_999_999), senders)]
    sender_table = _zipf_table(sender_numbers, 0.9)
    recipients = [f"+1415555{n:04d}" for n in rng.sample(range(10_000), 8)]
    words = _vocabulary(rng, vocabulary)
    word_table = _zipf_table(words, 1.0)
    dates = [(start + timedelta(days=d)).date().isoformat() for d in range(days + 1)]
    base = int(start.timestamp()) % _SECONDS_PER_DAY
    span = days * _SECONDS_PER_DAY / max(count, 1)
    choices, uniform = rng.choices, rng.random

    for first in range(0, count, batch):
        n = min(batch, count - first)
        lengths = choices(_LENGTHS, weights=_LENGTH_WEIGHTS, k=n)
        pool = choices(word_table, k=sum(lengths))
        froms = choices(sender_table, k=n)
        position = 0
        for offset in range(n):
            index = first + offset
            seconds = base + int((index + uniform()) * span)
            moment = f"{dates[seconds // _SECONDS_PER_DAY]}T{_HMS[seconds % _SECONDS_PER_DAY]}"
            roll = uniform()
            if roll < 0.25:
                digits = (1, 2, 3, 3, 3, 6)[int(roll * 24)]
                fraction = f"{int(uniform() * 10 ** digits):0{digits}d}"
                ts, ts_key = f"{moment}.{fraction}Z", f"{moment}.{fraction.rstrip('0')}"
            else:
                ts, ts_key = f"{moment}Z", f"{moment}."
            length = lengths[offset]
            text = " ".join(pool[position:position + length])
            position += length
            if roll > 0.97:
                text = None if roll > 0.975 else ""
            elif roll < RARE_RATE * 20 and uniform() < 0.05:
                text = f"{text} {RARE_WORDS[int(uniform() * len(RARE_WORDS))]}"
            elif 0.6 < roll < 0.9:
                text = text[0].upper() + text[1:]
            yield {
                "message_id": f"s{seed}-{index:08d}",
                "from_msisdn": froms[offset],
                "to_msisdn": recipients[index % len(recipients)],
                "ts": ts,
                "ts_key": ts_key,
                "text": text,
            }


@click.command("seed")
@with_appcontext
@click.option("--count", type=click.IntRange(min=0), default=100_000, show_default=True,
              help="Messages to generate.")
@click.option("--senders", type=click.IntRange(min=1, max=1_000_000), default=5_000,
              show_default=True, help="Distinct senders (a few busy ones, a long tail).")
@click.option("--vocabulary", type=click.IntRange(min=10, max=1_000_000), default=5_000,
              show_default=True, help="Distinct words in the texts (common words first).")
@click.option("--seed", "seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed; message IDs derive from it, so a seed seeds once.")
@click.option("--days", type=click.IntRange(min=1, max=36_500), default=365, show_default=True,
              help="Timestamps spread over this many days from 2025-01-01.")
def seed_command(count, senders, vocabulary, seed, days):
    """Bulk-load COUNT synthetic messages into the database (for benchmarks and demos)."""
    started = time.perf_counter()
    stored = storage.bulk_insert(
        synthetic_messages(count, senders=senders, vocabulary=vocabulary, seed=seed, days=days)
    )
    elapsed = time.perf_counter() - started
    storage.after_bulk_load()
    rate = count / elapsed if elapsed > 0 else 0.0
    click.echo(
        f"seeded {stored} new messages ({count - stored} already stored) "
        f"in {elapsed:.1f} s: {rate:,.0f} rows/s"
    )


def init_app(app):
    for command in (sign_command, send_command, init_db_command, seed_command):
        app.cli.add_command(command)
