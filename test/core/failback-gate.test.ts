/**
 * The failback gate's pure functions (core/failback-gate.ts): the failover-start estimate, which
 * gate a failback waits for, and the count of consecutive clean checks (reset by a new epoch).
 */
import { describe, expect, it } from 'vitest';
import { chooseFailbackGate, failoverStart, gateAfterCheck, gateForFailover, type CheckOutcome, type GateCount } from '../../src/core/failback-gate.js';

const lease = (epoch: number, at: number) => ({ holder: 'dr' as const, epoch, seq: 7, at });
const fresh: GateCount = { failover: null, consecutive_clean: 0, failback_ready: false, failback_ready_since: null, last_clean_check: null };
const T = (n: number): string => new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString();

/** The count after the outcomes in order, and each check's change. */
function run(outcomes: CheckOutcome[], cleanChecks = 3, start: GateCount = fresh): { gate: GateCount; changes: (string | null)[] } {
  let gate = start;
  const changes: (string | null)[] = [];
  outcomes.forEach((o, i) => {
    const r = gateAfterCheck(gate, o, T(i), cleanChecks);
    gate = r.gate;
    changes.push(r.change);
  });
  return { gate, changes };
}

describe('failoverStart: the start of the current failover as a site can know it', () => {
  it('a new epoch: its lease at minus two renewals (rounded up to seconds)', () => {
    expect(failoverStart(null, lease(2, 1000), 10_000)).toEqual({ epoch: 2, since: 980 });
    expect(failoverStart(null, lease(2, 1000), 1500)).toEqual({ epoch: 2, since: 997 });
  });
  it('the same epoch keeps its first estimate, however the renewals move at', () => {
    const first = failoverStart(null, lease(2, 1000), 10_000);
    expect(failoverStart(first, lease(2, 1500), 10_000)).toBe(first);
  });
  it('another epoch replaces it; no lease read leaves it as it is', () => {
    const first = failoverStart(null, lease(2, 1000), 10_000);
    expect(failoverStart(first, lease(3, 2000), 10_000)).toEqual({ epoch: 3, since: 1980 });
    expect(failoverStart(first, null, 10_000)).toBe(first);
    expect(failoverStart(null, undefined, 10_000)).toBeNull();
  });
});

describe('chooseFailbackGate: which gate a failback waits for', () => {
  const notReady = { ready: false, detail: 'not ready (failover epoch 2): 1/3 consecutive clean checks' };
  it('VM sync disabled: no data gate, whatever a sync would say', () => {
    expect(chooseFailbackGate(false, notReady)).toEqual({ ready: true, detail: 'vmsync disabled: no data gate' });
    expect(chooseFailbackGate(false, null).ready).toBe(true);
  });
  it("enabled: the sync's gate; with no sync loop to ask, never ready", () => {
    expect(chooseFailbackGate(true, notReady)).toBe(notReady);
    expect(chooseFailbackGate(true, null)).toMatchObject({ ready: false, detail: expect.stringMatching(/no sync loop.*--force/) });
  });
});

describe('the count of consecutive clean checks', () => {
  it('READY at the clean_checks-th clean check in a row, and only then announced', () => {
    const { gate, changes } = run(['clean', 'clean', 'clean', 'clean']);
    expect(changes).toEqual([null, null, 'ready', null]);
    expect(gate).toMatchObject({ consecutive_clean: 4, failback_ready: true, failback_ready_since: T(2), last_clean_check: T(3) });
  });
  it('a gap or a failed check starts the count over and withdraws READY', () => {
    for (const bad of ['gap', 'error'] as const) {
      const { gate, changes } = run(['clean', 'clean', 'clean', bad, 'clean']);
      expect(changes).toEqual([null, null, 'ready', 'withdrawn', null]);
      expect(gate).toMatchObject({ consecutive_clean: 1, failback_ready: false, failback_ready_since: null, last_clean_check: T(4) });
    }
  });
  it('clean checks broken by a gap do not add up', () => {
    expect(run(['clean', 'clean', 'gap', 'clean', 'clean']).gate.failback_ready).toBe(false);
    expect(run(['clean', 'error', 'clean', 'clean', 'clean']).changes).toEqual([null, null, null, null, 'ready']);
  });
  it('clean_checks = 1: the first clean check opens it', () => {
    expect(run(['gap', 'clean'], 1).changes).toEqual([null, 'ready']);
  });
  it('keeps the rest of the state it is given (the whole vmsync.json passes through)', () => {
    const r = gateAfterCheck({ ...fresh, checks: 41 }, 'clean', T(0), 3);
    expect(r.gate.checks).toBe(41);
  });
});

describe('a new failover (another lease epoch) resets the count', () => {
  const readyFor2 = run(['clean', 'clean', 'clean'], 3, { ...fresh, failover: { epoch: 2, since: T(0) } }).gate;

  it('another epoch: the count and READY start over, naming the epoch replaced', () => {
    const { gate, reset } = gateForFailover(readyFor2, { epoch: 3, since: Date.parse(T(30)) / 1000 });
    expect(reset).toEqual({ previous: 2 });
    expect(gate).toMatchObject({ failover: { epoch: 3, since: T(30) }, consecutive_clean: 0, failback_ready: false, failback_ready_since: null });
    expect(run(['clean', 'clean'], 3, gate).gate.failback_ready).toBe(false);
  });
  it('the first failover known: counted from zero, no epoch replaced', () => {
    expect(gateForFailover(fresh, { epoch: 1, since: 0 }).reset).toEqual({ previous: null });
  });
  it('the same epoch keeps the count and READY, and the earliest start seen', () => {
    const later = gateForFailover(readyFor2, { epoch: 2, since: Date.parse(T(5)) / 1000 });
    expect(later).toEqual({ gate: readyFor2, reset: null });
    const earlier = gateForFailover(readyFor2, { epoch: 2, since: Date.parse(T(0)) / 1000 - 60 });
    expect(earlier.reset).toBeNull();
    expect(earlier.gate).toMatchObject({ failover: { epoch: 2, since: new Date(Date.parse(T(0)) - 60_000).toISOString() }, failback_ready: true, consecutive_clean: 3 });
  });
  it('no failover known: nothing changes', () => {
    expect(gateForFailover(readyFor2, null)).toEqual({ gate: readyFor2, reset: null });
  });
});
