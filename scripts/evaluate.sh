#!/usr/bin/env bash
# The contract's evaluation against a running lyftr: scripts/evaluate.sh [BASE_URL]
#   BASE_URL        default http://localhost:8000
#   WEBHOOK_SECRET  the server's secret (default: testsecret, as in the contract's evaluation)
#   API_TOKEN       sent as a bearer token to /messages, /stats and /metrics when set
#   LOGS_CMD        a command printing the server's log, e.g. "docker compose logs api":
#                   its first 20 lines must each be a JSON object
# Prints each check and exits non-zero on the first failure. Needs curl, jq and openssl.
set -euo pipefail
BASE_URL=${1:-http://localhost:8000}
SECRET=${WEBHOOK_SECRET:-testsecret}
AUTH=()
[ -n "${API_TOKEN:-}" ] && AUTH=(-H "Authorization: Bearer $API_TOKEN")
RUN=$(date +%s%N)
failures=0

pass() { printf 'ok    %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; failures=$((failures + 1)); }
check() { # check NAME JQ_FILTER JSON
  if printf '%s' "$3" | jq -e "$2" >/dev/null 2>&1; then pass "$1"; else fail "$1: $3"; fi
}
sign() { printf '%s' "$1" | openssl dgst -sha256 -hmac "$SECRET" -hex | sed 's/^.* //'; }
# request METHOD PATH [BODY [SIGNATURE]] -> "STATUS BODY"
request() {
  local args=(-s -o /tmp/lyftr-eval.$$ -w '%{http_code}' -X "$1" "${AUTH[@]}")
  if [ $# -ge 3 ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$3")
    [ $# -ge 4 ] && args+=(-H "X-Signature: $4")
  fi
  local status
  status=$(curl "${args[@]}" "$BASE_URL$2")
  printf '%s %s' "$status" "$(cat /tmp/lyftr-eval.$$ 2>/dev/null)"
  rm -f /tmp/lyftr-eval.$$
}
expect() { # expect NAME STATUS "STATUS BODY" [JQ_FILTER]
  local got=${3%% *} body=${3#* }
  if [ "$got" != "$2" ]; then fail "$1: expected $2, got $3"; return; fi
  if [ $# -ge 4 ]; then check "$1" "$4" "$body"; else pass "$1"; fi
}

expect "GET /health/live" 200 "$(request GET /health/live)"
expect "GET /health/ready" 200 "$(request GET /health/ready)"

SAMPLE='{"message_id":"m1","from":"+919876543210","to":"+14155550100","ts":"2025-01-15T10:00:00Z","text":"Hello"}'
expect "webhook: bad signature -> 401" 401 "$(request POST /webhook "$SAMPLE" 123)" '.detail == "invalid signature"'
expect "webhook: no signature -> 401" 401 "$(request POST /webhook "$SAMPLE")" '.detail == "invalid signature"'
expect "webhook: sample message -> 200" 200 "$(request POST /webhook "$SAMPLE" "$(sign "$SAMPLE")")" '.status == "ok"'
expect "webhook: same message again -> 200" 200 "$(request POST /webhook "$SAMPLE" "$(sign "$SAMPLE")")" '.status == "ok"'

ID="eval-$RUN"
NEW="{\"message_id\":\"$ID\",\"from\":\"+919876543210\",\"to\":\"+14155550100\",\"ts\":\"2025-01-15T10:00:01Z\",\"text\":\"Evaluation $RUN\"}"
expect "webhook: new message -> 200" 200 "$(request POST /webhook "$NEW" "$(sign "$NEW")")" '.status == "ok"'
BAD='{"message_id":"bad","from":"919876543210","to":"+14155550100","ts":"2025-02-30T10:00:00Z"}'
expect "webhook: invalid fields -> 422" 422 "$(request POST /webhook "$BAD" "$(sign "$BAD")")" \
  '(.detail | length) == 2 and all(.detail[]; .loc[0] == "body")'

expect "GET /messages" 200 "$(request GET /messages)" \
  '(.data | type == "array") and .total >= 2 and .limit == 50 and .offset == 0'
expect "GET /messages?limit=1&offset=0" 200 "$(request GET '/messages?limit=1&offset=0')" \
  '(.data | length) == 1 and .limit == 1 and .total >= 2'
expect "GET /messages?from=+919876543210 (bare +)" 200 "$(request GET '/messages?from=+919876543210')" \
  '.total >= 2 and all(.data[]; .from == "+919876543210")'
expect "GET /messages?since=2025-01-15T10:00:01Z" 200 "$(request GET '/messages?since=2025-01-15T10:00:01Z&q=evaluation%20'"$RUN")" \
  ".total == 1 and .data[0].message_id == \"$ID\" and .data[0].ts == \"2025-01-15T10:00:01Z\""
expect "GET /messages?q=HELLO (case-insensitive)" 200 "$(request GET '/messages?q=HELLO')" \
  'any(.data[]; .message_id == "m1" and .text == "Hello")'
expect "GET /messages?limit=0 -> 422" 422 "$(request GET '/messages?limit=0')" '.detail[0].loc == ["query", "limit"]'
expect "GET /messages?limit=101 -> 422" 422 "$(request GET '/messages?limit=101')"
expect "GET /messages?offset=-1 -> 422" 422 "$(request GET '/messages?offset=-1')"

expect "GET /stats" 200 "$(request GET /stats)" \
  '.total_messages >= 2 and .senders_count >= 1 and (.messages_per_sender | length) >= 1
   and (.messages_per_sender[0] | has("from") and has("count")) and .first_message_ts != null
   and .last_message_ts != null'

metrics=$(curl -s "${AUTH[@]}" "$BASE_URL/metrics")
for series in 'http_requests_total{' 'webhook_requests_total{result="created"}' \
              'webhook_requests_total{result="duplicate"}' 'webhook_requests_total{result="invalid_signature"}' \
              'webhook_requests_total{result="validation_error"}' 'request_latency_ms_bucket{le="100"}' \
              'request_latency_ms_bucket{le="500"}' 'request_latency_ms_bucket{le="+Inf"}' \
              'request_latency_ms_sum' 'request_latency_ms_count'; do
  if grep -qF "$series" <<<"$metrics"; then pass "metrics: $series"; else fail "metrics: $series missing"; fi
done

if [ -n "${LOGS_CMD:-}" ]; then
  # Compose front ends may colour lines or prefix them with "api-1  | ": strip both before jq.
  # `|| true`: head exits after 20 lines, so the commands before it may die of SIGPIPE (141), which
  # pipefail and set -e would turn into a silent exit of this script; the 20 lines are checked below.
  logs=$(eval "$LOGS_CMD" 2>/dev/null | sed -E 's/\x1b\[[0-9;]*m//g; s/^[^{]*\| //' | head -n 20) || true
  if [ -n "$logs" ] && jq -e -s 'length > 0 and all(.[]; type == "object")' <<<"$logs" >/dev/null 2>&1; then
    pass "logs: first 20 lines are JSON objects"
    jq -c . <<<"$logs"
  else
    fail "logs: not JSON: $logs"
  fi
fi

if [ "$failures" -gt 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "all checks passed"
