#!/usr/bin/python3
"""fakeslack -- an independent fake of Slack's Web API and RTM WebSocket API.

Used by slackd's integration tests (pytest) and by the demo.  It is written
against Debian's python3 (3.11) and python3-websockets 10.4 (legacy asyncio
API) and is deliberately independent of libwebsockets, so that the daemon is
tested against a second implementation of the protocol.

Architecture
------------
``FakeSlack`` runs its own asyncio event loop in a daemon thread.  Tests are
synchronous and call its public methods from the main thread; every public
method is thread-safe: recorded data is guarded by a lock and every action on
a connection is executed on the loop thread (``call_soon_threadsafe``).

Two listeners on 127.0.0.1, ephemeral ports:

* an HTTP/1.1 server for the Web API (``/api/<method>``), hand written on
  ``asyncio.start_server``; one request per connection (``Connection: close``);
* the RTM WebSocket server (``/rtm/<session-id>``), ``websockets.serve``.

Both use TLS when a certificate is given; the advertised host is then
``localhost`` (instead of ``127.0.0.1``).

Run ``/usr/bin/python3 tests/fakeslack.py --help`` for the command line
(foreground server, optionally with a demo stream of events).
"""

import argparse
import asyncio
import concurrent.futures
import http
import inspect
import json
import logging
import os
import re
import secrets
import select
import signal
import ssl
import sys
import threading
import time
import urllib.parse

import websockets
import websockets.exceptions
from websockets.frames import OP_BINARY, OP_PING, OP_TEXT, Frame
from websockets.legacy.server import WebSocketServerProtocol

__all__ = ["FakeSlack", "Session"]

DEFAULT_TOKEN = "xoxb-fake-0000"
DEFAULT_TEAM = {"id": "T0FAKE", "name": "Fake Workspace", "domain": "fake"}
DEFAULT_SELF = {"id": "U0BOT", "name": "slackd-bot"}

# The websockets library logs handshake failures and closed connections at
# INFO/WARNING; tests deliberately provoke those, so keep it quiet.
logging.getLogger("websockets").setLevel(logging.ERROR)

_JSON_CT = "application/json; charset=utf-8"
_MAX_BODY = 16 * 1024 * 1024      # largest accepted HTTP request body
_WS_MAX_SIZE = 16 * 1024 * 1024   # largest accepted WebSocket message
_RTM_PATH = re.compile(r"^/rtm/([A-Za-z0-9_-]+)$")
_STOP = object()                  # sentinel that ends a session's writer task
_BATCH_FRAMES = 256                # frames coalesced into one socket write
_BATCH_BYTES = 64 * 1024


def _dumps(obj):
    """Compact JSON, as Slack sends it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _norm_method(method):
    """rtm.start is answered like rtm.connect; faults for one match both."""
    return "rtm.connect" if method == "rtm.start" else method


# --------------------------------------------------------------------------
# Session: one accepted RTM WebSocket connection
# --------------------------------------------------------------------------

class Session:
    """One accepted RTM WebSocket connection.

    Plain attributes (read them freely from any thread):
      index          1-based position in FakeSlack.sessions
      sid            the session id from the URL (/rtm/<sid>)
      path           the full request path of the handshake
      request_headers  {lowercased-name: value} of the handshake
      open           True until the connection is closed for whatever reason
      connected_at   time.monotonic() of the accepted handshake
      closed_at      time.monotonic() when it was seen closed, or None
      close_code     code received from the client, else the one we sent,
                     else 1006 (abnormal closure: no close frame at all)
      close_reason   the reason that goes with close_code
      close_code_sent / close_code_received   each side separately (or None)
      hello_sent     True once {"type":"hello"} was written
      ws_pings       number of WebSocket-level PING frames received
      stall_mode     None, "ignore" or "noread"

    Lists (each access returns a copy taken under the lock):
      received       parsed JSON objects received from the client
      received_timed [(time.monotonic(), obj), ...] for the same objects
      raw_received   every data frame as received (str or bytes)
      sent           what the fake sent: dicts for JSON it built or was given
                     as dicts, str/bytes for raw frames
      ws_ping_times  time.monotonic() of each WebSocket-level PING
    """

    def __init__(self, fake, index, ws, sid, path, headers):
        self._fake = fake
        self._lock = fake._lock
        self._ws = ws
        self.index = index
        self.sid = sid
        self.path = path
        self.request_headers = headers
        self.open = True
        self.connected_at = time.monotonic()
        self.closed_at = None
        self.close_code = None
        self.close_reason = None
        self.close_code_sent = None
        self.close_code_received = None
        self.hello_expected = True
        self.hello_sent = False
        self.ws_pings = 0
        self.stall_mode = None
        self._received = []
        self._raw_received = []
        self._sent = []
        self._ws_ping_times = []
        # Outgoing frames go through one FIFO and one writer task, so that
        # everything (replies, emits, close) leaves in the order it was queued.
        self._queue = asyncio.Queue()
        self._writer_task = None
        self._noread_watch = None

    # -- thread-safe views ------------------------------------------------
    @property
    def received(self):
        with self._lock:
            return [obj for _, obj in self._received]

    @property
    def received_timed(self):
        with self._lock:
            return list(self._received)

    @property
    def raw_received(self):
        with self._lock:
            return list(self._raw_received)

    @property
    def sent(self):
        with self._lock:
            return list(self._sent)

    @property
    def ws_ping_times(self):
        with self._lock:
            return list(self._ws_ping_times)

    def frames(self, type=None):
        """Received JSON objects, optionally only those of a given type."""
        return [f for f in self.received if type is None or f.get("type") == type]

    def messages(self):
        return self.frames("message")

    def pings(self):
        return self.frames("ping")

    def __repr__(self):
        state = "open" if self.open else "closed code=%s" % self.close_code
        return "<Session #%d sid=%s %s>" % (self.index, self.sid, state)


# --------------------------------------------------------------------------
# WebSocket protocol subclass: hooks the handshake, PING frames and reading
# --------------------------------------------------------------------------

class _RtmProtocol(WebSocketServerProtocol):
    def __init__(self, *args, fake, **kwargs):
        super().__init__(*args, **kwargs)
        self.fake = fake
        self.session = None
        self.sid = None
        self._noread = False
        self._stash = []       # data delivered while "noread" (kept in order)

    async def process_request(self, path, request_headers):
        return await self.fake._ws_process_request(self, path, request_headers)

    async def read_frame(self, max_size):
        frame = await super().read_frame(max_size)
        if frame.opcode == OP_PING and self.session is not None:
            with self.fake._lock:
                self.session.ws_pings += 1
                self.session._ws_ping_times.append(time.monotonic())
        return frame

    def data_received(self, data):
        # While "noread", nothing may reach the WebSocket parser.  The
        # transport is paused, but asyncio's StreamReader flow control might
        # resume it; keep whatever still arrives and pause again.
        if self._noread:
            self._stash.append(data)
            self.transport.pause_reading()
            return
        super().data_received(data)

    def set_noread(self, on):
        if on:
            self._noread = True
            self.transport.pause_reading()
        elif self._noread:
            self._noread = False
            stash, self._stash = self._stash, []
            for data in stash:
                super().data_received(data)
            self.transport.resume_reading()


# --------------------------------------------------------------------------
# FakeSlack
# --------------------------------------------------------------------------

class FakeSlack:
    """Fake Slack Web API + RTM server in a background thread.

    >>> with FakeSlack() as fake:
    ...     run_daemon(api_url=fake.api_url, token=fake.token)
    ...     s = fake.wait_session(1)
    ...     fake.emit({"type": "message", "channel": "C1", "text": "hi"})
    """

    def __init__(self, token=DEFAULT_TOKEN, certfile=None, keyfile=None,
                 team=None, self_user=None, log=None):
        self._lock = threading.RLock()
        self._token = token
        self.certfile = certfile
        self.keyfile = keyfile
        self.tls = certfile is not None
        self.host = "localhost" if self.tls else "127.0.0.1"
        self.team = dict(team or DEFAULT_TEAM)
        self.self_user = dict(self_user or DEFAULT_SELF)
        self._log_fn = log            # optional callable(str) for a trace

        # recorded data
        self._api_calls = []
        self._sessions = []
        self._handshakes = []
        self._sids = {}               # sid -> "issued" | "used"
        # fault injection / behaviour switches
        self._api_faults = []         # FIFO of one-shot faults
        self._api_defaults = {}       # method -> sticky fault
        self._hello = True
        self._hello_delay = 0.0
        self._hold_acks = False
        self._refuse_upgrades = 0
        self._hang_upgrades = 0
        self._last_ts_us = 0

        # loop / thread state
        self._loop = None
        self._thread = None
        self._loop_thread_id = None
        self._started = threading.Event()
        self._start_error = None
        self._state = "new"           # new -> running -> stopped
        self._state_lock = threading.Lock()
        self._api_port = None
        self._ws_port = None
        # objects that live on the loop
        self._http_server = None
        self._ws_server = None
        self._http_tasks = set()
        self._hanging_ws = set()
        self._closing = None          # asyncio.Event set by shutdown
        self._demo_task = None

    # ------------------------------------------------------------------
    # life cycle
    # ------------------------------------------------------------------
    def start(self):
        """Start the loop thread; return once both listeners are bound."""
        with self._state_lock:
            if self._state != "new":
                raise RuntimeError("FakeSlack can only be started once")
            self._state = "running"
        self._thread = threading.Thread(target=self._thread_main,
                                        name="fakeslack", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            with self._state_lock:
                self._state = "stopped"
            raise self._start_error
        return self

    def stop(self):
        """Close everything and join the thread.  Idempotent."""
        with self._state_lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
        try:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            fut.result(timeout=15)
        except Exception as exc:  # never let teardown raise in a test
            self._trace("shutdown problem: %r" % (exc,))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self):
        if self._state == "new":
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _thread_main(self):
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._loop_thread_id = threading.get_ident()
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._loop_exception_handler)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            # Cancel whatever is left (writer tasks, hung handlers, ...).
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(
                    asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    @staticmethod
    def _loop_exception_handler(loop, context):
        # Connection resets, TLS failures and closed WebSockets are the
        # normal life of a fault-injecting server; don't print tracebacks.
        exc = context.get("exception")
        benign = (ConnectionError, ssl.SSLError, OSError, EOFError,
                  asyncio.CancelledError, asyncio.IncompleteReadError,
                  websockets.exceptions.ConnectionClosed)
        if isinstance(exc, benign):
            return
        if exc is None and "SSL" in context.get("message", ""):
            return
        loop.default_exception_handler(context)

    def _ssl_context(self):
        if not self.tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    async def _startup(self):
        self._closing = asyncio.Event()
        ctx = self._ssl_context()
        self._http_server = await asyncio.start_server(
            self._http_connection, "127.0.0.1", 0, ssl=ctx,
            limit=64 * 1024)
        self._api_port = self._http_server.sockets[0].getsockname()[1]
        self._ws_server = await websockets.serve(
            self._ws_handler, "127.0.0.1", 0, ssl=ctx,
            create_protocol=_ws_protocol_factory(self),
            ping_interval=None,       # only the client drives pings
            ping_timeout=None,
            close_timeout=2,
            max_size=_WS_MAX_SIZE,
            compression=None)
        self._ws_port = list(self._ws_server.sockets)[0].getsockname()[1]

    async def _shutdown(self):
        self._closing.set()
        if self._demo_task is not None:
            self._demo_task.cancel()
        self._http_server.close()
        # Handshakes that were told to hang: abort them so that the
        # websockets server does not wait for them forever.
        for proto in list(self._hanging_ws):
            proto.transport.abort()
        # Open sessions: a polite 1001 close for those that can answer,
        # then abort whatever is still around after a short grace period.
        with self._lock:
            open_sessions = [s for s in self._sessions if s.open]
        for s in open_sessions:
            if s.stall_mode == "noread":
                s._ws.transport.abort()
        closers = [asyncio.ensure_future(s._ws.close(1001, "server shutdown"))
                   for s in open_sessions if s.stall_mode != "noread"]
        if closers:
            await asyncio.wait(closers, timeout=1.0)
        for s in open_sessions:
            if s._ws.transport is not None:
                s._ws.transport.abort()
        self._ws_server.close()
        try:
            await asyncio.wait_for(self._ws_server.wait_closed(), 5)
        except asyncio.TimeoutError:
            pass
        try:
            await asyncio.wait_for(self._http_server.wait_closed(), 2)
        except asyncio.TimeoutError:
            pass
        if self._http_tasks:
            await asyncio.wait(list(self._http_tasks), timeout=2)
            for task in list(self._http_tasks):
                task.cancel()

    # ------------------------------------------------------------------
    # running things on the loop
    # ------------------------------------------------------------------
    def _require_running(self):
        if self._state != "running":
            raise RuntimeError("FakeSlack is not running")

    def _on_loop(self, fn, *args):
        """Run fn(*args) on the loop thread and return its result."""
        self._require_running()
        if threading.get_ident() == self._loop_thread_id:
            return fn(*args)
        fut = concurrent.futures.Future()

        def call():
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)
        self._loop.call_soon_threadsafe(call)
        return fut.result(timeout=30)

    def _trace(self, msg):
        if self._log_fn is not None:
            try:
                self._log_fn(msg)
            except Exception:
                pass

    # ------------------------------------------------------------------
    # properties
    # ------------------------------------------------------------------
    @property
    def token(self):
        with self._lock:
            return self._token

    @property
    def api_port(self):
        return self._api_port

    @property
    def ws_port(self):
        return self._ws_port

    @property
    def api_url(self):
        scheme = "https" if self.tls else "http"
        return "%s://%s:%d/api/" % (scheme, self.host, self._api_port)

    @property
    def ws_base_url(self):
        scheme = "wss" if self.tls else "ws"
        return "%s://%s:%d/rtm/" % (scheme, self.host, self._ws_port)

    @property
    def api_calls(self):
        with self._lock:
            return [dict(c) for c in self._api_calls]

    @property
    def handshakes(self):
        """Every WebSocket handshake attempt: {t, path, headers, result}
        with result "ok", "refused" (503), "hang" or "forbidden" (403)."""
        with self._lock:
            return [dict(h) for h in self._handshakes]

    @property
    def sessions(self):
        with self._lock:
            return list(self._sessions)

    @property
    def session(self):
        """The newest session (open or not), or None."""
        with self._lock:
            return self._sessions[-1] if self._sessions else None

    @property
    def open_sessions(self):
        with self._lock:
            return [s for s in self._sessions if s.open]

    def messages(self):
        """Every type=="message" frame received, across all sessions."""
        return [f for s in self.sessions for f in s.messages()]

    def frames(self, type=None):
        """Every received JSON frame (optionally of one type), all sessions."""
        return [f for s in self.sessions for f in s.frames(type)]

    # ------------------------------------------------------------------
    # configuration switches
    # ------------------------------------------------------------------
    def set_token(self, token):
        with self._lock:
            self._token = token

    def set_hello(self, enabled):
        """Whether new sessions get {"type":"hello"}."""
        with self._lock:
            self._hello = bool(enabled)

    def set_hello_delay(self, seconds):
        """Send hello only this many seconds after the upgrade (new sessions)."""
        with self._lock:
            self._hello = True
            self._hello_delay = max(0.0, float(seconds))

    def hold_acks(self, enabled=True):
        """While on, chat messages are recorded but neither acked nor echoed
        (those held are never acked later)."""
        with self._lock:
            self._hold_acks = bool(enabled)

    def refuse_upgrade(self, n=1):
        """The next n WebSocket handshakes get HTTP 503."""
        with self._lock:
            self._refuse_upgrades += int(n)

    def hang_upgrade(self, n=1):
        """The next n WebSocket handshakes are read but never answered."""
        with self._lock:
            self._hang_upgrades += int(n)

    # ------------------------------------------------------------------
    # Web API fault injection
    # ------------------------------------------------------------------
    def queue_api_response(self, status=200, body=None, headers=None,
                           method="rtm.connect"):
        """Answer the next call of `method` ("*" = any) with this response.
        body: dict/list -> JSON; str/bytes -> sent as is; None -> empty."""
        with self._lock:
            self._api_faults.append(_fault("response", method, status, body,
                                           headers))

    def queue_api_hang(self, method="rtm.connect"):
        """The next call of `method` is read and never answered."""
        with self._lock:
            self._api_faults.append(_fault("hang", method))

    def queue_api_close(self, method="rtm.connect"):
        """The next call of `method` is read, then the TCP connection closed."""
        with self._lock:
            self._api_faults.append(_fault("close", method))

    def set_api_default(self, status=200, body=None, headers=None,
                        method="rtm.connect"):
        """Like queue_api_response but for every call until
        clear_api_default() (queued one-shot faults still come first)."""
        with self._lock:
            self._api_defaults[method] = _fault("response", method, status,
                                                body, headers)

    def clear_api_default(self, method=None):
        """Forget the sticky response of `method`, or all of them."""
        with self._lock:
            if method is None:
                self._api_defaults.clear()
            else:
                self._api_defaults.pop(method, None)

    def clear_api_queue(self):
        """Drop one-shot faults that were not consumed."""
        with self._lock:
            self._api_faults.clear()

    def _take_api_fault(self, method):
        m = _norm_method(method)
        with self._lock:
            for i, f in enumerate(self._api_faults):
                if f["method"] == "*" or _norm_method(f["method"]) == m:
                    return self._api_faults.pop(i), "queued"
            for key, f in self._api_defaults.items():
                if key != "*" and _norm_method(key) == m:
                    return f, "default"
            if "*" in self._api_defaults:
                return self._api_defaults["*"], "default"
        return None, None

    # ------------------------------------------------------------------
    # HTTP server (Web API)
    # ------------------------------------------------------------------
    async def _http_connection(self, reader, writer):
        task = asyncio.current_task()
        self._http_tasks.add(task)
        try:
            await self._http_serve_one(reader, writer)
        except (ConnectionError, OSError, ssl.SSLError,
                asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, UnicodeDecodeError):
            pass                      # broken / garbage request: just close
        except asyncio.CancelledError:
            pass
        finally:
            self._http_tasks.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    async def _http_serve_one(self, reader, writer):
        line = await reader.readline()
        if not line.strip():
            return
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await self._http_write(writer, 400, {}, b"bad request\n",
                                   "text/plain")
            return
        verb, target, _version = parts
        headers = {}
        while True:
            hline = await reader.readline()
            if not hline:
                raise ConnectionResetError("EOF in headers")
            hline = hline.decode("latin-1").rstrip("\r\n")
            if not hline:
                break
            name, _, value = hline.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = (headers[name] + ", " + value) if name in headers \
                else value
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length < 0 or length > _MAX_BODY:
                raise ValueError("bad content-length")
            body = await reader.readexactly(length)

        path = urllib.parse.urlsplit(target).path
        method = path[len("/api/"):] if path.startswith("/api/") else None
        token = self.token
        call = {
            "t": time.monotonic(),
            "method": method,
            "http_method": verb,
            "path": target,
            "headers": headers,
            "body": body,
            "status": None,
            "fault": None,
            "token_in_url": bool(token) and (token in target
                                             or token in urllib.parse.unquote(target)),
            "token_in_body": bool(token) and token.encode() in body,
        }

        fault, origin = (None, None)
        if method is not None:
            fault, origin = self._take_api_fault(method)
        if fault is not None:
            call["fault"] = fault["kind"] if origin == "queued" \
                else "default"
        if fault is not None and fault["kind"] == "hang":
            self._record_api(call)
            self._trace("api %s %s: hanging" % (verb, target))
            await self._http_hang(reader)
            return
        if fault is not None and fault["kind"] == "close":
            self._record_api(call)
            self._trace("api %s %s: closing" % (verb, target))
            return

        if fault is not None:
            status, extra, payload = _render_fault(fault)
            ctype = None
        else:
            status, extra = 200, {}
            ctype = _JSON_CT
            if verb not in ("GET", "POST"):
                status, obj = 405, {"ok": False, "error": "method_not_allowed"}
            elif method is None:
                status, obj = 404, {"ok": False, "error": "not_found"}
            elif _norm_method(method) == "rtm.connect":
                obj = self._rtm_connect(headers)
            else:
                obj = {"ok": False, "error": "unknown_method"}
            payload = json.dumps(obj).encode()
        call["status"] = status
        self._record_api(call)
        self._trace("api %s %s -> %d" % (verb, target, status))
        await self._http_write(writer, status, extra, payload, ctype)

    def _record_api(self, call):
        with self._lock:
            self._api_calls.append(call)

    async def _http_hang(self, reader):
        """Never answer: keep the connection until the client gives up or
        the fake stops (reading the rest only to notice EOF)."""
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while True:
                eof = asyncio.ensure_future(reader.read(65536))
                done, _ = await asyncio.wait({eof, closing},
                                             return_when=asyncio.FIRST_COMPLETED)
                if closing in done:
                    eof.cancel()
                    return
                if not eof.result():
                    return
        finally:
            closing.cancel()

    async def _http_write(self, writer, status, extra_headers, payload,
                          content_type=_JSON_CT):
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        hdrs = {}
        if content_type is not None:
            hdrs["content-type"] = ("Content-Type", content_type)
        for k, v in (extra_headers or {}).items():
            hdrs[k.lower()] = (k, str(v))
        # framing headers are always ours
        for k in ("content-length", "connection", "transfer-encoding"):
            hdrs.pop(k, None)
        hdrs.setdefault("content-type", ("Content-Type", _JSON_CT))
        lines = ["HTTP/1.1 %d %s" % (status, reason),
                 "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                          time.gmtime()),
                 "Server: fakeslack"]
        lines += ["%s: %s" % kv for kv in hdrs.values()]
        lines += ["Content-Length: %d" % len(payload), "Connection: close"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                     + payload)
        await writer.drain()

    def _rtm_connect(self, headers):
        auth = headers.get("authorization")
        with self._lock:
            token = self._token
            if auth is None:
                return {"ok": False, "error": "not_authed"}
            if auth != "Bearer " + token:
                return {"ok": False, "error": "invalid_auth"}
            sid = secrets.token_urlsafe(16)
            self._sids[sid] = "issued"
        return {"ok": True, "url": self.ws_base_url + sid,
                "team": dict(self.team), "self": dict(self.self_user)}

    # ------------------------------------------------------------------
    # WebSocket server (RTM)
    # ------------------------------------------------------------------
    async def _ws_process_request(self, proto, path, headers):
        rec = {"t": time.monotonic(), "path": path,
               "headers": {k.lower(): v for k, v in headers.raw_items()},
               "result": None}
        with self._lock:
            self._handshakes.append(rec)
            if self._hang_upgrades > 0:
                self._hang_upgrades -= 1
                rec["result"] = "hang"
            elif self._refuse_upgrades > 0:
                self._refuse_upgrades -= 1
                rec["result"] = "refused"
        if rec["result"] == "hang":
            self._trace("ws %s: hanging the upgrade" % path)
            self._hanging_ws.add(proto)
            try:
                await proto.wait_closed()   # until the client or stop() ends it
            finally:
                self._hanging_ws.discard(proto)
            return (http.HTTPStatus.SERVICE_UNAVAILABLE, [], b"")
        if rec["result"] == "refused":
            self._trace("ws %s: refused (503)" % path)
            return (http.HTTPStatus.SERVICE_UNAVAILABLE,
                    [("Content-Type", "text/plain")], b"Service Unavailable\n")
        m = _RTM_PATH.match(urllib.parse.urlsplit(path).path)
        with self._lock:
            sid = m.group(1) if m else None
            if sid is None or self._sids.get(sid) != "issued":
                rec["result"] = "forbidden"
            else:
                self._sids[sid] = "used"
                rec["result"] = "ok"
        if rec["result"] == "forbidden":
            self._trace("ws %s: forbidden (unknown or used sid)" % path)
            return (http.HTTPStatus.FORBIDDEN,
                    [("Content-Type", "text/plain")], b"invalid session\n")
        proto.sid = sid
        return None

    async def _ws_handler(self, ws):
        headers = {k.lower(): v for k, v in ws.request_headers.raw_items()}
        with self._lock:
            sess = Session(self, len(self._sessions) + 1, ws, ws.sid, ws.path,
                           headers)
            self._sessions.append(sess)
            hello, delay = self._hello, self._hello_delay
            sess.hello_expected = hello
        ws.session = sess
        self._trace("ws session #%d connected (sid %s)" % (sess.index, sess.sid))
        sess._writer_task = asyncio.ensure_future(self._ws_writer(sess))
        if hello:
            if delay > 0:
                self._loop.call_later(delay, self._send_hello, sess)
            else:
                self._send_hello(sess)
        try:
            while True:
                try:
                    data = await ws.recv()
                except websockets.exceptions.ConnectionClosed:
                    break
                self._ws_frame(sess, data)
        finally:
            self._mark_closed(sess)
            sess._queue.put_nowait((_STOP,))

    def _send_hello(self, sess):
        if sess.open:
            self._enqueue(sess, {"type": "hello"}, hello=True)

    def _mark_closed(self, sess):
        ws = sess._ws
        with self._lock:
            if not sess.open:
                return
            sess.open = False
            sess.closed_at = time.monotonic()
            rcvd, sent = ws.close_rcvd, ws.close_sent
            sess.close_code_received = rcvd.code if rcvd else None
            sess.close_code_sent = sent.code if sent else None
            if rcvd is not None:
                sess.close_code, sess.close_reason = rcvd.code, rcvd.reason
            elif sent is not None:
                sess.close_code, sess.close_reason = sent.code, sent.reason
            else:
                sess.close_code, sess.close_reason = 1006, ""
        if sess._noread_watch is not None:
            sess._noread_watch.cancel()
        self._trace("ws session #%d closed (code %s)" % (sess.index,
                                                         sess.close_code))

    def _ws_frame(self, sess, data):
        """Handle one data frame from the client (runs on the loop)."""
        with self._lock:
            sess._raw_received.append(data)
        if isinstance(data, bytes):
            return                    # binary frames: recorded, ignored
        try:
            obj = json.loads(data)
        except ValueError:
            return                    # not JSON: recorded, ignored
        if not isinstance(obj, dict):
            return
        with self._lock:
            sess._received.append((time.monotonic(), obj))
            hold = self._hold_acks
        typ = obj.get("type")
        mid = obj.get("id")
        if typ == "ping":
            if sess.stall_mode is None:
                pong = {k: v for k, v in obj.items() if k not in ("id", "type")}
                reply = {"type": "pong", "reply_to": mid}
                reply.update(pong)
                self._enqueue(sess, reply)
        elif typ == "message":
            if hold:
                return
            text = obj.get("text")
            channel = obj.get("channel")
            if channel == "CNOTFOUND":
                if mid is not None:
                    self._enqueue(sess, {"ok": False, "reply_to": mid, "error": {
                        "code": -1, "msg": "channel_not_found"}})
                return
            if text is None or text == "":
                if mid is not None:
                    self._enqueue(sess, {"ok": False, "reply_to": mid, "error": {
                        "code": 2, "msg": "message text is missing"}})
                return
            ts = self.next_ts()
            if mid is not None:
                self._enqueue(sess, {"ok": True, "reply_to": mid, "ts": ts,
                                     "text": text})
            echo = {"type": "message", "channel": channel,
                    "user": self.self_user["id"], "text": text, "ts": ts,
                    "team": self.team["id"]}
            if obj.get("thread_ts") is not None:
                echo["thread_ts"] = obj["thread_ts"]
                if obj.get("reply_broadcast"):
                    echo["subtype"] = "thread_broadcast"
            self._enqueue(sess, echo)
        elif typ == "typing":
            pass
        elif mid is not None:
            self._enqueue(sess, {"ok": False, "reply_to": mid, "error": {
                "code": 3, "msg": "unsupported type"}})

    def next_ts(self):
        """A Slack-style ts "<unix>.<6 digits>", strictly increasing."""
        with self._lock:
            us = max(int(time.time() * 1e6), self._last_ts_us + 1)
            self._last_ts_us = us
        return "%d.%06d" % divmod(us, 1_000_000)

    # -- outgoing frames --------------------------------------------------
    def _enqueue(self, sess, obj, done=None, hello=False):
        """Queue a frame for the session's writer (loop thread only).
        obj: dict -> compact JSON text; str -> text as is; bytes -> binary.
        `done` (concurrent Future) gets True once written, False if the
        connection was closed first."""
        if not sess.open:
            if done is not None and not done.done():
                done.set_result(False)
            return
        if isinstance(obj, (bytes, bytearray)):
            payload = bytes(obj)
        elif isinstance(obj, str):
            payload = obj
        else:
            payload = _dumps(obj)
        sess._queue.put_nowait(("send", payload, obj, done, hello))

    async def _ws_writer(self, sess):
        """The only coroutine that writes a session's frames: keeps order.
        Runs of queued frames are written in one go (one syscall instead of
        one per frame), which is what makes emit_many() fast."""
        ws = sess._ws
        pending = None
        while True:
            item = pending if pending is not None else await sess._queue.get()
            pending = None
            kind = item[0]
            if kind is _STOP:
                break
            if kind == "send":
                batch, size = [item], len(item[1])
                while size < _BATCH_BYTES and len(batch) < _BATCH_FRAMES:
                    try:
                        nxt = sess._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if nxt[0] != "send":
                        pending = nxt
                        break
                    batch.append(nxt)
                    size += len(nxt[1])
                ok = await self._write_batch(ws, batch)
                with self._lock:
                    if ok:
                        for _, _, obj, _, hello in batch:
                            sess._sent.append(obj)
                            if hello:
                                sess.hello_sent = True
                for it in batch:
                    _resolve(it[3], ok)
            elif kind == "close":
                _, code, reason, done = item
                try:
                    await ws.close(code, reason)
                except Exception:
                    pass
                _resolve(done, True)
        # fail whatever is still queued
        leftovers = [pending] if pending is not None else []
        while not sess._queue.empty():
            leftovers.append(sess._queue.get_nowait())
        for it in leftovers:
            if it[0] in ("send", "close"):
                _resolve(it[3], False)

    @staticmethod
    async def _write_batch(ws, batch):
        """Write data frames; False if the connection is (being) closed."""
        try:
            if len(batch) == 1:
                await ws.send(batch[0][1])
                return True
            await ws.ensure_open()
            chunks = []
            for it in batch:
                payload = it[1]
                if isinstance(payload, str):
                    frame = Frame(OP_TEXT, payload.encode("utf-8"))
                else:
                    frame = Frame(OP_BINARY, payload)
                chunks.append(frame.serialize(mask=False,
                                              extensions=ws.extensions))
            ws.transport.write(b"".join(chunks))
            await ws.drain()
            return True
        except websockets.exceptions.ConnectionClosed:
            return False

    def _target(self, session):
        if session is not None:
            return session
        with self._lock:
            for s in reversed(self._sessions):
                if s.open:
                    return s
        raise RuntimeError("no open RTM session")

    def _wait(self, fut, wait, timeout, what):
        if not wait or threading.get_ident() == self._loop_thread_id:
            return None
        try:
            return fut.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError("%s: not written within %ss (client not "
                               "reading?)" % (what, timeout)) from None

    # ------------------------------------------------------------------
    # injection on a session (default: newest open one)
    # ------------------------------------------------------------------
    def emit(self, event, session=None, wait=True, timeout=10):
        """Send one frame: dict -> JSON text, str -> raw text, bytes ->
        binary.  With wait=True block until it was handed to the socket and
        return True (False if the session closed first)."""
        self._require_running()
        sess = self._target(session)
        done = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._enqueue, sess, event, done)
        return self._wait(done, wait, timeout, "emit")

    def emit_many(self, events, session=None, wait=True, timeout=60):
        """Send a list of frames in order (encoded here, in the caller's
        thread, then queued in one go).  Returns like emit()."""
        self._require_running()
        sess = self._target(session)
        items = []
        for ev in events:
            if isinstance(ev, (bytes, bytearray)):
                items.append((bytes(ev), ev))
            elif isinstance(ev, str):
                items.append((ev, ev))
            else:
                items.append((_dumps(ev), ev))
        done = concurrent.futures.Future()

        def enqueue_all():
            if not sess.open:
                _resolve(done, False)
                return
            for i, (payload, obj) in enumerate(items):
                sess._queue.put_nowait(
                    ("send", payload, obj,
                     done if i == len(items) - 1 else None, False))
            if not items:
                _resolve(done, True)
        self._loop.call_soon_threadsafe(enqueue_all)
        return self._wait(done, wait, timeout, "emit_many")

    def broadcast(self, event):
        """Send one frame to every open session (no waiting)."""
        for s in self.open_sessions:
            self.emit(event, session=s, wait=False)

    def goodbye(self, session=None, close_after=None, wait=True):
        """Send {"type":"goodbye"}; the connection stays open (Slack closes
        it a bit later: pass close_after=seconds to close with 1000 then)."""
        sess = self._target(session)
        r = self.emit({"type": "goodbye"}, session=sess, wait=wait)
        if close_after is not None:
            def later():
                self._loop.call_later(close_after, self._enqueue_close,
                                      sess, 1000, "", None)
            self._loop.call_soon_threadsafe(later)
        return r

    def error_event(self, code=1, msg="Socket URL has expired", session=None,
                    wait=True):
        """Send {"type":"error","error":{"code":code,"msg":msg}}."""
        return self.emit({"type": "error", "error": {"code": code, "msg": msg}},
                         session=session, wait=wait)

    def _enqueue_close(self, sess, code, reason, done):
        if not sess.open:
            _resolve(done, False)
            return
        sess._queue.put_nowait(("close", code, reason, done))

    def close(self, code=1011, reason="", session=None, wait=True, timeout=10):
        """Close handshake with `code` (after frames already queued).  With
        wait=True block until the connection is closed (the library waits
        up to 2 s for the client's close frame, then drops the TCP)."""
        self._require_running()
        sess = self._target(session)
        done = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._enqueue_close, sess, code,
                                        reason, done)
        return self._wait(done, wait, timeout, "close")

    def drop(self, session=None):
        """Abort the TCP connection at once: no close frame (client sees an
        abnormal closure).  Anything still in user-space buffers is lost."""
        sess = self._target(session)

        def abort():
            if sess._ws.transport is not None:
                sess._ws.transport.abort()
        self._on_loop(abort)

    def stall(self, mode, session=None):
        """mode "ignore": read and record frames but answer no app-level
        ping; "noread": stop reading the socket (no WebSocket PONG either,
        kernel buffers fill); None: back to normal."""
        if mode not in (None, "ignore", "noread"):
            raise ValueError("stall mode must be None, 'ignore' or 'noread'")
        sess = self._target(session) if mode is not None or session \
            is not None else self._stalled_or_newest()
        if sess is None:
            return

        def apply():
            if not sess.open:
                return
            sess.stall_mode = mode
            sess._ws.set_noread(mode == "noread")
            if mode == "noread" and sess._noread_watch is None:
                sess._noread_watch = asyncio.ensure_future(
                    self._watch_hangup(sess))
            elif mode != "noread" and sess._noread_watch is not None:
                sess._noread_watch.cancel()
                sess._noread_watch = None
        self._on_loop(apply)

    def _stalled_or_newest(self):
        with self._lock:
            for s in reversed(self._sessions):
                if s.open and s.stall_mode is not None:
                    return s
            for s in reversed(self._sessions):
                if s.open:
                    return s
        return None

    async def _watch_hangup(self, sess):
        """While "noread", nothing is read, so EOF would go unnoticed; poll
        the socket for a peer hang-up (POLLRDHUP) and then abort, so that
        the session is seen closed (code 1006)."""
        rdhup = getattr(select, "POLLRDHUP", 0)
        sock = sess._ws.transport.get_extra_info("socket")
        if sock is None or not rdhup:
            return
        poller = select.poll()
        try:
            poller.register(sock.fileno(), rdhup | select.POLLHUP | select.POLLERR)
            while sess.open and sess.stall_mode == "noread":
                if poller.poll(0):
                    self._trace("ws session #%d: peer hung up while stalled"
                                % sess.index)
                    sess._ws.transport.abort()
                    return
                await asyncio.sleep(0.1)
        except (OSError, ValueError):
            return
        except asyncio.CancelledError:
            return

    # ------------------------------------------------------------------
    # waiting helpers
    # ------------------------------------------------------------------
    def wait_for(self, predicate, timeout=10, interval=0.02, message=None):
        """Poll predicate() until it returns something truthy; return that.
        Raise TimeoutError (with a description and the fake's state)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError("timed out after %ss waiting for %s [%s]" % (
                    timeout, message or _describe(predicate), self.summary()))
            time.sleep(interval)

    def wait_session(self, n, timeout=10):
        """Wait until session number n (1-based) was accepted and got its
        hello (if hello is enabled for it); return that Session."""
        def ready():
            with self._lock:
                if len(self._sessions) < n:
                    return None
                s = self._sessions[n - 1]
                if s.hello_sent or not s.hello_expected or not s.open:
                    return s
            return None
        return self.wait_for(ready, timeout,
                             message="RTM session #%d with hello" % n)

    def summary(self):
        """One line about the state, for error messages."""
        with self._lock:
            calls = self._api_calls
            last = ("%s->%s" % (calls[-1]["method"], calls[-1]["status"])
                    if calls else "-")
            return ("api_calls=%d (last %s), handshakes=%d, sessions=%d "
                    "(open %d)" % (len(calls), last, len(self._handshakes),
                                   len(self._sessions),
                                   sum(1 for s in self._sessions if s.open)))

    # ------------------------------------------------------------------
    # demo
    # ------------------------------------------------------------------
    def start_demo(self, interval=2.0):
        """Every `interval` seconds send a chat message from a fake user to
        every open session, now and then a user_typing first."""
        def start():
            if self._demo_task is None:
                self._demo_task = asyncio.ensure_future(self._demo(interval))
        self._on_loop(start)

    async def _demo(self, interval):
        texts = ["Good morning, everyone!",
                 "Has anyone seen the build logs from last night?",
                 "Lunch at noon? :pizza:",
                 "Deploy finished, all green :white_check_mark:",
                 "Reminder: stand-up in 5 minutes",
                 "Ünïcødé test — ✓ and 🚀"]
        i = 0
        try:
            while True:
                await asyncio.sleep(interval)
                with self._lock:
                    targets = [s for s in self._sessions if s.open]
                if i % 3 == 1:
                    typing = {"type": "user_typing", "channel": "C0GENERAL",
                              "user": "U0ALICE"}
                    for s in targets:
                        self._enqueue(s, typing)
                    await asyncio.sleep(min(0.5, interval / 4))
                ev = {"type": "message", "channel": "C0GENERAL",
                      "user": "U0ALICE", "text": texts[i % len(texts)],
                      "ts": self.next_ts(), "team": self.team["id"]}
                for s in targets:
                    self._enqueue(s, ev)
                i += 1
        except asyncio.CancelledError:
            pass

    def __repr__(self):
        if self._api_port is None:
            return "<FakeSlack (not started)>"
        return "<FakeSlack %s ws=%d %s>" % (self.api_url, self._ws_port,
                                             self.summary())


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _ws_protocol_factory(fake):
    def factory(*args, **kwargs):
        return _RtmProtocol(*args, fake=fake, **kwargs)
    return factory


def _resolve(fut, value):
    if fut is not None and not fut.done():
        fut.set_result(value)


def _fault(kind, method, status=200, body=None, headers=None):
    return {"kind": kind, "method": method or "*", "status": int(status),
            "body": body, "headers": dict(headers or {})}


def _render_fault(fault):
    body = fault["body"]
    if body is None:
        payload = b""
    elif isinstance(body, (bytes, bytearray)):
        payload = bytes(body)
    elif isinstance(body, str):
        payload = body.encode("utf-8")
    else:
        payload = json.dumps(body).encode()
    return fault["status"], fault["headers"], payload


async def _read_chunked(reader):
    body = bytearray()
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            # trailers up to the empty line
            while (await reader.readline()).strip():
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)   # CRLF after the chunk
        if len(body) > _MAX_BODY:
            raise ValueError("body too large")


def _describe(predicate):
    try:
        src = inspect.getsource(predicate).strip()
        return src if len(src) < 200 else src[:200] + "..."
    except (OSError, TypeError):
        return getattr(predicate, "__name__", repr(predicate))


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Fake Slack Web API + RTM WebSocket server.")
    ap.add_argument("--token",
                    default=os.environ.get("FAKESLACK_TOKEN", DEFAULT_TOKEN),
                    help="accepted bot token (default $FAKESLACK_TOKEN or %s)"
                    % DEFAULT_TOKEN)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                    help="serve https/wss with this certificate and key")
    ap.add_argument("--demo", action="store_true",
                    help="send a chat message every 2 s to every session")
    ap.add_argument("--ready-file", metavar="PATH",
                    help="write the API URL here once listening")
    ap.add_argument("--quiet", action="store_true",
                    help="no trace of connections on stderr")
    args = ap.parse_args(argv)

    def log(msg):
        print("fakeslack: " + msg, file=sys.stderr, flush=True)

    cert, key = args.tls if args.tls else (None, None)
    fake = FakeSlack(token=args.token, certfile=cert, keyfile=key,
                     log=None if args.quiet else log)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fake.start()
    try:
        print("api_url=" + fake.api_url, flush=True)
        if args.ready_file:
            tmp = args.ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(fake.api_url)
            os.replace(tmp, args.ready_file)
        if args.demo:
            fake.start_demo(2.0)
        while not stop.wait(3600):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
