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

Fake workspace
--------------
Besides rtm.connect/rtm.start the Web API answers, in Slack's shapes,
``auth.test``, ``team.info``, ``conversations.list`` (types, limit <= 1000,
cursor, exclude_archived), ``users.list`` (limit <= 1000, cursor),
``conversations.info``, ``users.info``, ``conversations.open``,
``chat.postMessage``, ``conversations.history`` and ``conversations.replies``
(oldest/latest/inclusive/limit/cursor, has_more, next_cursor; from the
history of every message event the fake sent or was given with
``add_message(..., deliver=False)``); anything else is ``unknown_method``.  They all need
``Authorization: Bearer <token>`` (``not_authed`` / ``invalid_auth``).
Answers to a known token carry ``X-OAuth-Scopes`` (by default every scope
slackd needs); ``set_token_profile(token, scopes=, rtm_error=)`` accepts
more tokens, each with its own scopes (or none) and rtm.connect error.
Parameters may come in the query string or in a form, multipart or JSON
body; each api_calls record has them parsed in "params".

The data is the default workspace (channels general C0GENERAL,
welcome-test C0WELCOME, random C0RANDOM; users alice U0ALICE, bob U0BOB and
the bot = self user U0BOT) until ``set_workspace(users=, channels=,
private=, ims=)`` generates a big deterministic one.  Tests change it with
add_channel / rename_channel / delete_channel / archive_channel /
unarchive_channel / add_user / change_user, which also send the matching
RTM event (channel_rename, channel_deleted, team_join, ...) to the newest
open session.  Lists are served in creation order from per-object JSON
cached once; cursors are opaque base64 ("conv:<seq>" / "user:<seq>") and
stay valid while objects come and go.  ``fake.posts`` records successful
chat.postMessage calls; each post is also sent as a message event to the
newest open session.

Rate limits: ``queue_api_passthrough(method)`` queues "answer normally" in
the same FIFO as queue_api_response (so that e.g. only page 2 gets a 429),
and ``set_tier_limit(method, per_minute)`` answers 429 + Retry-After once a
method was called more than per_minute times in a sliding 60 s window.

Socket Mode
-----------
``apps.connections.open`` (POST, ``Authorization: Bearer <app token>``,
default ``DEFAULT_APP_TOKEN``; the bot token there is
``not_allowed_token_type``) issues a single-use
``ws://host:port/link/?ticket=<id>&app_id=A0FAKE``.  Such a session is a
Socket Mode one (``Session.socket``): its hello carries num_connections,
connection_info and debug_info; the fake sends WebSocket PINGs every
``sm_ping_interval`` seconds; every event given to ``emit``/``emit_many``/
``broadcast``, the workspace events and the echo of chat.postMessage become
``events_api`` envelopes, each delivered to ONE open Socket Mode session
(round robin).  Acks (``{"envelope_id":…}``) are recorded with their delay
after the envelope was written (``sm_late_acks(limit)``); an envelope not
acked within ``sm_retry_after`` seconds is sent again with retry_attempt+1
and retry_reason "timeout" on another open session if there is one (up to
3 retries).  ``sm_disconnect(reason)`` sends a disconnect (warning,
refresh_requested, link_disabled, too_many_websockets, anything);
``sm_slash_command``/``sm_interactive`` send envelopes that accept a
response payload.  More than 10 open sessions: the new one gets
disconnect too_many_websockets.  Faults (drop, stall, refuse_upgrade) work
as for RTM.

Run ``/usr/bin/python3 tests/fakeslack.py --help`` for the command line
(foreground server, optionally with a demo stream of events).
"""

import argparse
import asyncio
import base64
import binascii
import bisect
import collections
import concurrent.futures
import copy
import email.parser
import email.policy
import http
import inspect
import json
import logging
import math
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

__all__ = ["FakeSlack", "Session", "RawText", "DEFAULT_APP_TOKEN"]

DEFAULT_TOKEN = "xoxb-fake-0000"
DEFAULT_APP_TOKEN = "xapp-1-A0FAKE-0000-fakeapptoken"
DEFAULT_APP_ID = "A0FAKE"
_SM_MAX_CONNECTIONS = 10
DEFAULT_TEAM = {"id": "T0FAKE", "name": "Fake Workspace", "domain": "fake"}
DEFAULT_SELF = {"id": "U0BOT", "name": "slackd-bot"}
# What the default token is granted (X-OAuth-Scopes): all slackd needs.
DEFAULT_SCOPES = ("channels:read,groups:read,im:read,mpim:read,users:read,"
                  "im:write,chat:write")

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


class RawText(bytes):
    """A text frame's payload as raw bytes, sent as they are: emit(RawText(
    b'{"text":"\\xff"}')) sends a text frame that is not UTF-8, which a
    str cannot carry and bytes would send as a binary frame."""


def _dumps(obj):
    """Compact JSON, as Slack sends it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _norm_method(method):
    """rtm.start is answered like rtm.connect; faults for one match both."""
    return "rtm.connect" if method == "rtm.start" else method


# --------------------------------------------------------------------------
# fake workspace: data model and Web API parameter helpers
# --------------------------------------------------------------------------

DEFAULT_BOT_ID = "B0FAKEBOT"      # bot_id of the self user (a bot)
_CONV_TYPES = ("public_channel", "private_channel", "mpim", "im")
_CREATED_BASE = 1500000000        # "created" of generated conversations
_MAX_TEXT = 40000                 # chat.postMessage: longer -> msg_too_long
_FIXED_CHANNELS = (("C0GENERAL", "general"), ("C0WELCOME", "welcome-test"),
                   ("C0RANDOM", "random"))
_FIXED_USERS = (("U0ALICE", "alice", "Alice Liddell"),
                ("U0BOB", "bob", "Bob Builder"))


class _Directory:
    """Objects (users or conversations) in creation order.

    Every object gets a sequence number when it is added; a cursor is "the
    sequence number of the next object", so cursors stay valid (and no
    object is returned twice) while objects are added or removed between
    pages.  The JSON of each object is built once and cached until the
    object changes (touch()).  Not locked itself: FakeSlack's lock guards it.
    """

    __slots__ = ("objs", "seq_of", "seqs", "ids", "_json", "_next")

    def __init__(self):
        self.objs = {}        # id -> dict
        self.seq_of = {}      # id -> sequence number
        self.seqs = []        # sorted sequence numbers ...
        self.ids = []         # ... and the ids that go with them
        self._json = {}       # id -> cached compact JSON
        self._next = 1

    def __len__(self):
        return len(self.ids)

    def __contains__(self, oid):
        return oid in self.objs

    def get(self, oid):
        return self.objs.get(oid)

    def add(self, oid, obj):
        if oid in self.objs:
            raise ValueError("duplicate id %r" % (oid,))
        seq = self._next
        self._next += 1
        self.objs[oid] = obj
        self.seq_of[oid] = seq
        self.seqs.append(seq)
        self.ids.append(oid)

    def touch(self, oid):
        self._json.pop(oid, None)

    def remove(self, oid):
        seq = self.seq_of.pop(oid)
        del self.objs[oid]
        self._json.pop(oid, None)
        i = bisect.bisect_left(self.seqs, seq)
        del self.seqs[i]
        del self.ids[i]

    def json(self, oid):
        js = self._json.get(oid)
        if js is None:
            js = self._json[oid] = _dumps(self.objs[oid])
        return js

    def page(self, start_seq, limit, pred=None):
        """-> (ids of up to `limit` objects from start_seq on that match
        pred, sequence number of the next match or None)."""
        ids, objs, n = self.ids, self.objs, len(self.ids)
        i = bisect.bisect_left(self.seqs, start_seq)
        if pred is None:
            out = ids[i:i + limit]
            j = i + len(out)
            return out, (self.seqs[j] if j < n else None)
        out = []
        while i < n and len(out) < limit:
            if pred(objs[ids[i]]):
                out.append(ids[i])
            i += 1
        while i < n:
            if pred(objs[ids[i]]):
                return out, self.seqs[i]
            i += 1
        return out, None


def _conv_kind(obj):
    if obj.get("is_im"):
        return "im"
    if obj.get("is_mpim"):
        return "mpim"
    if obj.get("is_private"):
        return "private_channel"
    return "public_channel"


def _make_cursor(prefix, seq):
    if seq is None:
        return ""
    return base64.b64encode(("%s:%d" % (prefix, seq)).encode()).decode()


def _parse_cursor(value, prefix):
    """-> first sequence number, or None for an invalid cursor."""
    if value is None or value == "":
        return 1
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
        kind, sep, num = raw.decode("ascii").partition(":")
    except (binascii.Error, ValueError, UnicodeError):
        return None
    if kind != prefix or not sep or not num.isdigit() or int(num) < 1:
        return None
    return int(num)


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _parse_limit(value, default, maximum):
    """Slack's `limit`: absent/0 -> default, above the maximum -> maximum;
    None when it is not an integer."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    if n <= 0:
        return default
    return min(n, maximum)


def _split_list(value):
    """A comma separated string (or a JSON list) -> list of stripped items."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = str(value).split(",")
    return [v.strip() for v in items if v.strip()]


def _json_list_param(params, key, error):
    """blocks / attachments: a list (JSON body) or a JSON string (form body
    or query).  -> (list or None if absent, error dict or None)."""
    value = params.get(key)
    if value is None or value == "":
        return None, None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None, {"ok": False, "error": error}
    if not isinstance(value, list):
        return None, {"ok": False, "error": error}
    if key == "blocks" and not all(isinstance(b, dict) and
                                   isinstance(b.get("type"), str)
                                   for b in value):
        return None, {"ok": False, "error": error}
    return value, None


def _parse_multipart(ctype, body):
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"MIME-Version: 1.0\r\nContent-Type: " + ctype.encode("latin-1")
        + b"\r\n\r\n" + body)
    out = {}
    if not msg.is_multipart():
        return out
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        data = part.get_payload(decode=True) or b""
        out[name] = data.decode("utf-8", "replace")
    return out


def _parse_params(target, headers, body):
    """Web API parameters from the query string and the body (form,
    multipart or JSON, by Content-Type; the body wins).
    -> (params dict, Slack error string or None)."""
    params = {}
    query = urllib.parse.urlsplit(target).query
    if query:
        params.update(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if not body:
        return params, None
    ctype = headers.get("content-type", "")
    mime = ctype.split(";")[0].strip().lower()
    if mime == "application/json":
        try:
            obj = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return params, "invalid_json"
        if not isinstance(obj, dict):
            return params, "json_not_object"
        params.update(obj)
    elif mime == "multipart/form-data":
        try:
            params.update(_parse_multipart(ctype, body))
        except Exception:
            return params, "invalid_form_data"
    else:
        text = body.decode("utf-8", "replace")
        params.update(urllib.parse.parse_qsl(text, keep_blank_values=True))
    return params, None


def _user_obj(uid, name, team_id, real_name=None, display_name="",
              deleted=False, is_bot=False, bot_id=None):
    real_name = name if real_name is None else real_name
    profile = {"display_name": display_name, "real_name": real_name}
    if bot_id is not None:
        profile["bot_id"] = bot_id
    return {"id": uid, "team_id": team_id, "name": name, "deleted": deleted,
            "real_name": real_name, "is_bot": is_bot, "is_app_user": False,
            "profile": profile}


def _channel_obj(cid, name, created, private=False, mpim=False,
                 archived=False, creator="", general=False):
    """A public/private channel or an mpim, shaped like conversations.list
    returns them (legacy private "G..." channels are groups)."""
    is_group = private and not mpim and cid.startswith("G")
    return {"id": cid, "name": name,
            "is_channel": not (is_group or mpim),
            "is_group": is_group, "is_im": False, "is_mpim": bool(mpim),
            "is_private": bool(private or mpim), "is_archived": bool(archived),
            "is_general": bool(general), "is_member": True,
            "is_shared": False, "is_ext_shared": False,
            "is_org_shared": False, "created": created, "creator": creator,
            "name_normalized": name.lower(), "previous_names": [],
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0}}


def _im_obj(did, uid, created, user_deleted=False):
    """An IM as conversations.list returns it: no name, no is_member."""
    return {"id": did, "created": created, "is_channel": False,
            "is_group": False, "is_im": True, "is_mpim": False,
            "is_private": True, "is_archived": False, "is_org_shared": False,
            "user": uid, "is_user_deleted": bool(user_deleted),
            "priority": 0}


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
        self.socket = False           # a Socket Mode session
        self.sm_host = None
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
                 team=None, self_user=None, log=None,
                 app_token=DEFAULT_APP_TOKEN):
        self._lock = threading.RLock()
        self._token = token
        self.app_token = app_token
        # Socket Mode
        self._sm_sids = set()
        self._sm_envelopes = {}      # envelope_id -> record (see sm_envelopes)
        self._sm_order = []
        self._sm_seq = 0
        self._sm_rr = 0
        self._sm_app_error = None    # apps.connections.open answers this
        self.sm_retry_after = 3.0
        self.sm_max_retries = 3
        self.sm_ping_interval = 5.0
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
        self._rtm_live_max = 0        # most RTM sessions open at once
        self._rtm_overlaps = []       # (new session, [open ones]) each time
        self._handshakes = []
        self._sids = {}               # sid -> "issued" | "used"
        # fault injection / behaviour switches
        self._api_faults = []         # FIFO of one-shot faults
        self._api_defaults = {}       # method -> sticky fault
        self._hello = True
        self._hello_delay = 0.0
        self._hold_acks = False
        self._ack_delay = 0.0
        self._refuse_upgrades = 0
        self._hang_upgrades = 0
        self._last_ts_us = 0
        self._tier_limits = {}        # method -> (calls, window seconds)
        self._tier_calls = {}         # method -> deque of time.monotonic()
        self._token_profiles = {}     # token -> set_token_profile()
        # fake workspace (see set_workspace)
        self._posts = []
        self._history = {}            # channel -> messages by ts (history)
        self._users = None
        self._convs = None
        self._conv_by_name = {}       # channel name -> id (not IMs)
        self._im_by_user = {}         # user id -> IM id
        self._mpim_by_users = {}      # frozenset of user ids -> mpim id
        self._next_im = 1
        self._next_mpim = 1
        self.set_workspace(fixed_users=True)

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

    def assert_one_rtm_session(self):
        """Raise AssertionError if two RTM sessions were ever open at once
        (e.g. two slackd leading).  Sessions made while another was still
        open are listed: (new session index, [open session indexes])."""
        with self._lock:
            overlaps = list(self._rtm_overlaps)
        assert not overlaps, (
            "more than one live RTM session at a time: %r" % overlaps)

    @property
    def rtm_live_max(self):
        """The most RTM sessions that were open at the same time."""
        with self._lock:
            return self._rtm_live_max

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
    def set_token_profile(self, token, scopes=DEFAULT_SCOPES,
                          rtm_error=None):
        """Accept `token` too (besides the main one), or change what the
        main token is like.  scopes: the X-OAuth-Scopes header of every
        answer to it (None: no header); rtm_error: rtm.connect answers
        {"ok":false,"error":rtm_error} (e.g. "not_allowed_token_type", a
        new-style app).  Unknown tokens still get invalid_auth."""
        with self._lock:
            self._token_profiles[token] = {"scopes": scopes,
                                           "rtm_error": rtm_error}

    def _token_profile(self, headers):
        """The profile of the request's token; None if it is not ours."""
        auth = headers.get("authorization") or ""
        tok = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with self._lock:
            if tok is not None and tok in self._token_profiles:
                return self._token_profiles[tok]
            if tok is not None and tok == self._token:
                return {"scopes": DEFAULT_SCOPES, "rtm_error": None}
        return None

    def _scope_headers(self, headers):
        prof = self._token_profile(headers)
        if prof is None or prof["scopes"] is None:
            return {}
        return {"X-OAuth-Scopes": prof["scopes"]}

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

    def delay_acks(self, seconds):
        """Answer chat messages (the ack and the echo) only this many
        seconds later, on the session they came on (0: at once)."""
        with self._lock:
            self._ack_delay = float(seconds)

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

    def queue_api_passthrough(self, method="rtm.connect"):
        """The next call of `method` is answered normally (ignoring a sticky
        set_api_default), so that faults can be queued for later calls:
        passthrough, 429, passthrough ... = page 2 is rate limited."""
        with self._lock:
            self._api_faults.append(_fault("pass", method))

    def clear_api_queue(self):
        """Drop one-shot faults that were not consumed."""
        with self._lock:
            self._api_faults.clear()

    def set_tier_limit(self, method, per_minute, window=60.0):
        """Rate-limit `method` like Slack's tiers: once `per_minute` calls
        were answered within the last `window` seconds (sliding), further
        calls get 429, "Retry-After: <seconds until the window frees>" and
        {"ok":false,"error":"ratelimited"}.  Calls answered 429 (or by an
        injected fault) do not count.  per_minute=None removes the limit."""
        m = _norm_method(method)
        with self._lock:
            if per_minute is None:
                self._tier_limits.pop(m, None)
                self._tier_calls.pop(m, None)
            else:
                if int(per_minute) < 0 or float(window) <= 0:
                    raise ValueError("bad tier limit")
                self._tier_limits[m] = (int(per_minute), float(window))
                self._tier_calls.setdefault(m, collections.deque())

    def clear_tier_limits(self):
        with self._lock:
            self._tier_limits.clear()
            self._tier_calls.clear()

    def _tier_check(self, method):
        """None if the call may proceed (and is counted), else the
        Retry-After seconds."""
        m = _norm_method(method)
        with self._lock:
            limit = self._tier_limits.get(m)
            if limit is None:
                return None
            per, window = limit
            calls = self._tier_calls.setdefault(m, collections.deque())
            now = time.monotonic()
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= per:
                wait = calls[0] + window - now if calls else window
                return max(1, int(math.ceil(wait)))
            calls.append(now)
            return None

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
        try:
            params, param_error = _parse_params(target, headers, body)
        except Exception:             # e.g. absurdly nested JSON
            params, param_error = {}, "invalid_arguments"
        call["params"] = params

        fault, origin = (None, None)
        if method is not None:
            fault, origin = self._take_api_fault(method)
        if fault is not None:
            call["fault"] = fault["kind"] if origin == "queued" \
                else "default"
        if fault is not None and fault["kind"] == "pass":
            call["fault"] = "passthrough"
            fault = None
        retry_after = None
        if fault is None and method is not None:
            retry_after = self._tier_check(method)
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
        elif retry_after is not None:
            call["fault"] = "tier_limit"
            status, extra, ctype = 429, {"Retry-After": str(retry_after)}, \
                _JSON_CT
            payload = _dumps({"ok": False, "error": "ratelimited"}).encode()
        else:
            status, extra = 200, self._scope_headers(headers)
            ctype = _JSON_CT
            compact = False
            handler = None if method is None else \
                self._API_HANDLERS.get(_norm_method(method), "")
            if verb not in ("GET", "POST"):
                status, obj = 405, {"ok": False, "error": "method_not_allowed"}
            elif method is None:
                status, obj = 404, {"ok": False, "error": "not_found"}
            elif not handler:
                obj = {"ok": False, "error": "unknown_method"}
            elif param_error is not None:
                obj = {"ok": False, "error": param_error}
            elif _norm_method(method) == "rtm.connect":
                obj = self._rtm_connect(headers)
            elif method == "apps.connections.open":
                compact = True
                obj = self._apps_connections_open(headers, verb)
            else:
                obj = self._auth_error(headers)
                compact = True
                if obj is None:
                    try:
                        obj = getattr(self, handler)(params)
                    except Exception as exc:   # a bug here: say so
                        self._trace("api %s: internal error %r"
                                    % (method, exc))
                        status, obj = 500, {"ok": False,
                                            "error": "fatal_error"}
            if isinstance(obj, str):
                payload = obj.encode("utf-8")   # pre-serialised JSON
            elif compact:
                payload = _dumps(obj).encode("utf-8")
            else:
                payload = json.dumps(obj).encode()  # as it always was
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
            prof = self._token_profile(headers)
            if auth != "Bearer " + token and prof is None:
                return {"ok": False, "error": "invalid_auth"}
            if prof is not None and prof["rtm_error"] is not None:
                return {"ok": False, "error": prof["rtm_error"]}
            sid = secrets.token_urlsafe(16)
            self._sids[sid] = "issued"
        return {"ok": True, "url": self.ws_base_url + sid,
                "team": dict(self.team), "self": dict(self.self_user)}

    # ------------------------------------------------------------------
    # fake workspace: data
    # ------------------------------------------------------------------
    def set_workspace(self, users=0, channels=0, private=0, ims=0,
                      fixed_users=False):
        """Replace the workspace with deterministic generated data:

        * users U00000001..: name "user<i>", real_name "User <i>",
          profile.display_name "u<i>", every 50th deleted, then the bot
          (the self user, is_bot true); fixed_users=True also keeps alice
          (U0ALICE) and bob (U0BOB) of the default workspace, first;
        * public channels general (C0GENERAL), welcome-test (C0WELCOME),
          random (C0RANDOM), then C00000001.. "channel-<i>";
        * private channels G00000001.. "private-<i>";
        * IMs D00000001.. with user U00000001.. (ims <= users).

        Listing order (users.list, conversations.list) is this creation
        order; objects created later come after.  Opened IMs and posts made
        so far are forgotten (fake.posts is not).  The default workspace is
        set_workspace(fixed_users=True)."""
        users, channels, private, ims = (int(users), int(channels),
                                         int(private), int(ims))
        if min(users, channels, private, ims) < 0:
            raise ValueError("counts must be >= 0")
        if ims > users:
            raise ValueError("ims must be <= users (one IM per user)")
        team_id = self.team["id"]
        self_id = self.self_user["id"]
        udir, cdir = _Directory(), _Directory()
        if fixed_users:
            for uid, name, real in _FIXED_USERS:
                udir.add(uid, _user_obj(uid, name, team_id, real, name))
        for i in range(1, users + 1):
            uid = "U%08d" % i
            real = "User %d" % i
            udir.add(uid, {"id": uid, "team_id": team_id, "name": "user%d" % i,
                           "deleted": i % 50 == 0, "real_name": real,
                           "is_bot": False, "is_app_user": False,
                           "profile": {"display_name": "u%d" % i,
                                       "real_name": real}})
        if self_id not in udir:
            udir.add(self_id, _user_obj(
                self_id, self.self_user.get("name", "slackd-bot"), team_id,
                "slackd bot", "", is_bot=True, bot_id=DEFAULT_BOT_ID))
        by_name = {}
        n = 0
        for cid, name in _FIXED_CHANNELS:
            n += 1
            cdir.add(cid, _channel_obj(cid, name, _CREATED_BASE + n * 60,
                                       creator=self_id,
                                       general=(cid == "C0GENERAL")))
            by_name[name] = cid
        for prefix, count, kind in (("C", channels, "channel"),
                                    ("G", private, "private")):
            for i in range(1, count + 1):
                n += 1
                cid, name = "%s%08d" % (prefix, i), "%s-%d" % (kind, i)
                cdir.add(cid, _channel_obj(cid, name, _CREATED_BASE + n * 60,
                                           private=(prefix == "G"),
                                           creator=self_id))
                by_name[name] = cid
        im_by_user = {}
        for i in range(1, ims + 1):
            n += 1
            did, uid = "D%08d" % i, "U%08d" % i
            cdir.add(did, _im_obj(did, uid, _CREATED_BASE + n * 60,
                                  user_deleted=(i % 50 == 0)))
            im_by_user[uid] = did
        with self._lock:
            self._users, self._convs = udir, cdir
            self._conv_by_name = by_name
            self._im_by_user = im_by_user
            self._mpim_by_users = {}
            self._next_im = ims + 1
            self._next_mpim = 1

    def user_ids(self):
        """Every user id, in listing order."""
        with self._lock:
            return list(self._users.ids)

    def conversation_ids(self, types=("public_channel",),
                         exclude_archived=False):
        """Conversation ids in listing order, as conversations.list with
        these types would return them over all pages."""
        kinds = set(_split_list(types) if isinstance(types, str) else types)
        with self._lock:
            objs = self._convs.objs
            return [cid for cid in self._convs.ids
                    if _conv_kind(objs[cid]) in kinds and not
                    (exclude_archived and objs[cid]["is_archived"])]

    def get_user(self, uid):
        """A copy of the user object, or None."""
        with self._lock:
            return copy.deepcopy(self._users.get(uid))

    def get_conversation(self, cid):
        """A copy of the conversation object, or None."""
        with self._lock:
            return copy.deepcopy(self._convs.get(cid))

    @property
    def posts(self):
        """Every successful chat.postMessage, oldest first: the parsed
        params, with "blocks"/"attachments" decoded (None when absent),
        plus "channel_id" (the resolved id), "ts" and "t" (monotonic)."""
        with self._lock:
            return [dict(p) for p in self._posts]

    def clear_posts(self):
        with self._lock:
            self._posts.clear()

    def _emit_event(self, event, wait=True):
        """Send a workspace event to the newest open session; None if
        there is none (or the fake is not running), else like emit()."""
        if self._state != "running":
            return None
        with self._lock:
            if not any(s.open for s in self._sessions):
                return None
        try:
            return self.emit(event, wait=wait)
        except RuntimeError:          # closed in the meantime
            return None

    def _conv_or_raise(self, cid):
        obj = self._convs.get(cid)
        if obj is None:
            raise KeyError("no conversation %r" % (cid,))
        return obj

    def add_channel(self, id, name, private=False, mpim=False, archived=False,
                    emit=False):
        """Add a channel (a "G..." id with private=True is a legacy private
        group).  emit=True sends channel_created (public) or group_joined
        (private) to the current session.  Returns the emit result or
        None."""
        if id.startswith("D"):
            raise ValueError("IMs are made by conversations.open")
        with self._lock:
            if id in self._convs:
                raise ValueError("duplicate conversation id %r" % (id,))
            if name in self._conv_by_name:
                raise ValueError("channel name %r is taken" % (name,))
            obj = _channel_obj(id, name, int(time.time()), private=private,
                               mpim=mpim, archived=archived,
                               creator=self.self_user["id"])
            self._convs.add(id, obj)
            self._conv_by_name[name] = id
            if obj["is_private"]:
                event = {"type": "group_joined", "channel": copy.deepcopy(obj)}
            else:
                event = {"type": "channel_created", "channel": {
                    "id": id, "name": name, "created": obj["created"],
                    "creator": obj["creator"]}}
        return self._emit_event(event) if emit else None

    def rename_channel(self, id, new_name, emit=True):
        """Rename; emit=True sends {"type":"channel_rename" (group_rename
        for a private channel), "channel":{"id","name","created"}}."""
        with self._lock:
            obj = self._conv_or_raise(id)
            if obj["is_im"]:
                raise ValueError("an IM has no name")
            other = self._conv_by_name.get(new_name)
            if other is not None and other != id:
                raise ValueError("channel name %r is taken" % (new_name,))
            old = obj["name"]
            if self._conv_by_name.get(old) == id:
                del self._conv_by_name[old]
            self._conv_by_name[new_name] = id
            if old != new_name:
                obj["previous_names"] = [old] + obj["previous_names"]
            obj["name"] = new_name
            obj["name_normalized"] = new_name.lower()
            self._convs.touch(id)
            event = {"type": "group_rename" if obj["is_private"]
                     else "channel_rename",
                     "channel": {"id": id, "name": new_name,
                                 "created": obj["created"]}}
        return self._emit_event(event) if emit else None

    def delete_channel(self, id, emit=True):
        """Remove it (conversations.info: channel_not_found); emit=True
        sends {"type":"channel_deleted" (group_deleted), "channel":id}."""
        with self._lock:
            obj = self._conv_or_raise(id)
            if obj["is_im"]:
                raise ValueError("an IM cannot be deleted")
            self._convs.remove(id)
            if self._conv_by_name.get(obj["name"]) == id:
                del self._conv_by_name[obj["name"]]
            event = {"type": "group_deleted" if obj["is_private"]
                     else "channel_deleted", "channel": id}
        return self._emit_event(event) if emit else None

    def archive_channel(self, id, emit=True, user=None, archived=True):
        """Set is_archived; emit=True sends {"type":"channel_archive"
        (group_archive), "channel":id, "user":<user or self id>};
        archived=False unarchives (channel_unarchive / group_unarchive)."""
        with self._lock:
            obj = self._conv_or_raise(id)
            obj["is_archived"] = bool(archived)
            self._convs.touch(id)
            kind = "group" if obj["is_private"] else "channel"
            event = {"type": kind + ("_archive" if archived else "_unarchive"),
                     "channel": id, "user": user or self.self_user["id"]}
        return self._emit_event(event) if emit else None

    def unarchive_channel(self, id, emit=True, user=None):
        return self.archive_channel(id, emit=emit, user=user, archived=False)

    def add_user(self, id, name, emit=True, **fields):
        """Add a user; emit=True sends {"type":"team_join","user":{...}}
        with the full user object.  fields: any user field (real_name,
        deleted, is_bot, ...), display_name, or profile={...} (merged)."""
        with self._lock:
            if id in self._users:
                raise ValueError("duplicate user id %r" % (id,))
            obj = _user_obj(id, name, self.team["id"])
            self._apply_user_fields(obj, fields)
            self._users.add(id, obj)
            event = {"type": "team_join", "user": copy.deepcopy(obj)}
        return self._emit_event(event) if emit else None

    def change_user(self, id, emit=True, **fields):
        """Change fields of a user (as add_user); emit=True sends
        {"type":"user_change","user":{...}}."""
        with self._lock:
            obj = self._users.get(id)
            if obj is None:
                raise KeyError("no user %r" % (id,))
            self._apply_user_fields(obj, fields)
            self._users.touch(id)
            did = self._im_by_user.get(id)
            if did is not None and did in self._convs:
                self._convs.objs[did]["is_user_deleted"] = bool(obj["deleted"])
                self._convs.touch(did)
            event = {"type": "user_change", "user": copy.deepcopy(obj)}
        return self._emit_event(event) if emit else None

    @staticmethod
    def _apply_user_fields(obj, fields):
        for key, value in fields.items():
            if key == "profile":
                obj["profile"].update(copy.deepcopy(value))
            elif key == "display_name":
                obj["profile"]["display_name"] = value
            elif key == "real_name":
                obj["real_name"] = obj["profile"]["real_name"] = value
            elif key == "id":
                raise ValueError("the id cannot change")
            else:
                obj[key] = copy.deepcopy(value)

    def _open_im(self, uid):
        """-> (IM id, newly created); lock held."""
        did = self._im_by_user.get(uid)
        if did is not None and did in self._convs:
            return did, False
        while True:
            did = "D%08d" % self._next_im
            self._next_im += 1
            if did not in self._convs:
                break
        user = self._users.get(uid)
        self._convs.add(did, _im_obj(did, uid, int(time.time()),
                                     bool(user and user["deleted"])))
        self._im_by_user[uid] = did
        return did, True

    def _open_mpim(self, uids):
        """-> (mpim id, newly created); lock held.  uids includes self."""
        key = frozenset(uids)
        cid = self._mpim_by_users.get(key)
        if cid is not None and cid in self._convs:
            return cid, False
        while True:
            cid = "GM%07d" % self._next_mpim
            self._next_mpim += 1
            if cid not in self._convs:
                break
        names = sorted(self._users.objs[u]["name"] for u in key)
        name = "mpdm-%s-1" % "--".join(names)
        self._convs.add(cid, _channel_obj(cid, name, int(time.time()),
                                          mpim=True,
                                          creator=self.self_user["id"]))
        self._conv_by_name[name] = cid
        self._mpim_by_users[key] = cid
        return cid, True

    def _resolve_channel(self, ch):
        """chat.postMessage's channel: an id, "#name" or "name", or a user
        id (-> that user's IM, opened if needed).  Lock held."""
        if not isinstance(ch, str) or not ch:
            return None
        if ch in self._convs:
            return ch
        if ch in self._users:
            return self._open_im(ch)[0]
        return self._conv_by_name.get(ch[1:] if ch.startswith("#") else ch)

    # ------------------------------------------------------------------
    # fake workspace: Web API methods (run on the loop thread)
    # ------------------------------------------------------------------
    _API_HANDLERS = {
        "rtm.connect": "_rtm_connect",   # called with the headers
        "apps.connections.open": "_apps_connections_open",  # likewise
        "auth.test": "_api_auth_test",
        "team.info": "_api_team_info",
        "conversations.list": "_api_conversations_list",
        "conversations.info": "_api_conversations_info",
        "conversations.open": "_api_conversations_open",
        "users.list": "_api_users_list",
        "users.info": "_api_users_info",
        "chat.postMessage": "_api_chat_post_message",
    }

    def _auth_error(self, headers):
        auth = headers.get("authorization")
        with self._lock:
            token = self._token
        if auth is None:
            return {"ok": False, "error": "not_authed"}
        if auth != "Bearer " + token and \
                self._token_profile(headers) is None:
            return {"ok": False, "error": "invalid_auth"}
        return None

    def _api_auth_test(self, params):
        return {"ok": True, "url": "https://%s.slack.com/" % self.team.get(
                    "domain", "fake"),
                "team": self.team.get("name", ""),
                "user": self.self_user.get("name", ""),
                "team_id": self.team["id"], "user_id": self.self_user["id"],
                "bot_id": DEFAULT_BOT_ID, "is_enterprise_install": False}

    def _api_team_info(self, params):
        return {"ok": True, "team": {
            "id": self.team["id"], "name": self.team.get("name", ""),
            "domain": self.team.get("domain", "fake"),
            "email_domain": "", "icon": {"image_default": True},
            "enterprise_id": None}}

    def _api_conversations_list(self, params):
        kinds = _split_list(params.get("types")) or ["public_channel"]
        if any(k not in _CONV_TYPES for k in kinds):
            return {"ok": False, "error": "invalid_types"}
        limit = _parse_limit(params.get("limit"), 100, 1000)
        if limit is None:
            return {"ok": False, "error": "invalid_limit"}
        start = _parse_cursor(params.get("cursor"), "conv")
        if start is None:
            return {"ok": False, "error": "invalid_cursor"}
        kinds = frozenset(kinds)
        exclude = _truthy(params.get("exclude_archived"))
        if len(kinds) == len(_CONV_TYPES) and not exclude:
            pred = None
        else:
            def pred(obj):
                return _conv_kind(obj) in kinds and not (
                    exclude and obj["is_archived"])
        with self._lock:
            ids, nxt = self._convs.page(start, limit, pred)
            items = ",".join([self._convs.json(i) for i in ids])
        return ('{"ok":true,"channels":[%s],"response_metadata":'
                '{"next_cursor":"%s"}}' % (items, _make_cursor("conv", nxt)))

    def _api_users_list(self, params):
        limit = _parse_limit(params.get("limit"), 100, 1000)
        if limit is None:
            return {"ok": False, "error": "invalid_limit"}
        start = _parse_cursor(params.get("cursor"), "user")
        if start is None:
            return {"ok": False, "error": "invalid_cursor"}
        with self._lock:
            ids, nxt = self._users.page(start, limit)
            items = ",".join([self._users.json(i) for i in ids])
        return ('{"ok":true,"members":[%s],"cache_ts":%d,"response_metadata":'
                '{"next_cursor":"%s"}}' % (items, int(time.time()),
                                           _make_cursor("user", nxt)))

    def _api_conversations_info(self, params):
        cid = params.get("channel")
        with self._lock:
            if not isinstance(cid, str) or cid not in self._convs:
                return {"ok": False, "error": "channel_not_found"}
            return '{"ok":true,"channel":%s}' % self._convs.json(cid)

    def _api_users_info(self, params):
        uid = params.get("user")
        with self._lock:
            if not isinstance(uid, str) or uid not in self._users:
                return {"ok": False, "error": "user_not_found"}
            return '{"ok":true,"user":%s}' % self._users.json(uid)

    def _api_conversations_open(self, params):
        channel = params.get("channel")
        users = _split_list(params.get("users"))
        with self._lock:
            if channel:
                obj = self._convs.get(channel) if isinstance(channel, str) \
                    else None
                if obj is None or not (obj["is_im"] or obj["is_mpim"]):
                    return {"ok": False, "error": "channel_not_found"}
                cid, created = channel, False
            elif not users:
                return {"ok": False, "error": "users_list_not_supplied"}
            else:
                for uid in users:
                    if uid not in self._users:
                        return {"ok": False, "error": "user_not_found"}
                self_id = self.self_user["id"]
                others = [u for u in dict.fromkeys(users) if u != self_id]
                if len(others) <= 1:
                    cid, created = self._open_im(others[0] if others
                                                 else self_id)
                elif len(others) > 8:
                    return {"ok": False, "error": "too_many_users"}
                else:
                    cid, created = self._open_mpim(others + [self_id])
            if _truthy(params.get("return_im")):
                chan = copy.deepcopy(self._convs.get(cid))
            else:
                chan = {"id": cid}
        resp = {"ok": True}
        if not created:
            resp["no_op"] = True
            resp["already_open"] = True
        resp["channel"] = chan
        return resp

    def _api_chat_post_message(self, params):
        blocks, blocks_err = _json_list_param(params, "blocks",
                                              "invalid_blocks")
        attachments, att_err = _json_list_param(params, "attachments",
                                                "invalid_attachments")
        with self._lock:
            cid = self._resolve_channel(params.get("channel"))
            conv = self._convs.get(cid) if cid is not None else None
            if conv is None:
                return {"ok": False, "error": "channel_not_found"}
            if conv["is_archived"]:
                return {"ok": False, "error": "is_archived"}
        if blocks_err is not None:
            return blocks_err
        if att_err is not None:
            return att_err
        text = params.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        if not text and not blocks and not attachments:
            return {"ok": False, "error": "no_text"}
        if text and len(text) > _MAX_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        thread_ts = params.get("thread_ts")
        thread_ts = str(thread_ts) if thread_ts not in (None, "") else None
        ts = self.next_ts()
        msg = {"type": "message", "text": text or "",
               "user": self.self_user["id"], "bot_id": DEFAULT_BOT_ID,
               "ts": ts, "team": self.team["id"]}
        if blocks:
            msg["blocks"] = blocks
        if attachments:
            msg["attachments"] = attachments
        if thread_ts is not None:
            msg["thread_ts"] = thread_ts
        event = dict(msg, channel=cid)
        if thread_ts is not None and _truthy(params.get("reply_broadcast")):
            event["subtype"] = "thread_broadcast"
        post = dict(params)
        post.update(blocks=blocks, attachments=attachments, channel_id=cid,
                    ts=ts, t=time.monotonic())
        self._record_history(event)
        with self._lock:
            self._posts.append(post)
            target = None
            for s in reversed(self._sessions):
                if s.open:
                    target = s
                    break
        if target is not None and target.socket:
            self._sm_event(event)
        elif target is not None:
            self._enqueue(target, event)
        return {"ok": True, "channel": cid, "ts": ts, "message": msg}

    # ------------------------------------------------------------------
    # channel history: conversations.history and conversations.replies
    # ------------------------------------------------------------------
    # Every message event the fake sends (emit, emit_many, broadcast, the
    # echo of an RTM message, a chat.postMessage post) and every
    # add_message() is kept, by channel, as Slack keeps it: without
    # "channel", one entry per ts, thread parents carrying reply_count,
    # reply_users and latest_reply.  Edits, deletions and other subtypes
    # that change a message are not kept.
    _HISTORY_SKIP = frozenset(("message_changed", "message_deleted",
                               "message_replied"))

    def _record_history(self, event):
        """Keep a message event in its channel's history (any thread)."""
        if not isinstance(event, dict) or event.get("type") != "message" \
                or "reply_to" in event:
            return
        channel, ts = event.get("channel"), event.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str) or \
                event.get("subtype") in self._HISTORY_SKIP:
            return
        try:
            key = float(ts)
        except ValueError:
            return
        item = {k: v for k, v in event.items() if k != "channel"}
        with self._lock:
            msgs = self._history.setdefault(channel, {})
            if ts in msgs:
                return
            msgs[ts] = (key, item)
            parent = event.get("thread_ts")
            if isinstance(parent, str) and parent != ts and parent in msgs:
                p = msgs[parent][1]
                p["thread_ts"] = parent
                p["reply_count"] = p.get("reply_count", 0) + 1
                users = p.setdefault("reply_users", [])
                if event.get("user") and event["user"] not in users:
                    users.append(event["user"])
                p["reply_users_count"] = len(users)
                p["latest_reply"] = max(p.get("latest_reply", ts), ts,
                                        key=float)

    def add_message(self, channel, text, user="U0ALICE", thread_ts=None,
                    ts=None, deliver=True, **fields):
        """Post a message as a user would: it goes into the channel's
        history and, with deliver, to the newest open session (if any).
        With deliver=False it is only in history, as a message sent while
        the daemon was away.  Returns the event."""
        event = {"type": "message", "channel": channel, "user": user,
                 "text": text, "ts": ts or self.next_ts(),
                 "team": self.team["id"]}
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        event.update(fields)
        self._record_history(event)
        if deliver:
            self._emit_event(event, wait=False)
        return event

    def history(self, channel):
        """The channel's history, oldest first (thread replies included)."""
        with self._lock:
            msgs = self._history.get(channel, {})
            return [copy.deepcopy(v[1]) for v in sorted(msgs.values(),
                                                        key=lambda v: v[0])]

    def clear_history(self):
        with self._lock:
            self._history.clear()

    @staticmethod
    def _ts_param(value, default):
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    @staticmethod
    def _hist_cursor(ts):
        return base64.b64encode(("ts:%s" % ts).encode()).decode()

    @staticmethod
    def _hist_uncursor(value):
        """-> the ts a cursor continues from, "" for none, None if bad."""
        if value is None or value == "":
            return ""
        try:
            raw = base64.b64decode(str(value).encode("ascii"),
                                   validate=True).decode("ascii")
            kind, _, ts = raw.partition(":")
            float(ts)
        except (binascii.Error, ValueError, UnicodeError):
            return None
        return ts if kind == "ts" else None

    def _history_args(self, params):
        """Common checks -> (channel messages, oldest, latest, inclusive,
        limit, cursor ts) or an error answer."""
        cid = params.get("channel")
        with self._lock:
            known = isinstance(cid, str) and (cid in self._history or
                                              cid in self._convs)
            msgs = list(self._history.get(cid, {}).values()) if known \
                else None
        if msgs is None:
            return {"ok": False, "error": "channel_not_found"}
        oldest = self._ts_param(params.get("oldest"), 0.0)
        latest = self._ts_param(params.get("latest"), math.inf)
        limit = _parse_limit(params.get("limit"), 100, 999)
        cursor = self._hist_uncursor(params.get("cursor"))
        if oldest is None or latest is None or limit is None:
            return {"ok": False, "error": "invalid_arguments"}
        if cursor is None:
            return {"ok": False, "error": "invalid_cursor"}
        return (msgs, oldest, latest, _truthy(params.get("inclusive")),
                limit, cursor)

    @staticmethod
    def _history_page(items, limit):
        page = [copy.deepcopy(v[1]) for v in items[:limit]]
        more = len(items) > limit
        return page, more, (FakeSlack._hist_cursor(page[-1]["ts"])
                            if more else "")

    def _api_conversations_history(self, params):
        """Newest first between oldest and latest (exclusive unless
        inclusive); a cursor continues with older messages.  Thread
        replies are left out (except thread_broadcast), as Slack does."""
        args = self._history_args(params)
        if isinstance(args, dict):
            return args
        msgs, oldest, latest, inclusive, limit, cursor = args

        def wanted(v):
            key, m = v
            if inclusive:
                inside = oldest <= key <= latest
            else:
                inside = oldest < key < latest
            if cursor and key >= float(cursor):
                return False
            reply = m.get("thread_ts") not in (None, m["ts"]) and \
                m.get("subtype") != "thread_broadcast"
            return inside and not reply
        items = sorted(filter(wanted, msgs), key=lambda v: -v[0])
        page, more, nxt = self._history_page(items, limit)
        return {"ok": True, "messages": page, "has_more": more,
                "pin_count": 0, "response_metadata": {"next_cursor": nxt}}

    def _api_conversations_replies(self, params):
        """A thread oldest first: the parent (on the first page), then
        its replies between oldest and latest; a cursor continues with
        newer replies."""
        args = self._history_args(params)
        if isinstance(args, dict):
            return args
        msgs, oldest, latest, inclusive, limit, cursor = args
        parent = params.get("ts")
        if not isinstance(parent, str) or not parent:
            return {"ok": False, "error": "invalid_arguments"}
        head = [v for v in msgs if v[1]["ts"] == parent]
        if not head:
            return {"ok": False, "error": "thread_not_found"}

        def wanted(v):
            key, m = v
            if m.get("thread_ts") != parent or m["ts"] == parent:
                return False
            if inclusive:
                inside = oldest <= key <= latest
            else:
                inside = oldest < key < latest
            return inside and not (cursor and key <= float(cursor))
        items = sorted(filter(wanted, msgs), key=lambda v: v[0])
        if not cursor:
            items = head + items
        page, more, nxt = self._history_page(items, limit)
        return {"ok": True, "messages": page, "has_more": more,
                "response_metadata": {"next_cursor": nxt}}

    _API_HANDLERS = dict(_API_HANDLERS, **{
        "conversations.history": "_api_conversations_history",
        "conversations.replies": "_api_conversations_replies",
    })

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
        split = urllib.parse.urlsplit(path)
        m = _RTM_PATH.match(split.path)
        if split.path == "/link/":
            ticket = urllib.parse.parse_qs(split.query).get("ticket", [None])
            m = None
            sm_sid = ticket[0]
        else:
            sm_sid = None
        with self._lock:
            sid = m.group(1) if m else sm_sid
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
            sess.socket = ws.sid in self._sm_sids
            sess.sm_host = "applink-fake-%d" % sess.index
            too_many = sess.socket and sum(
                1 for s in self._sessions
                if s.open and s.socket) >= _SM_MAX_CONNECTIONS
            self._sessions.append(sess)
            if not sess.socket:
                # At most one live RTM session (one slackd leading).
                others = [o.index for o in self._sessions
                          if o is not sess and o.open and not o.socket]
                self._rtm_live_max = max(self._rtm_live_max, len(others) + 1)
                if others:
                    self._rtm_overlaps.append((sess.index, others))
            hello, delay = self._hello, self._hello_delay
            sess.hello_expected = hello and not too_many
        ws.session = sess
        self._trace("ws session #%d connected (sid %s)" % (sess.index, sess.sid))
        sess._writer_task = asyncio.ensure_future(self._ws_writer(sess))
        if sess.socket:
            asyncio.ensure_future(self._sm_pinger(sess))
        if too_many:
            self._enqueue(sess, {"type": "disconnect",
                                 "reason": "too_many_websockets",
                                 "debug_info": {"host": sess.sm_host}})
            self._enqueue_close(sess, 1000, "", None)
        elif hello:
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
        if not sess.open:
            return
        if sess.socket:
            with self._lock:
                n = sum(1 for s in self._sessions if s.open and s.socket)
            self._enqueue(sess, {
                "type": "hello", "num_connections": n,
                "debug_info": {"host": sess.sm_host, "build_number": 1,
                               "approximate_connection_time": 18060},
                "connection_info": {"app_id": DEFAULT_APP_ID}}, hello=True)
            return
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
            delay = self._ack_delay
        if sess.socket:
            self._sm_frame(sess, obj)
            return
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
            if delay > 0:
                self._loop.call_later(
                    delay, self._answer_message, sess, obj, mid, ts)
            else:
                self._answer_message(sess, obj, mid, ts)
        elif typ == "typing":
            pass
        elif mid is not None:
            self._enqueue(sess, {"ok": False, "reply_to": mid, "error": {
                "code": 3, "msg": "unsupported type"}})

    def _answer_message(self, sess, obj, mid, ts):
        """The ack of a chat message and its echo, on sess."""
        text = obj.get("text")
        channel = obj.get("channel")
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
        self._record_history(echo)
        self._enqueue(sess, echo)

    def next_ts(self):
        """A Slack-style ts "<unix>.<6 digits>", strictly increasing."""
        with self._lock:
            us = max(int(time.time() * 1e6), self._last_ts_us + 1)
            self._last_ts_us = us
        return "%d.%06d" % divmod(us, 1_000_000)

    # -- outgoing frames --------------------------------------------------
    def _enqueue(self, sess, obj, done=None, hello=False):
        """Queue a frame for the session's writer (loop thread only).
        obj: dict -> compact JSON text; str -> text as is; RawText -> text
        with these bytes; bytes -> binary.
        `done` (concurrent Future) gets True once written, False if the
        connection was closed first."""
        if not sess.open:
            if done is not None and not done.done():
                done.set_result(False)
            return
        if isinstance(obj, RawText):
            payload = obj
        elif isinstance(obj, (bytes, bytearray)):
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
            if len(batch) == 1 and not isinstance(batch[0][1], RawText):
                await ws.send(batch[0][1])
                return True
            await ws.ensure_open()
            chunks = []
            for it in batch:
                payload = it[1]
                if isinstance(payload, str):
                    frame = Frame(OP_TEXT, payload.encode("utf-8"))
                elif isinstance(payload, RawText):
                    frame = Frame(OP_TEXT, bytes(payload))
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
        """Send one frame: dict -> JSON text, str -> raw text, RawText ->
        text frame of exactly those bytes (UTF-8 or not), bytes -> binary.
        With wait=True block until it was handed to the socket and return
        True (False if the session closed first)."""
        self._require_running()
        sess = self._target(session)
        self._record_history(event)
        done = concurrent.futures.Future()
        if sess.socket and self._sm_wraps(event):
            self._loop.call_soon_threadsafe(
                self._sm_event, event, session, done)
            return self._wait(done, wait, timeout, "emit")
        self._loop.call_soon_threadsafe(self._enqueue, sess, event, done)
        return self._wait(done, wait, timeout, "emit")

    def emit_many(self, events, session=None, wait=True, timeout=60):
        """Send a list of frames in order (encoded here, in the caller's
        thread, then queued in one go).  Returns like emit()."""
        self._require_running()
        sess = self._target(session)
        if sess.socket:
            events = list(events)
            done = concurrent.futures.Future()

            def deliver_all():
                for i, ev in enumerate(events):
                    last = done if i == len(events) - 1 else None
                    if self._sm_wraps(ev):
                        self._sm_event(ev, session, last)
                    else:
                        self._enqueue(sess, ev, last)
                if not events:
                    _resolve(done, True)
            self._loop.call_soon_threadsafe(deliver_all)
            return self._wait(done, wait, timeout, "emit_many")
        items = []
        for ev in events:
            if isinstance(ev, RawText):
                items.append((ev, ev))
            elif isinstance(ev, (bytes, bytearray)):
                items.append((bytes(ev), ev))
            elif isinstance(ev, str):
                items.append((ev, ev))
            else:
                items.append((_dumps(ev), ev))
                self._record_history(ev)
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
        """Send one frame to every open session (no waiting); under Socket
        Mode one envelope, to one session."""
        if any(s.socket for s in self.open_sessions):
            self.emit(event, wait=False)
            return
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
    # Socket Mode
    # ------------------------------------------------------------------
    def _apps_connections_open(self, headers, verb="POST"):
        auth = headers.get("authorization")
        with self._lock:
            if verb != "POST":
                return {"ok": False, "error": "invalid_arguments"}
            if auth is None:
                return {"ok": False, "error": "not_authed"}
            if auth == "Bearer " + self._token or \
                    (auth.startswith("Bearer xox")):
                return {"ok": False, "error": "not_allowed_token_type"}
            if auth != "Bearer " + self.app_token:
                return {"ok": False, "error": "invalid_auth"}
            if self._sm_app_error is not None:
                return {"ok": False, "error": self._sm_app_error}
            sid = secrets.token_urlsafe(16)
            self._sids[sid] = "issued"
            self._sm_sids.add(sid)
        base = "%s://%s:%d/link/" % ("wss" if self.tls else "ws", self.host,
                                     self._ws_port)
        return {"ok": True, "url": "%s?ticket=%s&app_id=%s"
                % (base, sid, DEFAULT_APP_ID)}

    def set_app_error(self, error):
        """apps.connections.open answers {"ok":false,"error":error} (None:
        normally again)."""
        with self._lock:
            self._sm_app_error = error

    @staticmethod
    def _sm_wraps(event):
        return isinstance(event, dict) and "envelope_id" not in event and \
            event.get("type") not in ("hello", "disconnect")

    def _sm_open(self, exclude=None):
        with self._lock:
            live = [s for s in self._sessions
                    if s.open and s.socket and s.hello_sent]
        other = [s for s in live if s is not exclude]
        return other or live

    def _sm_new(self, kind, payload, accepts=False):
        with self._lock:
            self._sm_seq += 1
            eid = "env-%06d-%s" % (self._sm_seq, secrets.token_hex(4))
            rec = {"envelope_id": eid, "type": kind, "payload": payload,
                   "accepts_response_payload": accepts, "attempt": 0,
                   "deliveries": [], "acks": []}
            self._sm_envelopes[eid] = rec
            self._sm_order.append(eid)
        return rec

    def _sm_event(self, event, session=None, done=None):
        """Wrap event in an events_api envelope and deliver it (loop)."""
        with self._lock:
            n = self._sm_seq + 1
        payload = {"token": "verification-token-unused",
                   "team_id": self.team["id"], "api_app_id": DEFAULT_APP_ID,
                   "event": event, "type": "event_callback",
                   "event_id": "Ev%08dFAKE" % n,
                   "event_time": int(time.time()),
                   "authorizations": [{"team_id": self.team["id"],
                                       "user_id": self.self_user["id"],
                                       "is_bot": True}],
                   "is_ext_shared_channel": False,
                   "event_context": "4-fake-%d" % n}
        if isinstance(event, dict) and event.get("type") == "app_rate_limited":
            payload = dict(event, api_app_id=DEFAULT_APP_ID,
                           team_id=self.team["id"])
        rec = self._sm_new("events_api", payload)
        self._sm_deliver(rec, session, done)
        return rec["envelope_id"]

    def _sm_deliver(self, rec, session=None, done=None, exclude=None):
        """Send rec's envelope to one open session (loop thread)."""
        if session is not None and session.open:
            targets = [session]
        else:
            targets = self._sm_open(exclude)
        if not targets:
            _resolve(done, False)
            self._loop.call_later(self.sm_retry_after, self._sm_check,
                                  rec["envelope_id"], rec["attempt"])
            return
        with self._lock:
            self._sm_rr += 1
            sess = targets[self._sm_rr % len(targets)]
        env = {"envelope_id": rec["envelope_id"], "payload": rec["payload"],
               "type": rec["type"],
               "accepts_response_payload": rec["accepts_response_payload"]}
        if rec["attempt"] > 0:
            env["retry_attempt"] = rec["attempt"]
            env["retry_reason"] = "timeout"
        else:
            env["retry_attempt"] = 0
            env["retry_reason"] = ""
        delivery = {"session": sess.index, "attempt": rec["attempt"],
                    "t": None}
        with self._lock:
            rec["deliveries"].append(delivery)
        written = concurrent.futures.Future()

        def on_written(f):
            with self._lock:
                delivery["t"] = time.monotonic()
            _resolve(done, f.result())
        written.add_done_callback(on_written)
        self._enqueue(sess, env, written)
        self._loop.call_later(self.sm_retry_after, self._sm_check,
                              rec["envelope_id"], rec["attempt"])

    def _sm_check(self, eid, attempt):
        with self._lock:
            rec = self._sm_envelopes.get(eid)
            if rec is None or rec["acks"] or rec["attempt"] != attempt:
                return
            if rec["attempt"] >= self.sm_max_retries:
                rec["gave_up"] = True
                return
            rec["attempt"] += 1
            last = rec["deliveries"][-1]["session"] if rec["deliveries"] \
                else None
            exclude = None
            for s in self._sessions:
                if s.index == last:
                    exclude = s
        self._trace("sm: retrying %s (attempt %d)" % (eid, rec["attempt"]))
        self._sm_deliver(rec, exclude=exclude)

    def _sm_frame(self, sess, obj):
        eid = obj.get("envelope_id")
        if eid is None:
            return
        now = time.monotonic()
        with self._lock:
            rec = self._sm_envelopes.get(eid)
            if rec is None:
                return
            sent = [d["t"] for d in rec["deliveries"]
                    if d["session"] == sess.index and d["t"] is not None]
            delay = now - sent[-1] if sent else None
            rec["acks"].append({"t": now, "session": sess.index,
                                "payload": obj.get("payload"),
                                "delay": delay})

    async def _sm_pinger(self, sess):
        """Slack's WebSocket PINGs, every sm_ping_interval seconds."""
        try:
            while sess.open:
                await asyncio.sleep(self.sm_ping_interval)
                if not sess.open or sess.stall_mode is not None:
                    continue
                try:
                    await sess._ws.ping(
                        ("Ping from %s" % sess.sm_host).encode())
                except Exception:
                    return
        except asyncio.CancelledError:
            pass

    def sm_envelopes(self, type=None):
        """Copies of the envelope records, oldest first: envelope_id, type,
        payload, attempt, deliveries [{session, attempt, t}], acks [{t,
        session, payload, delay}]."""
        with self._lock:
            return [copy.deepcopy(self._sm_envelopes[e])
                    for e in self._sm_order
                    if type is None or self._sm_envelopes[e]["type"] == type]

    def sm_unacked(self):
        return [r for r in self.sm_envelopes() if not r["acks"]]

    def sm_late_acks(self, limit=0.1):
        """Acks that came more than limit seconds after their envelope
        was written to that session."""
        late = []
        for r in self.sm_envelopes():
            for a in r["acks"]:
                if a["delay"] is not None and a["delay"] > limit:
                    late.append((r["envelope_id"], a["delay"]))
        return late

    def sm_disconnect(self, reason, session=None, close_after=None,
                      wait=True):
        """Send {"type":"disconnect","reason":reason}; close with 1000
        after close_after seconds (None: leave it open)."""
        sess = self._target(session)
        r = self.emit({"type": "disconnect", "reason": reason,
                       "debug_info": {"host": sess.sm_host}},
                      session=sess, wait=wait)
        if close_after is not None:
            def later():
                self._loop.call_later(close_after, self._enqueue_close,
                                      sess, 1000, "", None)
            self._loop.call_soon_threadsafe(later)
        return r

    def _sm_request(self, kind, payload, accepts, session):
        self._require_running()
        rec = self._sm_new(kind, payload, accepts)
        done = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._sm_deliver, rec, session, done)
        self._wait(done, True, 10, kind)
        return rec["envelope_id"]

    def sm_slash_command(self, command="/deploy", text="", accepts=True,
                         session=None):
        """Send a slash_commands envelope; returns its envelope_id."""
        payload = {"token": "unused", "team_id": self.team["id"],
                   "team_domain": self.team.get("domain", "fake"),
                   "channel_id": "C0GENERAL", "channel_name": "general",
                   "user_id": "U0ALICE", "user_name": "alice",
                   "command": command, "text": text,
                   "api_app_id": DEFAULT_APP_ID,
                   "response_url": "https://hooks.invalid/commands/1",
                   "trigger_id": "1.2.fake"}
        return self._sm_request("slash_commands", payload, accepts, session)

    def sm_interactive(self, payload=None, accepts=True, session=None):
        payload = payload or {"type": "block_actions",
                              "user": {"id": "U0ALICE"},
                              "api_app_id": DEFAULT_APP_ID,
                              "actions": [{"action_id": "ok"}]}
        return self._sm_request("interactive", payload, accepts, session)

    def sm_sessions(self):
        return [s for s in self.sessions if s.socket]

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
                socket_mode = [s for s in targets if s.socket]
                targets = [s for s in targets if not s.socket]
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
                if socket_mode:       # one envelope, to one connection
                    self._sm_event(dict(ev, channel_type="channel"))
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
        description="Fake Slack Web API + RTM and Socket Mode WebSocket "
        "server.")
    ap.add_argument("--token",
                    default=os.environ.get("FAKESLACK_TOKEN", DEFAULT_TOKEN),
                    help="accepted bot token (default $FAKESLACK_TOKEN or %s)"
                    % DEFAULT_TOKEN)
    ap.add_argument("--app-token",
                    default=os.environ.get("FAKESLACK_APP_TOKEN",
                                           DEFAULT_APP_TOKEN),
                    help="accepted Socket Mode app-level token (default "
                    "$FAKESLACK_APP_TOKEN or %s)" % DEFAULT_APP_TOKEN)
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
                     log=None if args.quiet else log,
                     app_token=args.app_token)
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
