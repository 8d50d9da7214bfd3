/**
 * The engine: the thin runner around the pure core. Each tick it reads the
 * witness (and, on a monitoring DR, checks the primary's health), asks
 * `decide` what to do, performs the one CAS it may ask for, feeds the outcome
 * back, and schedules the next tick when the core says. A second loop
 * reconciles the collector every `collector.interval`.
 *
 * Ticks and admin moves are serialised through one queue, so a failback
 * never races a renewal of the same agent (the DNS CAS would catch it anyway).
 * The engine owns the core state; status() is the only way out.
 */
import type { Config } from '../config/schema.js';
import type { AdminResult, ControlHandler, SyncResult } from '../control/protocol.js';
import { ADMIN_ATTEMPTS, planAdmin, type AdminOp, type FailbackGate } from '../core/admin.js';
import { decide, holdsValidLease, initialState, namedSite, siteHealth, type Action, type CoreConfig, type CoreState, type Observation, type WriteOp } from '../core/decide.js';
import type { CollectorPort } from '../collector/port.js';
import { DnsError } from '../dns/errors.js';
import { AgentError, ExitCode } from '../errors.js';
import type { HealthChecker, HealthResult } from '../health/checks.js';
import { planReload } from './reload.js';
import type { Logger } from '../log/logger.js';
import type { Snapshot, WriteResult } from '../lease/witness.js';
import type { Role } from '../lease/lease.js';
import { loadHeldEpoch, saveHeldEpoch } from './lease-state.js';
import { buildInfo, type BuildInfo } from '../build-info.js';
import type { AgentStatus, RecentEvent } from './status.js';
import type { CheckContext, SyncReport, VmSyncStatus } from '../vmsync/sync.js';

/** What the engine needs from the witness (Witness implements it). */
export interface WitnessPort {
  read(): Promise<Snapshot>;
  renew(seen: Snapshot, nowSeconds: number): Promise<WriteResult>;
  transfer(seen: Snapshot, to: Role, sites: { primary: string; dr: string }, nowSeconds: number): Promise<WriteResult>;
}

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall clock seconds (only for the informational lease `at`). */
  wallSeconds(): number;
}

export const systemClock: Clock = { now: () => performance.now(), wallSeconds: () => Date.now() / 1000 };

/** Hooks for metrics; all optional. */
export interface EngineObserver {
  dnsRequest?(kind: 'read' | 'update', seconds: number): void;
  dnsError?(code: string): void;
  write?(op: string, result: 'ok' | 'conflict' | 'error'): void;
  healthCheck?(ok: boolean): void;
  /** Each loop reports progress (for the watchdog). */
  progress?(loop: 'decide' | 'collector' | 'vmsync', at: number): void;
  notify?(event: string, text: string): void;
}

export interface EngineDeps {
  config: Config;
  witness: WitnessPort;
  server: string;
  zone: string;
  health: HealthChecker | null;
  collector: CollectorPort;
  logger: Logger;
  clock?: Clock;
  observer?: EngineObserver;
  /** The VM sync failback gate (issue 5); default: ready only when vmsync is disabled. */
  gate?: () => FailbackGate;
  /** Where the held epoch persists across restarts; none: not persisted (tests). */
  stateDir?: string;
  /** VM sync (vmsync.enabled); its own loop runs every vmsync.interval. */
  vmsync?: VmSyncPort | null;
  /** Version, Node and sd_notify path, reported in the status (default: notify `none`). */
  build?: BuildInfo;
}

/** What the engine needs from VM sync (VmSync implements it). */
export interface VmSyncPort {
  load(): Promise<void>;
  check(ctx: CheckContext): Promise<SyncReport>;
  status(): VmSyncStatus;
  failbackGate(currentEpoch?: number | null): FailbackGate;
  close(): Promise<void>;
}

const MAX_EVENTS = 30;

export function coreConfig(c: Config): CoreConfig {
  return {
    role: c.role,
    sites: c.sites,
    lease: c.lease,
    health: { interval: c.health.interval, failures: c.health.failures },
    collector: { control: c.collector.control, mode: c.collector.mode, self_fence: c.collector.self_fence },
  };
}

export class Engine implements ControlHandler {
  private config: Config;
  private core: CoreConfig;
  private state: CoreState;
  private readonly clock: Clock;
  private readonly startedAt = new Date();
  private queue: Promise<unknown> = Promise.resolve();
  private tickTimer: NodeJS.Timeout | undefined;
  private collectorTimer: NodeJS.Timeout | undefined;
  private vmsyncTimer: NodeJS.Timeout | undefined;
  /** Start (unix s) of the current lease epoch as first observed by us. */
  private epochSeen: { epoch: number; since: number } | null = null;
  private running = false;
  private lastDnsError: string | null = null;
  private lastWrite: AgentStatus['lastWrite'] = null;
  private events: RecentEvent[] = [];
  private lastHealthResult: HealthResult | null = null;

  constructor(private readonly deps: EngineDeps) {
    this.config = deps.config;
    this.core = coreConfig(deps.config);
    this.state = initialState(this.core);
    this.clock = deps.clock ?? systemClock;
  }

  /** First tick (so READY means "we have read DNS"), then the loops. Resolves after the first verified read. */
  async start(): Promise<void> {
    this.running = true;
    if (this.deps.stateDir) {
      this.state = initialState(this.core, { heldEpoch: await loadHeldEpoch(this.deps.stateDir, this.deps.logger) });
    }
    await this.deps.collector.start();
    await this.deps.vmsync?.load();
    await this.enqueue(() => this.tick());
    this.scheduleTick();
    this.scheduleCollector(0);
    this.scheduleVmsync(this.config.vmsync.interval);
  }

  /** Stops the loops; an in-flight tick or CAS is allowed to finish (its outcome is then known). */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.tickTimer);
    clearTimeout(this.collectorTimer);
    clearTimeout(this.vmsyncTimer);
    await this.queue.catch(() => undefined);
    await this.deps.vmsync?.close();
    await this.deps.collector.stop();
    await this.deps.health?.close();
  }

  /** Applies a new, already validated config (SIGHUP), or throws RELOAD_REFUSED keeping the running one (agent/reload.ts); returns the keys applied. */
  reload(next: Config): string[] {
    const plan = planReload(this.config, next);
    if (plan.restart.length) {
      throw new AgentError(
        'RELOAD_REFUSED',
        `cannot change ${plan.restart.join(', ')} by reload (built at start): restart the agent to apply ${plan.restart.length === 1 ? 'it' : 'them'}; nothing was changed`,
        ExitCode.CONFIG,
      );
    }
    this.config = next;
    this.core = coreConfig(next);
    return plan.apply;
  }

  hasVerifiedRead(): boolean {
    return this.state.seen !== null;
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private scheduleTick(delay = this.state.nextTickMs): void {
    if (!this.running) return;
    clearTimeout(this.tickTimer);
    this.tickTimer = setTimeout(() => {
      void this.enqueue(() => this.tick()).finally(() => this.scheduleTick());
    }, delay);
  }

  private scheduleCollector(delay = this.config.collector.interval): void {
    if (!this.running) return;
    this.collectorTimer = setTimeout(() => {
      void this.reconcileCollector().finally(() => this.scheduleCollector());
    }, delay);
  }

  private scheduleVmsync(delay: number): void {
    if (!this.running || !this.deps.vmsync) return;
    this.vmsyncTimer = setTimeout(() => {
      void this.syncNow().finally(() => this.scheduleVmsync(this.config.vmsync.interval));
    }, delay);
  }

  /**
   * One VM sync cycle with the context the witness gives: passive when the record names the other
   * site; the failover is the current lease epoch, from when we first saw it (minus two renewals,
   * since renewals move `at`). VmSync keeps the earliest start it has seen for an epoch.
   */
  async syncNow(): Promise<SyncReport | null> {
    const vm = this.deps.vmsync;
    if (!vm) return null;
    const named = namedSite(this.state.seen, this.core);
    const report = await vm.check({ passive: named !== undefined && named !== this.config.role, failover: this.epochSeen });
    this.deps.observer?.progress?.('vmsync', this.clock.now());
    return report;
  }

  private async reconcileCollector(): Promise<void> {
    const want = this.state.collector;
    if (want !== null) await this.deps.collector.reconcile(want);
    this.deps.observer?.progress?.('collector', this.clock.now());
  }

  private async readWitness(): Promise<Extract<Observation, { kind: 'tick' }>['dns']> {
    const t0 = this.clock.now();
    try {
      const snapshot = await this.deps.witness.read();
      this.deps.observer?.dnsRequest?.('read', (this.clock.now() - t0) / 1000);
      this.lastDnsError = null;
      return { ok: true, snapshot };
    } catch (err) {
      const code = err instanceof AgentError ? err.code : 'INTERNAL';
      const message = (err as Error).message;
      this.deps.observer?.dnsError?.(code);
      this.lastDnsError = `${code}: ${message}`;
      return { ok: false, code, message };
    }
  }

  private needsHealth(): boolean {
    return this.config.role === 'dr' && this.deps.health !== null && namedSite(this.state.seen, this.core) !== 'dr';
  }

  /** One iteration: observe, decide, act. */
  async tick(): Promise<void> {
    const [dns, health] = await Promise.all([this.readWitness(), this.needsHealth() ? this.deps.health!.check() : Promise.resolve(null)]);
    if (health) {
      this.lastHealthResult = health;
      this.deps.observer?.healthCheck?.(health.ok);
    }
    const collector = this.deps.collector.state();
    const obs: Observation = {
      kind: 'tick',
      dns,
      ...(health ? { health: { ok: health.ok, detail: health.detail } } : {}),
      ...(collector ? { collector } : {}),
    };
    await this.apply(decide(this.core, this.state, obs, this.clock.now()));
    this.deps.observer?.progress?.('decide', this.clock.now());
  }

  private async apply(d: { state: CoreState; actions: Action[] }): Promise<void> {
    const collectorBefore = this.state.collector;
    const heldBefore = this.state.heldEpoch;
    this.state = d.state;
    const lease = this.state.seen?.lease;
    if (lease && this.epochSeen?.epoch !== lease.epoch) {
      this.epochSeen = { epoch: lease.epoch, since: lease.at - Math.ceil((2 * this.config.lease.renew_interval) / 1000) };
    }
    if (this.deps.stateDir && this.state.heldEpoch !== heldBefore) {
      await saveHeldEpoch(this.deps.stateDir, this.state.heldEpoch).catch((err: Error) =>
        this.deps.logger.error(`cannot persist the held epoch: ${err.message}`, { event: 'state_write_failed' }),
      );
    }
    for (const a of d.actions) {
      if (a.type === 'log') {
        this.deps.logger[a.level](a.msg, a.fields);
        if (a.level !== 'debug' && a.level !== 'info') this.event(String(a.fields.event ?? a.type), a.msg);
      } else if (a.type === 'notify') {
        this.deps.observer?.notify?.(a.event, a.text);
      } else if (a.type === 'cas') {
        const outcome = await this.write(a.op, () =>
          a.op === 'renew'
            ? this.deps.witness.renew(a.seen, this.clock.wallSeconds())
            : this.deps.witness.transfer(a.seen, 'dr', this.config.sites, this.clock.wallSeconds()),
        );
        await this.apply(decide(this.core, this.state, outcome, this.clock.now()));
      }
    }
    // A change of desired collector state is acted on now, not at the next collector tick.
    if (this.state.collector !== collectorBefore && this.state.collector !== null) {
      void this.reconcileCollector();
    }
  }

  /** Performs a CAS and turns its outcome into an observation. */
  private async write(op: WriteOp, fn: () => Promise<WriteResult>): Promise<Extract<Observation, { kind: 'write' }>> {
    try {
      const r = await fn();
      this.deps.observer?.dnsRequest?.('update', r.rttMs / 1000);
      this.deps.observer?.write?.(op, 'ok');
      this.lastWrite = { op, ok: true, at: new Date().toISOString(), detail: r.recovered ? 'applied (answer lost, confirmed by re-read)' : 'applied' };
      return { kind: 'write', op, outcome: { ok: true, snapshot: r.snapshot, sentAt: r.sentAt } };
    } catch (err) {
      const conflict = err instanceof DnsError && err.code === 'DNS_PREREQ_FAILED';
      const code = err instanceof AgentError ? err.code : 'INTERNAL';
      this.deps.observer?.write?.(op, conflict ? 'conflict' : 'error');
      this.deps.observer?.dnsError?.(code);
      this.lastWrite = { op, ok: false, at: new Date().toISOString(), detail: `${code}: ${(err as Error).message}` };
      return { kind: 'write', op, outcome: { ok: false, conflict, code, message: (err as Error).message } };
    }
  }

  private event(event: string, text: string): void {
    this.events.push({ at: new Date().toISOString(), event, text });
    if (this.events.length > MAX_EVENTS) this.events.shift();
  }

  /** The failback gate for the failover of `epoch` (default: the lease epoch last read). */
  private gate(epoch: number | null = this.state.seen?.lease?.epoch ?? null): FailbackGate {
    if (this.deps.gate) return this.deps.gate();
    if (this.deps.vmsync) return this.deps.vmsync.failbackGate(epoch);
    return this.config.vmsync.enabled
      ? { ready: false, detail: 'VM sync is enabled but this build has no sync loop yet: FAILBACK READY cannot be reached (use --force)' }
      : { ready: true, detail: 'vmsync disabled: no data gate' };
  }

  /** `failoverctl sync`: a VM sync cycle now, and the gate after it. */
  async sync(): Promise<SyncResult> {
    const report = await this.syncNow();
    return { report, status: this.deps.vmsync?.status() ?? null, gate: this.gate() };
  }

  /** failback / switchover, executed by this agent (serialised with the ticks). */
  admin(op: AdminOp, opts: { force: boolean; dryRun: boolean }): Promise<AdminResult> {
    return this.enqueue(async () => {
      // The active site keeps renewing: a conflict means it renewed between our read and our
      // CAS. Re-read and re-plan (preconditions checked again), a bounded number of times.
      for (let attempt = 1; ; attempt++) {
        const seen = await this.deps.witness.read();
        const plan = planAdmin(op, this.config, seen, this.gate(seen.lease?.epoch ?? null), this.deps.collector.state(), this.clock.wallSeconds(), opts.force);
        const result: AdminResult = {
          op,
          done: false,
          dryRun: opts.dryRun,
          forced: opts.force,
          refused: plan.refused,
          plan: plan.plan,
          preconditions: plan.preconditions,
          via: 'agent',
        };
        if (plan.refused && !opts.dryRun) {
          // The journal keeps the operator's attempt and why it was refused, not only the request.
          this.deps.logger.notice(`${op} refused: ${plan.refused}`, { event: `${op}_refused` });
        }
        if (opts.dryRun || plan.refused) return result;
        if (opts.force && plan.preconditions.some((p) => !p.ok)) {
          this.deps.logger.warning(`${op} forced past failed preconditions`, {
            event: `${op}_forced`,
            failed: plan.preconditions.filter((p) => !p.ok).map((p) => p.name).join(','),
          });
        }
        const outcome = await this.write(op, () => this.deps.witness.transfer(seen, plan.to, this.config.sites, this.clock.wallSeconds()));
        await this.apply(decide(this.core, this.state, outcome, this.clock.now()));
        if (outcome.outcome.ok) {
          result.done = true;
          return result;
        }
        const o = outcome.outcome;
        if (!o.conflict || attempt >= ADMIN_ATTEMPTS) {
          throw new AgentError(o.code, `${op} not applied: ${o.message}`, o.conflict ? ExitCode.REFUSED : ExitCode.UNAVAILABLE);
        }
      }
    });
  }

  status(): AgentStatus {
    const s = this.state;
    const now = this.clock.now();
    const seen = s.seen;
    const named = namedSite(seen, this.core);
    const me = this.config.role;
    const valid = holdsValidLease(this.core, s, now);
    const collectorState = this.deps.collector.state();
    const [healthy, unhealthyReason] = siteHealth(this.core, s, now, collectorState);
    const age = (t: number | null): number | null => (t === null ? null : Math.round((now - t) / 100) / 10);
    return {
      instance: this.config.instance,
      role: me,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      build: this.deps.build ?? buildInfo('none'),
      phase: s.phase,
      active: named === me && valid,
      decision: s.decision,
      reason: s.reason,
      sites: (['primary', 'dr'] as const).map((role) => ({ role, address: this.config.sites[role], named: named === role })),
      dns: {
        server: this.deps.server,
        zone: this.deps.zone,
        record: this.config.dns.record,
        addresses: seen?.addresses ?? [],
        readAgeSeconds: age(s.seenAt),
        consecutiveFailures: s.dnsFailures,
        lastError: this.lastDnsError,
        offsetSeconds: seen?.offsetSeconds ?? null,
      },
      lease: {
        holder: seen?.lease?.holder ?? null,
        epoch: seen?.lease?.epoch ?? null,
        seq: seen?.lease?.seq ?? null,
        unchangedSeconds: age(s.leaseSince),
        ownAgeSeconds: age(s.ownSentAt),
        error: seen?.leaseError ?? null,
      },
      health: {
        consecutiveFailures: me === 'dr' ? s.healthFailures : null,
        threshold: this.config.health.failures,
        last: me === 'dr' ? (this.lastHealthResult?.detail ?? s.lastHealth) : null,
      },
      collector: {
        control: this.config.collector.control,
        unit: this.config.collector.unit,
        desired: s.collector,
        state: collectorState,
        lastError: this.deps.collector.lastError(),
      },
      vmsync: this.deps.vmsync?.status() ?? null,
      lastWrite: this.lastWrite,
      takeovers: s.takeovers,
      events: [...this.events],
      healthy,
      unhealthyReason,
    };
  }

  /** /healthz: running, holding the lease if the record names us, and the collector as it should be. */

}
