import { describe, expect, it } from 'vitest';
import { createNotifier, loadSender, watchdogUsec } from '../../src/notify/notify.js';
import { LivenessTracker, WatchdogPinger } from '../../src/notify/watchdog.js';

describe('sd_notify module', () => {
  it('is a no-op without NOTIFY_SOCKET and never loads the addon', () => {
    const sent: string[] = [];
    const n = createNotifier({}, (s) => sent.push(s));
    n.ready('x');
    n.status('y');
    n.watchdog();
    n.reloading();
    n.stopping();
    expect(n.enabled).toBe(false);
    expect(sent).toEqual([]);
  });

  it('sends the sd_notify assignments, STATUS on one line', () => {
    const sent: string[] = [];
    const n = createNotifier({ NOTIFY_SOCKET: '/run/x' }, (s) => sent.push(s));
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

  it('a missing addon with NOTIFY_SOCKET set is a clear error', () => {
    expect(() =>
      loadSender(() => {
        throw new Error("Cannot find module 'sd-notify'");
      }),
    ).toThrowError(/NOTIFY_SOCKET is set but the sd-notify addon cannot be loaded/);
  });

  it('the real addon loads and exposes sendState (built against this Node)', () => {
    expect(typeof loadSender()).toBe('function');
  });

  it('WATCHDOG_USEC applies only to our PID and only with NOTIFY_SOCKET', () => {
    expect(watchdogUsec({ NOTIFY_SOCKET: 's', WATCHDOG_USEC: '20000000' }, 42)).toBe(20_000_000);
    expect(watchdogUsec({ NOTIFY_SOCKET: 's', WATCHDOG_USEC: '20000000', WATCHDOG_PID: '41' }, 42)).toBeNull();
    expect(watchdogUsec({ WATCHDOG_USEC: '20000000' }, 42)).toBeNull();
    expect(watchdogUsec({ NOTIFY_SOCKET: 's', WATCHDOG_USEC: 'x' }, 42)).toBeNull();
  });
});

describe('watchdog (fake clock)', () => {
  function rig() {
    let now = 0;
    const tracker = new LivenessTracker({ decide: 10_000, collector: 40_000 }, () => now);
    const pings: number[] = [];
    const stale: string[][] = [];
    let tick: (() => void) | undefined;
    const pinger = new WatchdogPinger(
      20_000_000, // WatchdogSec=20s
      tracker,
      () => pings.push(now),
      (l) => stale.push(l.stale.map((s) => s.loop)),
      { setInterval: (f) => (tick = f), clearInterval: () => (tick = undefined) },
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
    const t = new LivenessTracker({ a: 1000, b: 5000 }, () => now);
    now = 3000;
    t.progress('b');
    expect(t.check()).toEqual({ ok: false, stale: [{ loop: 'a', sinceMs: 3000, deadlineMs: 1000 }] });
    t.progress('a');
    now = 8001;
    expect(t.check().stale.map((s) => s.loop)).toEqual(['a', 'b']);
  });
});
