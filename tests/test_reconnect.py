"""Upstream trouble: drops, dead connections, goodbye and migration, a
session that does not start with hello, Slack unreachable (refused, not
resolving), rate limits and reconnect storms, refused tokens, and what
becomes of requests made meanwhile."""

import socket
import time

import pytest

from conftest import wait_until


def connects(fake):
    return [c for c in fake.api_calls if c["method"] == "rtm.connect"]


def test_abrupt_drop_reconnects(daemon, fake):
    c = daemon.client()
    fake.drop()
    st = c.state("reconnecting", 5)
    assert st["reason"]
    c.state("connected", 5)
    assert len(fake.sessions) == 2 and len(connects(fake)) == 2
    fake.emit({"type": "message", "channel": "C1", "text": "after"})
    m = c.recv_until(lambda m: m.get("type") == "message")
    assert m["text"] == "after"
    st = daemon.status()
    assert st["reconnects"] == 1 and st["session"] == 2


@pytest.mark.parametrize("mode", ["ignore", "noread"])
def test_stalled_pongs_detected(daemon_factory, fake, mode):
    d = daemon_factory(ping_interval="1", pong_timeout="1").start()
    c = d.client()
    fake.wait_for(lambda: fake.session.pings(), 5)   # pings flow
    t0 = time.monotonic()
    fake.stall(mode)
    st = c.state("reconnecting", 6)
    took = time.monotonic() - t0
    # At most ping_interval + pong_timeout, plus scheduling slack.
    assert took <= 1 + 1 + 1.0, took
    assert "pong" in st["reason"]
    c.state("connected", 5)
    assert len(fake.sessions) == 2
    # The dead session was dropped at once, not closed with a handshake.
    wait_until(lambda: not fake.sessions[0].open, 5, what="old session gone")


def test_error_event_reconnects(daemon, fake):
    c = daemon.client()
    fake.error_event(1, "Socket URL has expired")
    st = c.state("reconnecting", 5)
    assert "Socket URL has expired" in st["reason"]
    c.state("connected", 5)
    assert len(connects(fake)) == 2


def test_close_1011_reconnects(daemon, fake):
    c = daemon.client()
    fake.close(1011, "internal error")
    st = c.state("reconnecting", 5)
    assert "1011" in st["reason"]
    c.state("connected", 5)


def test_429_retry_after_honoured(daemon_factory, fake):
    fake.queue_api_response(429, {"ok": False, "error": "ratelimited"},
                            {"Retry-After": "2"})
    d = daemon_factory().start(wait="socket")
    d.wait_state("connected", 10)
    calls = connects(fake)
    assert len(calls) == 2 and calls[0]["status"] == 429
    assert calls[1]["t"] - calls[0]["t"] >= 2.0
    assert "429" in d.log_text() and "Retry-After 2" in d.log_text()


def test_ratelimited_body_honours_retry_after(daemon_factory, fake):
    fake.queue_api_response(200, {"ok": False, "error": "ratelimited"},
                            {"Retry-After": "1"})
    d = daemon_factory().start(wait="socket")
    d.wait_state("connected", 10)
    calls = connects(fake)
    assert calls[1]["t"] - calls[0]["t"] >= 1.0


@pytest.mark.parametrize("status,body,expect", [
    (502, "<html><body>Bad gateway</body></html>", "not a JSON object"),
    (500, {"ok": False, "error": "internal_error"}, "internal_error"),
    (200, {"ok": False, "error": "migration_in_progress"},
     "migration_in_progress"),
])
def test_transient_api_errors_retry(daemon_factory, fake, status, body,
                                    expect):
    fake.queue_api_response(status, body)
    d = daemon_factory().start(wait="socket")
    d.wait_state("connected", 10)
    assert len(connects(fake)) == 2
    assert expect in d.log_text()


def test_api_hang_times_out(daemon_factory, fake):
    fake.queue_api_hang()
    d = daemon_factory(connect_timeout="1").start(wait="socket")
    d.wait_state("connected", 10)
    assert "no answer within 1.0 s" in d.log_text()


def test_api_close_retries(daemon_factory, fake):
    fake.queue_api_close()
    d = daemon_factory().start(wait="socket")
    d.wait_state("connected", 10)
    assert len(connects(fake)) == 2


def test_refused_upgrade_retries_with_fresh_rtm_connect(daemon_factory, fake):
    fake.refuse_upgrade(2)
    d = daemon_factory().start(wait="socket")
    d.wait_state("connected", 10)
    assert len(connects(fake)) == 3


def test_hung_upgrade_times_out(daemon_factory, fake):
    fake.hang_upgrade(1)
    d = daemon_factory(connect_timeout="1").start(wait="socket")
    d.wait_state("connected", 10)
    assert "not established within 1.0 s" in d.log_text()


def test_missing_hello_times_out(daemon_factory, fake):
    fake.set_hello_delay(3)
    d = daemon_factory(hello_timeout="0.5").start(wait="socket")
    d.wait_log("no hello from Slack within 0.5 s", 5)
    fake.set_hello_delay(0)
    d.wait_state("connected", 10)


def test_invalid_auth_exits_78(daemon_factory, fake):
    fake.set_token("xoxb-some-other-token")
    d = daemon_factory().start(wait=None)
    d.expected_exit = 78
    assert d.wait_exit(10) == 78
    log = d.log_text()
    assert "invalid_auth" in log and "check the token" in log
    assert len(connects(fake)) == 1
    assert not fake.sessions


def test_not_authed_exits_78(daemon_factory, fake):
    fake.queue_api_response(200, {"ok": False, "error": "account_inactive"})
    d = daemon_factory().start(wait=None)
    d.expected_exit = 78
    assert d.wait_exit(10) == 78
    assert "account_inactive" in d.log_text()


def test_request_while_down_is_sent_after_reconnect(daemon_factory, fake):
    d = daemon_factory(reconnect_min="1", reconnect_max="1").start()
    c = d.client()
    fake.refuse_upgrade(1)
    fake.drop()
    c.state("reconnecting", 5)
    c.send({"id": 9, "type": "message", "channel": "C1", "text": "queued"})
    assert d.status()["queued"] == 1
    r = c.reply(9, 10)
    assert r["ok"] is True and r["text"] == "queued"
    assert [m["text"] for m in fake.messages()] == ["queued"]
    assert fake.messages()[0] in fake.sessions[-1].frames("message")


def test_unacknowledged_request_is_not_confirmed(daemon, fake):
    c = daemon.client()
    fake.hold_acks(True)
    c.send({"id": 4, "type": "message", "channel": "C1", "text": "lost?"})
    fake.wait_for(lambda: fake.messages(), 5)
    fake.drop()
    r = c.reply(4, 5)
    assert r["ok"] is False and r["error"]["name"] == "not_confirmed"
    assert "may or may not" in r["error"]["msg"]
    fake.hold_acks(False)
    c.state("connected", 5)
    time.sleep(0.5)
    assert len(fake.messages()) == 1      # never silently resent
    assert daemon.status()["in_flight"] == 0


def test_ack_timeout_not_confirmed(daemon_factory, fake):
    d = daemon_factory(ack_timeout="1", ping_interval="10",
                       pong_timeout="10").start()
    c = d.client()
    fake.hold_acks(True)
    r = c.request({"id": 2, "type": "message", "channel": "C1",
                   "text": "x"}, 5)
    assert r["error"]["name"] == "not_confirmed"
    assert "within 1 s" in r["error"]["msg"]


def test_queue_timeout(daemon_factory, fake):
    fake.set_api_default(503, "unavailable")
    d = daemon_factory(queue_timeout="1").start(wait="socket")
    d.wait_state("reconnecting", 5)
    c = d.client()
    r = c.request({"id": 1, "type": "message", "channel": "C1",
                   "text": "x"}, 5)
    assert r["error"]["name"] == "timeout"
    assert "HTTP 503" in r["error"]["msg"]


def test_reconnect_storm_is_rate_limited(daemon_factory, fake):
    """A server that keeps failing gets rtm.connect at the tier-1 pace."""
    fake.set_api_default(500, {"ok": False, "error": "internal_error"})
    d = daemon_factory(reconnect_min="0.05", reconnect_max="0.1",
                       rtm_connect_burst="3",
                       rtm_connect_interval="1").start(wait="socket")
    time.sleep(4.2)
    n = len(connects(fake))
    # 3 at once, then one per interval: about 3 + 4.
    assert 5 <= n <= 8, n
    st = d.status()
    assert st["state"] in ("reconnecting", "connecting")
    fake.clear_api_default()
    d.wait_state("connected", 5)


def test_backoff_grows(daemon_factory, fake):
    fake.set_api_default(500, {"ok": False, "error": "internal_error"})
    d = daemon_factory(reconnect_min="0.2", reconnect_max="0.8",
                       rtm_connect_interval="0").start(wait="socket")
    time.sleep(3)
    calls = connects(fake)
    gaps = [b["t"] - a["t"] for a, b in zip(calls, calls[1:])]
    assert gaps and all(0.19 <= g <= 0.8 + 0.3 for g in gaps), gaps
    assert len(calls) <= 3 / 0.2 + 1


def test_team_migration_reconnects(daemon, fake):
    c = daemon.client()
    fake.emit({"type": "team_migration_started"})
    m = c.recv_until(lambda m: m.get("type") == "team_migration_started")
    assert m == {"type": "team_migration_started"}
    c.state("connected", 5)
    assert len(connects(fake)) == 2


def test_first_frame_not_hello(daemon_factory, fake):
    fake.set_hello(False)
    d = daemon_factory().start(wait="socket")
    fake.wait_for(lambda: fake.session, 5)
    fake.emit({"type": "message", "channel": "C1", "text": "too early"})
    d.wait_log(r'first frame from Slack was "message", not hello', 5)
    fake.set_hello(True)
    d.wait_state("connected", 10)


def test_connection_refused(daemon_factory, fake):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                          # nothing listens there now
    d = daemon_factory(api_url="http://127.0.0.1:%d/api/" % port).start(
        wait="socket")
    d.wait_state("reconnecting", 10)
    st = d.status()
    assert "rtm.connect to 127.0.0.1 failed" in st["reason"]
    p = d.ctl("status")
    assert "reconnecting in" in p.stdout and "failed" in p.stdout


def test_host_does_not_resolve(daemon_factory, fake):
    d = daemon_factory(api_url="https://no-such-host.invalid/api/").start(
        wait="socket")
    d.wait_state("reconnecting", 20)
    assert "cannot resolve no-such-host.invalid" in d.status()["reason"]
    c = d.client()
    assert c.request({"id": 1, "type": "ping"})["type"] == "pong"


def test_storm_waits_are_visible(daemon_factory, fake):
    fake.set_api_default(500, {"ok": False, "error": "internal_error"})
    d = daemon_factory(reconnect_min="0.05", reconnect_max="0.1",
                       rtm_connect_burst="2",
                       rtm_connect_interval="3").start(wait="socket")
    time.sleep(1)
    st = d.status()
    assert st["state"] == "reconnecting"
    assert "rate limit" in st["reason"]
    assert 1.0 <= st["retry_in"] <= 3.0
    assert len(connects(fake)) == 2
    p = d.ctl("status")
    assert "reconnecting in" in p.stdout and "rate limit" in p.stdout
