"""NATS with authentication: the permissions README.md documents for
nats_ha, NKey and creds (JWT) logins, and nats_ha with Socket Mode.

A real nats-server is started per test (JetStream in a temporary
directory); the tests are skipped, saying so, only where nats-server is
not installed.  The keys and JWTs are made here (Ed25519 from Debian's
python3-cryptography, NATS's own encodings written out below), so the
server checks what slackd's libnats sends against an independent
implementation.
"""

import base64
import binascii
import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import SCALE, SLACKCTL, TcpProxy, wait_until
from test_nats import (NATS_SERVER, PREFIX, STREAM, NatsClient, NatsServer,
                       message, secret_file, wait_stream)
from test_nats_ha import one_leader, recv_message

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey)
    from cryptography.hazmat.primitives import serialization
except ImportError:  # pragma: no cover
    Ed25519PrivateKey = None

pytestmark = [
    pytest.mark.skipif(
        NATS_SERVER is None,
        reason="nats-server is not installed (Debian: apt-get install "
        "nats-server; scripts/deps installs it): these tests need a real "
        "server"),
    pytest.mark.skipif(
        Ed25519PrivateKey is None,
        reason="python3-cryptography is missing (Debian: apt-get install "
        "python3-cryptography; scripts/deps installs it): the NKeys are "
        "made with it"),
]

LEASE = 2.0  # s: ha_lease in these tests
CH = "C024BE91L"
WAIT = 20 * SCALE


# ---- NKeys ------------------------------------------------------------------
#
# An NKey is an Ed25519 key pair, written as base32 (no padding) of
# prefix byte(s), the 32 key bytes and a CRC16 (XMODEM, little-endian).
# A public key has one prefix byte (its role: U user, A account, O
# operator); a seed has two: "S" and the role, packed into 10 bits.

NKEY_ROLE = {"user": 20 << 3, "account": 0, "operator": 14 << 3}
NKEY_SEED = 18 << 3


def crc16(data):
    return binascii.crc_hqx(data, 0)  # CRC-16/XMODEM


def nkey_encode(prefix, raw):
    b = bytes(prefix) + raw
    b += crc16(b).to_bytes(2, "little")
    return base64.b32encode(b).decode().rstrip("=")


class NKey:
    def __init__(self, role):
        self.key = Ed25519PrivateKey.generate()
        raw_seed = self.key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption())
        raw_pub = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        r = NKEY_ROLE[role]
        self.public = nkey_encode([r], raw_pub)
        self.seed = nkey_encode(
            [NKEY_SEED | (r >> 5), (r & 31) << 3], raw_seed)

    def sign(self, data):
        return self.key.sign(data)


def test_nkey_shapes():
    """The encodings above give keys of NATS's shape (the servers in the
    tests below are what accepts or refuses them)."""
    k = NKey("user")
    assert k.public.startswith("U") and len(k.public) == 56
    assert k.seed.startswith("SU") and len(k.seed) == 58
    a, o = NKey("account"), NKey("operator")
    assert a.public[0] == "A" and a.seed.startswith("SA")
    assert o.public[0] == "O" and o.seed.startswith("SO")
    # decode our own seed and check the CRC, as nkeys does
    raw = base64.b32decode(k.seed + "=" * (-len(k.seed) % 8))
    assert crc16(raw[:-2]) == int.from_bytes(raw[-2:], "little")


# ---- JWTs (nats-io/jwt v2) --------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(issuer, subject, name, nats):
    """A v2 NATS JWT for subject, signed by issuer (an NKey)."""
    header = {"typ": "JWT", "alg": "ed25519-nkey"}
    claims = {"iat": int(time.time()), "iss": issuer.public,
              "name": name, "sub": subject, "nats": nats}
    # jti: the hash of the claims without it, as nats-io/jwt v2 makes it
    h = hashlib.new("sha512_256", json.dumps(claims).encode()).digest()
    claims["jti"] = base64.b32encode(h).decode().rstrip("=")
    body = b64url(json.dumps(header).encode()) + "." + \
        b64url(json.dumps(claims).encode())
    return body + "." + b64url(issuer.sign(body.encode()))


UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1,
             "exports": -1, "wildcards": True, "conn": -1, "leaf": -1}


def creds_text(user_jwt, seed):
    """A .creds file, as nsc writes it."""
    return ("-----BEGIN NATS USER JWT-----\n%s\n"
            "------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            "-----BEGIN USER NKEY SEED-----\n%s\n"
            "------END USER NKEY SEED------\n\n"
            "*************************************************************\n"
            % (user_jwt, seed))


class Operator:
    """An operator, a system account and an account with JetStream, and
    users of that account: what nsc would make, for nats-server's
    operator mode with a memory resolver."""

    def __init__(self):
        self.op = NKey("operator")
        self.sys = NKey("account")
        self.acct = NKey("account")
        self.op_jwt = jwt(self.op, self.op.public, "test-operator", {
            "type": "operator", "version": 2,
            "system_account": self.sys.public})
        self.sys_jwt = jwt(self.op, self.sys.public, "SYS", {
            "type": "account", "version": 2, "limits": dict(UNLIMITED)})
        limits = dict(UNLIMITED, mem_storage=-1, disk_storage=-1,
                      streams=-1, consumer=-1)
        self.acct_jwt = jwt(self.op, self.acct.public, "SLACK", {
            "type": "account", "version": 2, "limits": limits,
            "default_permissions": {"pub": {}, "sub": {}}})

    def user(self, name, permissions=None):
        """(NKey, JWT) of a user of the account."""
        u = NKey("user")
        nats = {"type": "user", "version": 2, "subs": -1, "data": -1,
                "payload": -1, "pub": {}, "sub": {}}
        nats.update(permissions or {})
        return u, jwt(self.acct, u.public, name, nats)

    def server_conf(self):
        return ("operator: %s\nsystem_account: %s\nresolver: MEMORY\n"
                "resolver_preload: {\n  %s: %s\n  %s: %s\n}\n" % (
                    self.op_jwt, self.sys.public, self.sys.public,
                    self.sys_jwt, self.acct.public, self.acct_jwt))


# ---- a test client that logs in with an NKey or a JWT -----------------------

class AuthClient(NatsClient):
    """NatsClient logging in with an NKey (nonce signed) and, for a JWT
    user, the JWT."""

    def __init__(self, url, nkey, user_jwt=None):
        def login(info):
            conn = {"sig": b64url(nkey.sign(info["nonce"].encode()))}
            if user_jwt is None:
                conn["nkey"] = nkey.public
            else:
                conn["jwt"] = user_jwt
            return conn
        super().__init__(url, login=login)


def assert_published(d, fake, nc):
    """An event from Slack reaches the stream (read as nc) and JetStream
    acknowledges it to d."""
    fake.emit(message(1))
    wait_stream(nc, 2)
    subj, _, data = nc.stream_msg(STREAM, 2)
    assert subj == PREFIX + ".event.message.C024BE91L"
    assert json.loads(data)["text"] == "hello 1"
    wait_until(lambda: d.status()["nats"]["published"] == 2, WAIT,
               what="the acks")


def publishing_daemon(daemon_factory, user, **settings):
    """A slackd that logs in as user (whose seed no output may show),
    started, publishing to the stream."""
    d = daemon_factory(**settings)
    d.secrets.append(user.seed)
    d.start()
    d.wait_log("publishing to the stream " + STREAM)
    return d


def ctl_nats(d, url, *args, env=None, timeout=30):
    """slackctl over NATS, from a "host" without slackd's socket."""
    e = dict(os.environ, XDG_RUNTIME_DIR="/nonexistent")
    for k in ("SLACKD_SOCKET", "SLACKD_NATS", "SLACKD_NATS_PREFIX",
              "SLACKD_NATS_CREDS"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([SLACKCTL, "--nats", url, "--nats-prefix", PREFIX] +
                       list(args), capture_output=True, text=True,
                       timeout=timeout, env=e)
    d.outputs += [p.stdout, p.stderr]
    return p


def wait_refused(d):
    """slackd's status says it cannot connect.  Which reason depends on a
    race in libnats: nats-server sends -ERR 'Authorization Violation' and
    closes, and the client keeps either that, or its own name for the
    status ("Authentication Violation"), or "No server available for
    connection" (it does not try again after a refusal)."""
    def refused():
        n = d.status()["nats"]
        return n["state"] != "connected" and (n["last_error"] or "") \
            .startswith("cannot connect: ")
    wait_until(refused, WAIT, what="NATS's refusal in slackctl status")
    err = d.status()["nats"]["last_error"]
    assert any(w in err for w in (
        "Authorization Violation", "Authentication Violation",
        "No server available for connection")), err


# ---- nats_ha with the documented permissions --------------------------------

def readme_ha_permissions():
    """The slackd user's permissions for nats_ha, as README.md's "Standby
    and takeover" lists them, with this test's prefix and stream."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(top, "README.md")) as f:
        text = f.read()
    part = text[text.index("### Standby and takeover"):]
    block = part[part.index("{ user: slackd"):]
    block = block[:block.index("```")]
    lists = {}
    for kind in ("publish", "subscribe"):
        s = block[block.index(kind + ":") + len(kind) + 1:]
        s = s[:s.index("]") + 1]
        lists[kind] = [x.replace("slack.T024BE7LD", PREFIX)
                       .replace("SLACK_T024BE7LD", STREAM)
                       for x in json.loads(s)]
    return lists


def test_ha_with_the_documented_permissions(daemon_factory, fake, tmp_path):
    perms = readme_ha_permissions()
    # the list really is the HA one (the test would prove nothing else)
    assert any("KV_SLACKD_HA_" in s for s in perms["publish"]), perms
    server = NatsServer(tmp_path / "haperm", users=[
        {"user": "slackd", "password": "slackd-pw", "permissions": perms},
        {"user": "admin", "password": "admin-pw"}]).start()
    try:
        pw = secret_file(str(tmp_path / "nats.pw"), "slackd-pw\n")
        ds = []
        for _ in range(3):
            d = daemon_factory(nats_url=server.url, nats_user="slackd",
                               nats_password_file=pw, nats_ha="yes",
                               ha_lease="%g" % LEASE, nats_prefix=PREFIX,
                               nats_stream=STREAM)
            d.start(wait="socket")
            ds.append(d)
        leader = one_leader(ds, 15)
        standbys = [d for d in ds if d is not leader]
        for d in standbys:
            wait_until(lambda: "pid %d" % leader.proc.pid in
                       (d.status().get("leader") or ""), 15 * SCALE,
                       what="the standby to name the leader")
        clients = {d: d.client() for d in ds}
        nc = NatsClient(server.url, "admin", "admin-pw")
        for i in range(1, 3):
            fake.add_message(CH, "hello %d" % i)
        for d in ds:
            for i in range(1, 3):
                recv_message(clients[d], "hello %d" % i)
        # a request on a standby's socket goes to Slack through the leader
        c = clients[standbys[0]]
        c.send({"id": 7, "type": "message", "channel": CH,
                "text": "from a standby"})
        r = c.recv_until(lambda m: m.get("reply_to") == 7, 10 * SCALE)
        assert r.get("ok") is True, r
        assert [f["text"] for f in fake.messages()].count(
            "from a standby") == 1
        # the leader dies: a standby leads (the lease's subjects suffice)
        leader.signal(signal.SIGKILL)
        leader.wait_exit()
        leader.expected_exit = None
        new = one_leader(standbys, LEASE + 5)
        fake.add_message(CH, "after the takeover")
        for d in standbys:
            recv_message(clients[d], "after the takeover", 20)
        wait_until(lambda: new.status()["nats"]["backlog"] == 0, WAIT,
                   what="the new leader's acks")
        msgs = [b for s, _, b in nc.stream_all(STREAM)
                if s.startswith(PREFIX + ".event.message")]
        for text in ("hello 1", "hello 2", "after the takeover"):
            assert sum(1 for b in msgs if b'"%s"' % text.encode()
                       in b) == 1, (text, msgs)
        # a clean stop releases the lease (a delete): the third leads at once
        other = [d for d in standbys if d is not new][0]
        new.stop()
        one_leader([other], LEASE * 0.6)
        fake.add_message(CH, "after the handover")
        recv_message(clients[other], "after the handover", 20)
        # nothing was refused: not in slackd's status, not in the server
        st = other.status()["nats"]
        assert st["last_error"] is None or "Permissions Violation" \
            not in st["last_error"], st
        # and what a stopping slackd does (its lease, its consumer)
        other.stop()
        for d in ds:
            assert "Permissions Violation" not in d.log_text()
        # (nats-server logs "Publish Violation", "Subscription Violation")
        assert "Violation" not in server.log_text(), \
            server.log_text()[-3000:]
        fake.assert_one_rtm_session()
        nc.close()
    finally:
        server.stop()


# ---- NKey login -------------------------------------------------------------

def nkey_file(path, key):
    """nats_nkey_file as "nk -gen user -pubout" writes it: seed, public."""
    return secret_file(path, "%s\n%s\n" % (key.seed, key.public))


def test_nkey_login(daemon_factory, fake, tmp_path):
    user, other = NKey("user"), NKey("user")
    admin = NKey("user")
    server = NatsServer(tmp_path / "nkey", users=[
        {"nkey": user.public}, {"nkey": admin.public}]).start()
    try:
        nk = nkey_file(str(tmp_path / "slackd.nk"), user)
        d = publishing_daemon(daemon_factory, user, nats_url=server.url,
                              nats_nkey_file=nk)
        nc = AuthClient(server.url, admin)
        assert_published(d, fake, nc)
        st = d.status()["nats"]
        assert st["state"] == "connected" and st["last_error"] is None, st
        # requests over NATS are answered too
        _, body = nc.request(PREFIX + ".request", '{"type":"slackd.status"}')
        assert json.loads(body)["ok"] is True
        p = d.ctl("status")
        assert p.returncode == 0 and "nats:       connected to %s" % \
            server.url in p.stdout, p.stdout + p.stderr
        nc.close()
        # a key the server does not know: refused, and said so
        d.stop()
        nk2 = nkey_file(str(tmp_path / "other.nk"), other)
        d.secrets.append(other.seed)
        d.settings.update(nats_nkey_file=nk2)
        d.start()
        wait_refused(d)
        # a seed file others may read is refused at start
        d.stop()
        os.chmod(nk, 0o640)
        d.settings.update(nats_nkey_file=nk)
        d.expected_exit = None
        d.start(wait=None)
        assert d.wait_exit() == 78
        assert "nats_nkey_file %s is accessible by group or others" % nk \
            in d.log_text()
    finally:
        server.stop()


def test_nkey_login_with_nats_ha(daemon_factory, fake, tmp_path):
    """nats_ha opens a second connection (the lease's): both sign the
    server's nonce with the one seed."""
    user = NKey("user")
    server = NatsServer(tmp_path / "nkeyha", users=[
        {"nkey": user.public}]).start()
    try:
        nk = nkey_file(str(tmp_path / "slackd.nk"), user)
        ds = []
        for _ in range(2):
            d = daemon_factory(nats_url=server.url, nats_nkey_file=nk,
                               nats_ha="yes", ha_lease="%g" % LEASE,
                               nats_prefix=PREFIX, nats_stream=STREAM)
            d.secrets.append(user.seed)
            d.start(wait="socket")
            ds.append(d)
        leader = one_leader(ds, 15)
        standby = [d for d in ds if d is not leader][0]
        wait_until(lambda: "pid %d" % leader.proc.pid in
                   (standby.status().get("leader") or ""), 15 * SCALE,
                   what="the standby to name the leader")
        c = standby.client()
        fake.add_message(CH, "via the stream")
        recv_message(c, "via the stream")
        leader.stop()
        one_leader([standby], LEASE * 0.6)
        fake.assert_one_rtm_session()
    finally:
        server.stop()


# ---- creds (JWT) login: nats-server in operator mode ------------------------

def operator_server(path, op):
    server = NatsServer(path)
    with open(server.conf, "a") as f:
        f.write(op.server_conf())
    return server.start()


def test_creds_login(daemon_factory, fake, tmp_path):
    op = Operator()
    user, user_jwt = op.user("slackd")
    admin, admin_jwt = op.user("admin")
    server = operator_server(tmp_path / "creds", op)
    try:
        creds = secret_file(str(tmp_path / "slackd.creds"),
                            creds_text(user_jwt, user.seed))
        d = publishing_daemon(daemon_factory, user, nats_url=server.url,
                              nats_creds_file=creds)
        nc = AuthClient(server.url, admin, admin_jwt)
        assert_published(d, fake, nc)
        assert d.status()["nats"]["last_error"] is None
        # slackctl with the same creds file, from "another host"
        p = ctl_nats(d, server.url, "--nats-creds", creds, "status")
        assert p.returncode == 0, p.stderr
        assert "nats:       connected to %s, stream %s" % (
            server.url, STREAM) in p.stdout, p.stdout
        p = ctl_nats(d, server.url, "status", "--json",
                     env={"SLACKD_NATS_CREDS": creds})
        assert p.returncode == 0 and json.loads(p.stdout)["ok"] is True
        p = ctl_nats(d, server.url, "--nats-creds", creds, "send", CH,
                     "with creds")
        assert p.returncode == 0, p.stderr
        assert fake.session.frames("message")[-1]["text"] == "with creds"
        # without credentials the server refuses slackctl, and it says so
        p = ctl_nats(d, server.url, "status")
        assert p.returncode == 3, (p.stdout, p.stderr)
        assert "cannot connect to NATS at %s" % server.url in p.stderr
        # a user the account did not sign: refused, and said so
        stranger = NKey("account")
        other, other_jwt = NKey("user"), None
        other_jwt = jwt(stranger, other.public, "stranger", {
            "type": "user", "version": 2, "pub": {}, "sub": {}})
        creds2 = secret_file(str(tmp_path / "other.creds"),
                             creds_text(other_jwt, other.seed))
        d.secrets.append(other.seed)
        d.stop()
        d.settings.update(nats_creds_file=creds2)
        d.start()
        wait_refused(d)
        nc.close()
    finally:
        server.stop()


# ---- a nonce whose signature begins with a zero byte ------------------------
#
# libnats 3.4.1 (Debian 12's) leaves "sig" out of CONNECT when the nonce's
# signature begins with a zero byte (1 nonce in 256), and the server
# refuses the login: slackd and slackctl refuse such a signature before
# CONNECT and connect again (common/natslogin.c).  A proxy in front of the
# server gives chosen connections such a nonce.

def zero_nonce(key):
    """A nonce (as nats-server makes them) whose signature by key begins
    with a zero byte."""
    while True:
        n = b64url(os.urandom(11))
        if key.sign(n.encode())[0] == 0:
            return n


class NonceProxy:
    """A proxy to a nats-server that gives the next `bad` connections, and
    those whose index (from 0) is in `at`, the nonce `nonce` in their
    INFO, and records each connection: whether it had that nonce, and the
    client's CONNECT (None if it sent none)."""

    def __init__(self, target_port, nonce):
        self.target = ("127.0.0.1", target_port)
        self.nonce = nonce
        self.bad = 0
        self.at = set()
        self.conns = []           # [bad?, CONNECT dict or None]
        self.lock = threading.Lock()
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.url = "nats://127.0.0.1:%d" % self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    @staticmethod
    def _line(sock):
        buf = b""
        while not buf.endswith(b"\r\n"):
            try:
                b = sock.recv(1)
            except ConnectionResetError:  # a client closing at once
                b = b""
            if not b:
                return None
            buf += b
        return buf

    def _serve(self, c):
        u = socket.create_connection(self.target, timeout=10)
        info = self._line(u)
        with self.lock:
            bad = self.bad > 0 or len(self.conns) in self.at
            self.bad -= self.bad > 0
            rec = [bad, None]
            self.conns.append(rec)
        if bad:
            i = json.loads(info[5:])
            i["nonce"] = self.nonce
            info = b"INFO " + json.dumps(i).encode() + b"\r\n"
        c.sendall(info)
        first = self._line(c)
        if first is None:
            c.close()
            u.close()
            return
        if first.startswith(b"CONNECT "):
            rec[1] = json.loads(first[8:])
        u.sendall(first)
        for a, b in ((c, u), (u, c)):
            threading.Thread(target=TcpProxy._pipe, args=(a, b),
                             daemon=True).start()

    def assert_retried(self, n):
        """n connections had the nonce and none of them sent CONNECT
        (libnats 3.4.1 would have sent one without "sig"); every CONNECT
        any connection sent is signed.  (A connection with the server's
        own nonce may send none either: its signature can begin with a
        zero byte too, 1 in 256.)"""
        with self.lock:
            conns = [(bad, None if c is None else sorted(c))
                     for bad, c in self.conns]
        assert [r for r in conns if r[0]] == [(True, None)] * n, conns
        assert all("sig" in r[1] for r in conns if r[1] is not None), conns

    def close(self):
        self.ls.close()


def test_zero_signature_creds(daemon_factory, fake, tmp_path):
    """slackd and slackctl with a creds file, each given a nonce libnats
    would send no signature for: both log in at their next attempt."""
    op = Operator()
    user, user_jwt = op.user("slackd")
    admin, admin_jwt = op.user("admin")
    server = operator_server(tmp_path / "zcreds", op)
    proxy = NonceProxy(server.port, zero_nonce(user))
    try:
        creds = secret_file(str(tmp_path / "slackd.creds"),
                            creds_text(user_jwt, user.seed))
        proxy.bad = 1
        d = publishing_daemon(daemon_factory, user, nats_url=proxy.url,
                              nats_creds_file=creds)
        nc = AuthClient(server.url, admin, admin_jwt)
        assert_published(d, fake, nc)
        proxy.assert_retried(1)
        # nothing to report: no error, no warning
        assert d.status()["nats"]["last_error"] is None, d.log_text()
        assert "warning: NATS" not in d.log_text()
        proxy.bad = 1
        p = ctl_nats(d, proxy.url, "--nats-creds", creds, "send", CH,
                     "after a zero signature")
        assert p.returncode == 0, p.stderr
        assert fake.session.frames("message")[-1]["text"] == \
            "after a zero signature"
        proxy.assert_retried(2)
        assert "authentication error" not in server.log_text()
        nc.close()
    finally:
        proxy.close()
        server.stop()


def nkey_behind_proxy(tmp_path, user, *others):
    """A nats-server that knows user's (and others') NKey, a NonceProxy in
    front of it with a zero nonce for user, and user's nats_nkey_file."""
    server = NatsServer(tmp_path / "nkey", users=[
        {"nkey": k.public} for k in (user,) + others]).start()
    return (server, NonceProxy(server.port, zero_nonce(user)),
            nkey_file(str(tmp_path / "slackd.nk"), user))


def test_zero_signature_nkey(daemon_factory, fake, tmp_path):
    """slackd with an NKey, given such a nonce at its first connection and
    again when it reconnects (the server restarted): it logs in."""
    user, admin = NKey("user"), NKey("user")
    server, proxy, nk = nkey_behind_proxy(tmp_path, user, admin)
    try:
        proxy.bad = 1
        d = publishing_daemon(daemon_factory, user, nats_url=proxy.url,
                              nats_nkey_file=nk)
        nc = AuthClient(server.url, admin)
        assert_published(d, fake, nc)
        proxy.assert_retried(1)
        # the link drops: the first reconnection gets the nonce too
        proxy.bad = 1
        server.stop()
        server.start()
        nc = AuthClient(server.url, admin)
        fake.emit(message(2))
        wait_stream(nc, 3)
        proxy.assert_retried(2)
        wait_until(lambda: d.status()["nats"]["state"] == "connected",
                   WAIT, what="slackd connected again")
        assert "authentication error" not in server.log_text()
        assert "Authorization" not in d.log_text()
        assert "cannot connect" not in d.log_text()
        nc.close()
    finally:
        proxy.close()
        server.stop()


def test_zero_signature_lease_connection(daemon_factory, fake, tmp_path):
    """With nats_ha, the lease's own connection (slackd's second) given
    such a nonce: libnats would close it for good, slackd makes it again
    and leads."""
    user = NKey("user")
    server, proxy, nk = nkey_behind_proxy(tmp_path, user)
    proxy.at = {1}
    try:
        d = daemon_factory(nats_url=proxy.url, nats_nkey_file=nk,
                           nats_ha="yes", ha_lease="%g" % LEASE,
                           nats_prefix=PREFIX, nats_stream=STREAM)
        d.secrets.append(user.seed)
        d.start(wait="socket")
        one_leader([d], 15)
        proxy.assert_retried(1)
        assert "warning: NATS" not in d.log_text(), d.log_text()
        fake.assert_one_rtm_session()
    finally:
        proxy.close()
        server.stop()


# ---- nats_ha with Socket Mode -----------------------------------------------

class SocketModeWatch:
    """Polls every slackd's status and the fake's Socket Mode sessions:
    which slackd held which connection (the fake names each by its
    session, applink-fake-N), and whether two slackd ever held
    connections at the same moment."""

    def __init__(self, fake, ds):
        self.fake = fake
        self.ds = ds
        self.owner = {}       # fake session index -> daemon index
        self.both = []        # (time, {daemon index: hosts}) with 2+
        self.samples = 0
        self.error = None
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self._poll()
        except BaseException as e:  # said by stop()
            self.error = e

    def _poll(self):
        while self.running:
            holding = {}
            for i, d in enumerate(self.ds):
                if d.proc.poll() is not None:
                    continue
                try:
                    conns = d.status().get("connections") or []
                except (OSError, AssertionError, ValueError):
                    continue
                hosts = [c["host"] for c in conns if c.get("host")]
                for h in hosts:
                    n = int(h.rsplit("-", 1)[1])
                    assert self.owner.setdefault(n, i) == i, (h, i)
                if hosts:
                    holding[i] = hosts
            if len(holding) > 1:
                self.both.append((time.monotonic(), holding))
            self.samples += 1
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.thread.join()
        if self.error is not None:
            raise self.error

    def overlaps(self):
        """Pairs of Socket Mode sessions of two different slackd that were
        open at the same time, by the fake's own open/close times."""
        now = time.monotonic()
        ss = [s for s in self.fake.sm_sessions() if s.index in self.owner]
        out = []
        for a in ss:
            for b in ss:
                if a.index < b.index and \
                        self.owner[a.index] != self.owner[b.index] and \
                        a.connected_at < (b.closed_at or now) and \
                        b.connected_at < (a.closed_at or now):
                    out.append((a.index, b.index))
        return out


def recv_texts(c, texts, timeout=20):
    """Messages with these texts, in any order (two Socket Mode
    connections deliver side by side); each once."""
    want = list(texts)
    got = []
    deadline = time.monotonic() + timeout * SCALE
    while want:
        left = deadline - time.monotonic()
        assert left > 0, "still waiting for %r (got %r)" % (want, got)
        m = c.recv(left)
        if m.get("type") != "message":
            continue
        assert m.get("text") not in got, ("twice", m)
        got.append(m.get("text"))
        if m.get("text") in want:
            want.remove(m.get("text"))
    return got


def sm_live(d, n=2):
    try:
        conns = d.status().get("connections") or []
    except (OSError, AssertionError, ValueError):
        return False
    return len([c for c in conns if c["state"] == "live"]) >= n


SM_CH = "C0GENERAL"  # a channel of the fake's workspace (chat.postMessage)


def sm_ha_daemons(factory, server, n):
    """n slackd in Socket Mode with nats_ha: (all, leader, standbys), once
    the leader holds its connections and the standbys name it."""
    ds = []
    for _ in range(n):
        d = factory(nats_url=server.url, nats_ha="yes",
                    ha_lease="%g" % LEASE, upstream="socket",
                    nats_prefix=PREFIX, nats_stream=STREAM)
        d.start(wait="socket")
        ds.append(d)
    leader = one_leader(ds, 15)
    wait_until(lambda: sm_live(leader), 10 * SCALE,
               what="the leader's Socket Mode connections")
    standbys = [d for d in ds if d is not leader]
    for d in standbys:
        wait_until(lambda: "pid %d" % leader.proc.pid in
                   (d.status().get("leader") or ""), 15 * SCALE,
                   what="the standby to name the leader")
        assert not d.status().get("connections"), d.status()
    return ds, leader, standbys


def test_ha_with_socket_mode(sm_daemon_factory, sm_fake, tmp_path):
    fake = sm_fake
    server = NatsServer(tmp_path / "smha").start()
    try:
        ds, leader, standbys = sm_ha_daemons(sm_daemon_factory, server, 3)
        watch = SocketModeWatch(fake, ds)
        clients = {d: d.client() for d in ds}
        texts = []

        def say(text, deliver=True):
            fake.add_message(SM_CH, text, deliver=deliver)
            texts.append(text)
        for i in range(1, 4):
            say("before %d" % i)
        for d in ds:
            recv_texts(clients[d], texts)
        # a standby forwards a message to the leader, which sends it once
        c = clients[standbys[0]]
        c.send({"id": 7, "type": "message", "channel": SM_CH,
                "text": "from a standby"})
        r = c.recv_until(lambda m: m.get("reply_to") == 7, 10 * SCALE)
        assert r.get("ok") is True, r
        assert [f["text"] for f in fake.posts].count(
            "from a standby") == 1, fake.posts
        # Slack echoes the post as an event: let the leader ack it (an
        # envelope in flight at the kill is the next test's)
        wait_until(lambda: len(fake.sm_envelopes("events_api")) == 4 and
                   not fake.sm_unacked(), 10 * SCALE,
                   what="every envelope acked")

        leader.signal(signal.SIGKILL)
        leader.wait_exit()
        leader.expected_exit = None
        t0 = time.monotonic()
        say("in the gap", deliver=False)
        new = one_leader(standbys, LEASE + 5)
        assert time.monotonic() - t0 <= (LEASE + 5) * SCALE
        wait_until(lambda: sm_live(new), 10 * SCALE,
                   what="the new leader's Socket Mode connections")
        other = [d for d in standbys if d is not new][0]
        for d in standbys:
            m = recv_message(clients[d], "in the gap", 20)
            assert m.get("slackd_backfill"), m
        for i in range(1, 4):
            say("after %d" % i)
        for d in standbys:
            recv_texts(clients[d], texts[-3:])
        assert other.status()["state"] == "standby"
        wait_until(lambda: new.status()["nats"]["backlog"] == 0, WAIT,
                   what="the new leader's acks")
        # (two more polls, so that the new leader's sessions are seen)
        n = watch.samples
        wait_until(lambda: watch.samples >= n + 2 or watch.error, 5 * SCALE,
                   what="the watch's polls")
        watch.stop()

        # only one slackd ever held Socket Mode connections at a time
        assert watch.samples > 10
        assert not watch.both, watch.both
        assert not watch.overlaps(), watch.overlaps()
        sessions = fake.sm_sessions()
        assert {watch.owner.get(s.index) for s in sessions} == \
            {ds.index(leader), ds.index(new)}, (sessions, watch.owner)
        assert not [s for s in sessions if s.open and
                    watch.owner[s.index] != ds.index(new)]
        # the stream: every event once
        nc = NatsClient(server.url)
        msgs = [m for m in nc.stream_all(STREAM)
                if m[0].startswith(PREFIX + ".event.message")]
        ids = [h.get("Nats-Msg-Id") for _, h, _ in msgs]
        assert len(ids) == len(set(ids)), ids
        bodies = [json.loads(b) for _, _, b in msgs]
        for text in texts:
            n = sum(1 for b in bodies if b.get("text") == text)
            assert n == 1, (text, n, bodies)
        # Socket Mode: every envelope acked, none by the standbys
        for r in fake.sm_envelopes("events_api"):
            assert r["acks"], r
        nc.close()
    finally:
        server.stop()


def test_ha_socket_mode_unacked_envelope_once(sm_daemon_factory, sm_fake,
                                              tmp_path):
    """A message the dead leader got but did not ack is recovered by the
    new leader (backfill) and then sent again by Slack's retry of its
    envelope: clients and the stream get it once."""
    fake = sm_fake
    server = NatsServer(tmp_path / "smha").start()
    try:
        ds, leader, standbys = sm_ha_daemons(sm_daemon_factory, server, 2)
        standby = standbys[0]
        c = standby.client()
        # a message first, so that the channel is one to backfill
        fake.add_message(SM_CH, "before")
        recv_message(c, "before")
        # written to the leader, which is stopped: never acked
        leader.signal(signal.SIGSTOP)
        fake.add_message(SM_CH, "in flight")
        leader.signal(signal.SIGKILL)
        leader.wait_exit()
        leader.expected_exit = None
        one_leader([standby], LEASE + 5)
        # Slack sends the envelope again, to the new leader, which acks it
        wait_until(lambda: [r for r in fake.sm_envelopes("events_api")
                            if r["acks"] and r["attempt"] > 0], 15 * SCALE,
                   what="the retried envelope acked")
        time.sleep(0.5)
        got = [m for m in c.drain() if m.get("type") == "message"]
        wait_until(lambda: standby.status()["nats"]["backlog"] == 0, WAIT,
                   what="the acks")
        nc = NatsClient(server.url)
        stored = [json.loads(b) for s, _, b in nc.stream_all(STREAM)
                  if s.startswith(PREFIX + ".event.message")]
        nc.close()
        assert [m["text"] for m in got] == ["in flight"], got
        assert [m["text"] for m in stored] == ["before", "in flight"], stored
    finally:
        server.stop()
