"""A local server on 127.0.0.1:0 that speaks one provider's protocol: it
records every request (method, path, headers, body) and answers with the
score min(1, amount / 1000), amount being the first feature."""

import http.server
import json
import threading


def score(row):
    return min(1.0, row[0] / 1000.0)


class StandIn:
    """`route(method, path, headers, raw_body) -> (status, body, content_type)` on 127.0.0.1:0, with
    header names in lower case; every request is recorded (method, path, headers, raw, body: JSON
    when it parses, else text)."""

    def __init__(self, route):
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"method": self.command, "path": self.path, "headers": headers, "raw": raw,
                                        "body": body})
                status, answer, content_type = route(self.command, self.path, headers, raw)
                data = answer if isinstance(answer, bytes) else (
                    answer.encode() if isinstance(answer, str) else json.dumps(answer).encode())
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = handle_any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.base = f"http://{self.host}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ProviderServer(StandIn):
    def __init__(self, respond):
        """`respond(path, headers, body) -> (status, json_body)`; a str body is sent as text/csv."""
        def route(method, path, headers, raw):
            status, answer = respond(path, headers, self.requests[-1]["body"])
            return status, answer, "text/csv" if isinstance(answer, str) else "application/json"
        super().__init__(route)


def verify_sigv4(request, secret, region, service):
    """Recomputes the request's AWS SigV4 signature independently of Inflow
    (hashlib and hmac) and says whether the Authorization header matches."""
    import hashlib
    import hmac
    import urllib.parse
    auth = request["headers"]["authorization"]
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    signed = fields["SignedHeaders"].split(";")
    date = request["headers"]["x-amz-date"]
    path = urllib.parse.quote(request["path"].split("?")[0], safe="/-_.~")
    canonical = "\n".join(["POST", path, "", *[f"{h}:{request['headers'][h].strip()}" for h in signed], "",
                           ";".join(signed), hashlib.sha256(request["raw"]).hexdigest()])
    scope = f"{date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return fields["Credential"].endswith(scope) and fields["Signature"] == expected
