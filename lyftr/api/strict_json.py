"""JSON as lyftr reads it from outside: RFC 8259 only (no NaN, no Infinity, no number out of
range), no object with the same key twice (which member would win is up to each reader), and,
for what is stored and shown again, a bounded nesting depth.

Everything here refuses with ValueError (RecursionError for a document nested deeper than the
parser's own limit): callers answer 422, never 500.
"""

import json
import math

# A provider's payload is stored and shown again (the console, GET /messages/<id>): WhatsApp's
# notifications are about 8 levels deep, so 64 leaves room for any real one and keeps every
# later json.dumps and template far from Python's recursion limit.
MAX_STORED_DEPTH = 64


class DuplicateKey(ValueError):
    def __init__(self, key):
        super().__init__(f"duplicate key {key!r} in a JSON object")


class TooDeep(ValueError):
    def __init__(self, limit):
        super().__init__(f"JSON nested more than {limit} levels deep")


def _not_json(constant):
    # json.loads reads NaN, Infinity and -Infinity, which RFC 8259 JSON does not have.
    raise ValueError(f"{constant} is not valid JSON")


def _finite_float(literal):
    # 1e999 would become inf, which cannot be echoed back in a 422 as JSON.
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"{literal} is out of range")
    return value


def _unique_keys(pairs):
    document = dict(pairs)
    if len(document) != len(pairs):  # a key twice: say which
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return document


# One decoder for every document: json.loads with these options would build one per call.
_DECODER = json.JSONDecoder(
    parse_constant=_not_json, parse_float=_finite_float, object_pairs_hook=_unique_keys
)


def loads(text, *, max_depth=None):
    """The JSON document ``text`` (str); ValueError if it is not strict JSON or is nested deeper
    than ``max_depth``, RecursionError if deeper than the parser can go."""
    if text.startswith("\ufeff"):  # as json.loads refuses it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    document = _DECODER.decode(text)
    # Each level opens with a bracket of the text: with no more brackets than max_depth (counted
    # in C, strings included) the document cannot be deeper, and is not walked.
    if (
        max_depth is not None
        and text.count("{") + text.count("[") > max_depth
        and depth_exceeds(document, max_depth)
    ):
        raise TooDeep(max_depth)
    return document


def depth_exceeds(document, limit):
    """Whether arrays and objects in ``document`` nest more than ``limit`` deep (no recursion)."""
    pending = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth + 1 > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def pretty(stored, *, max_chars, max_depth=MAX_STORED_DEPTH):
    """A stored JSON text indented for reading, at most ``max_chars`` characters: as stored (and
    cut) when it is too deep or too long to indent."""
    try:
        document = json.loads(stored)
        if not depth_exceeds(document, max_depth):
            stored = json.dumps(document, indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        pass
    if len(stored) > max_chars:
        return stored[:max_chars] + f"\n… ({len(stored) - max_chars:,} more characters)"
    return stored
