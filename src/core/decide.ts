/**
 * The decision core: a pure function from (config, state, observation, now)
 * to (state, actions). No I/O, no clocks of its own: `now` is the caller's
 * monotonic time in ms, so tests drive it with a fake clock.
 *
 * Rules (SPEC §3):
 * - The holder of the lease renews it while the record names it (CAS).
 * - The primary never writes on its own when the record names the DR (no preemption).
 * - The DR takes over only when `health.failures` consecutive checks failed AND it has
 *   READ the same lease seq for `lease.ttl + lease.max_skew` on its own clock with no read
 *   gap (a failed or unverified read, or a stall longer than `readGapMs` between two reads,
 *   restarts that window: time it did not watch is not time the lease went unrenewed), AND its
 *   self-check passes (DNS readable, own collector not
 *   failed or missing).
 * - A holder treats its lease as lost `lease.ttl - lease.max_skew` after the SEND of its
 *   last confirmed write; with `collector.self_fence` it then stops collecting.
 * - A read that shows exactly the lease we last tried to write (same holder, epoch and seq)
 *   confirms that write although its answer was lost, counted from its FIRST send.
 * - DNS unreachable or unverified: keep the current state, never act on missing data.
 * - A conflict (prerequisite failed) means someone else moved: re-read, never retry blindly.
 */
import type { Snapshot } from '../lease/witness.js';
import { siteOf } from '../lease/witness.js';
import type { Lease, Role } from '../lease/lease.js';
import { formatControl, pauseInForce, type Control, type Handover, type Pause } from '../lease/control.js';

export interface CoreConfig {
  role: Role;
  sites: { primary: string; dr: string };
  lease: { ttl: number; renew_interval: number; max_skew: number };
  health: { interval: number; failures: number; timeout: number };
  collector: {
    control: 'systemd' | 'none';
    mode: 'when-active' | 'always';
    self_fence: boolean;
    /** Hand the job over when our collector is broken (ms below). */
    handover: boolean;
    restart_limit: number;
    handover_after: number;
    handover_hold: number;
  };
  /** The most one DNS exchange may take (dns.timeout × attempts), ms: a tick slower than that (or than a health check) is a stall. */
  dns: { budget: number };
}

/** Scheduling slack on top of a tick's cadence and its read before the gap between two reads counts as a stall. */
const STALL_SLACK_MS = 1000;

/**
 * A holder whose read or renewal failed tries again after this long, not a whole renew_interval:
 * its lease runs out ttl - max_skew after its last confirmed send, and a lost exchange has already
 * cost it a DNS budget (README "Tuning for a lossy WAN"). Never sooner: a server that refuses at
 * once must not be asked in a tight loop.
 */
export const HOLDER_RETRY_MS = 250;

/** What estimating the server's clock from whole-second offsets can err by, twice over (s). */
const HOLD_CLOCK_SLACK_S = 4;

/**
 * Longer than this between two good reads is a read gap too (the process was paused, a GC or the
 * machine stalled): as after a failed read, what the lease did meanwhile was not watched. A tick
 * waits its cadence, then reads (at most one DNS budget) while the health check runs (at most its
 * timeout): only more than that, plus slack, is a stall. A check that hangs is never one.
 */
export function readGapMs(config: CoreConfig): number {
  return Math.max(config.lease.renew_interval, config.health.interval) + Math.max(config.dns.budget, config.health.timeout) + STALL_SLACK_MS;
}

/** What the agent is doing, for status lines and metrics. */
export type Phase =
  | 'starting' // no verified read yet
  | 'active' // the record names us and we hold a valid lease
  | 'pending' // the record names us, renewals confirmed, but our lease does not count yet (ttl + max_skew wait, or no renewal confirmed yet)
  | 'standby' // the record names the other site
  | 'monitoring' // DR watching an active primary
  | 'fenced' // we should be active but our lease is lost (last confirmed renewal older than ttl - max_skew)
  | 'holding'; // the witness is unreadable or inconsistent: change nothing

export type CollectorState = 'active' | 'inactive' | 'activating' | 'deactivating' | 'failed' | 'missing' | 'unknown';

export type WriteOp = 'renew' | 'takeover' | 'handover' | 'failback' | 'switchover' | 'init';

/** What the engine saw of this site's own collector (the core judges it: `collectorVerdict`). */
export interface CollectorEvidence {
  unit: CollectorState;
  /** Monotonic ms of the unit's recent crashes (it left `active` other than by our stop, or systemd restarted it). */
  crashes: number[];
  /** Monotonic ms since the local probe (`collector.probe`) has failed without a pass; null: passing or no probe. */
  probeFailingSince: number | null;
  probeDetail?: string;
}

/** The other site as its agent last answered (health.peer_targets); `ready`: it could take the job now. */
export interface PeerReport {
  ready: boolean;
  detail: string;
  /** The other site's own verdict on ITS collector (null: fine, or not judged). */
  collectorBroken: string | null;
}

export type Observation =
  | {
      kind: 'tick';
      /**
       * The witness as read this tick, or why it could not be read. `assumed`: not read: the holder
       * renews by CAS on what its own last write left (the CAS itself checks it; a conflict makes
       * the next tick read), so a renewal round is one exchange, not a read and a write.
       */
      dns: { ok: true; snapshot: Snapshot; assumed?: true } | { ok: false; code: string; message: string };
      /** DR only: this tick's health check of the primary (undefined: none ran). */
      health?: { ok: boolean; detail: string };
      /** The collector unit's state as last seen (undefined with control = none). */
      collector?: CollectorState;
      /** Our collector's health as last seen (undefined with control = none). */
      evidence?: CollectorEvidence;
      /** The other site's agent as last asked (undefined: no fresh answer). */
      peer?: PeerReport;
      /** Our wall clock (unix s), for the pause and the handover hold (the control record's times). */
      wallSeconds?: number;
    }
  | {
      /** No news, only time: the engine's timer at a boundary of our lease window (it starts counting, or runs out). */
      kind: 'clock';
    }
  | {
      kind: 'write';
      op: WriteOp;
      outcome:
        | { ok: true; snapshot: Snapshot; sentAt: number }
        | {
            ok: false;
            conflict: boolean;
            code: string;
            message: string;
            /** What the write tried to set and when it was first sent (monotonic ms): a later read may show it applied. */
            attempted?: { lease: Lease; sentAt: number };
          };
    };

export type Action =
  | { type: 'cas'; op: 'renew' | 'takeover'; seen: Snapshot }
  | { type: 'cas'; op: 'handover'; seen: Snapshot; to: Role; control: string[] | null }
  | { type: 'log'; level: 'error' | 'warning' | 'notice' | 'info' | 'debug'; msg: string; fields: Record<string, unknown> }
  | { type: 'notify'; event: 'failover' | 'failback' | 'switchover' | 'handover' | 'collector-broken' | 'fenced' | 'dns-unreachable'; text: string };

export interface CoreState {
  phase: Phase;
  /** The last verified snapshot and when it was read (monotonic ms). */
  seen: Snapshot | null;
  seenAt: number | null;
  /** Consecutive failed reads or writes of the witness. */
  dnsFailures: number;
  /**
   * Lease progress as observed: `epoch/seq` and since when we have READ it unchanged with no
   * read gap (monotonic ms; null after a failed or unverified read: the next good read restarts it).
   */
  leaseKey: string | null;
  leaseSince: number | null;
  /** Monotonic ms of the first good read after a failed or unverified one (null: none since start). */
  readableAgainAt: number | null;
  /**
   * Our last write whose outcome is unknown (answer lost): the lease it tried to set and the send
   * of its FIRST attempt. A read showing exactly that lease confirms it from that send.
   */
  unconfirmed: { op: WriteOp; holder: Role; epoch: number; seq: number; sentAt: number } | null;
  /** Send time (monotonic ms) of our last CONFIRMED write that left us holding the lease. */
  ownSentAt: number | null;
  /**
   * The epoch in which our holding is established (persisted across restarts by the engine).
   * Becoming holder any other way than by our own takeover (a failback or switchover, a direct
   * failback while we were down, a restart into an epoch we cannot vouch for) means the other
   * site may still believe its lease valid: ours counts only from `validFrom`.
   */
  heldEpoch: number | null;
  /** Monotonic ms from which our lease counts as valid (null: not holding). */
  validFrom: number | null;
  /** When we first saw the witness name us holder in the current epoch (monotonic ms). */
  holderSeenAt: number | null;
  /** Consecutive failed health checks of the primary (DR). */
  healthFailures: number;
  lastHealth: string | null;
  takeovers: number;
  /** Desired collector state; null with collector.control = none. */
  collector: 'running' | 'stopped' | null;
  /** Why our collector counts as broken (null: it does not, or is not judged now). */
  collectorBroken: string | null;
  /** Neither site can collect: ours broken and the other's too (status, alert). */
  noSiteCanCollect: boolean;
  /** The pause in force at the witness as last read, if any. */
  paused: Pause | null;
  /** The last automatic handover recorded at the witness. */
  lastHandover: Handover | null;
  /** The last decision and, in words, why. */
  decision: string;
  reason: string;
  /** When to look again (ms). */
  nextTickMs: number;
}

export interface Decision {
  state: CoreState;
  actions: Action[];
}

export function initialState(config: CoreConfig, persisted: { heldEpoch?: number | null } = {}): CoreState {
  return {
    phase: 'starting',
    seen: null,
    seenAt: null,
    dnsFailures: 0,
    leaseKey: null,
    leaseSince: null,
    readableAgainAt: null,
    unconfirmed: null,
    ownSentAt: null,
    heldEpoch: persisted.heldEpoch ?? null,
    validFrom: null,
    holderSeenAt: null,
    healthFailures: 0,
    lastHealth: null,
    takeovers: 0,
    collector: config.collector.control === 'none' ? null : config.collector.mode === 'always' ? 'running' : 'stopped',
    collectorBroken: null,
    noSiteCanCollect: false,
    paused: null,
    lastHandover: null,
    decision: 'start',
    reason: 'no verified DNS read yet',
    nextTickMs: 0,
  };
}

const other = (r: Role): Role => (r === 'primary' ? 'dr' : 'primary');
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The site the witness names, if it names exactly one known site. */
export function namedSite(snap: Snapshot | null, config: CoreConfig): Role | undefined {
  return snap && snap.addresses.length === 1 ? siteOf(snap.addresses[0], config.sites) : undefined;
}

/**
 * When our lease counts as valid on our own clock, as the state stands: from `validFrom` until
 * `ttl - max_skew` after the send of our last confirmed write; null when we hold none.
 */
export function leaseWindow(config: CoreConfig, s: CoreState): { from: number; until: number } | null {
  if (s.ownSentAt === null || s.validFrom === null || s.seen?.lease?.holder !== config.role || namedSite(s.seen, config) !== config.role) return null;
  const until = s.ownSentAt + config.lease.ttl - config.lease.max_skew;
  return s.validFrom < until ? { from: s.validFrom, until } : null;
}

/** True while we hold a lease that has not yet run out on our own clock. */
export function holdsValidLease(config: CoreConfig, s: CoreState, now: number): boolean {
  const w = leaseWindow(config, s);
  return w !== null && now >= w.from && now < w.until;
}

/**
 * The verdict /healthz gives (the DR's default health target): [healthy, why not]. Healthy when
 * the site does what it should: the witness read, and when the record names this site, renewals
 * confirmed and fresh. A holder in the ttl + max_skew wait after a failback is healthy (it holds
 * the lease at the witness and renews it); only a holder whose renewals stopped is not. And the
 * collector unit in the state the core wants.
 */
export function siteHealth(config: CoreConfig, s: CoreState, now: number, collector: CollectorState | null): [boolean, string | null] {
  if (s.seen === null) return [false, 'no verified DNS read yet'];
  if (s.decision === 'inconsistent') return [false, s.reason];
  // Cut from the witness, a site cannot know whether it should be active, nor renew if it should:
  // the DR must not count it healthy (the simulator found a primary cut from DNS after a failback
  // answering 200 from its stale standby view: nobody active, and no takeover).
  if (s.dnsFailures > 0) return [false, `the witness is unreadable (${s.dnsFailures} failure(s) in a row)`];
  if (namedSite(s.seen, config) === config.role) {
    if (s.ownSentAt === null) return [false, 'the record names us but no renewal is confirmed yet'];
    if (renewalStale(config, s, now)) return [false, 'the record names us but our lease has run out (no confirmed renewal for ttl - max_skew)'];
  }
  if (s.collector !== null) {
    const ok = s.collector === 'running' ? collector === 'active' : collector !== 'active' && collector !== 'activating';
    if (!ok) return [false, `collector is ${collector ?? 'unknown'} but should be ${s.collector}`];
  }
  return [true, null];
}

/**
 * Could this site take the job now (the other site's holder asks, through /healthz, before a
 * handover)? It reads the witness, nothing is paused, and its collector unit is loadable, not
 * failed and not judged broken.
 */
export function readiness(config: CoreConfig, s: CoreState, collector: CollectorState | null): { ready: boolean; detail: string } {
  if (s.seen === null) return { ready: false, detail: 'no verified DNS read yet' };
  if (s.dnsFailures > 0) return { ready: false, detail: `the witness is unreadable here (${s.dnsFailures} failure(s) in a row)` };
  if (s.paused) return { ready: false, detail: pauseWords(s.paused) };
  if (config.collector.control === 'none') return { ready: true, detail: 'witness readable; no collector to start (collector.control = none)' };
  if (collector === null || collector === 'failed' || collector === 'missing' || collector === 'unknown') return { ready: false, detail: `its collector unit is ${collector ?? 'unknown'}` };
  if (s.collectorBroken) return { ready: false, detail: `its collector is broken: ${s.collectorBroken}` };
  return { ready: true, detail: `witness readable, collector unit ${collector}` };
}

/** How long the other site's lease has gone without a new seq, on our clock. */
export function leaseAge(s: CoreState, now: number): number | null {
  return s.leaseSince === null ? null : now - s.leaseSince;
}

function desiredCollector(config: CoreConfig, s: CoreState, now: number): CoreState['collector'] {
  if (config.collector.control === 'none') return null;
  if (config.collector.mode === 'always') return 'running';
  const named = namedSite(s.seen, config) === config.role;
  if (!named) return 'stopped';
  // Self-fencing: collect only while holding a valid lease (also before the first confirmed renewal).
  if (config.collector.self_fence && !holdsValidLease(config, s, now)) return 'stopped';
  // Default (as the original): collect while DNS names us, even if our renewals fail.
  return 'running';
}

/** Our renewals have gone unconfirmed for ttl - max_skew: the lease is lost, whatever else holds. */
function renewalStale(config: CoreConfig, s: CoreState, now: number): boolean {
  return s.ownSentAt !== null && now - s.ownSentAt >= config.lease.ttl - config.lease.max_skew;
}

/**
 * Phase and reason of a site the record names (the holder), as of `now`. The one place that tells
 * a lost lease (fenced) from one that does not count YET (pending), so ticks and write results agree.
 */
function holderView(config: CoreConfig, s: CoreState, now: number, epoch: number | undefined): { phase: Phase; reason: string } {
  const fence = config.collector.self_fence ? ', self-fenced' : '';
  if (s.ownSentAt === null) {
    return {
      phase: s.phase === 'starting' ? 'starting' : 'pending',
      reason: `the record names us (epoch ${epoch}) but no renewal of ours is confirmed yet${fence}: renewing`,
    };
  }
  if (renewalStale(config, s, now)) {
    return {
      phase: 'fenced',
      reason: `the record names us but our last confirmed renewal was sent ${secs(now - s.ownSentAt)} ago (>= ttl - max_skew): lease lost${fence}; renewing`,
    };
  }
  if (!holdsValidLease(config, s, now)) {
    // The core's clock is monotonic (not wall time): say how long, not when.
    const when = s.validFrom === null ? 'once a renewal is confirmed' : `in ${secs(Math.max(0, s.validFrom - now))}`;
    return {
      phase: 'pending',
      reason: `the record names us (epoch ${epoch}); our lease counts ${when}: ttl + max_skew after we became holder other than by our own takeover, as the other site may still believe its lease valid until then${fence}; renewing`,
    };
  }
  return { phase: 'active', reason: `the record names us and we hold the lease (epoch ${epoch}): renewing` };
}

/**
 * Is our collector broken? The unit failed or is not loadable; or it crashed more than
 * `restart_limit` times within `handover_after`; or its probe has failed for `handover_after`.
 * Null: not broken. Pure: the engine gathers the evidence, this is the one place that judges it.
 */
export function collectorVerdict(config: CoreConfig, e: CollectorEvidence | undefined, now: number): string | null {
  if (!e) return null;
  const c = config.collector;
  if (e.unit === 'failed') return 'the collector unit has failed';
  if (e.unit === 'missing') return 'the collector unit is not loadable (missing or masked)';
  const recent = e.crashes.filter((t) => now - t <= c.handover_after).length;
  if (recent > c.restart_limit) return `the collector restarted ${recent} times within ${secs(c.handover_after)} (collector.restart_limit ${c.restart_limit})`;
  if (e.probeFailingSince !== null && now - e.probeFailingSince >= c.handover_after) {
    return `the collector's probe has failed for ${secs(now - e.probeFailingSince)}${e.probeDetail ? ` (${e.probeDetail})` : ''}`;
  }
  return null;
}

/** The server's clock as we estimate it (unix s), at the earliest it can be (Snapshot.offsetSeconds): the control record's times are on it. */
function serverSeconds(obs: Extract<Observation, { kind: 'tick' }>, snap: Snapshot): number | undefined {
  return obs.wallSeconds === undefined ? undefined : obs.wallSeconds + (snap.offsetSeconds ?? 0);
}

/** Unix seconds as ISO 8601. Memoized: the same few instants (a pause, the last handover) are written into every tick's reasons. */
const isoMemo = new Map<number, string>();
const iso = (unixSeconds: number): string => {
  let s = isoMemo.get(unixSeconds);
  if (s === undefined) {
    if (isoMemo.size >= 64) isoMemo.clear();
    s = new Date(unixSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
    isoMemo.set(unixSeconds, s);
  }
  return s;
};

/** The pause in words, for reasons. */
export function pauseWords(p: Pause): string {
  return `paused by ${p.by} since ${iso(p.since)}${p.until === null ? ' until resumed' : ` until ${iso(p.until)}`}${p.reason ? ` (${p.reason})` : ''}`;
}

/**
 * The holder with a broken collector: hand the job over (a CAS that moves record and lease to the
 * other site and records the handover), or say why not. Null: no handover this tick.
 */
function judgeHandover(
  config: CoreConfig,
  s: CoreState,
  obs: Extract<Observation, { kind: 'tick' }>,
  snap: Snapshot,
  lease: Lease,
  now: number,
  actions: Action[],
): Action | null {
  const before = s.collectorBroken;
  s.collectorBroken = null;
  s.noSiteCanCollect = false;
  if (desiredCollector(config, s, now) !== 'running') return null;
  const broken = collectorVerdict(config, obs.evidence, now);
  s.collectorBroken = broken;
  if (broken === null) {
    if (before !== null) actions.push({ type: 'log', level: 'notice', msg: `our collector works again (was: ${before})`, fields: { event: 'collector_recovered' } });
    return null;
  }
  const to = other(config.role);
  const peer = obs.peer;
  s.noSiteCanCollect = !!peer?.collectorBroken;
  const serverNow = serverSeconds(obs, snap);
  const h = s.lastHandover;
  // Both ends of the hold are estimates of the server's clock (whole-second TSIG offsets, `at`
  // floored): the hold ends HOLD_CLOCK_SLACK_S late rather than ever early.
  const held =
    h !== null && config.collector.handover_hold > 0 && (serverNow === undefined || (serverNow - h.at - HOLD_CLOCK_SLACK_S) * 1000 < config.collector.handover_hold);
  // The worst news first: with both collectors broken, nothing else that holds the job back matters.
  const blocked = s.noSiteCanCollect
    ? `no site can collect: the ${to}'s collector is broken too (${peer!.collectorBroken})`
    : !config.collector.handover
      ? 'automatic handover is off (collector.handover = false)'
      : s.paused
        ? `automatic moves are ${pauseWords(s.paused)}`
        : held
          ? `the last automatic handover (to the ${h.to}, ${iso(h.at)}) is within collector.handover_hold (${secs(config.collector.handover_hold)}): no automatic handover until ${iso(h.at + Math.ceil(config.collector.handover_hold / 1000) + HOLD_CLOCK_SLACK_S)}`
          : !peer
            ? `the ${to}'s agent gave no answer (health.peer_targets): cannot confirm it is ready`
            : !peer.ready
              ? `the ${to} is not ready (${peer.detail})`
              : null;
  if (before === null) {
    actions.push({ type: 'log', level: 'error', msg: `our collector is broken: ${broken}`, fields: { event: 'collector_broken' } });
    actions.push({ type: 'notify', event: 'collector-broken', text: `the ${config.role}'s collector is broken: ${broken}${blocked ? `; not handing over: ${blocked}` : ''}` });
  }
  if (blocked) {
    s.reason += `; our collector is broken (${broken}) but ${blocked}`;
    return null;
  }
  // Stamped with the LATEST the server's clock can be (the read's round trip added: an answer held
  // up, or this process frozen while it came, would stamp it early and end the next hold early).
  const at = serverNow === undefined ? lease.at : Math.ceil(serverNow + (snap.offsetSpanSeconds ?? 0));
  const next: Handover = { from: config.role, to, epoch: lease.epoch + 1, at, reason: 'collector-failed', detail: broken };
  s.decision = 'handover';
  s.reason = `our collector is broken (${broken}) and the ${to} is ready (${peer!.detail}): handing the job over`;
  return { type: 'cas', op: 'handover', seen: snap, to, control: formatControl({ pause: null, handover: next }) };
}

function tickInterval(config: CoreConfig, s: CoreState): number {
  // The holder ticks at the renewal cadence, a monitoring DR at its health cadence.
  return s.phase === 'active' || s.phase === 'pending' || s.phase === 'fenced' ? config.lease.renew_interval : config.role === 'dr' ? config.health.interval : config.lease.renew_interval;
}

function finish(config: CoreConfig, s: CoreState, actions: Action[], now: number, prev: CoreState): Decision {
  s.collector = desiredCollector(config, s, now);
  if (s.decision !== prev.decision || s.phase !== prev.phase) {
    actions.push({ type: 'log', level: 'notice', msg: s.reason, fields: { event: 'decision', decision: s.decision, phase: s.phase } });
  }
  if (s.collector !== prev.collector && s.collector !== null) {
    actions.push({ type: 'log', level: 'info', msg: `collector should be ${s.collector}`, fields: { event: 'collector_desired', want: s.collector } });
  }
  // Causal order: the decision (and everything that explains it) before the write it causes; the
  // runner performs a cas and logs its outcome where the cas stands.
  if (!actions.some((a) => a.type === 'cas')) return { state: s, actions };
  return { state: s, actions: [...actions.filter((a) => a.type !== 'cas'), ...actions.filter((a) => a.type === 'cas')] };
}

export function decide(config: CoreConfig, prev: CoreState, obs: Observation, now: number): Decision {
  const s: CoreState = { ...prev, nextTickMs: -1 };
  const actions: Action[] = [];
  if (obs.kind === 'write') onWrite(config, s, obs, now, actions);
  else if (obs.kind === 'clock') onClock(config, s, now);
  else onTick(config, s, obs, now, actions);
  if (s.nextTickMs === -1) s.nextTickMs = obs.kind === 'clock' ? prev.nextTickMs : tickInterval(config, s);
  return finish(config, s, actions, now, prev);
}

function observeLease(s: CoreState, snap: Snapshot, now: number, me: Role): void {
  const key = snap.lease ? `${snap.lease.epoch}/${snap.lease.seq}` : null;
  const prevEpoch = epochOfKey(s.leaseKey);
  if (key !== s.leaseKey || s.leaseSince === null) {
    s.leaseKey = key;
    s.leaseSince = now;
  }
  if (!snap.lease || snap.lease.holder !== me) s.holderSeenAt = null;
  else if (s.holderSeenAt === null || prevEpoch !== String(snap.lease.epoch)) s.holderSeenAt = now;
}

/** The epoch part of a `leaseKey` ("epoch/seq"), as written. */
function epochOfKey(key: string | null): string | undefined {
  return key === null ? undefined : key.slice(0, key.indexOf('/'));
}

/** After a confirmed write that leaves us holder: from when does our lease count? */
function establish(config: CoreConfig, s: CoreState, op: WriteOp, epoch: number, sentAt: number): void {
  if (op === 'takeover') {
    // We waited out the other site's lease (ttl + max_skew unchanged) before this write.
    s.validFrom = sentAt;
  } else if (s.heldEpoch !== epoch) {
    // The other site may have held this lease moments ago and not know yet: wait its lease out.
    s.validFrom = (s.holderSeenAt ?? sentAt) + config.lease.ttl + config.lease.max_skew;
  } else if (s.validFrom === null) {
    // Same epoch as before our restart: nobody else can have held it (every transfer bumps the epoch).
    s.validFrom = sentAt;
  }
  s.heldEpoch = epoch;
}

function onWrite(config: CoreConfig, s: CoreState, obs: Extract<Observation, { kind: 'write' }>, now: number, actions: Action[]): void {
  const o = obs.outcome;
  if (!o.ok) {
    if (!o.conflict && o.attempted?.lease.holder === config.role) rememberUnconfirmed(s, obs.op, o.attempted);
    s.dnsFailures = o.conflict ? s.dnsFailures : s.dnsFailures + 1;
    s.decision = o.conflict ? 'conflict' : 'write-failed';
    s.reason = o.conflict
      ? `${obs.op}: the witness changed since we read it (${o.code}); re-reading before anything else`
      : `${obs.op}: outcome unknown (${o.code}: ${o.message}); re-reading`;
    actions.push({ type: 'log', level: o.conflict ? 'warning' : 'error', msg: s.reason, fields: { event: `${obs.op}_failed`, code: o.code } });
    // A conflict: re-read now. A write whose outcome is unknown: the holder tries again soon.
    s.nextTickMs = o.conflict ? 0 : Math.min(config.lease.renew_interval, HOLDER_RETRY_MS);
    return;
  }
  s.dnsFailures = 0;
  s.unconfirmed = null;
  s.seen = o.snapshot;
  s.seenAt = now;
  const holder = o.snapshot.lease?.holder;
  const newEpoch = o.snapshot.lease && epochOfKey(s.leaseKey) !== String(o.snapshot.lease.epoch);
  if (newEpoch) s.holderSeenAt = null;
  observeLease(s, o.snapshot, now, config.role);
  if (holder === config.role && o.snapshot.lease) {
    s.ownSentAt = o.sentAt;
    establish(config, s, obs.op, o.snapshot.lease.epoch, o.sentAt);
  } else {
    s.ownSentAt = null;
    s.validFrom = null;
  }
  const l = o.snapshot.lease;
  if (obs.op === 'takeover') {
    s.takeovers++;
    s.healthFailures = 0;
    s.phase = 'active';
    s.decision = 'took-over';
    s.reason = `took over: the record now names the DR (epoch ${l?.epoch})`;
    actions.push({ type: 'log', level: 'warning', msg: s.reason, fields: { event: 'takeover', epoch: l?.epoch, seq: l?.seq } });
    actions.push({ type: 'notify', event: 'failover', text: `DR took over ${o.snapshot.addresses[0]} (epoch ${l?.epoch})` });
  } else if (obs.op === 'renew') {
    const v = holder === config.role ? holderView(config, s, now, l?.epoch) : { phase: 'standby' as const, reason: `renewed, but the record names the ${holder}` };
    if (v.phase !== s.phase) s.reason = v.reason;
    s.phase = v.phase;
    actions.push({ type: 'log', level: 'debug', msg: 'lease renewed', fields: { event: 'renew', epoch: l?.epoch, seq: l?.seq } });
  } else if (obs.op === 'handover') {
    const h = o.snapshot.control?.handover;
    s.phase = holder === config.role ? holderView(config, s, now, l?.epoch).phase : 'standby';
    s.decision = 'handed-over';
    s.reason = `handed the job over: the record names the ${holder} (epoch ${l?.epoch}) because ${h?.detail ?? s.collectorBroken ?? 'our collector is broken'}`;
    actions.push({ type: 'log', level: 'warning', msg: s.reason, fields: { event: 'handover', reason: h?.reason ?? 'collector-failed', to: holder, epoch: l?.epoch, seq: l?.seq, evidence: h?.detail ?? s.collectorBroken } });
    actions.push({ type: 'notify', event: 'handover', text: `the ${config.role} handed the job to the ${holder} (epoch ${l?.epoch}): ${h?.detail ?? s.collectorBroken}` });
    s.collectorBroken = null;
  } else {
    s.phase = holder === config.role ? holderView(config, s, now, l?.epoch).phase : 'standby';
    s.decision = obs.op;
    s.reason = `${obs.op} done: the record names the ${holder} (epoch ${l?.epoch})`;
    actions.push({ type: 'log', level: 'warning', msg: s.reason, fields: { event: obs.op, epoch: l?.epoch, seq: l?.seq } });
    if (obs.op === 'failback' || obs.op === 'switchover') actions.push({ type: 'notify', event: obs.op, text: s.reason });
  }
}

function onTick(config: CoreConfig, s: CoreState, obs: Extract<Observation, { kind: 'tick' }>, now: number, actions: Action[]): void {
  const me = config.role;
  if (obs.health) {
    s.healthFailures = obs.health.ok ? 0 : s.healthFailures + 1;
    s.lastHealth = obs.health.detail;
  }
  if (!obs.dns.ok) {
    // A holder retries soon: its lease is at stake (a DR waits its cadence: it only watches).
    if (namedSite(s.seen, config) === me && s.seen?.lease?.holder === me) s.nextTickMs = Math.min(config.lease.renew_interval, HOLDER_RETRY_MS);
    s.dnsFailures++;
    // A read gap: what the lease did meanwhile is unknown, so the DR's window starts anew at the next good read.
    s.leaseSince = null;
    const lost = renewalStale(config, s, now);
    s.phase = lost ? 'fenced' : s.phase === 'starting' ? 'starting' : 'holding';
    s.decision = lost ? 'fenced' : 'hold';
    s.reason = `DNS unreadable (${obs.dns.code}: ${obs.dns.message}); keeping the current state (${s.dnsFailures} in a row)`;
    if (lost) s.reason += `; our lease has run out${config.collector.self_fence ? ': self-fenced, collector stopped' : ''}`;
    if (s.dnsFailures === 3) actions.push({ type: 'notify', event: 'dns-unreachable', text: s.reason });
    return;
  }
  const snap = obs.dns.snapshot;
  if (!obs.dns.assumed) {
    if (s.seenAt !== null && now - s.seenAt > readGapMs(config)) s.leaseSince = null; // stalled: not watched meanwhile
    if (s.leaseSince === null && s.seen !== null) s.readableAgainAt = now;
    s.dnsFailures = 0;
    confirmByRead(config, s, snap, now, actions);
    s.seenAt = now;
  }
  s.seen = snap;
  observeLease(s, snap, now, config.role);
  const named = namedSite(snap, config);
  const lease = snap.lease;
  s.lastHandover = snap.control?.handover ?? null;
  const serverNow = serverSeconds(obs, snap);
  s.paused = snap.controlError
    ? { by: 'an unreadable control record', since: 0, until: null, reason: snap.controlError }
    : snap.control
      ? serverNow === undefined
        ? snap.control.pause
        : pauseInForce(snap.control, serverNow)
      : null;

  if (!lease || !named) {
    s.phase = 'holding';
    s.decision = 'inconsistent';
    s.reason = !lease
      ? `no valid lease at the witness (${snap.leaseError ?? 'absent'}): changing nothing; run failoverctl init`
      : `the record names ${snap.addresses.join(', ') || 'nothing'}, not exactly one site: changing nothing`;
    return;
  }
  if (lease.holder !== named) {
    s.phase = 'holding';
    s.decision = 'inconsistent';
    s.reason = `the record names the ${named} but the lease holder is the ${lease.holder}: changing nothing; fix with failoverctl init --force`;
    return;
  }
  if (named !== me) {
    // We do not hold the lease: any own-lease timing is over.
    s.ownSentAt = null;
    s.validFrom = null;
  }

  if (named === me) {
    // We are the holder: renew (CAS on exactly what we read), or hand the job over.
    const v = holderView(config, s, now, lease.epoch);
    s.phase = v.phase;
    s.decision = 'renew';
    s.reason = v.reason;
    const h = s.lastHandover;
    if (h && h.to === me && h.epoch === lease.epoch) s.reason += `; active through a handover from the ${h.from} at ${iso(h.at)}: ${h.detail}`;
    const handover = judgeHandover(config, s, obs, snap, lease, now, actions);
    actions.push(handover ?? { type: 'cas', op: 'renew', seen: snap });
    return;
  }
  // Not the holder: our collector is judged only by whether it could take the job.
  const ownUnusable = obs.collector === 'failed' || obs.collector === 'missing';
  s.collectorBroken = ownUnusable ? `the collector unit is ${obs.collector}` : null;
  s.noSiteCanCollect = ownUnusable && !!obs.peer?.collectorBroken;
  const nobody = s.noSiteCanCollect ? `; no site can collect: ours is ${obs.collector} and the ${named}'s is broken (${obs.peer!.collectorBroken})` : '';

  if (me === 'primary') {
    s.phase = 'standby';
    s.decision = 'standby';
    s.reason = `DR active since ${iso(lease.at)} (epoch ${lease.epoch}); run failoverctl failback when sync is ready${nobody}`;
    return;
  }

  // DR, the record names the primary: judge takeover.
  s.phase = 'monitoring';
  const age = leaseAge(s, now) ?? 0;
  const expiry = config.lease.ttl + config.lease.max_skew;
  const expired = age >= expiry;
  const failing = s.healthFailures >= config.health.failures;
  const selfCheck = obs.collector === 'failed' || obs.collector === 'missing' ? `own collector unit is ${obs.collector}` : null;
  const streak = `health ${Math.min(s.healthFailures, config.health.failures)}/${config.health.failures} failed`;
  if (s.paused) {
    // The witness enforces it too: a takeover carries the control record as read among its prerequisites.
    s.decision = 'paused';
    s.reason = `${pauseWords(s.paused)}: no automatic takeover (${streak}; the primary's lease unchanged for ${secs(age)})${nobody}`;
    return;
  }
  if (failing && expired && !selfCheck) {
    s.decision = 'takeover';
    s.reason = `${streak} and the primary's lease (seq ${lease.seq}) unchanged for ${secs(age)} >= ${secs(expiry)}: taking over`;
    actions.push({ type: 'cas', op: 'takeover', seen: snap });
    return;
  }
  if (failing && expired && selfCheck) {
    s.decision = 'refuse-takeover';
    s.reason = `${streak} and the primary's lease expired, but ${selfCheck}: not taking over`;
    actions.push({ type: 'log', level: 'error', msg: s.reason, fields: { event: 'takeover_refused', collector: obs.collector } });
    return;
  }
  // The window began at a re-read after a gap, not at a renewal we saw.
  const anew =
    s.readableAgainAt !== null && s.leaseSince === s.readableAgainAt
      ? `witness readable again ${secs(age)} ago: watching the lease anew (takeover possible after ${secs(expiry)} unchanged)`
      : null;
  if (failing) {
    s.decision = 'wait-lease';
    s.reason = anew
      ? `${streak} but ${anew}`
      : `${streak} but the primary's lease was renewed ${secs(age)} ago (expires after ${secs(expiry)} unchanged): not taking over`;
    return;
  }
  s.decision = 'monitor';
  s.reason =
    (anew
      ? `${s.healthFailures > 0 ? streak : 'primary healthy'}; ${anew}`
      : s.healthFailures > 0
        ? `${streak}; primary active (lease seq ${lease.seq}, renewed ${secs(age)} ago)`
        : `primary healthy and active (lease seq ${lease.seq}, renewed ${secs(age)} ago)`) + nobody;
}

/**
 * Time alone moved us across a boundary of our lease window: the phase (and, with self_fence, the
 * collector, in finish) follow at that instant, not at the next tick, which a slow read, a stall or
 * a pause can delay.
 */
function onClock(config: CoreConfig, s: CoreState, now: number): void {
  if (namedSite(s.seen, config) !== config.role || s.seen?.lease?.holder !== config.role) return;
  const v = holderView(config, s, now, s.seen.lease.epoch);
  if (v.phase === s.phase) return;
  s.phase = v.phase;
  s.reason = v.reason;
  s.decision = v.phase === 'fenced' ? 'fenced' : 'renew';
}

/** A write of ours whose outcome is unknown: keep the FIRST send of an attempt at the same lease. */
function rememberUnconfirmed(s: CoreState, op: WriteOp, attempted: { lease: Lease; sentAt: number }): void {
  const { holder, epoch, seq } = attempted.lease;
  const u = s.unconfirmed;
  const same = u !== null && u.holder === holder && u.epoch === epoch && u.seq === seq;
  s.unconfirmed = { op: same ? u.op : op, holder, epoch, seq, sentAt: same ? Math.min(u.sentAt, attempted.sentAt) : attempted.sentAt };
}

/**
 * A read showing exactly the lease our unconfirmed write tried to set (same holder, epoch, seq, and
 * the record naming us) means that write was applied and only its answer lost: it counts as
 * confirmed from its FIRST send, as if the answer had come (the conservative bound). Someone
 * else's lease, or a later one, ends the wait; an older one (not applied yet) keeps it.
 */
function confirmByRead(config: CoreConfig, s: CoreState, snap: Snapshot, now: number, actions: Action[]): void {
  const u = s.unconfirmed;
  const l = snap.lease;
  if (!u) return;
  if (l && l.holder === u.holder && l.epoch === u.epoch && l.seq === u.seq && namedSite(snap, config) === u.holder) {
    actions.push({
      type: 'log',
      level: 'notice',
      msg: `the witness holds our ${u.op} (epoch ${u.epoch}, seq ${u.seq}) whose answer was lost: confirmed by this read, counted from its first send ${secs(now - u.sentAt)} ago`,
      fields: { event: 'write_confirmed_by_read', op: u.op, epoch: u.epoch, seq: u.seq },
    });
    onWrite(config, s, { kind: 'write', op: u.op, outcome: { ok: true, snapshot: snap, sentAt: u.sentAt } }, now, actions);
  } else if (!l || l.epoch !== u.epoch || l.seq >= u.seq) {
    s.unconfirmed = null;
  }
}

export { other as otherRole };
