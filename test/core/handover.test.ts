/**
 * The job, not only the host (issue 19): the holder judges its own collector and hands the job
 * over when it is broken and the other site is ready; no ping-pong within handover_hold; nothing
 * moves while paused or when no site can collect. Pure: a fake clock in plain numbers.
 */
import { describe, expect, it } from 'vitest';
import { collectorVerdict, decide, initialState, readiness, type CollectorEvidence, type CoreConfig, type CoreState, type Observation, type PeerReport } from '../../src/core/decide.js';
import { formatControl, parseControl, type Control } from '../../src/lease/control.js';
import { formatLease, type Lease } from '../../src/lease/lease.js';
import type { Snapshot } from '../../src/lease/witness.js';

const P = '10.10.10.10';
const D = '10.20.20.20';
const WALL = 1_800_000_000;

function config(role: 'primary' | 'dr', over: Partial<CoreConfig['collector']> = {}): CoreConfig {
  return {
    role,
    sites: { primary: P, dr: D },
    lease: { ttl: 30_000, renew_interval: 10_000, max_skew: 5_000 },
    health: { interval: 10_000, failures: 3, timeout: 3_000 },
    collector: { control: 'systemd', mode: 'when-active', self_fence: false, handover: true, restart_limit: 3, handover_after: 30_000, handover_hold: 1_800_000, ...over },
    dns: { budget: 6_000 },
  };
}

function snap(address: string, lease: Lease, control: Control = { pause: null, handover: null }): Snapshot {
  const controlText = formatControl(control);
  return { addresses: [address], addressType: 'A', leaseText: [formatLease(lease)], lease, controlText, control: parseControl(controlText) };
}

const pLease = (seq: number, epoch = 1): Lease => ({ holder: 'primary', epoch, seq, at: WALL + seq });
const dLease = (seq: number, epoch = 2): Lease => ({ holder: 'dr', epoch, seq, at: WALL + seq });

const ok: CollectorEvidence = { unit: 'active', crashes: [], probeFailingSince: null };
const failed: CollectorEvidence = { unit: 'failed', crashes: [], probeFailingSince: null };
const ready: PeerReport = { ready: true, detail: 'witness readable, collector unit inactive', collectorBroken: null };

type Tick = Extract<Observation, { kind: 'tick' }>;

function tick(s: Snapshot, evidence: CollectorEvidence, peer?: PeerReport, wallSeconds = WALL): Tick {
  return { kind: 'tick', dns: { ok: true, snapshot: s }, collector: evidence.unit, evidence, ...(peer ? { peer } : {}), wallSeconds };
}

/** A primary holding the lease with a confirmed renewal at t = 0. */
function holder(cfg: CoreConfig, lease = pLease(4)): CoreState {
  const first = decide(cfg, initialState(cfg, { heldEpoch: lease.epoch }), tick(snap(P, lease), ok), 0).state;
  return decide(cfg, first, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, { ...lease, seq: lease.seq + 1 }), sentAt: 0 } }, 1).state;
}

const casOf = (d: ReturnType<typeof decide>) => d.actions.filter((a) => a.type === 'cas');

describe('collectorVerdict: what counts as broken', () => {
  const cfg = config('primary');
  it('a failed or missing unit at once; restarts past the limit within handover_after; a probe failing that long', () => {
    expect(collectorVerdict(cfg, ok, 0)).toBeNull();
    expect(collectorVerdict(cfg, failed, 0)).toMatch(/has failed/);
    expect(collectorVerdict(cfg, { ...ok, unit: 'missing' }, 0)).toMatch(/not loadable/);
    // 3 restarts within 30 s is the limit, a 4th is past it; restarts older than 30 s do not count
    expect(collectorVerdict(cfg, { ...ok, crashes: [1_000, 2_000, 3_000] }, 10_000)).toBeNull();
    expect(collectorVerdict(cfg, { ...ok, crashes: [1_000, 2_000, 3_000, 4_000] }, 10_000)).toMatch(/restarted 4 times within 30.0 s \(collector.restart_limit 3\)/);
    expect(collectorVerdict(cfg, { ...ok, crashes: [1_000, 2_000, 3_000, 4_000] }, 31_001)).toBeNull();
    // the probe: failing for 29.9 s is not yet broken, 30 s is
    expect(collectorVerdict(cfg, { ...ok, probeFailingSince: 0, probeDetail: 'connect ECONNREFUSED' }, 29_900)).toBeNull();
    expect(collectorVerdict(cfg, { ...ok, probeFailingSince: 0, probeDetail: 'connect ECONNREFUSED' }, 30_000)).toMatch(/probe has failed for 30.0 s \(connect ECONNREFUSED\)/);
  });
});

describe('handover by the holder', () => {
  it('hands over when its collector is broken and the other site is ready: one CAS moving the record, recording the handover', () => {
    const cfg = config('primary');
    const d = decide(cfg, holder(cfg), tick(snap(P, pLease(5)), failed, ready), 5_000);
    const [c] = casOf(d);
    expect(c).toMatchObject({ type: 'cas', op: 'handover', to: 'dr' });
    const control = parseControl(c!.type === 'cas' && c!.op === 'handover' ? c!.control : null);
    expect(control.handover).toMatchObject({ from: 'primary', to: 'dr', epoch: 2, at: WALL, reason: 'collector-failed' });
    expect(control.handover!.detail).toMatch(/has failed/);
    expect(control.pause).toBeNull();
    expect(d.state.decision).toBe('handover');
    expect(d.state.reason).toMatch(/collector is broken .* and the dr is ready .*: handing the job over/);
    expect(d.actions).toContainEqual(expect.objectContaining({ type: 'notify', event: 'collector-broken' }));
    // the outcome: standby, the handover logged with its evidence and sent to the webhook
    const after = snap(D, dLease(6, 2), control);
    const w = decide(cfg, d.state, { kind: 'write', op: 'handover', outcome: { ok: true, snapshot: after, sentAt: 5_000 } }, 5_050);
    expect(w.state.phase).toBe('standby');
    expect(w.actions).toContainEqual(expect.objectContaining({ type: 'log', level: 'warning', fields: expect.objectContaining({ event: 'handover', reason: 'collector-failed', to: 'dr' }) }));
    expect(w.actions).toContainEqual(expect.objectContaining({ type: 'notify', event: 'handover' }));
    expect(w.state.collector).toBe('stopped');
  });

  it('stamps the handover with the latest the server clock can be: a read that took 16 s (an answer held up, a frozen process) moves the stamp 16 s later', () => {
    const cfg = config('primary');
    const slow = { ...snap(P, pLease(5)), offsetSeconds: 0, offsetSpanSeconds: 16.2 };
    const [c] = casOf(decide(cfg, holder(cfg), tick(slow, failed, ready), 5_000));
    const control = parseControl(c!.type === 'cas' && c!.op === 'handover' ? c!.control : null);
    // The offset, taken at receipt, is at least 16.2 s short of the truth if the server signed just after our send.
    expect(control.handover!.at).toBe(WALL + 17);
  });

  it('renews instead when the collector works, when handover is off, or when the peer is not confirmed ready', () => {
    const cfg = config('primary');
    expect(casOf(decide(cfg, holder(cfg), tick(snap(P, pLease(5)), ok, ready), 5_000))[0]).toMatchObject({ op: 'renew' });
    const off = config('primary', { handover: false });
    const d0 = decide(off, holder(off), tick(snap(P, pLease(5)), failed, ready), 5_000);
    expect(casOf(d0)[0]).toMatchObject({ op: 'renew' });
    expect(d0.state.reason).toMatch(/automatic handover is off/);
    // no (fresh) answer from the other site: no handover, and it says so (and alerts: collector-broken)
    const d1 = decide(cfg, holder(cfg), tick(snap(P, pLease(5)), failed), 5_000);
    expect(casOf(d1)[0]).toMatchObject({ op: 'renew' });
    expect(d1.state.reason).toMatch(/the dr's agent gave no answer .*cannot confirm it is ready/);
    expect(d1.actions).toContainEqual(expect.objectContaining({ type: 'notify', event: 'collector-broken' }));
    const d2 = decide(cfg, holder(cfg), tick(snap(P, pLease(5)), failed, { ready: false, detail: 'the witness is unreadable here', collectorBroken: null }), 5_000);
    expect(casOf(d2)[0]).toMatchObject({ op: 'renew' });
    expect(d2.state.reason).toMatch(/the dr is not ready \(the witness is unreadable here\)/);
    expect(d2.state.collectorBroken).toMatch(/has failed/);
  });

  it('both collectors broken: nothing moves and the status says no site can collect', () => {
    const cfg = config('primary');
    const d = decide(cfg, holder(cfg), tick(snap(P, pLease(5)), failed, { ready: false, detail: 'its collector unit is failed', collectorBroken: 'the collector unit is failed' }), 5_000);
    expect(casOf(d)[0]).toMatchObject({ op: 'renew' });
    expect(d.state.noSiteCanCollect).toBe(true);
    expect(d.state.reason).toMatch(/no site can collect/);
    // the standby DR sees it too: its own unit failed and the holder reporting its collector broken
    const dr = config('dr');
    const s = decide(dr, initialState(dr), { ...tick(snap(P, pLease(5)), failed, { ready: false, detail: 'x', collectorBroken: 'the collector unit has failed' }), health: { ok: true, detail: 'ok' } }, 0);
    expect(s.state.noSiteCanCollect).toBe(true);
    expect(s.state.reason).toMatch(/no site can collect/);
  });

  it('no ping-pong: no automatic handover within handover_hold of the last one (recorded at the witness), one after it', () => {
    const cfg = config('dr');
    const handedAt = WALL - 600; // 10 min ago
    const control: Control = { pause: null, handover: { from: 'primary', to: 'dr', epoch: 2, at: handedAt, reason: 'collector-failed', detail: 'the collector unit has failed' } };
    const seen = snap(D, dLease(9, 2), control);
    const st = holder(cfg, dLease(8, 2));
    const held = decide(cfg, st, tick(seen, failed, ready), 5_000);
    expect(casOf(held)[0]).toMatchObject({ op: 'renew' });
    expect(held.state.reason).toMatch(/within collector.handover_hold \(1800.0 s\)/);
    // the DR's status says it became active through the handover
    expect(held.state.reason).toMatch(/active through a handover from the primary at .*: the collector unit has failed/);
    // 30 min after the handover (on the server's clock as estimated, plus the slack of that estimate), it may hand back
    expect(casOf(decide(cfg, st, tick(seen, failed, ready, handedAt + 1_800), 5_000))[0]).toMatchObject({ op: 'renew' });
    const later = decide(cfg, st, tick(seen, failed, ready, handedAt + 1_804), 5_000);
    expect(casOf(later)[0]).toMatchObject({ op: 'handover', to: 'primary' });
  });

  it('a paused witness: the holder does not hand over, the DR does not take over; a --for pause ends by itself', () => {
    const pause = { by: 'ops/primary', since: WALL - 60, until: WALL + 3_600, reason: 'core switch upgrade' };
    const cfg = config('primary');
    const d = decide(cfg, holder(cfg), tick(snap(P, pLease(5), { pause, handover: null }), failed, ready), 5_000);
    expect(casOf(d)[0]).toMatchObject({ op: 'renew' });
    expect(d.state.reason).toMatch(/paused by ops\/primary since .* until .* \(core switch upgrade\)/);
    expect(d.state.paused).toEqual(pause);
    // after `until`: no longer in force
    const after = decide(cfg, holder(cfg), tick(snap(P, pLease(5), { pause, handover: null }), failed, ready, WALL + 3_600), 5_000);
    expect(casOf(after)[0]).toMatchObject({ op: 'handover' });

    // the DR: health failing and the lease long unchanged, but paused: no takeover
    const dr = config('dr');
    let s = initialState(dr);
    let last: ReturnType<typeof decide> | null = null;
    for (let t = 0; t <= 60_000; t += 10_000) {
      last = decide(dr, s, { ...tick(snap(P, pLease(5), { pause, handover: null }), { ...ok, unit: 'inactive' }), health: { ok: false, detail: 'timeout' } }, t);
      s = last.state;
      expect(casOf(last)).toEqual([]);
    }
    expect(last!.state.decision).toBe('paused');
    expect(last!.state.reason).toMatch(/no automatic takeover/);
    // resumed: the takeover follows at the next tick (the window was watched meanwhile)
    const resumed = decide(dr, s, { ...tick(snap(P, pLease(5)), { ...ok, unit: 'inactive' }), health: { ok: false, detail: 'timeout' } }, 70_000);
    expect(casOf(resumed)[0]).toMatchObject({ op: 'takeover' });
  });

  it('a control record it cannot parse counts as a pause (never act on what is not understood)', () => {
    const dr = config('dr');
    const bad: Snapshot = { ...snap(P, pLease(5)), controlText: ['v=2 something'], control: { pause: null, handover: null }, controlError: 'control: unknown entry' };
    let s = initialState(dr);
    for (let t = 0; t <= 60_000; t += 10_000) {
      const d = decide(dr, s, { ...tick(bad, { ...ok, unit: 'inactive' }), health: { ok: false, detail: 'timeout' } }, t);
      expect(casOf(d)).toEqual([]);
      s = d.state;
    }
    expect(s.reason).toMatch(/unreadable control record/);
  });

  it('mode = "always": the holder keeps its collector wanted running, and still hands over', () => {
    const cfg = config('primary', { mode: 'always' });
    const d = decide(cfg, holder(cfg), tick(snap(P, pLease(5)), failed, ready), 5_000);
    expect(casOf(d)[0]).toMatchObject({ op: 'handover' });
    const w = decide(cfg, d.state, { kind: 'write', op: 'handover', outcome: { ok: true, snapshot: snap(D, dLease(6, 2)), sentAt: 5_000 } }, 5_050);
    expect(w.state.collector).toBe('running');
  });

  it('with self_fence, a holder whose lease ran out does not judge a collector it does not run', () => {
    const cfg = config('primary', { self_fence: true });
    const d = decide(cfg, holder(cfg), tick(snap(P, pLease(5)), failed, ready), 40_000);
    expect(casOf(d)[0]).toMatchObject({ op: 'renew' });
    expect(d.state.collectorBroken).toBeNull();
  });
});

describe('readiness (what /healthz tells the other site)', () => {
  it('ready only with a readable witness, no pause, and a loadable collector unit that has not failed', () => {
    const cfg = config('dr');
    expect(readiness(cfg, initialState(cfg), 'inactive')).toEqual({ ready: false, detail: 'no verified DNS read yet' });
    const s = decide(cfg, initialState(cfg), { ...tick(snap(P, pLease(5)), { ...ok, unit: 'inactive' }), health: { ok: true, detail: 'ok' } }, 0).state;
    expect(readiness(cfg, s, 'inactive')).toEqual({ ready: true, detail: 'witness readable, collector unit inactive' });
    expect(readiness(cfg, s, 'failed').ready).toBe(false);
    expect(readiness(cfg, s, 'missing').ready).toBe(false);
    expect(readiness(cfg, { ...s, dnsFailures: 2 }, 'inactive').ready).toBe(false);
    expect(readiness(cfg, { ...s, paused: { by: 'x', since: 0, until: null, reason: '' } }, 'inactive').ready).toBe(false);
    expect(readiness(config('dr', { control: 'none' }), s, null).ready).toBe(true);
  });
});
