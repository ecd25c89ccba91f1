"""TLS to Slack: a private CA from ca_file, the system store without one,
and the certificates slackd must refuse (another CA, another name)."""

from conftest import APP_TOKEN, SLACKD, TOKEN, run, wait_until
from test_socket_mode import collect, events, sm_connected


def connects(fake):
    return [c for c in fake.api_calls if c["method"] == "rtm.connect"]


def test_tls_with_private_ca(daemon_factory, fake_tls, pki):
    d = daemon_factory(fake_=fake_tls, ca_file=pki["ca"]).start()
    assert fake_tls.api_url.startswith("https://localhost:")
    c = d.client()
    assert c.hello["state"] == "connected"
    assert c.request({"id": 1, "type": "message", "channel": "C1",
                      "text": "over TLS"})["ok"] is True


def test_tls_wrong_ca_refused(daemon_factory, fake_tls, pki):
    d = daemon_factory(fake_=fake_tls, ca_file=pki["otherca"]).start(
        wait="socket")
    d.wait_log(r"rtm.connect to localhost failed", 10)
    st = d.status()
    assert st["state"] in ("reconnecting", "connecting")
    assert not [c for c in fake_tls.api_calls if c["method"] ==
                "rtm.connect"]
    assert not fake_tls.sessions


def test_tls_without_ca_file_uses_system_store(daemon_factory, fake_tls):
    d = daemon_factory(fake_=fake_tls).start(wait="socket")
    d.wait_log(r"rtm.connect to localhost failed", 10)
    assert not fake_tls.sessions


def test_missing_ca_file(daemon_factory, fake, tmp_path):
    d = daemon_factory(ca_file=str(tmp_path / "nope.pem"))
    d.write_config()
    p = run(SLACKD, "-n", "-f", d.conf_path)
    assert p.returncode == 78 and "nope.pem" in p.stderr


def test_tls_certificate_for_another_name(daemon_factory, pki):
    from fakeslack import FakeSlack
    f = FakeSlack(token=TOKEN, certfile=pki["wrongname"],
                  keyfile=pki["key"]).start()
    try:
        d = daemon_factory(fake_=f, ca_file=pki["ca"]).start(wait="socket")
        d.wait_log(r"rtm.connect to localhost failed", 10)
        assert not connects(f)
        st = d.status()
        assert st["state"] in ("reconnecting", "connecting")
        assert "localhost" in (st.get("reason") or "localhost")
    finally:
        f.stop()


def test_socket_mode_over_tls(daemon_factory, sm_fake_tls, pki):
    """Socket Mode over wss://: slackd frames its acks itself and writes
    them through the TLS connection; a burst is acknowledged envelope by
    envelope, nothing retried, every event to the client once."""
    f = sm_fake_tls
    d = daemon_factory(fake_=f, upstream="socket", app_token=APP_TOKEN,
                       ca_file=pki["ca"]).start()
    sm_connected(d, f)
    assert f.api_url.startswith("https://")
    c = d.client()
    f.emit_many(events(2000))
    # (each connection in order; the two side by side interleave)
    assert sorted(collect(c, 2000)) == list(range(2000))
    wait_until(lambda: len(f.sm_envelopes("events_api")) >= 2000 and
               not f.sm_unacked(), 10, what="every envelope acked")
    assert not [r for r in f.sm_envelopes("events_api")
                if r["attempt"] > 0 or len(r["acks"]) != 1]
    assert f.sm_late_acks(0.5) == []
