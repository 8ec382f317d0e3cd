"""What operators run beside Inflow: /metrics as Prometheus reads it (`promtool check metrics`), the
alert rules (`promtool check rules`, `promtool test rules`), and the Grafana dashboard, whose every
query a real Prometheus scraping a real node evaluates."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from harness import ROOT, Broker, Node, Process, generate

PROMETHEUS = os.path.join(ROOT, "deploy", "prometheus")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "inflow.json")


@pytest.fixture(scope="module")
def node(model_path):
    broker = Broker({"transactions": 4, "fraud-alerts": 1, "transactions.dlq": 1})
    node = Node(broker.bootstrap, model_path)
    gen = generate(broker.bootstrap, 200_000, rate=2_000)  # records flow while Prometheus scrapes
    yield node
    gen.kill()
    node.stop()
    broker.stop()


def test_metrics_pass_promtool(node):
    _, text = node.get("/metrics")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_and_scrape_config_pass_promtool(tmp_path):
    for args in (["check", "rules", "inflow-rules.yaml"], ["test", "rules", "inflow-rules.test.yaml"]):
        r = subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (args, r.stdout + r.stderr)
    # The scrape config reads the admin token from compose's secret: check it with a token of our own.
    (tmp_path / "token").write_text("t0ken\n")
    config = open(os.path.join(PROMETHEUS, "prometheus.yaml")).read().replace("/run/secrets/admin-token",
                                                                             str(tmp_path / "token"))
    (tmp_path / "prometheus.yaml").write_text(config)
    shutil.copy(os.path.join(PROMETHEUS, "inflow-rules.yaml"), tmp_path)
    r = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yaml")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base, expr):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def test_every_dashboard_query_runs_on_prometheus_scraping_a_node(node, tmp_path):
    port = free_port()
    config = tmp_path / "prometheus.yaml"
    admin = node.admin.removeprefix("http://")
    config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n"
                      f"  - job_name: inflow\n    static_configs: [{{targets: ['{admin}']}}]\n")
    prometheus = Process(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                          f"--web.listen-address=127.0.0.1:{port}"])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:  # a few scrapes, so that rates have two points
            try:
                r = query(base, 'count_over_time(up{job="inflow"}[1m])')
                if r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) >= 4:
                    break
            except OSError:
                pass
            assert time.time() < deadline, prometheus.stderr()[-3000:]
            time.sleep(0.5)
        dashboard = json.load(open(DASHBOARD))
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        assert {"datasource", "pipeline", "model"} <= variables
        answered = {}
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = (target["expr"].replace("$__rate_interval", "30s").replace("$pipeline", ".*")
                        .replace("$model", ".*"))
                r = query(base, expr)
                assert r["status"] == "success", (panel["title"], expr, r)
                answered[(panel["title"], target["legendFormat"])] = len(r["data"]["result"])
        # The core panels show the node's data, not just valid queries.
        assert answered[("Records per second", "{{pipeline}} consumed")] == 1, answered
        assert answered[("Model rows per second", "{{model}}")] == 1, answered
        assert answered[("End-to-end latency", "{{pipeline}} p99")] == 1, answered
    finally:
        prometheus.stop()


def chromium(url, *flags):
    """Loads `url` in headless Chromium for 8 s of (virtual) time; returns its stderr, where console messages go."""
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                        "--virtual-time-budget=8000", "--window-size=1400,1800", *flags, url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def cells(dom, table):
    """The text of every cell of the dashboard table `table`, row by row."""
    section = dom[dom.index(f'<table id="{table}"'):]
    section = section[:section.index("</table>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in section.split("<tr>")[2:]]


def test_the_dashboard_shows_the_pipeline_live_without_console_errors(node, tmp_path):
    first = chromium(node.admin + "/", "--dump-dom")
    console = [line for line in first.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    pipelines = cells(first.stdout, "pipelines")
    assert pipelines and pipelines[0][0] == "fraud" and pipelines[0][2] == "at_least_once", pipelines
    assert float(pipelines[0][3]) > 0, f"consumed/s is {pipelines[0][3]} while records flow"
    assert cells(first.stdout, "gateways")[0][1] == "embedded-xgboost"
    second = chromium(node.admin + "/", "--dump-dom")
    assert cells(second.stdout, "alerts") != cells(first.stdout, "alerts"), "the recent alerts did not move"
    screenshot = tmp_path / "dashboard.png"
    chromium(node.admin + "/", f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 10_000


def test_grafana_provisioning_matches_what_compose_mounts():
    import yaml
    grafana = os.path.join(ROOT, "deploy", "grafana")
    datasource = yaml.safe_load(open(os.path.join(grafana, "datasource.yaml")))["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(open(os.path.join(grafana, "dashboards.yaml")))["providers"][0]
    compose = yaml.safe_load(open(os.path.join(ROOT, "deploy", "compose.yaml")))
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.endswith(provider["options"]["path"] + "/inflow.json:ro") for m in mounts), mounts
