#!/usr/bin/python3
"""NATS on and off, in the same run (make bench-nats).

    bench/nats.py --builddir BUILDDIR [--quick] [--reps N] [--events N]

Uses bench/run.py's generator, reader and daemon handling: for each
repetition, slackd without nats_url, then with it (a nats-server with
JetStream in a temporary directory, started here), each time a burst of N
events of 200 bytes delivered to one local client.  Prints one JSON object:
delivery rate to the local client and daemon CPU per event with NATS off
and on, and with NATS on the publish throughput (events acknowledged by
JetStream per second, from the generator's first write to the last ack)
and the time from the local client's last event to the last ack.  Daemon
CPU is counted until the last ack.  Needs nats-server.
"""

import argparse
import json
import os
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py)


class NatsBench(run.Bench):
    def __init__(self, args):
        super().__init__(args)
        self.nats_url = None
        self.n = args.events or (20000 if args.quick else 200000)

    def conf(self):
        c = super().conf()
        if self.nats_url is not None:
            c.update(nats_url=self.nats_url, nats_prefix="bench",
                     nats_stream="BENCH", nats_backlog="1G",
                     nats_max_bytes="4G")
        return c

    def start_nats(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        store = os.path.join(self.tmp, "js")
        shutil.rmtree(store, ignore_errors=True)
        self.nats = run.Proc("nats-server", [
            shutil.which("nats-server") or "/usr/sbin/nats-server",
            "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
            self.load_cpu, self.tmp)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise run.BenchError("nats-server did not start: %s"
                                         % self.nats.log_tail())
                time.sleep(0.05)
        self.nats_url = "nats://127.0.0.1:%d" % port

    def stop_nats(self):
        self.nats.kill()
        self.nats_url = None

    def nats_status(self):
        return self.daemon_status().get("nats") or {}

    def burst(self, mode):
        pid = self.start_daemon()
        if mode == "on":
            deadline = time.monotonic() + 20
            while self.nats_status().get("state") != "connected":
                if time.monotonic() > deadline:
                    raise run.BenchError("slackd did not reach NATS: %s"
                                         % self.daemon.log_tail())
                time.sleep(0.05)
            base = self.nats_status()["published"]
        rs = self.readers(self.conf()["socket"], 1, self.n)
        c0 = run.CpuMark(pid)
        r = self.gen_cmd("burst rtm %d 200" % self.n)
        res = self.reader_results(rs, 300, watch=pid)
        rec = {"events": self.n,
               "deliver_events_per_s": self.n / ((res["t_last"] - r["t0"])
                                                 / 1e9),
               "lost": res["lost"], "reordered": res["reordered"]}
        if mode == "on":
            deadline = time.monotonic() + 300
            while True:
                n = self.nats_status()
                if n["published"] - base >= self.n:
                    t_acked = time.monotonic_ns()
                    break
                if time.monotonic() > deadline:
                    raise run.BenchError("only %d of %d events acknowledged"
                                         % (n["published"] - base, self.n))
                time.sleep(0.02)
            rec["publish_events_per_s"] = self.n / ((t_acked - r["t0"]) / 1e9)
            rec["acks_after_delivery_s"] = (t_acked - res["t_last"]) / 1e9
            rec["duplicates"] = n["duplicates"]
            rec["gaps"] = n["gaps"]
        cpu_us, _ = c0.since()
        rec["cpu_us_per_event"] = cpu_us / self.n
        self.record("nats_" + mode, **rec)
        self.stop_daemon()

    def rep(self, i):
        run.say("repetition %d: NATS off" % (i + 1))
        self.write_conf()
        self.burst("off")
        run.say("repetition %d: NATS on" % (i + 1))
        self.start_nats()
        self.write_conf()
        try:
            self.burst("on")
        finally:
            self.stop_nats()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--events", type=int, default=0)
    args = ap.parse_args()
    args.builddir = os.path.abspath(args.builddir)
    if not (shutil.which("nats-server") or
            os.path.exists("/usr/sbin/nats-server")):
        run.say("nats-server is not installed (apt-get install nats-server)")
        return 1
    b = NatsBench(args)
    status = 0
    try:
        b.start_gen()
        for i in range(b.reps):
            b.rep(i)
    except run.BenchError as e:
        b.errors.append(str(e))
        run.say("error: %s" % e)
        status = 1
    finally:
        if b.daemon is not None:
            b.daemon.kill()
        if b.gen is not None:
            b.gen.close_stdin()
            b.gen.wait(5)
        run.cleanup()
    out = {"events": b.n, "size": 200, "reps": b.reps,
           "pinning": {"daemon": b.daemon_cpu, "load_and_nats": b.load_cpu},
           "errors": b.errors}
    for mode in ("off", "on"):
        runs = b.runs.get("nats_" + mode, [])
        keys = sorted({k for r in runs for k in r})
        out[mode] = {k: run.summary([r.get(k) for r in runs]) for k in keys}
    off = out["off"].get("cpu_us_per_event")
    on = out["on"].get("cpu_us_per_event")
    out["cpu_ratio_on_off"] = run.ratio(run.med(on), run.med(off))
    print(json.dumps(out, indent=1))
    if status == 0 and not b.errors:
        shutil.rmtree(b.tmp, ignore_errors=True)
    else:
        run.say("logs kept in %s" % b.tmp)
    return status or (1 if b.errors else 0)


if __name__ == "__main__":
    sys.exit(main())
