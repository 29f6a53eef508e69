"""GET /stats: totals, top senders and the time span."""

from helpers import sample_message


def seed(send, messages):
    for message in messages:
        assert send(message).status_code == 200


def stats(client):
    response = client.get("/stats")
    assert response.status_code == 200
    return response.get_json()


def test_empty(client):
    assert stats(client) == {
        "total_messages": 0,
        "senders_count": 0,
        "messages_per_sender": [],
        "first_message_ts": None,
        "last_message_ts": None,
    }


def test_counts(client, send):
    seed(
        send,
        [
            sample_message(message_id="a1", **{"from": "+111"}),
            sample_message(message_id="a2", **{"from": "+111"}),
            sample_message(message_id="a3", **{"from": "+111"}),
            sample_message(message_id="b1", **{"from": "+222"}),
            sample_message(message_id="c1", **{"from": "+333"}),
            sample_message(message_id="c2", **{"from": "+333"}),
        ],
    )
    body = stats(client)
    assert body["total_messages"] == 6
    assert body["senders_count"] == 3
    assert body["messages_per_sender"] == [
        {"from": "+111", "count": 3},
        {"from": "+333", "count": 2},
        {"from": "+222", "count": 1},
    ]


def test_rejected_and_duplicate_deliveries_do_not_count(client, send):
    seed(send, [sample_message()])
    send(sample_message(text="again"))  # duplicate
    send(sample_message(message_id="bad", ts="2025-02-30T00:00:00Z"))  # 422
    send.raw(b'{"message_id": "unsigned"}', signature="0" * 64)  # 401
    body = stats(client)
    assert (body["total_messages"], body["senders_count"]) == (1, 1)
    assert body["messages_per_sender"] == [{"from": sample_message()["from"], "count": 1}]


def test_top_ten_with_ties_by_sender(client, send):
    # 12 senders: +1000000001 .. +1000000012, inserted in reverse; counts 3,3,3,2,2,2,2,2,2,2,2,1.
    counts = {f"+10000000{n:02d}": 3 if n <= 3 else 2 if n <= 11 else 1 for n in range(1, 13)}
    messages = []
    for sender, count in sorted(counts.items(), reverse=True):
        messages += [
            sample_message(message_id=f"{sender}-{k}", **{"from": sender}) for k in range(count)
        ]
    seed(send, messages)
    body = stats(client)
    assert body["total_messages"] == sum(counts.values())
    assert body["senders_count"] == 12
    top = body["messages_per_sender"]
    assert len(top) == 10
    assert top == [
        {"from": "+1000000001", "count": 3},
        {"from": "+1000000002", "count": 3},
        {"from": "+1000000003", "count": 3},
    ] + [{"from": f"+10000000{n:02d}", "count": 2} for n in range(4, 11)]
    # +1000000011 ties with the tenth but sorts after it, and +1000000012 has fewer
    assert "+1000000011" not in [e["from"] for e in top]


def test_ties_sorted_by_sender_as_text(client, send):
    seed(send, [sample_message(message_id=s, **{"from": s}) for s in ("+9", "+10", "+100", "+2")])
    assert [e["from"] for e in stats(client)["messages_per_sender"]] == ["+10", "+100", "+2", "+9"]


def test_first_and_last_ts_as_received(client, send):
    seed(
        send,
        [
            sample_message(message_id="mid", ts="2025-01-15T10:00:00.500Z"),
            sample_message(message_id="last", ts="2025-03-01T00:00:00.000Z"),
            sample_message(message_id="first", ts="2024-12-31T23:59:59.90Z"),
        ],
    )
    body = stats(client)
    assert body["first_message_ts"] == "2024-12-31T23:59:59.90Z"
    assert body["last_message_ts"] == "2025-03-01T00:00:00.000Z"


def test_first_and_last_ts_chronological_with_fractional_seconds(client, send):
    # As text "10:00:00Z" > "10:00:00.5Z" and ".123Z" < ".5Z"; in time the order is Z, .123, .5.
    seed(
        send,
        [
            sample_message(message_id="a", ts="2025-01-15T10:00:00.123Z"),
            sample_message(message_id="b", ts="2025-01-15T10:00:00Z"),
            sample_message(message_id="c", ts="2025-01-15T10:00:00.5Z"),
            sample_message(message_id="d", ts="2025-01-15T10:00:00.05Z"),
        ],
    )
    body = stats(client)
    assert body["first_message_ts"] == "2025-01-15T10:00:00Z"
    assert body["last_message_ts"] == "2025-01-15T10:00:00.5Z"


def test_single_message(client, send):
    seed(send, [sample_message()])
    body = stats(client)
    assert body["first_message_ts"] == body["last_message_ts"] == "2025-01-15T10:00:00Z"
    assert body["messages_per_sender"] == [{"from": "+919876543210", "count": 1}]
