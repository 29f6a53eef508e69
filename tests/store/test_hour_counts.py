"""Counts per hour (ts_hour_counts, arrival_hour_counts): the since= total and the console's chart
equal a count of the rows themselves, across hour boundaries, after deliveries, batches, bulk
loads, duplicates and purges, on both backends."""

import itertools

from helpers import Sender, sample_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from lyftr import store
from lyftr.api.schemas import ImportedMessageSchema
from lyftr.extensions import db
from lyftr.timestamps import query_ts_key

HOURS = ["2025-01-15T09", "2025-01-15T10", "2025-01-15T23", "2025-01-16T00"]
CLOCK = ["00:00", "00:01", "30:00", "59:59"]
FRACTIONS = ["", ".0", ".000001", ".5", ".999999"]
STAMPS = [f"{h}:{c}{f}Z" for h in HOURS for c in CLOCK for f in FRACTIONS]
# since= values at, just before and just after hour boundaries, in the forms the API takes.
SINCES = [
    "2025-01-15",
    "2025-01-16",
    "2025-01-14",
    "2025-01-17",
    "2025-01-15T11:00:00+01:00",
    "2025-01-15T10:00:00",
    *[s[:-1] for s in STAMPS[::7]],
    *STAMPS[::3],
]
ARRIVAL_HOURS = ["2025-02-01T00", "2025-02-01T01", "2025-02-02T12"]

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def since_total(client, since):
    return client.get("/messages", query_string={"since": since}).get_json()["total"]


def brute_force_since(app, since):
    with app.app_context(), db.engine.connect() as connection:
        statement = text("SELECT count(*) FROM messages WHERE ts_key >= :key")
        return connection.execute(statement, {"key": query_ts_key(since)}).scalar()


def brute_force_arrivals(app):
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT substr(created_at, 1, 13), count(*) FROM messages GROUP BY 1")
        )
        return {hour: n for hour, n in rows}


def assert_counts_exact(app, client):
    for since in SINCES:
        assert since_total(client, since) == brute_force_since(app, since), since
    arrived = brute_force_arrivals(app)
    hours = sorted(set(arrived) | set(ARRIVAL_HOURS))
    with app.app_context():
        assert store.arrivals_per_hour(hours) == [(h, arrived.get(h, 0)) for h in hours]


def loaded(message_id, ts, arrived=None):
    """A message as the schemas load it (``arrived``: an hour it was received in, as an import
    keeps)."""
    line = {**sample_message(message_id=message_id, ts=ts), "text": f"text of {message_id}"}
    if arrived is not None:
        line["received_at"] = f"{arrived}:30:00Z"
    return ImportedMessageSchema().load(line)


def store_messages(app, client, how, messages):
    if how == "webhook":
        send = Sender(client)
        for m in messages:
            body = sample_message(message_id=m["message_id"], ts=m["ts"], text=m["text"])
            assert send(body).status_code == 200
        return
    with app.app_context():
        if how == "batch":
            store.insert_batch(messages)
        else:
            store.bulk_insert(messages, batch_size=3)


def test_since_total_counts_whole_hours_and_the_partial_one(app, client):
    messages = [loaded(f"m{i}", ts) for i, ts in enumerate(STAMPS)]
    store_messages(app, client, "bulk", messages)
    assert since_total(client, "2025-01-15") == len(STAMPS)
    assert since_total(client, "2025-01-15T10:00:00Z") == len(STAMPS) * 3 // 4
    # One microsecond into the hour leaves out its rows at :00:00 and :00:00.0 (the same instant).
    assert since_total(client, "2025-01-15T10:00:00.000001Z") == len(STAMPS) * 3 // 4 - 2
    assert since_total(client, "2025-01-16T00:59:59.999999Z") == 1
    assert since_total(client, "2025-01-16T01:00:00Z") == 0
    assert_counts_exact(app, client)


def test_duplicates_are_counted_once(app, client):
    first = [loaded(f"d{i}", ts) for i, ts in enumerate(STAMPS[:10])]
    store_messages(app, client, "webhook", first[:5])
    store_messages(app, client, "batch", first)
    store_messages(app, client, "bulk", first)
    store_messages(app, client, "webhook", first)
    assert since_total(client, "2025-01-01") == 10
    assert_counts_exact(app, client)


def test_purge_takes_its_messages_out_of_the_counts(app, client):
    messages = [
        loaded(f"p{i}", ts, arrived=hour)
        for i, (ts, hour) in enumerate(zip(STAMPS, itertools.cycle(ARRIVAL_HOURS), strict=False))
    ]
    store_messages(app, client, "bulk", messages)
    store_messages(app, client, "webhook", [loaded("now", STAMPS[0])])
    with app.app_context():
        assert store.purge("2025-02-01T01:00:00.000000Z") == len(STAMPS[::3])  # p0, p3, ...
        assert_counts_exact(app, client)
        store.purge("2025-02-02T00:00:00.000000Z")
        assert_counts_exact(app, client)
        # An hour emptied by a purge keeps no row (a since= total reads every later hour's).
        empty = db.session.execute(
            text("SELECT count(*) FROM arrival_hour_counts WHERE hour < '2025-02-02'")
        ).scalar()
        assert empty == 0
    assert since_total(client, "2025-01-01") == 1 + len(STAMPS[2::3])


def test_counts_stay_exact_whatever_the_writes(app, client):
    ids = itertools.count()
    step = st.one_of(
        st.tuples(
            st.sampled_from(["webhook", "batch", "bulk"]),
            st.lists(
                st.tuples(st.sampled_from(STAMPS), st.sampled_from([None, *ARRIVAL_HOURS])),
                max_size=6,
            ),
            st.booleans(),  # repeat a stored message_id
        ),
        st.tuples(st.just("purge"), st.sampled_from(["2025-02-01T01", "2025-02-02T13"])),
    )

    @PROPERTY
    @given(st.lists(step, min_size=1, max_size=4))
    def writes_then_counts(steps):
        for kind, *args in steps:
            if kind == "purge":
                with app.app_context():
                    store.purge(f"{args[0]}:00:00.000000Z")
                continue
            stamps, repeat = args
            messages = [
                loaded("m0" if repeat and i == 0 else f"m{next(ids)}", ts, arrived)
                for i, (ts, arrived) in enumerate(stamps)
            ]
            if kind == "webhook":  # /webhook's arrival is now
                messages = [loaded(m["message_id"], m["ts"]) for m in messages]
            store_messages(app, client, kind, messages)
        assert_counts_exact(app, client)

    writes_then_counts()
