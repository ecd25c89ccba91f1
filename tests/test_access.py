"""Who may use the local socket: its mode and group, allow_users and
allow_groups (checked on the peer's credentials, changed by a reload), what
a refused user is told, and unknown names in the configuration.  Most of
these act as another user and so need root; they skip otherwise."""

import os
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from conftest import SLACKD, SLACKCTL


@pytest.fixture
def open_dir():
    """A directory other users can reach (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="slackd-test-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(*args):
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                           "--clear-groups"] + list(args),
                          capture_output=True, text=True, timeout=10)


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root to act as another user")


def test_socket_mode(daemon_factory, fake):
    d = daemon_factory().start()
    assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o660
    d.stop()
    d2 = daemon_factory(socket_mode="0600").start()
    assert stat.S_IMODE(os.stat(d2.sock).st_mode) == 0o600


def test_slackctl_permission_denied(daemon, fake):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    os.chmod(daemon.sock, 0o600)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", SLACKCTL, "-s", daemon.sock,
                        "status"], capture_output=True, text=True)
    assert p.returncode == 3
    assert "permission denied" in p.stderr


@needs_root
def test_allow_users_refuses_others(daemon_factory, fake, open_dir):
    sock = os.path.join(open_dir, "s.sock")
    d = daemon_factory(socket=sock, socket_mode="0666", allow_users="root")
    d.sock = sock
    d.start()
    p = as_nobody(SLACKCTL, "-s", sock, "status")
    assert p.returncode == 3
    assert "uid 65534 is not allowed" in p.stderr
    assert d.status()["clients_refused"] == 1
    assert "refused a client: uid 65534" in d.log_text()
    p = subprocess.run([SLACKCTL, "-s", sock, "status"],
                       capture_output=True, text=True)
    assert p.returncode == 0


@needs_root
def test_allow_groups_admits_members(daemon_factory, fake, open_dir):
    sock = os.path.join(open_dir, "s.sock")
    d = daemon_factory(socket=sock, socket_mode="0666",
                       allow_groups="nogroup")
    d.sock = sock
    d.start()
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", SLACKCTL, "-s", sock, "status"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr           # primary group nogroup
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=1",
                        "--groups=65534", SLACKCTL, "-s", sock, "status"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr           # supplementary group
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=1",
                        "--clear-groups", SLACKCTL, "-s", sock, "status"],
                       capture_output=True, text=True)
    assert p.returncode == 3 and "not allowed" in p.stderr


@needs_root
def test_reload_changes_access_rules(daemon_factory, fake, open_dir):
    sock = os.path.join(open_dir, "s.sock")
    d = daemon_factory(socket=sock, socket_mode="0666")
    d.sock = sock
    d.start()
    assert as_nobody(SLACKCTL, "-s", sock, "status").returncode == 0
    d.rewrite_config(allow_users="root")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    p = as_nobody(SLACKCTL, "-s", sock, "status")
    assert p.returncode == 3 and "not allowed" in p.stderr


@needs_root
def test_socket_group_applied(daemon_factory, fake):
    d = daemon_factory(socket_group="nogroup").start()
    st = os.stat(d.sock)
    assert st.st_gid == 65534
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_unknown_user_in_config(daemon_factory, fake):
    d = daemon_factory(allow_users="root no-such-user-here")
    d.write_config()
    p = subprocess.run([SLACKD, "-n", "-f", d.conf_path],
                       capture_output=True, text=True)
    assert p.returncode == 78
    assert 'allow_users: there is no user "no-such-user-here"' in p.stderr
