"""A local server on 127.0.0.1:0 that speaks one provider's protocol: it
records every request (method, path, headers, body) and answers with the
score min(1, amount / 1000), amount being the first feature."""

import http.server
import json
import threading


def score(row):
    return min(1.0, row[0] / 1000.0)


class ProviderServer:
    def __init__(self, respond):
        """`respond(path, headers, body) -> (status, json_body)`."""
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode()
                server.requests.append({"method": "POST", "path": self.path, "raw": raw,
                                        "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                status, answer = respond(self.path, self.headers, body)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/csv" if isinstance(answer, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


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
