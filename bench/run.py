#!/usr/bin/python3
"""The slackd benchmark driver (make bench).

Runs slackd against bench/gen (a fast fake Slack) with bench/reader clients,
and the floors bench/floor_lws and bench/floor_bridge against the same
generator, each case at least --reps times, and prints ONE JSON object on
stdout (also written to BUILDDIR/bench-results.json) followed by a human
table on stderr.

    bench/run.py --builddir BUILDDIR [--quick] [--reps N] [--out FILE]

Socket Mode runs in the same repetition, after RTM: a second slackd with an
app-level token (connections = 1, so that each event arrives once) receives
the same events inside events_api envelopes (bench/gen tag "sm") and acks
each; its receive CPU per event and latency are reported next to RTM's
(socket_deliver_1_200B, socket_latency_1).

Across an RTM goodbye (bench/goodbye.py), in the same repetition: the
events a client missed, got twice or out of order at 1,000 and 5,000
events/s, for slackd as it is (make-before-break) and with the test hook
that brings back the old behaviour (break-before-make), against
tests/fakeslack.py, which sends every event to every open session.

Daemon CPU is the sum over its threads of /proc/PID/task/*/schedstat
(on-CPU ns); /proc/PID/stat utime+stime (10 ms ticks) is recorded next to
it.  The floors and the readers measure their own CPU with
CLOCK_PROCESS_CPUTIME_ID.  Event rates are N / (last event read by the last
reader - first byte of the burst written by the generator), all on one
CLOCK_MONOTONIC.
"""

import argparse
import datetime
import json
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import goodbye  # noqa: E402  (bench/goodbye.py)

TOKEN = "xoxb-bench-not-a-token"
APP_TOKEN = "xapp-bench-not-a-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


# ---- processes ------------------------------------------------------------

PROCS = []


class Proc:
    """A child whose stdout lines are collected by a thread."""

    def __init__(self, name, argv, cpu, logdir, stdin=False, env=None):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "ab")
        pre = []
        if cpu is not None:
            pre = (["taskset", "-c", str(cpu)] if shutil.which("taskset")
                   else [])
        preexec = None
        if cpu is not None and not pre:
            def preexec():
                os.sched_setaffinity(0, {cpu})
        self.p = subprocess.Popen(
            pre + argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1,
            preexec_fn=preexec, env=env)
        self.pid = self.p.pid
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()
        PROCS.append(self)

    def _pump(self):
        for line in self.p.stdout:
            self.q.put(line)
        self.q.put(None)

    def line(self, timeout, none_on_timeout=False):
        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            if none_on_timeout:
                return None
            raise BenchError("%s: nothing within %.0f s (log %s)"
                             % (self.name, timeout, self.log_tail()))
        if line is None:
            self.p.wait()
            raise BenchError("%s exited with %s: %s" % (
                self.name, self.p.returncode, self.log_tail()))
        return line

    def json(self, timeout, key=None, none_on_timeout=False):
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.01, deadline - time.monotonic()),
                             none_on_timeout)
            if line is None:
                return None
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if key is None or key in obj:
                return obj

    def send(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except (OSError, BrokenPipeError):
            pass

    def wait(self, timeout=10):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def log_tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-600:].strip() or "(empty)"
        except OSError:
            return "(no log)"


def cleanup():
    for p in PROCS:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()
        p.log.close()
    PROCS.clear()


# ---- /proc ----------------------------------------------------------------

def cpu_ns(pid):
    """On-CPU time of all threads, from schedstat (ns)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_stat_us(pid):
    """utime+stime of the whole process from /proc/PID/stat (µs)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1e6 / CLK_TCK


class CpuMark:
    def __init__(self, pid):
        self.pid = pid
        self.ns = cpu_ns(pid)
        self.stat = cpu_stat_us(pid)

    def since(self):
        """(µs from schedstat, µs from /proc/PID/stat)"""
        return ((cpu_ns(self.pid) - self.ns) / 1e3,
                cpu_stat_us(self.pid) - self.stat)


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def ctx_switches(pid):
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches",
                                        "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def clear_hwm(pid):
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---- statistics -----------------------------------------------------------

def summary(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"min": rnd(min(vals)), "median": rnd(statistics.median(vals)),
            "max": rnd(max(vals)), "runs": [rnd(v) for v in vals]}


def rnd(v):
    if isinstance(v, float):
        if abs(v) >= 100:
            return round(v, 1)
        if abs(v) >= 1:
            return round(v, 3)
        return round(v, 5)
    return v


def med(s):
    return s["median"] if s else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def hist_merge(hists):
    acc = {}
    for h in hists:
        for us, n in h:
            acc[us] = acc.get(us, 0) + n
    return sorted(acc.items())


def hist_pct(h, q):
    total = sum(n for _, n in h)
    if total == 0:
        return None
    want = min(int(q * total), total - 1)
    acc = 0
    for us, n in h:
        acc += n
        if acc > want:
            return us + 0.5
    return h[-1][0] + 0.5


# ---- the bench ------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.b = args.builddir
        self.tmp = tempfile.mkdtemp(prefix="slackd-bench-")
        self.errors = []
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            self.load_cpu, self.daemon_cpu = cpus[0], cpus[1]
            os.sched_setaffinity(0, {self.load_cpu})
        else:
            self.load_cpu = self.daemon_cpu = None
        self.gen = None
        self.port = None
        self.daemon = None
        self.runs = {}    # case -> list of per-run dicts
        q = args.quick
        self.n1 = 20000 if q else 200000
        # Fan-out: N1 events to 10 and 100 clients; to 1000 clients a tenth
        # of that (20 M deliveries, like 100 clients), which keeps the whole
        # run within about 5 minutes.
        self.fan = [10, 100, 1000]
        self.fan_events = {10: self.n1, 100: self.n1, 1000: self.n1 // 10}
        self.lat_rate = 2000
        self.lat_secs = 2 if q else 10
        self.idle_secs = 3 if q else 10
        self.out_seq = 200 if q else 1000
        self.out_pipe = 2000 if q else 20000
        self.sink_n = {200: 200000 if q else 2000000,
                       1024: 50000 if q else 500000}
        self.reps = 1 if q else args.reps
        with open("/proc/meminfo") as f:
            mi = {l.split(":")[0]: int(l.split()[1]) for l in f}
        self.rss_limit_kib = mi.get("MemAvailable", mi["MemTotal"]) // 2

    def prog(self, name):
        return os.path.join(self.b, "bench", name)

    def finish(self, p):
        """Wait for a helper; anything but exit 0 (a sanitizer report, a
        timeout) is an error of the run."""
        rc = p.wait(30)
        if rc != 0:
            self.errors.append("%s exited with %s: %s"
                               % (p.name, rc, p.log_tail()[-300:]))

    def fan_n(self, k):
        return self.fan_events[k]

    def record(self, case, **kw):
        self.runs.setdefault(case, []).append(kw)

    # -- generator --
    def start_gen(self):
        self.gen = Proc("gen", [self.prog("gen")], self.load_cpu, self.tmp,
                        stdin=True)
        info = self.gen.json(10, "port")
        self.port = info["port"]

    def gen_cmd(self, cmd, timeout=300):
        self.gen.send(cmd)
        r = self.gen.json(timeout, "cmd")
        if "error" in r:
            raise BenchError("gen: %s: %s" % (cmd, r["error"]))
        return r

    def gen_stat(self):
        return self.gen_cmd("stat", 10)

    def ws_url(self, tag):
        return "ws://127.0.0.1:%d/%s" % (self.port, tag)

    # -- readers --
    def readers(self, sock, k, n, lat=False, timeout=180, name="reader",
                idle=False):
        nproc = 1 if k <= 10 else 2 if k <= 200 else 4
        per = [k // nproc + (1 if i < k % nproc else 0) for i in range(nproc)]
        procs = []
        for i, c in enumerate(per):
            argv = [self.prog("reader"), "-s", sock, "-c", str(c), "-n",
                    str(n), "-t", str(timeout)]
            if lat:
                argv.append("-l")
            if idle:
                argv.append("-i")
            procs.append(Proc("%s%d" % (name, i), argv, self.load_cpu,
                              self.tmp, stdin=idle))
        for p in procs:
            p.json(60, "ready")
        return procs

    def reader_results(self, procs, timeout, watch=None):
        """Every reader's statistics; meanwhile, if watch is a pid, stop
        everything should its RSS pass self.rss_limit_kib."""
        outs = []
        deadline = time.monotonic() + timeout
        for p in procs:
            while True:
                o = p.json(0.25, "mode", none_on_timeout=True)
                if o is not None:
                    outs.append(o)
                    break
                if time.monotonic() > deadline:
                    raise BenchError("%s: no result within %.0f s"
                                     % (p.name, timeout))
                rss = status_kb(watch, "VmRSS") if watch else None
                if rss is not None and rss > self.rss_limit_kib:
                    for q in procs:
                        q.kill()
                    raise BenchError(
                        "slackd's RSS reached %d KiB (limit %d KiB, half "
                        "the memory available at start): stopped"
                        % (rss, self.rss_limit_kib))
        for p in procs:
            self.finish(p)
        r = {
            "events": sum(o["events"] for o in outs),
            "lost": sum(o["lost"] for o in outs),
            "reordered": sum(o["reordered"] for o in outs),
            "timeout": any(o["timeout"] for o in outs),
            "t_last": max(o["t_last"] for o in outs),
            "t_first": min(o["t_first"] for o in outs if o["t_first"]),
            "cpu_us": sum(o["cpu_us"] for o in outs),
        }
        if all("lat" in o for o in outs):
            h = hist_merge(o["lat"]["hist"] for o in outs)
            r["lat"] = {"n": sum(o["lat"]["n"] for o in outs),
                        "p50_us": hist_pct(h, 0.50),
                        "p99_us": hist_pct(h, 0.99),
                        "max_us": max(o["lat"]["max_us"] for o in outs)}
        return r

    # -- the daemon --
    def conf(self):
        extra = {}
        if getattr(self, "mode", "rtm") == "socket":
            extra = {"app_token_file": os.path.join(self.tmp, "app-token"),
                     "upstream": "socket", "connections": "1"}
        return dict(extra, **{
            "api_url": "http://127.0.0.1:%d/api/" % self.port,
            "token_file": os.path.join(self.tmp, "token"),
            "socket": os.path.join(self.tmp, "slackd.sock"),
            "log_level": "warning",
            "rtm_connect_interval": "0",
            "reconnect_min": "0.1",
            "reconnect_max": "1",
            "client_buffer_limit": "256M",
            "client_buffer_soft": "256M",
            "queue_max": "100000",
            "send_rate": "1000",
            "send_burst": "1000",
            # ping_interval: the default (10 s), as the idle case wants
        })

    def tag(self):
        return "sm" if getattr(self, "mode", "rtm") == "socket" else "rtm"

    def write_conf(self):
        self.conf_path = os.path.join(self.tmp, "slackd.conf")
        with open(self.conf_path, "w") as f:
            f.write("# written by bench/run.py\n")
            for k, v in self.conf().items():
                f.write("%s = %s\n" % (k, v))
        for name, value in (("token", TOKEN), ("app-token", APP_TOKEN)):
            tok = os.path.join(self.tmp, name)
            if not os.path.exists(tok):
                fd = os.open(tok, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o600)
                os.write(fd, (value + "\n").encode())
                os.close(fd)
        chk = subprocess.run([os.path.join(self.b, "slackd"), "-n", "-f",
                              self.conf_path], capture_output=True, text=True)
        if chk.returncode != 0:
            raise BenchError("slackd -n: %s%s" % (chk.stdout, chk.stderr))
        self.conf_check = chk.stdout.strip().replace(TOKEN, "***").replace(
            APP_TOKEN, "***")

    def daemon_status(self):
        return goodbye.status(self.conf()["socket"])

    # slackd runs after this (a profiler, say), given this long to connect
    daemon_wrapper = []
    connect_timeout = 20

    def start_daemon(self):
        self.daemon = Proc("slackd", self.daemon_wrapper +
                           [os.path.join(self.b, "slackd"), "-d", "-f",
                            self.conf_path], self.daemon_cpu, self.tmp)
        deadline = time.monotonic() + self.connect_timeout
        while True:
            if self.daemon.p.poll() is not None:
                raise BenchError("slackd exited with %d: %s" % (
                    self.daemon.p.returncode, self.daemon.log_tail()))
            try:
                if self.daemon_status().get("state") == "connected":
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise BenchError("slackd did not connect: %s"
                                 % self.daemon.log_tail())
            time.sleep(0.05)
        self.ws_before = self.gen_stat()["ws_opened"]
        return self.daemon.pid

    def stop_daemon(self):
        st = self.gen_stat()
        sessions = st["ws_opened"] - self.ws_before
        self.daemon.p.send_signal(signal.SIGTERM)
        rc = self.daemon.wait(20)
        if rc != 0:
            self.errors.append("slackd exited with %s" % rc)
        log = open(self.daemon.log_path, errors="replace").read()
        self.record("daemon_run", extra_sessions=sessions, exit=rc,
                    warnings=sum(1 for l in log.splitlines()
                                 if "dropped" in l or "reconnect" in l))
        if TOKEN in log or APP_TOKEN in log:
            self.errors.append("a token appeared in slackd's log")
        self.daemon = None

    # -- cases: generator ceiling --
    def case_ceiling(self):
        for size, n in sorted(self.sink_n.items()):
            sink = Proc("sink", [self.prog("gen"), "--sink",
                                 self.ws_url("sink"), str(n)],
                        self.daemon_cpu, self.tmp)
            sink.json(10, "ready")
            g0 = CpuMark(self.gen.pid)
            r = self.gen_cmd("burst sink %d %d" % (n, size))
            out = sink.json(60, "frames")
            gen_us = g0.since()[0]
            self.finish(sink)
            dt = (out["t_last"] - r["t0"]) / 1e9
            self.record("ceiling_%dB" % size, n=n, events_per_s=n / dt,
                        gen_cpu_us_per_event=gen_us / n,
                        gen_write_s=(r["t1"] - r["t0"]) / 1e9,
                        sink_cpu_us_per_event=out["cpu_us"] / n)

    # -- cases: floors --
    def case_floor_lws(self, size):
        n = self.n1
        f = Proc("floor_lws", [self.prog("floor_lws"), self.ws_url("floor"),
                               str(n)], self.daemon_cpu, self.tmp)
        ready = f.json(10, "ready")
        r = self.gen_cmd("burst floor %d %d" % (n, size))
        out = f.json(120, "events")
        self.finish(f)
        if not out["ok"]:
            raise BenchError("floor_lws did not get its events")
        dt = (out["t_last"] - r["t0"]) / 1e9
        self.record("floor_lws_%dB" % size, events=n, events_per_s=n / dt,
                    cpu_us_per_event=out["cpu_us"] / n,
                    rss_kib=ready["rss_kb"], vmhwm_kib=out["vmhwm_kb"])

    def case_floor_bridge(self, k, n, size, rate=None):
        sock = os.path.join(self.tmp, "bridge.sock")
        b = Proc("floor_bridge", [self.prog("floor_bridge"),
                                  self.ws_url("bridge"), sock, str(k),
                                  str(n)], self.daemon_cpu, self.tmp)
        b.json(10, "listening")
        rs = self.readers(sock, k, n, lat=rate is not None,
                          name="breader")
        b.json(30, "ready")
        if rate is None:
            r = self.gen_cmd("burst bridge %d %d" % (n, size))
        else:
            r = self.gen_cmd("rate bridge %d %g %d"
                             % (rate, n / rate, size), n / rate + 60)
        res = self.reader_results(rs, 180)
        out = b.json(30, "events")
        self.finish(b)
        dt = (res["t_last"] - r["t0"]) / 1e9
        if rate is None:
            self.record("floor_bridge_%d_%dB" % (k, size), events=n,
                        clients=k, events_per_s=n / dt,
                        deliveries_per_s=n * k / dt,
                        cpu_us_per_event=out["cpu_us"] / n,
                        cpu_us_per_delivery=out["cpu_us"] / n / k,
                        lost=res["lost"], reordered=res["reordered"])
        else:
            self.record("floor_bridge_latency_%d" % k, events=n, clients=k,
                        p50_us=res["lat"]["p50_us"],
                        p99_us=res["lat"]["p99_us"],
                        max_us=res["lat"]["max_us"],
                        cpu_us_per_event=out["cpu_us"] / n,
                        lost=res["lost"], reordered=res["reordered"])

    # -- cases: the daemon --
    def case_idle(self, pid):
        time.sleep(1)
        rss = status_kb(pid, "VmRSS")
        st0 = {c["tag"]: c["pings"] for c in self.gen_stat()["conns"]}
        c0, cs0, t0 = CpuMark(pid), ctx_switches(pid), time.monotonic()
        time.sleep(self.idle_secs)
        cpu_us, cpu_stat = c0.since()
        cs1, t1 = ctx_switches(pid), time.monotonic()
        st1 = {c["tag"]: c["pings"] for c in self.gen_stat()["conns"]}
        dt = t1 - t0
        self.record("idle", rss_kib=rss, seconds=dt,
                    wakeups_per_s=(cs1 - cs0) / dt,
                    cpu_us_per_s=cpu_us / dt, cpu_stat_us_per_s=cpu_stat / dt,
                    app_pings=st1.get("rtm", 0) - st0.get("rtm", 0))
        return rss

    def case_idle_clients(self, pid, rss_idle, k=1000):
        rs = self.readers(self.conf()["socket"], k, 0, name="idle",
                          idle=True)
        # readers print ready after every hello; let the daemon settle
        time.sleep(1)
        rss = status_kb(pid, "VmRSS")
        for p in rs:
            p.close_stdin()
        for p in rs:
            p.json(30, "mode")
            self.finish(p)
        self.record("idle_clients", clients=k, rss_kib=rss,
                    per_client_kib=(rss - rss_idle) / k)

    def case_burst(self, pid, case, k, n, size):
        sock = self.conf()["socket"]
        rs = self.readers(sock, k, n)
        hwm_ok = clear_hwm(pid)
        c0 = CpuMark(pid)
        r = self.gen_cmd("burst %s %d %d" % (self.tag(), n, size))
        res = self.reader_results(rs, 300, watch=pid)
        cpu_us, cpu_stat = c0.since()
        hwm = status_kb(pid, "VmHWM")
        dt = (res["t_last"] - r["t0"]) / 1e9
        d = n * k
        self.record(case, events=n, clients=k, size=size,
                    events_per_s=n / dt, deliveries_per_s=d / dt,
                    cpu_us_per_event=cpu_us / n,
                    cpu_us_per_delivery=cpu_us / d,
                    cpu_stat_us_per_delivery=cpu_stat / d,
                    vmhwm_kib=hwm if hwm_ok else None,
                    rss_after_kib=status_kb(pid, "VmRSS"),
                    lost=res["lost"], reordered=res["reordered"],
                    timeout=res["timeout"],
                    reader_cpu_us_per_line=res["cpu_us"] / max(1, res["events"]),
                    gen_write_s=(r["t1"] - r["t0"]) / 1e9,
                    elapsed_s=dt)
        if res["lost"] or res["reordered"] or res["timeout"]:
            self.errors.append("%s: lost %d, reordered %d, timeout %s" % (
                case, res["lost"], res["reordered"], res["timeout"]))

    def case_latency(self, pid, k, prefix=""):
        n = int(self.lat_rate * self.lat_secs)
        rs = self.readers(self.conf()["socket"], k, n, lat=True,
                          timeout=self.lat_secs + 120, name="lreader")
        c0 = CpuMark(pid)
        r = self.gen_cmd("rate %s %d %g 200" % (self.tag(), self.lat_rate,
                                                 self.lat_secs),
                         self.lat_secs + 60)
        res = self.reader_results(rs, 120)
        cpu_us, _ = c0.since()
        self.record("%slatency_%d" % (prefix, k), events=n, clients=k,
                    p50_us=res["lat"]["p50_us"], p99_us=res["lat"]["p99_us"],
                    max_us=res["lat"]["max_us"], cpu_us_per_event=cpu_us / n,
                    gen_late_max_us=r["late_max_us"],
                    lost=res["lost"], reordered=res["reordered"])
        if res["lost"] or res["reordered"]:
            self.errors.append("%slatency_%d: lost %d, reordered %d" % (
                prefix, k, res["lost"], res["reordered"]))

    def case_outbound(self, pid, pipelined):
        n = self.out_pipe if pipelined else self.out_seq
        msgs0 = sum(c["msgs"] for c in self.gen_stat()["conns"])
        p = Proc("sender", [self.prog("reader"), "-s", self.conf()["socket"],
                            "-P" if pipelined else "-S", str(n), "-t", "120"],
                 self.load_cpu, self.tmp)
        p.json(10, "ready")
        c0 = CpuMark(pid)
        out = p.json(180, "mode")
        cpu_us, _ = c0.since()
        self.finish(p)
        msgs = sum(c["msgs"] for c in self.gen_stat()["conns"]) - msgs0
        rtt = out.get("rtt_us", {})
        self.record("outbound_pipelined" if pipelined else
                    "outbound_sequential", n=n, ok=out["ok"],
                    errors=out["errors"], per_s=out["per_s"],
                    p50_us=rtt.get("p50"), p99_us=rtt.get("p99"),
                    max_us=rtt.get("max"), cpu_us_per_request=cpu_us / n,
                    slack_saw=msgs)
        if out["ok"] != n:
            self.errors.append("outbound %s: %d ok of %d; %s" % (
                "pipelined" if pipelined else "sequential", out["ok"], n,
                out.get("first_error", "")))

    # -- one repetition --
    def rep(self, i):
        say("repetition %d/%d: generator ceiling" % (i + 1, self.reps))
        self.case_ceiling()
        say("  floors")
        for size in (200, 1024):
            self.case_floor_lws(size)
        self.case_floor_bridge(1, self.n1, 200)
        self.case_floor_bridge(1, self.n1, 1024)
        for k in self.fan:
            self.case_floor_bridge(k, self.fan_n(k), 200)
        n_lat = int(self.lat_rate * self.lat_secs)
        for k in (1, 100):
            self.case_floor_bridge(k, n_lat, 200, rate=self.lat_rate)
        say("  slackd: idle")
        pid = self.start_daemon()
        rss_idle = self.case_idle(pid)
        self.case_idle_clients(pid, rss_idle)
        say("  slackd: 1 client")
        for size in (200, 1024):
            self.case_burst(pid, "deliver_1_%dB" % size, 1, self.n1, size)
        for k in self.fan:
            say("  slackd: fan-out to %d" % k)
            self.case_burst(pid, "fanout_%d" % k, k, self.fan_n(k), 200)
        for k in (1, 100):
            say("  slackd: latency, %d client(s)" % k)
            self.case_latency(pid, k)
        say("  slackd: outbound")
        self.case_outbound(pid, False)
        self.case_outbound(pid, True)
        self.stop_daemon()
        say("  slackd, Socket Mode: 1 client, latency")
        self.mode = "socket"
        try:
            self.write_conf()
            pid = self.start_daemon()
            self.case_burst(pid, "socket_deliver_1_200B", 1, self.n1, 200)
            self.case_latency(pid, 1, "socket_")
            acks = sum(c.get("acks", 0) for c in self.gen_stat()["conns"])
            self.record("socket_acks", acks=acks)
            self.stop_daemon()
        finally:
            self.mode = "rtm"
            self.write_conf()
        say("  slackd: goodbye at %s events/s, make-before-break and "
            "break-before-make" % " and ".join(str(r) for r in
                                               goodbye.RATES))
        self.case_goodbye()

    def case_goodbye(self):
        for rate in goodbye.RATES:
            for mode in goodbye.MODES:
                r = goodbye.run_one(self, sys.modules[__name__], rate, mode)
                self.record("goodbye_%d_%s" % (rate, mode), **r)
                if mode == "make_before_break" and (
                        r["missed"] or r["duplicated"] or r["reordered"]):
                    self.errors.append(
                        "goodbye at %d/s: missed %d, duplicated %d, "
                        "reordered %d" % (rate, r["missed"], r["duplicated"],
                                          r["reordered"]))

    # -- the report --
    def s(self, case, key):
        return summary([r.get(key) for r in self.runs.get(case, [])])

    def report(self, started):
        R = {}
        pin = {
            "daemon_and_floors_cpu": self.daemon_cpu,
            "generator_readers_driver_cpu": self.load_cpu,
            "method": "taskset -c" if shutil.which("taskset")
            else "sched_setaffinity",
            "note": "both slackd threads share the daemon CPU, like the "
                    "single-threaded floors" if self.daemon_cpu is not None
            else "one CPU only: nothing pinned",
        }
        with open("/proc/meminfo") as f:
            memtotal = int(f.readline().split()[1])
        model = ""
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        R["benchmark"] = "slackd"
        R["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        R["host"] = {"cpus": os.cpu_count(), "cpu_model": model,
                     "kernel": platform.release(), "mem_total_kib": memtotal,
                     "python": platform.python_version()}
        R["quick"] = self.args.quick
        R["repetitions"] = self.reps
        R["pinning"] = pin
        R["measurement"] = {
            "daemon_cpu": "sum of /proc/PID/task/*/schedstat on-CPU time "
                          "(ns) over the case; /proc/PID/stat utime+stime "
                          "(10 ms ticks) recorded as cpu_stat_*",
            "floor_cpu": "CLOCK_PROCESS_CPUTIME_ID in the floor, from the "
                         "generator's hello to the last event",
            "rate": "events / (last event read by the last reader - the "
                    "generator's first write of the burst), CLOCK_MONOTONIC",
            "latency": "reader CLOCK_MONOTONIC after the read() - the "
                       "event's \"t\" (generator CLOCK_MONOTONIC when it "
                       "queued it for write()), 1 us histogram, every "
                       "(event x client)",
            "stats": "min/median/max over the repetitions; runs lists "
                     "each repetition",
        }
        R["daemon_binary"] = binary_id(os.path.join(self.b, "slackd"))
        R["daemon_config"] = dict(self.conf(), ping_interval="10s (default)")
        R["daemon_config"]["check"] = getattr(self, "conf_check", None)

        R["generator"] = {}
        for size in (200, 1024):
            c = "ceiling_%dB" % size
            if c not in self.runs:
                continue
            R["generator"]["ceiling_%dB" % size] = {
                "events": self.runs[c][0]["n"],
                "events_per_s": self.s(c, "events_per_s"),
                "gen_cpu_us_per_event": self.s(c, "gen_cpu_us_per_event"),
                "cpu_bound_events_per_s": summary(
                    [1e6 / r["gen_cpu_us_per_event"] for r in self.runs[c]]),
                "consumer": "gen --sink: a raw-socket null reader counting "
                            "frames, pinned to the daemon CPU",
            }
        R["generator"]["target_events_per_s"] = 800000

        F = {}
        for size in (200, 1024):
            c = "floor_lws_%dB" % size
            if c in self.runs:
                F[c] = {"events": self.runs[c][0]["events"], "size": size,
                        "events_per_s": self.s(c, "events_per_s"),
                        "cpu_us_per_event": self.s(c, "cpu_us_per_event"),
                        "rss_kib": self.s(c, "rss_kib"),
                        "vmhwm_kib": self.s(c, "vmhwm_kib")}
        for k, size in [(1, 200), (1, 1024)] + [(k, 200) for k in self.fan]:
            c = "floor_bridge_%d_%dB" % (k, size)
            if c in self.runs:
                F[c] = {"events": self.runs[c][0]["events"], "clients": k,
                        "size": size,
                        "events_per_s": self.s(c, "events_per_s"),
                        "deliveries_per_s": self.s(c, "deliveries_per_s"),
                        "cpu_us_per_event": self.s(c, "cpu_us_per_event"),
                        "cpu_us_per_delivery": self.s(c,
                                                      "cpu_us_per_delivery"),
                        "lost": sum(r["lost"] for r in self.runs[c]),
                        "reordered": sum(r["reordered"]
                                         for r in self.runs[c])}
        for k in (1, 100):
            c = "floor_bridge_latency_%d" % k
            if c in self.runs:
                F[c] = {"events": self.runs[c][0]["events"], "clients": k,
                        "rate": self.lat_rate, "seconds": self.lat_secs,
                        "p50_us": self.s(c, "p50_us"),
                        "p99_us": self.s(c, "p99_us"),
                        "max_us": self.s(c, "max_us"),
                        "cpu_us_per_event": self.s(c, "cpu_us_per_event")}
        R["floors"] = F

        def fl(name, key):
            return med(F.get(name, {}).get(key))

        C = {}
        for size in (200, 1024):
            c = "deliver_%dB" % size
            c = "deliver_1_%dB" % size
            if c not in self.runs:
                continue
            cpu = self.s(c, "cpu_us_per_event")
            rate = self.s(c, "events_per_s")
            C[c] = {"events": self.n1, "size": size, "clients": 1,
                    "events_per_s": rate, "cpu_us_per_event": cpu,
                    "cpu_stat_us_per_event": self.s(
                        c, "cpu_stat_us_per_delivery"),
                    "vmhwm_kib": self.s(c, "vmhwm_kib"),
                    "lost": sum(r["lost"] for r in self.runs[c]),
                    "reordered": sum(r["reordered"] for r in self.runs[c]),
                    "vs_floor": {
                        "cpu_per_event_vs_floor_lws": ratio(
                            med(cpu), fl("floor_lws_%dB" % size,
                                         "cpu_us_per_event")),
                        "cpu_per_event_vs_bridge_1": ratio(
                            med(cpu), fl("floor_bridge_1_%dB" % size,
                                         "cpu_us_per_event")),
                        "events_per_s_vs_bridge_1": ratio(
                            med(rate), fl("floor_bridge_1_%dB" % size,
                                          "events_per_s"))}}
        for k in self.fan:
            c = "fanout_%d" % k
            if c not in self.runs:
                continue
            cpu = self.s(c, "cpu_us_per_delivery")
            rate = self.s(c, "events_per_s")
            n = self.fan_n(k)
            C[c] = {"events": n, "size": 200, "clients": k,
                    "deliveries": n * k,
                    "deliveries_per_s": self.s(c, "deliveries_per_s"),
                    "events_per_s": rate,
                    "cpu_us_per_delivery": cpu,
                    "cpu_us_per_event": self.s(c, "cpu_us_per_event"),
                    "cpu_stat_us_per_delivery": self.s(
                        c, "cpu_stat_us_per_delivery"),
                    "vmhwm_kib": self.s(c, "vmhwm_kib"),
                    "reader_cpu_us_per_line": self.s(
                        c, "reader_cpu_us_per_line"),
                    "lost": sum(r["lost"] for r in self.runs[c]),
                    "reordered": sum(r["reordered"] for r in self.runs[c]),
                    "vs_floor": {
                        "cpu_per_delivery_vs_bridge": ratio(
                            med(cpu), fl("floor_bridge_%d_200B" % k,
                                         "cpu_us_per_delivery")),
                        "events_per_s_vs_bridge": ratio(
                            med(rate), fl("floor_bridge_%d_200B" % k,
                                          "events_per_s"))}}
            C[c]["gen_write_s"] = self.s(c, "gen_write_s")
            C[c]["elapsed_s"] = self.s(c, "elapsed_s")
            if n != self.n1:
                C[c]["note"] = (
                    "%d events, not %d: %d x %d = %d deliveries per run "
                    "(as for 100 clients); %d events to %d clients would "
                    "take about %.0f s per run for slackd and its floor at "
                    "the rates measured, too long for the time budget"
                    % (n, self.n1, n, k, n * k, self.n1, k,
                       self.n1 * k / max(1.0, med(self.s(c,
                                                    "deliveries_per_s")))))
        for k in (1, 100):
            c = "latency_%d" % k
            if c not in self.runs:
                continue
            fb = "floor_bridge_latency_%d" % k
            C[c] = {"rate": self.lat_rate, "seconds": self.lat_secs,
                    "clients": k, "size": 200,
                    "events": self.runs[c][0]["events"],
                    "p50_us": self.s(c, "p50_us"),
                    "p99_us": self.s(c, "p99_us"),
                    "max_us": self.s(c, "max_us"),
                    "cpu_us_per_event": self.s(c, "cpu_us_per_event"),
                    "gen_late_max_us": self.s(c, "gen_late_max_us"),
                    "lost": sum(r["lost"] for r in self.runs[c]),
                    "reordered": sum(r["reordered"] for r in self.runs[c]),
                    "vs_floor": {
                        "p50_vs_bridge": ratio(med(self.s(c, "p50_us")),
                                               fl(fb, "p50_us")),
                        "p99_vs_bridge": ratio(med(self.s(c, "p99_us")),
                                               fl(fb, "p99_us")),
                        "cpu_per_event_vs_bridge": ratio(
                            med(self.s(c, "cpu_us_per_event")),
                            fl(fb, "cpu_us_per_event"))}}
        for c, rtm in (("socket_deliver_1_200B", "deliver_1_200B"),
                       ("socket_latency_1", "latency_1")):
            if c not in self.runs:
                continue
            C[c] = {"upstream": "Socket Mode (events_api envelopes, each "
                                "acked; connections = 1)",
                    "clients": 1, "size": 200,
                    "events": self.runs[c][0]["events"],
                    "cpu_us_per_event": self.s(c, "cpu_us_per_event"),
                    "lost": sum(r["lost"] for r in self.runs[c]),
                    "reordered": sum(r["reordered"] for r in self.runs[c]),
                    "cpu_per_event_vs_rtm": ratio(
                        med(self.s(c, "cpu_us_per_event")),
                        med(self.s(rtm, "cpu_us_per_event")))}
            if c.startswith("socket_latency"):
                C[c].update(rate=self.lat_rate, seconds=self.lat_secs,
                            p50_us=self.s(c, "p50_us"),
                            p99_us=self.s(c, "p99_us"),
                            max_us=self.s(c, "max_us"),
                            p50_vs_rtm=ratio(med(self.s(c, "p50_us")),
                                             med(self.s(rtm, "p50_us"))))
            else:
                C[c]["events_per_s"] = self.s(c, "events_per_s")
        if "idle" in self.runs:
            rss = self.s("idle", "rss_kib")
            C["memory"] = {
                "idle_rss_kib": rss,
                "rss_1000_idle_clients_kib": self.s("idle_clients",
                                                    "rss_kib"),
                "per_client_kib": self.s("idle_clients", "per_client_kib"),
                "peak_vmhwm_200k_burst_kib": C.get(
                    "deliver_1_200B", {}).get("vmhwm_kib"),
                "peak_vmhwm_200k_burst_1024B_kib": C.get(
                    "deliver_1_1024B", {}).get("vmhwm_kib"),
                "burst_events": self.n1,
                "vs_floor": {"idle_rss_vs_floor_lws": ratio(
                    med(rss), fl("floor_lws_200B", "rss_kib"))},
                "note": "VmHWM reset (clear_refs 5) before each burst; "
                        "idle RSS 1 s after connecting, no clients",
            }
            C["idle"] = {
                "seconds": self.idle_secs, "ping_interval_s": 10,
                "wakeups_per_s": self.s("idle", "wakeups_per_s"),
                "cpu_us_per_s": self.s("idle", "cpu_us_per_s"),
                "cpu_stat_us_per_s": self.s("idle", "cpu_stat_us_per_s"),
                "app_pings_in_window": self.s("idle", "app_pings"),
                "note": "wake-ups: voluntary+involuntary context switches "
                        "summed over /proc/PID/task/*/status, no clients",
            }
        for c, n in (("outbound_sequential", self.out_seq),
                     ("outbound_pipelined", self.out_pipe)):
            if c not in self.runs:
                continue
            C[c] = {"requests": n, "channels": "C0..C%d (distinct)" % (n - 1),
                    "requests_per_s": self.s(c, "per_s"),
                    "p50_us": self.s(c, "p50_us"),
                    "p99_us": self.s(c, "p99_us"),
                    "max_us": self.s(c, "max_us"),
                    "cpu_us_per_request": self.s(c, "cpu_us_per_request"),
                    "errors": sum(r["errors"] for r in self.runs[c]),
                    "ok": sum(r["ok"] for r in self.runs[c])}
            C[c]["what"] = (
                "request written -> reply read, one at a time"
                if c == "outbound_sequential" else
                "all requests written without waiting; requests_per_s = "
                "replies / (first write -> last reply); p50/p99 = each "
                "request's time from its write to its reply (queueing "
                "included)")
        for rate in goodbye.RATES:
            g = {}
            for mode in goodbye.MODES:
                c = "goodbye_%d_%s" % (rate, mode)
                if c not in self.runs:
                    continue
                g[mode] = {k: self.s(c, k) for k in (
                    "missed", "duplicated", "reordered", "delivered",
                    "state_changes", "sessions", "sent_per_s")}
            if g:
                g.update(rate=rate, seconds=goodbye.SECONDS,
                         events=int(rate * goodbye.SECONDS),
                         goodbye_at_s=goodbye.GOODBYE_AT,
                         old_closed_by_fake_after_s=goodbye.CLOSE_AFTER,
                         what="one RTM goodbye; tests/fakeslack.py sends "
                              "every event to every open session; one "
                              "reader counts the events by number; "
                              "backfill off; break_before_make is the "
                              "test hook SLACKD_TEST_BREAK_BEFORE_MAKE")
                C["goodbye_%d" % rate] = g
        R["cases"] = C
        dr = self.runs.get("daemon_run", [])
        R["daemon_runs"] = {
            "count": len(dr),
            "extra_sessions": sum(r["extra_sessions"] for r in dr),
            "log_lines_dropped_or_reconnect": sum(r["warnings"] for r in dr),
            "exit_codes": [r["exit"] for r in dr]}
        R["ratios"] = ratios_flat(C)
        R["errors"] = self.errors
        R["runtime_s"] = round(time.monotonic() - started, 1)
        return R


def binary_id(path):
    """Which slackd was measured (its sources change under us)."""
    import hashlib
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        mtime = datetime.datetime.fromtimestamp(
            os.stat(path).st_mtime, datetime.timezone.utc)
        return {"path": path, "sha256": digest,
                "built": mtime.isoformat(timespec="seconds")}
    except OSError as e:
        return {"path": path, "error": str(e)}


def ratios_flat(C):
    out = {}
    for case, v in C.items():
        for k, r in v.get("vs_floor", {}).items():
            out["%s.%s" % (case, k)] = r
    return out


def say(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def fmt(s, unit="", digits=None):
    if s is None:
        return "-"
    if isinstance(s, dict):
        m, lo, hi = s["median"], s["min"], s["max"]
    else:
        m = lo = hi = s

    def f(x):
        if x is None:
            return "-"
        if abs(x) >= 10000:
            return "%.0f" % x
        if abs(x) >= 100:
            return "%.1f" % x
        return "%.3g" % x
    if lo == hi:
        return f(m) + unit
    return "%s%s [%s..%s]" % (f(m), unit, f(lo), f(hi))


def table(R):
    C, F, G = R["cases"], R["floors"], R["generator"]
    rows = []

    def row(name, value, floor="", r=None):
        rows.append((name, value, floor,
                     "" if r is None else "x%.2f" % r))
    for size in (200, 1024):
        c = C.get("deliver_1_%dB" % size)
        if not c:
            continue
        fv = c["vs_floor"]
        row("1 client %dB: events/s" % size, fmt(c["events_per_s"]),
            "bridge " + fmt(F["floor_bridge_1_%dB" % size]["events_per_s"]),
            fv["events_per_s_vs_bridge_1"])
        row("1 client %dB: CPU us/event" % size, fmt(c["cpu_us_per_event"]),
            "bare lws " + fmt(F["floor_lws_%dB" % size]["cpu_us_per_event"]),
            fv["cpu_per_event_vs_floor_lws"])
        row("1 client %dB: VmHWM KiB" % size, fmt(c["vmhwm_kib"]))
        row("1 client %dB: lost/reordered" % size,
            "%d/%d" % (c["lost"], c["reordered"]))
    for k in (10, 100, 1000):
        c = C.get("fanout_%d" % k)
        if not c:
            continue
        fb = F.get("floor_bridge_%d_200B" % k, {})
        row("fan-out %d (%d ev): deliveries/s" % (k, c["events"]),
            fmt(c["deliveries_per_s"]),
            "bridge " + fmt(fb.get("deliveries_per_s")),
            c["vs_floor"]["events_per_s_vs_bridge"])
        row("fan-out %d: CPU us/delivery" % k, fmt(c["cpu_us_per_delivery"]),
            "bridge " + fmt(fb.get("cpu_us_per_delivery")),
            c["vs_floor"]["cpu_per_delivery_vs_bridge"])
        row("fan-out %d: VmHWM KiB, lost" % k,
            fmt(c["vmhwm_kib"]) + ", %d" % c["lost"])
    for k in (1, 100):
        c = C.get("latency_%d" % k)
        if not c:
            continue
        fb = F.get("floor_bridge_latency_%d" % k, {})
        row("latency %d/s to %d: p50 us" % (c["rate"], k), fmt(c["p50_us"]),
            "bridge " + fmt(fb.get("p50_us")), c["vs_floor"]["p50_vs_bridge"])
        row("latency %d/s to %d: p99 us" % (c["rate"], k), fmt(c["p99_us"]),
            "bridge " + fmt(fb.get("p99_us")), c["vs_floor"]["p99_vs_bridge"])
        row("latency %d/s to %d: max us" % (c["rate"], k), fmt(c["max_us"]),
            "bridge " + fmt(fb.get("max_us")))
        row("latency %d/s to %d: CPU us/event" % (c["rate"], k),
            fmt(c["cpu_us_per_event"]),
            "bridge " + fmt(fb.get("cpu_us_per_event")),
            c["vs_floor"]["cpu_per_event_vs_bridge"])
    c = C.get("socket_deliver_1_200B")
    if c:
        row("Socket Mode 1 client 200B: events/s", fmt(c["events_per_s"]),
            "rtm " + fmt(C.get("deliver_1_200B", {}).get("events_per_s")))
        row("Socket Mode 1 client 200B: CPU us/event",
            fmt(c["cpu_us_per_event"]),
            "rtm " + fmt(C.get("deliver_1_200B", {}).get("cpu_us_per_event")),
            c["cpu_per_event_vs_rtm"])
    c = C.get("socket_latency_1")
    if c:
        row("Socket Mode latency %d/s to 1: p50 us" % c["rate"],
            fmt(c["p50_us"]),
            "rtm " + fmt(C.get("latency_1", {}).get("p50_us")),
            c["p50_vs_rtm"])
        row("Socket Mode latency %d/s to 1: p99 us" % c["rate"],
            fmt(c["p99_us"]),
            "rtm " + fmt(C.get("latency_1", {}).get("p99_us")))
        row("Socket Mode latency %d/s to 1: CPU us/event" % c["rate"],
            fmt(c["cpu_us_per_event"]),
            "rtm " + fmt(C.get("latency_1", {}).get("cpu_us_per_event")),
            c["cpu_per_event_vs_rtm"])
    for rate in goodbye.RATES:
        g = C.get("goodbye_%d" % rate)
        if not g:
            continue

        def mdr(mode):
            v = g.get(mode)
            if not v:
                return "-"
            return "%s/%s/%s" % (fmt(v["missed"]), fmt(v["duplicated"]),
                                 fmt(v["reordered"]))
        row("goodbye at %d/s (%d ev): missed/dup/reord" % (rate, g["events"]),
            mdr("make_before_break"),
            "break-before-make " + mdr("break_before_make"))
    m = C.get("memory")
    if m:
        row("RSS idle KiB", fmt(m["idle_rss_kib"]),
            "bare lws " + fmt(F["floor_lws_200B"]["rss_kib"]),
            m["vs_floor"]["idle_rss_vs_floor_lws"])
        row("RSS 1000 idle clients KiB", fmt(m["rss_1000_idle_clients_kib"]))
        row("RSS per idle client KiB", fmt(m["per_client_kib"]))
    i = C.get("idle")
    if i:
        row("idle wake-ups/s", fmt(i["wakeups_per_s"]))
        row("idle CPU us/s", fmt(i["cpu_us_per_s"]))
    for c, label in (("outbound_sequential", "outbound seq"),
                     ("outbound_pipelined", "outbound pipelined")):
        o = C.get(c)
        if not o:
            continue
        row("%s: p50/p99 us" % label,
            fmt(o["p50_us"]) + " / " + fmt(o["p99_us"]))
        row("%s: requests/s" % label, fmt(o["requests_per_s"]))
    for size in (200, 1024):
        g = G.get("ceiling_%dB" % size)
        if g:
            row("generator ceiling %dB events/s" % size,
                fmt(g["events_per_s"]),
                "cpu-bound " + fmt(g["cpu_bound_events_per_s"]))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["%-*s  %-*s  %-*s  %s" % (w[0], "case", w[1],
                                       "slackd median [min..max]", w[2],
                                       "floor", "ratio")]
    for r in rows:
        lines.append("%-*s  %-*s  %-*s  %s" % (w[0], r[0], w[1], r[1], w[2],
                                               r[2], r[3]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--quick", action="store_true",
                    help="one repetition, small N: a smoke test")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", help="default BUILDDIR/bench-results.json")
    args = ap.parse_args()
    args.builddir = os.path.abspath(args.builddir)
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    started = time.monotonic()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2200:
        say("warning: RLIMIT_NOFILE %d is too low for 1000 clients"
            % resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    b = Bench(args)
    status = 0
    try:
        b.start_gen()
        b.write_conf()
        for i in range(b.reps):
            b.rep(i)
    except BenchError as e:
        b.errors.append(str(e))
        say("error: %s" % e)
        status = 1
    except KeyboardInterrupt:
        b.errors.append("interrupted")
        status = 130
    finally:
        if b.daemon is not None:
            try:
                b.daemon.p.send_signal(signal.SIGTERM)
                b.daemon.wait(10)
            except OSError:
                pass
        if b.gen is not None:
            b.gen.close_stdin()
            b.gen.wait(5)
        cleanup()
    R = b.report(started)
    text = json.dumps(R, indent=1)
    print(text, flush=True)
    out = args.out or os.path.join(args.builddir, "bench-results.json")
    with open(out, "w") as f:
        f.write(text + "\n")
    try:
        print("\n" + table(R), file=sys.stderr)
    except (KeyError, TypeError, ValueError) as e:
        print("(no table: %s)" % e, file=sys.stderr)
    say("results in %s; %.0f s" % (out, R["runtime_s"]))
    if R["errors"]:
        say("errors: " + "; ".join(R["errors"]))
        status = status or 1
    if status == 0:
        shutil.rmtree(b.tmp, ignore_errors=True)
    else:
        say("logs kept in %s" % b.tmp)
    return status


if __name__ == "__main__":
    sys.exit(main())
