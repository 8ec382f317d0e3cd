"""A KServe v2 model server on 127.0.0.1:0 that can be told to misbehave.
Its model is simple on purpose: the score is min(1, amount / 1000), amount
being the first feature, so tests know every expected decision."""

import http.server
import json
import random
import socket
import struct
import threading
import time

SO_TIMESTAMPNS = 35  # Linux: the kernel stamps each packet received (not exported by Python)


def kernel_arrival(connection):
    """When the next request's first bytes reached this socket, by the kernel's clock (the
    time.time() clock), waiting for them; None over TLS or once the peer has closed. A Python
    thread may run tens of ms late on a loaded machine: limits are judged by this."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        data, ancillary, _, _ = connection.recvmsg(1, 64, socket.MSG_PEEK)
    except (OSError, NotImplementedError, ValueError):
        return None
    for _, kind, stamp in ancillary:
        if data and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", stamp[:16])
            return seconds + nanoseconds / 1e9
    return None


class FaultServer:
    def __init__(self, tls=None):
        """`tls`: (certificate file, key file) to serve HTTPS."""
        self.script = []      # actions for the next requests, then normal answers
        self.arrivals = []    # (time, rows) of every request, as the kernel received it
        self.traceparents = []  # the traceparent header of every request (None without one)
        self.rows = []        # every row scored, as a tuple of its features
        self.jitter = 0.0     # each answer waits up to this long (s), so calls finish out of order
        self.down_until = 0.0  # until this time, every call is answered 503 (an outage)
        self.refuse_amount = None  # a request with a row of this amount is refused with 400, as a whole
        self.token = None     # when set, a request without `Authorization: Bearer <token>` gets 401
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one_request(self):
                self.arrived = kernel_arrival(self.connection)
                return super().handle_one_request()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = json.loads(body)
                shape = req["inputs"][0]["shape"]
                data = req["inputs"][0]["data"]
                with server.lock:
                    server.arrivals.append((self.arrived or time.time(), shape[0]))
                    server.traceparents.append(self.headers.get("traceparent"))
                    action = server.script.pop(0) if server.script else ("ok",)
                kind = action[0]
                width = shape[1]
                if server.token is not None and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self.reply(401, b'{"error":"invalid token"}')
                if time.time() < server.down_until:
                    return self.reply(503, b'{"error":"outage"}')
                if server.refuse_amount is not None and any(
                        abs(data[i * width] - server.refuse_amount) < 1e-3 for i in range(shape[0])):
                    return self.reply(400, b'{"error":"input refused"}')
                if server.jitter:
                    time.sleep(random.uniform(0, server.jitter))
                if kind == "status":
                    return self.reply(action[1], b'{"error":"injected"}', action[2] if len(action) > 2 else {})
                if kind == "hang":
                    time.sleep(action[1])
                if kind == "reset":  # drop the connection without an answer
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if kind == "invalid_json":
                    return self.reply(200, b'{"outputs":[{"data":[0.1,')
                if kind == "html":  # well-formed JSON, announced as something else
                    return self.reply(200, b'{"outputs":[]}', {"Content-Type": "text/html"})
                if kind == "oversized":
                    return self.reply(200, b'{"pad":"' + b"x" * action[1] + b'"}')
                scores = [min(1.0, data[i * width] / 1000.0) for i in range(shape[0])]
                with server.lock:
                    server.rows.extend(tuple(data[i * width:(i + 1) * width]) for i in range(shape[0]))
                out = {"model_name": "fraud", "id": req.get("id", ""),
                       "outputs": [{"name": "output-0", "shape": [shape[0]], "datatype": "FP32", "data": scores}]}
                self.reply(200, json.dumps(out).encode())
                if kind == "close_after":  # a keep-alive connection the server then drops while idle
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True

            def reply(self, status, body, headers=None):
                self.send_response(status)
                if "Content-Type" not in (headers or {}):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v() if callable(v) else v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls:
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/v2/models/fraud/infer"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
