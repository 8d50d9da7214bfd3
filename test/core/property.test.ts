/**
 * Property test of the decision core (src/core/decide.ts): random interleavings
 * of a PRIMARY core and a DR core against an in-memory RFC 2136 witness
 * (./dns-model.ts), on ONE shared fake monotonic clock.
 *
 * ASSUMPTIONS: what the simulated world may do (everything else is random).
 *
 * - Config: half the runs use the defaults (lease ttl 30 s, renew_interval 10 s,
 *   max_skew 5 s, health interval 10 s × 3 failures), the rest one of three
 *   other valid timings (TIMINGS); collector.control none/systemd and
 *   self_fence true/false per run.
 * - Time: one monotonic clock for both sites and the DNS server. Each step
 *   advances it by 0–15 s (running whatever falls due on the way), then one
 *   random event happens. With a shared clock `lease.max_skew` is pure margin:
 *   safety needs only that a holder's validity ends `ttl - max_skew` after the
 *   SEND of its last confirmed write, and that the DR takes over no earlier than
 *   `ttl + max_skew` after it first OBSERVED the seq it replaces.
 * - Runners: an agent acts only as its runner would. After each decision it
 *   either sends the `cas` action (after 0–50 ms) or ticks again at
 *   `state.nextTickMs` plus a lateness of 0–300 ms. It never ticks before
 *   nextTickMs and never while its own write is outstanding (the runner awaits
 *   the CAS and feeds the outcome back first). Random events may also run a tick,
 *   a send or an answer EARLY (any time it is allowed), and may STALL an agent
 *   (slow machine, GC pause, suspended VM) by up to 60 s: now, or between its
 *   next read and the CAS built on it, or between its next send and the answer.
 *   Safety must hold with any stall.
 * - "Timely" runs (half of them): the primary is never stalled and ticks within
 *   1 s of nextTickMs, so while it is alive and reaches DNS it renews at least
 *   every renew_interval + ~1 s (a lost answer costs up to 6 s, but the update
 *   it answers has landed). Only "no spurious takeover" needs this: a DR
 *   may legitimately fail over from a primary that renews late.
 * - Writes: a write is SENT at one moment (sentAt, fed back with the outcome);
 *   the server APPLIES it 1–200 ms later on its own schedule (whatever the
 *   sender does meanwhile, crash or stall included), and the answer comes at or
 *   after that. Fates: answered (ok, or NXRRSET = conflict) within 200 ms;
 *   applied but the answer lost
 *   (timeout after 6 s = timeout × (retries + 1)); applied, first answer lost,
 *   the retry gets NXRRSET and Witness.cas's re-read finds its own value (ok,
 *   "recovered", sentAt = the FIRST send) after ~2 s; dropped (timeout, never
 *   applied); delayed (timeout for the writer, the packet is applied by a later
 *   'late-apply' event if within the 300 s TSIG fudge and its prerequisites
 *   still hold). A writer cut off DNS gets a timeout and nothing is applied.
 * - Health: the DR's check succeeds iff the primary agent is alive, not
 *   stalled (a frozen process answers no /healthz either) and the inter-site
 *   path is up. The primary's own check is not fed (irrelevant).
 * - Crash: all core state is lost; an update already sent still reaches the
 *   server per its fate; restart 1–120 s later with initialState and an
 *   immediate tick.
 *   Liveness runs (half): at the end the primary dies for good, the DR reaches
 *   DNS and nothing stalls or fails any more.
 * - Admin failback ('with admin failback' test): `failoverctl failback` on the
 *   primary host, executed by the primary agent when it runs (needs the
 *   primary's DNS path): a read that finds the record naming the DR, then
 *   (mostly at once, else at a later step) CAS record = primary + transferred
 *   lease, fed to the primary core as a 'write' observation op 'failback' with
 *   sentAt = the send. Per SPEC §3 it does not wait for the DR's lease.
 * - Collector: mode when-active; the unit state fed back equals the core's
 *   desired state (so the DR's self-check never refuses a takeover).
 *
 * INVARIANTS, checked after every event (also those inside a step):
 * - the record names exactly one site, and the lease holder is that site;
 * - per applied write: seq rises; epoch never falls; epoch changes (by one)
 *   exactly when the holder changes;
 * - mutual exclusion: never do both live agents satisfy holdsValidLease;
 * - witness-backed: a live agent satisfying holdsValidLease is the holder at
 *   the witness right now (no takeover behind a valid lease). One exception:
 *   a DR that has not read the witness since an admin failback overrode it
 *   (the failback does not wait for it, so it cannot know; mutual exclusion
 *   then requires the PRIMARY to hold back);
 * - self-fence (self_fence = true): a core wanting its collector running holds
 *   a valid lease, except a core that has had no confirmed write since it
 *   started, for at most ttl - max_skew (decide.ts starts the collector before
 *   the first renewal is confirmed);
 * - a takeover is asked for only after `health.failures` failed checks in a row;
 * - timely runs: a takeover lands only within ttl + max_skew of the primary
 *   being impaired (down, cut off DNS, or a write of it dropped/delayed);
 * - liveness runs, at the end: the DR holds the lease within failures × interval
 *   + ttl + max_skew + 3 × max(interval, renew_interval) of the primary's death.
 *
 * Env: PROPERTY_SEED (fixed default), PROPERTY_RUNS (default 300),
 * PROPERTY_TIME_LIMIT_MS (default 12000: a property that has not finished its
 * runs and shrinking by then fails, so the file stays within ~30 s),
 * PROPERTY_RELAX (comma list, to explore past a known finding): "failback" =
 * no mutual-exclusion check while the DR's view predates an admin failback;
 * "self-fence-unconfirmed" = no time limit on the self-fence exception above.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, holdsValidLease, initialState, namedSite, type CoreConfig, type CoreState, type Observation } from '../../src/core/decide.js';
import type { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import { change, prereq } from '../../src/dns/update.js';
import { formatLease, renewed, transferred, type Lease, type Role } from '../../src/lease/lease.js';
import { siteOf, Witness, type Snapshot } from '../../src/lease/witness.js';
import { DEFAULT_NAMES, DnsModel } from './dns-model.js';

const SEED = Number(process.env.PROPERTY_SEED ?? 0x2136);
const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 300);
const RELAX = new Set((process.env.PROPERTY_RELAX ?? '').split(',').filter(Boolean));
const MIN_STEPS = 200;
const SHRINK_BUDGET_MS = Number(process.env.PROPERTY_TIME_LIMIT_MS ?? 12_000);

const S = 1000;
const SITES = { primary: '10.10.10.10', dr: '10.20.20.20' };
/**
 * Timing configurations (all valid per the config schema: max_skew < ttl, renew_interval < ttl - max_skew).
 * The first, the defaults, is the one most runs use and the one shrinking goes to; the others move the
 * lease/tick ratios so that no invariant holds merely because 35 s is not a multiple of a 10 s tick.
 */
interface Timing {
  lease: CoreConfig['lease'];
  health: CoreConfig['health'];
}
const TIMINGS: Timing[] = [
  { lease: { ttl: 30 * S, renew_interval: 10 * S, max_skew: 5 * S }, health: { interval: 10 * S, failures: 3, timeout: 3 * S } },
  { lease: { ttl: 20 * S, renew_interval: 5 * S, max_skew: 2 * S }, health: { interval: 3 * S, failures: 1, timeout: 3 * S } },
  { lease: { ttl: 45 * S, renew_interval: 15 * S, max_skew: 0 }, health: { interval: 7 * S, failures: 2, timeout: 3 * S } },
  { lease: { ttl: 12 * S, renew_interval: 8 * S, max_skew: 3 * S }, health: { interval: 1 * S, failures: 5, timeout: 3 * S } },
];
/** failures × interval + ttl + max_skew + "a few ticks": 3 of the longer cadence (an active DR first waits a renew_interval). */
const livenessBound = (t: Timing): number =>
  t.health.failures * t.health.interval + t.lease.ttl + t.lease.max_skew + 3 * Math.max(t.health.interval, t.lease.renew_interval);
/** Unix seconds at monotonic 0: only for the informational `at` field. */
const WALL0 = 1_790_000_000;
const DNS_GIVE_UP = 6 * S; // dns.timeout 2 s × (retries 2 + 1)
const LATE_MAX = 300 * S; // TSIG fudge: an older delayed update is refused (BADTIME)
const MAX_STALL = 60 * S;
const TIMELY_LATENESS = 1 * S;

const EVENTS = [
  ['idle', 200],
  ['tick-primary', 80],
  ['tick-dr', 80],
  ['send-primary', 40],
  ['answer-primary', 60],
  ['send-dr', 40],
  ['answer-dr', 60],
  ['stall-primary', 75],
  ['stall-dr', 75],
  ['failback-read', 40],
  ['failback-cas', 20],
  ['crash-primary', 25],
  ['crash-dr', 25],
  ['partition', 40],
  ['dns-primary', 40],
  ['dns-dr', 40],
  ['dns-both', 20],
  ['late-apply', 40],
] as const;
type EventName = (typeof EVENTS)[number][0];
if (EVENTS.reduce((n, [, w]) => n + w, 0) !== 1000) throw new Error('event weights must sum to 1000');

function eventOf(ev: number): EventName {
  let acc = 0;
  for (const [name, w] of EVENTS) {
    acc += w;
    if (ev < acc) return name;
  }
  return 'idle';
}

interface Step {
  /** ms the clock advances before the event */
  dt: number;
  /** event selector 0..999 (low = idle, so shrinking quiets steps) */
  ev: number;
  /** event parameter 0..999 (also seeds the latencies and fates drawn in this step) */
  x: number;
}

interface RunParams {
  timing: Timing;
  control: 'systemd' | 'none';
  selfFence: boolean;
  timely: boolean;
  liveness: boolean;
  failback: boolean;
  steps: Step[];
}

type Fate = 'ok' | 'lost' | 'recovered' | 'dropped' | 'delayed' | 'unreachable';

/** An update on its way to the server. */
interface Packet {
  from: string;
  seen: Snapshot;
  address: string;
  lease: Lease;
  sentAt: number;
  /** When the server gets it (timed packets) */
  applyAt: number;
  /** The server's verdict once applied */
  result: 'ok' | 'conflict' | null;
}

interface OutstandingWrite {
  op: 'renew' | 'takeover';
  seen: Snapshot;
  sentAt: number | null;
  /** The lease the update sets (what the engine reports as `attempted` when the answer is lost). */
  lease?: Lease;
  fate?: Fate;
  packet?: Packet;
}

interface Agent {
  role: Role;
  tag: 'P' | 'D';
  cfg: CoreConfig;
  alive: boolean;
  state: CoreState;
  /** Earliest next tick: time of the last decision + state.nextTickMs. */
  nextTickAt: number;
  /** When the runner's next step (restart, tick, send or answer) happens on its own. */
  dueAt: number;
  /** null = crashed for good */
  restartAt: number | null;
  write: OutstandingWrite | null;
  /** Since when the core has wanted its collector running without a confirmed lease (self-fence check). */
  unconfirmedSince: number | null;
  /** A stalled process answers no health check either. */
  stalledUntil: number;
  armedStall: { when: 'after-read' | 'after-send'; by: number } | null;
  /** Health results fed to this (DR) core since it started, newest last. */
  health: boolean[];
}

type WriteOutcome = Extract<Observation, { kind: 'write' }>['outcome'];

interface Stats {
  runs: number;
  steps: number;
  applied: Record<string, number>;
  fates: Record<string, number>;
  conflicts: number;
  takeoversTimely: number;
  failbacksOverDrLease: number;
  bothValid: number;
  livenessRuns: number;
  /** slowest DR takeover in a liveness tail, as a fraction of its bound */
  livenessMaxRatio: number;
}

const newStats = (): Stats => ({
  runs: 0,
  steps: 0,
  applied: {},
  fates: {},
  conflicts: 0,
  takeoversTimely: 0,
  failbacksOverDrLease: 0,
  bothValid: 0,
  livenessRuns: 0,
  livenessMaxRatio: 0,
});

const bump = (o: Record<string, number>, k: string): void => {
  o[k] = (o[k] ?? 0) + 1;
};
const sec = (ms: number): string => (ms / 1000).toFixed(3);
const wall = (ms: number): number => WALL0 + ms / 1000;
const snapText = (s: Snapshot): string =>
  `${s.addresses.map((a) => siteOf(a, SITES) ?? a).join(',') || '-'}/${s.lease ? `${s.lease.holder} e${s.lease.epoch} s${s.lease.seq}` : `lease?(${s.leaseError ?? 'absent'})`}`;

function coreConfig(role: Role, run: RunParams): CoreConfig {
  return { role, sites: SITES, lease: run.timing.lease, health: run.timing.health, collector: { control: run.control, mode: 'when-active', self_fence: run.selfFence }, dns: { budget: DNS_GIVE_UP } };
}

class Violation extends Error {
  override name = 'InvariantViolation';
}

class Sim {
  now = 0;
  readonly model = new DnsModel('A');
  readonly P: Agent;
  readonly D: Agent;
  pathUp = true;
  /** Updates in flight that the server gets at their applyAt, whatever their sender does meanwhile. */
  net: Packet[] = [];
  /** Delayed updates: the server gets them at a random later 'late-apply' event, if at all. */
  late: Packet[] = [];
  admin: Snapshot | null = null;
  readonly trace: string[] = [];
  /** Last moment the primary was down, cut off DNS, or had a write dropped/delayed/refused by the network. */
  primaryImpairedAt = 0;
  /** Epoch written by the last admin failback. */
  failbackEpoch = 0;
  /** In the liveness tail: no stalls, no faults. */
  fair = false;
  private checkedHistory = 0;
  private x = 0;
  private draws = 0;

  constructor(
    readonly run: RunParams,
    readonly stats: Stats,
  ) {
    // `failoverctl init`, done directly on the model at t = 0.
    this.model.load([SITES.primary], { holder: 'primary', epoch: 1, seq: 0, at: WALL0 }, 'init', 0);
    this.checkedHistory = this.model.history.length;
    const agent = (role: Role): Agent => {
      const cfg = coreConfig(role, run);
      return { role, tag: role === 'primary' ? 'P' : 'D', cfg, alive: true, state: initialState(cfg), nextTickAt: 0, dueAt: 0, restartAt: null, write: null, unconfirmedSince: null, stalledUntil: 0, armedStall: null, health: [] };
    };
    this.P = agent('primary');
    this.D = agent('dr');
    this.note(`run: ttl=${sec(run.timing.lease.ttl)} renew=${sec(run.timing.lease.renew_interval)} skew=${sec(run.timing.lease.max_skew)} health=${sec(run.timing.health.interval)}x${run.timing.health.failures} control=${run.control} self_fence=${run.selfFence} timely=${run.timely} liveness=${run.liveness} failback=${run.failback}`);
  }

  /** A number 0..999 derived from the current step's x: latencies and fates, reproducible and shrinkable. */
  private draw(): number {
    return (this.x * 7919 + ++this.draws * 104_729) % 1000;
  }

  // ---- reporting -----------------------------------------------------------

  note(line: string): void {
    this.trace.push(`t=${sec(this.now).padStart(8)}  ${line}`);
  }

  fail(invariant: string, detail: string): never {
    const agents = [this.P, this.D]
      .map(
        (a) =>
          `  ${a.tag}: ${a.alive ? 'alive' : 'down'} phase=${a.state.phase} seen=${a.state.seen ? snapText(a.state.seen) : '-'} seenAt=${a.state.seenAt ?? '-'} ` +
          `leaseSince=${a.state.leaseSince ?? '-'} ownSentAt=${a.state.ownSentAt ?? '-'} holdsValidLease=${a.alive && holdsValidLease(a.cfg, a.state, this.now)} collector=${a.state.collector}`,
      )
      .join('\n');
    const tail = this.trace.length > 80 ? ['  ...', ...this.trace.slice(-80)] : this.trace;
    throw new Violation(
      `invariant "${invariant}" broken at t=${sec(this.now)} s: ${detail}\nwitness: ${snapText(this.model.peek())}\n${agents}\n` +
        `trace (t in s; "valid" = holdsValidLease after the decision):\n${tail.join('\n')}`,
    );
  }

  // ---- the agents' runners ---------------------------------------------------

  private lateness(a: Agent): number {
    return this.fair ? 0 : this.run.timely && a.role === 'primary' ? this.draw() % TIMELY_LATENESS : this.draw() % 300;
  }

  private feed(a: Agent, obs: Observation, label: string): void {
    const d = decide(a.cfg, a.state, obs, this.now);
    a.state = d.state;
    if (!(d.state.nextTickMs >= 0)) this.fail('core-contract', `${a.tag}: nextTickMs = ${d.state.nextTickMs}`);
    a.nextTickAt = this.now + d.state.nextTickMs;
    const cas = d.actions.flatMap((x) => (x.type === 'cas' ? [x] : []));
    if (cas.length > 1) this.fail('core-contract', `${a.tag}: ${cas.length} cas actions in one decision`);
    const c = cas[0];
    if (c) {
      if (!c.seen.lease || c.seen.addresses.length !== 1) this.fail('core-contract', `${a.tag}: cas ${c.op} on a snapshot without one address and a lease`);
      if (c.op === 'takeover' && a.role !== 'dr') this.fail('core-contract', 'the primary asked for a takeover');
      const n = this.run.timing.health.failures;
      if (c.op === 'takeover' && !(a.health.length >= n && a.health.slice(-n).every((ok) => !ok))) {
        this.fail('takeover-needs-failed-checks', `the DR asked for a takeover after health checks ${JSON.stringify(a.health.slice(-n))}`);
      }
      a.write = { op: c.op, seen: c.seen, sentAt: null };
      a.dueAt = this.now + (this.fair ? 0 : this.draw() % 50);
    } else {
      a.dueAt = a.nextTickAt + this.lateness(a);
    }
    const valid = holdsValidLease(a.cfg, a.state, this.now);
    this.note(`${a.tag} ${label} -> ${d.state.decision}/${d.state.phase}${c ? ` [cas ${c.op}]` : ''}${d.state.collector ? ` collector=${d.state.collector}` : ''}${valid ? ' valid' : ''}`);
    this.checkSelfFence(a);
    if (c) this.armed(a, 'after-read');
  }

  tick(a: Agent): void {
    a.stalledUntil = Math.min(a.stalledUntil, this.now);
    const dns: Extract<Observation, { kind: 'tick' }>['dns'] = this.model.tryRead(a.role);
    const obs: Extract<Observation, { kind: 'tick' }> = { kind: 'tick', dns };
    let label = `tick read=${dns.ok ? snapText(dns.snapshot) : dns.code}`;
    if (a.role === 'dr') {
      const ok = this.P.alive && this.pathUp && this.now >= this.P.stalledUntil;
      obs.health = { ok, detail: ok ? 'HTTP 200' : !this.P.alive ? 'connection refused' : this.pathUp ? 'timeout (primary stalled)' : 'timeout (path cut)' };
      a.health.push(ok);
      label += ` health=${ok ? 'ok' : 'FAIL'}`;
    }
    if (a.cfg.collector.control === 'systemd') obs.collector = a.state.collector === 'running' ? 'active' : 'inactive';
    this.feed(a, obs, label);
  }

  send(a: Agent): void {
    a.stalledUntil = Math.min(a.stalledUntil, this.now);
    const w = a.write!;
    const l = w.seen.lease!;
    w.sentAt = this.now;
    const address = w.op === 'renew' ? w.seen.addresses[0]! : SITES.dr;
    const lease = w.op === 'renew' ? renewed(l, wall(this.now)) : transferred(l, 'dr', wall(this.now));
    w.lease = lease;
    const r = this.draw();
    w.fate = !this.model.reachable(a.role) ? 'unreachable' : this.fair || r < 750 ? 'ok' : r < 830 ? 'lost' : r < 870 ? 'recovered' : r < 930 ? 'dropped' : 'delayed';
    // When the answer (or the client's give-up) comes; the server applies the update at or before it.
    const answerIn = w.fate === 'ok' ? 2 + (this.draw() % 200) : w.fate === 'recovered' ? 2 * S + (this.draw() % 200) : DNS_GIVE_UP;
    a.dueAt = this.now + answerIn;
    const packet: Packet = { from: `${a.tag} ${w.op}`, seen: w.seen, address, lease, sentAt: this.now, applyAt: this.now + 1 + (this.draw() % Math.min(answerIn - 1, 200)), result: null };
    if (w.fate === 'ok' || w.fate === 'lost' || w.fate === 'recovered') {
      w.packet = packet;
      this.net.push(packet);
    } else if (w.fate === 'delayed') this.late.push(packet);
    if (a.role === 'primary' && (w.fate === 'unreachable' || w.fate === 'dropped' || w.fate === 'delayed')) this.primaryImpairedAt = this.now;
    this.note(`${a.tag} send ${w.op} on ${snapText(w.seen)} => e${lease.epoch} s${lease.seq} (${w.fate}${w.packet ? `, reaches the server at ${sec(packet.applyAt)}` : ''})`);
    this.armed(a, 'after-send');
  }

  /** The server gets a packet: CAS, all or nothing. */
  private applyPacket(p: Packet, late = false): void {
    this.net = this.net.filter((q) => q !== p);
    p.result = this.model.cas(p.seen, p.address, p.lease, { by: `${p.from}${late ? ' (late)' : ''}`, at: this.now });
    this.note(`server gets ${p.from}${late ? ' (late)' : ''} sent@${sec(p.sentAt)}: ${p.result}`);
  }

  answer(a: Agent): void {
    a.stalledUntil = Math.min(a.stalledUntil, this.now);
    const w = a.write!;
    a.write = null;
    const p = w.packet;
    // An answer never precedes the update it answers.
    if (p && p.result === null) this.applyPacket(p);
    let fate = w.fate!;
    // Cut off DNS since the send: the update got there, its answer does not come back.
    if ((fate === 'ok' || fate === 'recovered') && !this.model.reachable(a.role)) fate = 'lost';
    bump(this.stats.fates, fate);
    // As Engine.write reports it: what the update tried to set, from its send (a later read may confirm it).
    let outcome: WriteOutcome = { ok: false, conflict: false, code: 'DNS_TIMEOUT', message: 'no answer', attempted: { lease: w.lease!, sentAt: w.sentAt! } };
    if (p && (fate === 'ok' || fate === 'recovered')) {
      // 'ok': the server's answer to this update. 'recovered': the first answer was lost and the retry got
      // NXRRSET; like any NXRRSET, Witness.cas re-reads once and reports success iff the witness holds its value.
      const success = fate === 'ok' ? p.result === 'ok' || this.model.holds(p.address, p.lease) : this.model.holds(p.address, p.lease);
      if (success) {
        // What Witness.cas returns: the value it wrote (a re-read of it when recovered), with sentAt = the FIRST send.
        const snapshot: Snapshot = { addresses: [p.address], addressType: 'A', leaseText: [formatLease(p.lease)], lease: p.lease };
        outcome = { ok: true, snapshot, sentAt: p.sentAt };
      } else {
        outcome = { ok: false, conflict: true, code: 'DNS_PREREQ_FAILED', message: 'NXRRSET' };
        this.stats.conflicts++;
      }
    }
    this.feed(a, { kind: 'write', op: w.op, outcome }, `answer ${w.op} sent@${sec(w.sentAt!)} ${fate}${p ? `(${p.result})` : ''} => ${outcome.ok ? 'ok' : outcome.code}`);
  }

  crash(a: Agent): void {
    // An update already sent stays in the network: the server still gets it (net / late queues).
    const what = a.write?.packet && a.write.packet.result === null ? ` (its ${a.write.op} is still on its way)` : '';
    a.alive = false;
    a.write = null;
    a.restartAt = this.now + S + Math.floor(this.draw() * 119.88);
    a.dueAt = a.restartAt;
    if (a.role === 'primary') this.primaryImpairedAt = this.now;
    this.note(`${a.tag} CRASH${what}; restarts at ${sec(a.restartAt)}`);
  }

  restart(a: Agent): void {
    a.alive = true;
    a.restartAt = null;
    a.state = initialState(a.cfg);
    a.nextTickAt = this.now;
    a.dueAt = this.now;
    a.write = null;
    a.unconfirmedSince = null;
    a.health = [];
    a.armedStall = null;
    if (a.role === 'primary') this.primaryImpairedAt = this.now;
    this.note(`${a.tag} restart (initialState)`);
  }

  /** The runner's next step, when it falls due. */
  private runDue(a: Agent): void {
    if (!a.alive) this.restart(a);
    else if (!a.write) this.tick(a);
    else if (a.write.sentAt === null) this.send(a);
    else this.answer(a);
  }

  /**
   * A pause of up to 60 s: now (delaying whatever the runner does next), or armed to hit
   * right after its next read (between the read and the CAS built on it) or right after
   * its next send (before it sees the answer).
   */
  stall(a: Agent, x: number): void {
    if (!a.alive || this.fair || (this.run.timely && a.role === 'primary')) return;
    const by = Math.floor((x * MAX_STALL) / 1000);
    const when = (['now', 'after-read', 'after-send'] as const)[this.draw() % 3]!;
    if (when === 'now') this.pause(a, by);
    else {
      a.armedStall = { when, by };
      this.note(`${a.tag} will stall ${sec(by)} s ${when}`);
    }
  }

  private pause(a: Agent, by: number): void {
    a.dueAt += by;
    a.stalledUntil = a.dueAt;
    this.note(`${a.tag} STALLS ${sec(by)} s (next runner step at ${sec(a.dueAt)})`);
  }

  private armed(a: Agent, when: 'after-read' | 'after-send'): void {
    if (a.armedStall?.when !== when || this.fair) return;
    const { by } = a.armedStall;
    a.armedStall = null;
    this.pause(a, by);
  }

  // ---- the admin and the network ---------------------------------------------

  failbackRead(): void {
    if (!this.run.failback || this.admin) return;
    const r = this.model.tryRead('primary');
    if (!r.ok) return;
    const snap = r.snapshot;
    if (namedSite(snap, this.P.cfg) !== 'dr' || !snap.lease) return;
    this.admin = snap;
    this.note(`admin failback: read ${snapText(snap)}`);
  }

  failbackCas(): void {
    const seen = this.admin;
    if (!seen || (this.P.alive && this.P.write)) return;
    this.admin = null;
    const lease = transferred(seen.lease!, 'primary', wall(this.now));
    const sentAt = this.now;
    let outcome: WriteOutcome;
    let result: string;
    try {
      result = this.model.cas(seen, SITES.primary, lease, { client: 'primary', loseAnswer: this.draw() >= 900, by: 'admin failback', at: this.now });
      outcome = result === 'ok' ? { ok: true, snapshot: this.model.peek(), sentAt } : { ok: false, conflict: true, code: 'DNS_PREREQ_FAILED', message: 'NXRRSET' };
    } catch (err) {
      if (!(err instanceof DnsError)) throw err;
      result = `${err.code}${this.model.holds(SITES.primary, lease) ? ' (applied)' : ''}`;
      outcome = { ok: false, conflict: false, code: err.code, message: err.message };
    }
    const label = `admin failback CAS on ${snapText(seen)} => ${result}`;
    if (this.P.alive) this.feed(this.P, { kind: 'write', op: 'failback', outcome }, label);
    else this.note(`(primary agent down) ${label}`);
  }

  lateApply(): void {
    const p = this.late.shift();
    if (!p) return;
    if (this.now - p.sentAt > LATE_MAX) {
      this.note(`late ${p.from} sent@${sec(p.sentAt)} arrives: BADTIME, ignored`);
      return;
    }
    this.applyPacket(p, true);
  }

  toggleDns(who: Role[]): void {
    const up = who.every((r) => this.model.reachable(r));
    for (const r of who) this.model.setReachable(r, !up);
    if (who.includes('primary')) this.primaryImpairedAt = this.now;
    this.note(`DNS ${up ? 'CUT' : 'restored'} for ${who.join('+')}`);
  }

  // ---- scheduling ---------------------------------------------------------

  /** Moves the clock to `target`, running every runner step that falls due on the way, in time order. */
  advance(target: number): void {
    for (let n = 0; ; n++) {
      if (n > 10_000) this.fail('core-contract', 'more than 10000 runner steps without the clock reaching the next step: a busy loop');
      const agent = [this.P, this.D].filter((a) => a.alive || a.restartAt !== null).sort((a, b) => a.dueAt - b.dueAt)[0];
      const packet = [...this.net].sort((a, b) => a.applyAt - b.applyAt)[0];
      const at = Math.min(agent?.dueAt ?? Infinity, packet?.applyAt ?? Infinity);
      if (at > target) break;
      this.now = Math.max(this.now, at);
      if (packet && packet.applyAt === at) this.applyPacket(packet);
      else this.runDue(agent!);
      this.check();
    }
    this.now = Math.max(this.now, target);
    this.check();
  }

  step(st: Step): void {
    this.x = st.x;
    this.draws = 0;
    this.advance(this.now + st.dt);
    const { P, D } = this;
    const ev = eventOf(st.ev);
    const agent = ev.endsWith('-primary') ? P : D;
    switch (ev) {
      case 'idle':
        break;
      case 'tick-primary':
      case 'tick-dr':
        if (agent.alive && !agent.write && this.now >= agent.nextTickAt) this.tick(agent);
        break;
      case 'send-primary':
      case 'send-dr':
        if (agent.alive && agent.write && agent.write.sentAt === null) this.send(agent);
        break;
      case 'answer-primary':
      case 'answer-dr':
        if (agent.alive && agent.write && agent.write.sentAt !== null) this.answer(agent);
        break;
      case 'stall-primary':
      case 'stall-dr':
        this.stall(agent, st.x);
        break;
      case 'failback-read':
        // Mostly the admin's CAS follows its read at once; otherwise a later 'failback-cas' sends it.
        this.failbackRead();
        if (st.x < 700) this.failbackCas();
        break;
      case 'failback-cas':
        this.failbackCas();
        break;
      case 'crash-primary':
      case 'crash-dr':
        if (agent.alive) this.crash(agent);
        break;
      case 'partition':
        this.pathUp = !this.pathUp;
        this.note(`inter-site path ${this.pathUp ? 'restored' : 'CUT'}`);
        break;
      case 'dns-primary':
        this.toggleDns(['primary']);
        break;
      case 'dns-dr':
        this.toggleDns(['dr']);
        break;
      case 'dns-both':
        this.toggleDns(['primary', 'dr']);
        break;
      case 'late-apply':
        this.lateApply();
        break;
    }
    this.check();
    this.stats.steps++;
  }

  /** The primary dies for good; the DR reaches DNS; nothing stalls or fails from here. */
  livenessTail(): void {
    const { P, D } = this;
    this.note('--- liveness: the primary dies for good, the DR reaches DNS, no more faults or stalls ---');
    this.fair = true;
    D.armedStall = null;
    if (P.alive) this.crash(P);
    P.restartAt = null;
    this.admin = null;
    if (!this.model.reachable('dr')) this.toggleDns(['dr']);
    while (this.late.length) this.lateApply();
    for (const p of [...this.net]) this.applyPacket(p);
    if (!D.alive) this.restart(D);
    D.dueAt = Math.min(D.dueAt, Math.max(this.now, D.write ? this.now + DNS_GIVE_UP : D.nextTickAt)); // end any stall
    this.check();
    const t0 = this.now;
    while (!holdsValidLease(D.cfg, D.state, this.now)) {
      const bound = livenessBound(this.run.timing);
      if (this.now - t0 > bound) {
        this.fail('liveness', `the DR does not hold the lease ${sec(this.now - t0)} s after the primary died (bound ${sec(bound)} s)`);
      }
      this.advance(this.now + 100);
    }
    this.stats.livenessRuns++;
    const ratio = (this.now - t0) / livenessBound(this.run.timing);
    this.stats.livenessMaxRatio = Math.max(this.stats.livenessMaxRatio, ratio);
  }

  // ---- invariants -----------------------------------------------------------

  check(): void {
    this.checkHistory();
    if (!this.P.alive || !this.model.reachable('primary')) this.primaryImpairedAt = this.now;
    const cur = this.model.peek();
    const named = namedSite(cur, this.P.cfg);
    if (!named) this.fail('one-site', `the record names ${cur.addresses.join(', ') || 'nothing'}`);
    if (!cur.lease || cur.lease.holder !== named) this.fail('record-agrees-with-holder', `the witness holds ${snapText(cur)}`);

    const { P, D } = this;
    const pv = P.alive && holdsValidLease(P.cfg, P.state, this.now);
    const dv = D.alive && holdsValidLease(D.cfg, D.state, this.now);
    if (pv && dv) this.stats.bothValid++;
    // A DR whose view predates an admin failback: SPEC §3's failback does not wait for the DR, so the DR
    // cannot know it was overridden until it reads; only the primary must then hold back (mutual exclusion).
    const drBehindFailback = (D.state.seen?.lease?.epoch ?? 0) < this.failbackEpoch;
    if (pv && dv && !(RELAX.has('failback') && drBehindFailback)) this.fail('mutual-exclusion', 'both agents satisfy holdsValidLease');
    if (pv && cur.lease.holder !== 'primary') this.fail('witness-backed', `the primary satisfies holdsValidLease but the witness names the ${cur.lease.holder}`);
    if (dv && cur.lease.holder !== 'dr' && !drBehindFailback) this.fail('witness-backed', `the DR satisfies holdsValidLease but the witness names the ${cur.lease.holder}`);
  }

  private checkHistory(): void {
    const h = this.model.history;
    for (; this.checkedHistory < h.length; this.checkedHistory++) {
      const e = h[this.checkedHistory]!;
      const p = h[this.checkedHistory - 1]!.lease!;
      const site = e.addresses.length === 1 ? siteOf(e.addresses[0], SITES) : undefined;
      if (!site) this.fail('one-site', `write by ${e.by} left the record naming ${e.addresses.join(', ') || 'nothing'}`);
      const l = e.lease;
      if (!l || l.holder !== site) this.fail('record-agrees-with-holder', `write by ${e.by}: record names ${site}, lease ${l ? l.holder : 'invalid'}`);
      if (l.seq <= p.seq) this.fail('seq-monotonic', `write by ${e.by}: seq ${p.seq} -> ${l.seq}`);
      if (l.epoch < p.epoch) this.fail('epoch-monotonic', `write by ${e.by}: epoch ${p.epoch} -> ${l.epoch}`);
      const holderChanged = l.holder !== p.holder;
      if (holderChanged !== (l.epoch !== p.epoch) || (holderChanged && l.epoch !== p.epoch + 1)) {
        this.fail('epoch-iff-holder', `write by ${e.by}: ${p.holder} e${p.epoch} -> ${l.holder} e${l.epoch}`);
      }
      bump(this.stats.applied, e.by.replace(/^[PD] /, ''));
      if (e.by === 'admin failback') {
        this.failbackEpoch = l.epoch;
        if (this.D.alive && holdsValidLease(this.D.cfg, this.D.state, this.now)) this.stats.failbacksOverDrLease++;
      }
      if (e.by.startsWith('D takeover') && this.run.timely) {
        this.stats.takeoversTimely++;
        const since = (e.at ?? this.now) - this.primaryImpairedAt;
        const { ttl, max_skew } = this.run.timing.lease;
        if (since > ttl + max_skew) {
          this.fail('no-spurious-takeover', `the DR took over although the primary has been alive, reachable and timely for ${sec(since)} s (> ttl + max_skew)`);
        }
      }
    }
  }

  /** See the header: with self_fence, collecting needs a valid lease (bounded start-up exception). */
  private checkSelfFence(a: Agent): void {
    const c = a.cfg.collector;
    const s = a.state;
    if (!(c.control === 'systemd' && c.self_fence && s.collector === 'running') || holdsValidLease(a.cfg, s, this.now)) {
      a.unconfirmedSince = null;
      return;
    }
    if (s.ownSentAt !== null) this.fail('self-fence', `${a.tag} wants its collector running with self_fence = true after its lease ran out`);
    a.unconfirmedSince ??= this.now;
    const grace = RELAX.has('self-fence-unconfirmed') ? Infinity : this.run.timing.lease.ttl - this.run.timing.lease.max_skew;
    if (this.now - a.unconfirmedSince > grace) {
      this.fail(
        'self-fence',
        `${a.tag} has wanted its collector running (self_fence = true) for ${sec(this.now - a.unconfirmedSince)} s without a confirmed lease (> ttl - max_skew)`,
      );
    }
  }
}

function simulate(run: RunParams, stats: Stats): void {
  const sim = new Sim(run, stats);
  for (const st of run.steps) sim.step(st);
  if (run.liveness) sim.livenessTail();
  stats.runs++;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  dt: fc.integer({ min: 0, max: 15 * S }),
  ev: fc.nat({ max: 999 }),
  x: fc.nat({ max: 999 }),
});

/** Prints a run compactly: its options and only the steps that do something. */
function describeRun(r: RunParams): string {
  const busy = r.steps.flatMap((st, i) => (st.dt === 0 && eventOf(st.ev) === 'idle' ? [] : [`#${i} +${st.dt}ms ${eventOf(st.ev)}(x=${st.x})`]));
  const { steps, timing, ...opts } = r;
  return `timing #${TIMINGS.indexOf(timing)} ${JSON.stringify(opts)} ${steps.length} steps, ${busy.length} not (0 ms, idle): ${busy.join(', ')}`;
}

const runArb = (failback: boolean): fc.Arbitrary<RunParams> =>
  fc
    .record({
      timing: fc.constantFrom(...TIMINGS, TIMINGS[0]!, TIMINGS[0]!),
      control: fc.constantFrom<'systemd' | 'none'>('systemd', 'none'),
      selfFence: fc.boolean(),
      timely: fc.boolean(),
      liveness: fc.boolean(),
      failback: fc.constant(failback),
      steps: fc.array(stepArb, { minLength: MIN_STEPS, maxLength: MIN_STEPS + 50 }),
    })
    .map((r) => Object.assign(r, { [fc.toStringMethod]: () => describeRun(r) }));

function checkProperty(title: string, failback: boolean): void {
  const stats = newStats();
  const t0 = performance.now();
  fc.assert(
    fc.property(runArb(failback), (run) => simulate(run, stats)),
    // Bounded so that a failure (whose shrinking can be long) keeps the file within ~30 s; an interrupt
    // before NUM_RUNS passed counts as a failure, never as a silent pass.
    { seed: SEED, numRuns: NUM_RUNS, interruptAfterTimeLimit: SHRINK_BUDGET_MS, markInterruptAsFailure: true },
  );
  console.log(
    `${title}: ${stats.runs} runs, ${stats.steps} steps, ${sec(performance.now() - t0)} s (seed ${SEED}${RELAX.size ? `, RELAXED ${[...RELAX].join(',')}` : ''})\n` +
      `  writes applied: ${JSON.stringify(stats.applied)}\n  write fates: ${JSON.stringify(stats.fates)}; conflicts fed back: ${stats.conflicts}\n` +
      `  takeovers in timely runs: ${stats.takeoversTimely}; failbacks over a valid DR lease: ${stats.failbacksOverDrLease}; checks with both valid: ${stats.bothValid}\n` +
      `  liveness runs: ${stats.livenessRuns}, slowest DR takeover at ${(stats.livenessMaxRatio * 100).toFixed(0)} % of its bound`,
  );
}

describe('decide: random interleavings of primary and DR against an RFC 2136 witness model', () => {
  it('keeps one site, one lease holder and monotonic fencing (faults, crashes, stalls)', () => {
    checkProperty('without failback', false);
  });

  it('keeps them with admin failbacks at random points', () => {
    checkProperty('with admin failback', true);
  });
});

describe('the DNS model is the witness the agent talks to', () => {
  const names = DEFAULT_NAMES;
  const lease1: Lease = { holder: 'primary', epoch: 1, seq: 0, at: WALL0 };
  const witnessOn = (m: DnsModel, who = 'agent') => {
    const client = m.client(who);
    return { witness: new Witness(client as unknown as DnsClient, names, 'A'), client };
  };

  it('reads exactly what Witness.read() reads, whatever the zone holds', async () => {
    const m = new DnsModel('A', names);
    const { witness } = witnessOn(m);
    expect(await witness.read()).toEqual(m.read()); // empty zone
    m.load([SITES.primary], lease1);
    expect(await witness.read()).toEqual(m.read());
    expect(m.read()).toEqual({ addresses: [SITES.primary], addressType: 'A', leaseText: [formatLease(lease1)], lease: lease1 });
    // two TXT records, a malformed one, two addresses: leaseError / addresses as Witness reports them
    const t = { name: names.leaseName, type: 'TXT' as const };
    m.process(names.zone, [], [change.add({ ...t, data: ['v=1 holder=dr epoch=2 seq=1 at=5'] }, 30)]);
    expect(await witness.read()).toEqual(m.read());
    expect(m.read().leaseError).toMatch(/2 TXT records/);
    m.process(names.zone, [], [change.deleteRrset(t), change.add({ ...t, data: ['v=1 holder=', 'dr'] }, 30)]);
    expect(await witness.read()).toEqual(m.read());
    expect(m.read().leaseError).toMatch(/expected 5 fields/);
    m.process(names.zone, [], [change.add({ name: names.record, type: 'A', data: SITES.dr }, 30)]);
    expect(await witness.read()).toEqual(m.read());
    expect(m.read().addresses.sort()).toEqual([SITES.primary, SITES.dr].sort());
  });

  it('applies RFC 2136 prerequisites by value, as whole RRsets, all or nothing', () => {
    const m = new DnsModel('A', names);
    const a = { name: names.record, type: 'A' as const };
    const t = { name: names.leaseName, type: 'TXT' as const };
    m.process(names.zone, [], [change.add({ ...a, data: '10.0.0.1' }, 30), change.add({ ...a, data: '10.0.0.2' }, 30), change.add({ ...t, data: ['ab'] }, 30)]);
    const before = m.peek();
    const touch = [change.add({ ...a, data: '10.0.0.9' }, 30)];
    expect(m.process(names.zone, prereq.rrsetEquals(a, ['10.0.0.1']), touch)).toBe('NXRRSET'); // subset
    expect(m.process(names.zone, prereq.rrsetEquals(a, ['10.0.0.1', '10.0.0.2', '10.0.0.3']), touch)).toBe('NXRRSET'); // superset
    expect(m.process(names.zone, prereq.rrsetEquals(t, [['a', 'b']]), touch)).toBe('NXRRSET'); // other string split
    expect(m.process(names.zone, [prereq.rrsetAbsent(a)], touch)).toBe('YXRRSET');
    expect(m.process(names.zone, [prereq.rrsetExists({ name: names.record, type: 'AAAA' })], touch)).toBe('NXRRSET');
    expect(m.process(names.zone, [...prereq.rrsetEquals(t, [['ab']]), ...prereq.rrsetEquals(a, ['10.0.0.3'])], touch)).toBe('NXRRSET'); // one of two fails: nothing applied
    expect(m.process('other.org', [], touch)).toBe('NOTZONE');
    expect(m.peek()).toEqual(before);
    expect(m.process(names.zone, [...prereq.rrsetEquals(a, ['10.0.0.2', '10.0.0.1']), ...prereq.rrsetEquals(t, [['ab']])], touch)).toBe('NOERROR'); // any order
    expect(m.peek().addresses.sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.9']);
  });

  it('answers CAS like Witness.renew/transfer over the same server (ok, conflict, lost answer, recovery)', async () => {
    const viaWitness = new DnsModel('A', names);
    const viaCas = new DnsModel('A', names);
    for (const m of [viaWitness, viaCas]) m.load([SITES.primary], lease1);
    const { witness, client } = witnessOn(viaWitness);
    const seen0 = viaCas.read();
    // renew
    const r1 = await witness.renew(seen0, WALL0 + 10);
    expect(viaCas.cas(seen0, SITES.primary, renewed(lease1, WALL0 + 10))).toBe('ok');
    expect(viaWitness.peek()).toEqual(viaCas.peek());
    expect(r1.snapshot).toEqual(viaCas.read());
    // a stale snapshot: conflict both ways, nothing changes
    await expect(witness.transfer(seen0, 'dr', SITES, WALL0 + 20)).rejects.toMatchObject({ code: 'DNS_PREREQ_FAILED' });
    expect(viaCas.cas(seen0, SITES.dr, transferred(lease1, 'dr', WALL0 + 20))).toBe('conflict');
    expect(viaWitness.peek()).toEqual(viaCas.peek());
    // takeover from the fresh snapshot
    const seen1 = viaCas.read();
    await witness.transfer(seen1, 'dr', SITES, WALL0 + 30);
    expect(viaCas.cas(seen1, SITES.dr, transferred(seen1.lease!, 'dr', WALL0 + 30))).toBe('ok');
    expect(viaWitness.peek()).toEqual(viaCas.peek());
    expect(viaCas.peek().lease).toEqual({ holder: 'dr', epoch: 2, seq: 2, at: WALL0 + 30 });
    // lost answer: applied, the writer times out; its retry gets NXRRSET and Witness recovers (sentAt of the retry call)
    const seen2 = viaCas.read();
    client.loseNextAnswer();
    await expect(witness.renew(seen2, WALL0 + 40)).rejects.toMatchObject({ code: 'DNS_TIMEOUT' });
    expect(() => viaCas.cas(seen2, SITES.dr, renewed(seen2.lease!, WALL0 + 40), { loseAnswer: true })).toThrow(DnsError);
    expect(viaWitness.peek()).toEqual(viaCas.peek());
    const again = await witness.renew(seen2, WALL0 + 40);
    expect(again.recovered).toBe(true);
    expect(again.snapshot).toEqual(viaCas.read());
    expect(viaCas.holds(SITES.dr, renewed(seen2.lease!, WALL0 + 40))).toBe(true);
    // cut off: reads and writes time out
    viaWitness.setReachable('agent', false);
    await expect(witness.read()).rejects.toMatchObject({ code: 'DNS_TIMEOUT' });
    viaCas.setReachable('dr', false);
    expect(() => viaCas.read('dr')).toThrow(/cut off/);
    expect(() => viaCas.cas(seen2, SITES.dr, lease1, { client: 'dr' })).toThrow(/cut off/);
  });
});
