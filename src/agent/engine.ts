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
import type { AdminResult, AgentStatus, ControlHandler, RecentEvent, SyncResult } from '../control/protocol.js';
import type { AdminOp, FailbackGate } from '../core/admin.js';
import { runAdmin } from '../admin/run.js';
import { chooseFailbackGate, failoverStart, type FailoverStart } from '../core/failback-gate.js';
import { decide, readiness, holdsValidLease, initialState, leaseWindow, namedSite, siteHealth, type Action, type CoreConfig, type CoreState, type Observation, type PeerReport, type WriteOp } from '../core/decide.js';
import type { PeerPort } from '../health/peer.js';
import type { CollectorPort } from '../collector/port.js';
import { DnsError } from '../dns/errors.js';
import { AgentError, ExitCode } from '../errors.js';
import type { HealthChecker, HealthResult } from '../health/checks.js';
import { planReload } from './reload.js';
import type { Logger } from '../log/logger.js';
import { renewalOf, transferOf, type Intended, type Snapshot, type WriteResult } from '../lease/witness.js';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { buildInfo, type BuildInfo } from '../build-info.js';
import type { CheckContext, SyncReport, VmSyncStatus } from '../vmsync/sync.js';
import type { PropagationPort } from '../propagation/verifier.js';

/** What the engine needs from the witness (Witness implements it). */
export interface WitnessPort {
  read(): Promise<Snapshot>;
  /** One CAS: `next` if the witness still holds exactly `seen`; `copies` 2: sent twice at once (a lossy path), the first applied counts. */
  write(seen: Snapshot, next: Intended, copies?: 1 | 2): Promise<WriteResult>;
}

/** Where the held epoch persists across restarts (agent/lease-state.ts keeps it in the state directory). */
export interface LeaseStore {
  load(): Promise<number | null>;
  save(heldEpoch: number | null): Promise<void>;
}

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
  /** Replaces the failback gate (the simulator, tests); default: chooseFailbackGate over `vmsync` (core/failback-gate.ts). */
  gate?: () => FailbackGate;
  /** Where the held epoch persists across restarts; none: not persisted (tests). */
  leaseStore?: LeaseStore;
  /** VM sync (vmsync.enabled); its own loop runs every vmsync.interval. */
  vmsync?: VmSyncPort | null;
  /** Version, Node and sd_notify path, reported in the status (default: notify `none`). */
  build?: BuildInfo;
  /**
   * The propagation check (propagation/verifier.ts): told each value read and each write of the
   * record, reported in the status. Informational only: nothing of it reaches `decide`.
   */
  propagation?: PropagationPort | null;
  /** The other site's agent (health.peer_targets): asked every health.interval whether it could take the job. */
  peer?: PeerPort | null;
  /** collector.probe, checked every collector.interval while the collector should run. */
  probe?: HealthChecker | null;
  /** The signing context's state for the status (GSS-TSIG); none with HMAC TSIG. */
  signing?: SigningStatusPort | null;
}

/**
 * How DNS messages are signed, as the status shows it: GssSession provides it under
 * dns.auth = "gss-tsig" (the engine only passes it through; it knows nothing of GSS).
 */
export interface SigningStatusPort {
  status(): NonNullable<AgentStatus['gss']>;
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
/**
 * A holder renews by CAS on what its own last write left, reading first only every this many
 * renewals (the control record, the server's clock offset and the status stay fresh) and after a
 * conflict (someone else wrote: the CAS said so).
 */
const READ_EVERY_RENEWALS = 5;
/**
 * After a DNS exchange failed (a lossy path), renewals go out as two copies at once for this long:
 * the CAS prerequisite makes the second harmless (it finds the first applied: Witness.write settles
 * it as ours, or ignores it once the first is confirmed), and a round is then lost only when both are (issue 21).
 */
const HEDGE_AFTER_TROUBLE_MS = 10 * 60_000;

export function coreConfig(c: Config): CoreConfig {
  return {
    role: c.role,
    sites: c.sites,
    lease: c.lease,
    health: { interval: c.health.interval, failures: c.health.failures, timeout: c.health.timeout },
    collector: {
      control: c.collector.control,
      mode: c.collector.mode,
      self_fence: c.collector.self_fence,
      handover: c.collector.handover,
      restart_limit: c.collector.restart_limit,
      handover_after: c.collector.handover_after,
      handover_hold: c.collector.handover_hold,
    },
    dns: { budget: c.dns.timeout * (c.dns.retries + 1) },
  };
}

export class Engine implements ControlHandler {
  private config: Config;
  private core: CoreConfig;
  private state: CoreState;
  private readonly clock: Clock;
  private readonly startedAt: Date;
  private queue: Promise<unknown> = Promise.resolve();
  private tickTimer: TimerHandle | undefined;
  private collectorTimer: TimerHandle | undefined;
  private vmsyncTimer: TimerHandle | undefined;
  /** At the next boundary of our lease window (it starts to count, or runs out). */
  private leaseTimer: TimerHandle | undefined;
  /** The boundary (monotonic ms) `leaseTimer` is armed for: a renewal that leaves it unchanged keeps the timer. */
  private leaseTimerAt: number | null = null;
  /** The current failover (lease epoch, its start in unix s) as this site can know it (core/failback-gate.ts). */
  private failover: FailoverStart | null = null;
  private running = false;
  private lastDnsError: string | null = null;
  /** The last CAS (its time on the wall clock, formatted only when the status is asked for). */
  private lastWrite: { op: string; ok: boolean; wallMs: number; detail: string } | null = null;
  private events: RecentEvent[] = [];
  private lastHealthResult: HealthResult | null = null;
  private peerTimer: TimerHandle | undefined;
  /** The other site's last answer, and when it was asked for (monotonic ms). */
  private peerReport: { report: PeerReport; atMs: number } | null = null;
  /** Since when collector.probe has failed without a pass (monotonic ms), and its last words. */
  private probeFailingSince: number | null = null;
  private probeDetail: string | undefined;
  private handovers = 0;
  /** The outcome of this agent's last CAS, and the renewals sent since the last read. */
  private lastWriteOutcome: 'ok' | 'conflict' | 'error' | null = null;
  /** When a DNS read or write last failed other than by a conflict (monotonic ms): renewals are hedged for a while after. */
  private dnsTroubleAt: number | null = null;
  private unreadRenewals = 0;

  constructor(private readonly deps: EngineDeps) {
    this.config = deps.config;
    this.core = coreConfig(deps.config);
    this.state = initialState(this.core);
    this.clock = deps.clock ?? systemClock;
    this.startedAt = new Date(this.clock.wallMs());
  }

  /** First tick (so READY means "we have read DNS"), then the loops. Resolves after the first verified read. */
  async start(): Promise<void> {
    this.running = true;
    if (this.deps.leaseStore) this.state = initialState(this.core, { heldEpoch: await this.deps.leaseStore.load() });
    await this.deps.collector.start();
    // systemd's signals, not only the reconcile poll: a holder looks at its collector again at once.
    this.deps.collector.onChange(() => {
      if (this.running && namedSite(this.state.seen, this.core) === this.config.role) this.scheduleTick(0);
    });
    await this.deps.vmsync?.load();
    await this.enqueue(() => this.tick());
    this.scheduleTick();
    this.scheduleCollector(0);
    this.schedulePeer(0);
    this.scheduleVmsync(this.config.vmsync.interval);
  }

  /** Stops the loops; an in-flight tick or CAS is allowed to finish (its outcome is then known). */
  async stop(): Promise<void> {
    this.running = false;
    this.clock.cancel(this.tickTimer);
    this.clock.cancel(this.collectorTimer);
    this.clock.cancel(this.vmsyncTimer);
    this.clock.cancel(this.leaseTimer);
    this.clock.cancel(this.peerTimer);
    await this.queue.catch(() => undefined);
    await this.deps.vmsync?.close();
    await this.deps.collector.stop();
    await this.deps.health?.close();
    await this.deps.peer?.close();
    await this.deps.probe?.close();
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

  /**
   * When this site's lease counts as valid, on its monotonic clock: from `from` until `until` (both
   * ms), as the core judges it now; null when it holds no lease. The simulator checks that two sites'
   * windows never overlap.
   */
  leaseWindow(): { from: number; until: number } | null {
    return leaseWindow(this.core, this.state);
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
    this.clock.cancel(this.tickTimer);
    this.tickTimer = this.clock.setTimer(() => {
      void this.enqueue(() => this.tick()).finally(() => this.scheduleTick());
    }, delay);
  }

  private scheduleCollector(delay = this.config.collector.interval): void {
    if (!this.running) return;
    this.collectorTimer = this.clock.setTimer(() => {
      void this.reconcileCollector().finally(() => this.scheduleCollector());
    }, delay);
  }

  /** The other site's readiness, every health.interval, in its own loop: a dead peer never delays a renewal. */
  private schedulePeer(delay: number): void {
    const peer = this.deps.peer;
    if (!this.running || !peer || this.config.collector.control === 'none') return;
    this.peerTimer = this.clock.setTimer(() => {
      // The answer's age counts from the ask: the other site answered after it. Counted from the
      // answer's arrival, one held up (in this process, stopped meanwhile) looked fresh however
      // old it was (found by the simulator: a DR frozen 25 s handed the job to a primary that had
      // been frozen for the last 17 of them, on its answer from before).
      const askedAt = this.clock.monotonicMs();
      void peer
        .check()
        .then((report) => {
          this.peerReport = { report, atMs: askedAt };
        })
        .finally(() => this.schedulePeer(this.config.health.interval));
    }, delay);
  }

  /** The peer's last answer while it is fresh (asked within two of its intervals and a timeout); older says nothing. */
  private freshPeer(): PeerReport | undefined {
    const p = this.peerReport;
    const maxAge = 2 * this.config.health.interval + this.config.health.timeout;
    return p && this.clock.monotonicMs() - p.atMs <= maxAge ? p.report : undefined;
  }

  private scheduleVmsync(delay: number): void {
    if (!this.running || !this.deps.vmsync) return;
    this.vmsyncTimer = this.clock.setTimer(() => {
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
    const report = await vm.check({ passive: named !== undefined && named !== this.config.role, failover: this.failover });
    this.deps.observer?.progress?.('vmsync', this.clock.monotonicMs());
    return report;
  }

  private async reconcileCollector(): Promise<void> {
    const want = this.state.collector;
    if (want !== null) await this.deps.collector.reconcile(want);
    await this.checkProbe(want);
    this.deps.observer?.progress?.('collector', this.clock.monotonicMs());
  }

  private async readWitness(): Promise<Extract<Observation, { kind: 'tick' }>['dns']> {
    const t0 = this.clock.monotonicMs();
    try {
      const snapshot = await this.deps.witness.read();
      this.deps.observer?.dnsRequest?.('read', (this.clock.monotonicMs() - t0) / 1000);
      this.lastDnsError = null;
      this.deps.propagation?.seen(snapshot.addresses);
      return { ok: true, snapshot };
    } catch (err) {
      const code = err instanceof AgentError ? err.code : 'INTERNAL';
      const message = (err as Error).message;
      this.deps.observer?.dnsError?.(code);
      this.lastDnsError = `${code}: ${message}`;
      this.dnsTroubleAt = this.clock.monotonicMs();
      return { ok: false, code, message };
    }
  }

  /** collector.probe while the collector should run; its failing streak is evidence for the core. */
  private async checkProbe(want: 'running' | 'stopped' | null): Promise<void> {
    const probe = this.deps.probe;
    if (!probe || want !== 'running') {
      this.probeFailingSince = null;
      return;
    }
    const r = await probe.check();
    if (r.ok) this.probeFailingSince = null;
    else this.probeFailingSince ??= this.clock.monotonicMs();
    this.probeDetail = r.ok ? undefined : r.detail;
  }

  /** A DR checks the primary while the record (as it last read it) does not name the DR. */
  private checkHealth(seen: Snapshot | null): Promise<HealthResult> | null {
    return this.config.role === 'dr' && this.deps.health !== null && namedSite(seen, this.core) !== 'dr' ? this.deps.health.check() : null;
  }

  /**
   * The holder's renewal needs no read when its own last write succeeded: a round is ONE exchange
   * on a lossy path. Anyone else's change fails the CAS, and the next tick reads. After a write
   * whose answer never came it reads (soon: the core's retry), since the read confirms a renewal
   * that was applied (a path that loses update answers may still carry reads).
   */
  private assumeOwnWrite(): Extract<Observation, { kind: 'tick' }>['dns'] | null {
    const seen = this.state.seen;
    const holder = seen !== null && namedSite(seen, this.core) === this.config.role && seen.lease?.holder === this.config.role;
    if (!holder || this.lastWriteOutcome !== 'ok' || this.unreadRenewals >= READ_EVERY_RENEWALS - 1) return null;
    this.unreadRenewals++;
    return { ok: true, snapshot: seen, assumed: true };
  }

  /** One iteration: observe, decide, act. */
  async tick(): Promise<void> {
    // Before its first verified read a DR does not know who is named: it reads first and checks
    // the primary only if the record does not name it, so a restarted ACTIVE DR neither waits for
    // nor loads a health checker it does not use (docs/PERFORMANCE.md). After that, in parallel.
    const assumed = this.assumeOwnWrite();
    if (!assumed) this.unreadRenewals = 0;
    const [dns, health] = assumed
      ? [assumed, null]
      : this.state.seen === null
        ? await this.readWitness().then(async (d) => [d, await this.checkHealth(d.ok ? d.snapshot : null)] as const)
        : await Promise.all([this.readWitness(), this.checkHealth(this.state.seen)]);
    if (health) {
      this.lastHealthResult = health;
      this.deps.observer?.healthCheck?.(health.ok);
    }
    const collector = this.deps.collector.state();
    const peer = this.freshPeer();
    const evidence = collector
      ? { unit: collector, crashes: this.deps.collector.crashes(), probeFailingSince: this.probeFailingSince, ...(this.probeDetail ? { probeDetail: this.probeDetail } : {}) }
      : undefined;
    const obs: Observation = {
      kind: 'tick',
      dns,
      ...(health ? { health: { ok: health.ok, detail: health.detail } } : {}),
      ...(collector ? { collector } : {}),
      ...(evidence ? { evidence } : {}),
      ...(peer ? { peer } : {}),
      wallSeconds: this.clock.wallMs() / 1000,
    };
    await this.apply(decide(this.core, this.state, obs, this.clock.monotonicMs()));
    this.deps.observer?.progress?.('decide', this.clock.monotonicMs());
  }

  private async apply(d: { state: CoreState; actions: Action[] }): Promise<void> {
    const collectorBefore = this.state.collector;
    const heldBefore = this.state.heldEpoch;
    const handedBefore = this.state.lastHandover?.epoch;
    this.state = d.state;
    const h = this.state.lastHandover;
    // The job came to us by a handover, past the failback gate: the VM sync check runs now, its result shown.
    if (h && h.epoch !== handedBefore && h.to === this.config.role && h.epoch === this.state.seen?.lease?.epoch) void this.syncNow();
    this.failover = failoverStart(this.failover, this.state.seen?.lease, this.config.lease.renew_interval);
    if (this.deps.leaseStore && this.state.heldEpoch !== heldBefore) {
      await this.deps.leaseStore.save(this.state.heldEpoch).catch((err: Error) =>
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
        const wall = this.clock.wallMs() / 1000;
        // Automatic moves carry the control record as read (a pause since then fails them at the witness).
        const plan = (): Intended =>
          a.op === 'handover'
            ? { ...transferOf(a.seen, a.to, this.config.sites, wall), guardControl: true, control: a.control }
            : a.op === 'takeover'
              ? { ...transferOf(a.seen, 'dr', this.config.sites, wall), guardControl: true }
              : renewalOf(a.seen, wall);
        const { obs } = await this.write(a.op, a.seen, plan);
        // failover_handovers_total reads this count from the status.
        if (a.op === 'handover' && obs.outcome.ok) this.handovers++;
        await this.apply(decide(this.core, this.state, obs, this.clock.monotonicMs()));
        // The job moved without the failback gate: the VM sync check runs now and its result is shown.
        if (a.op === 'handover' && obs.outcome.ok) void this.syncNow();
      }
    }
    // A change of desired collector state is acted on now, not at the next collector tick.
    if (this.state.collector !== collectorBefore && this.state.collector !== null) {
      void this.reconcileCollector();
    }
    this.armLeaseTimer();
  }

  /** The core hears of our lease window's next boundary when it comes (a 'clock' observation), whatever a tick is doing. */
  private armLeaseTimer(): void {
    const w = leaseWindow(this.core, this.state);
    const now = this.clock.monotonicMs();
    const next = w && this.running ? (now < w.from ? w.from : w.until) : null;
    if (next !== null && next === this.leaseTimerAt) return; // armed for that boundary already
    this.clock.cancel(this.leaseTimer);
    this.leaseTimer = undefined;
    this.leaseTimerAt = null;
    if (next === null || next <= now) return; // no lease, or run out already: nothing left to wait for
    this.leaseTimerAt = next;
    this.leaseTimer = this.clock.setTimer(() => {
      this.leaseTimer = undefined;
      this.leaseTimerAt = null;
      void this.apply(decide(this.core, this.state, { kind: 'clock' }, this.clock.monotonicMs()));
    }, next - now);
  }

  /**
   * Performs a CAS on `seen` and turns its outcome into an observation. Lease time counts from
   * `sentAt`, taken on the engine's clock just before the first send (the conservative bound);
   * a failed write reports what it tried to set, so a later read can confirm it.
   */
  private async write(op: WriteOp, seen: Snapshot, plan: () => Intended): Promise<{ obs: Extract<Observation, { kind: 'write' }>; error?: unknown }> {
    let next: Intended | undefined;
    const sentAt = this.clock.monotonicMs();
    try {
      next = plan();
      const intended = next;
      const hedge = op === 'renew' && this.dnsTroubleAt !== null && sentAt - this.dnsTroubleAt < HEDGE_AFTER_TROUBLE_MS;
      const r = await this.deps.witness.write(seen, intended, hedge ? 2 : 1);
      this.deps.observer?.dnsRequest?.('update', r.rttMs / 1000);
      this.deps.observer?.write?.(op, 'ok');
      // A renewal rewrites the same address: only a move of the record starts a propagation round.
      if (op !== 'renew') this.deps.propagation?.written(r.snapshot.addresses, op, sentAt);
      this.lastWrite = { op, ok: true, wallMs: this.clock.wallMs(), detail: r.recovered ? 'applied (answer lost, confirmed by re-read)' : 'applied' };
      this.lastWriteOutcome = 'ok';
      return { obs: { kind: 'write', op, outcome: { ok: true, snapshot: r.snapshot, sentAt } } };
    } catch (err) {
      const conflict = err instanceof DnsError && err.code === 'DNS_PREREQ_FAILED';
      const code = err instanceof AgentError ? err.code : 'INTERNAL';
      this.deps.observer?.write?.(op, conflict ? 'conflict' : 'error');
      this.deps.observer?.dnsError?.(code);
      this.lastWrite = { op, ok: false, wallMs: this.clock.wallMs(), detail: `${code}: ${(err as Error).message}` };
      this.lastWriteOutcome = conflict ? 'conflict' : 'error';
      if (!conflict) this.dnsTroubleAt = this.clock.monotonicMs();
      const attempted = next && !conflict ? { attempted: { lease: next.lease, sentAt } } : {};
      return { obs: { kind: 'write', op, outcome: { ok: false, conflict, code, message: (err as Error).message, ...attempted } }, error: err };
    }
  }

  private event(event: string, text: string): void {
    this.events.push({ at: new Date(this.clock.wallMs()).toISOString(), event, text });
    if (this.events.length > MAX_EVENTS) this.events.shift();
  }

  /** The failback gate for the failover of `epoch` (default: the lease epoch last read). */
  private gate(epoch: number | null = this.state.seen?.lease?.epoch ?? null): FailbackGate {
    if (this.deps.gate) return this.deps.gate();
    return chooseFailbackGate(this.config.vmsync.enabled, this.deps.vmsync?.failbackGate(epoch) ?? null);
  }

  /** `failoverctl sync`: a VM sync cycle now, and the gate after it. */
  async sync(): Promise<SyncResult> {
    const report = await this.syncNow();
    return { report, status: this.deps.vmsync?.status() ?? null, gate: this.gate() };
  }

  /** failback / switchover, executed by this agent (serialised with the ticks; the core hears each outcome). */
  admin(op: AdminOp, opts: { force: boolean; dryRun: boolean }): Promise<AdminResult> {
    return this.enqueue(() =>
      runAdmin(op, this.config, opts, 'agent', {
        read: () => this.deps.witness.read(),
        gate: (epoch) => this.gate(epoch),
        collector: () => this.deps.collector.state(),
        wallSeconds: () => this.clock.wallMs() / 1000,
        logger: this.deps.logger,
        write: async (seen, next) => {
          const { obs, error } = await this.write(op, seen, () => next);
          await this.apply(decide(this.core, this.state, obs, this.clock.monotonicMs()));
          const o = obs.outcome;
          return o.ok ? { ok: true } : o.conflict ? { ok: false, conflict: true } : { ok: false, conflict: false, error };
        },
      }),
    );
  }

  status(): AgentStatus {
    const s = this.state;
    const now = this.clock.monotonicMs();
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
      gss: this.deps.signing?.status() ?? null,
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
      propagation: this.deps.propagation?.status() ?? null,
      lastWrite: this.lastWrite && { op: this.lastWrite.op, ok: this.lastWrite.ok, at: new Date(this.lastWrite.wallMs).toISOString(), detail: this.lastWrite.detail },
      takeovers: s.takeovers,
      job: this.jobStatus(collectorState),
      events: [...this.events],
      healthy,
      unhealthyReason,
    };
  }

  /** /healthz's verdict alone, as status() has it (the simulator's health check asks it often). */
  healthy(): boolean {
    return siteHealth(this.core, this.state, this.clock.monotonicMs(), this.deps.collector.state())[0];
  }

  /** The job's part of status() alone (what a peer's readiness probe needs), without the rest's copies. */
  job(): AgentStatus['job'] {
    return this.jobStatus(this.deps.collector.state());
  }

  private readonly isoMemo = new Map<number, string>();

  private jobStatus(collector: ReturnType<CollectorPort['state']>): AgentStatus['job'] {
    const s = this.state;
    const r = readiness(this.core, s, collector);
    const isoS = (t: number): string => {
      // The same instants on every probe of /healthz: formatted once.
      let v = this.isoMemo.get(t);
      if (v === undefined) {
        if (this.isoMemo.size >= 16) this.isoMemo.clear();
        v = new Date(t * 1000).toISOString();
        this.isoMemo.set(t, v);
      }
      return v;
    };
    const p = this.peerReport;
    return {
      collectorBroken: s.collectorBroken,
      noSiteCanCollect: s.noSiteCanCollect,
      ready: r.ready,
      readyDetail: r.detail,
      peer: p && this.freshPeer() ? { ready: p.report.ready, detail: p.report.detail, collectorBroken: p.report.collectorBroken, ageSeconds: Math.round((this.clock.monotonicMs() - p.atMs) / 100) / 10 } : null,
      pause: s.paused && { by: s.paused.by, since: isoS(s.paused.since), until: s.paused.until === null ? null : isoS(s.paused.until), reason: s.paused.reason },
      lastHandover: s.lastHandover && { ...s.lastHandover, at: isoS(s.lastHandover.at) },
      handovers: this.handovers,
    };
  }

}
