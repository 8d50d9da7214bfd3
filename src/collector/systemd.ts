/**
 * The collector unit driven through systemd's D-Bus API (SPEC §4).
 *
 * A job is judged as Cockpit does: listen for JobRemoved BEFORE calling
 * StartUnit/StopUnit, match the returned job path, require result "done",
 * then re-read ActiveState after a settle time, because a Type=simple unit
 * whose binary is missing reports "done" and fails a moment later.
 *
 * The unit's PropertiesChanged is watched: a change that is not ours (someone
 * ran `systemctl stop`) is logged at warning and repaired toward the last
 * desired state. Errors (AccessDenied, NoSuchUnit, bus gone) are kept for
 * status, retried with backoff, and never thrown to the engine.
 */
import { sleep, systemClock, type Clock, type TimerHandle } from '../clock.js';
import type { CollectorState } from '../core/decide.js';
import type { Logger } from '../log/logger.js';
import type { CollectorPort } from './port.js';
import type { JobRemoved, SystemdBus, UnitState } from './systemd-bus.js';

export interface SystemdCollectorOptions {
  unit: string;
  bus: SystemdBus;
  logger: Logger;
  /** Wait after a "done" job before trusting ActiveState. */
  settleMs?: number;
  /** Give up waiting for a job's JobRemoved after this long. */
  jobTimeoutMs?: number;
  /** Backoff, the settle wait and the job timeout; default the system clock. */
  clock?: Clock;
}

const MAX_BACKOFF_MS = 60_000;
/** Crashes remembered (the core counts those within collector.handover_after). */
const MAX_CRASHES = 64;

function toCollectorState(s: UnitState): CollectorState {
  if (s.loadState === 'not-found' || s.loadState === 'masked') return 'missing';
  switch (s.activeState) {
    case 'active':
    case 'reloading':
      return 'active';
    case 'inactive':
    case 'failed':
    case 'activating':
    case 'deactivating':
      return s.activeState;
    default:
      return 'unknown';
  }
}

/** A D-Bus error's name, e.g. org.freedesktop.DBus.Error.AccessDenied. */
function errorName(err: unknown): string {
  const e = err as { type?: string; name?: string };
  return e?.type ?? e?.name ?? 'Error';
}

export class SystemdCollector implements CollectorPort {
  private current: UnitState | null = null;
  private error: string | null = null;
  private want: 'running' | 'stopped' | null = null;
  private busy: Promise<void> | null = null;
  /** A reconcile asked for while one was running: run once more after it. */
  private again = false;
  private failures = 0;
  private nextAttemptAt = 0;
  private connected = false;
  /** While our own job runs, state changes are expected, not drift. */
  private ourJob = false;
  private readonly ourJobs = new Set<string>();
  /** Recent job paths on our unit, ours or not (ours are told apart once StartUnit has answered). */
  private unitJobs: string[] = [];
  private readonly settleMs: number;
  private readonly jobTimeoutMs: number;
  private readonly clock: Clock;
  private readonly crashTimes: number[] = [];
  private readonly listeners: Array<() => void> = [];

  constructor(private readonly opts: SystemdCollectorOptions) {
    this.settleMs = opts.settleMs ?? 1000;
    this.jobTimeoutMs = opts.jobTimeoutMs ?? 30_000;
    this.clock = opts.clock ?? systemClock;
  }

  async start(): Promise<void> {
    await this.ensureConnected();
  }

  async stop(): Promise<void> {
    await this.busy?.catch(() => undefined);
    this.opts.bus.close();
    this.connected = false;
  }

  state(): CollectorState | null {
    return this.current ? toCollectorState(this.current) : 'unknown';
  }

  lastError(): string | null {
    return this.error;
  }

  crashes(): number[] {
    return [...this.crashTimes];
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private fail(what: string, err: unknown): void {
    const name = errorName(err);
    const hint =
      /AccessDenied|InteractiveAuthorizationRequired/.test(name)
        ? ` (the polkit rule must allow this user to start/stop ${this.opts.unit})`
        : /NoSuchUnit/.test(name)
          ? ` (is ${this.opts.unit} installed?)`
          : '';
    this.error = `${what}: ${name}: ${(err as Error).message}${hint}`;
    this.failures++;
    const backoff = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(this.failures - 1, 6));
    this.nextAttemptAt = this.clock.monotonicMs() + backoff;
    this.opts.logger.error(this.error, { event: 'collector_error', unit: this.opts.unit, dbus_error: name, retry_in_ms: backoff });
  }

  private async ensureConnected(): Promise<boolean> {
    if (this.connected) return true;
    const { bus, unit, logger } = this.opts;
    try {
      await bus.connect();
      bus.onJobRemoved((j) => {
        if (j.unit !== unit) return;
        this.unitJobs.push(j.job);
        if (this.unitJobs.length > 64) this.unitJobs.shift();
      });
      bus.onDisconnect((err) => {
        this.connected = false;
        this.current = null;
        this.error = `system bus connection lost: ${err.message}`;
        logger.error(this.error, { event: 'collector_bus_lost', unit });
      });
      this.current = await bus.unitState(unit);
      await bus.watchUnit(unit, (s) => this.onUnitChange(s));
      this.connected = true;
      return true;
    } catch (err) {
      this.fail('cannot reach systemd on the system bus', err);
      return false;
    }
  }

  private onUnitChange(s: Partial<UnitState>): void {
    const before = this.current ? toCollectorState(this.current) : 'unknown';
    const subBefore = this.current?.subState;
    this.current = { ...(this.current ?? { loadState: 'loaded', activeState: 'unknown', subState: 'unknown' }), ...s };
    const after = toCollectorState(this.current);
    // A crash: systemd schedules a restart (SubState auto-restart), or the unit fails other than
    // right after such a restart was refused (the start limit: the same crash, counted once).
    const crashed = (this.current.subState === 'auto-restart' && subBefore !== 'auto-restart') || (after === 'failed' && before !== 'failed' && subBefore !== 'auto-restart');
    if (crashed) {
      this.crashTimes.push(this.clock.monotonicMs());
      if (this.crashTimes.length > MAX_CRASHES) this.crashTimes.shift();
    }
    if (crashed || after !== before) for (const l of this.listeners) l();
    if (after === before) return;
    if (after === 'failed') {
      this.opts.logger.error(`${this.opts.unit} has FAILED`, { event: 'collector_failed', unit: this.opts.unit, sub_state: this.current.subState });
    }
    if (this.ourJob || this.want === null) return;
    const drift = (this.want === 'running' && (after === 'inactive' || after === 'failed')) || (this.want === 'stopped' && (after === 'active' || after === 'activating'));
    if (drift) {
      this.opts.logger.warning(`${this.opts.unit} went ${before} -> ${after} without this agent asking (someone ran systemctl, or the unit exited); repairing to ${this.want}`, {
        event: 'collector_drift',
        unit: this.opts.unit,
        from: before,
        to: after,
        want: this.want,
      });
      // Drift is repaired now, not at the next collector tick; backoff still applies.
      void this.reconcile(this.want);
    }
  }

  /** Makes the unit match `want`. One job at a time; never throws. */
  reconcile(want: 'running' | 'stopped'): Promise<void> {
    this.want = want;
    if (this.busy) {
      // The running pass may have read the state before this change: look again after it.
      this.again = true;
      return this.busy;
    }
    this.busy = (async () => {
      do {
        this.again = false;
        await this.reconcileOnce(this.want ?? want);
      } while (this.again);
    })().finally(() => {
      this.busy = null;
    });
    return this.busy;
  }

  private async reconcileOnce(want: 'running' | 'stopped'): Promise<void> {
    if (this.clock.monotonicMs() < this.nextAttemptAt) return;
    if (!(await this.ensureConnected())) return;
    const { bus, unit, logger } = this.opts;
    try {
      this.current = await bus.unitState(unit);
    } catch (err) {
      this.fail(`cannot read the state of ${unit}`, err);
      return;
    }
    const state = toCollectorState(this.current);
    if (state === 'missing') {
      this.fail(`cannot ${want === 'running' ? 'start' : 'stop'} ${unit}`, Object.assign(new Error(`unit ${unit} not found (LoadState=${this.current.loadState})`), { type: 'org.freedesktop.systemd1.NoSuchUnit' }));
      return;
    }
    const needStart = want === 'running' && (state === 'inactive' || state === 'failed' || state === 'deactivating');
    const needStop = want === 'stopped' && (state === 'active' || state === 'activating');
    if (!needStart && !needStop) {
      if (!(want === 'running' && state === 'failed')) this.error = null;
      return;
    }
    const verb = needStart ? 'start' : 'stop';
    const t0 = this.clock.monotonicMs();
    this.unitJobs = [];
    this.ourJob = true;
    try {
      const result = await this.runJob(verb);
      if (result !== 'done') throw Object.assign(new Error(`${verb} job finished with result "${result}"`), { type: `job-${result}` });
      await sleep(this.clock, this.settleMs);
      this.current = await bus.unitState(unit);
      const after = toCollectorState(this.current);
      const ok = needStart ? after === 'active' : after === 'inactive' || after === 'failed';
      if (!ok && this.unitJobs.some((j) => !this.ourJobs.has(j))) {
        // Someone else ran a job on the unit meanwhile (systemctl stop/start): drift, not a unit failure.
        logger.warning(`${unit} was changed by someone else while this agent's ${verb} settled (now ${after}); repairing to ${want}`, {
          event: 'collector_drift',
          unit,
          to: after,
          want,
        });
        this.again = true;
        return;
      }
      if (!ok) throw Object.assign(new Error(`${unit} is ${after} (${this.current.subState}) ${this.settleMs} ms after its ${verb} job was done`), { type: 'unit-failed-after-job' });
      this.failures = 0;
      this.nextAttemptAt = 0;
      this.error = null;
      logger.notice(`${unit} ${verb === 'start' ? 'started' : 'stopped'}`, { event: `collector_${verb}`, unit, ms: Math.round(this.clock.monotonicMs() - t0 - this.settleMs) });
    } catch (err) {
      this.fail(`cannot ${verb} ${unit}`, err);
    } finally {
      this.ourJob = false;
    }
  }

  /** Runs one job; resolves with its JobRemoved result. */
  private runJob(verb: 'start' | 'stop'): Promise<string> {
    const { bus, unit } = this.opts;
    return new Promise<string>((resolve, reject) => {
      const seen = new Map<string, JobRemoved>();
      let path: string | null = null;
      let timer: TimerHandle | undefined;
      const done = (fn: () => void): void => {
        this.clock.cancel(timer);
        off();
        fn();
      };
      // Subscribed before the call: JobRemoved may arrive before the job path does.
      const off = bus.onJobRemoved((j) => {
        if (path === null) seen.set(j.job, j);
        else if (j.job === path) done(() => resolve(j.result));
      });
      (verb === 'start' ? bus.startUnit(unit) : bus.stopUnit(unit)).then(
        (p) => {
          path = p;
          this.ourJobs.add(p);
          if (this.ourJobs.size > 64) this.ourJobs.delete(this.ourJobs.values().next().value as string);
          const early = seen.get(p);
          if (early) return done(() => resolve(early.result));
          timer = this.clock.setTimer(() => done(() => reject(Object.assign(new Error(`no JobRemoved for ${p} within ${this.jobTimeoutMs} ms`), { type: 'job-timeout' }))), this.jobTimeoutMs);
        },
        (err: unknown) => done(() => reject(err)),
      );
    });
  }
}
