"""A rate limit that counts only what Slack counts.

rtm.connect is tier 1: slackd keeps a token bucket so as not to provoke
429s.  Only calls Slack answered are charged: while the network is down
(connection refused, a TLS failure, a captive portal's HTML, a proxy's
502) the reconnect backoff alone paces the attempts, so once the network
is back slackd is back within one backoff step.  A Retry-After from Slack
is final: that long, no longer.
"""
import time

from conftest import Daemon, TcpProxy, wait_until
from fakeslack import FakeSlack

FAULT_SECONDS = 30


def connects(fake):
    return [c for c in fake.api_calls if c["method"] == "rtm.connect"]


def test_transport_faults_do_not_spend_the_bucket(tmp_path, pki):
    """Each fault for FAULT_SECONDS with the default bucket (4, then one a
    minute) and a 1 s backoff ceiling: dozens of failed attempts, none
    charged, so the session is back within a backoff step of the fault
    being lifted (with the old rule, after up to a minute)."""
    cases = []
    try:
        for kind in ("refused", "tls", "portal", "proxy-502"):
            tls = kind == "tls"
            fake = FakeSlack(token="xoxb-test-token-%s" % kind,
                             certfile=pki["cert"] if tls else None,
                             keyfile=pki["key"] if tls else None).start()
            proxy = TcpProxy(fake.api_port) if kind in ("refused", "tls") \
                else None
            conf = dict(reconnect_min="0.2", reconnect_max="1",
                        rtm_connect_burst="4", rtm_connect_interval="60")
            if proxy is not None:
                conf["api_url"] = "%s://localhost:%d/api/" % (
                    "https" if tls else "http", proxy.port)
            if tls:
                conf["ca_file"] = pki["ca"]
            d = Daemon(tmp_path / kind, fake, token=fake.token, **conf)
            d.secrets.append(fake.token)
            (tmp_path / kind).mkdir()
            cases.append((kind, fake, proxy, d))
            d.start()
        for kind, fake, proxy, d in cases:
            if kind == "refused":
                proxy.set("refuse")
            elif kind == "tls":
                proxy.set("junk")
            elif kind == "portal":
                fake.set_api_default(200, "<html><body>Log in to the "
                                     "hotel wifi</body></html>",
                                     {"Content-Type": "text/html"})
            else:
                fake.set_api_default(502, "<html>Bad Gateway</html>",
                                     {"Content-Type": "text/html"})
            fake.drop()
        time.sleep(FAULT_SECONDS)
        lifted = {}
        for kind, fake, proxy, d in cases:
            st = d.status()
            assert st["state"] in ("reconnecting", "connecting"), (kind, st)
            assert "rate limit" not in (st.get("reason") or ""), (kind, st)
            if proxy is not None:
                proxy.set("pass")
            else:
                fake.clear_api_default()
            lifted[kind] = time.monotonic()
        for kind, fake, proxy, d in cases:
            d.wait_state("connected", 5)
            took = time.monotonic() - lifted[kind]
            # One backoff step (at most reconnect_max) and the call itself.
            assert took < 3.0, (kind, took)
            if proxy is None:
                # The fake saw every attempt: far more than the bucket.
                assert len(connects(fake)) > 10, (kind, len(connects(fake)))
    finally:
        for kind, fake, proxy, d in cases:
            d.finish()
            if proxy is not None:
                proxy.close()
            fake.stop()


def test_retry_after_is_final(daemon_factory, fake):
    """ratelimited with Retry-After: 1 and then an empty bucket (2 calls,
    one a minute): the next rtm.connect comes about 1 s later, not after
    the bucket's minute nor the 5 s backoff."""
    d = daemon_factory(rtm_connect_burst="2", rtm_connect_interval="60",
                       reconnect_min="5", reconnect_max="10").start()
    fake.queue_api_response(200, {"ok": False, "error": "ratelimited"},
                            {"Retry-After": "1"})
    fake.queue_api_response(429, {"ok": False, "error": "ratelimited"},
                            {"Retry-After": "1"})
    fake.drop()
    wait_until(lambda: len(connects(fake)) >= 4, 20, what="four rtm.connect")
    d.wait_state("connected", 5)
    t = [c["t"] for c in connects(fake)]
    gaps = [b - a for a, b in zip(t[1:], t[2:])]
    # After each Retry-After: 1, the next call ~1 s later (neither the
    # 5 s backoff nor the empty bucket's minute).
    assert all(0.9 <= g <= 1.8 for g in gaps), gaps
