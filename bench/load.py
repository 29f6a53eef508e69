"""Load generation: HTTP helpers, signed request bodies, wrk and the WhatsApp batch client.

wrk runs bench/wrk.lua, which sends pre-signed /webhook bodies (``signature\\tbody`` lines of a
file ``write_bodies`` makes), each new one once, and prints its figures as one ``BENCH_JSON`` line.
WhatsApp batches are signed as Meta signs them and POSTed by ``BatchPoster``, a thread with one
keep-alive connection. The server's counters are read from /metrics.
"""

import hashlib
import hmac
import http.client
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

from bench.common import HOST, ROOT, log

LUA = ROOT / "bench" / "wrk.lua"


def http_get(base, path, timeout=30):
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(base, path):
    status, body = http_get(base, path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return json.loads(body)


def webhook_counts(base):
    """webhook_requests_total by result, summed over the workers."""
    _, body = http_get(base, "/metrics")
    counts = {}
    for match in re.finditer(
        rb'^webhook_requests_total\{result="([a-z_]+)"\} ([0-9.e+]+)$', body, re.M
    ):
        counts[match[1].decode()] = float(match[2])
    return counts


def whatsapp_stored(base):
    """messages_stored_total{provider="whatsapp"}, summed over the workers."""
    _, body = http_get(base, "/metrics")
    match = re.search(rb'^messages_stored_total\{provider="whatsapp"\} ([0-9.e+]+)$', body, re.M)
    return float(match[1]) if match else 0.0


_WORDS = (
    "hello",
    "order",
    "delivery",
    "thanks",
    "please",
    "status",
    "payment",
    "refund",
    "today",
    "the",
    "you",
    "my",
    "is",
    "café",
    "straße",
    "when",
    "ok",
    "update",
    "ticket",
    "address",
)


def write_bodies(path, secret, prefix, count, rng):
    """``count`` signed webhook bodies with new message_ids, one per line: ``signature\\tbody``."""
    key = secret.encode()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    senders = [f"+9198{rng.randrange(10**8):08d}" for _ in range(500)]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            moment = start + timedelta(seconds=rng.randrange(365 * 86400))
            ts = moment.strftime("%Y-%m-%dT%H:%M:%S")
            if i % 4 == 0:
                ts += f".{rng.randrange(1000):03d}"
            body = json.dumps(
                {
                    "message_id": f"{prefix}-{i:08d}",
                    "from": senders[min(int(rng.paretovariate(1.2)) - 1, len(senders) - 1)],
                    "to": "+14155550100",
                    "ts": ts + "Z",
                    "text": " ".join(rng.choices(_WORDS, k=rng.randint(1, 12))),
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            signature = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
            out.write(f"{signature}\t{body}\n")


def wrk(url, *, duration, connections, threads, bodies=None):
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        str(threads),
        str(bodies or ""),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout}\n{result.stderr}")
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    errors = raw["errors"]
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(lat["p50"] / 1000, 2),
        "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2),
        "p999_ms": round(lat["p999"] / 1000, 2),
        "mean_ms": round(lat["mean"] / 1000, 2),
        "max_ms": round(lat["max"] / 1000, 2),
        "non_2xx": errors["status"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "connections": connections,
        "duration_s": round(seconds, 2),
    }


def measure(server, url, **load):
    """wrk against ``url``, and the server's CPU time (user + system, every process) per request."""
    before = server.cpu_seconds()
    result = wrk(url, **load)
    used = server.cpu_seconds() - before
    result["server_cpu_ms_per_request"] = round(used * 1000 / max(result["requests"], 1), 3)
    return result


def ingest(server, bodies, *, duration, connections, threads, expect):
    """POST every body in turn under wrk; counts what the server made of them (from /metrics)."""
    before = webhook_counts(server.base)
    result = measure(
        server,
        server.base + "/webhook",
        duration=duration,
        connections=connections,
        threads=threads,
        bodies=bodies,
    )
    after = webhook_counts(server.base)
    outcomes = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}
    result["outcomes"] = {k: v for k, v in outcomes.items() if v}
    unexpected = sum(v for k, v in outcomes.items() if k != expect)
    if unexpected:
        log(f"warning: {unexpected} webhook outcomes other than {expect!r}: {result['outcomes']}")
    return result


def keep_lines(source, target, message_ids):
    kept = 0
    with open(source, encoding="utf-8") as lines, open(target, "w", encoding="utf-8") as out:
        for line in lines:
            body = json.loads(line.split("\t", 1)[1])
            if body["message_id"] in message_ids:
                out.write(line)
                kept += 1
    return kept


def whatsapp_batches(secret, prefix, size, count, rng):
    """``count`` signed WhatsApp notifications of ``size`` new text messages each, shaped as Meta
    sends them: ``[(X-Hub-Signature-256, body bytes), ...]``."""
    senders = [f"9198{rng.randrange(10**8):08d}" for _ in range(500)]
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    key = secret.encode()
    batches = []
    for b in range(count):
        messages = [
            {
                "from": rng.choice(senders),
                "id": f"wamid.{prefix}-{b:05d}-{m:04d}",
                "timestamp": str(start + rng.randrange(365 * 86400)),
                "type": "text",
                "text": {"body": " ".join(rng.choices(_WORDS, k=rng.randint(1, 12)))},
            }
            for m in range(size)
        ]
        notification = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": "106540352242922",
                                },
                                "messages": messages,
                            },
                        }
                    ],
                }
            ],
        }
        # As Meta sends it: compact JSON, non-ASCII escaped as \uXXXX.
        body = json.dumps(notification, separators=(",", ":")).encode("ascii")
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        batches.append((signature, body))
    return batches


class BatchPoster(threading.Thread):
    """POSTs the batches one after the other on one keep-alive connection, from ``delay`` seconds
    after start until ``seconds`` after start (or until they run out), timing each exchange."""

    def __init__(self, port, batches, *, delay, seconds):
        super().__init__(daemon=True)
        self.port, self.batches, self.delay, self.seconds = port, batches, delay, seconds
        self.latencies_ms, self.statuses, self.errors = [], {}, 0
        self.elapsed = 0.0

    def run(self):
        started = time.monotonic()
        time.sleep(self.delay)
        deadline = started + self.seconds
        connection = None
        first = time.monotonic()
        for signature, body in self.batches:
            if time.monotonic() >= deadline:
                break
            if connection is None:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
            try:
                sent = time.perf_counter()
                connection.request("POST", "/webhooks/whatsapp", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                self.latencies_ms.append((time.perf_counter() - sent) * 1000)
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                connection = None
        self.elapsed = time.monotonic() - first
        if connection is not None:
            connection.close()
