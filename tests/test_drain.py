"""Drain on shutdown: on SIGTERM, messages still queued or waiting for
Slack's acknowledgement get drain_timeout to be sent and acknowledged
before slackd closes the connection; what is left is answered as at any
shutdown."""
import signal
import time

from conftest import wait_until

CH = "C0GENERAL"


def send(c, n, prefix="m"):
    for i in range(n):
        c.send({"id": i, "type": "message", "channel": CH,
                "text": "%s%d" % (prefix, i)})


def test_sigterm_drains_queued_messages(daemon_factory, fake):
    # One message a second, each acknowledged a second after it came: the
    # last of three is written about 2 s after SIGTERM, acked at about 3 s.
    d = daemon_factory(send_rate="1", send_burst="1").start()
    c = d.client()
    fake.delay_acks(1.0)
    send(c, 3)
    fake.wait_for(lambda: fake.messages(), 5)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    replies = [c.reply(i, 10) for i in range(3)]
    assert [r["ok"] for r in replies] == [True, True, True], replies
    assert [r["text"] for r in replies] == ["m0", "m1", "m2"]
    assert d.wait_exit() == 0
    took = time.monotonic() - t0
    assert 1.5 < took < 5, took
    assert [m["text"] for m in fake.messages()] == ["m0", "m1", "m2"]
    # The connection was closed normally, after the last ack (the fake
    # records the close once its side has seen it).
    wait_until(lambda: not fake.sessions[-1].open, 5, what="closed")
    assert fake.sessions[-1].close_code_received == 1000
    d.wait_log(r"every queued message was sent and answered")


def test_drain_timeout_answers_what_is_left(daemon_factory, fake):
    # One message a second and no acks: within drain_timeout (1.5 s) the
    # second is written too, the last two never are.
    d = daemon_factory(send_rate="1", send_burst="1",
                       drain_timeout="1.5").start()
    c = d.client()
    fake.hold_acks(True)
    send(c, 4)
    fake.wait_for(lambda: fake.messages(), 5)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    replies = {i: c.reply(i, 10) for i in range(4)}
    assert d.wait_exit() == 0
    assert 1.3 < time.monotonic() - t0 < 4
    names = [replies[i]["error"]["name"] for i in range(4)]
    # Written but never acknowledged; those still queued were not sent.
    assert names == ["not_confirmed", "not_confirmed", "shutting_down",
                     "shutting_down"], replies
    assert [m["text"] for m in fake.messages()] == ["m0", "m1"]
    d.wait_log(r"drain_timeout: 4 messages still not sent")


def test_drain_timeout_zero_stops_at_once(daemon_factory, fake):
    d = daemon_factory(drain_timeout="0").start()
    c = d.client()
    fake.hold_acks(True)
    send(c, 1)
    fake.wait_for(lambda: fake.messages(), 5)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    r = c.reply(0, 5)
    assert r["error"]["name"] == "not_confirmed"
    assert d.wait_exit() == 0
    assert time.monotonic() - t0 < 2


def test_nothing_queued_stops_at_once(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 1, "type": "message", "channel": CH, "text": "x"})
    assert r["ok"] is True
    t0 = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert time.monotonic() - t0 < 2


def test_not_connected_stops_at_once(daemon_factory, fake):
    """Nothing can go while Slack is unreachable: no wait (see also
    test_daemon's test_sigterm_while_disconnected_answers_queue)."""
    fake.set_api_default(503, "down")
    d = daemon_factory(reconnect_min="5", reconnect_max="5",
                       drain_timeout="30").start(wait="socket")
    c = d.client()
    send(c, 1)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert c.reply(0, 5)["error"]["name"] == "shutting_down"
    assert d.wait_exit() == 0
    assert time.monotonic() - t0 < 3
