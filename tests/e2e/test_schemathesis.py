"""schemathesis against the real Gunicorn server: every response conforms to GET /openapi.json.

The schemathesis CLI loads the document from the running server and, for each operation, sends the
explicit examples, the coverage phase's boundary cases and up to MAX_EXAMPLES generated requests,
valid and invalid ("--mode all"). Every response is checked:

- not_a_server_error: no 5xx;
- status_code_conformance: the status is documented for the operation;
- content_type_conformance: the Content-Type is one the document gives for that status;
- response_schema_conformance: the body validates against the documented schema.

Webhook deliveries are signed like the provider's by the hook in ``schemathesis_hooks.py``: the body
is serialized there to the exact bytes sent, and X-Signature is the HMAC of those bytes (about one in
five keeps the generated signature, to exercise the 401). The stateful phase is off: the API has no
links between operations to follow.

Why the CLI and not schemathesis' pytest plugin: with pytest 9.2 the plugin's fixture-based schema
(``schemathesis.pytest.from_fixture``, the only way to load the document from a server started by a
fixture) fails with "'Function' object has no attribute '_nodeid'" (schemathesis 4.32.5, the newest).
The CLI is schemathesis' main interface and runs the same engine, so this test runs it in a process
of its own and fails with its report.

SCHEMATHESIS_MAX_EXAMPLES and SCHEMATHESIS_SEED (the seed a failing report prints) override the
defaults, e.g. to replay a failure or to fuzz longer.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

import pytest

from .server import REPO_ROOT

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES") or 100)
# Every operation but GET /openapi.json, which schemathesis leaves out of a run on the document it
# serves (its own response is checked in tests/test_openapi.py).
OPERATIONS = {
    "POST /webhook", "GET /messages", "GET /stats", "GET /health/live", "GET /health/ready", "GET /metrics",
}
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
RUN_TIMEOUT = 540


def schemathesis_executable():
    beside_python = Path(sys.executable).parent / "schemathesis"
    if beside_python.exists():
        return str(beside_python)
    return str(REPO_ROOT / ".venv" / "bin" / "schemathesis")


def run_schemathesis(server, workdir):
    command = [
        schemathesis_executable(), "run", f"http://127.0.0.1:{server.port}/openapi.json",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--mode", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "2",
        "--request-timeout", "30",
        "--report", "junit", "--report-junit-path", str(workdir / "junit.xml"),
    ]
    if os.environ.get("SCHEMATHESIS_SEED"):
        command += ["--seed", os.environ["SCHEMATHESIS_SEED"]]
    env = os.environ.copy()
    env.update(
        SCHEMATHESIS_HOOKS="schemathesis_hooks",
        PYTHONPATH=os.pathsep.join([str(HERE), str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        LYFTR_SCHEMATHESIS_SECRET=server.secret,
        NO_COLOR="1",
        COLUMNS="120",
    )
    return subprocess.run(
        command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=RUN_TIMEOUT,
    )


def test_every_response_conforms_to_the_openapi_document(start_server, tmp_path):
    server = start_server(workers=2)
    result = run_schemathesis(server, tmp_path)
    report = f"schemathesis exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout, report
    junit = ElementTree.parse(tmp_path / "junit.xml")
    tested = {case.get("name") for case in junit.iter("testcase")}
    assert tested == OPERATIONS, report

    # The server saw what the run is meant to exercise, and logged it all as JSON lines.
    requests = server.request_records()  # fails on any line that is not a JSON object
    statuses = Counter((r["path"], r["status"]) for r in requests)
    assert not [key for key in statuses if key[1] >= 500], statuses
    results = Counter(r.get("result") for r in requests if r["path"] == "/webhook")
    # Signed valid deliveries were stored, and invalid ones refused at each step.
    assert results["created"] > 0, results
    assert results["invalid_signature"] > 0, results
    assert results["validation_error"] > 0, results
    for path in ("/messages", "/stats", "/health/live", "/health/ready", "/metrics"):
        assert statuses[(path, 200)] > 0, (path, statuses)
    assert statuses[("/messages", 422)] > 0, statuses
