#!/usr/bin/env python3
"""Userspace link impairment (delay, jitter, loss) for the fault tests: an NFQUEUE consumer.

This machine's kernel has no sch_netem and no nft `queue` expression (CONFIG_NFT_QUEUE is not
set), but it has the xt NFQUEUE target. test/faults/net.ts sends one direction of one link to a
queue in the WAN namespace (`iptables -A FORWARD -i IN -o OUT -j NFQUEUE --queue-num N
--queue-bypass`) and runs one of these per queue, inside that namespace. It speaks nfnetlink
directly (socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER)); python3's standard library only.

Each packet is held for delay + uniform(-jitter, +jitter) ms (never less than 0) and then
accepted, or dropped at once with probability loss%. Deadlines are independent per packet, so
jitter reorders packets, as netem does. The RNG is seeded (--seed): the same packet sequence gets
the same delays and losses. Only the packet id is needed: copy mode META (no payload copied).
The number of held packets is bounded by the kernel queue length (--maxlen); past it the kernel
drops (counted as kernel_dropped).

Protocol on stdin/stdout (one line each):
  stdout `ready`                         once the queue is bound (await it; no sleeps)
  stdin  `set {"delay_ms":D,"jitter_ms":J,"loss_pct":L}`  replaces all three (missing = 0);
  stdout `ok {...params}`                once the new parameters are in force
  stdin  `stats`  -> stdout `stats {...}` (also on SIGUSR1)
  stdin  `quit`, EOF on stdin (the parent died), SIGTERM or SIGINT: every held packet is
         accepted at once (flushed), the queue unbound, `bye {...stats}` printed, exit 0.
  anything else -> stdout `error <why>`. Fatal errors go to stderr with exit 1 (bad arguments 2).
--no-stdin ignores stdin (then only signals stop it).
"""

import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NF_DROP = 0
NF_ACCEPT = 1
# Bound on packets read (and on due packets released) per loop turn, so stdin and signals are
# served under a flood too.
BURST = 256


def nl_attr(atype, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, atype) + payload + b"\0" * ((4 - length % 4) % 4)


class Queue:
    def __init__(self, num, maxlen):
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.config(nl_attr(NFQA_CFG_CMD, struct.pack(">BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)))
        self.config(nl_attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META)))
        self.config(nl_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen)))
        self.sock.setblocking(False)

    def send(self, msg_type, flags, attrs):
        self.seq += 1
        # nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id = queue number (big-endian)
        body = struct.pack(">BBH", socket.AF_UNSPEC, 0, self.num) + attrs
        hdr = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, self.seq, 0)
        self.sock.send(hdr + body)
        return self.seq

    def config(self, attrs):
        """Send one config message and wait (blocking; before the loop) for its ack."""
        seq = self.send(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, attrs)
        for _ in range(4096):
            data = self.sock.recv(65536)
            for mtype, mseq, payload in split_messages(data):
                if mtype == NLMSG_ERROR and mseq == seq:
                    (err,) = struct.unpack("=i", payload[:4])
                    if err != 0:
                        raise OSError(-err, "nfqueue config of queue %d: %s" % (self.num, os.strerror(-err)))
                    return
        raise RuntimeError("nfqueue config of queue %d: no ack" % self.num)

    def verdict(self, packet_id, verdict):
        self.send(NFQNL_MSG_VERDICT, NLM_F_REQUEST, nl_attr(NFQA_VERDICT_HDR, struct.pack(">II", verdict, packet_id)))

    def unbind(self):
        self.sock.setblocking(True)
        self.sock.settimeout(2.0)
        self.config(nl_attr(NFQA_CFG_CMD, struct.pack(">BBH", NFQNL_CFG_CMD_UNBIND, 0, socket.AF_INET)))


def split_messages(data):
    """Yield (type, seq, payload) of each netlink message in one datagram."""
    off = 0
    while off + 16 <= len(data):
        length, mtype, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
        if length < 16 or off + length > len(data):
            break
        yield mtype, seq, data[off + 16:off + length]
        off += (length + 3) & ~3


def packet_id(payload):
    """The NFQA_PACKET_HDR packet id of an NFQNL_MSG_PACKET payload (after nfgenmsg), or None."""
    off = 4
    while off + 4 <= len(payload):
        alen, atype = struct.unpack_from("=HH", payload, off)
        if alen < 4:
            return None
        if (atype & 0x7FFF) == NFQA_PACKET_HDR:
            return struct.unpack_from(">I", payload, off + 4)[0]
        off += (alen + 3) & ~3
    return None


def parse_params(text):
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("params must be a JSON object")
    unknown = set(raw) - {"delay_ms", "jitter_ms", "loss_pct"}
    if unknown:
        raise ValueError("unknown params: %s" % ", ".join(sorted(unknown)))
    params = {k: raw.get(k, 0) for k in ("delay_ms", "jitter_ms", "loss_pct")}
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError("%s must be a number >= 0" % k)
    if params["loss_pct"] > 100:
        raise ValueError("loss_pct must be <= 100")
    return params


def kernel_counters(num):
    """queue_dropped / user_dropped of this queue from /proc (this network namespace)."""
    try:
        with open("/proc/net/netfilter/nfnetlink_queue") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 7 and int(fields[0]) == num:
                    return int(fields[5]), int(fields[6])
    except OSError:
        pass
    return None, None


def main():
    ap = argparse.ArgumentParser(description="NFQUEUE delay/jitter/loss for one queue")
    ap.add_argument("--queue", type=int, required=True, help="queue number (0..65535)")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--loss-pct", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--maxlen", type=int, default=4096, help="kernel queue length (held packets bound)")
    ap.add_argument("--no-stdin", action="store_true", help="ignore stdin (stop by signal only)")
    args = ap.parse_args()
    if not 0 <= args.queue <= 65535 or args.maxlen < 1:
        ap.error("--queue must be 0..65535 and --maxlen >= 1")
    try:
        params = parse_params(json.dumps({"delay_ms": args.delay_ms, "jitter_ms": args.jitter_ms,
                                          "loss_pct": args.loss_pct}))
    except ValueError as e:
        ap.error(str(e))

    rng = random.Random(args.seed)
    counts = {"packets": 0, "accepted": 0, "dropped": 0, "flushed": 0, "max_held": 0,
              "enobufs": 0, "verdict_errors": 0}
    held = []  # heap of (due monotonic seconds, arrival order, packet id)
    order = 0
    flags = {"stop": False, "stats": False}

    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())

    def on_stop(_sig, _frame):
        flags["stop"] = True

    def on_stats(_sig, _frame):
        flags["stats"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_stats)

    try:
        q = Queue(args.queue, args.maxlen)
    except OSError as e:
        print("nfqueue-delayer: cannot bind queue %d: %s" % (args.queue, e), file=sys.stderr)
        return 1

    def say(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def stats():
        kdrop, udrop = kernel_counters(args.queue)
        return dict(counts, held=len(held), kernel_dropped=kdrop, user_dropped=udrop, queue=args.queue,
                    seed=args.seed, params=params)

    def command(line):
        nonlocal params
        cmd, _, rest = line.strip().partition(" ")
        if cmd == "set":
            try:
                params = parse_params(rest)
            except ValueError as e:
                say("error %s" % e)
                return
            say("ok " + json.dumps(params))
        elif cmd == "stats":
            say("stats " + json.dumps(stats()))
        elif cmd == "quit":
            flags["stop"] = True
        elif cmd:
            say("error unknown command %r" % cmd)

    say("ready")
    stdin_fd = None if args.no_stdin else sys.stdin.fileno()
    pending = b""
    while not flags["stop"]:
        timeout = None
        if held:
            timeout = max(0.0, held[0][0] - time.monotonic())
        fds = [q.sock, wake_r] + ([stdin_fd] if stdin_fd is not None else [])
        readable, _, _ = select.select(fds, [], [], timeout)
        if wake_r in readable:
            try:
                wake_r.recv(64)
            except BlockingIOError:
                pass
        if stdin_fd is not None and stdin_fd in readable:
            chunk = os.read(stdin_fd, 4096)
            if not chunk:
                flags["stop"] = True
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                command(line.decode("utf-8", "replace"))
        if q.sock in readable:
            for _ in range(BURST):
                try:
                    data = q.sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == 105:  # ENOBUFS: the socket overflowed, the kernel dropped some
                        counts["enobufs"] += 1
                        continue
                    raise
                arrival = time.monotonic()
                for mtype, _seq, payload in split_messages(data):
                    if mtype == NLMSG_ERROR:
                        (err,) = struct.unpack("=i", payload[:4])
                        if err != 0:
                            counts["verdict_errors"] += 1
                        continue
                    if mtype != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                        continue
                    pid = packet_id(payload)
                    if pid is None:
                        continue
                    counts["packets"] += 1
                    if params["loss_pct"] > 0 and rng.random() * 100.0 < params["loss_pct"]:
                        q.verdict(pid, NF_DROP)
                        counts["dropped"] += 1
                        continue
                    delay = params["delay_ms"]
                    if params["jitter_ms"] > 0:
                        delay += rng.uniform(-params["jitter_ms"], params["jitter_ms"])
                    order += 1
                    heapq.heappush(held, (arrival + max(0.0, delay) / 1000.0, order, pid))
                    counts["max_held"] = max(counts["max_held"], len(held))
        now = time.monotonic()
        for _ in range(BURST):
            if not held or held[0][0] > now:
                break
            _, _, pid = heapq.heappop(held)
            q.verdict(pid, NF_ACCEPT)
            counts["accepted"] += 1
        if flags["stats"]:
            flags["stats"] = False
            say("stats " + json.dumps(stats()))

    while held:
        _, _, pid = heapq.heappop(held)
        q.verdict(pid, NF_ACCEPT)
        counts["flushed"] += 1
    final = stats()
    try:
        q.unbind()
    except (OSError, RuntimeError) as e:
        print("nfqueue-delayer: unbind: %s" % e, file=sys.stderr)
    say("bye " + json.dumps(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
