"""Hypothesis strategies for messages as clients send them: values near each check's edge of the
schemas (``lyftr.api.schemas``), and valid messages with a field or two changed to one of them."""

from hypothesis import strategies as st

ABSENT = object()

# Values near each check's edges, mixed with arbitrary JSON values.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=5,
)
numbers = st.sampled_from(
    ["+919876543210", "+1", "+1234567890123456", "+", "919876543210", "+91 98", "+٣", "US.123", ""]
)
identifiers = st.sampled_from(["m1", "", "x" * 256, "x" * 257, "a\x00b", "\ud800", "é"]) | st.text()
stamps = st.sampled_from(
    [
        "2025-01-15T10:00:00Z",
        "2025-01-15T10:00:00.123456789Z",
        "2025-02-30T00:00:00Z",
        "2025-01-15T10:00:00z",
        "2025-01-15T10:00:00+00:00",
        "2025-01-15",
        "0001-01-01T00:00:00Z",
        "2025-01-15T24:00:00Z",
        "2025-01-15T10:00:00.Z",
    ]
)
texts = (
    st.none() | st.text(max_size=8) | st.sampled_from(["x" * 4096, "x" * 4097, "\ud83d", "\x00"])
)
valid_stamps = st.builds(
    lambda moment, digits: moment.strftime("%Y-%m-%dT%H:%M:%S") + digits + "Z",
    st.datetimes(),
    st.sampled_from(["", ".0", ".5", ".123456789"]),
)
valid_message_ids = st.text(min_size=1, max_size=20).filter(lambda v: "\x00" not in v)
valid_msisdns = st.from_regex(r"\+[0-9]{1,15}", fullmatch=True)


def changed(valid, fields):
    """``valid`` with up to two of ``fields`` changed to one of their values, any JSON, or left
    out."""
    changes = st.dictionaries(
        st.sampled_from(sorted(fields)),
        st.one_of(*fields.values(), json_values, st.just(ABSENT)),
        max_size=2,
    )
    return st.builds(
        lambda line, change: {k: v for k, v in {**line, **change}.items() if v is not ABSENT},
        valid,
        changes | st.just({}),
    )
