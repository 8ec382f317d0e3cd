"""Each remote provider against a local server speaking its protocol: method,
path, auth and body checked, answers parsed, decisions right, secrets never
printed."""

import json
import os

import pytest

from harness import Feeder, Node, read_all, wait_until_committed
from provider_server import ProviderServer, score, verify_sigv4

RECORDS = 200
SECRET = "sk-test-0123456789abcdef"


def features(model_path):
    return json.load(open(os.path.join(os.path.dirname(model_path), "model.meta.json")))["features"]


def run(broker, model_path, provider, endpoint, extra):
    feeder = Feeder(broker.bootstrap)
    feeder.feed(RECORDS, seed=21, fraud_every=10, poison_every=0)
    sets = [f"models.fraud.provider={provider}", "models.fraud.path=~", f"models.fraud.endpoint={endpoint}",
            f"models.fraud.input={json.dumps(features(model_path))}", "models.fraud.batch.max_batch=50", *extra]
    node = Node(broker.bootstrap, model_path, sets=sets)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
    status = node.get("/api/status")[1] + node.get("/metrics")[1]
    assert node.stop() == 0, node.stderr()
    assert SECRET not in node.stderr() + status, "a secret was printed"
    alerts = {(a["source"]["partition"], a["source"]["offset"])
              for a in (json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2))}
    expected = {k for k, (_, v) in feeder.landed.items() if json.loads(v)["amount"] >= 900}
    assert alerts == expected
    assert not read_all(broker.bootstrap, "transactions.dlq", 1)


def test_vertex_ai_predict(broker, model_path):
    server = ProviderServer(lambda path, h, body: (200, {"predictions": [score(r) for r in body["instances"]],
                                                         "deployedModelId": "1"}))
    try:
        os.environ["INFLOW_TEST_TOKEN"] = SECRET
        path = "/v1/projects/p/locations/europe-west4/endpoints/123:predict"
        run(broker, model_path, "vertex-ai", server.base + path, ["models.fraud.api_key=${INFLOW_TEST_TOKEN}"])
        req = server.requests[0]
        assert req["path"] == path
        assert req["headers"]["authorization"] == f"Bearer {SECRET}"
        assert len(req["body"]["instances"][0]) == len(features(model_path))
    finally:
        server.stop()


def test_azure_ml_online_endpoint(broker, model_path, tmp_path):
    def respond(path, h, body):
        data = body["input_data"]
        assert data["columns"] == features(model_path) and data["index"] == list(range(len(data["data"])))
        return 200, [score(r) for r in data["data"]]
    server = ProviderServer(respond)
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    try:
        run(broker, model_path, "azure-ml", server.base + "/score",
            [f"models.fraud.api_key_file={key_file}", "models.fraud.deployment=blue"])
        req = server.requests[0]
        assert req["path"] == "/score"
        assert req["headers"]["authorization"] == f"Bearer {SECRET}"
        assert req["headers"]["azureml-model-deployment"] == "blue"
    finally:
        server.stop()


def test_generic_http_endpoint(broker, model_path):
    server = ProviderServer(lambda path, h, body: (200, {"result": {"scores": [[score(r)] for r in body["rows"]]},
                                                         "echo": body["id"]}))
    try:
        os.environ["INFLOW_TEST_KEY"] = SECRET
        run(broker, model_path, "http", server.base + "/api/score?v=2", [
            # A YAML value: quoted, or it would be read as a map.
            """models.fraud.request_template='{"id": {{id}}, "names": {{features}}, "rows": {{rows}}}'""",
            "models.fraud.response_pointer=/result/scores", "models.fraud.api_key=${INFLOW_TEST_KEY}",
            "models.fraud.auth_header=x-api-key", "models.fraud.auth_scheme=''"])
        req = server.requests[0]
        assert req["path"] == "/api/score?v=2"
        assert req["headers"]["x-api-key"] == SECRET
        assert req["body"]["names"] == features(model_path)
        assert req["body"]["id"].startswith("b")
    finally:
        server.stop()


def test_a_provider_without_its_credential_is_a_config_error(model_path):
    import subprocess
    from harness import EXAMPLE, INFLOW
    r = subprocess.run([INFLOW, "validate", "-c", EXAMPLE, "--set", "models.fraud.provider=vertex-ai",
                        "--set", "models.fraud.path=~",
                        "--set", "models.fraud.endpoint=http://127.0.0.1:1/x:predict",
                        "--set", f"models.fraud.input={json.dumps(features(model_path))}"],
                       capture_output=True, text=True)
    assert r.returncode == 78
    assert "needs a credential" in r.stderr


def test_provider_mistakes_a_new_user_makes_are_config_errors_that_say_the_fix(model_path):
    import subprocess
    from harness import EXAMPLE, INFLOW
    base = [INFLOW, "validate", "-c", EXAMPLE, "--set", f"models.fraud.input={json.dumps(features(model_path))}",
            "--set", "models.fraud.path=~"]
    quoted = subprocess.run(base + ["--set", "models.fraud.provider=http", "--set",
                                    "models.fraud.endpoint=http://127.0.0.1:1/score", "--set",
                                    """models.fraud.request_template='{"id": "{{id}}", "rows": {{rows}}}'"""],
                            capture_output=True, text=True)
    assert quoted.returncode == 78 and "write {{id}} without quotes" in quoted.stderr, quoted.stderr
    # No AWS credentials anywhere (the instance metadata service, tried last, stays off: loopback only).
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}
    aws = subprocess.run(base + ["--set", "models.fraud.provider=sagemaker", "--set",
                                 "models.fraud.endpoint=https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/x/invocations"],
                         capture_output=True, text=True, env=env)
    assert aws.returncode == 78 and "no AWS credentials: set the model's aws_access_key_id and aws_secret_access_key" \
        in aws.stderr, aws.stderr


def test_sagemaker_invoke_endpoint_signed_with_sigv4(broker, model_path):
    def respond(path, h, body):
        rows = [[float(x) for x in line.split(",")] for line in body.strip().split("\n")]
        return 200, "\n".join(str(score(r)) for r in rows)
    server = ProviderServer(respond)
    try:
        os.environ.update(INFLOW_TEST_AKID="AKIDTEST", INFLOW_TEST_AWS_SECRET=SECRET)
        path = "/endpoints/fraud-xgb/invocations"
        run(broker, model_path, "sagemaker", server.base + path, [
            "models.fraud.region=eu-west-1", "models.fraud.aws_access_key_id=${INFLOW_TEST_AKID}",
            "models.fraud.aws_secret_access_key=${INFLOW_TEST_AWS_SECRET}"])
        req = server.requests[0]
        assert req["path"] == path
        assert req["headers"]["content-type"] == "text/csv"
        assert req["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
        assert all(verify_sigv4(r, SECRET, "eu-west-1", "sagemaker") for r in server.requests)
    finally:
        server.stop()
