"""Socket Mode: the RTM scenarios that apply, run with the app-level token
against the fake's Socket Mode, and what only Socket Mode has (envelopes,
acks, retries, disconnect reasons, several connections, slash commands)."""

import json
import os
import threading
import time

import pytest

from conftest import APP_TOKEN, TOKEN, wait_until


def sm_connected(d, fake, n=2, timeout=10):
    """Wait until slackd holds n live Socket Mode connections."""
    def live():
        st = d.status()
        conns = st.get("connections") or []
        return len([c for c in conns if c["state"] == "live"]) >= n
    wait_until(live, timeout, what="%d live Socket Mode connections" % n)


def events(n, start=0, channel="C1"):
    return [{"type": "message", "channel": channel, "text": "m%d" % i,
             "user": "U0ALICE", "ts": "1700000000.%06d" % i, "seq": i}
            for i in range(start, start + n)]


def collect(c, n, timeout=20):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            m = c.recv(max(0.1, deadline - time.monotonic()))
        except AssertionError:
            break
        if m.get("type") == "message" and "seq" in m:
            got.append(m["seq"])
    return got


def sm_summary(fake, missing):
    """What the fake did with the envelopes of the missing seqs."""
    out = []
    for r in fake.sm_envelopes("events_api"):
        ev = r["payload"].get("event", {})
        if ev.get("seq") in missing and len(out) < 5:
            out.append({"seq": ev["seq"], "deliveries": r["deliveries"],
                        "acks": r["acks"], "gave_up": r.get("gave_up")})
    return out


# ---- hello and status ------------------------------------------------------

def test_hello_and_status(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    h = c.hello
    assert h["state"] == "connected" and h["upstream"] == "socket"
    assert h["team"]["id"] == "T0FAKE" and h["self"]["id"] == "U0BOT"
    assert h["app_id"] == "A0FAKE"
    st = d.status()
    assert st["upstream"] == "socket" and st["app_id"] == "A0FAKE"
    conns = st["connections"]
    assert len(conns) == 2
    for conn in conns:
        assert conn["state"] == "live"
        assert conn["host"].startswith("applink-fake-")
        assert conn["approximate_lifetime"] == 18060
        assert conn["connected_since"] > 0
    assert st["app_rate_limited"] == 0
    # apps.connections.open: POST, app token in the header only
    opens = [a for a in sm_fake.api_calls
             if a["method"] == "apps.connections.open"]
    assert len(opens) == 2
    for a in opens:
        assert a["http_method"] == "POST"
        assert a["headers"]["authorization"] == "Bearer " + APP_TOKEN
        assert APP_TOKEN not in a["path"]
        assert APP_TOKEN.encode() not in a["body"]
    p = d.ctl("status")
    assert p.returncode == 0, p.stderr
    assert "A0FAKE" in p.stdout and "applink-fake-" in p.stdout


def test_rtm_hello_says_rtm(daemon):
    assert daemon.client().hello["upstream"] == "rtm"


def test_upstream_rtm_ignores_app_token(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(upstream="rtm").start()
    assert d.client().hello["upstream"] == "rtm"
    assert not [a for a in sm_fake.api_calls
                if a["method"] == "apps.connections.open"]


def test_upstream_socket_without_app_token(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(upstream="socket", app_token=None)
    d.expected_exit = 78
    d.start(wait=None)
    assert d.wait_exit() == 78
    assert "upstream = socket needs the app's app-level token" \
        in d.log_text()


def test_app_token_file_readable_by_others_refused(sm_daemon_factory,
                                                   sm_fake):
    d = sm_daemon_factory()
    d.write_config()
    os.chmod(d.app_token_path, 0o644)
    d.expected_exit = 78
    d.start(wait=None)
    assert d.wait_exit() == 78
    assert "is accessible by group or others (mode 0644)" in d.log_text()


def test_app_token_from_env(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(app_token=None)
    d.start(env={"SLACK_APP_TOKEN": APP_TOKEN})
    assert d.client().hello["upstream"] == "socket"
    with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
        assert APP_TOKEN.encode() not in f.read()


def test_app_token_via_credentials(sm_daemon_factory, sm_fake, tmp_path):
    cred = tmp_path / "creds"
    cred.mkdir()
    fd = os.open(str(cred / "slack-app-token"), os.O_WRONLY | os.O_CREAT,
                 0o600)
    os.write(fd, APP_TOKEN.encode() + b"\n")
    os.close(fd)
    d = sm_daemon_factory(app_token=None)
    d.start(env={"CREDENTIALS_DIRECTORY": str(cred)})
    assert d.client().hello["upstream"] == "socket"
    assert "systemd credential slack-app-token" in d.log_text()


def test_blank_app_credential_means_rtm(sm_daemon_factory, sm_fake,
                                        tmp_path):
    """The units' default when the app-token file is missing (a credential
    holding a newline) is no app-level token: RTM."""
    cred = tmp_path / "creds"
    cred.mkdir()
    (cred / "slack-app-token").write_text("\n")
    os.chmod(str(cred / "slack-app-token"), 0o400)
    d = sm_daemon_factory(app_token=None)
    d.start(env={"CREDENTIALS_DIRECTORY": str(cred)})
    assert d.client().hello["upstream"] == "rtm"


# ---- events ----------------------------------------------------------------

def test_fanout_three_clients_nothing_lost_acks_fast(sm_daemon_factory,
                                                     sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    clients = [d.client() for _ in range(3)]
    n = 1000
    sm_fake.emit_many(events(n))
    for c in clients:
        got = collect(c, n)
        assert sorted(got) == list(range(n)), "missing or duplicated"
        assert len(got) == n
    wait_until(lambda: not sm_fake.sm_unacked(), 5, what="every ack")
    # envelopes went to both connections
    used = {r["deliveries"][0]["session"] for r in sm_fake.sm_envelopes()}
    assert len(used) == 2


def test_every_envelope_acked_within_100ms(sm_daemon_factory, sm_fake):
    """Events at a steady 200/s for 3 s: the fake times each ack from the
    moment it wrote the envelope; none may take over 100 ms."""
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    n = 600
    evs = events(n)
    t0 = time.monotonic()
    for i in range(0, n, 10):
        sm_fake.emit_many(evs[i:i + 10], wait=False)
        time.sleep(max(0, t0 + (i + 10) / 200 - time.monotonic()))
    assert sorted(collect(c, n)) == list(range(n))
    wait_until(lambda: not sm_fake.sm_unacked(), 5, what="every ack")
    late = sm_fake.sm_late_acks(0.1)
    assert late == [], "%d of %d acks late, the worst %.0f ms" % (
        len(late), n, 1000 * max(dl for _, dl in late))
    assert all(len(r["deliveries"]) == 1 for r in sm_fake.sm_envelopes()), \
        "an envelope was sent again: its ack was missed"


def test_event_forwarded_unchanged(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    ev = {"type": "message", "channel": "C1", "text": "a/b \u00e9 \"q\"",
          "blocks": [{"type": "section", "x": [1, 2.5, None, True]}],
          "channel_type": "channel"}
    sm_fake.emit(ev)
    m = c.recv_until(lambda m: m.get("type") == "message")
    assert m == ev
    raw = [line for line in c.lines if '"type":"message"' in line]
    assert raw[-1].rstrip("\n") == json.dumps(
        ev, separators=(",", ":"), ensure_ascii=False)


def test_retried_envelope_forwarded_once(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    # A repeat of an event already delivered: same event_id, new envelope
    # and attempt, on the other connection (as after a lost ack).
    sess = sm_fake.sm_sessions()
    payload = {"type": "event_callback", "team_id": "T0FAKE",
               "event_id": "Ev0DUP", "event": events(1, 7)[0]}
    for i, s in enumerate(sess[:2]):
        sm_fake.emit({"envelope_id": "dup-%d" % i, "type": "events_api",
                      "accepts_response_payload": False,
                      "retry_attempt": i, "retry_reason": "timeout" if i
                      else "", "payload": payload}, session=s)
    sm_fake.emit(events(1, 8)[0])
    got = collect(c, 2, timeout=5)
    assert got == [7, 8]
    # both copies were acknowledged, on their own connections
    wait_until(lambda: all(
        any(f.get("envelope_id") == "dup-%d" % i for f in s.received)
        for i, s in enumerate(sess[:2])), 5, what="acks of both copies")


def test_unacked_envelope_retried_by_fake_reaches_once(sm_daemon_factory,
                                                       sm_fake):
    """The fake retries what is not acked in time on another connection;
    slackd forwards the event once (here: one connection stalls)."""
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    s1, s2 = sm_fake.sm_sessions()[:2]
    sm_fake.stall("noread", session=s1)
    for ev in events(4):
        sm_fake.emit(ev, wait=False)
    got = collect(c, 4, timeout=15)
    assert sorted(got) == [0, 1, 2, 3]
    assert not collect(c, 1, timeout=1)


def test_app_rate_limited_forwarded_and_counted(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    sm_fake.emit({"type": "app_rate_limited", "minute_rate_limited":
                  1518467820})
    m = c.recv_until(lambda m: m.get("type") == "app_rate_limited")
    assert m["minute_rate_limited"] == 1518467820
    wait_until(lambda: d.status()["app_rate_limited"] == 1, 5,
               what="the count in status")


# ---- sending ---------------------------------------------------------------

def test_message_is_chat_postmessage(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    a, b = d.client(), d.client()
    r = a.request({"id": 5, "type": "message", "channel": "C0GENERAL",
                   "text": "hi there"})
    assert r["ok"] is True and r["reply_to"] == 5
    assert r["text"] == "hi there" and r["ts"]
    assert set(r) == {"ok", "reply_to", "ts", "text"}
    posts = sm_fake.posts
    assert posts[-1]["text"] == "hi there"
    assert posts[-1]["channel_id"] == "C0GENERAL"
    call = [x for x in sm_fake.api_calls
            if x["method"] == "chat.postMessage"][-1]
    assert call["headers"]["authorization"] == "Bearer " + TOKEN
    assert not [line for line in b.drain() if '"reply_to":5' in line]
    # nothing is written on the Socket Mode WebSockets but acks
    for s in sm_fake.sm_sessions():
        assert all(set(f) <= {"envelope_id", "payload"} for f in s.received)


def test_thread_and_broadcast_reach_slack(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    r = c.request({"id": 1, "type": "message", "channel": "#general",
                   "text": "in thread", "thread_ts": "1700000000.000100",
                   "reply_broadcast": True})
    assert r["ok"] is True
    p = sm_fake.posts[-1]
    assert p["thread_ts"] == "1700000000.000100"
    assert p["reply_broadcast"] in (True, "true", "1")


def test_slack_error_reaches_client(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    sm_fake.archive_channel("C0RANDOM", emit=False)
    r = c.request({"id": 9, "type": "message", "channel": "C0RANDOM",
                   "text": "x"})
    assert r["ok"] is False and r["reply_to"] == 9
    assert "is_archived" in json.dumps(r)


def test_typing_refused_clearly(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    c = d.client()
    r = c.request({"id": 3, "type": "typing", "channel": "C0GENERAL"})
    assert r["ok"] is False
    assert "typing indicators do not exist for Slack apps" in \
        r["error"]["msg"]


# ---- disconnects and faults ------------------------------------------------

@pytest.mark.parametrize("reason", ["refresh_requested", "warning",
                                    "something_new"])
def test_disconnect_at_1000_per_s(sm_daemon_factory, sm_fake, reason):
    """Make-before-break: Slack asks a connection to go while events flow at
    about 1,000/s; every event reaches the client exactly once."""
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    n = 3000
    evs = events(n)
    old = sm_fake.sm_sessions()[0]

    def stream():
        for i in range(0, n, 50):
            sm_fake.emit_many(evs[i:i + 50], wait=False)
            time.sleep(0.05)
    t = threading.Thread(target=stream)
    t.start()
    time.sleep(0.5)
    sm_fake.sm_disconnect(reason, session=old, close_after=1.0)
    t.join()
    got = collect(c, n, timeout=30)
    assert len(got) == n and sorted(got) == list(range(n)), \
        "missed %d, duplicated %d; fake: %s" % (
            len(set(range(n)) - set(got)), len(got) - len(set(got)),
            sm_summary(sm_fake, set(range(n)) - set(got)))
    wait_until(lambda: not old.open, 10, what="old connection closed")
    # the replacement was asked for before the old one closed
    opens = [a for a in sm_fake.api_calls
             if a["method"] == "apps.connections.open"]
    assert len(opens) >= 3
    assert opens[2]["t"] < old.closed_at
    sm_connected(d, sm_fake)
    if reason == "something_new":
        assert "undocumented reason \"something_new\"" in d.log_text()


def test_one_of_two_killed_mid_stream(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    n = 2000
    evs = events(n)
    victim = sm_fake.sm_sessions()[1]

    def stream():
        for i in range(0, n, 50):
            sm_fake.emit_many(evs[i:i + 50], wait=False)
            time.sleep(0.05)
    t = threading.Thread(target=stream)
    t.start()
    time.sleep(0.5)
    sm_fake.drop(session=victim)
    t.join()
    got = collect(c, n, timeout=30)
    assert sorted(set(got)) == list(range(n)), \
        "missed %d" % len(set(range(n)) - set(got))
    assert len(got) == n, "duplicated %d" % (len(got) - len(set(got)))
    sm_connected(d, sm_fake)


def test_stall_reconnects(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    s = sm_fake.sm_sessions()[0]
    sm_fake.stall("noread", session=s)
    wait_until(lambda: not s.open or d.status()["connections"][0][
        "session"] != 1, 15, what="the stalled connection replaced")
    sm_connected(d, sm_fake)
    assert "no pong from Slack" in d.log_text() or \
        "nothing from Slack" in d.log_text()


def test_refused_upgrade_reconnects(sm_daemon_factory, sm_fake):
    sm_fake.refuse_upgrade(1)
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    hs = sm_fake.handshakes
    assert hs[0]["result"] == "refused"


def test_slackd_pings_and_answers_slack_pings(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    s = sm_fake.sm_sessions()[0]
    wait_until(lambda: s.ws_pings >= 2, 10, what="WebSocket PINGs")
    wait_until(lambda: d.status()["last_pong_rtt_ms"] is not None, 5,
               what="a round trip")
    time.sleep(2.5)  # the fake pings every second: slackd answers
    assert s.open


def test_too_many_websockets_backs_off(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(connections=1).start()
    sm_connected(d, sm_fake, 1)
    s = sm_fake.sm_sessions()[0]
    sm_fake.sm_disconnect("too_many_websockets", session=s)
    wait_until(lambda: not s.open, 5, what="closed first")
    sm_connected(d, sm_fake, 1)
    assert "too_many_websockets" in d.log_text()


def test_429_retry_after(sm_daemon_factory, sm_fake):
    sm_fake.queue_api_response(429, {"ok": False, "error": "ratelimited"},
                               {"Retry-After": "1"},
                               method="apps.connections.open")
    d = sm_daemon_factory(connections=1).start(wait=None)
    d.wait_state("connected", 10)
    opens = [a for a in sm_fake.api_calls
             if a["method"] == "apps.connections.open"]
    assert opens[0]["status"] == 429
    assert opens[1]["t"] - opens[0]["t"] >= 0.95


# ---- fatal -----------------------------------------------------------------

def test_link_disabled_exits_78(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    d.expected_exit = 78
    sm_fake.sm_disconnect("link_disabled")
    assert d.wait_exit() == 78
    assert "Socket Mode is switched off" in d.log_text()


@pytest.mark.parametrize("error", ["invalid_auth", "account_inactive",
                                   "token_revoked", "team_disabled"])
def test_fatal_app_token_errors(sm_daemon_factory, sm_fake, error):
    sm_fake.set_app_error(error)
    d = sm_daemon_factory()
    d.expected_exit = 78
    d.start(wait=None)
    assert d.wait_exit() == 78
    assert error in d.log_text()


def test_bot_token_given_as_app_token(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(app_token=TOKEN)
    d.expected_exit = 78
    d.start(wait=None)
    assert d.wait_exit() == 78
    text = d.log_text()
    assert "not_allowed_token_type" in text and "xapp-" in text


# ---- slash commands ----------------------------------------------------------

def test_slash_command_answered(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(ack_wait="2").start()
    sm_connected(d, sm_fake)
    c, other = d.client(), d.client()
    eid = sm_fake.sm_slash_command("/deploy", "now")
    m = c.recv_until(lambda m: m.get("type") == "slackd.slash_command")
    assert m["envelope_id"] == eid
    assert m["payload"]["command"] == "/deploy"
    assert m["payload"]["text"] == "now"
    assert m["accepts_response_payload"] is True
    r = c.request({"id": 11, "type": "slackd.ack", "envelope_id": eid,
                   "payload": {"text": "deploying"}})
    assert r == {"ok": True, "reply_to": 11}
    wait_until(lambda: sm_fake.sm_envelopes("slash_commands")[0]["acks"], 5,
               what="the ack")
    ack = sm_fake.sm_envelopes("slash_commands")[0]["acks"]
    assert len(ack) == 1 and ack[0]["payload"] == {"text": "deploying"}
    r = other.request({"id": 12, "type": "slackd.ack", "envelope_id": eid,
                       "payload": {"text": "late"}})
    assert r["ok"] is False
    assert "already answered" in r["error"]["msg"]


def test_slash_command_unanswered(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(ack_wait="0.5").start()
    sm_connected(d, sm_fake)
    c = d.client()
    eid = sm_fake.sm_slash_command("/deploy", "")
    c.recv_until(lambda m: m.get("type") == "slackd.slash_command")
    t0 = time.monotonic()
    wait_until(lambda: sm_fake.sm_envelopes("slash_commands")[0]["acks"], 5,
               what="the empty ack")
    assert time.monotonic() - t0 < 2
    ack = sm_fake.sm_envelopes("slash_commands")[0]["acks"]
    assert len(ack) == 1 and ack[0]["payload"] is None
    r = c.request({"id": 2, "type": "slackd.ack", "envelope_id": eid,
                   "payload": {"text": "too late"}})
    assert r["ok"] is False and "ack_wait" in r["error"]["msg"]
    r = c.request({"id": 3, "type": "slackd.ack", "envelope_id": "nope"})
    assert r["ok"] is False


def test_slash_command_payload_too_big(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(ack_wait="2").start()
    sm_connected(d, sm_fake)
    c = d.client()
    eid = sm_fake.sm_slash_command("/big", "")
    c.recv_until(lambda m: m.get("type") == "slackd.slash_command")
    r = c.request({"id": 1, "type": "slackd.ack", "envelope_id": eid,
                   "payload": {"text": "x" * 20000}})
    assert r["ok"] is False and "at most 16000" in r["error"]["msg"]
    r = c.request({"id": 2, "type": "slackd.ack", "envelope_id": eid,
                   "payload": {"text": "short"}})
    assert r == {"ok": True, "reply_to": 2}
    wait_until(lambda: sm_fake.sm_envelopes("slash_commands")[0]["acks"], 5,
               what="the ack")
    assert sm_fake.sm_envelopes("slash_commands")[0]["acks"][0][
        "payload"] == {"text": "short"}


def test_interactive_forwarded(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    c = d.client()
    eid = sm_fake.sm_interactive()
    m = c.recv_until(lambda m: m.get("type") == "slackd.interactive")
    assert m["envelope_id"] == eid
    assert m["payload"]["type"] == "block_actions"
    r = c.request({"id": 1, "type": "slackd.ack", "envelope_id": eid})
    assert r["ok"] is True
    wait_until(lambda: sm_fake.sm_envelopes("interactive")[0]["acks"], 5,
               what="the ack")


# ---- what ships -------------------------------------------------------------

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def test_manifest_asks_for_what_slackd_needs():
    with open(os.path.join(SRC, "conf", "slack-app-manifest.json")) as f:
        m = json.load(f)
    assert m["settings"]["socket_mode_enabled"] is True
    events = set(m["settings"]["event_subscriptions"]["bot_events"])
    assert {"message.channels", "message.groups", "message.im",
            "message.mpim", "app_mention", "channel_rename",
            "user_change", "team_join"} <= events
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "channels:history", "groups:history",
            "im:history", "mpim:history", "channels:read", "groups:read",
            "im:read", "mpim:read", "users:read", "im:write"} <= scopes


@pytest.mark.parametrize("unit", ["slackd.service.in", "slackd@.service.in"])
def test_units_make_the_app_token_optional(unit):
    with open(os.path.join(SRC, "systemd", unit)) as f:
        lines = f.read().splitlines()
    load = [l for l in lines if l.startswith("LoadCredential=slack-app-token:")]
    dflt = [l for l in lines if l.startswith("SetCredential=slack-app-token:")]
    assert len(load) == 1 and len(dflt) == 1
    # the default is whitespace only, which slackd takes as "none"
    assert dflt[0] == "SetCredential=slack-app-token:\\n"


# ---- slackd --doctor under Socket Mode ----------------------------------------

def run_doctor(d):
    import subprocess
    from conftest import SLACKD
    d.write_config()
    e = dict(os.environ)
    for k in ("SLACK_API_TOKEN", "SLACK_APP_TOKEN", "CREDENTIALS_DIRECTORY"):
        e.pop(k, None)
    p = subprocess.run([SLACKD, "--doctor", "-f", d.conf_path],
                       capture_output=True, text=True, timeout=60, env=e)
    d.outputs.append(p.stdout + p.stderr)
    return p


def test_doctor_checks_the_app_token(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory()
    p = run_doctor(d)
    assert p.returncode == 0, p.stdout
    assert "app-level token: from app_token_file" in p.stdout
    assert "apps.connections.open: Socket Mode accepts the app-level token" \
        in p.stdout
    assert "rtm.connect" not in p.stdout
    assert not [c for c in sm_fake.api_calls if c["method"] == "rtm.connect"]


def test_doctor_explains_a_swapped_token(sm_daemon_factory, sm_fake):
    d = sm_daemon_factory(app_token=TOKEN)
    p = run_doctor(d)
    assert p.returncode == 78, p.stdout
    line = [l for l in p.stdout.splitlines()
            if "apps.connections.open" in l][0]
    assert "not_allowed_token_type" in line and "xapp-" in line


# ---- the example bots work unchanged -----------------------------------------

@pytest.mark.parametrize("name", ["sh", "python", "c"])
def test_example_bot_under_socket_mode(name, sm_daemon_factory, sm_fake,
                                       tmp_path):
    from test_examples import Bot
    d = sm_daemon_factory().start()
    sm_connected(d, sm_fake)
    bot = Bot(name, d, tmp_path)
    try:
        wait_until(lambda: d.status().get("clients", 0) >= 2
                   or bot.proc.poll() is not None, 10, what="the bot")
        assert bot.proc.poll() is None, "the bot exited: " + bot.stderr()
        time.sleep(0.3)
        for text, ts, thread in (("hello", "1700000001.000100", None),
                                 ("ping", "1700000002.000100", None),
                                 ("ping", "1700000003.000200",
                                  "1700000002.999999")):
            ev = {"type": "message", "channel": "C0GENERAL",
                  "user": "U0ALICE", "text": text, "ts": ts,
                  "channel_type": "channel"}
            if thread:
                ev["thread_ts"] = thread
            sm_fake.emit(ev)

        def pongs():
            return [p for p in sm_fake.posts if p.get("text") == "pong"]
        wait_until(lambda: len(pongs()) >= 2, 10,
                   what="two pongs (bot said: %s)" % bot.stderr())
        time.sleep(0.5)
        assert [(p["channel_id"], p.get("thread_ts")) for p in pongs()] == [
            ("C0GENERAL", "1700000002.000100"),
            ("C0GENERAL", "1700000002.999999")]
        assert len(sm_fake.posts) == 2
        assert bot.stderr() == "", bot.stderr()
    finally:
        bot.stop()
