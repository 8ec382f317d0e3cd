"""A schema registry on 127.0.0.1:0 speaking the documented Confluent Schema Registry REST API
(the part Inflow uses, which Apicurio serves under /apis/ccompat/v7 too): register a schema under
a subject, a subject's versions and latest, a schema by id. It stores, it does not check
compatibility: the test stands in for a real registry, which is not published as a runnable
artifact on the package registries these machines reach (see docs/LIFECYCLE.md)."""

import http.server
import json
import threading
import time


class SchemaRegistry:
    def __init__(self):
        self.schemas = []    # id - 1 -> schema text
        self.subjects = {}   # subject -> [ids]
        self.requests = []   # (method, path) of every request
        self.away = False    # while true, every request is answered 503 (a registry behind its load balancer, down)
        self.silent = False  # while true, requests get no answer (a registry behind a route that drops packets)
        self.lock = threading.Lock()
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def not_found(self, code, what):
                self.answer(404, {"error_code": code, "message": what})

            def do_GET(self):
                registry.requests.append(("GET", self.path))
                while registry.silent:
                    time.sleep(0.05)
                if registry.away:
                    return self.answer(503, {"error_code": 50301, "message": "Service Unavailable"})
                parts = self.path.strip("/").split("/")
                with registry.lock:
                    if parts[:2] == ["schemas", "ids"] and len(parts) == 3:
                        i = int(parts[2])
                        if 1 <= i <= len(registry.schemas):
                            return self.answer(200, {"schema": registry.schemas[i - 1]})
                        return self.not_found(40403, "Schema not found")
                    if parts[0] == "subjects" and len(parts) == 4 and parts[2] == "versions":
                        ids = registry.subjects.get(parts[1])
                        if not ids:
                            return self.not_found(40401, "Subject not found")
                        v = len(ids) if parts[3] == "latest" else int(parts[3])
                        return self.answer(200, {"subject": parts[1], "version": v, "id": ids[v - 1],
                                                 "schema": registry.schemas[ids[v - 1] - 1]})
                self.not_found(404, "not found")

            def do_POST(self):
                registry.requests.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                parts = self.path.strip("/").split("/")
                if parts[0] != "subjects" or len(parts) != 3 or parts[2] != "versions":
                    return self.not_found(404, "not found")
                self.answer(200, {"id": registry.register(parts[1], body["schema"])})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def register(self, subject, schema):
        """The schema's id, registering it (once) under `subject`."""
        with self.lock:
            canonical = json.dumps(json.loads(schema), sort_keys=True)
            known = [i for i, s in enumerate(self.schemas, 1) if json.dumps(json.loads(s), sort_keys=True) == canonical]
            i = known[0] if known else len(self.schemas) + 1
            if not known:
                self.schemas.append(schema)
            ids = self.subjects.setdefault(subject, [])
            if i not in ids:
                ids.append(i)
            return i

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
