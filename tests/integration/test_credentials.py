"""Credentials that refresh before they expire: each source against a local stand-in for
its token service (token_servers.py, the documented protocols), guarding a model endpoint
that refuses expired or unknown tokens. Tokens live a few seconds and records arrive in
waves over several lifetimes: nothing is dead-lettered, and a token refreshed ahead of its
expiry means the model endpoint never had to refuse one."""

# ctest: mostly waits (records arrive a token lifetime apart).
import json
import os
import time

import pytest

from harness import Feeder, Node, read_all, wait_until_committed
from provider_server import StandIn, score
from token_servers import (JSON, Issuer, aws_json_credentials, aws_signed_by_live_keys,
                           azure_managed_identity, entra_client_credentials, google_jwt_grant,
                           sts_assume_role_with_web_identity)

WAVE = 60
LIFETIME = 3  # seconds: refreshed when 0.75 s are left


def features(model_path):
    return json.load(open(os.path.join(os.path.dirname(model_path), "model.meta.json")))["features"]


def stream(broker, model_path, provider, endpoint, sets=(), env=None, waves=3, between=None):
    """Feeds `waves` waves of WAVE records a token lifetime apart (calling `between(i)` before wave i > 0),
    and returns the node's metrics once everything is committed. Asserts every record was scored."""
    feeder = Feeder(broker.bootstrap)
    node = Node(broker.bootstrap, model_path, env=env, sets=[
        f"models.fraud.provider={provider}", "models.fraud.path=~", f"models.fraud.endpoint={endpoint}",
        f"models.fraud.input={json.dumps(features(model_path))}", "models.fraud.batch.max_batch=20", *sets])
    try:
        for i in range(waves):
            if i:
                time.sleep(LIFETIME + 0.5)
                if between:
                    between(i)
            feeder.feed(WAVE, seed=40 + i, fraud_every=10, poison_every=0)
            deadline = time.time() + 30
            while time.time() < deadline and node.metric("inflow_records_scored_total") < WAVE * (i + 1):
                time.sleep(0.1)
        wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
        metrics = node.metrics()
    finally:
        assert node.stop() == 0, node.stderr()
    assert not read_all(broker.bootstrap, "transactions.dlq", 1), node.stderr()
    alerts = {(a["source"]["partition"], a["source"]["offset"])
              for a in (json.loads(m.value()) for m in read_all(broker.bootstrap, "fraud-alerts", 2))}
    assert alerts == feeder.scored_as_fraud()
    return metrics, node


def refused(metrics):
    return metrics.get('inflow_gateway_call_errors_total{model="fraud",type="unauthorized"}', 0)


def bearer_guarded(issuer, answer):
    """A model endpoint that takes only live tokens of `issuer`: 401 otherwise, as the clouds answer."""
    def guard(headers, raw):
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if not issuer.valid(token):
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}, JSON
        return 200, answer(json.loads(raw)), JSON
    return guard


def vertex_answer(body):
    return {"predictions": [score(r) for r in body["instances"]]}


def azure_ml_answer(body):
    return [score(r) for r in body["input_data"]["data"]]


@pytest.fixture
def service_account(tmp_path):
    """A fresh RSA key in a Google service-account JSON key file; token_uri set by the test."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    def write(token_uri):
        path = tmp_path / "sa.json"
        path.write_text(json.dumps({"type": "service_account", "project_id": "p", "private_key_id": "k1",
                                    "private_key": pem, "client_email": "scorer@p.iam.gserviceaccount.com",
                                    "client_id": "1", "token_uri": token_uri}))
        return str(path)
    write.public_key = key.public_key()
    return write


def test_google_service_account_key_tokens_are_renewed_before_they_expire(broker, model_path, service_account):
    issuer = Issuer(LIFETIME)
    scope = "https://www.googleapis.com/auth/cloud-platform"
    predict = bearer_guarded(issuer, vertex_answer)
    server = StandIn(lambda method, path, h, raw:
                     google_jwt_grant(issuer, service_account.public_key, "scorer@p.iam.gserviceaccount.com",
                                      server.base + "/token", scope, raw) if path == "/token" else predict(h, raw))
    try:
        key_file = service_account(server.base + "/token")
        metrics, node = stream(broker, model_path, "vertex-ai", server.base + "/v1/endpoints/1:predict",
                               ["models.fraud.auth=google_service_account", f"models.fraud.credentials_file={key_file}"])
    finally:
        server.stop()
    assert len(issuer.grants) >= 3, issuer.grants  # one at start, then ahead of each expiry
    assert refused(metrics) == 0  # never sent an expired token
    assert "BEGIN PRIVATE KEY" not in node.stderr()


def test_google_metadata_server_tokens(broker, model_path):
    issuer = Issuer(LIFETIME)
    predict = bearer_guarded(issuer, vertex_answer)

    def route(method, path, h, raw):
        if path.startswith("/computeMetadata/v1/instance/service-accounts/default/token"):
            if h.get("metadata-flavor") != "Google":
                return 403, "Missing Metadata-Flavor:Google header.", "text/plain"
            return 200, {"access_token": issuer.token(), "expires_in": LIFETIME, "token_type": "Bearer"}, JSON
        return predict(h, raw)
    server = StandIn(route)
    try:
        metrics, _ = stream(broker, model_path, "vertex-ai", server.base + "/v1/endpoints/1:predict",
                            ["models.fraud.auth=google_metadata"], env={"GCE_METADATA_HOST": server.host})
    finally:
        server.stop()
    assert len(issuer.grants) >= 3 and refused(metrics) == 0


def test_entra_client_credentials_and_a_revoked_token_refreshed_on_401(broker, model_path):
    issuer = Issuer(60)  # long-lived: the refresh here is the one a 401 asks for
    scope = "https://ml.azure.com/.default"
    score_route = bearer_guarded(issuer, azure_ml_answer)

    def route(method, path, h, raw):
        if path == "/tenant-1/oauth2/v2.0/token":
            return entra_client_credentials(issuer, "app-1", "s3cret-value", scope, raw)
        return score_route(h, raw)
    server = StandIn(route)
    try:
        metrics, node = stream(broker, model_path, "azure-ml", server.base + "/score",
                               ["models.fraud.auth=azure_client_credentials", "models.fraud.tenant_id=tenant-1",
                                "models.fraud.client_secret=${INFLOW_TEST_CLIENT_SECRET}"],
                               env={"AZURE_AUTHORITY_HOST": server.base + "/", "AZURE_CLIENT_ID": "app-1",
                                    "INFLOW_TEST_CLIENT_SECRET": "s3cret-value"},
                               waves=2, between=lambda i: issuer.revoke_all())
    finally:
        server.stop()
    assert len(issuer.grants) == 2
    assert refused(metrics) >= 1
    assert "s3cret-value" not in node.stderr()


@pytest.mark.parametrize("flavor", ["instance metadata", "app service"])
def test_azure_managed_identity(broker, model_path, flavor):
    issuer = Issuer(LIFETIME)
    score_route = bearer_guarded(issuer, azure_ml_answer)

    def route(method, path, h, raw):
        if path.startswith("/metadata/identity/oauth2/token?"):
            if h.get("metadata") != "true":
                return 400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}, JSON
            return azure_managed_identity(issuer, "https://ml.azure.com", path)
        if path.startswith("/msi/token?"):
            if h.get("x-identity-header") != "identity-secret":
                return 401, {"error": "unauthorized"}, JSON
            return azure_managed_identity(issuer, "https://ml.azure.com", path)
        return score_route(h, raw)
    server = StandIn(route)
    env = {"AZURE_POD_IDENTITY_AUTHORITY_HOST": server.base} if flavor == "instance metadata" else \
        {"IDENTITY_ENDPOINT": server.base + "/msi/token", "IDENTITY_HEADER": "identity-secret"}
    try:
        metrics, _ = stream(broker, model_path, "azure-ml", server.base + "/score",
                            ["models.fraud.auth=azure_managed_identity"], env=env)
    finally:
        server.stop()
    assert len(issuer.grants) >= 3 and refused(metrics) == 0


def sagemaker_route(issuer, credentials_route):
    def route(method, path, h, raw):
        if path.startswith("/endpoints/"):
            request = {"method": method, "path": path, "headers": h, "raw": raw}
            if not aws_signed_by_live_keys(issuer, request, "eu-west-1", "sagemaker"):
                return 403, {"message": "The security token included in the request is expired"}, JSON
            rows = [[float(x) for x in line.split(",")] for line in raw.decode().strip().split("\n")]
            return 200, "\n".join(str(score(r)) for r in rows), "text/csv"
        return credentials_route(method, path, h, raw)
    return route


AWS_CLEAN = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
             "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
             "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.mark.parametrize("source", ["web identity", "container", "instance metadata"])
def test_aws_temporary_credentials_are_renewed_before_they_expire(broker, model_path, tmp_path, source):
    issuer = Issuer(LIFETIME)
    token_file = tmp_path / "web-identity-token"
    token_file.write_text("eyJ.projected-service-account-token")
    role = "arn:aws:iam::123456789012:role/scorer"

    def credentials(method, path, h, raw):
        if source == "web identity" and path == "/" and method == "POST":
            return sts_assume_role_with_web_identity(issuer, role, "eyJ.projected-service-account-token", raw)
        if source == "container" and path == "/v2/credentials/abc":
            if h.get("authorization") != "container-auth-token":
                return 401, {"message": "unauthorized"}, JSON
            return aws_json_credentials(issuer)
        if source == "instance metadata":
            if path == "/latest/api/token" and method == "PUT":
                return 200, "imds-session-token", "text/plain"
            if h.get("x-aws-ec2-metadata-token") != "imds-session-token":
                return 401, "", "text/plain"
            if path == "/latest/meta-data/iam/security-credentials/":
                return 200, "scorer-role", "text/plain"
            if path == "/latest/meta-data/iam/security-credentials/scorer-role":
                return aws_json_credentials(issuer)
        return 404, {"message": f"not found: {method} {path}"}, JSON
    server = StandIn(sagemaker_route(issuer, credentials))
    env = {**AWS_CLEAN, **{
        "web identity": {"AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file), "AWS_ROLE_ARN": role,
                         "AWS_ENDPOINT_URL_STS": server.base + "/"},
        "container": {"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.base + "/v2/credentials/abc",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-auth-token"},
        "instance metadata": {"AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": server.base},
    }[source]}
    try:
        metrics, _ = stream(broker, model_path, "sagemaker", server.base + "/endpoints/fraud-xgb/invocations",
                            ["models.fraud.region=eu-west-1"], env=env)
    finally:
        server.stop()
    assert len(issuer.grants) >= 3 and refused(metrics) == 0


def test_aws_profile_in_the_shared_files_is_read_again_when_refused(broker, model_path, tmp_path):
    issuer = Issuer(3600)
    akid, secret, _, _ = issuer.aws_keys()
    issuer.live[akid] = (issuer.live[akid][0], (secret, None))  # long-term keys: no session token
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = x\n\n"
                           f"[scoring]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n")
    server = StandIn(sagemaker_route(issuer, lambda *a: (404, {}, JSON)))

    def rotate(i):  # another tool rotates the key: the old one stops working
        issuer.revoke_all()
        new_akid, new_secret, _, _ = issuer.aws_keys()
        issuer.live[new_akid] = (issuer.live[new_akid][0], (new_secret, None))
        credentials.write_text(f"[scoring]\naws_access_key_id = {new_akid}\naws_secret_access_key = {new_secret}\n")
    try:
        metrics, node = stream(broker, model_path, "sagemaker", server.base + "/endpoints/fraud-xgb/invocations",
                               ["models.fraud.region=eu-west-1", "models.fraud.aws_profile=scoring"],
                               env={**AWS_CLEAN, "AWS_SHARED_CREDENTIALS_FILE": str(credentials)},
                               waves=2, between=rotate)
    finally:
        server.stop()
    assert refused(metrics) >= 1
    assert "profile scoring" in node.stderr()
