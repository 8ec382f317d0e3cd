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
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                server.requests.append({"method": "POST", "path": self.path,
                                        "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                status, answer = respond(self.path, self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
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
