/**
 * The systemd collector's logic against a fake bus (job matching, settle,
 * drift, backoff). The real thing is tested inside a booted systemd
 * (systemd.int.test.ts); this fake only pins down the edge cases.
 */
import { describe, expect, it } from 'vitest';
import { SystemdCollector } from '../../src/collector/systemd.js';
import type { JobRemoved, SystemdBus, UnitState } from '../../src/collector/systemd-bus.js';
import { createLogger } from '../../src/log/logger.js';
import { Writable } from 'node:stream';
import { systemClock, type Clock, type TimerHandle } from '../../src/clock.js';

class FakeBus implements SystemdBus {
  state: UnitState = { loadState: 'loaded', activeState: 'inactive', subState: 'dead' };
  jobs: string[] = [];
  private listeners = new Set<(j: JobRemoved) => void>();
  private watcher: ((s: Partial<UnitState>) => void) | null = null;
  /** What a started unit does: 'ok', 'dies' (done, then failed), 'denied', 'job-failed'. */
  behaviour: 'ok' | 'dies' | 'denied' | 'job-failed' = 'ok';
  /** Emit JobRemoved before StartUnit returns (a real race). */
  early = false;
  private n = 0;

  async connect(): Promise<void> {}
  onJobRemoved(cb: (j: JobRemoved) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
  private job(verb: string, apply: () => void, result = 'done'): Promise<string> {
    if (this.behaviour === 'denied') {
      return Promise.reject(Object.assign(new Error('Access denied'), { type: 'org.freedesktop.DBus.Error.AccessDenied' }));
    }
    const path = `/org/freedesktop/systemd1/job/${++this.n}`;
    this.jobs.push(verb);
    const finish = (): void => {
      apply();
      for (const l of [...this.listeners]) l({ id: this.n, job: path, unit: 'otelcol-contrib.service', result });
    };
    if (this.early) {
      finish();
      return Promise.resolve(path);
    }
    setImmediate(finish);
    return Promise.resolve(path);
  }
  startUnit(): Promise<string> {
    if (this.behaviour === 'job-failed') return this.job('start', () => this.set('failed'), 'failed');
    return this.job('start', () => this.set(this.behaviour === 'dies' ? 'failed' : 'active'));
  }
  stopUnit(): Promise<string> {
    return this.job('stop', () => this.set('inactive'));
  }
  async unitState(): Promise<UnitState> {
    return { ...this.state };
  }
  async watchUnit(_unit: string, cb: (s: Partial<UnitState>) => void): Promise<void> {
    this.watcher = cb;
  }
  onDisconnect(): void {}
  close(): void {}
  /** Someone else's job on the unit (systemctl stop), with its JobRemoved. */
  foreignStop(): void {
    this.set('inactive');
    for (const l of [...this.listeners]) l({ id: 999, job: '/org/freedesktop/systemd1/job/999', unit: 'otelcol-contrib.service', result: 'done' });
  }
  /** A state change, as PropertiesChanged would deliver it. */
  set(activeState: string): void {
    this.state = { ...this.state, activeState };
    this.watcher?.({ activeState });
  }
}

/** `settle` runs during the collector's settle wait (settleMs 0 here); other timers are real. */
function setup(bus = new FakeBus(), settle: () => Promise<void> = async () => {}) {
  const lines: string[] = [];
  const stream = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
  let now = 0;
  const clock: Clock = {
    monotonicMs: () => now,
    wallMs: () => Date.now(),
    setTimer: (fn, ms) => {
      if (ms > 0) return systemClock.setTimer(fn, ms);
      void settle().then(fn);
      return undefined as unknown as TimerHandle;
    },
    cancel: (t) => systemClock.cancel(t),
  };
  const collector = new SystemdCollector({
    unit: 'otelcol-contrib.service',
    bus,
    logger: createLogger({ level: 'debug', journal: true, stream }),
    settleMs: 0,
    clock,
  });
  return { bus, collector, lines, advance: (ms: number) => (now += ms) };
}

describe('SystemdCollector (fake bus)', () => {
  it('starts a stopped unit and stops a running one, one job each, idempotently', async () => {
    const { bus, collector } = setup();
    await collector.start();
    await collector.reconcile('running');
    expect(collector.state()).toBe('active');
    await collector.reconcile('running');
    expect(bus.jobs).toEqual(['start']);
    await collector.reconcile('stopped');
    expect(collector.state()).toBe('inactive');
    expect(bus.jobs).toEqual(['start', 'stop']);
    expect(collector.lastError()).toBeNull();
  });

  it('matches a JobRemoved that arrives before StartUnit returns', async () => {
    const bus = new FakeBus();
    bus.early = true;
    const { collector } = setup(bus);
    await collector.reconcile('running');
    expect(collector.state()).toBe('active');
    expect(collector.lastError()).toBeNull();
  });

  it('a unit that fails right after its job is "done" is reported failed, with backoff', async () => {
    const bus = new FakeBus();
    bus.behaviour = 'dies';
    const { collector, lines, advance } = setup(bus);
    await collector.reconcile('running');
    expect(collector.state()).toBe('failed');
    expect(collector.lastError()).toMatch(/is failed .* after its start job was done/);
    expect(lines.some((l) => l.startsWith('<3>') && /FAILED/.test(l))).toBe(true);
    // Backoff: an immediate retry does nothing; after the backoff it tries again.
    await collector.reconcile('running');
    expect(bus.jobs).toEqual(['start']);
    advance(1000);
    await collector.reconcile('running');
    expect(bus.jobs).toEqual(['start', 'start']);
    advance(1000); // second backoff is 2 s
    await collector.reconcile('running');
    expect(bus.jobs).toHaveLength(2);
  });

  it('a stop by someone else during the settle time is drift, not a unit failure', async () => {
    const bus = new FakeBus();
    let first = true;
    const { collector, lines } = setup(bus, async () => {
      if (first) bus.foreignStop();
      first = false;
    });
    await collector.reconcile('running');
    expect(collector.state()).toBe('active');
    expect(collector.lastError()).toBeNull();
    expect(bus.jobs).toEqual(['start', 'start']);
    expect(lines.some((l) => /changed by someone else while this agent's start settled/.test(l))).toBe(true);
  });

  it('a job result other than "done" is an error', async () => {
    const bus = new FakeBus();
    bus.behaviour = 'job-failed';
    const { collector } = setup(bus);
    await collector.reconcile('running');
    expect(collector.lastError()).toMatch(/start job finished with result "failed"/);
  });

  it('AccessDenied is reported with the polkit hint, never thrown', async () => {
    const bus = new FakeBus();
    bus.behaviour = 'denied';
    const { collector } = setup(bus);
    await expect(collector.reconcile('running')).resolves.toBeUndefined();
    expect(collector.lastError()).toMatch(/AccessDenied.*polkit rule/);
  });

  it('a missing unit is "missing" and reported', async () => {
    const bus = new FakeBus();
    bus.state = { loadState: 'not-found', activeState: 'inactive', subState: 'dead' };
    const { collector } = setup(bus);
    await collector.reconcile('running');
    expect(collector.state()).toBe('missing');
    expect(collector.lastError()).toMatch(/not found.*is otelcol-contrib.service installed/);
    expect(bus.jobs).toEqual([]);
  });

  it('drift (stopped by hand while it should run) is logged at warning and repaired at once', async () => {
    const { bus, collector, lines } = setup();
    await collector.reconcile('running');
    bus.set('inactive'); // systemctl stop, not by us
    await new Promise((r) => setImmediate(r));
    await collector.reconcile('running'); // joins the repair in flight
    expect(bus.jobs).toEqual(['start', 'start']);
    expect(collector.state()).toBe('active');
    expect(lines.some((l) => l.startsWith('<4>') && /event=collector_drift/.test(l) && /without this agent asking/.test(l))).toBe(true);
  });
});

describe('SystemdCollector: crashes, as systemd signals them (issue 19)', () => {
  /** A PropertiesChanged with both states, as systemd sends them. */
  const signal = (bus: FakeBus, activeState: string, subState: string): void => {
    bus.state = { ...bus.state, activeState, subState };
    (bus as unknown as { watcher: ((s: Partial<UnitState>) => void) | null }).watcher?.({ activeState, subState });
  };

  it('counts a scheduled restart (auto-restart) and a failure once each; a refused restart after auto-restart is the same crash', async () => {
    const { bus, collector, advance } = setup();
    await collector.start();
    const changes: number[] = [];
    collector.onChange(() => changes.push(1));
    signal(bus, 'active', 'running');
    advance(1000);
    signal(bus, 'activating', 'auto-restart'); // crash 1: systemd will restart it
    signal(bus, 'active', 'running');
    advance(1000);
    signal(bus, 'activating', 'auto-restart'); // crash 2
    signal(bus, 'failed', 'failed'); // the start limit refused the restart: still crash 2
    expect(collector.crashes()).toEqual([1000, 2000]);
    advance(1000);
    signal(bus, 'active', 'running');
    signal(bus, 'failed', 'failed'); // crash 3: failed without a restart scheduled
    expect(collector.crashes()).toEqual([1000, 2000, 3000]);
    // every state change and crash told the engine at once
    expect(changes.length).toBeGreaterThanOrEqual(6);
  });

  it('a stop of ours is no crash', async () => {
    const { collector } = setup();
    await collector.start();
    await collector.reconcile('running');
    await collector.reconcile('stopped');
    expect(collector.state()).toBe('inactive');
    expect(collector.crashes()).toEqual([]);
  });
});
