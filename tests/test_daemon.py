"""The daemon as a program: command line, config, token, socket, TLS,
shutdown, secrecy."""

import os
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import SLACKD, SLACKCTL, TOKEN, Client, wait_until


def run(*args, env=None, timeout=10):
    e = dict(os.environ)
    e.pop("SLACK_API_TOKEN", None)
    e.pop("CREDENTIALS_DIRECTORY", None)
    if env:
        e.update(env)
    return subprocess.run(list(args), capture_output=True, text=True,
                          timeout=timeout, env=e)


def test_help_and_version():
    p = run(SLACKD, "--help")
    assert p.returncode == 0 and "usage: slackd" in p.stdout
    assert "-n, --check" in p.stdout
    p = run(SLACKD, "--version")
    assert p.returncode == 0 and p.stdout.startswith("slackd ")
    p = run(SLACKD, "--bogus")
    assert p.returncode == 64
    p = run(SLACKD, "xoxb-on-the-command-line")
    assert p.returncode == 64 and "never goes on the command line" in p.stderr
    p = run(SLACKCTL, "--help")
    assert p.returncode == 0 and "send" in p.stdout
    assert run(SLACKCTL).returncode == 2
    assert run(SLACKCTL, "frobnicate").returncode == 2


def test_check_config_ok(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()
    p = run(SLACKD, "-n", "-f", d.conf_path)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout and "token from token_file" \
        in p.stdout
    assert TOKEN not in p.stdout + p.stderr


def test_check_config_errors_with_line_numbers(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("# comment\n"
                    "ping_interval = often\n"
                    "frobs = 3\n"
                    "queue_max = 5\n"
                    "queue_max = 6\n"
                    "socket\n"
                    "api_url = http://example.com/api/\n")
    p = run(SLACKD, "-n", "-f", str(conf))
    assert p.returncode == 78
    err = p.stderr
    assert "%s:2: bad value for ping_interval: \"often\"" % conf in err
    assert "%s:3: unknown key \"frobs\"" % conf in err
    assert "%s:5: \"queue_max\" is already set on line 4" % conf in err
    assert "%s:6: expected \"key = value\"" % conf in err
    p = run(SLACKD, "-n", "-f", str(tmp_path / "missing.conf"))
    assert p.returncode == 78 and "No such file" in p.stderr


def test_plain_http_refused_for_remote_host(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("api_url = http://slack.example.com/api/\n")
    p = run(SLACKD, "-n", "-f", str(conf))
    assert p.returncode == 78
    assert "only allowed to a loopback host" in p.stderr


def test_example_config_is_valid(tmp_path):
    here = os.environ.get("TESTS_SRCDIR", os.path.dirname(__file__))
    example = os.path.join(here, "..", "conf", "slackd.conf")
    p = run(SLACKD, "-n", "-f", example, "-s", str(tmp_path / "s"),
            env={"SLACK_API_TOKEN": TOKEN})
    assert p.returncode == 0, p.stderr
    assert "token from SLACK_API_TOKEN" in p.stdout


def test_no_token_exits_78(daemon_factory, fake):
    d = daemon_factory(token=None, token_file=None)
    d.write_config()
    p = run(SLACKD, "-d", "-f", d.conf_path)
    assert p.returncode == 78
    assert "no Slack token" in p.stderr and "SLACK_API_TOKEN" in p.stderr


def test_token_file_readable_by_others_refused(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()
    os.chmod(d.token_path, 0o644)
    p = run(SLACKD, "-d", "-f", d.conf_path)
    assert p.returncode == 78
    assert "accessible by group or others (mode 0644)" in p.stderr
    assert "chmod 600" in p.stderr
    assert TOKEN not in p.stderr


def test_token_from_environment(daemon_factory, fake):
    d = daemon_factory(token_file=None)
    d.token = TOKEN
    d.start(env={"SLACK_API_TOKEN": TOKEN})
    assert "token from SLACK_API_TOKEN" in d.log_text()
    # Gone from the daemon's environment.
    with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
        assert TOKEN.encode() not in f.read()


def test_token_from_credentials_directory(daemon_factory, fake, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    fd = os.open(str(creds / "slack-token"), os.O_WRONLY | os.O_CREAT, 0o400)
    os.write(fd, TOKEN.encode())
    os.close(fd)
    d = daemon_factory(token_file=None)
    d.start(env={"CREDENTIALS_DIRECTORY": str(creds),
                 "SLACK_API_TOKEN": "xoxb-wrong"})
    assert "token from systemd credential slack-token" in d.log_text()


def test_token_only_in_authorization_header(daemon, fake):
    calls = [c for c in fake.api_calls if c["method"] == "rtm.connect"]
    assert calls
    for c in calls:
        assert c["headers"]["authorization"] == "Bearer " + TOKEN
        assert TOKEN not in c["path"] and TOKEN.encode() not in c["body"]
    for s in fake.sessions:
        assert TOKEN not in s.path


def test_token_never_logged_at_full_verbosity(daemon_factory, fake):
    fake.queue_api_response(200, {"ok": False, "error": "internal_error",
                                  "echo": "Bearer " + TOKEN})
    fake.queue_api_response(502, "<html>Bearer %s</html>" % TOKEN)
    d = daemon_factory().start(args=("-vvv",), wait="socket")
    d.wait_state("connected", 10)
    c = d.client()
    c.request({"id": 1, "type": "message", "channel": "C1",
               "text": "x"})
    fake.drop()
    c.state("connected", 5)
    d.stop()
    log = d.log_text()
    assert "debug:" in log         # verbose logging was on
    assert TOKEN not in log        # finish() checks this too
    assert "[token]" in log        # echoed by the fake, and scrubbed


def test_live_daemon_not_displaced(daemon_factory, daemon, fake):
    d2 = daemon_factory()
    d2.sock = daemon.sock
    d2.settings["socket"] = daemon.sock
    d2.write_config()
    p = run(SLACKD, "-d", "-f", d2.conf_path)
    assert p.returncode == 1
    assert "another slackd is already listening on" in p.stderr
    assert daemon.status()["state"] == "connected"


def test_stale_socket_replaced(daemon_factory, fake):
    d = daemon_factory()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(d.sock)
    s.close()                     # leaves a socket file nobody listens on
    d.start()
    assert "removed stale socket" in d.log_text()


def test_non_socket_file_left_alone(daemon_factory, fake):
    d = daemon_factory()
    with open(d.sock, "w") as f:
        f.write("precious")
    d.write_config()
    p = run(SLACKD, "-d", "-f", d.conf_path)
    assert p.returncode == 1 and "is not a socket" in p.stderr
    assert open(d.sock).read() == "precious"


def test_socket_mode(daemon_factory, fake):
    d = daemon_factory().start()
    assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o660
    d.stop()
    d2 = daemon_factory(socket_mode="0600").start()
    assert stat.S_IMODE(os.stat(d2.sock).st_mode) == 0o600


def test_socket_option_overrides_config(daemon_factory, fake, tmp_path):
    d = daemon_factory()
    other = str(tmp_path / "other.sock")
    d.start(args=("-s", other), wait=None)
    wait_until(lambda: os.path.exists(other), 5)
    c = Client(other)
    assert c.hello["type"] == "slackd.hello"
    c.close()
    d.stop()
    assert not os.path.exists(other)


def test_slackctl_daemon_not_running(tmp_path):
    p = run(SLACKCTL, "-s", str(tmp_path / "nope.sock"), "status")
    assert p.returncode == 3
    assert "slackd is not running" in p.stderr
    p = run(SLACKCTL, "status", env={"SLACKD_SOCKET":
                                     str(tmp_path / "nope.sock")})
    assert p.returncode == 3 and "nope.sock" in p.stderr


def test_slackctl_permission_denied(daemon, fake):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    os.chmod(daemon.sock, 0o600)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", SLACKCTL, "-s", daemon.sock,
                        "status"], capture_output=True, text=True)
    assert p.returncode == 3
    assert "permission denied" in p.stderr


def test_sigterm_clean_shutdown(daemon_factory, fake):
    d = daemon_factory(reconnect_min="5", reconnect_max="5").start()
    listener = d.client()
    sender = d.client()
    fake.hold_acks(True)
    sender.send({"id": 1, "type": "message", "channel": "C1",
                 "text": "in flight"})
    fake.wait_for(lambda: fake.messages(), 5)
    d.signal(signal.SIGTERM)
    assert d.wait_exit(10) == 0
    r = sender.reply(1, 5)
    assert r["error"]["name"] == "not_confirmed"
    st = listener.state("stopping", 5)
    assert st["state"] == "stopping"
    assert listener.closed_by_peer(5)
    assert not os.path.exists(d.sock)
    wait_until(lambda: not fake.sessions[0].open, 5)
    assert fake.sessions[0].close_code_received == 1000
    assert "stopped" in d.log_text()


def test_sigterm_while_disconnected_answers_queue(daemon_factory, fake):
    fake.set_api_default(503, "down")
    d = daemon_factory(reconnect_min="5", reconnect_max="5").start(
        wait="socket")
    c = d.client()
    c.send({"id": 1, "type": "message", "channel": "C1", "text": "q"})
    wait_until(lambda: d.status()["queued"] == 1, 5)
    t0 = time.monotonic()
    d.signal(signal.SIGINT)
    r = c.reply(1, 5)
    assert r["error"]["name"] == "shutting_down"
    assert d.wait_exit(10) == 0
    assert time.monotonic() - t0 < 3


def test_detaches_without_d(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()
    p = run(SLACKD, "-f", d.conf_path)
    assert p.returncode == 0
    wait_until(lambda: os.path.exists(d.sock), 5)
    c = Client(d.sock)
    st = c.request({"id": 1, "type": "slackd.status"})
    c.close()
    assert st["pid"] != os.getpid()
    os.kill(st["pid"], signal.SIGTERM)
    wait_until(lambda: not os.path.exists(d.sock), 10, what="detached "
               "slackd to stop")


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


def test_detached_startup_failure_is_reported(daemon_factory, fake, tmp_path):
    d = daemon_factory()
    d.write_config()
    blocker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    blocker.bind(d.sock)
    blocker.listen(1)            # a live "daemon" on the path
    try:
        p = run(SLACKD, "-f", d.conf_path)
    finally:
        blocker.close()
    assert p.returncode == 1
    assert "another slackd is already listening" in p.stderr


def test_environment_token_wiped_even_when_unused(daemon_factory, fake):
    d = daemon_factory()
    d.start(env={"SLACK_API_TOKEN": TOKEN})
    assert "token from token_file" in d.log_text()
    with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
        assert TOKEN.encode() not in f.read()


def test_default_socket_path(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("")
    p = run(SLACKD, "-n", "-f", str(conf), env={"SLACK_API_TOKEN": TOKEN})
    assert p.returncode == 0, p.stderr
    if os.geteuid() == 0:
        assert "socket /run/slackd/slackd.sock" in p.stdout
    else:
        assert "slackd.sock" in p.stdout


def test_missing_ca_file(daemon_factory, fake, tmp_path):
    d = daemon_factory(ca_file=str(tmp_path / "nope.pem"))
    d.write_config()
    p = run(SLACKD, "-n", "-f", d.conf_path)
    assert p.returncode == 78 and "nope.pem" in p.stderr
