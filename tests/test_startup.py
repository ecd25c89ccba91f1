"""Starting, reloading and stopping slackd as a user does: the reload rule
of the configuration table, what a detached start reports, what a stop
leaves behind, and the messages of the command line."""

import os
import re
import signal
import subprocess
import time

from conftest import SLACKD, TOKEN, wait_until


def reload(d, **settings):
    d.settings.update({k: str(v) for k, v in settings.items()})
    d.write_config()
    n = d.log_text().count("configuration reloaded")
    d.signal(signal.SIGHUP)
    wait_until(lambda: d.log_text().count("configuration reloaded") > n,
               what="the reload")


def test_reload_warns_about_restart_only_keys(daemon):
    reload(daemon, queue_max=10, allow_users="root")
    log = daemon.log_text()
    assert "take effect only" not in log and "takes effect only" not in log
    reload(daemon, socket_mode="0600")
    assert ("warning: reload: socket, socket_mode and socket_group take "
            "effect only when slackd restarts") in daemon.log_text()
    reload(daemon, ca_file="/etc/ssl/certs/ca-certificates.crt")
    log = daemon.log_text()
    assert ("warning: reload: ca_file takes effect only when slackd "
            "restarts") in log
    assert log.count("socket_group take effect") == 1


def run_slackd(*args, env=None, timeout=20):
    """slackd with a clean environment (no token, no systemd), to the end."""
    e = dict(os.environ)
    for k in ("SLACK_API_TOKEN", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM",
              "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"):
        e.pop(k, None)
    if env:
        e.update(env)
    return subprocess.run([SLACKD] + list(args), capture_output=True,
                          text=True, timeout=timeout, env=e)


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return str(path)


def test_version_has_no_stray_dash():
    p = run_slackd("--version")
    assert p.returncode == 0
    assert re.fullmatch(r"slackd \S+ \(protocol \d+, libwebsockets "
                        r"\d+\.\d+\S*[^-\s]\)\n", p.stdout), p.stdout


def test_check_says_it_is_offline(tmp_path):
    token = write(tmp_path / "token", TOKEN + "\n")
    conf = write(tmp_path / "c.conf", "token_file = %s\nsocket = %s\n"
                 % (token, tmp_path / "s.sock"))
    p = run_slackd("-n", "-f", conf)
    assert p.returncode == 0, p.stderr
    assert "configuration OK: token from token_file" in p.stdout
    assert ("offline check: the token was not tried with Slack "
            "(slackd --doctor tries it)") in p.stdout
    assert TOKEN not in p.stdout + p.stderr
    assert "offline" in run_slackd("--help").stdout


def test_check_suggests_keys_and_sums_up_errors(tmp_path):
    conf = write(tmp_path / "c.conf",
                 "ping_intervall = 5\nqueue_max = lots\nsocket = /x\n")
    p = run_slackd("-n", "-f", conf)
    assert p.returncode == 78
    lines = p.stderr.strip().splitlines()
    assert ('%s:1: unknown key "ping_intervall" (did you mean '
            'ping_interval?)' % conf) in lines[0]
    assert "%s:2: bad value for queue_max" % conf in lines[1]
    assert lines[-1].endswith(
        "error: configuration check failed: 2 errors (exit status 78)")
    # A missing token is one error too.
    p = run_slackd("-n", "-f", write(tmp_path / "d.conf", "socket = /x\n"))
    assert p.returncode == 78
    assert "no Slack token" in p.stderr
    assert p.stderr.strip().splitlines()[-1].endswith(
        "configuration check failed: 1 error (exit status 78)")


def test_any_readable_file_is_a_configuration(tmp_path):
    env = {"SLACK_API_TOKEN": TOKEN}
    sock = str(tmp_path / "s.sock")
    p = run_slackd("-n", "-f", "/dev/null", "-s", sock, env=env)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout and "api_url https://slack.com/api/" \
        in p.stdout
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    proc = subprocess.Popen(["sh", "-c", "echo 'socket = %s' > %s"
                             % (sock, fifo)])
    p = run_slackd("-n", "-f", fifo, env=env)
    proc.wait(10)
    os.unlink(fifo)  # nothing may open it again, waiting for a writer
    assert p.returncode == 0, p.stderr
    assert "socket %s," % sock in p.stdout
    p = run_slackd("-n", "-f", str(tmp_path), env=env)
    assert p.returncode == 78 and "is a directory" in p.stderr


def journal_run(tmp_path, *args, env=None):
    """slackd -d with stderr on a file that JOURNAL_STREAM names, as under
    systemd: lines carry a syslog priority prefix."""
    log = tmp_path / "journal"
    with open(log, "w") as f:
        st = os.fstat(f.fileno())
        e = dict(env or {})
        e["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        ev = dict(os.environ)
        for k in ("SLACK_API_TOKEN", "CREDENTIALS_DIRECTORY", "LISTEN_FDS"):
            ev.pop(k, None)
        ev.update(e)
        rc = subprocess.run([SLACKD, "-d"] + list(args), stdout=f, stderr=f,
                            env=ev, timeout=20).returncode
    return rc, log.read_text()


def test_fatal_errors_are_logged_as_errors(tmp_path):
    sock = str(tmp_path / "s.sock")
    # No token at all.
    rc, text = journal_run(tmp_path, "-f", "/dev/null", "-s", sock)
    assert rc == 78
    assert text.startswith("<3>no Slack token"), text
    # A configuration file with an error.
    conf = write(tmp_path / "bad.conf", "queue_max = many\n")
    rc, text = journal_run(tmp_path, "-f", conf, "-s", sock)
    assert rc == 78
    assert text.startswith("<3>%s:1: bad value for queue_max" % conf), text
    # A token file others can read.
    token = write(tmp_path / "token", TOKEN + "\n", 0o644)
    conf = write(tmp_path / "c.conf", "token_file = %s\n" % token)
    rc, text = journal_run(tmp_path, "-f", conf, "-s", sock)
    assert rc == 78
    assert re.match(r"<3>token file \S+ is accessible by group or others",
                    text), text
    assert "<4>" not in text


# ---- a detached start waits for Slack's first answer -----------------------

def start_detached(d, *args, timeout=30):
    """slackd without -d, as the README starts it: the parent's result."""
    d.write_config()
    e = dict(os.environ)
    for k in ("SLACK_API_TOKEN", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM",
              "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"):
        e.pop(k, None)
    t0 = time.monotonic()
    p = subprocess.run([SLACKD, "-f", d.conf_path] + list(args),
                       capture_output=True, text=True, timeout=timeout,
                       env=e)
    p.elapsed = time.monotonic() - t0
    d.outputs += [p.stdout, p.stderr]
    return p


def stop_detached(d):
    """SIGTERM the background daemon found through its socket; wait for it
    to go."""
    pid = d.status()["pid"]
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
               open("/proc/%d/stat" % pid).read().split()[2] == "Z",
               15, what="the detached slackd to stop")
    return pid


def test_detached_start_returns_once_connected(daemon_factory, fake):
    d = daemon_factory()
    p = start_detached(d)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "" and p.stdout == ""
    assert len(fake.sessions) == 1  # connected before the parent returned
    assert d.status()["state"] == "connected"
    stop_detached(d)


def test_detached_start_reports_a_refused_token(daemon_factory, fake):
    fake.set_token("xoxb-some-other-token")
    d = daemon_factory()
    p = start_detached(d)
    assert p.returncode == 78, p.stderr
    assert p.stderr == ("slackd: authentication failed: invalid_auth; the "
                        "token is not valid: check the token\n")
    # The daemon itself is gone too, and its socket with it.
    wait_until(lambda: not os.path.exists(d.sock), 10, what="socket gone")


def test_detached_start_says_it_keeps_trying(daemon_factory, fake):
    d = daemon_factory(api_url="http://127.0.0.1:1/api/")
    p = start_detached(d)
    assert p.returncode == 0, p.stderr
    assert p.stderr.startswith("slackd: cannot reach Slack yet (")
    assert "slackd keeps trying in the background (pid " in p.stderr
    assert d.status()["state"] == "reconnecting"
    stop_detached(d)


def test_detached_start_waits_at_most_w_seconds(daemon_factory, fake):
    fake.queue_api_hang()
    d = daemon_factory(connect_timeout="30")
    p = start_detached(d, "-w", "1")
    assert p.returncode == 0, p.stderr
    assert 0.9 < p.elapsed < 5, p.elapsed
    assert p.stderr.startswith("slackd: no answer from Slack within 1 s; "
                               "slackd keeps trying in the background")
    stop_detached(d)
    # -w 0: back as soon as the socket is up, whatever Slack says.
    fake.set_token("xoxb-some-other-token")
    p = start_detached(daemon_factory(), "-w", "0")
    assert p.returncode == 0 and p.stderr == ""
    p = start_detached(d, "-w", "soon")
    assert p.returncode == 64 and "-w wants a number of seconds" in p.stderr


# ---- permanent errors say what they mean -----------------------------------

def test_new_slack_app_token_is_explained(daemon_factory, fake):
    fake.queue_api_response(200, {"ok": False,
                                  "error": "not_allowed_token_type"})
    d = daemon_factory().start(wait=None)
    d.expected_exit = 78
    assert d.wait_exit(10) == 78
    line = [l for l in d.log_text().splitlines() if "fatal:" in l]
    assert len(line) == 1
    assert "error: fatal: authentication failed: not_allowed_token_type; " \
        "this token belongs to a Slack app created after classic apps " \
        "ended on 2024-06-04" in line[0]
    assert "classic app's token" in line[0] and "Socket Mode" in line[0]
    assert line[0].endswith("(slackd exits with status 78)")


def test_legacy_custom_bot_is_explained(daemon_factory, fake):
    fake.queue_api_response(200, {"ok": False,
                                  "error": "legacy_custom_bots_deprecated"})
    d = daemon_factory()
    p = start_detached(d)
    assert p.returncode == 78, p.stderr
    assert "legacy custom bots stopped working on 2025-03-31" in p.stderr
    assert len([c for c in fake.api_calls
                if c["method"] == "rtm.connect"]) == 1


# ---- a stop leaves nothing behind ------------------------------------------

def test_stop_removes_the_socket_directory_it_made(daemon_factory, tmp_path):
    made = tmp_path / "run" / "slackd"
    (tmp_path / "run").mkdir()
    d = daemon_factory(socket=str(made / "slackd.sock"))
    d.sock = str(made / "slackd.sock")
    d.start()
    assert made.is_dir()
    assert d.stop() == 0
    assert not made.exists(), "slackd left the directory it made"
    assert "removed %s" % made in d.log_text()
    # A directory that was there before stays.
    d2 = daemon_factory(socket=str(made / "slackd.sock"))
    d2.sock = str(made / "slackd.sock")
    made.mkdir()
    d2.start()
    assert d2.stop() == 0
    assert made.is_dir() and not (made / "slackd.sock").exists()
    made.rmdir()
    # One slackd made but someone else put a file in: it stays.
    d3 = daemon_factory(socket=str(made / "slackd.sock"))
    d3.sock = str(made / "slackd.sock")
    d3.start()
    (made / "other").write_text("x")
    assert d3.stop() == 0
    assert (made / "other").exists() and not (made / "slackd.sock").exists()



# ---- the documents tell one truth ------------------------------------------

def source_text(rel):
    top = os.path.dirname(os.environ.get("TESTS_SRCDIR") or
                          os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(top, rel)) as f:
        return f.read()


def test_docs_agree_that_a_post_is_never_repeated():
    """What tests/test_names.py test_post_is_never_made_twice shows: a
    chat.postMessage that may have reached Slack is not made again.  The
    man page's CAVEATS once said the opposite."""
    man = re.sub(r"\s+", " ", source_text("man/slackd.8.in"))
    readme = source_text("README.md")
    caveats = man[man.index(".Sh CAVEATS"):man.index(".Sh BUGS")]
    assert "posted twice" not in caveats.replace("never sent twice", "")
    assert "is not made again" in caveats and "never sent twice" in caveats
    assert "never posted twice" in readme
    assert "making it again could post a message twice" in man


# ---- the paths a user reads are the paths slackd uses ----------------------

def find_one(top, name):
    found = [os.path.join(d, name) for d, _, files in os.walk(top)
             if name in files]
    assert len(found) == 1, (name, found)
    return found[0]


def test_installed_docs_name_the_paths_slackd_uses(tmp_path):
    builddir = os.path.dirname(os.path.abspath(SLACKD))
    dest = str(tmp_path / "dest")
    p = subprocess.run(["make", "-s", "-C", builddir, "install",
                        "DESTDIR=" + dest], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"--config FILE +configuration file \(default (\S+)\)",
                  run_slackd("--help").stdout)
    conf = m.group(1)
    confdir = os.path.dirname(conf)
    sbin = os.path.dirname(os.path.abspath(find_one(dest, "slackd")))
    sbin = sbin[len(dest):]
    man8 = open(find_one(dest, "slackd.8")).read()
    man5 = open(find_one(dest, "slackd.conf.5")).read()
    unit = open(find_one(dest, "slackd.service")).read()
    example = open(find_one(dest + confdir, "slackd.conf")).read()
    for text in (man8, man5):
        assert "@sysconfdir@" not in text and "@sbindir@" not in text
        assert ".Pa %s" % conf in text
    token = "%s/token" % confdir
    assert "LoadCredential=slack-token:%s\n" % token in unit
    assert "LoadCredential=slack-token:%s\n" % token in man8
    assert "ExecStart=%s/slackd -d\n" % sbin in unit
    assert ".Ic %s/slackd -d\n" % sbin in man8
    assert "#token_file = %s\n" % token in example
    if confdir != "/etc/slackd":
        assert not re.search(r"(?<![\w/])/etc/slackd",
                             man8 + man5 + unit + example)
