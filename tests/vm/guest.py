#!/usr/bin/python3
"""The checks of `make check-systemd`, run as root inside a Debian 12 guest
booted with systemd as PID 1 (tests/vm/run.sh builds and boots it).

slackd is installed from the 9p share the Debian way (apt-get install of
/mnt/slackd/deb/slackd_*.deb and slackctl_*.deb, dependencies from the
image), talks to the fake Slack (/mnt/slackd/fakeslack.py) on loopback,
and is driven only the way a user would: systemctl, slackctl, its socket,
journalctl; at the end the packages are removed, purged and installed
again.  Each check prints one console line, "VMTEST ok NAME" or
"VMTEST not ok NAME: WHY", which the host collects.  The token is made up
here and never printed.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True          # the share is read-only
sys.path.insert(0, "/mnt/slackd")
from fakeslack import FakeSlack          # noqa: E402

SHARE = "/mnt/slackd"
SOCK = "/run/slackd/slackd.sock"
SOCK2 = "/run/slackd/second.sock"
TOKEN = "xoxb-vmtest-" + secrets.token_hex(16)
TOKEN2 = "xoxb-vmtest-second-" + secrets.token_hex(16)
WRONG = "xoxb-vmtest-wrong-" + secrets.token_hex(16)
APP = "xapp-vmtest-" + secrets.token_hex(16)
SLOW = 60                                 # s: TCG is slow


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(*argv, user=None, check=False, timeout=120):
    if user is not None:
        argv = ("runuser", "-u", user, "--") + argv
    p = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(argv),
                             p.returncode, (p.stderr or p.stdout).strip()))
    return p


def show(unit, prop):
    return run("systemctl", "show", "-p", prop, "--value", unit,
               check=True).stdout.strip()


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def write(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Client:
    """One connection to a slackd socket, JSON lines."""

    def __init__(self, path, timeout=SLOW):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.eof = False
        self.hello = self.recv(timeout)

    def recv(self, timeout=SLOW):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                raise AssertionError("no line (eof=%s)" % self.eof)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                self.eof = True
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def until(self, pred, timeout=SLOW, what="message"):
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.1, deadline - time.monotonic()))
            if pred(m):
                return m
            if time.monotonic() > deadline:
                raise AssertionError("no " + what)

    def connected(self, timeout=SLOW):
        if self.hello.get("state") == "connected":
            return self.hello
        return self.until(lambda m: m.get("type") == "slackd.state"
                          and m.get("state") == "connected", timeout,
                          "slackd.state connected")

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def wait_eof(self, timeout=SLOW):
        try:
            while True:
                self.recv(timeout)
        except AssertionError:
            pass
        return self.eof

    def close(self):
        self.sock.close()


def event_reaches(fake, client, text):
    fake.emit({"type": "message", "channel": "C0GENERAL", "user": "U0ALICE",
               "text": text})
    client.until(lambda m: m.get("type") == "message"
                 and m.get("text") == text, SLOW, "event %r" % text)


RESULTS = []


def diagnose():
    """After a failure: what systemd and the journal say, on the console."""
    for argv in (("systemctl", "status", "--no-pager", "-n", "0",
                  "slackd.socket", "slackd.service"),
                 ("journalctl", "-b", "--no-pager", "-o", "short-monotonic",
                  "-n", "40", "-u", "slackd.service", "-u",
                  "slackd.socket")):
        try:
            out = run(*argv, timeout=30).stdout
        except Exception as e:
            out = str(e)
        for secret in (TOKEN, TOKEN2, WRONG, APP):
            out = out.replace(secret, "<token>")
        for line in out.splitlines():
            say("VMTEST diag " + line)


def check(name):
    def wrap(fn):
        def runit(ctx):
            try:
                why = fn(ctx)
                say("VMTEST ok %s%s" % (name, " # " + why if why else ""))
                RESULTS.append(True)
            except Exception as e:           # report and go on
                why = (str(e) or type(e).__name__).replace("\n", " | ")
                for secret in (TOKEN, TOKEN2, WRONG, APP):
                    why = why.replace(secret, "<token>")
                say("VMTEST not ok %s: %s" % (name, why[:600]))
                traceback.print_exc(file=sys.stderr)
                diagnose()
                RESULTS.append(False)
        return runit
    return wrap


DEBS = "/tmp/debs"


def apt_get(*args):
    """apt-get as an administrator would run it; no network is needed."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    p = subprocess.run(("apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0")
                       + args, capture_output=True, text=True, timeout=600,
                       cwd=DEBS, env=env)
    if p.returncode != 0:
        raise AssertionError("apt-get %s: exit %d: %s" % (
            " ".join(args), p.returncode,
            (p.stdout + p.stderr).strip()[-800:]))
    return p.stdout + p.stderr


def install_packages():
    debs = sorted("./" + f for f in os.listdir(DEBS) if f.endswith(".deb"))
    return apt_get("install", "--no-install-recommends", *debs)


def dpkg_status(pkg):
    p = run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", pkg)
    return p.stdout.strip() if p.returncode == 0 else "not known"


def is_enabled(unit):
    return run("systemctl", "is-enabled", unit).stdout.strip()


def check_installed():
    """What installing the packages must leave: the files, the conffile,
    the group and socket directory, the socket listening and slackd not
    started (it has no token)."""
    for pkg in ("slackd", "slackctl"):
        assert dpkg_status(pkg) == "ii", (pkg, dpkg_status(pkg))
    for path in ("/usr/sbin/slackd", "/usr/bin/slackctl",
                 "/usr/share/man/man8/slackd.8.gz",
                 "/usr/share/man/man1/slackctl.1.gz",
                 "/usr/share/bash-completion/completions/slackctl",
                 "/usr/share/doc/slackctl/examples/python/pingbot.py",
                 "/usr/lib/sysusers.d/slackd.conf",
                 "/usr/lib/tmpfiles.d/slackd.conf"):
        assert os.path.exists(path), path + " not installed"
    for unit in ("slackd.service", "slackd.socket", "slackd@.service",
                 "slackd@.socket"):
        assert os.path.exists("/usr/lib/systemd/system/" + unit), unit
    conffiles = run("dpkg-query", "-W", "-f", "${Conffiles}",
                    "slackd").stdout
    assert "/etc/slackd/slackd.conf" in conffiles, conffiles
    run("getent", "group", "slackd", check=True)
    assert os.path.isdir("/run/slackd"), "no /run/slackd"
    assert is_enabled("slackd.socket") == "enabled", \
        is_enabled("slackd.socket")
    assert show("slackd.socket", "ActiveState") == "active"
    assert is_enabled("slackd.service") == "disabled", \
        is_enabled("slackd.service")
    assert show("slackd.service", "ActiveState") == "inactive", \
        show("slackd.service", "ActiveState")


@check("setup")
def setup(ctx):
    shutil.copytree(SHARE + "/deb", DEBS)
    install_packages()
    check_installed()
    run("useradd", "-m", "-G", "slackd", "alice", check=True)
    run("useradd", "-m", "bob", check=True)
    ctx["fake"] = FakeSlack(token=TOKEN).start()
    ctx["fake2"] = FakeSlack(token=TOKEN2).start()
    os.makedirs("/etc/slackd", exist_ok=True)
    write("/etc/slackd/slackd.conf",
          "api_url = %s\n" % ctx["fake"].api_url, 0o644)
    write("/etc/slackd/token", TOKEN + "\n", 0o600)
    write("/etc/slackd/second.conf",
          "api_url = %s\n" % ctx["fake2"].api_url, 0o644)
    write("/etc/slackd/second.token", TOKEN2 + "\n", 0o600)
    # The test hook that can wedge the upstream thread, and a watchdog
    # short enough to see it fire.
    os.makedirs("/etc/systemd/system/slackd.service.d", exist_ok=True)
    write("/etc/systemd/system/slackd.service.d/vmtest.conf",
          "[Service]\nEnvironment=SLACKD_TEST_HOOKS=1\nWatchdogSec=6s\n",
          0o644)
    run("systemctl", "daemon-reload", check=True)
    return "systemd %s, %s" % (
        run("systemctl", "--version").stdout.split()[1],
        " ".join(sorted(os.listdir(DEBS))))


@check("activation")
def activation(ctx):
    run("systemctl", "start", "slackd.socket", check=True)
    assert show("slackd.service", "ActiveState") != "active", \
        "slackd ran before anyone connected"
    st = os.stat(SOCK)
    assert oct(st.st_mode & 0o777) == "0o660", oct(st.st_mode)
    t0 = time.monotonic()
    c = Client(SOCK)
    assert c.hello.get("type") == "slackd.hello", c.hello
    c.connected()
    event_reaches(ctx["fake"], c, "first event through activation")
    ctx["client"] = c
    assert show("slackd.service", "ActiveState") == "active"
    return "hello to first event %.1f s" % (time.monotonic() - t0)


@check("status-text")
def status_text(ctx):
    text = wait_until(
        lambda: "connected to" in show("slackd.service", "StatusText")
        and show("slackd.service", "StatusText"), SLOW, "StatusText")
    return text


@check("group-member-sends")
def group_member_sends(ctx):
    p = run("slackctl", "send", "C0GENERAL", "hello from alice",
            user="alice")
    assert p.returncode == 0, (p.returncode, p.stderr.strip())
    assert any(m.get("text") == "hello from alice"
               for m in ctx["fake"].messages()), "the fake got nothing"


@check("outsider-refused")
def outsider_refused(ctx):
    p = run("slackctl", "send", "C0GENERAL", "hello from bob", user="bob")
    assert p.returncode != 0, "bob, outside group slackd, could send"
    assert not any(m.get("text") == "hello from bob"
                   for m in ctx["fake"].messages())
    return "exit %d: %s" % (p.returncode, p.stderr.strip()[:120])


@check("reload-keeps-clients")
def reload_keeps_clients(ctx):
    pid = show("slackd.service", "MainPID")
    sessions = len(ctx["fake"].sessions)
    run("systemctl", "reload", "slackd", check=True)
    assert show("slackd.service", "ActiveState") == "active"
    wait_until(lambda: "configuration reloaded" in run(
        "journalctl", "-u", "slackd", "-o", "cat", "--no-pager").stdout,
        SLOW, "slackd to say it reloaded")
    assert show("slackd.service", "MainPID") == pid, "a new process"
    event_reaches(ctx["fake"], ctx["client"], "after the reload")
    assert len(ctx["fake"].sessions) == sessions, "upstream reconnected"


@check("watchdog-restarts")
def watchdog_restarts(ctx):
    before = int(show("slackd.service", "NRestarts"))
    pid = show("slackd.service", "MainPID")
    ctx["client"].send({"type": "slackd.debug", "wedge": "upstream"})
    wait_until(lambda: int(show("slackd.service", "NRestarts")) > before,
               SLOW * 2, "NRestarts to grow")
    wait_until(lambda: show("slackd.service", "ActiveState") == "active"
               and show("slackd.service", "MainPID") not in ("0", pid),
               SLOW, "slackd to be back")
    ctx["client"].wait_eof(5)
    c = Client(SOCK)
    c.connected()
    event_reaches(ctx["fake"], c, "after the watchdog restart")
    ctx["client"] = c
    j = run("journalctl", "-u", "slackd", "-o", "cat", "--no-pager").stdout
    assert "Watchdog timeout" in j or "watchdog" in j.lower(), \
        "no watchdog line in the journal"


@check("invalid-token-not-restarted")
def invalid_token(ctx):
    ctx["client"].close()
    write("/etc/slackd/token", WRONG + "\n", 0o600)
    try:
        # A start by hand resets NRestarts; count from the failure on.
        run("systemctl", "restart", "slackd.service")
        wait_until(lambda: show("slackd.service", "ActiveState")
                   == "failed", SLOW, "slackd to fail")
        before = int(show("slackd.service", "NRestarts"))
        status = show("slackd.service", "ExecMainStatus")
        assert status == "78", "exit status " + status
        time.sleep(12)          # RestartSec=5s: two restarts would be due
        assert show("slackd.service", "ActiveState") == "failed"
        after = int(show("slackd.service", "NRestarts"))
        assert after == before, "restarted: NRestarts %d -> %d" % (
            before, after)
        return "exit 78, Result=%s, not restarted" % show(
            "slackd.service", "Result")
    finally:
        write("/etc/slackd/token", TOKEN + "\n", 0o600)


@check("app-token-credential")
def app_token_credential(ctx):
    """The units run with and without the optional app-token file: with it
    Socket Mode (the token through the credential), without it RTM."""
    ctx["fake"].app_token = APP
    write("/etc/slackd/app-token", APP + "\n", 0o600)
    try:
        run("systemctl", "restart", "slackd.service", check=True)
        c = Client(SOCK)
        c.connected()
        assert c.hello.get("upstream") == "socket", c.hello
        event_reaches(ctx["fake"], c, "through Socket Mode")
        c.close()
    finally:
        os.unlink("/etc/slackd/app-token")
    run("systemctl", "restart", "slackd.service", check=True)
    c = Client(SOCK)
    c.connected()
    assert c.hello.get("upstream") == "rtm", c.hello
    c.close()
    out = run("journalctl", "-b", "--no-pager", "-u", "slackd").stdout
    assert APP not in out, "the app-level token is in the journal"
    return "socket with the file, rtm without"


@check("journal-priorities")
def journal_priorities(ctx):
    out = run("journalctl", "-u", "slackd", "-p", "warning", "-o", "json",
              "--no-pager", check=True).stdout
    entries = [json.loads(l) for l in out.splitlines() if l.strip()]
    mine = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "slackd"]
    bad = [e for e in mine if "invalid_auth" in str(e.get("MESSAGE"))]
    assert bad, "no invalid_auth line at warning or worse: %r" % [
        e.get("MESSAGE") for e in mine][-5:]
    # The reason is a warning, the exit it causes an error.
    err = [e for e in bad if int(e["PRIORITY"]) == 3]
    assert err and "exits with status 78" in err[-1]["MESSAGE"], \
        [(e["PRIORITY"], e["MESSAGE"]) for e in bad]
    assert all(not str(e.get("MESSAGE")).startswith("<") for e in mine), \
        "a <N> prefix reached the journal as text"
    info = run("journalctl", "-u", "slackd", "-p", "info", "-o", "json",
               "--no-pager", check=True).stdout
    prios = {int(json.loads(l)["PRIORITY"]) for l in info.splitlines()
             if l.strip() and json.loads(l).get("SYSLOG_IDENTIFIER")
             == "slackd"}
    assert 6 in prios and 3 in prios, prios
    return "<3>%s" % err[-1]["MESSAGE"][:100]


@check("token-not-in-journal")
def token_not_in_journal(ctx):
    out = subprocess.run(("journalctl", "-b", "-o", "export",
                          "--no-pager"), capture_output=True,
                         timeout=120).stdout
    assert len(out) > 10000, "the journal is nearly empty"
    for name, secret in (("token", TOKEN), ("second token", TOKEN2),
                         ("wrong token", WRONG), ("app-level token", APP)):
        assert secret.encode() not in out, "the %s is in the journal" % name
    run("systemctl", "reset-failed", "slackd.service", check=True)
    return "%d bytes of journal searched" % len(out)


@check("template-instance")
def template_instance(ctx):
    run("systemctl", "start", "slackd@second.socket", check=True)
    c2 = Client(SOCK2)
    c2.connected()
    event_reaches(ctx["fake2"], c2, "to the second workspace")
    c1 = Client(SOCK)
    c1.connected()
    event_reaches(ctx["fake"], c1, "to the first workspace")
    ctx["fake2"].emit({"type": "message", "channel": "C0GENERAL",
                       "text": "second only"})
    c2.until(lambda m: m.get("text") == "second only", SLOW, "second only")
    assert not any(m.get("text") == "second only"
                   for m in drain(c1, 1.0)), "crossed workspaces"
    assert show("slackd@second.service", "ActiveState") == "active"
    assert show("slackd.service", "ActiveState") == "active"
    assert show("slackd@second.service", "MainPID") != \
        show("slackd.service", "MainPID")
    ctx["client"] = c1
    c2.close()


def drain(c, quiet):
    out = []
    try:
        while True:
            out.append(c.recv(quiet))
    except AssertionError:
        return out


@check("stop-clean")
def stop_clean(ctx):
    c = ctx["client"]
    pid = show("slackd.service", "MainPID")
    since = run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    run("systemctl", "stop", "slackd.service", check=True)
    assert c.wait_eof(10), "the client was not closed"
    assert show("slackd.service", "ActiveState") == "inactive"
    assert show("slackd.service", "Result") == "success", \
        show("slackd.service", "Result")
    assert show("slackd.service", "ExecMainStatus") == "0"
    assert not os.path.exists("/proc/" + pid)
    j = run("journalctl", "-u", "slackd", "--since", since, "-o", "cat",
            "--no-pager").stdout
    # systemd asked, slackd went through its own shutdown (STOPPING=1,
    # clients closed, upstream closed) and said so.
    assert "Stopping slackd.service" in j, j[-500:]
    assert "shutting down" in j and "stopped" in j, j[-500:]
    # The socket unit still listens: the file stays and a client starts
    # slackd again.
    assert os.path.exists(SOCK), "socket file gone with the service"
    assert show("slackd.socket", "ActiveState") == "active"
    again = Client(SOCK)
    again.connected()
    again.close()
    return "Result=success, socket kept by slackd.socket"


@check("stop-drains")
def stop_drains(ctx):
    """systemctl stop while Slack holds a message's acknowledgement for
    3 s: slackd waits for it (drain_timeout, 5 s by default), so the
    sender gets ok, not not_confirmed, and then the service stops."""
    fake = ctx["fake"]
    c = Client(SOCK)
    c.connected()
    fake.delay_acks(3.0)
    try:
        c.send({"id": 7, "type": "message", "channel": "C0GENERAL",
                "text": "drained on stop"})
        wait_until(lambda: any(m.get("text") == "drained on stop"
                               for m in fake.messages()), SLOW,
                   "the message at the fake Slack")
        since = run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
        t0 = time.monotonic()
        run("systemctl", "stop", "slackd.service", check=True)
        took = time.monotonic() - t0
    finally:
        fake.delay_acks(0)
    r = c.until(lambda m: m.get("reply_to") == 7, 10, "the reply")
    assert r.get("ok") is True, "answered %r" % r
    assert c.wait_eof(10), "the client was not closed"
    assert show("slackd.service", "ActiveState") == "inactive"
    assert show("slackd.service", "Result") == "success", \
        show("slackd.service", "Result")
    j = run("journalctl", "-u", "slackd", "--since", since, "-o", "cat",
            "--no-pager").stdout
    # The stop waited for the acknowledgement (about 3 s after the
    # message reached the fake), not for drain_timeout to run out.
    assert "every queued message was sent and answered" in j, j[-500:]
    assert 1 < took < 15, "systemctl stop took %.1f s" % took
    return "ok after a stop of %.1f s" % took


@check("socket-removed-on-stop")
def socket_removed(ctx):
    run("systemctl", "stop", "slackd.socket", "slackd.service",
        "slackd@second.socket", "slackd@second.service", check=True)
    assert not os.path.exists(SOCK), "RemoveOnStop=yes left the file"
    assert not os.path.exists(SOCK2)
    assert show("slackd.service", "Result") == "success"


@check("remove-keeps-config")
def remove_keeps_config(ctx):
    # Running: slackd through its socket, and a second instance.
    run("systemctl", "start", "slackd.socket", "slackd@second.socket",
        check=True)
    for path, fake in ((SOCK, ctx["fake"]), (SOCK2, ctx["fake2"])):
        c = Client(path)
        c.connected()
        event_reaches(fake, c, "before apt-get remove")
        ctx.setdefault("clients", []).append(c)
    assert show("slackd@second.service", "ActiveState") == "active"
    apt_get("remove", "slackd", "slackctl")
    for unit in ("slackd.service", "slackd.socket", "slackd@second.service",
                 "slackd@second.socket"):
        assert show(unit, "ActiveState") == "inactive", \
            "%s is %s after remove" % (unit, show(unit, "ActiveState"))
    for c in ctx["clients"]:
        assert c.wait_eof(10), "a client still connected after remove"
    for pkg in ("slackd", "slackctl"):
        assert dpkg_status(pkg) in ("rc", "un"), (pkg, dpkg_status(pkg))
    assert dpkg_status("slackd") == "rc", dpkg_status("slackd")
    for path in ("/usr/sbin/slackd", "/usr/bin/slackctl",
                 "/usr/lib/systemd/system/slackd.service"):
        assert not os.path.exists(path), path + " left by remove"
    for path in ("/etc/slackd/slackd.conf", "/etc/slackd/token",
                 "/etc/slackd/second.conf"):
        assert os.path.exists(path), path + " removed by remove"
    with open("/etc/slackd/slackd.conf") as f:
        assert ctx["fake"].api_url in f.read(), "the edited conffile changed"
    # What purge must then remove was there.
    state = [p for p in ("/var/lib/private/slackd",
                         "/var/lib/private/slackd-second") if
             os.path.isdir(p)]
    assert state, "no state directory was made"
    ctx["state"] = state
    return "units stopped; kept /etc/slackd, " + " ".join(state)


@check("purge-removes-all")
def purge_removes_all(ctx):
    apt_get("purge", "slackd", "slackctl")
    for pkg in ("slackd", "slackctl"):
        assert dpkg_status(pkg) in ("un", "pn", "not known"), \
            (pkg, dpkg_status(pkg))
    left = [p for p in ["/etc/slackd", "/run/slackd", "/var/lib/slackd",
                        "/var/lib/slackd-second",
                        "/etc/systemd/system/sockets.target.wants/"
                        "slackd.socket",
                        "/usr/lib/sysusers.d/slackd.conf",
                        "/usr/lib/tmpfiles.d/slackd.conf"] + ctx["state"]
            if os.path.lexists(p)]
    assert not left, "left after purge: %s" % left
    assert run("systemctl", "cat", "slackd.socket").returncode != 0, \
        "systemd still knows slackd.socket"
    # Kept on purpose (README.Debian): the group.
    run("getent", "group", "slackd", check=True)
    return "group slackd kept, as documented"


@check("reinstall")
def reinstall(ctx):
    install_packages()
    check_installed()
    assert os.path.exists("/etc/slackd/slackd.conf"), "conffile not back"
    write("/etc/slackd/slackd.conf",
          "api_url = %s\n" % ctx["fake"].api_url, 0o644)
    write("/etc/slackd/token", TOKEN + "\n", 0o600)
    c = Client(SOCK)
    c.connected()
    event_reaches(ctx["fake"], c, "after the reinstall")
    p = run("slackctl", "send", "C0GENERAL", "hello again", user="alice")
    assert p.returncode == 0, (p.returncode, p.stderr.strip())
    assert any(m.get("text") == "hello again"
               for m in ctx["fake"].messages()), "the fake got nothing"
    ctx["client"] = c


@check("upgrade-restarts")
def upgrade_restarts(ctx):
    """An upgrade (here the same version again) restarts a running slackd
    with the new binary and keeps the edited conffile."""
    pid = show("slackd.service", "MainPID")
    assert show("slackd.service", "ActiveState") == "active"
    apt_get("install", "--reinstall", "--no-install-recommends",
            *sorted("./" + f for f in os.listdir(DEBS)
                    if f.endswith(".deb")))
    assert ctx["client"].wait_eof(10), "the old slackd's client stayed"
    ctx["client"].close()
    wait_until(lambda: show("slackd.service", "ActiveState") == "active"
               and show("slackd.service", "MainPID") not in ("0", pid),
               SLOW, "slackd to run again after the upgrade")
    assert show("slackd.socket", "ActiveState") == "active"
    with open("/etc/slackd/slackd.conf") as f:
        assert ctx["fake"].api_url in f.read(), "the conffile was replaced"
    c = Client(SOCK)
    c.connected()
    event_reaches(ctx["fake"], c, "after the upgrade")
    c.close()
    return "MainPID %s -> %s" % (pid, show("slackd.service", "MainPID"))


def main():
    say("VMTEST start")
    ctx = {}
    for fn in (setup, activation, status_text, group_member_sends,
               outsider_refused, reload_keeps_clients, watchdog_restarts,
               invalid_token, app_token_credential, journal_priorities, token_not_in_journal,
               template_instance, stop_clean, stop_drains, socket_removed,
               remove_keeps_config, purge_removes_all, reinstall,
               upgrade_restarts):
        fn(ctx)
    for f in ("fake", "fake2"):
        if f in ctx:
            ctx[f].stop()
    say("VMTEST done: %d ok, %d not ok" % (RESULTS.count(True),
                                           RESULTS.count(False)))
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
