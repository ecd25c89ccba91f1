#!/usr/bin/python3
"""Quick self-test of tests/fakeslack.py (not part of the pytest suite).

    /usr/bin/python3 tests/fakeslack_selftest.py

Drives the fake with the `websockets` client and urllib, over plain
HTTP/WS and over TLS with a throw-away CA made with the openssl CLI.
Exits 0 and prints "ALL OK" when everything passed.
"""

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websockets
import websockets.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakeslack import FakeSlack  # noqa: E402

TOKEN = "xoxb-selftest-1234"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("  ok  " + what)


def off(fn, *args, **kwargs):
    """Run a (blocking) FakeSlack call off the client's event loop."""
    return asyncio.to_thread(fn, *args, **kwargs)


# --------------------------------------------------------------------------
# certificates
# --------------------------------------------------------------------------

def make_certs(d):
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr = os.path.join(d, "leaf.key"), os.path.join(d, "leaf.csr")
    cert, ext = os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.ext")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
        "-out", ca, "-days", "2", "-subj", "/CN=fakeslack test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=localhost")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
        "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


# --------------------------------------------------------------------------
# Web API client
# --------------------------------------------------------------------------

class Api:
    def __init__(self, fake, cafile=None):
        self.fake = fake
        self.ctx = ssl.create_default_context(cafile=cafile) if cafile else None

    def call(self, method="rtm.connect", token=TOKEN, post=False, timeout=5):
        """-> (status, headers, parsed-or-raw body)"""
        data = b"batch_presence_aware=1" if post else None
        req = urllib.request.Request(self.fake.api_url + method, data=data)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout, context=self.ctx)
            status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, e.headers, e.read()
        try:
            return status, headers, json.loads(raw)
        except ValueError:
            return status, headers, raw

    def connect_url(self):
        status, _, body = self.call()
        assert status == 200 and body["ok"], body
        return body["url"]


# --------------------------------------------------------------------------
# the scenarios
# --------------------------------------------------------------------------

async def recv_json(ws, timeout=3):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def ws_connect(url, cafile):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    return await websockets.connect(url, ssl=ctx, ping_interval=None,
                                    close_timeout=2, max_size=None,
                                    open_timeout=5)


async def expect_silence(ws, seconds):
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return True
    raise AssertionError("expected silence, got %r" % (msg,))


def test_api(fake, api, label):
    print("[%s] Web API" % label)
    status, headers, body = api.call()
    check(status == 200 and body["ok"], "rtm.connect ok")
    check(body["url"].startswith(("wss://localhost:" if fake.tls else
                                  "ws://127.0.0.1:") + str(fake.ws_port) + "/rtm/"),
          "url is %s" % body["url"])
    check(body["team"]["id"] == "T0FAKE" and body["self"]["id"] == "U0BOT",
          "team and self")
    check(headers["Content-Type"] == "application/json; charset=utf-8",
          "content type")
    status, _, body2 = api.call("rtm.start", post=True)
    check(body2["ok"] and body2["url"] != body["url"], "rtm.start (POST), fresh sid")
    call = fake.api_calls[-1]
    check(call["http_method"] == "POST" and call["body"] == b"batch_presence_aware=1"
          and call["headers"]["authorization"] == "Bearer " + TOKEN
          and call["status"] == 200 and not call["token_in_url"],
          "api call recorded")
    status, _, body = api.call(token="xoxb-wrong")
    check(status == 200 and body == {"ok": False, "error": "invalid_auth"},
          "wrong token -> invalid_auth")
    status, _, body = api.call(token=None)
    check(body == {"ok": False, "error": "not_authed"}, "no header -> not_authed")
    status, _, body = api.call("chat.postMessage")
    check(body == {"ok": False, "error": "unknown_method"}, "unknown_method")

    fake.queue_api_response(429, {"ok": False, "error": "ratelimited"},
                            {"Retry-After": "3"})
    status, headers, body = api.call()
    check(status == 429 and headers["Retry-After"] == "3"
          and body["error"] == "ratelimited", "queued 429 with Retry-After")
    check(api.call()[2]["ok"], "queue consumed, next call ok")
    fake.queue_api_response(502, "<html>bad gateway</html>",
                            {"Content-Type": "text/html"})
    status, headers, body = api.call()
    check(status == 502 and body == b"<html>bad gateway</html>"
          and headers["Content-Type"] == "text/html", "queued 502 html")

    fake.set_api_default(500, {"ok": False, "error": "internal_error"})
    check(api.call()[0] == 500 and api.call()[0] == 500, "sticky default")
    fake.clear_api_default()
    check(api.call()[0] == 200, "default cleared")

    fake.queue_api_close()
    try:
        api.call()
        raise AssertionError("expected a closed connection")
    except (ConnectionError, urllib.error.URLError, OSError) as e:
        check(True, "queue_api_close -> %s" % type(e).__name__)
    fake.queue_api_hang()
    t0 = time.monotonic()
    try:
        api.call(timeout=0.7)
        raise AssertionError("expected a timeout")
    except (socket.timeout, TimeoutError, urllib.error.URLError) as e:
        check(time.monotonic() - t0 >= 0.6, "queue_api_hang -> timeout (%s)"
              % type(e).__name__)
    check(fake.api_calls[-1]["status"] is None, "hung call recorded, no status")

    fake.set_token("xoxb-other")
    check(api.call()[2]["error"] == "invalid_auth", "set_token: old one refused")
    check(api.call(token="xoxb-other")[2]["ok"], "set_token: new one accepted")
    fake.set_token(TOKEN)


async def test_ws(fake, api, cafile, label):
    print("[%s] RTM WebSocket" % label)
    url = api.connect_url()
    ws = await ws_connect(url, cafile)
    check((await recv_json(ws)) == {"type": "hello"}, "hello first")
    s1 = await off(fake.wait_session, 1)
    check(s1.open and url.endswith(s1.sid), "session recorded")

    # a used sid is refused
    try:
        await ws_connect(url, cafile)
        raise AssertionError("reused sid accepted")
    except websockets.exceptions.InvalidStatusCode as e:
        check(e.status_code == 403, "reused sid -> 403")
    try:
        await ws_connect(url.rsplit("/", 1)[0] + "/bogus", cafile)
        raise AssertionError("unknown sid accepted")
    except websockets.exceptions.InvalidStatusCode as e:
        check(e.status_code == 403, "unknown sid -> 403")

    # ping / pong
    await ws.send(json.dumps({"id": 1, "type": "ping", "time": 12345}))
    check((await recv_json(ws)) == {"type": "pong", "reply_to": 1, "time": 12345},
          "pong with extra fields")

    # message ack + echo
    await ws.send(json.dumps({"id": 2, "type": "message", "channel": "C1",
                              "text": "hello world"}))
    ack, echo = await recv_json(ws), await recv_json(ws)
    check(ack["ok"] and ack["reply_to"] == 2 and ack["text"] == "hello world"
          and len(ack["ts"].split(".")[1]) == 6, "ack %s" % ack["ts"])
    check(echo == {"type": "message", "channel": "C1", "user": "U0BOT",
                   "text": "hello world", "ts": ack["ts"], "team": "T0FAKE"},
          "echo")
    await ws.send(json.dumps({"id": 3, "type": "message", "channel": "C1",
                              "text": "in thread", "thread_ts": ack["ts"],
                              "reply_broadcast": True}))
    ack2, echo2 = await recv_json(ws), await recv_json(ws)
    check(float(ack2["ts"]) > float(ack["ts"]) and echo2["thread_ts"] == ack["ts"]
          and echo2["subtype"] == "thread_broadcast", "thread broadcast echo")
    await ws.send(json.dumps({"id": 4, "type": "message", "channel": "CNOTFOUND",
                              "text": "x"}))
    check((await recv_json(ws)) == {"ok": False, "reply_to": 4, "error": {
        "code": -1, "msg": "channel_not_found"}}, "CNOTFOUND error")
    await ws.send(json.dumps({"id": 5, "type": "message", "channel": "C1"}))
    check((await recv_json(ws))["error"]["code"] == 2, "missing text error")
    await ws.send(json.dumps({"id": 6, "type": "presence_sub"}))
    check((await recv_json(ws))["error"]["code"] == 3, "unsupported type error")
    await ws.send(json.dumps({"type": "typing", "channel": "C1"}))
    await ws.send("not json {")
    await ws.send(b"\x00\x01binary")
    await ws.ping(b"abc")
    await off(fake.wait_for, lambda: len(s1.raw_received) >= 9 and s1.ws_pings >= 1)
    check(s1.raw_received[-1] == b"\x00\x01binary" and
          s1.received[-1]["type"] == "typing", "typing / junk / binary recorded")
    check(len(fake.messages()) == 4, "messages() collects message frames")

    # hold_acks
    fake.hold_acks(True)
    await ws.send(json.dumps({"id": 7, "type": "message", "channel": "C1",
                              "text": "held"}))
    await expect_silence(ws, 0.4)
    fake.hold_acks(False)
    check(s1.messages()[-1]["text"] == "held", "hold_acks: recorded, not acked")

    # injection
    await off(fake.emit, {"type": "message", "channel": "C2", "user": "U1",
                          "text": "from alice"})
    check((await recv_json(ws))["text"] == "from alice", "emit dict")
    await off(fake.emit, "{broken json")
    check((await ws.recv()) == "{broken json", "emit raw str")
    await off(fake.emit, b"\xff\xfe")
    check((await ws.recv()) == b"\xff\xfe", "emit bytes -> binary frame")
    await off(fake.error_event)
    check((await recv_json(ws)) == {"type": "error", "error": {
        "code": 1, "msg": "Socket URL has expired"}}, "error_event")
    await off(fake.goodbye)
    check((await recv_json(ws)) == {"type": "goodbye"}, "goodbye")
    await expect_silence(ws, 0.3)
    check(s1.open, "goodbye keeps the connection open")

    # emit_many: 10,000 in order
    n = 10000
    events = [{"type": "message", "channel": "C3", "user": "U1",
               "text": "m%d" % i, "ts": "%d.000000" % (1000000 + i)}
              for i in range(n)]
    t0 = time.monotonic()
    sender = asyncio.ensure_future(off(fake.emit_many, events))
    got = []
    while len(got) < n:
        got.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["text"])
    await sender
    dt = time.monotonic() - t0
    check(got == ["m%d" % i for i in range(n)],
          "emit_many: %d events in order, %.0f events/s" % (n, n / dt))
    check(n / dt >= 5000, "emit_many rate >= 5000/s")

    # stall "ignore": read and recorded, app pings unanswered, acks still sent
    fake.stall("ignore")
    await ws.send(json.dumps({"id": 10, "type": "ping"}))
    await expect_silence(ws, 0.5)
    check(s1.received[-1] == {"id": 10, "type": "ping"}, "ignore: ping recorded")
    await ws.send(json.dumps({"id": 11, "type": "message", "channel": "C1",
                              "text": "still acked"}))
    check((await recv_json(ws))["reply_to"] == 11, "ignore: messages still acked")
    await recv_json(ws)  # echo
    fake.stall(None)
    await ws.send(json.dumps({"id": 12, "type": "ping"}))
    check((await recv_json(ws))["reply_to"] == 12, "resumed: pong")

    # stall "noread": no app pong, no WebSocket PONG
    before = len(s1.raw_received)
    fake.stall("noread")
    await ws.send(json.dumps({"id": 13, "type": "ping"}))
    pong_waiter = await ws.ping(b"xyz")
    await expect_silence(ws, 0.8)
    check(not pong_waiter.done(), "noread: no WebSocket PONG")
    check(len(s1.raw_received) == before, "noread: nothing read")
    fake.stall(None)
    check((await recv_json(ws))["reply_to"] == 13, "noread resumed: app pong")
    await asyncio.wait_for(pong_waiter, 3)
    check(True, "noread resumed: WebSocket PONG")

    # close(1011)
    closer = asyncio.ensure_future(off(fake.close, 1011, "bye"))
    try:
        await asyncio.wait_for(ws.recv(), 3)
        raise AssertionError("expected close")
    except websockets.exceptions.ConnectionClosed as e:
        check(e.rcvd.code == 1011, "client sees close 1011")
    await closer
    await off(fake.wait_for, lambda: not s1.open)
    check(s1.close_code == 1011 and s1.closed_at, "session closed, code 1011")
    try:
        fake.emit({"type": "x"})
        raise AssertionError("emit without open session")
    except RuntimeError:
        check(True, "emit without open session -> RuntimeError")

    # drop
    ws = await ws_connect(api.connect_url(), cafile)
    await recv_json(ws)
    s2 = fake.session
    await off(fake.drop)
    try:
        await asyncio.wait_for(ws.recv(), 3)
        raise AssertionError("expected drop")
    except websockets.exceptions.ConnectionClosed as e:
        check(e.rcvd is None, "drop: no close frame (code %s)" % ws.close_code)
    await off(fake.wait_for, lambda: not s2.open)
    check(s2.close_code == 1006, "drop: session closed 1006")

    # client-initiated close
    ws = await ws_connect(api.connect_url(), cafile)
    await recv_json(ws)
    s3 = fake.session
    await ws.close(1000)
    await off(fake.wait_for, lambda: not s3.open)
    check(s3.close_code == 1000, "client close 1000 recorded")

    # noread, then the client gives up: session must be seen closed
    ws = await ws_connect(api.connect_url(), cafile)
    await recv_json(ws)
    s4 = fake.session
    fake.stall("noread")
    ws.transport.abort()
    await off(fake.wait_for, lambda: not s4.open, 3)
    check(s4.close_code == 1006, "noread + client hang-up -> closed 1006")

    # refuse_upgrade: 503, and the sid stays valid
    fake.refuse_upgrade(1)
    url = api.connect_url()
    try:
        await ws_connect(url, cafile)
        raise AssertionError("upgrade not refused")
    except websockets.exceptions.InvalidStatusCode as e:
        check(e.status_code == 503, "refuse_upgrade -> 503")
    ws = await ws_connect(url, cafile)
    await recv_json(ws)
    check(True, "next upgrade works")
    await ws.close()

    # hang_upgrade
    fake.hang_upgrade(1)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(ws_connect(api.connect_url(), cafile), 0.8)
        raise AssertionError("upgrade not hung")
    except asyncio.TimeoutError:
        check(time.monotonic() - t0 >= 0.7, "hang_upgrade -> client times out")
    check(fake.handshakes[-1]["result"] == "hang", "handshake recorded as hang")

    # hello delay / no hello
    fake.set_hello_delay(0.5)
    ws = await ws_connect(api.connect_url(), cafile)
    t0 = time.monotonic()
    await recv_json(ws)
    check(time.monotonic() - t0 >= 0.4, "hello delayed")
    await ws.close()
    fake.set_hello_delay(0)
    fake.set_hello(False)
    ws = await ws_connect(api.connect_url(), cafile)
    await expect_silence(ws, 0.4)
    check(True, "no hello")
    fake.set_hello(True)
    # leave this one open: stop() must close it cleanly
    return ws


def run_suite(label, cafile=None, certfile=None, keyfile=None):
    fake = FakeSlack(token=TOKEN, certfile=certfile, keyfile=keyfile).start()
    try:
        api = Api(fake, cafile)
        test_api(fake, api, label)
        ws = asyncio.run(_ws_and_stop(fake, api, cafile, label))
        check(ws.closed, "stop() closed the remaining client")
        check(all(not s.open for s in fake.sessions), "all sessions closed")
    finally:
        fake.stop()
    fake.stop()  # idempotent
    check(True, "stop() idempotent")


async def _ws_and_stop(fake, api, cafile, label):
    ws = await test_ws(fake, api, cafile, label)
    await off(fake.stop)
    try:
        await asyncio.wait_for(ws.recv(), 3)
    except websockets.exceptions.ConnectionClosed as e:
        check(e.rcvd is not None and e.rcvd.code == 1001, "stop(): client got 1001")
    return ws


def main():
    t0 = time.monotonic()
    run_suite("plain")
    with tempfile.TemporaryDirectory() as d:
        ca, cert, key = make_certs(d)
        run_suite("tls", cafile=ca, certfile=cert, keyfile=key)
    print("ALL OK (%.1fs)" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
