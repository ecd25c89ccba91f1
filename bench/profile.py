#!/usr/bin/python3
"""One burst to one client, with slackd run under a profiler.

    bench/profile.py --builddir BUILDDIR [--mode socket|rtm] [--events N]
                     [--size BYTES] [--out FILE] [--attach CMD]
                     [-- WRAPPER ...]

Uses bench/run.py's generator, reader and daemon handling: starts bench/gen,
then slackd (in Socket Mode, or RTM with --mode rtm) under WRAPPER (by
default `valgrind --tool=callgrind`), waits until it is connected, zeroes
callgrind's counters, sends a burst of N events (default 20,000) of SIZE
bytes (default 200) to one reader, dumps the counters and stops.  The
profile is written to FILE (default callgrind.out.<mode> in the current
directory); read it with callgrind_annotate.  With another wrapper, or
none (`--`), nothing is zeroed or dumped.  --attach runs CMD (a shell
command, {pid} replaced by slackd's) for the burst only and stops it with
SIGINT after, e.g. --attach 'strace -c -f -o FILE -p {pid}' or
--attach 'perf record -e cpu-clock -g -o FILE -p {pid}'.  The daemon's CPU
per event is printed as in the bench.  Not part of `make bench`.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py)


class ProfileBench(run.Bench):
    def __init__(self, args, wrapper):
        super().__init__(args)
        self.daemon_wrapper = wrapper
        self.connect_timeout = 120  # under callgrind
        self.mode = args.mode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--mode", choices=("socket", "rtm"), default="socket")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--out")
    ap.add_argument("--attach")
    ap.add_argument("wrapper", nargs="*")
    args = ap.parse_args()
    args.builddir = os.path.abspath(args.builddir)
    args.quick = True
    args.reps = 1
    out = os.path.abspath(args.out or "callgrind.out." + args.mode)
    wrapper = args.wrapper
    if "--" not in sys.argv and not wrapper:
        wrapper = ["valgrind", "--tool=callgrind",
                   "--callgrind-out-file=" + out]
    cg = bool(wrapper) and "--tool=callgrind" in wrapper
    b = ProfileBench(args, wrapper)
    status = 0
    try:
        b.start_gen()
        b.write_conf()
        pid = b.start_daemon()
        if cg:
            subprocess.run(["callgrind_control", "-z", str(pid)],
                           check=True, capture_output=True)
        att = None
        if args.attach:
            att = subprocess.Popen(args.attach.replace("{pid}", str(pid)),
                                   shell=True, start_new_session=True)
            time.sleep(1)
        b.case_burst(pid, "burst", 1, args.events, args.size)
        if att is not None:
            os.killpg(att.pid, signal.SIGINT)
            att.wait(30)
        if cg:
            subprocess.run(["callgrind_control", "-d", str(pid)],
                           check=True, capture_output=True)
        acks = sum(c.get("acks", 0) for c in b.gen_stat()["conns"])
        b.stop_daemon()
        r = b.runs["burst"][0]
        run.say("%s, %d events of %d B: %.0f events/s, %.3f us CPU/event, "
                "%d acks, VmHWM %s KiB (under %s)"
                % (args.mode, args.events, args.size, r["events_per_s"],
                   r["cpu_us_per_event"], acks, r["vmhwm_kib"],
                   " ".join(wrapper) or "no wrapper"))
        if cg:
            run.say("profile of the burst: %s.1 (callgrind_annotate)" % out)
    except run.BenchError as e:
        run.say("error: %s" % e)
        status = 1
    finally:
        if b.daemon is not None:
            b.daemon.p.send_signal(signal.SIGTERM)
            b.daemon.wait(30)
        if b.gen is not None:
            b.gen.close_stdin()
            b.gen.wait(5)
        run.cleanup()
    if b.errors:
        run.say("errors: " + "; ".join(b.errors))
        status = status or 1
    if status == 0:
        shutil.rmtree(b.tmp, ignore_errors=True)
    else:
        run.say("logs kept in %s" % b.tmp)
    return status


if __name__ == "__main__":
    sys.exit(main())
