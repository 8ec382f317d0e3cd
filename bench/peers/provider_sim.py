#!/usr/bin/python3
"""A provider simulator for the benchmarks, not a provider: an OpenAI-compatible embeddings
endpoint (POST /v1/embeddings, as OpenAI's API reference documents it) on 127.0.0.1 that
enforces a hosted provider's limits the way they do, so that what a client does under them
can be measured.

    bench/peers/provider_sim.py [--rps R] [--tpm T] [--latency-ms L] [--embedder hash|minilm]
                                [--bytes-per-token B]

- Requests per second: at most R calls start in any sliding second.
- Tokens per minute: at most T/60 tokens in any sliding second (providers enforce their
  minute budgets over short windows). A call's tokens are its inputs' UTF-8 bytes / B (4:
  OpenAI's rule of thumb), each rounded up, and are returned as `usage.prompt_tokens`. A
  smaller B plays a tokenizer that counts more tokens than a client estimates.
- A call over either limit gets 429 with `Retry-After` (whole seconds, rounded up),
  `retry-after-ms` and `x-ratelimit-reset-requests` / `-tokens` (e.g. `20ms`), and costs
  nothing.
- Every accepted call takes L ms before it answers (a hosted model's latency).
- The vectors: `hash` hashes each word into 64 dimensions (cheap, deterministic); `minilm`
  runs all-MiniLM-L6-v2 (bench/peers/minilm.py) on the inputs, 384 dimensions.

Prints its base URL (http://127.0.0.1:PORT/v1) as the first line of stdout. GET /stats
answers the counts: calls, rows and tokens accepted, 429s by limit, first and last accepted call."""

import argparse
import collections
import hashlib
import asyncio
import http
import json
import math
import time


class Limits:
    """Sliding one-second windows of calls and tokens (used from the event loop's one thread)."""

    def __init__(self, rps, tpm):
        self.rps, self.tokens_per_second = rps, tpm / 60.0
        self.calls, self.tokens = collections.deque(), collections.deque()  # start times; (time, tokens)
        self.used = 0  # the tokens in self.tokens
        self.stats = {"calls": 0, "rows": 0, "tokens": 0, "rejected_requests": 0, "rejected_tokens": 0,
                      "first": None, "last": None}

    def admit(self, rows, tokens):
        """None when the call may go ahead (and is counted), else (which limit, seconds until it would pass)."""
        now = time.time()
        while self.calls and self.calls[0] <= now - 1:
            self.calls.popleft()
        while self.tokens and self.tokens[0][0] <= now - 1:
            self.used -= self.tokens.popleft()[1]
        if self.rps and len(self.calls) >= self.rps:
            self.stats["rejected_requests"] += 1
            return "requests", self.calls[0] + 1 - now
        if self.tokens_per_second:
            if self.used + tokens > self.tokens_per_second:
                self.stats["rejected_tokens"] += 1
                freed, wait = self.used + tokens - self.tokens_per_second, 1.0
                for at, t in self.tokens:
                    freed -= t
                    if freed <= 0:
                        wait = at + 1 - now
                        break
                return "tokens", wait
        self.calls.append(now)
        self.tokens.append((now, tokens))
        self.used += tokens
        s = self.stats
        s["calls"] += 1
        s["rows"] += rows
        s["tokens"] += tokens
        s["first"] = s["first"] or now
        s["last"] = now
        return None


def hash_embedding(text, dims=64):
    v = [0.0] * dims
    for word in text.lower().split():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        v[h % dims] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


async def serve(limits, embed, latency_ms, bytes_per_token):
    """HTTP/1.1 with keep-alive on asyncio: one thread answers thousands of calls a second, so the
    simulator is not what limits a client that makes one call per row."""
    async def answer(writer, status, body, headers=()):
        data = json.dumps(body).encode()
        head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", "Content-Type: application/json",
                f"Content-Length: {len(data)}", *[f"{k}: {v}" for k, v in headers]]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    async def call(writer, method, path, raw):
        if method == "GET" and path == "/stats":
            return await answer(writer, 200, dict(limits.stats))
        if method != "POST" or not path.endswith("/embeddings"):
            return await answer(writer, 404, {"error": {"message": f"no route {method} {path}"}})
        try:
            body = json.loads(raw)
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            assert texts and all(isinstance(t, str) for t in texts)
        except (ValueError, KeyError, TypeError, AssertionError):
            return await answer(writer, 400, {"error": {"message": "input must be a string or a list of strings",
                                                        "type": "invalid_request_error"}})
        tokens = sum(math.ceil(len(t.encode()) / bytes_per_token) for t in texts)
        refused = limits.admit(len(texts), tokens)
        if refused:
            which, wait = refused
            wait = max(wait, 0.001)
            return await answer(writer, 429, {"error": {"message": f"Rate limit reached for {which}",
                                                        "type": which, "code": "rate_limit_exceeded"}},
                                [("Retry-After", math.ceil(wait)), ("retry-after-ms", math.ceil(wait * 1000)),
                                 (f"x-ratelimit-reset-{which}", f"{math.ceil(wait * 1000)}ms")])
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        vectors = await embed(texts)
        await answer(writer, 200, {"object": "list", "model": body.get("model", ""),
                                   "data": [{"object": "embedding", "index": i, "embedding": v}
                                            for i, v in enumerate(vectors)],
                                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def connection(reader, writer):
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                lines = request.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                fields = dict(l.split(":", 1) for l in lines[1:] if ":" in l)
                length = int(next((v for k, v in fields.items() if k.strip().lower() == "content-length"), 0))
                await call(writer, method, path, await reader.readexactly(length) if length else b"")
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0, backlog=1024)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", flush=True)
    await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rps", type=float, default=0, help="requests per second (0: no limit)")
    ap.add_argument("--tpm", type=float, default=0, help="tokens per minute (0: no limit)")
    ap.add_argument("--latency-ms", type=float, default=0, help="time each accepted call takes")
    ap.add_argument("--embedder", choices=("hash", "minilm"), default="hash")
    ap.add_argument("--bytes-per-token", type=float, default=4, help="how many UTF-8 bytes make a token")
    a = ap.parse_args()
    if a.embedder == "minilm":
        import minilm
        model = minilm.Model()

        async def embed(texts):  # one forward pass at a time, beside the event loop: numpy uses the cores itself
            return (await asyncio.get_running_loop().run_in_executor(None, model.embed, texts)).tolist()
    else:
        async def embed(texts):
            return [hash_embedding(t) for t in texts]
    asyncio.run(serve(Limits(a.rps, a.tpm), embed, a.latency_ms, a.bytes_per_token))


if __name__ == "__main__":
    main()
