"""Synthetic messages for the benchmark and demos: ``flask --app wsgi seed`` and bench/ use them.

``synthetic_messages(count, seed=...)`` yields valid messages as the webhook schema loads them
(``message_id``, ``from_msisdn``, ``to_msisdn``, ``ts``, ``ts_key``, ``text``), the same for the
same seed: a few busy senders and a long tail, timestamps increasing over a year with fractional
seconds of several widths, texts drawn from a Zipf distribution over a vocabulary with common
words first (a few of them non-ASCII) and RARE_WORDS sprinkled in about once per 100,000 messages.

It lives beside the benchmark rather than in the package: the server never needs it, and the
container image ships without bench/.
"""

import itertools
import random
from datetime import UTC, datetime, timedelta

# The most frequent words of the synthetic texts, most frequent first (a Zipf distribution over the
# vocabulary follows them with made-up words). A few are not ASCII, for case folding beyond ASCII.
# fmt: off
COMMON_WORDS = (
    "the", "you", "to", "and", "is", "order", "hello", "please", "thanks", "your", "for", "my",
    "it", "we", "delivery", "can", "ok", "when", "payment", "today", "will", "this", "not", "have",
    "at", "yes", "no", "tomorrow", "status", "help", "refund", "address", "call", "me", "received",
    "sent", "price", "time", "good", "morning", "evening", "need", "update", "invoice", "confirm",
    "booking", "ticket", "account", "number", "store", "pickup", "shipped", "waiting", "sorry",
    "great", "where", "café", "über", "straße", "naïve", "résumé", "école", "señor", "größe",
    "déjà", "vu",
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
# fmt: on
# Words per text: mostly short messages, some long ones.
_LENGTHS = tuple(range(1, 25))
_LENGTH_WEIGHTS = tuple(1.0 / (1 + abs(n - 6) ** 1.5) for n in _LENGTHS)
_SECONDS_PER_DAY = 86_400
_HMS = tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(_SECONDS_PER_DAY))


def _zipf_table(population, exponent):
    """``population`` repeated in proportion to a Zipf weight of its rank (each at least once): a
    uniform pick from the table is a Zipf-distributed pick, without a bisection per draw."""
    weights = [1.0 / (rank**exponent) for rank in range(1, len(population) + 1)]
    size = max(1 << 17, 8 * len(population))
    scale = size / sum(weights)
    table = []
    for item, weight in zip(population, weights, strict=True):
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


def synthetic_messages(
    count,
    *,
    senders=5_000,
    vocabulary=5_000,
    seed=0,
    start=datetime(2025, 1, 1, tzinfo=UTC),
    days=365,
    batch=10_000,
):
    """``count`` valid messages (dicts as the webhook schema loads them), the same for one seed.

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
                fraction = f"{int(uniform() * 10**digits):0{digits}d}"
                ts, ts_key = f"{moment}.{fraction}Z", f"{moment}.{fraction.rstrip('0')}"
            else:
                ts, ts_key = f"{moment}Z", f"{moment}."
            length = lengths[offset]
            text = " ".join(pool[position : position + length])
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
