#!/usr/bin/env python3
# generator.mjs for senders that read only a local unix datagram socket (/dev/log: busybox
# syslogd, inetutils syslogd): one numbered syslog line every --interval-ms (default 100) to
# --socket PATH, at most --count lines; prints `<seq> <send ms since the epoch>` per line, sent or
# not. A line the socket refuses (no daemon behind it, e.g. during a restart) is dropped, as
# libc's syslog() drops it: it counts as lost. Ends after --count lines, on SIGTERM, or when its
# stdout closes. (Node has no unix datagram sockets.)
import argparse
import signal
import socket
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument('--socket', required=True)
ap.add_argument('--interval-ms', type=int, default=100)
ap.add_argument('--count', type=int, default=3000)
a = ap.parse_args()

stopped = False


def stop(*_):
    global stopped
    stopped = True


signal.signal(signal.SIGTERM, stop)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setblocking(False)
t0 = time.monotonic()
seq = 0
while not stopped and seq < a.count:
    seq += 1
    now = int(time.time() * 1000)
    try:
        sock.sendto(b'<13>gen: seq=%d' % seq, a.socket)
    except OSError:
        pass
    try:
        sys.stdout.write('%d %d\n' % (seq, now))
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        sys.exit(0)
    delay = t0 + seq * a.interval_ms / 1000 - time.monotonic()
    if delay > 0 and not stopped:
        time.sleep(delay)
