#!/usr/bin/python3
"""Self-test of tests/fakeslack.py: the fake Slack the other tests rely on.

`make check` runs it through pytest (tests/pytest-tap.sh) as three tests:
plain HTTP/WS, the fake workspace and its Web API methods, and TLS with a
throw-away CA made with the openssl CLI.  It drives the fake with the
`websockets` client and urllib, not with slackd.  By hand, printing every
check:

    /usr/bin/python3 tests/fakeslack_selftest.py    # ends with "ALL OK"
"""

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import websockets
import websockets.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakeslack import FakeSlack, RawText  # noqa: E402

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


def scenario_history(fake, api, label):
    print("[%s] channel history" % label)
    ts = ["1700000000.%06d" % i for i in range(5)]
    for i, t in enumerate(ts):
        fake.add_message("CHIST", "h%d" % i, ts=t, deliver=False)
    fake.add_message("CHIST", "reply", ts="1700000000.000010",
                     thread_ts=ts[1], deliver=False)

    def get(method, **q):
        return api.call(method + "?" + urllib.parse.urlencode(q))[2]
    b = get("conversations.history", channel="CHIST", oldest=ts[0], limit=2)
    check([m["text"] for m in b["messages"]] == ["h4", "h3"] and
          b["has_more"] and b["response_metadata"]["next_cursor"],
          "history: newest first after oldest, limit, has_more")
    b = get("conversations.history", channel="CHIST", oldest=ts[0], limit=2,
            cursor=b["response_metadata"]["next_cursor"])
    check([m["text"] for m in b["messages"]] == ["h2", "h1"] and
          not b["has_more"] and not b["response_metadata"]["next_cursor"],
          "history: the cursor continues with older ones, to the end")
    check(b["messages"][1]["reply_count"] == 1 and
          b["messages"][1]["latest_reply"] == "1700000000.000010",
          "history: a parent shows its replies, which are left out")
    b = get("conversations.history", channel="CHIST", oldest=ts[1],
            latest=ts[3], inclusive="true")
    check([m["text"] for m in b["messages"]] == ["h3", "h2", "h1"] and
          not b["has_more"] and "channel" not in b["messages"][0],
          "history: inclusive bounds, no channel member")
    b = get("conversations.replies", channel="CHIST", ts=ts[1])
    check([m["text"] for m in b["messages"]] == ["h1", "reply"],
          "replies: the parent, then its replies")
    check(get("conversations.history", channel="CNOPE")["error"] ==
          "channel_not_found", "history: unknown channel")


def scenario_api(fake, api, label):
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
    status, _, body = api.call("chat.noSuchMethod")
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


async def scenario_ws(fake, api, cafile, label):
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
    await off(fake.emit, RawText("caf\u00e9 \u2713".encode()))
    check((await ws.recv()) == "caf\u00e9 \u2713",
          "emit RawText -> text frame of those bytes")
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
        scenario_api(fake, api, label)
        scenario_history(fake, api, label)
        ws = asyncio.run(_ws_and_stop(fake, api, cafile, label))
        check(ws.closed, "stop() closed the remaining client")
        check(all(not s.open for s in fake.sessions), "all sessions closed")
    finally:
        fake.stop()
    fake.stop()  # idempotent
    check(True, "stop() idempotent")


async def _ws_and_stop(fake, api, cafile, label):
    ws = await scenario_ws(fake, api, cafile, label)
    await off(fake.stop)
    try:
        await asyncio.wait_for(ws.recv(), 3)
    except websockets.exceptions.ConnectionClosed as e:
        check(e.rcvd is not None and e.rcvd.code == 1001, "stop(): client got 1001")
    return ws


# --------------------------------------------------------------------------
# fake workspace and the Web API methods beyond rtm.connect
# --------------------------------------------------------------------------

class Web:
    """Web API calls with parameters as query string, form, JSON or
    multipart body.  -> (status, headers, parsed body)"""

    def __init__(self, fake):
        self.fake = fake

    def __call__(self, method, params=None, how="get", token=TOKEN,
                 timeout=5):
        params = params or {}
        url = self.fake.api_url + method
        data, ctype = None, None
        if how == "get":
            if params:
                url += "?" + urllib.parse.urlencode(params)
        elif how == "form":
            data = urllib.parse.urlencode(params).encode()
            ctype = "application/x-www-form-urlencoded"
        elif how == "json":
            data = json.dumps(params).encode()
            ctype = "application/json; charset=utf-8"
        elif how == "multipart":
            boundary = "----fakeslackselftest"
            parts = []
            for k, v in params.items():
                parts.append("--%s\r\nContent-Disposition: form-data; "
                             "name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v))
            data = ("".join(parts) + "--%s--\r\n" % boundary).encode()
            ctype = "multipart/form-data; boundary=" + boundary
        req = urllib.request.Request(url, data=data)
        if ctype:
            req.add_header("Content-Type", ctype)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
            status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, e.headers, e.read()
        return status, headers, json.loads(raw)

    def ok(self, method, params=None, how="get"):
        status, _, body = self(method, params, how)
        assert status == 200 and body.get("ok"), (method, params, body)
        return body

    def err(self, method, params=None, how="get", token=TOKEN):
        status, _, body = self(method, params, how, token)
        assert status == 200 and body.get("ok") is False, (method, body)
        return body["error"]

    def paginate(self, method, key, params, hows=("get",)):
        """Every page; -> (ids, number of pages, slowest page in s)."""
        ids, pages, slowest, cursor = [], 0, 0.0, ""
        while True:
            p = dict(params)
            if cursor:
                p["cursor"] = cursor
            t0 = time.monotonic()
            body = self.ok(method, p, hows[pages % len(hows)])
            slowest = max(slowest, time.monotonic() - t0)
            pages += 1
            ids += [o["id"] for o in body[key]]
            cursor = body["response_metadata"]["next_cursor"]
            if not cursor:
                return ids, pages, slowest


def scenario_workspace_default(fake, web):
    print("[workspace] default data, auth, params")
    body = web.ok("conversations.list")
    check([c["id"] for c in body["channels"]] ==
          ["C0GENERAL", "C0WELCOME", "C0RANDOM"] and
          [c["name"] for c in body["channels"]] ==
          ["general", "welcome-test", "random"] and
          body["response_metadata"]["next_cursor"] == "",
          "default channels general, welcome-test, random")
    gen = body["channels"][0]
    check(gen["is_channel"] and not gen["is_private"] and gen["is_member"]
          and gen["name_normalized"] == "general" and
          isinstance(gen["created"], int), "channel object shape")
    body = web.ok("users.list")
    check([u["id"] for u in body["members"]] == ["U0ALICE", "U0BOB", "U0BOT"]
          and body["members"][2]["is_bot"] and
          body["members"][0]["name"] == "alice" and
          body["members"][0]["team_id"] == "T0FAKE", "default users")
    for m in ("conversations.list", "users.list", "conversations.open",
              "conversations.info", "users.info", "chat.postMessage",
              "auth.test", "team.info"):
        assert web.err(m, token="xoxb-wrong") == "invalid_auth", m
        assert web.err(m, token=None) == "not_authed", m
    check(True, "every method: invalid_auth / not_authed")
    check(web.err("no.suchMethod") == "unknown_method", "unknown_method")
    a = web.ok("auth.test")
    check(a["user_id"] == "U0BOT" and a["team_id"] == "T0FAKE", "auth.test")
    check(web.ok("team.info")["team"]["id"] == "T0FAKE", "team.info")
    for how in ("get", "form", "json", "multipart"):
        web.ok("users.info", {"user": "U0BOB", "include_locale": "true"}, how)
        rec = fake.api_calls[-1]
        assert rec["params"] == {"user": "U0BOB", "include_locale": "true"}, \
            (how, rec["params"])
        assert rec["status"] == 200
    check(True, "params from query, form, JSON and multipart recorded")
    st, _, body = web("users.info", {"user": "U0BOB"}, "get")
    check(fake.api_calls[-1]["params"] == {"user": "U0BOB"}, "params on GET")
    req = urllib.request.Request(fake.api_url + "users.info", data=b"{oops",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + TOKEN})
    body = json.loads(urllib.request.urlopen(req, timeout=5).read())
    check(body == {"ok": False, "error": "invalid_json"}, "bad JSON body")


def scenario_workspace_big(fake, web):
    print("[workspace] 30,000 users, 5,000 channels: pagination")
    t0 = time.monotonic()
    fake.set_workspace(users=30000, channels=5000, private=200, ims=300)
    dt = time.monotonic() - t0
    check(dt < 2.0, "set_workspace(30000 users, 5000+200 channels, 300 IMs) "
          "in %.2fs" % dt)
    want_users = ["U%08d" % i for i in range(1, 30001)] + ["U0BOT"]
    check(fake.user_ids() == want_users, "user_ids() in creation order")
    t0 = time.monotonic()
    ids, pages, slowest = web.paginate("users.list", "members",
                                       {"limit": 1000},
                                       ("get", "form", "json"))
    check(ids == want_users and len(set(ids)) == len(ids) and pages == 31,
          "users.list limit=1000: all %d ids once, in order, %d pages "
          "(%.2fs, slowest page %.3fs)" % (len(ids), pages,
                                            time.monotonic() - t0, slowest))
    check(slowest < 0.5, "pages served fast")
    ids, pages, slowest = web.paginate("users.list", "members",
                                       {"limit": 200})
    check(ids == want_users and pages == 151,
          "users.list limit=200: complete, 151 pages (slowest %.3fs)"
          % slowest)
    check(len(web.ok("users.list")["members"]) == 100, "default limit 100")
    check(len(web.ok("users.list", {"limit": 5000})["members"]) == 1000,
          "limit 5000 -> 1000")
    check(web.err("users.list", {"limit": "lots"}) == "invalid_limit",
          "limit not a number -> invalid_limit")
    u = web.ok("users.info", {"user": "U00000050"})["user"]
    u1 = web.ok("users.info", {"user": "U00000001"})["user"]
    check(u["deleted"] is True and u1["deleted"] is False and
          u1["name"] == "user1" and u1["real_name"] == "User 1" and
          u1["profile"] == {"display_name": "u1", "real_name": "User 1"} and
          u1["is_bot"] is False, "generated user fields, every 50th deleted")

    want_pub = ["C0GENERAL", "C0WELCOME", "C0RANDOM"] + \
        ["C%08d" % i for i in range(1, 5001)]
    want_priv = ["G%08d" % i for i in range(1, 201)]
    want_im = ["D%08d" % i for i in range(1, 301)]
    ids, pages, slowest = web.paginate("conversations.list", "channels",
                                       {"limit": 1000})
    check(ids == want_pub and pages == 6, "conversations.list default types: "
          "public only, complete, in order")
    ids, pages, slowest = web.paginate(
        "conversations.list", "channels",
        {"limit": 200, "types": "public_channel,private_channel,im"},
        ("get", "form", "json"))
    check(ids == want_pub + want_priv + want_im and len(set(ids)) == len(ids),
          "types=public,private,im limit=200: all %d once, in order "
          "(slowest %.3fs)" % (len(ids), slowest))
    check(ids == fake.conversation_ids("public_channel,private_channel,im"),
          "conversation_ids() agrees")
    body = web.ok("conversations.list", {"types": "im", "limit": 1000})
    im = body["channels"][0]
    check([c["id"] for c in body["channels"]] == want_im and
          im["is_im"] and im["user"] == "U00000001" and "name" not in im and
          body["channels"][49]["is_user_deleted"] is True and
          body["response_metadata"]["next_cursor"] == "",
          "types=im: 300 IMs, shaped like Slack's (user, no name)")
    g = web.ok("conversations.list", {"types": "private_channel",
                                      "limit": 1})["channels"][0]
    check(g["id"] == "G00000001" and g["name"] == "private-1" and
          g["is_private"] and g["is_group"], "private channel")
    check(web.err("conversations.list", {"types": "public_channel,bogus"})
          == "invalid_types", "unknown type -> invalid_types")
    fake.archive_channel("C00000002", emit=False)
    ids, _, _ = web.paginate("conversations.list", "channels",
                             {"limit": 1000, "exclude_archived": "true"})
    check(ids == [c for c in want_pub if c != "C00000002"],
          "exclude_archived=true skips the archived channel")
    ids, _, _ = web.paginate("conversations.list", "channels",
                             {"limit": 1000})
    check(ids == want_pub, "without it the archived channel is listed")
    fake.unarchive_channel("C00000002", emit=False)

    print("[workspace] cursors")
    body = web.ok("users.list", {"limit": 3})
    ucur = body["response_metadata"]["next_cursor"]
    ccur = web.ok("conversations.list", {"limit": 3})[
        "response_metadata"]["next_cursor"]
    for bad in ("garbage!!", "not-base64-at-all", "dXNlcjp4", "Y29udjow",
                base64.b64encode(b"\xff\xfe").decode(), ucur):
        assert web.err("conversations.list", {"cursor": bad}) == \
            "invalid_cursor", bad
    check(True, "conversations.list: invalid / foreign cursors -> "
          "invalid_cursor")
    check(web.err("users.list", {"cursor": ccur}) == "invalid_cursor" and
          web.err("users.list", {"cursor": "%%%"}, "form") ==
          "invalid_cursor", "users.list: invalid_cursor")
    check(web.ok("users.list", {"cursor": ucur, "limit": 2})["members"][0]
          ["id"] == "U00000004", "a valid cursor continues")
    # changes between pages: nothing twice, nothing skipped but the removed
    page1 = web.ok("conversations.list", {"limit": 4})
    fake.delete_channel("C00000001", emit=False)     # on page 1 already
    fake.delete_channel("C00000002", emit=False)     # not yet listed
    fake.add_channel("C0NEWONE", "new-one")
    rest, _, _ = web.paginate("conversations.list", "channels",
                              {"limit": 1000, "cursor": page1[
                                  "response_metadata"]["next_cursor"]})
    got = [c["id"] for c in page1["channels"]] + rest
    check(got == [c for c in want_pub if c != "C00000002"] + ["C0NEWONE"],
          "cursors survive adds and deletes between pages")


def scenario_workspace_open_info(fake, web):
    print("[workspace] conversations.open, *.info")
    b = web.ok("conversations.open", {"users": "U00000001"})
    check(b["channel"] == {"id": "D00000001"} and b.get("already_open"),
          "existing IM of a generated user")
    b1 = web.ok("conversations.open", {"users": "U00000400"}, "form")
    b2 = web.ok("conversations.open", {"users": ["U00000400"]}, "json")
    check(b1["channel"]["id"] == b2["channel"]["id"] == "D00000301" and
          "already_open" not in b1 and b2["already_open"],
          "new IM %s, stable on the second open" % b1["channel"]["id"])
    ims = web.ok("conversations.list", {"types": "im",
                                        "limit": 1000})["channels"]
    check(ims[-1]["id"] == "D00000301" and ims[-1]["user"] == "U00000400",
          "the new IM is listed (types=im)")
    check(web.ok("conversations.open", {"users": "U00000400",
                                        "return_im": "true"})["channel"]
          ["user"] == "U00000400", "return_im gives the object")
    check(web.err("conversations.open", {"users": "UNOBODY"}) ==
          "user_not_found", "unknown user -> user_not_found")
    check(web.err("conversations.open") == "users_list_not_supplied",
          "no users -> users_list_not_supplied")
    c = web.ok("conversations.info", {"channel": "C0GENERAL"})["channel"]
    check(c["name"] == "general" and c["is_general"], "conversations.info")
    check(web.ok("conversations.info", {"channel": "D00000301"}, "json")
          ["channel"]["user"] == "U00000400", "conversations.info of an IM")
    check(web.err("conversations.info", {"channel": "CNOPE"}) ==
          "channel_not_found", "conversations.info: channel_not_found")
    check(web.ok("users.info", {"user": "U0BOT"})["user"]["is_bot"],
          "users.info of the bot")
    check(web.err("users.info", {"user": "UNOPE"}) == "user_not_found",
          "users.info: user_not_found")


async def scenario_workspace_ws(fake, web):
    print("[workspace] chat.postMessage and events over RTM")
    call = lambda *a, **k: off(web.ok, *a, **k)            # noqa: E731
    fail = lambda *a, **k: off(web.err, *a, **k)           # noqa: E731
    st, _, body = await off(web, "rtm.connect")
    ws = await ws_connect(body["url"], None)
    await recv_json(ws)                                    # hello
    await off(fake.wait_session, len(fake.sessions))
    blocks = [{"type": "section", "text": {"type": "mrkdwn",
                                           "text": "*bold* ünï"}}]
    n0 = len(fake.posts)
    r = await call("chat.postMessage", {"channel": "C0GENERAL", "text": "hi",
                                        "blocks": blocks,
                                        "unfurl_links": False}, "json")
    ev = await recv_json(ws)
    check(r["channel"] == "C0GENERAL" and r["message"]["blocks"] == blocks
          and r["message"]["user"] == "U0BOT" and r["message"]["text"] == "hi"
          and r["message"]["ts"] == r["ts"], "postMessage, JSON body, blocks")
    check(ev["type"] == "message" and ev["channel"] == "C0GENERAL" and
          ev["ts"] == r["ts"] and ev["blocks"] == blocks and
          ev["user"] == "U0BOT", "message event reached the RTM client")
    p = fake.posts[-1]
    check(p["blocks"] == blocks and p["channel_id"] == "C0GENERAL" and
          p["unfurl_links"] is False and p["ts"] == r["ts"],
          "fake.posts records it")
    r2 = await call("chat.postMessage", {"channel": "#random", "text": "x",
                                         "blocks": json.dumps(blocks),
                                         "attachments": json.dumps(
                                             [{"fallback": "f"}])}, "form")
    ev = await recv_json(ws)
    check(r2["channel"] == "C0RANDOM" and ev["channel"] == "C0RANDOM" and
          fake.posts[-1]["blocks"] == blocks and
          fake.posts[-1]["attachments"] == [{"fallback": "f"}] and
          float(r2["ts"]) > float(r["ts"]),
          "postMessage, form body, blocks as JSON string, #name")
    r3 = await call("chat.postMessage", {"channel": "general",
                                         "text": "reply", "thread_ts": r["ts"],
                                         "reply_broadcast": "true"}, "form")
    ev = await recv_json(ws)
    check(r3["channel"] == "C0GENERAL" and ev["thread_ts"] == r["ts"] and
          ev["subtype"] == "thread_broadcast", "bare name, thread broadcast")
    await ws.send(json.dumps({"id": 1, "type": "message",
                              "channel": "C0GENERAL", "text": "rtm"}))
    ack = await recv_json(ws)
    await recv_json(ws)                                    # its echo
    r4 = await call("chat.postMessage", {"channel": "C0GENERAL",
                                         "text": "after"})
    await recv_json(ws)
    check(float(r3["ts"]) < float(ack["ts"]) < float(r4["ts"]),
          "ts shared with the RTM counter")
    r5 = await call("chat.postMessage", {"channel": "U00000500",
                                         "text": "dm"}, "multipart")
    await recv_json(ws)
    check(r5["channel"].startswith("D") and fake.get_conversation(
        r5["channel"])["user"] == "U00000500", "user id -> its IM (multipart)")
    n1 = len(fake.posts)
    errs = [await fail("chat.postMessage", {"channel": "C0GENERAL"}),
            await fail("chat.postMessage", {"channel": "C0GENERAL",
                                            "text": ""}, "json"),
            await fail("chat.postMessage", {"channel": "CNOPE", "text": "x"}),
            await fail("chat.postMessage", {"text": "x"}, "json"),
            await fail("chat.postMessage", {"channel": "C0GENERAL",
                                            "blocks": "not json"}, "form"),
            await fail("chat.postMessage", {"channel": "C0GENERAL",
                                            "blocks": {"type": "section"}},
                       "json"),
            await fail("chat.postMessage", {"channel": "C0GENERAL",
                                            "blocks": '"a string"'}, "form"),
            await fail("chat.postMessage", {"channel": "C0GENERAL",
                                            "text": "x" * 40001}, "json")]
    check(errs == ["no_text", "no_text", "channel_not_found",
                   "channel_not_found", "invalid_blocks", "invalid_blocks",
                   "invalid_blocks", "msg_too_long"],
          "errors: %s" % ", ".join(errs))
    check(len(fake.posts) == n1 and n1 - n0 == 5, "failed posts not recorded")
    await expect_silence(ws, 0.2)

    # concurrent posts from threads: all recorded, ts unique
    def poster(k):
        for i in range(20):
            web.ok("chat.postMessage", {"channel": "C0RANDOM",
                                        "text": "t%d-%d" % (k, i)}, "json")
    await asyncio.gather(*[off(poster, k) for k in range(6)])
    tss = [p["ts"] for p in fake.posts[n1:]]
    evs = [await recv_json(ws) for _ in range(120)]
    check(len(tss) == 120 and len(set(tss)) == 120 and
          sorted(e["ts"] for e in evs) == sorted(tss),
          "120 concurrent posts: recorded, unique ts, all events sent")

    # workspace changes -> RTM events
    await off(fake.rename_channel, "C0RANDOM", "random-renamed")
    ev = await recv_json(ws)
    created = fake.get_conversation("C0RANDOM")["created"]
    check(ev == {"type": "channel_rename", "channel": {
        "id": "C0RANDOM", "name": "random-renamed", "created": created}},
        "rename_channel -> channel_rename event")
    info = (await call("conversations.info", {"channel": "C0RANDOM"}))[
        "channel"]
    check(info["name"] == "random-renamed" and
          info["previous_names"] == ["random"], "renamed in the data")
    check((await call("chat.postMessage", {"channel": "#random-renamed",
                                           "text": "x"}))["channel"] ==
          "C0RANDOM" and await fail("chat.postMessage", {
              "channel": "#random", "text": "x"}) == "channel_not_found",
          "postMessage follows the new name")
    await recv_json(ws)
    await off(fake.rename_channel, "G00000001", "secret")
    ev = await recv_json(ws)
    check(ev["type"] == "group_rename" and ev["channel"]["name"] == "secret",
          "private channel -> group_rename")
    await off(fake.delete_channel, "C00000003")
    check((await recv_json(ws)) == {"type": "channel_deleted",
                                    "channel": "C00000003"},
          "delete_channel -> channel_deleted event")
    check(await fail("conversations.info", {"channel": "C00000003"}) ==
          "channel_not_found", "deleted channel gone")
    await off(fake.archive_channel, "C00000004")
    ev = await recv_json(ws)
    check(ev["type"] == "channel_archive" and ev["channel"] == "C00000004"
          and await fail("chat.postMessage", {"channel": "C00000004",
                                              "text": "x"}) == "is_archived",
          "archive_channel -> channel_archive, posts refused")
    await off(fake.add_user, "U0CAROL", "carol", real_name="Carol C")
    ev = await recv_json(ws)
    check(ev["type"] == "team_join" and ev["user"]["id"] == "U0CAROL" and
          ev["user"]["real_name"] == "Carol C" and
          ev["user"]["profile"]["real_name"] == "Carol C" and
          ev["user"]["team_id"] == "T0FAKE", "add_user -> team_join")
    check((await call("users.info", {"user": "U0CAROL"}))["user"]["name"]
          == "carol", "new user in users.info")
    await off(fake.change_user, "U00000001", real_name="Renamed One",
              display_name="r1")
    ev = await recv_json(ws)
    u = (await call("users.info", {"user": "U00000001"}))["user"]
    check(ev["type"] == "user_change" and ev["user"]["real_name"] ==
          "Renamed One" and u["profile"]["display_name"] == "r1" and
          u["real_name"] == "Renamed One",
          "change_user -> user_change, users.info updated")
    await off(fake.change_user, "U00000002", emit=False, deleted=True)
    check((await call("conversations.info", {"channel": "D00000002"}))[
        "channel"]["is_user_deleted"] is True, "IM follows a deleted user")
    await expect_silence(ws, 0.2)
    sess = fake.session
    await ws.close()
    await off(fake.wait_for, lambda: not sess.open)
    check(fake.rename_channel("C0WELCOME", "welcome-2") is None and
          fake.get_conversation("C0WELCOME")["name"] == "welcome-2",
          "no open session: data changed, nothing emitted")


def scenario_rate_limits(fake, web):
    print("[workspace] rate limiting")
    fake.set_workspace(users=450)
    fake.queue_api_passthrough("users.list")
    fake.queue_api_response(429, {"ok": False, "error": "ratelimited"},
                            {"Retry-After": "1"}, method="users.list")
    fake.queue_api_passthrough("users.list")
    fake.queue_api_response(429, {"ok": False, "error": "ratelimited"},
                            {"Retry-After": "2"}, method="users.list")
    ids, cursor, statuses = [], "", []
    while True:
        st, hdrs, body = web("users.list", {"limit": 200, "cursor": cursor})
        statuses.append(st)
        if st == 429:
            statuses.append(hdrs["Retry-After"])
            continue
        ids += [u["id"] for u in body["members"]]
        cursor = body["response_metadata"]["next_cursor"]
        if not cursor:
            break
    check(statuses == [200, 429, "1", 200, 429, "2", 200] and
          ids == fake.user_ids(), "passthrough, 429, passthrough, 429: page "
          "2 and 3 rate limited once each, pagination complete")
    faults = [c["fault"] for c in fake.api_calls[-5:]]
    check(faults == ["passthrough", "response", "passthrough", "response",
                     None], "api_calls record the faults")
    fake.set_api_default(500, {"ok": False}, method="users.info")
    fake.queue_api_passthrough("users.info")
    check(web("users.info", {"user": "U00000001"})[0] == 200 and
          web("users.info", {"user": "U00000001"})[0] == 500,
          "passthrough beats a sticky default, once")
    fake.clear_api_default()

    fake.set_tier_limit("users.info", 3, window=1.0)
    got = [web("users.info", {"user": "U00000001"}) for _ in range(5)]
    sts = [g[0] for g in got]
    check(sts == [200, 200, 200, 429, 429] and got[3][1]["Retry-After"] == "1"
          and got[3][2] == {"ok": False, "error": "ratelimited"},
          "set_tier_limit(3/window): 4th and 5th call 429 + Retry-After")
    check(fake.api_calls[-1]["fault"] == "tier_limit" and
          fake.api_calls[-1]["status"] == 429, "recorded as tier_limit")
    check(web("users.list")[0] == 200, "other methods not limited")
    time.sleep(1.05)
    check(web("users.info", {"user": "U00000001"})[0] == 200,
          "window slid: allowed again")
    fake.set_tier_limit("team.info", 2)
    sts = [web("team.info") for _ in range(3)]
    ra = int(sts[2][1]["Retry-After"])
    check([s[0] for s in sts] == [200, 200, 429] and 59 <= ra <= 60,
          "per minute: Retry-After %d s until the window frees" % ra)
    fake.set_tier_limit("team.info", None)
    check(web("team.info")[0] == 200, "limit removed")
    fake.clear_tier_limits()


def run_workspace_suite():
    fake = FakeSlack(token=TOKEN).start()
    try:
        web = Web(fake)
        scenario_workspace_default(fake, web)
        scenario_workspace_big(fake, web)
        scenario_workspace_open_info(fake, web)
        asyncio.run(scenario_workspace_ws(fake, web))
        scenario_rate_limits(fake, web)
    finally:
        fake.stop()


# --------------------------------------------------------------------------
# Socket Mode
# --------------------------------------------------------------------------

APP = "xapp-selftest-5678"


async def sm_open(api, cafile=None):
    status, _, body = api.call("apps.connections.open", token=APP, post=True)
    assert status == 200 and body["ok"], body
    ws = await ws_connect(body["url"], cafile)
    hello = await recv_json(ws)
    return ws, hello


async def scenario_socket_mode(fake, api):
    print("[socket mode]")
    _, _, b = api.call("apps.connections.open", token=APP)
    check(b == {"ok": False, "error": "invalid_arguments"}, "GET refused")
    _, _, b = api.call("apps.connections.open", token=TOKEN, post=True)
    check(b["error"] == "not_allowed_token_type", "bot token refused")
    _, _, b = api.call("apps.connections.open", token="xapp-wrong",
                       post=True)
    check(b["error"] == "invalid_auth", "wrong app token refused")
    _, _, b = api.call("apps.connections.open", token=None, post=True)
    check(b["error"] == "not_authed", "no token: not_authed")
    status, _, b = api.call("apps.connections.open", token=APP, post=True)
    check("/link/?ticket=" in b["url"] and "app_id=A0FAKE" in b["url"],
          "a wss-style link URL")
    ws1 = await ws_connect(b["url"], None)
    hello = await recv_json(ws1)
    check(hello["type"] == "hello" and hello["num_connections"] == 1 and
          hello["connection_info"]["app_id"] == "A0FAKE" and
          hello["debug_info"]["host"].startswith("applink-"),
          "hello with num_connections, connection_info, debug_info")
    try:
        await ws_connect(b["url"], None)
        check(False, "a used ticket is refused")
    except websockets.exceptions.InvalidStatusCode as e:
        check(e.status_code == 403, "a used ticket is refused (403)")
    ws2, hello2 = await sm_open(api)
    check(hello2["num_connections"] == 2, "second hello counts 2")
    # events: each to one connection, in envelopes
    await off(fake.emit_many, [{"type": "message", "text": "e%d" % i}
                               for i in range(10)])
    got = {1: [], 2: []}
    for n, ws in ((1, ws1), (2, ws2)):
        while True:
            try:
                env = await recv_json(ws, 0.5)
            except asyncio.TimeoutError:
                break
            got[n].append(env)
            await ws.send(json.dumps({"envelope_id": env["envelope_id"]}))
    envs = got[1] + got[2]
    check(len(envs) == 10 and got[1] and got[2],
          "10 envelopes, spread over both connections")
    check(all(e["type"] == "events_api" and
              e["payload"]["type"] == "event_callback" and
              e["payload"]["event_id"] and e["retry_attempt"] == 0
              for e in envs), "events_api envelopes with event_id")
    check(sorted(e["payload"]["event"]["text"] for e in envs) ==
          sorted("e%d" % i for i in range(10)), "the events inside")
    await asyncio.sleep(0.2)
    check(not fake.sm_unacked(), "acks recorded")
    check(all(a["delay"] is not None and a["delay"] >= 0
              for r in fake.sm_envelopes() for a in r["acks"]),
          "with their delay after the envelope was written")
    check(len(fake.sm_late_acks(0.0)) == 10 and
          not fake.sm_late_acks(10), "sm_late_acks(limit) filters on it")
    # an unacked envelope is retried on the other connection
    fake.sm_retry_after = 0.3
    await off(fake.emit, {"type": "message", "text": "retry me"},
              fake.sm_sessions()[0])
    first = await recv_json(ws1)
    check(first["payload"]["event"]["text"] == "retry me", "delivered")
    again = await recv_json(ws2, 2)
    check(again["envelope_id"] == first["envelope_id"] and
          again["retry_attempt"] == 1 and again["retry_reason"] == "timeout",
          "retried on the other connection with retry_attempt 1")
    await ws2.send(json.dumps({"envelope_id": again["envelope_id"]}))
    await asyncio.sleep(0.1)
    rec = [r for r in fake.sm_envelopes()
           if r["envelope_id"] == first["envelope_id"]][0]
    check(len(rec["deliveries"]) == 2 and len(rec["acks"]) == 1 and
          rec["acks"][0]["session"] == fake.sm_sessions()[1].index,
          "its record: two deliveries, one ack")
    # slash command with a response payload
    eid = await off(fake.sm_slash_command, "/x", "y", True,
                    fake.sm_sessions()[1])
    env = await recv_json(ws2)
    check(env["type"] == "slash_commands" and env["envelope_id"] == eid and
          env["accepts_response_payload"] is True and
          env["payload"]["command"] == "/x", "slash_commands envelope")
    await ws2.send(json.dumps({"envelope_id": eid,
                               "payload": {"text": "ok"}}))
    await asyncio.sleep(0.1)
    rec = fake.sm_envelopes("slash_commands")[-1]
    check(rec["acks"][0]["payload"] == {"text": "ok"}, "ack payload kept")
    # disconnect
    await off(fake.sm_disconnect, "warning", fake.sm_sessions()[0], 0.2)
    d = await recv_json(ws1)
    check(d["type"] == "disconnect" and d["reason"] == "warning",
          "disconnect warning")
    await asyncio.sleep(0.5)
    check(not fake.sm_sessions()[0].open, "closed after close_after")
    # WebSocket PINGs from the fake
    fake.sm_ping_interval = 0.2
    ws3, _ = await sm_open(api)
    t = time.monotonic()
    while time.monotonic() - t < 0.8:   # the client answers while reading
        try:
            await asyncio.wait_for(ws3.recv(), 0.1)
        except asyncio.TimeoutError:
            pass
    check(ws3.open, "the fake sends WebSocket PINGs; the connection stays")
    # at most 10: the eleventh gets too_many_websockets
    extra = []
    while len([s for s in fake.sm_sessions() if s.open]) < 10:
        extra.append((await sm_open(api))[0])
    status, _, b = api.call("apps.connections.open", token=APP, post=True)
    ws11 = await ws_connect(b["url"], None)
    m = await recv_json(ws11)
    check(m == {"type": "disconnect", "reason": "too_many_websockets",
                "debug_info": {"host": m["debug_info"]["host"]}},
          "the 11th connection: disconnect too_many_websockets")
    for w in [ws1, ws2, ws3, ws11] + extra:
        await w.close()


def run_socket_mode_suite():
    fake = FakeSlack(token=TOKEN, app_token=APP).start()
    try:
        asyncio.run(scenario_socket_mode(fake, Api(fake)))
    finally:
        fake.stop()


# --------------------------------------------------------------------------
# the tests pytest collects (make check), and main() for a run by hand
# --------------------------------------------------------------------------

def test_plain_http_and_websocket():
    run_suite("plain")


def test_workspace_and_web_api():
    run_workspace_suite()


def test_tls(tmp_path):
    ca, cert, key = make_certs(str(tmp_path))
    run_suite("tls", cafile=ca, certfile=cert, keyfile=key)


def test_socket_mode():
    run_socket_mode_suite()


def main():
    t0 = time.monotonic()
    run_suite("plain")
    run_workspace_suite()
    run_socket_mode_suite()
    with tempfile.TemporaryDirectory() as d:
        ca, cert, key = make_certs(d)
        run_suite("tls", cafile=ca, certfile=cert, keyfile=key)
    print("ALL OK (%.1fs)" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
