"""Reloading the configuration (SIGHUP, `systemctl reload`): clients and
the Slack session carry on, new limits, log level and keepalive timings
apply at once, a new token reconnects, and a bad file or an unusable token
leaves the configuration in force.  Access rules after a reload are in
test_access.py, the RELOADING=1/READY=1 sequence in test_systemd.py."""

import os
import signal
import time

from conftest import TOKEN, wait_until


def test_reload_keeps_clients_and_session(daemon_factory, fake, notify):
    d = daemon_factory(log_level="info")
    d.start(args=(), env={"NOTIFY_SOCKET": notify.path})
    c = d.client()
    assert "debug:" not in d.log_text()
    d.rewrite_config(log_level="debug")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    assert c.request({"id": 1, "type": "ping"})["type"] == "pong"
    c.send({"id": 2, "type": "message", "channel": "C1", "text": "after"})
    assert c.reply(2)["ok"] is True
    assert len(fake.sessions) == 1 and fake.session.open
    st = d.status()
    assert st["session"] == 1 and st["reconnects"] == 0
    d.wait_log("debug: ")      # the new level is in force


def test_reload_applies_limits(daemon_factory, fake):
    d = daemon_factory().start()
    c = d.client()
    line = b'{"id":1,"type":"ping","pad":"' + b"a" * 5000 + b'"}\n'
    c.send_raw(line)
    assert c.reply(1)["type"] == "pong"
    d.rewrite_config(max_line="4K", queue_max="1")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    c.send_raw(line)
    m = c.recv_until(lambda m: "error" in m)
    assert m["error"]["name"] == "line_too_long"
    fake.hold_acks(True)
    c.send({"id": 2, "type": "message", "channel": "C1", "text": "x"})
    r = c.request({"id": 3, "type": "message", "channel": "C2",
                   "text": "y"})
    assert r["error"]["name"] == "queue_full"


def test_reload_keepalive_settings(daemon_factory, fake):
    d = daemon_factory(ping_interval="10", pong_timeout="5").start()
    d.rewrite_config(ping_interval="0.3", pong_timeout="0.5")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    n = len(fake.session.pings())
    time.sleep(1.5)       # the new interval applies at once
    assert len(fake.session.pings()) >= n + 3
    assert len(fake.sessions) == 1


def test_reload_invalid_config_keeps_old(daemon_factory, fake, notify):
    d = daemon_factory()
    d.start(env={"NOTIFY_SOCKET": notify.path})
    c = d.client()
    with open(d.conf_path, "a") as f:
        f.write("queue_max = lots\nnonsense\n")
    t = time.monotonic()
    d.signal(signal.SIGHUP)
    d.wait_log("reload failed")
    notify.wait("READY", "1", after=t)
    log = d.log_text()
    assert "bad value for queue_max" in log
    assert "keeping the one in force" in log
    assert c.request({"id": 1, "type": "ping"})["type"] == "pong"
    assert d.status()["state"] == "connected"
    n = len(fake.session.pings())
    time.sleep(1.5)       # the old ping_interval (1 s) is still in force
    assert len(fake.session.pings()) > n


def test_reload_token_change_reconnects(daemon_factory, fake):
    new = "xoxb-test-NewTokenAfterRotation"
    d = daemon_factory().start()
    d.secrets.append(new)
    c = d.client()
    fake.set_token(new)
    with open(d.token_path, "w") as f:
        f.write(new + "\n")
    d.signal(signal.SIGHUP)
    c.state("reconnecting", 5)
    c.state("connected", 5)
    last = [x for x in fake.api_calls if x["method"] == "rtm.connect"][-1]
    assert last["headers"]["authorization"] == "Bearer " + new
    assert len(fake.sessions) == 2
    wait_until(lambda: not fake.sessions[0].open, 5, what="old closed")
    assert fake.sessions[0].close_code_received == 1000


def test_reload_unusable_token_keeps_old(daemon_factory, fake):
    d = daemon_factory().start()
    os.chmod(d.token_path, 0o644)
    d.signal(signal.SIGHUP)
    d.wait_log("reload failed: no usable token")
    assert d.status()["state"] == "connected"
    os.chmod(d.token_path, 0o600)


def test_reload_keeps_environment_token(daemon_factory, fake):
    d = daemon_factory(token_file=None)
    d.start(env={"SLACK_API_TOKEN": TOKEN})
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    c = d.client()
    fake.drop()
    c.state("reconnecting", 5)      # not the old "connected" before the drop
    c.state("connected", 10)        # the token from the environment again
    assert len(fake.sessions) == 2
