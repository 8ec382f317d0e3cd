"""Embedding and text-generation providers against local servers speaking
their protocols: customer messages in, vectors or replies out on a results
topic, tokens counted, requests checked (paths, auth, SigV4, bodies)."""

# ctest: runs alone (it holds a node to a provider's rate limits).
import json
import os
import random

from harness import ROOT, Feeder, Node, read_all, wait_until_committed
from provider_server import ProviderServer, verify_sigv4

MESSAGES = 60
SECRET = "sk-text-0123456789"
TEMPLATE = "Customer {customer} asks: {text}"


def feed_messages(bootstrap):
    feeder = Feeder(bootstrap)
    for i in range(MESSAGES):
        msg = {"id": f"m-{i}", "customer": f"c-{i % 7}", "text": f"Where is my card number {i}?"}
        feeder.send(json.dumps(msg).encode(), "message", f"c-{i % 7}".encode())
    feeder.producer.flush(10)
    return feeder


def prompt(i):
    return f"Customer c-{i % 7} asks: Where is my card number {i}?"


def run(broker, model_path, task, provider, endpoint, extra):
    feed_messages(broker.bootstrap)
    os.environ.update(INFLOW_TEXT_KEY=SECRET, INFLOW_TEST_AKID="AKIDTEXT", INFLOW_TEST_AWS_SECRET=SECRET)
    sets = [f"models.fraud.task={task}", f"models.fraud.provider={provider}", "models.fraud.path=~",
            f"models.fraud.endpoint={endpoint}",
            f"models.fraud.input={json.dumps([TEMPLATE])}", "models.fraud.batch.max_batch=16",
            "pipelines.fraud.source.key_field=customer", "pipelines.fraud.alert=~",
            "pipelines.fraud.output.topic=ref-alerts", *extra]
    node = Node(broker.bootstrap, model_path, sets=sets)
    wait_until_committed(broker.bootstrap, "inflow-fraud", "transactions", 4, timeout=60)
    metrics = node.metrics()
    assert node.stop() == 0, node.stderr()
    assert SECRET not in node.stderr()
    results = [json.loads(m.value()) for m in read_all(broker.bootstrap, "ref-alerts", 2)]
    assert len(results) == MESSAGES
    assert not read_all(broker.bootstrap, "transactions.dlq", 1)
    for r in results:
        i = int(r["id"].split("-")[1])
        assert r["key"] == f"c-{i % 7}"
        assert r["result_id"] == f"transactions/{r['source']['partition']}/{r['source']['offset']}"
    return results, metrics


def embedding_of(text):
    return [float(len(text)), float(sum(map(ord, text)) % 97)]


def check_embeddings(results):
    for r in results:
        assert r["embedding"] == embedding_of(prompt(int(r["id"].split("-")[1])))


def check_replies(results):
    for r in results:
        assert r["text"] == "Reply to: " + prompt(int(r["id"].split("-")[1]))


def test_openai_embeddings_in_batches(broker, model_path):
    def respond(path, h, body):
        data = [{"object": "embedding", "index": i, "embedding": embedding_of(t)} for i, t in enumerate(body["input"])]
        random.shuffle(data)  # the API says order by index, not by position
        return 200, {"data": data, "usage": {"prompt_tokens": 10 * len(data), "total_tokens": 10 * len(data)}}
    server = ProviderServer(respond)
    try:
        results, metrics = run(broker, model_path, "embedding", "openai", server.base + "/v1",
                               ["models.fraud.model=text-embedding-3-small", "models.fraud.api_key=${INFLOW_TEXT_KEY}"])
        check_embeddings(results)
        assert all(r["path"] == "/v1/embeddings" for r in server.requests)
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
        assert server.requests[0]["body"]["model"] == "text-embedding-3-small"
        assert len(server.requests) < MESSAGES, "embeddings were not batched"
        assert metrics['inflow_gateway_tokens_in_total{model="fraud"}'] == 10 * MESSAGES
    finally:
        server.stop()


def test_openai_chat_completions_one_message_per_call(broker, model_path):
    def respond(path, h, body):
        user = body["messages"][-1]["content"]
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Reply to: " + user}}],
                     "usage": {"prompt_tokens": 20, "completion_tokens": 5}}
    server = ProviderServer(respond)
    try:
        results, metrics = run(broker, model_path, "text_generation", "openai", server.base + "/v1", [
            "models.fraud.model=gpt-4o-mini", "models.fraud.api_key=${INFLOW_TEXT_KEY}",
            "models.fraud.system_prompt=You answer card questions.", "models.fraud.max_tokens=64"])
        check_replies(results)
        assert len(server.requests) == MESSAGES
        body = server.requests[0]["body"]
        assert body["messages"][0] == {"role": "system", "content": "You answer card questions."}
        assert body["max_tokens"] == 64 and body["model"] == "gpt-4o-mini"
        assert metrics['inflow_gateway_tokens_out_total{model="fraud"}'] == 5 * MESSAGES
    finally:
        server.stop()


def test_azure_openai_deployment_and_api_key(broker, model_path):
    server = ProviderServer(lambda path, h, body: (200, {"data": [{"index": i, "embedding": embedding_of(t)}
                                                                  for i, t in enumerate(body["input"])]}))
    try:
        results, _ = run(broker, model_path, "embedding", "azure-openai", server.base, [
            "models.fraud.deployment=embed-small", "models.fraud.api_key=${INFLOW_TEXT_KEY}"])
        check_embeddings(results)
        req = server.requests[0]
        assert req["path"] == "/openai/deployments/embed-small/embeddings?api-version=2024-02-01"
        assert req["headers"]["api-key"] == SECRET and "authorization" not in req["headers"]
        assert "model" not in req["body"]
    finally:
        server.stop()


def test_azure_openai_with_an_entra_id_token(broker, model_path):
    # The Entra ID v2.0 token endpoint (client credentials grant) on the same local server.
    def respond(path, h, body):
        if path == "/tenant-1/oauth2/v2.0/token":
            assert "scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default" in body
            return 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": "entra-token-1"}
        return 200, {"data": [{"index": i, "embedding": embedding_of(t)} for i, t in enumerate(body["input"])]}
    server = ProviderServer(respond)
    try:
        os.environ.update(AZURE_AUTHORITY_HOST=server.base, AZURE_TENANT_ID="tenant-1", AZURE_CLIENT_ID="app-1",
                          AZURE_CLIENT_SECRET=SECRET)
        results, _ = run(broker, model_path, "embedding", "azure-openai", server.base, [
            "models.fraud.deployment=embed-small", "models.fraud.auth=azure_client_credentials"])
        check_embeddings(results)
        calls = [r for r in server.requests if "/openai/deployments/" in r["path"]]
        assert calls and all(r["headers"]["authorization"] == "Bearer entra-token-1" for r in calls)
        assert all("api-key" not in r["headers"] for r in calls)
    finally:
        for name in ("AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
            os.environ.pop(name, None)
        server.stop()


def test_google_ai_gemini(broker, model_path):
    def respond(path, h, body):
        if path.endswith(":batchEmbedContents"):
            return 200, {"embeddings": [{"values": embedding_of(r["content"]["parts"][0]["text"])}
                                        for r in body["requests"]]}
        text = body["contents"][0]["parts"][0]["text"]
        return 200, {"candidates": [{"content": {"parts": [{"text": "Reply to: "}, {"text": text}], "role": "model"}}],
                     "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 4}}
    server = ProviderServer(respond)
    try:
        results, _ = run(broker, model_path, "embedding", "google-ai", server.base + "/v1beta", [
            "models.fraud.model=text-embedding-004", "models.fraud.api_key=${INFLOW_TEXT_KEY}"])
        check_embeddings(results)
        assert server.requests[0]["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
        assert server.requests[0]["headers"]["x-goog-api-key"] == SECRET
    finally:
        server.stop()


def test_cohere_embed_v2(broker, model_path):
    """Cohere's Embed API v2, as its reference documents it (the provider added in its folder alone)."""
    def respond(path, h, body):
        if body.get("embedding_types") != ["float"] or not 1 <= len(body["texts"]) <= 96:
            return 400, {"message": "invalid request"}
        vectors = [embedding_of(t) for t in body["texts"]]
        return 200, {"id": "e-1", "texts": body["texts"], "embeddings": {"float": vectors},
                     "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 7 * len(vectors)}}}
    server = ProviderServer(respond)
    try:
        results, metrics = run(broker, model_path, "embedding", "cohere", server.base + "/v2", [
            "models.fraud.model=embed-english-v3.0", "models.fraud.api_key=${INFLOW_TEXT_KEY}",
            "models.fraud.input_type=classification"])
        check_embeddings(results)
        assert all(r["path"] == "/v2/embed" for r in server.requests)
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
        assert {r["body"]["model"] for r in server.requests} == {"embed-english-v3.0"}
        assert {r["body"]["input_type"] for r in server.requests} == {"classification"}
        assert len(server.requests) < MESSAGES, "embeddings were not batched"
        assert metrics['inflow_gateway_tokens_in_total{model="fraud"}'] == 7 * MESSAGES
    finally:
        server.stop()


def test_bedrock_titan_embeddings_and_anthropic_messages_signed(broker, model_path):
    def respond(path, h, body):
        if "titan" in path:
            return 200, {"embedding": embedding_of(body["inputText"]), "inputTextTokenCount": 9}
        assert body["anthropic_version"] == "bedrock-2023-05-31"
        text = body["messages"][0]["content"]
        return 200, {"content": [{"type": "text", "text": "Reply to: " + text}],
                     "usage": {"input_tokens": 11, "output_tokens": 3}}
    server = ProviderServer(respond)
    try:
        aws = ["models.fraud.region=us-east-1", "models.fraud.aws_access_key_id=${INFLOW_TEST_AKID}",
               "models.fraud.aws_secret_access_key=${INFLOW_TEST_AWS_SECRET}"]
        results, _ = run(broker, model_path, "embedding", "bedrock", server.base,
                         ["models.fraud.model=amazon.titan-embed-text-v2:0", *aws])
        check_embeddings(results)
        assert server.requests[0]["path"] == "/model/amazon.titan-embed-text-v2%3A0/invoke"
        assert all(verify_sigv4(r, SECRET, "us-east-1", "bedrock") for r in server.requests)
    finally:
        server.stop()


def test_bedrock_anthropic_replies(broker, model_path):
    def respond(path, h, body):
        return 200, {"content": [{"type": "text", "text": "Reply to: " + body["messages"][0]["content"]}],
                     "usage": {"input_tokens": 11, "output_tokens": 3}}
    server = ProviderServer(respond)
    try:
        results, metrics = run(broker, model_path, "text_generation", "bedrock", server.base, [
            "models.fraud.model=anthropic.claude-3-haiku-20240307-v1:0", "models.fraud.region=us-east-1",
            "models.fraud.aws_access_key_id=${INFLOW_TEST_AKID}",
            "models.fraud.aws_secret_access_key=${INFLOW_TEST_AWS_SECRET}"])
        check_replies(results)
        assert all(verify_sigv4(r, SECRET, "us-east-1", "bedrock") for r in server.requests)
        assert metrics['inflow_gateway_tokens_in_total{model="fraud"}'] == 11 * MESSAGES
    finally:
        server.stop()


def test_the_token_budget_holds_in_every_one_second_window(broker, model_path):
    arrivals = []

    def respond(path, h, body):
        import time
        used = sum(len(t) // 3 for t in body["input"])  # the provider counts, roughly by length
        arrivals.append((time.time(), used))
        return 200, {"data": [{"index": i, "embedding": [1.0, 2.0]} for i in range(len(body["input"]))],
                     "usage": {"prompt_tokens": used, "total_tokens": used}}
    server = ProviderServer(respond)
    # 200 tokens a second, calls of ~14: the budget, not the demand, sets the pace.
    tokens_per_minute = 12000
    try:
        run(broker, model_path, "embedding", "openai", server.base + "/v1", [
            "models.fraud.model=text-embedding-3-small", "models.fraud.api_key=${INFLOW_TEXT_KEY}",
            "models.fraud.batch.max_batch=1", f"models.fraud.limits.tokens_per_minute={tokens_per_minute}"])
    finally:
        server.stop()
    # As for requests (test_gateway_faults.py): arrivals are stamped by the Python server's handler
    # threads, late when the cores are busy (a sanitized CI run put 210 tokens into a second): 0.95 s.
    busiest = max(sum(n for u, n in arrivals if t <= u < t + 0.95) for t, _ in arrivals)
    assert busiest <= tokens_per_minute / 60, f"{busiest} tokens in 0.95 s"
    steady = arrivals[8:]  # once the estimates have learnt the real usage
    rate = sum(n for _, n in steady[1:]) / (steady[-1][0] - steady[0][0])
    assert rate >= 0.9 * tokens_per_minute / 60, f"only {rate:.0f} tokens/s"


def embed_through_simulator(broker, model_path, sim_args, extra=()):
    """The messages embedded through bench/peers/provider_sim.py (an OpenAI-compatible endpoint that
    enforces a provider's limits with 429s), at 2 calls and 100 tokens a second; its /stats after."""
    import subprocess
    import urllib.request
    sim = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "bench", "peers", "provider_sim.py"),
                            "--rps", "2", "--tpm", "6000", *sim_args], stdout=subprocess.PIPE, text=True)
    try:
        url = sim.stdout.readline().strip()
        run(broker, model_path, "embedding", "openai", url, [
            "models.fraud.model=text-embedding-3-small", "models.fraud.api_key=${INFLOW_TEXT_KEY}",
            "models.fraud.limits.requests_per_second=2", "models.fraud.limits.tokens_per_minute=6000", *extra])
        with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=5) as r:
            return json.loads(r.read())
    finally:
        sim.kill()
        sim.wait()


def test_under_a_providers_limits_calls_are_full_and_none_is_refused(broker, model_path):
    """A backlog leaves in calls as full as the budget allows (half a second's tokens at 2 calls a
    second), and not one is refused."""
    stats = embed_through_simulator(broker, model_path, [])
    assert stats["rows"] == MESSAGES, stats  # each message embedded once (run() checked the results)
    assert stats["rejected_requests"] == 0 and stats["rejected_tokens"] == 0, stats
    # ~12 tokens a message: 4 in a call of at most 49 tokens, not 1 (or 16, which never fits).
    assert stats["calls"] <= MESSAGES / 3, stats


def test_a_call_the_provider_counts_as_over_its_limit_is_halved_until_it_fits(broker, model_path):
    """The provider counts a token per byte where Inflow first estimates one per four, so the first
    calls (16 inputs) ask for about twice what fits a second and are refused each time they are retried.
    After two refusals a call is halved, its halves go through and their usage teaches the gateway
    what an input costs: every message is embedded and none is dead-lettered (run() checks both),
    after a few 429s rather than the retries running out."""
    stats = embed_through_simulator(broker, model_path, ["--bytes-per-token", "1", "--tpm", "24000"],
                                    ["models.fraud.limits.tokens_per_minute=24000", "models.fraud.retry.max_attempts=3"])
    assert stats["rows"] == MESSAGES, stats
    assert 2 <= stats["rejected_tokens"] <= 12, stats
