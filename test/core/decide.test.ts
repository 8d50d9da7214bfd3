/**
 * Scenario table for the decision core: every branch, driven by a fake clock
 * (plain numbers: the core never reads a clock of its own).
 */
import { describe, expect, it } from 'vitest';
import { decide, holdsValidLease, initialState, readGapMs, siteHealth, type CollectorState, type CoreConfig, type CoreState, type Observation } from '../../src/core/decide.js';
import { formatLease, type Lease } from '../../src/lease/lease.js';
import type { Snapshot } from '../../src/lease/witness.js';

const P = '10.10.10.10';
const D = '10.20.20.20';

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

function snap(address: string | string[], lease: Lease | null, leaseError?: string): Snapshot {
  const s: Snapshot = {
    addresses: Array.isArray(address) ? address : [address],
    addressType: 'A',
    leaseText: lease ? [formatLease(lease)] : null,
    lease,
  };
  if (leaseError) s.leaseError = leaseError;
  return s;
}

const primaryLease = (seq: number, epoch = 1): Lease => ({ holder: 'primary', epoch, seq, at: 1000 + seq });
const drLease = (seq: number, epoch = 2): Lease => ({ holder: 'dr', epoch, seq, at: 2000 + seq });

const tick = (s: Snapshot | null, health?: boolean, collector?: CollectorState): Observation => ({
  kind: 'tick',
  dns: s ? { ok: true, snapshot: s } : { ok: false, code: 'DNS_TIMEOUT', message: 'no answer' },
  ...(health === undefined ? {} : { health: { ok: health, detail: health ? 'ok' : 'timeout' } }),
  ...(collector === undefined ? {} : { collector }),
});

/** Runs observations at given times; returns the last decision. */
function run(cfg: CoreConfig, steps: [number, Observation][], start?: CoreState) {
  let state = start ?? initialState(cfg);
  let last = { state, actions: [] as ReturnType<typeof decide>['actions'] };
  for (const [t, obs] of steps) {
    last = decide(cfg, state, obs, t);
    state = last.state;
  }
  return last;
}

const cas = (d: ReturnType<typeof decide>) => d.actions.filter((a) => a.type === 'cas');

/** n DR ticks every 10 s from `from`, the record naming the primary with `lease`, health failing (or not). */
const failing = (cfg: CoreConfig, lease: Lease, from: number, n: number, healthy = false): [number, Observation][] =>
  Array.from({ length: n }, (_, i) => [from + i * 10_000, tick(snap(P, lease), healthy)] as [number, Observation]);

describe('siteHealth (/healthz)', () => {
  it('a holder in the ttl + max_skew wait after a failback is healthy; one whose renewals stopped is not', () => {
    const cfg = config('primary');
    // The primary fails back: holder in epoch 3 from its own failback write, lease counts from 9 + 35 s.
    const st = decide(cfg, run(cfg, [[0, tick(snap(D, drLease(7)))]]).state, { kind: 'write', op: 'failback', outcome: { ok: true, snapshot: snap(P, primaryLease(8, 3)), sentAt: 5 } }, 9).state;
    expect(holdsValidLease(cfg, st, 10)).toBe(false);
    expect(st.phase).toBe('pending');
    expect(siteHealth(cfg, st, 10, 'active')).toEqual([true, null]);
    // renewals confirmed up to 5 ms; at ttl - max_skew after that send: lease lost, unhealthy
    expect(siteHealth(cfg, st, 5 + 24_999, 'active')).toEqual([true, null]);
    expect(siteHealth(cfg, st, 5 + 25_000, 'active')[0]).toBe(false);
    expect(siteHealth(cfg, st, 5 + 25_000, 'active')[1]).toMatch(/lease has run out/);
  });

  it('a site cut from the witness is unhealthy, even on standby (it cannot know it should be active, nor renew)', () => {
    const cfg = config('primary');
    const standby = run(cfg, [[0, tick(snap(D, drLease(7)))]]).state;
    expect(siteHealth(cfg, standby, 1, 'inactive')).toEqual([true, null]);
    const cut = decide(cfg, standby, tick(null), 10_000).state;
    expect(siteHealth(cfg, cut, 10_001, 'inactive')).toEqual([false, 'the witness is unreadable (1 failure(s) in a row)']);
    expect(siteHealth(cfg, decide(cfg, cut, tick(snap(D, drLease(8))), 20_000).state, 20_001, 'inactive')).toEqual([true, null]);
  });

  it('unhealthy before a verified read, before a confirmed renewal, and with the collector not as wanted', () => {
    const cfg = config('primary');
    expect(siteHealth(cfg, initialState(cfg), 0, null)).toEqual([false, 'no verified DNS read yet']);
    const first = run(cfg, [[0, tick(snap(P, primaryLease(4)))]]).state;
    expect(siteHealth(cfg, first, 1, 'active')).toEqual([false, 'the record names us but no renewal is confirmed yet']);
    const renewed = decide(cfg, first, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(5)), sentAt: 1 } }, 2).state;
    expect(siteHealth(cfg, renewed, 3, 'active')).toEqual([true, null]);
    expect(siteHealth(cfg, renewed, 3, 'failed')).toEqual([false, 'collector is failed but should be running']);
    // standby: healthy while its collector is stopped
    const standby = run(cfg, [[0, tick(snap(D, drLease(7)))]]).state;
    expect(siteHealth(cfg, standby, 1, 'inactive')).toEqual([true, null]);
    expect(siteHealth(cfg, standby, 1, 'active')[0]).toBe(false);
  });
});

describe('primary', () => {
  it('renews when the record names it and it holds the lease', () => {
    const cfg = config('primary');
    // A restart in the epoch it held (lease.json): the first tick renews, the confirmation makes it active.
    const d = run(cfg, [[0, tick(snap(P, primaryLease(4)))]], initialState(cfg, { heldEpoch: 1 }));
    expect(cas(d)).toEqual([{ type: 'cas', op: 'renew', seen: snap(P, primaryLease(4)) }]);
    expect(d.state.phase).toBe('starting');
    expect(d.state.reason).toMatch(/no renewal of ours is confirmed yet: renewing/);
    expect(d.state.collector).toBe('running');
    expect(d.state.nextTickMs).toBe(10_000);
    const w = decide(cfg, d.state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(5)), sentAt: 1 } }, 2);
    expect(w.state.phase).toBe('active');
    expect(w.state.reason).toMatch(/we hold the lease \(epoch 1\)/);
    expect(w.actions).toContainEqual(expect.objectContaining({ type: 'log', msg: w.state.reason, fields: expect.objectContaining({ event: 'decision', phase: 'active' }) }));
  });

  it('a holder whose lease does not count yet is "pending", steadily, with the time it counts from; then active once', () => {
    const cfg = config('primary');
    // Fresh start, epoch 1 not taken over by us (e.g. failoverctl init): counts from first seen + ttl + max_skew.
    let st = run(cfg, [[0, tick(snap(P, primaryLease(4)))]]).state;
    const phases: string[] = [];
    const decisionLogs: string[] = [];
    for (let t = 0, seq = 5; t <= 40_000; t += 10_000, seq += 2) {
      if (t > 0) {
        const d = decide(cfg, st, tick(snap(P, primaryLease(seq - 1))), t);
        for (const a of d.actions) if (a.type === 'log' && a.fields?.event === 'decision') decisionLogs.push(`${String(a.fields.phase)}: ${a.msg}`);
        st = d.state;
        phases.push(`${t} tick ${st.phase}`);
      }
      const w = decide(cfg, st, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(seq)), sentAt: t + 1 } }, t + 2);
      for (const a of w.actions) if (a.type === 'log' && a.fields?.event === 'decision') decisionLogs.push(`${String(a.fields.phase)}: ${a.msg}`);
      st = w.state;
      phases.push(`${t} write ${st.phase}`);
    }
    // valid from 0 + 30 s + 5 s: pending through the 30 s renewal, active from the 40 s tick on
    expect(phases).toEqual([
      '0 write pending',
      '10000 tick pending',
      '10000 write pending',
      '20000 tick pending',
      '20000 write pending',
      '30000 tick pending',
      '30000 write pending',
      '40000 tick active',
      '40000 write active',
    ]);
    expect(decisionLogs).toHaveLength(2); // one line on becoming pending, one on becoming active: no flapping
    // logged at the first write (t = 2 ms), valid from 35 s: "counts in 35.0 s" (a duration: the core's clock is monotonic)
    expect(decisionLogs[0]).toMatch(/^pending: .*our lease counts in 35\.0 s: ttl \+ max_skew after we became holder/);
    expect(decisionLogs.at(-1)).toMatch(/^active: the record names us and we hold the lease \(epoch 1\)/);
    expect(st.collector).toBe('running'); // self_fence off: DNS names us
  });

  it('after a restart in the epoch it held: valid from the SEND of its first confirmed renewal', () => {
    const cfg = config('primary');
    const start = initialState(cfg, { heldEpoch: 1 }); // persisted by the engine
    const d1 = run(cfg, [[0, tick(snap(P, primaryLease(4)))]], start);
    const d2 = decide(cfg, d1.state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(5)), sentAt: 100 } }, 150);
    expect(d2.state.ownSentAt).toBe(100);
    expect(holdsValidLease(cfg, d2.state, 150)).toBe(true);
    // Valid for ttl - max_skew from the SEND, not the answer.
    expect(holdsValidLease(cfg, d2.state, 100 + 24_999)).toBe(true);
    expect(holdsValidLease(cfg, d2.state, 100 + 25_000)).toBe(false);
  });

  it('holder in an epoch it cannot vouch for (failback, restart after a direct failback): valid only after ttl + max_skew', () => {
    const cfg = config('primary');
    // The witness names us in epoch 3, but we last held epoch 1: the DR may still think itself valid.
    const d1 = run(cfg, [[0, tick(snap(P, primaryLease(10, 3)))]], initialState(cfg, { heldEpoch: 1 }));
    let st = decide(cfg, d1.state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(11, 3)), sentAt: 10 } }, 20).state;
    expect(st.heldEpoch).toBe(3);
    expect(holdsValidLease(cfg, st, 20)).toBe(false);
    for (let t = 10_000; t <= 30_000; t += 10_000) {
      st = decide(cfg, st, tick(snap(P, primaryLease(11 + t / 10_000, 3))), t).state;
      st = decide(cfg, st, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(12 + t / 10_000, 3)), sentAt: t + 1 } }, t + 2).state;
    }
    expect(holdsValidLease(cfg, st, 34_999)).toBe(false);
    expect(holdsValidLease(cfg, st, 35_000)).toBe(true);
    // Our own failback: the same wait, counted from when we saw ourselves holder.
    const fb = decide(cfg, run(cfg, [[0, tick(snap(D, drLease(7)))]]).state, { kind: 'write', op: 'failback', outcome: { ok: true, snapshot: snap(P, primaryLease(8, 3)), sentAt: 5 } }, 9);
    expect(holdsValidLease(cfg, fb.state, 9)).toBe(false);
    expect(fb.state.validFrom).toBe(9 + 35_000);
  });

  it('with self_fence, no collector before the first confirmed renewal', () => {
    const d = run(config('primary', { self_fence: true }), [[0, tick(snap(P, primaryLease(4)))]]);
    expect(d.state.collector).toBe('stopped');
  });

  it('stands by and never writes when the record names the DR (no preemption)', () => {
    const d = run(config('primary'), [
      [0, tick(snap(D, drLease(7)))],
      [10_000, tick(snap(D, drLease(8)))],
      [600_000, tick(snap(D, drLease(8)))],
    ]);
    expect(cas(d)).toEqual([]);
    expect(d.state.phase).toBe('standby');
    expect(d.state.collector).toBe('stopped');
    expect(d.state.reason).toMatch(/DR active since .*run failoverctl failback when sync is ready/);
  });

  it('mode "always" keeps the collector running on standby', () => {
    const d = run(config('primary', { mode: 'always' }), [[0, tick(snap(D, drLease(7)))]]);
    expect(d.state.collector).toBe('running');
  });

  it('control "none" never asks for a collector state', () => {
    const d = run(config('primary', { control: 'none' }), [[0, tick(snap(P, primaryLease(1)))]]);
    expect(d.state.collector).toBeNull();
  });

  it('lease lost while DNS is unreachable: self-fences only with self_fence', () => {
    for (const self_fence of [true, false]) {
      const cfg = config('primary', { self_fence });
      const d1 = run(cfg, [[0, tick(snap(P, primaryLease(4)))]], initialState(cfg, { heldEpoch: 1 }));
      const d2 = decide(cfg, d1.state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(5)), sentAt: 0 } }, 10);
      const before = decide(cfg, d2.state, tick(null), 24_000);
      expect(before.state.phase).toBe('holding');
      expect(before.state.collector).toBe('running');
      const after = decide(cfg, before.state, tick(null), 25_001);
      expect(after.state.phase).toBe('fenced');
      expect(after.state.collector).toBe(self_fence ? 'stopped' : 'running');
      expect(cas(after)).toEqual([]);
    }
  });

  it('DNS unreachable: holds, counts, alerts once at 3, never writes', () => {
    const cfg = config('primary');
    const d = run(cfg, [
      [0, tick(snap(P, primaryLease(1)))],
      [10_000, tick(null)],
      [20_000, tick(null)],
    ]);
    expect(d.state.dnsFailures).toBe(2);
    const d3 = decide(cfg, d.state, tick(null), 30_000);
    expect(d3.actions.filter((a) => a.type === 'notify')).toHaveLength(1);
    expect(cas(d3)).toEqual([]);
    expect(d3.state.seen).toEqual(snap(P, primaryLease(1))); // last verified view kept
    expect(d3.state.reason).toMatch(/DNS unreadable.*keeping the current state \(3 in a row\)/);
  });

  it('conflict: re-read at once, no blind retry', () => {
    const cfg = config('primary');
    const d1 = run(cfg, [[0, tick(snap(P, primaryLease(4)))]]);
    const d2 = decide(cfg, d1.state, { kind: 'write', op: 'renew', outcome: { ok: false, conflict: true, code: 'DNS_PREREQ_FAILED', message: 'NXRRSET' } }, 50);
    expect(cas(d2)).toEqual([]);
    expect(d2.state.nextTickMs).toBe(0);
    expect(d2.state.decision).toBe('conflict');
    // The re-read shows the DR took over: stand by.
    const d3 = decide(cfg, d2.state, tick(snap(D, drLease(5))), 60);
    expect(d3.state.phase).toBe('standby');
    expect(cas(d3)).toEqual([]);
  });

  it('an inconsistent witness (record and lease disagree, no lease, two addresses) changes nothing', () => {
    for (const s of [snap(P, drLease(3)), snap(P, null, 'lease "x": expected 5 fields'), snap([P, D], primaryLease(1)), snap('10.30.30.30', primaryLease(1))]) {
      const d = run(config('primary'), [[0, tick(s)]]);
      expect(cas(d)).toEqual([]);
      expect(d.state.phase).toBe('holding');
      expect(d.state.decision).toBe('inconsistent');
    }
  });
});

describe('dr', () => {
  it('monitors a healthy primary', () => {
    const d = run(config('dr'), [[0, tick(snap(P, primaryLease(1)), true)]]);
    expect(d.state.phase).toBe('monitoring');
    expect(d.state.decision).toBe('monitor');
    expect(d.state.collector).toBe('stopped');
    expect(cas(d)).toEqual([]);
  });

  it('takes over after 3 failures AND the lease unchanged for ttl + max_skew', () => {
    const cfg = config('dr');
    // Same seq seen from t=0; failures at 0,10,20 s: 3/3 at 20 s but lease age 20 s < 35 s.
    const d3 = run(cfg, failing(cfg, primaryLease(9), 0, 3));
    expect(d3.state.decision).toBe('wait-lease');
    expect(cas(d3)).toEqual([]);
    const d4 = decide(cfg, d3.state, tick(snap(P, primaryLease(9)), false), 34_999);
    expect(cas(d4)).toEqual([]);
    const d5 = decide(cfg, d4.state, tick(snap(P, primaryLease(9)), false), 35_000);
    expect(cas(d5)).toEqual([{ type: 'cas', op: 'takeover', seen: snap(P, primaryLease(9)) }]);
    expect(d5.state.reason).toMatch(/health 3\/3 failed and the primary's lease \(seq 9\) unchanged for 35\.0 s/);
    const d6 = decide(cfg, d5.state, { kind: 'write', op: 'takeover', outcome: { ok: true, snapshot: snap(D, drLease(10)), sentAt: 35_001 } }, 35_020);
    expect(d6.state.phase).toBe('active');
    expect(d6.state.takeovers).toBe(1);
    expect(d6.state.collector).toBe('running');
    expect(d6.actions).toContainEqual(expect.objectContaining({ type: 'notify', event: 'failover' }));
  });

  it('health fails but the lease keeps being renewed (inter-site path cut): no takeover, and says why', () => {
    const cfg = config('dr');
    let state = initialState(cfg);
    let d!: ReturnType<typeof decide>;
    for (let i = 0; i < 20; i++) {
      d = decide(cfg, state, tick(snap(P, primaryLease(100 + i)), false), i * 10_000);
      state = d.state;
      expect(cas(d)).toEqual([]);
    }
    expect(d.state.decision).toBe('wait-lease');
    expect(d.state.reason).toMatch(/health 3\/3 failed but the primary's lease was renewed 0\.0 s ago/);
  });

  it('flapping health (fail, ok, fail, fail, ok, ...) never reaches the threshold', () => {
    const cfg = config('dr');
    const pattern = [false, true, false, false, true, false, true, false, false, true];
    let state = initialState(cfg);
    for (const [i, ok] of [...pattern, ...pattern, ...pattern].entries()) {
      const d = decide(cfg, state, tick(snap(P, primaryLease(5)), ok), i * 10_000);
      state = d.state;
      expect(cas(d)).toEqual([]);
      expect(state.healthFailures).toBeLessThan(3);
    }
  });

  it('self-check first: no takeover while its own collector unit is failed or missing', () => {
    for (const unit of ['failed', 'missing'] as const) {
      const cfg = config('dr');
      let state = initialState(cfg);
      let d!: ReturnType<typeof decide>;
      for (let i = 0; i <= 5; i++) {
        d = decide(cfg, state, tick(snap(P, primaryLease(1)), false, unit), i * 10_000);
        state = d.state;
      }
      expect(cas(d)).toEqual([]);
      expect(d.state.decision).toBe('refuse-takeover');
      expect(d.state.reason).toContain(`own collector unit is ${unit}`);
    }
  });

  it('DNS unreachable: no takeover whatever health says', () => {
    const cfg = config('dr');
    let state = run(cfg, [[0, tick(snap(P, primaryLease(1)), false)]]).state;
    for (let i = 1; i < 10; i++) {
      const d = decide(cfg, state, tick(null, false), i * 10_000);
      state = d.state;
      expect(cas(d)).toEqual([]);
    }
  });

  it('a read gap restarts the window: the lease counts as expired only after ttl + max_skew READ unchanged with no gap', () => {
    const cfg = config('dr'); // ttl 30 s + max_skew 5 s = 35 s
    // Seq 1 read at 0, then the witness unreadable for 90 s with health failing throughout.
    let state = run(cfg, [[0, tick(snap(P, primaryLease(1)), false)]]).state;
    for (let t = 10_000; t < 100_000; t += 10_000) state = decide(cfg, state, tick(null, false), t).state;
    // Readable again, the same seq: the 90 s it could not read are not 90 s of an unrenewed lease.
    const back = decide(cfg, state, tick(snap(P, primaryLease(1)), false), 100_000);
    expect(cas(back)).toEqual([]);
    expect(back.state.decision).toBe('wait-lease');
    state = back.state;
    const d = decide(cfg, state, tick(snap(P, primaryLease(1)), false), 102_100);
    expect(cas(d)).toEqual([]);
    expect(d.state.reason).toContain('witness readable again 2.1 s ago: watching the lease anew (takeover possible after 35.0 s unchanged)');
    // Reads every 10 s: 34.9 s of readable, unchanged lease: still no; 35 s: takeover.
    const watched = run(cfg, [110_000, 120_000, 130_000].map((t) => [t, tick(snap(P, primaryLease(1)), false)]), d.state).state;
    expect(cas(decide(cfg, watched, tick(snap(P, primaryLease(1)), false), 134_900))).toEqual([]);
    expect(cas(decide(cfg, watched, tick(snap(P, primaryLease(1)), false), 135_000))).toHaveLength(1);
    // A second gap inside the window restarts it again.
    const gap = run(cfg, [[110_000, tick(null, false)], ...[121_000, 131_000, 141_000, 151_000].map((t): [number, Observation] => [t, tick(snap(P, primaryLease(1)), false)])], d.state).state;
    expect(cas(decide(cfg, gap, tick(snap(P, primaryLease(1)), false), 155_900))).toEqual([]);
    expect(cas(decide(cfg, gap, tick(snap(P, primaryLease(1)), false), 156_000))).toHaveLength(1);
  });

  it('a stall is a read gap too: no read for longer than a tick + a DNS budget (paused, GC) restarts the window', () => {
    // A check that hangs to its timeout is not a stall: with health.timeout above the DNS budget the bound grows.
    expect(readGapMs({ ...config('dr'), health: { interval: 10_000, failures: 3, timeout: 9_000 } })).toBe(10_000 + 9_000 + 1_000);
    const cfg = config('dr'); // readGapMs = max(10 s, 10 s) + 6 s + 1 s = 17 s
    let state = run(cfg, failing(cfg, primaryLease(1), 0, 3)).state; // reads at 0, 10, 20 s
    // Paused from 20 s; the next read at 60 s shows the same seq: 60 s since first seen, but not watched.
    const back = decide(cfg, state, tick(snap(P, primaryLease(1)), false), 60_000);
    expect(cas(back)).toEqual([]);
    expect(back.state.reason).toContain('watching the lease anew');
    state = run(cfg, [70_000, 80_000, 90_000].map((t) => [t, tick(snap(P, primaryLease(1)), false)]), back.state).state;
    expect(cas(decide(cfg, state, tick(snap(P, primaryLease(1)), false), 95_000))).toHaveLength(1);
    // 17 s between reads is still a cadence (a slow read), 17.001 s is a stall.
    const slow = run(cfg, [[0, tick(snap(P, primaryLease(1)), false)], [17_000, tick(snap(P, primaryLease(1)), false)]]).state;
    expect(slow.leaseSince).toBe(0);
    const stalled = run(cfg, [[0, tick(snap(P, primaryLease(1)), false)], [17_001, tick(snap(P, primaryLease(1)), false)]]).state;
    expect(stalled.leaseSince).toBe(17_001);
  });

  it('without a read gap the window is not restarted (the rule above only delays)', () => {
    const cfg = config('dr');
    let state = run(cfg, [[0, tick(snap(P, primaryLease(1)), false)]]).state;
    for (let t = 10_000; t < 35_000; t += 10_000) state = decide(cfg, state, tick(snap(P, primaryLease(1)), false), t).state;
    expect(cas(decide(cfg, state, tick(snap(P, primaryLease(1)), false), 35_000))).toHaveLength(1);
  });

  it('renews its own lease once active', () => {
    const cfg = config('dr');
    const d = run(cfg, [[0, tick(snap(D, drLease(3)), false)]], initialState(cfg, { heldEpoch: 2 }));
    expect(cas(d)).toEqual([{ type: 'cas', op: 'renew', seen: snap(D, drLease(3)) }]);
    expect(d.state.nextTickMs).toBe(10_000);
    const w = decide(cfg, d.state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(D, drLease(4)), sentAt: 1 } }, 2);
    expect(w.state.phase).toBe('active');
  });

  it('after a failback it stands by and stops its collector', () => {
    const cfg = config('dr');
    const d1 = run(cfg, [[0, tick(snap(D, drLease(3)))]]);
    const d2 = decide(cfg, d1.state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(D, drLease(4)), sentAt: 1 } }, 2);
    expect(d2.state.collector).toBe('running');
    const d3 = decide(cfg, d2.state, tick(snap(P, primaryLease(5, 3)), true), 10_000);
    expect(d3.state.phase).toBe('monitoring');
    expect(d3.state.collector).toBe('stopped');
    expect(d3.state.ownSentAt).toBeNull();
  });

  it('a restarted DR judges lease age from its own first observation', () => {
    const cfg = config('dr');
    // Restart = initial state: even if the primary died long ago, wait ttl + skew again.
    const d = run(cfg, failing(cfg, primaryLease(2), 500_000, 3));
    expect(cas(d)).toEqual([]);
    expect(d.state.decision).toBe('wait-lease');
  });
});

describe('a write whose answer was lost', () => {
  const lost = (op: 'renew' | 'takeover', lease: Lease, sentAt: number): Observation => ({
    kind: 'write',
    op,
    outcome: { ok: false, conflict: false, code: 'DNS_TIMEOUT', message: 'no answer', attempted: { lease, sentAt } },
  });

  it('is confirmed by a read showing exactly our lease, counted from the FIRST send of that lease', () => {
    const cfg = config('primary'); // ttl 30 s - max_skew 5 s = 25 s
    // Renewal seq 5 confirmed (sent at 0); then seq 6 sent at 10 s and 12 s, both answers lost (applied).
    let state = run(cfg, [[0, tick(snap(P, primaryLease(4)))]], initialState(cfg, { heldEpoch: 1 })).state;
    state = decide(cfg, state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(5)), sentAt: 0 } }, 1).state;
    state = decide(cfg, state, lost('renew', primaryLease(6), 10_000), 16_000).state;
    state = decide(cfg, state, lost('renew', primaryLease(6), 12_000), 18_000).state;
    expect(state.ownSentAt).toBe(0);
    const d = decide(cfg, state, tick(snap(P, primaryLease(6))), 20_000);
    expect(d.state.ownSentAt).toBe(10_000);
    expect(d.state.unconfirmed).toBeNull();
    expect(d.actions.some((a) => a.type === 'log' && a.fields.event === 'write_confirmed_by_read')).toBe(true);
    // 26 s after the last ANSWERED renewal, but 16 s after the confirmed send: still active, not fenced.
    expect(decide(cfg, d.state, tick(null), 26_000).state.phase).toBe('holding');
    expect(holdsValidLease(cfg, d.state, 26_000)).toBe(true);
    expect(holdsValidLease(cfg, d.state, 35_000)).toBe(false);
    // Without the read, the same timeline is fenced at 26 s.
    expect(decide(cfg, state, tick(null), 26_000).state.phase).toBe('fenced');
  });

  it('is not confirmed by someone else\'s lease, nor by the lease it was written over', () => {
    const cfg = config('primary');
    let state = run(cfg, [[0, tick(snap(P, primaryLease(4)))]]).state;
    state = decide(cfg, state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(5)), sentAt: 0 } }, 1).state;
    state = decide(cfg, state, lost('renew', primaryLease(6), 10_000), 16_000).state;
    // Not applied (the old lease): the wait goes on, nothing confirmed.
    const old = decide(cfg, state, tick(snap(P, primaryLease(5))), 17_000).state;
    expect(old.ownSentAt).toBe(0);
    expect(old.unconfirmed).toMatchObject({ epoch: 1, seq: 6, sentAt: 10_000 });
    // The DR's lease with the same seq (a takeover): not ours, the wait ends without a confirmation.
    const dr = decide(cfg, state, tick(snap(D, { holder: 'dr', epoch: 2, seq: 6, at: 99 })), 17_000).state;
    expect(dr.ownSentAt).toBeNull();
    expect(dr.unconfirmed).toBeNull();
    expect(dr.phase).toBe('standby');
    // Our holder name and seq but another epoch: not ours either.
    const other = decide(cfg, state, tick(snap(P, primaryLease(6, 7))), 17_000).state;
    expect(other.ownSentAt).toBe(0);
    expect(other.unconfirmed).toBeNull();
  });

  it("a DR's takeover confirmed by a read counts as its own takeover (valid from the send, announced)", () => {
    const cfg = config('dr');
    let state = run(cfg, failing(cfg, primaryLease(1), 0, 5)).state;
    state = decide(cfg, state, lost('takeover', drLease(2, 2), 40_000), 46_000).state;
    const d = decide(cfg, state, tick(snap(D, drLease(2, 2))), 47_000);
    expect(d.state.takeovers).toBe(1);
    expect(d.state.validFrom).toBe(40_000);
    expect(holdsValidLease(cfg, d.state, 47_000)).toBe(true);
    expect(d.actions.some((a) => a.type === 'notify' && a.event === 'failover')).toBe(true);
    expect(d.state.phase).toBe('active');
  });
});

describe('the clock alone (a boundary of our lease window)', () => {
  it('at the end of the window the holder is fenced at once and, with self_fence, stops its collector', () => {
    const cfg = config('primary', { self_fence: true }); // ttl 30 s - max_skew 5 s = 25 s
    let state = run(cfg, [[0, tick(snap(P, primaryLease(4)))]], initialState(cfg, { heldEpoch: 1 })).state;
    state = decide(cfg, state, { kind: 'write', op: 'renew', outcome: { ok: true, snapshot: snap(P, primaryLease(5)), sentAt: 0 } }, 1).state;
    expect(state.collector).toBe('running');
    expect(decide(cfg, state, { kind: 'clock' }, 24_999).state.phase).toBe('active');
    const d = decide(cfg, state, { kind: 'clock' }, 25_000);
    expect(d.state.phase).toBe('fenced');
    expect(d.state.collector).toBe('stopped');
    expect(d.actions.filter((a) => a.type === 'cas')).toEqual([]);
    expect(d.state.nextTickMs).toBe(state.nextTickMs); // the tick schedule is the runner's, untouched
  });

  it('does nothing for a site that does not hold the lease', () => {
    const cfg = config('dr');
    const state = run(cfg, [[0, tick(snap(P, primaryLease(1)), true)]]).state;
    const d = decide(cfg, state, { kind: 'clock' }, 60_000);
    expect(d.state.phase).toBe(state.phase);
    expect(d.actions).toEqual([]);
  });
});

describe('decision logging', () => {
  it('logs the decision before the write it causes (causal order)', () => {
    const cfg = config('dr');
    const d = run(cfg, failing(cfg, primaryLease(1), 0, 5));
    const types = d.actions.map((a) => (a.type === 'log' ? `log:${a.fields.event}` : a.type));
    expect(types).toContain('cas');
    expect(types.indexOf('log:decision')).toBeGreaterThanOrEqual(0);
    expect(types.indexOf('log:decision')).toBeLessThan(types.indexOf('cas'));
    expect(types.lastIndexOf('cas')).toBe(types.length - 1);
  });

  it('logs a decision change once, not on every tick', () => {
    const cfg = config('dr');
    const d1 = run(cfg, [[0, tick(snap(P, primaryLease(1)), true)]]);
    expect(d1.actions.filter((a) => a.type === 'log' && a.fields.event === 'decision')).toHaveLength(1);
    const d2 = decide(cfg, d1.state, tick(snap(P, primaryLease(2)), true), 10_000);
    expect(d2.actions.filter((a) => a.type === 'log' && a.fields.event === 'decision')).toHaveLength(0);
  });
});
