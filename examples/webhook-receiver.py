#!/usr/bin/env python3
"""A receiver of scim-sidecar's directory-sync events (Python 3 standard library only).

It checks each delivery the way the Standard Webhooks specification says: the signature
(HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}" under the key of a whsec_ secret),
in constant time, against every secret given (so a rotation is two secrets), and a timestamp
within five minutes. It then deduplicates on webhook-id (delivery is at least once) and
appends the event to a JSON-lines file. Replace `handle` with what your storefront does.

    WEBHOOK_SECRETS="whsec_..." python3 webhook-receiver.py --listen 127.0.0.1:9000 \
        --out events.jsonl

The first line printed is {"listening": "HOST:PORT"} (port 0 picks a free one).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECS = 300
MAX_BODY = 1 << 20


def keys_from(secrets):
    """The key bytes of each whsec_ secret."""
    keys = []
    for s in secrets.split():
        if not s.startswith("whsec_"):
            raise SystemExit("a secret starts with whsec_")
        keys.append(base64.b64decode(s[len("whsec_"):]))
    if not keys:
        raise SystemExit("set WEBHOOK_SECRETS to one or more whsec_ secrets")
    return keys


def verified(keys, msg_id, timestamp, body, signature_header):
    """Whether one of the header's v1 signatures is the HMAC of the message under a key."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - ts) > TOLERANCE_SECS:
        return False
    signed = f"{msg_id}.{ts}.".encode() + body
    expected = [
        base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()) for k in keys
    ]
    for sig in signature_header.split():
        version, _, value = sig.partition(",")
        if version != "v1":
            continue
        if any(hmac.compare_digest(value.encode(), e) for e in expected):
            return True
    return False


class Receiver(BaseHTTPRequestHandler):
    keys = []
    out = None
    seen = set()
    lock = threading.Lock()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if length < 0 or length > MAX_BODY:
            return self.answer(413)
        body = self.rfile.read(length)
        msg_id = self.headers.get("webhook-id", "")
        if not verified(
            self.keys,
            msg_id,
            self.headers.get("webhook-timestamp", ""),
            body,
            self.headers.get("webhook-signature", ""),
        ):
            return self.answer(401)
        with Receiver.lock:
            if msg_id not in Receiver.seen:  # else: a retry of an event already handled
                handle(json.loads(body))
                Receiver.seen.add(msg_id)
        return self.answer(204)

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def handle(event):
    """What the storefront does with an event: here, append it to the output file."""
    with open(Receiver.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:9000")
    p.add_argument("--out", default="events.jsonl")
    a = p.parse_args()
    Receiver.keys = keys_from(os.environ.get("WEBHOOK_SECRETS", ""))
    Receiver.out = a.out
    host, _, port = a.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Receiver)
    print(json.dumps({"listening": "%s:%d" % server.server_address[:2]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
