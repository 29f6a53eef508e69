"""deploy/: the Prometheus alert rules, their unit tests and the scrape config (checked by
promtool), the Grafana dashboard, and the PromQL reading with which tests/e2e/test_e2e_alerts.py
checks every metric they name against a live /metrics.

promtool comes from Debian's ``prometheus`` package (scripts/ensure-test-tools.sh installs it; CI
runs that): without it on PATH, the promtool tests skip and say so.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "lyftr.json"
OPERATIONS = ROOT / "docs" / "operations.md"

NO_PROMTOOL = (
    "promtool is not on PATH: install Debian's prometheus package "
    "(sudo ./scripts/ensure-test-tools.sh, as CI does)"
)

# --- PromQL: which metrics and labels an expression names ---------------------------------------

# Names that are never metrics: operators, modifiers, aggregations, literals. A name followed by
# "(" is a function (rate, histogram_quantile, label_replace, ...) and is skipped as such.
KEYWORDS = frozenset(
    (
        *("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"),
        *("by", "without", "on", "ignoring", "group_left", "group_right"),
        *("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"),
        *("bottomk", "topk", "quantile", "limitk", "limit_ratio"),
    )
)
# Label lists: `by (a, b)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`.
GROUPING = frozenset(("by", "without", "on", "ignoring", "group_left", "group_right"))
# Labels Prometheus attaches to every scraped series: not in the exposition, always there.
TARGET_LABELS = frozenset(("job", "instance"))

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<comment>\#[^\n]*)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>0x[0-9a-fA-F]+|(?:[0-9]*\.)?[0-9]+(?:[eE][-+]?[0-9]+)?(?:(?:ms|[smhdwy])[0-9]*)*)
    |(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@:])
    """,
    re.VERBOSE,
)


def tokens(expr):
    """PromQL (Grafana's $variables allowed) as ``[(kind, text)]``; fails on anything else."""
    found, position = [], 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        assert match, f"cannot read PromQL at {expr[position : position + 30]!r} in {expr!r}"
        if match.lastgroup not in ("space", "comment"):
            found.append((match.lastgroup, match.group()))
        position = match.end()
    return found


def _unquote(text):
    """A PromQL string literal's value: "..." and '...' with escapes, `...` raw."""
    if text[0] == "`":
        return text[1:-1]
    if text[0] == "'":
        text = '"' + text[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
    return json.loads(text)


def _closing(toks, start, opening, closing):
    """The index of the token closing the bracket at ``start``."""
    depth = 0
    for index in range(start, len(toks)):
        if toks[index] == ("op", opening):
            depth += 1
        elif toks[index] == ("op", closing):
            depth -= 1
            if depth == 0:
                return index
    raise AssertionError(f"unbalanced {opening!r} in {' '.join(t for _, t in toks)!r}")


def _matchers(toks, start, end):
    """``label op "value"`` triples between the braces at ``start`` and ``end``."""
    inner = [t for t in toks[start + 1 : end] if t != ("op", ",")]
    assert len(inner) % 3 == 0, f"cannot read label matchers {inner!r}"
    triples = []
    for i in range(0, len(inner), 3):
        (k1, label), (k2, op), (k3, value) = inner[i : i + 3]
        assert k1 == "name" and k2 == "op" and k3 == "string", f"bad matcher {inner[i : i + 3]}"
        triples.append((label, op, _unquote(value)))
    return triples


def selectors(expr):
    """What ``expr`` selects: ``(metric names with their matchers, labels it groups by)``.

    ``[(name, [(label, op, value), ...]), ...]`` and a set of labels from by/without/on/ignoring/
    group_left/group_right lists. Label matchers, quoted strings, ranges and durations are never
    taken for metric names.
    """
    toks = tokens(expr)
    found, grouping = [], set()
    index = 0
    while index < len(toks):
        kind, text = toks[index]
        following = toks[index + 1] if index + 1 < len(toks) else (None, None)
        if kind == "name":
            if text in GROUPING and following == ("op", "("):
                end = _closing(toks, index + 1, "(", ")")
                grouping.update(t for k, t in toks[index + 2 : end] if k == "name")
                index = end + 1
                continue
            if following == ("op", "(") or text.lower() in KEYWORDS:
                index += 1  # a function, an aggregation or an operator
                continue
            matchers = []
            if following == ("op", "{"):
                end = _closing(toks, index + 1, "{", "}")
                matchers = _matchers(toks, index + 1, end)
                index = end
            found.append((text, matchers))
        elif (kind, text) == ("op", "{"):  # a selector without a name: {__name__="..."}
            end = _closing(toks, index, "{", "}")
            matchers = _matchers(toks, index, end)
            names = [value for label, op, value in matchers if label == "__name__" and op == "="]
            assert names, f"a selector without a metric name cannot be checked: {expr!r}"
            found.append((names[0], [m for m in matchers if m[0] != "__name__"]))
            index = end
        elif (kind, text) == ("op", "["):  # a range or subquery: [5m], [$__rate_interval], [1h:5m]
            index = _closing(toks, index, "[", "]")
        index += 1
    return found, grouping


# `result=~"created|duplicate"` names values as surely as `=` does; `status=~"5.."` does not.
_LITERAL_ALTERNATIVES = re.compile(r"[A-Za-z0-9_/<>-]+(?:\|[A-Za-z0-9_/<>-]+)*")


def _literal_values(op, value):
    """The values an ``=`` or a plain ``=~"a|b"`` matcher names; none for patterns and $vars."""
    if "$" in value:  # a Grafana variable
        return []
    if op == "=":
        return [value]
    if op == "=~" and _LITERAL_ALTERNATIVES.fullmatch(value):
        return value.split("|")
    return []


def _added_labels(toks):
    """The labels label_replace/label_join write (their second argument): they may be grouped by."""
    added = set()
    for index, token in enumerate(toks[:-1]):
        if token[0] == "name" and token[1] in ("label_replace", "label_join"):
            end = _closing(toks, index + 1, "(", ")")
            depth = 0
            for position in range(index + 1, end):
                kind, text = toks[position]
                depth += {"(": 1, ")": -1}.get(text, 0) if kind == "op" else 0
                if depth == 1 and (kind, text) == ("op", ","):
                    kind, text = toks[position + 1]
                    if kind == "string":
                        added.add(_unquote(text))
                    break
    return added


def exported_series(samples):
    """``{metric name: {label: {values}}}`` from parsed /metrics samples (tests/e2e/server.py's
    ``parse_metrics``), plus Prometheus's own ``up``."""
    exported = {"up": {}}
    for name, pairs in samples:
        labels = exported.setdefault(name, {})
        for label, value in pairs:
            labels.setdefault(label, set()).add(value)
    return exported


def problems(expr, exported, where):
    """What in ``expr`` lyftr does not export: unknown metrics, unknown labels, label values no
    series has. ``exported`` is ``exported_series(...)``; ``where`` names the expression."""
    found, grouping = selectors(expr)
    wrong = []
    known_labels = set(TARGET_LABELS)
    for name, matchers in found:
        if name not in exported:
            wrong.append(f"{where}: lyftr exports no metric {name!r}")
            continue
        labels = exported[name]
        known_labels.update(labels)
        for label, op, value in matchers:
            if label in TARGET_LABELS:
                continue
            if label not in labels:
                wrong.append(f"{where}: {name} has no label {label!r}")
                continue
            for literal in _literal_values(op, value):
                if literal not in labels[label]:
                    wrong.append(f"{where}: no {name} series has {label}={literal!r}")
    known_labels |= _added_labels(tokens(expr))
    for label in sorted(grouping - known_labels):
        wrong.append(f"{where}: no metric it selects has the label {label!r} it groups by")
    return wrong


_LABEL_VALUES = re.compile(r"\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*")


def variable_problems(query, exported, where):
    """Grafana's ``label_values(selector, label)``: the selector's metric, and its label."""
    match = _LABEL_VALUES.fullmatch(query)
    assert match, f"{where}: only label_values(...) variables are checked, not {query!r}"
    selector, label = match["selector"], match["label"]
    if selector is None:
        return []
    wrong = problems(selector, exported, where)
    names = [name for name, _ in selectors(selector)[0]]
    for name in names:
        if name in exported and label not in exported[name] and label not in TARGET_LABELS:
            wrong.append(f"{where}: {name} has no label {label!r}")
    return wrong


def alert_rules(path=ALERTS):
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_queries(path=DASHBOARD):
    """``(where, expr)`` for every panel target, and ``(where, query)`` for every query variable."""
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            exprs.append((f"panel {panel['title']!r} target {target['refId']}", target["expr"]))
        for inner in panel.get("panels", ()):  # panels inside a collapsed row
            for target in inner.get("targets", ()):
                exprs.append((f"panel {inner['title']!r} target {target['refId']}", target["expr"]))
    variables = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            variables.append((f"variable {variable['name']!r}", query))
    return exprs, variables


def deploy_problems(exported, alerts=ALERTS, dashboard=DASHBOARD):
    """Everything the alert rules and the dashboard name that ``exported`` does not have."""
    wrong = []
    for rule in alert_rules(alerts):
        wrong += problems(rule["expr"], exported, f"alert {rule['alert']}")
    exprs, variables = dashboard_queries(dashboard)
    for where, expr in exprs:
        wrong += problems(expr, exported, where)
    for where, query in variables:
        wrong += variable_problems(query, exported, where)
    return wrong


# --- the PromQL reading itself ------------------------------------------------------------------


def test_selectors_find_metrics_not_functions_labels_strings_or_durations():
    expr = """
      sum by (job, instance, provider) (
        label_replace(rate(webhook_requests_total{job="lyftr", result="invalid_signature"}[10m]),
                      "provider", "webhook", "", "")
        or rate(provider_requests_total{result=~"accepted|up"}[1h30m] offset 1d)
      ) / on (job) group_left (le) sum without (le) (up == bool 1) > 0.5e1
      and histogram_quantile(0.99, sum by (le) (rate(request_latency_ms_bucket[$__rate_interval])))
      unless absent(http_requests_total{path!~"/health/.*|rate"}) # a comment: not_a_metric
      or {__name__="messages_stored_total", provider="twilio"} * max_over_time(x_total[5m:1m])
    """
    found, grouping = selectors(expr)
    assert [name for name, _ in found] == [
        "webhook_requests_total",
        "provider_requests_total",
        "up",
        "request_latency_ms_bucket",
        "http_requests_total",
        "messages_stored_total",
        "x_total",
    ]
    assert found[0][1] == [("job", "=", "lyftr"), ("result", "=", "invalid_signature")]
    assert found[5][1] == [("provider", "=", "twilio")]
    assert grouping == {"job", "instance", "provider", "le"}


def test_problems_name_misspelled_metrics_labels_and_values():
    exported = exported_series(
        {
            ("webhook_requests_total", (("result", "created"),)): 1.0,
            ("webhook_requests_total", (("result", "unavailable"),)): 0.0,
            ("request_latency_ms_bucket", (("le", "100"),)): 1.0,
        }
    )
    assert problems('rate(webhook_requests_total{result="created"}[5m])', exported, "a") == []
    assert problems(
        'sum by (job, le) (rate(request_latency_ms_bucket{job="x"}[5m])) > 1', exported, "a"
    ) == ([])
    assert problems("up == 0", exported, "a") == []
    assert problems('rate(webhook_request_total{result="created"}[5m])', exported, "b") == [
        "b: lyftr exports no metric 'webhook_request_total'"
    ]
    assert problems('webhook_requests_total{outcome="created"}', exported, "c") == [
        "c: webhook_requests_total has no label 'outcome'"
    ]
    assert problems('webhook_requests_total{result=~"created|unavaliable"}', exported, "d") == [
        "d: no webhook_requests_total series has result='unavaliable'"
    ]
    assert problems("sum by (path) (webhook_requests_total)", exported, "e") == [
        "e: no metric it selects has the label 'path' it groups by"
    ]
    assert problems("request_latency_ms", exported, "f") == [
        "f: lyftr exports no metric 'request_latency_ms'"
    ]


# --- the rules ----------------------------------------------------------------------------------


@pytest.fixture
def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(NO_PROMTOOL)
    return path


def run(*command, cwd=None):
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_check_rules(promtool):
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_test_rules(promtool):
    result = run(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rule_tests_can_fail(promtool, tmp_path):
    """A rule that fires too soon, or on one burst that cleared, fails alerts.test.yml."""
    shutil.copy(ALERT_TESTS, tmp_path)
    text = ALERTS.read_text(encoding="utf-8")
    for alert, original, changed in [
        ("LyftrInstanceDown", "== 0\n        for: 2m", "== 0\n        for: 0m"),
        ("LyftrDatabaseUnavailable", 'result="unavailable"}[2m]', 'result="unavailable"}[10m]'),
    ]:
        assert original in text, original
        (tmp_path / "alerts.yml").write_text(text.replace(original, changed), encoding="utf-8")
        result = run(promtool, "test", "rules", str(tmp_path / "alerts.test.yml"))
        assert result.returncode != 0, f"{alert} changed, yet its tests passed"
        assert f"alertname: {alert}" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    document = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    assert document["rule_files"] == ["alerts.yml"]
    firing, quiet = set(), set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", ()):
            if check.get("exp_alerts"):
                firing.add(check["alertname"])
                assert all(a["exp_labels"]["severity"] for a in check["exp_alerts"])
            else:
                quiet.add(check["alertname"])
    assert set(names) <= firing, f"never tested firing: {sorted(set(names) - firing)}"
    assert set(names) <= quiet, f"never tested quiet: {sorted(set(names) - quiet)}"
    assert firing | quiet <= set(names), (
        f"tests of no alert: {sorted((firing | quiet) - set(names))}"
    )


def github_anchor(heading):
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    anchors, fenced = set(), False
    for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("#") and not fenced:
            anchors.add(github_anchor(line.lstrip("#")))
    for rule in alert_rules():
        name = rule["alert"]
        assert name.startswith("Lyftr"), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert re.fullmatch(r"[1-9][0-9]*m", rule["for"]), (name, rule.get("for"))
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert annotations["runbook_url"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/operations.md has no section {name!r}"


# --- the scrape config --------------------------------------------------------------------------


def test_promtool_check_config_loads_the_rules_next_to_it(promtool, tmp_path):
    # Run from elsewhere: rule_files is read relative to prometheus.yml, not to the shell.
    result = run(promtool, "check", "config", str(PROMETHEUS_CONFIG), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert [job["job_name"] for job in config["scrape_configs"]] == ["lyftr"]


def several_hosts_config():
    """prometheus.yml with its commented several-hosts job in place of the one-host job."""
    text = PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    block = re.search(r"^# >>> several hosts\n(.*?)^# <<< several hosts\n", text, re.S | re.M)
    assert block, "prometheus.yml has no '# >>> several hosts' block"
    job = [line[1:] for line in block[1].splitlines() if line.startswith("#  ")]
    assert job and job[0] == "  - job_name: lyftr", job
    head = text[: text.index("scrape_configs:\n") + len("scrape_configs:\n")]
    return head + "\n".join(job) + "\n"


def test_the_several_hosts_job_with_a_token_file_is_valid(promtool, tmp_path):
    config_text = several_hosts_config()
    config = yaml.safe_load(config_text)
    (job,) = config["scrape_configs"]
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "lyftr-api-token"}
    assert len(job["static_configs"][0]["targets"]) > 1
    shutil.copy(ALERTS, tmp_path)
    (tmp_path / "prometheus.yml").write_text(config_text, encoding="utf-8")
    missing = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert missing.returncode != 0, "promtool accepted a missing token file"
    (tmp_path / "lyftr-api-token").write_text("the API_TOKEN\n", encoding="utf-8")
    result = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# --- the dashboard ------------------------------------------------------------------------------


def test_dashboard_is_importable_grafana_json():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] == "lyftr" and dashboard["id"] is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    source = {"type": "prometheus", "uid": "${datasource}"}
    for name in ("job", "instance"):
        assert variables[name]["datasource"] == source
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(set(titles)) == len(titles)
    for title in (
        "Requests by route and status",
        "Webhook results by kind",
        "Latency percentiles",
        "Stored messages by provider",
        "Provider results",
        "WhatsApp updates by kind",
    ):
        assert title in titles
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    cells = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source, panel["title"]
            assert 'job="$job"' in target["expr"] and 'instance=~"$instance"' in target["expr"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
    latency = next(p for p in dashboard["panels"] if p["title"] == "Latency percentiles")
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p90", "p99"]
    assert latency["fieldConfig"]["defaults"]["unit"] == "ms"
    for where, expr in dashboard_queries()[0]:
        selectors(expr)  # every expression reads as PromQL
        assert "[$__rate_interval]" in expr or "rate(" not in expr, where
