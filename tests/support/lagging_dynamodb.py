#!/usr/bin/env python3
"""A DynamoDB endpoint with AWS's read consistency, in front of moto_server.

moto answers every read from the latest state. DynamoDB does not: an eventually consistent read
(GetItem, Query, Scan or BatchGetItem without ConsistentRead) may miss recent writes, and a read
through a global secondary index is never strongly consistent. This proxy makes that visible:

- writes go to the table at once (the primary) and are queued for a stale copy (the replica);
- strongly consistent reads (ConsistentRead true, no IndexName; TransactGetItems) read the primary;
- every other read is served by the replica, which holds only the writes made before the last
  `POST /_lagging/sync`: a snapshot taken before the latest writes, as lagging as a test wants.

The replica is the same moto_server under another region (the SigV4 credential scope names the
region and moto keys its tables by it; it does not check signatures). Requests other than
DynamoDB's pass through unchanged. `GET /_lagging/stats` counts the reads served stale.

Usage: lagging_dynamodb.py UPSTREAM_URL PORT
"""

import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse

REPLICA_REGION = "ap-southeast-2"
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
TABLE_OPS = {"CreateTable", "DeleteTable", "UpdateTable", "UpdateTimeToLive"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}

upstream = urllib.parse.urlsplit(sys.argv[1])
lock = threading.Lock()
pending = []  # (headers, body) of writes the replica has not seen yet, in the order they were made
stats = {"stale_reads": 0, "consistent_reads": 0, "writes": 0, "synced": 0}


def send(method, path, headers, body):
    conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def to_replica(headers):
    out = dict(headers)
    auth = out.get("Authorization") or out.get("authorization")
    if auth:
        out.pop("authorization", None)
        out["Authorization"] = re.sub(r"/[a-z0-9-]+/dynamodb/aws4_request", f"/{REPLICA_REGION}/dynamodb/aws4_request", auth)
    return out


def consistent(op, request):
    if op == "BatchGetItem":
        items = request.get("RequestItems", {}).values()
        return bool(items) and all(i.get("ConsistentRead") is True for i in items)
    return request.get("ConsistentRead") is True and "IndexName" not in request


def sync():
    with lock:
        queued = list(pending)
        pending.clear()
        for headers, body in queued:
            status, _, reply = send("POST", "/", to_replica(headers), body)
            if status != 200:
                raise RuntimeError(f"replaying a write on the replica failed: {status} {reply[:300]!r}")
        stats["synced"] += len(queued)
        return len(queued)


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
        self.wfile.write(body)

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if self.path == "/_lagging/sync":
            return self.reply(200, [("Content-Type", "application/json")], json.dumps({"replayed": sync()}).encode())
        if self.path == "/_lagging/stats":
            with lock:
                return self.reply(200, [("Content-Type", "application/json")], json.dumps(stats).encode())
        target = self.headers.get("X-Amz-Target", "")
        op = target.split(".", 1)[1] if target.startswith("DynamoDB_") else None
        if op in WRITES:
            # Under the lock, so the replica replays writes in the order the primary applied them.
            with lock:
                status, resp_headers, reply = send(self.command, self.path, headers, body)
                if status == 200:
                    pending.append((headers, body))
                    stats["writes"] += 1
            return self.reply(status, resp_headers, reply)
        if op in TABLE_OPS:
            status, resp_headers, reply = send(self.command, self.path, headers, body)
            if status == 200:
                send(self.command, self.path, to_replica(headers), body)
            return self.reply(status, resp_headers, reply)
        if op in READS and not consistent(op, json.loads(body or b"{}")):
            with lock:
                stats["stale_reads"] += 1
            return self.reply(*send(self.command, self.path, to_replica(headers), body))
        if op in READS:
            with lock:
                stats["consistent_reads"] += 1
        return self.reply(*send(self.command, self.path, headers, body))

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
    server.daemon_threads = True
    server.serve_forever()
