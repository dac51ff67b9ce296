#!/usr/bin/env python3
"""An S3 and DynamoDB endpoint in front of moto_server that fails requests the way AWS does.

Requests pass through to moto unchanged unless a rule matches them. A rule names an operation
(`PutObject`, `GetObject`, `ListObjectsV2`, `DeleteObject`, `DeleteObjects` for S3; the
`X-Amz-Target` operation for DynamoDB, e.g. `BatchWriteItem`; `*` for any) and a text that the
request's path or body must contain (a test's own bucket or table name, so that tests running at
once never see each other's faults). It then answers every `every`-th matching request, `times`
times in all, with one of AWS's failures instead of passing it on:

- `slowdown`: S3 503 SlowDown;           - `s3-500`: S3 500 InternalError;
- `throttle`: DynamoDB 400 ProvisionedThroughputExceededException;
- `dynamo-500`: DynamoDB 500 InternalServerError;
- `stall`: waits `seconds` and then passes the request on (a timeout for any client waiting less).

Control: `POST /_faults` with a JSON rule `{"op", "match", "fault", "every", "times", "seconds"}`
adds it; `DELETE /_faults?match=X` removes the rules of X; `GET /_faults?match=X` tells how many
failures the rules of X injected.

Usage: faulty_aws.py UPSTREAM_URL PORT
"""

import http.client
import http.server
import json
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}

upstream = urllib.parse.urlsplit(sys.argv[1])
lock = threading.Lock()
rules = []  # dicts: op, match, fault, every, times, seconds, seen, injected

S3_ERROR = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
FAULTS = {
    "slowdown": (503, "application/xml", S3_ERROR.format(code="SlowDown", message="Please reduce your request rate.")),
    "s3-500": (500, "application/xml", S3_ERROR.format(code="InternalError", message="We encountered an internal error. Please try again.")),
    "throttle": (400, "application/x-amz-json-1.0", json.dumps({
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    })),
    "dynamo-500": (500, "application/x-amz-json-1.0", json.dumps({
        "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "message": "Internal server error",
    })),
}


def send(method, path, headers, body):
    conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def operation(method, path, headers):
    target = headers.get("X-Amz-Target", "")
    if target.startswith("DynamoDB_"):
        return target.split(".", 1)[1]
    parts = urllib.parse.urlsplit(path)
    has_key = parts.path.strip("/").count("/") >= 1
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    if method == "PUT":
        return "PutObject" if has_key else "CreateBucket"
    if method == "GET":
        return "GetObject" if has_key else "ListObjectsV2"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "DeleteObject"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return method


def fault_for(op, path, body):
    """The rule that fails this request, if any (counting the request against every rule it matches)."""
    text = path + body.decode("utf-8", "replace")
    with lock:
        for rule in rules:
            if rule["op"] not in ("*", op) or rule["match"] not in text:
                continue
            rule["seen"] += 1
            if rule["injected"] < rule["times"] and rule["seen"] % rule["every"] == 0:
                rule["injected"] += 1
                return dict(rule)
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def control(self, body):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        match = query.get("match", [""])[0]
        with lock:
            if self.command == "POST":
                rule = {"every": 1, "times": 1 << 30, "seconds": 0, **json.loads(body), "seen": 0, "injected": 0}
                rules.append(rule)
                out = {"rules": len(rules)}
            elif self.command == "DELETE":
                rules[:] = [r for r in rules if r["match"] != match]
                out = {"rules": len(rules)}
            else:
                out = {"injected": sum(r["injected"] for r in rules if r["match"] == match)}
        self.reply(200, [("Content-Type", "application/json")], json.dumps(out).encode())

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/_faults"):
            return self.control(body)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        # self.headers looks names up case-insensitively (the SDKs send them in lower case).
        rule = fault_for(operation(self.command, self.path, self.headers), self.path, body)
        if rule and rule["fault"] == "stall":
            time.sleep(rule["seconds"])
        elif rule:
            status, content_type, reply = FAULTS[rule["fault"]]
            return self.reply(status, [("Content-Type", content_type)], reply.encode())
        return self.reply(*send(self.command, self.path, headers, body))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
    server.daemon_threads = True
    server.serve_forever()
