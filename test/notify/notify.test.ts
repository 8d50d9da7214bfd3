import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { describe, expect, it } from 'vitest';
import { createNotifier, loadAddon, watchdogUsec } from '../../src/notify/notify.js';
import { LivenessTracker, WatchdogPinger } from '../../src/notify/watchdog.js';
import type { TimerHandle } from '../../src/clock.js';

describe('sd_notify module', () => {
  it('is a no-op without NOTIFY_SOCKET and never loads the addon', () => {
    const sent: string[] = [];
    let loaded = false;
    const n = createNotifier({}, { addon: () => ((loaded = true), (s: string) => void sent.push(s)) });
    n.ready('x');
    n.status('y');
    n.watchdog();
    n.reloading();
    n.stopping();
    expect(n.enabled).toBe(false);
    expect(n.path).toBe('none');
    expect(loaded).toBe(false);
    expect(sent).toEqual([]);
  });

  it('sends the sd_notify assignments, STATUS on one line', () => {
    const sent: string[] = [];
    const n = createNotifier({ NOTIFY_SOCKET: '/run/x' }, { send: (s) => void sent.push(s) });
    n.ready('role=dr state=standby');
    n.status('a\nb');
    n.watchdog();
    n.reloading();
    n.stopping();
    expect(sent[0]).toBe(`READY=1\nSTATUS=role=dr state=standby\nMAINPID=${process.pid}\n`);
    expect(sent[1]).toBe('STATUS=a b\n');
    expect(sent[2]).toBe('WATCHDOG=1\n');
    expect(sent[3]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+\n$/);
    expect(sent[4]).toBe('STOPPING=1\n');
  });

  it('uses the addon when it loads', () => {
    const sent: string[] = [];
    const n = createNotifier({ NOTIFY_SOCKET: '/run/x' }, { addon: () => (s) => void sent.push(s) });
    n.watchdog();
    expect(n.path).toBe('addon');
    expect(n.fallbackReason).toBeNull();
    expect(sent).toEqual(['WATCHDOG=1\n']);
  });

  it('the real addon loads and exposes sendState (built against this Node)', () => {
    expect(typeof loadAddon()).toBe('function');
    expect(() => loadAddon(() => ({}))).toThrowError(/no sendState/);
  });

  it('an addon that does not load falls back to systemd-notify, which delivers every message in order to $NOTIFY_SOCKET', async () => {
    const listener = await notifySocketListener();
    try {
      const n = createNotifier(
        { ...process.env, NOTIFY_SOCKET: listener.path },
        {
          addon: () => {
            throw new Error('The module notify.node was compiled against a different Node.js version using NODE_MODULE_VERSION 108.\nmore');
          },
        },
      );
      expect(n.enabled).toBe(true);
      expect(n.path).toBe('systemd-notify');
      expect(n.fallbackReason).toMatch(/^The module .* NODE_MODULE_VERSION 108\.$/);
      n.ready('role=dr state=standby');
      n.status('role=dr state=active');
      n.watchdog();
      n.reloading();
      n.stopping();
      await n.flush();
      const got = await listener.messages(5);
      expect(got[0]).toBe(`READY=1\nSTATUS=role=dr state=standby\nMAINPID=${process.pid}`);
      expect(got[1]).toBe('STATUS=role=dr state=active');
      expect(got[2]).toBe('WATCHDOG=1');
      expect(got[3]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
      expect(got[4]).toBe('STOPPING=1');
    } finally {
      await listener.close();
    }
  });

  it('a failing systemd-notify is reported once per episode, never thrown', async () => {
    const errors: string[] = [];
    const n = createNotifier(
      { NOTIFY_SOCKET: '/nonexistent/notify' },
      {
        addon: () => {
          throw new Error('missing');
        },
        fallback: { bin: '/nonexistent/systemd-notify', onError: (e) => void errors.push(e.message) },
      },
    );
    n.ready('x');
    n.watchdog();
    await n.flush();
    expect(n.path).toBe('systemd-notify');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^systemd-notify READY=1: .*ENOENT/);
  });

  it('WATCHDOG_USEC applies only to our PID and only with NOTIFY_SOCKET', () => {
    expect(watchdogUsec({ NOTIFY_SOCKET: 's', WATCHDOG_USEC: '20000000' }, 42)).toBe(20_000_000);
    expect(watchdogUsec({ NOTIFY_SOCKET: 's', WATCHDOG_USEC: '20000000', WATCHDOG_PID: '41' }, 42)).toBeNull();
    expect(watchdogUsec({ WATCHDOG_USEC: '20000000' }, 42)).toBeNull();
    expect(watchdogUsec({ NOTIFY_SOCKET: 's', WATCHDOG_USEC: 'x' }, 42)).toBeNull();
  });
});

/**
 * A stand-in for the manager's notify socket: a unix datagram socket (Node has none, python3 is
 * on every host that builds the addon). Each datagram comes back as one JSON line; BARRIER=1
 * (systemd-notify's wait for the manager) is answered by closing the passed fd, which the
 * kernel does for us when recv() takes no ancillary data.
 */
async function notifySocketListener(): Promise<{ path: string; messages(n: number): Promise<string[]>; close(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-notify-'));
  const sock = path.join(dir, 'notify');
  const py = spawn('python3', ['-c', PY_LISTENER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: string[] = [];
  let waiter: (() => void) | undefined;
  const lines = readline.createInterface({ input: py.stdout });
  const ready = new Promise<void>((resolve, reject) => {
    py.once('error', reject);
    py.once('exit', (code) => reject(new Error(`notify listener exited (${code})`)));
    lines.on('line', (l) => {
      if (l === 'listening') return resolve();
      const m = JSON.parse(l) as string;
      if (m !== 'BARRIER=1') got.push(m);
      waiter?.();
    });
  });
  await ready;
  return {
    path: sock,
    messages: (n) =>
      new Promise((resolve, reject) => {
        const check = (): void => void (got.length >= n && resolve(got.slice()));
        waiter = check;
        py.once('exit', () => reject(new Error(`listener exited with ${got.length}/${n} messages`)));
        check();
      }),
    close: async () => {
      const exited = new Promise((r) => py.once('exit', r));
      if (py.exitCode === null) py.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const PY_LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print(json.dumps(s.recv(65536).decode().rstrip("\\n")), flush=True)
`;

describe('watchdog (fake clock)', () => {
  function rig() {
    let now = 0;
    const tracker = new LivenessTracker({ decide: 10_000, collector: 40_000 }, { monotonicMs: () => now });
    const pings: number[] = [];
    const stale: string[][] = [];
    let tick: (() => void) | undefined;
    const pinger = new WatchdogPinger(
      20_000_000, // WatchdogSec=20s
      tracker,
      () => pings.push(now),
      (l) => stale.push(l.stale.map((s) => s.loop)),
      {
        monotonicMs: () => now,
        wallMs: () => now,
        setTimer: (f) => ((tick = f), undefined as unknown as TimerHandle),
        cancel: () => (tick = undefined),
      },
    );
    return {
      tracker,
      pinger,
      pings,
      stale,
      advance(ms: number) {
        now += ms;
        tick?.();
      },
      get now() {
        return now;
      },
    };
  }

  it('pings at half of WATCHDOG_USEC while every loop makes progress', () => {
    const r = rig();
    expect(r.pinger.intervalMs).toBe(10_000);
    r.pinger.start();
    for (let i = 0; i < 6; i++) {
      r.advance(10_000);
      r.tracker.progress('decide');
      r.tracker.progress('collector');
    }
    expect(r.pings).toHaveLength(7); // at start + 6 beats
    expect(r.stale).toEqual([]);
  });

  it('a wedged loop stops the pings (systemd then restarts us), reported once; progress resumes them', () => {
    const r = rig();
    r.pinger.start();
    // The decide loop wedges; the collector loop keeps going.
    for (let i = 0; i < 5; i++) {
      r.advance(5_000);
      r.tracker.progress('collector');
    }
    const pingsBefore = r.pings.length;
    for (let i = 0; i < 4; i++) {
      r.advance(5_000);
      r.tracker.progress('collector');
    }
    expect(r.pings.length).toBe(pingsBefore);
    expect(r.stale).toEqual([['decide']]);
    r.tracker.progress('decide');
    r.advance(5_000);
    expect(r.pings.length).toBe(pingsBefore + 1);
  });

  it('a deadline is judged per loop', () => {
    let now = 0;
    const t = new LivenessTracker({ a: 1000, b: 5000 }, { monotonicMs: () => now });
    now = 3000;
    t.progress('b');
    expect(t.check()).toEqual({ ok: false, stale: [{ loop: 'a', sinceMs: 3000, deadlineMs: 1000 }] });
    t.progress('a');
    now = 8001;
    expect(t.check().stale.map((s) => s.loop)).toEqual(['a', 'b']);
  });
});
