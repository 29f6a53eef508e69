"""The documentation runs as pasted: every ```sh block of README.md and docs/*.md, in order, in one
bash session, against a real server started as ``make run-demo`` starts it (scripts/run.sh), and
each documented output (a ``# {"status":"ok"}`` comment after a command) compared with what the
command printed.

A block that is not meant to be pasted here (it starts the server, needs Docker, another host's
database, promtool) is marked by an HTML comment on the line before it: ``<!-- not run: why -->``.
The port (8000 in the docs) is the test server's; the commands run in a temporary directory that
links to the checkout, so the files they write stay there.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from .server import REPO_ROOT, free_port, http_request

DOCUMENTS = [
    "README.md",
    *sorted(str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob("docs/*.md")),
]
NOT_RUN = re.compile(r"<!--\s*not run\b")
FENCE = re.compile(r"^```(sh|bash|shell)\s*$")
# An expected output, right after '#': JSON, a status and JSON, XML, a bare number, or a metric's
# sample.
EXPECTED = re.compile(
    r"^(?:(?P<status>[1-5][0-9]{2}) )?(?P<output>[\[{\"<].*|-?[0-9]+|[a-z_]+\{.*)$"
)
INLINE = re.compile(r"^(?P<command>.*?\S)\s+#\s(?P<comment>.*)$")
MARK = "@@lyftr-docs@@"
ANY = "\0any\0"


def blocks(document):
    """The runnable shell blocks of a document: ``(line number, [lines])``."""
    lines = (REPO_ROOT / document).read_text(encoding="utf-8").splitlines()
    found, index = [], 0
    while index < len(lines):
        if FENCE.match(lines[index]):
            start = index
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            previous = lines[start - 1] if start else ""
            if not NOT_RUN.search(previous):
                found.append((start + 1, lines[start + 1 : end]))
            index = end
        index += 1
    return found


def commands(lines):
    """``(command, expected or None)`` for each logical command line of a block: continued lines
    joined, and a documented output (inline, or on the comment lines right after) attached."""
    result, pending = [], ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") and result and not pending:
            comment = stripped.lstrip("#").strip()
            command, expected = result[-1]
            if expected is not None:  # the documented output goes on over several lines
                result[-1] = (command, expected + " " + comment)
            elif EXPECTED.match(comment):
                result[-1] = (command, comment)
            else:
                result.append((line, None))
            continue
        if line.endswith("\\"):
            pending += line + "\n"
            continue
        line, pending = pending + line, ""
        match = INLINE.match(line) if "#" in line.splitlines()[-1] else None
        comment = match["comment"].strip() if match else ""
        if match and EXPECTED.match(comment) and "'" not in comment[:1]:
            result.append((match["command"], comment))
        else:
            result.append((line, None))
    return result


def script(documents, substitutions):
    """One bash script running every block in order; each command with a documented output is
    framed by markers so its output can be found."""
    parts, expectations = ["set -eo pipefail"], []
    for document in documents:
        for line_number, lines in blocks(document):
            parts.append(f"# --- {document}:{line_number}")
            for command, expected in commands(lines):
                for old, new in substitutions.items():
                    command = command.replace(old, new)
                if expected is None:
                    parts.append(command)
                    continue
                number = len(expectations)
                expectations.append((f"{document}:{line_number}", command, expected))
                parts.append(f"printf '\\n{MARK}{number}\\n'")
                parts.append(command)
                parts.append(f"printf '\\n{MARK}end\\n'")
    return "\n".join(parts) + "\n", expectations


def _pattern(value):
    """An expected JSON value where "..." stands for anything."""
    if value == "...":
        return ANY
    if isinstance(value, dict):
        return {key: _pattern(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_pattern(item) for item in value]
    return value


def matches(actual, expected):
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(matches(actual[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(matches(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return actual == expected


def check(output, expected):
    """Whether ``output`` is the documented output (JSON compared as values; text with '...' for
    anything); the words after a documented JSON value are commentary."""
    documented = EXPECTED.match(expected)["output"]
    status = EXPECTED.match(expected)["status"]
    output = output.strip()
    if status and output.startswith(status + " "):
        output = output[len(status) + 1 :]
    try:
        value, _ = json.JSONDecoder().raw_decode(documented)
    except ValueError:
        pattern = ".*".join(re.escape(part.strip()) for part in documented.split("..."))
        return re.search(pattern, output) is not None
    try:
        return matches(json.loads(output), _pattern(value))
    except ValueError:
        return False


@pytest.fixture
def demo_server(tmp_path):
    """The server as ``make run-demo`` starts it, on a free port, with its database in
    ``tmp_path/data``."""
    port = free_port()
    (tmp_path / "data").mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBHOOK_", "WHATSAPP_", "TWILIO_", "STANDARD_WEBHOOKS_"))
        and key not in ("API_TOKEN", "SECRET_KEY", "PUBLIC_BASE_URL", "DATABASE_URL", "BIND")
    }
    env |= {
        "BIND": f"127.0.0.1:{port}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{tmp_path}/data/app.db",
        "WEB_CONCURRENCY": "2",
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(REPO_ROOT / "scripts" / "run.sh"), "--demo"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_request(port, "GET", "/health/live", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield port, env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()


def test_every_documented_block_runs_and_prints_what_it_says(demo_server, tmp_path):
    port, server_env = demo_server
    started = (tmp_path / "server.log").read_text()
    assert f"the console is at http://127.0.0.1:{port}/ui" in started  # make run names it
    work = tmp_path / "work"
    work.mkdir()
    for name in (".venv", "scripts", "wsgi.py", "gunicorn.conf.py", "deploy", "bench"):
        (work / name).symlink_to(REPO_ROOT / name)
    (work / "data").symlink_to(tmp_path / "data")
    demo_env = tmp_path / "demo.env"
    demo_env.write_text(
        (REPO_ROOT / "scripts" / "demo.env")
        .read_text()
        .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    )
    substitutions = {
        "localhost:8000": f"localhost:{port}",
        "127.0.0.1:8000": f"127.0.0.1:{port}",
        "scripts/demo.env": str(demo_env),
        # The long polls' documented 30 s would be a minute of waiting for an empty answer.
        "wait=30": "wait=1",
        # The CLI's --url defaults to http://localhost:8000.
        "lyftr send ": f"lyftr send --url http://localhost:{port} ",
    }
    text, expectations = script(DOCUMENTS, substitutions)
    assert len(expectations) >= 10  # the docs do show outputs
    env = {k: v for k, v in server_env.items() if k not in ("BIND", "PUBLIC_BASE_URL")}
    env["DATABASE_URL"] = server_env["DATABASE_URL"]
    result = subprocess.run(
        ["bash", "-c", text], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n--- script:\n{text}"
    assert "Traceback" not in result.stderr

    outputs = {}
    for section in result.stdout.split(f"\n{MARK}")[1:]:
        number, _, rest = section.partition("\n")
        if number != "end":
            outputs[int(number)] = rest
    wrong = [
        f"{where}: {command}\n  documented: {expected}\n  printed:    {outputs.get(i)!r}"
        for i, (where, command, expected) in enumerate(expectations)
        if not check(outputs.get(i, ""), expected)
    ]
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize(
    ("output", "expected", "ok"),
    [
        ('{"status":"ok"}', '{"status":"ok"}      (the same again: nothing changes)', True),
        ('{"status":"ok","x":1}', '{"status":"ok"}', False),
        ('200 {"status":"ok"}', '200 {"status":"ok"}', True),
        ('{"a":"2025","b":[1]}', '{"a":"...","b":[1]}', True),
        ("1158201444", "1158201444", True),
        ('x{result="created"} 2.0\ny', 'x{result="created"} 2.0 ...', True),
        ('{"status":"fail"}', '{"status":"ok"}', False),
    ],
)
def test_documented_outputs_are_compared(output, expected, ok):
    assert check(output, expected) is ok


def test_blocks_are_split_into_commands_with_their_outputs():
    lines = [
        "BODY='{\"a\": 1}'   # a body",
        "curl -s x \\",
        "  -d y",
        '# {"status":"ok"}',
        'curl -s z   # 200 {"status":"ok"}',
        "curl -s w",
        '# {"data":[1,',
        "#   2]}",
    ]
    assert commands(lines) == [
        ("BODY='{\"a\": 1}'   # a body", None),
        ("curl -s x \\\n  -d y", '{"status":"ok"}'),
        ("curl -s z", '200 {"status":"ok"}'),
        ("curl -s w", '{"data":[1, 2]}'),
    ]
