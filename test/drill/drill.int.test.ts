/**
 * The failover drill (scripts/drill.ts, the README's demo) as tests: one test per step, in
 * order, on the same two booted site containers (the installed .deb, a VictoriaMetrics each, a
 * stand-in collector that dual-writes samples), BIND as the witness. Each step waits (bounded,
 * on journal entries and witness reads) for what it claims and throws with what it saw; the
 * tests here add the figures' bounds. A step that changes things and fails leaves the later
 * ones "not run" (they would only fail for the same reason); the read-only gate check does not.
 *
 * `scripts/drill` runs the same steps as one command and prints the timeline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Drill, SERIES, SITES, TIMINGS } from '../../scripts/drill.js';

let drill: Drill;
let broken: string | null = null;

/** Runs a step unless an earlier state-changing step failed; a failure marks the drill broken unless soft. */
async function step<T>(name: string, fn: () => Promise<T>, soft = false): Promise<T> {
  if (broken) throw new Error(`not run: the step "${broken}" failed`);
  try {
    return await fn();
  } catch (e) {
    if (!soft) broken = name;
    throw e;
  }
}

const seconds = (d: string) => Number(d.replace(/s$/, ''));

beforeAll(async () => {
  drill = new Drill({ progress: process.env.DRILL_VERBOSE ? (l) => process.stderr.write(`${l}\n`) : undefined });
  try {
    await drill.setup();
  } catch (e) {
    broken = 'setup';
    throw e;
  }
}, 20 * 60_000);

afterAll(async () => {
  if (!drill) return;
  try {
    await drill.teardown();
  } finally {
    console.log(`failover drill timeline:\n${drill.renderTimeline()}\n\n${drill.summary()}`);
  }
}, 180_000);

describe.sequential('failover drill: power cut of the primary, takeover, repair, failback', { timeout: 180_000 }, () => {
  it('setup: both sites booted with the package installed and configured; the witness empty', () => {
    expect(broken).toBeNull();
    for (const role of ['primary', 'dr'] as const) {
      expect(drill.timeline.some((e) => e.source === role && /failover-agent \S+ installed/.test(e.text)), `${role} installed`).toBe(true);
      expect(drill.timeline.some((e) => e.source === role && /check-config ok/.test(e.text)), `${role} configured`).toBe(true);
    }
    expect(drill.dns?.last?.addresses).toEqual([]);
  });

  it('primary active: failoverctl init, both agents enabled, the primary collects into both VMs, the DR monitors it', async () => {
    const r = await step('primary active', () => drill.primaryActive());
    expect(r.initOutput).toMatch(/holder=primary epoch=1/);
    expect(drill.dns?.last?.addresses).toEqual([SITES.primary]);
    expect(drill.dns?.last?.lease).toMatchObject({ holder: 'primary', epoch: 1 });
    // the DR watching an active primary
    expect(r.drPhase).toBe('monitoring');
  });

  it('primary powered off: its agent, VM and collector are gone at once', async () => {
    const r = await step('power off', () => drill.powerOffPrimary());
    expect(r.at).toBeGreaterThan(drill.t0);
  });

  it('the DR takes over once the lease has run out, and starts its collector', async () => {
    const r = await step('takeover', () => drill.drTakesOver());
    const ttl = seconds(TIMINGS.lease_ttl);
    const skew = seconds(TIMINGS.max_skew);
    const renew = seconds(TIMINGS.renew_interval);
    // Never before the primary's own lease can have run out: it counts ttl - skew from the send
    // of its last confirmed renewal, at most one renewal interval before the cut.
    expect(r.dnsSeconds).toBeGreaterThanOrEqual(ttl - skew - renew);
    // And soon after: ttl + skew on the DR's clock from the last renewal it saw, plus a tick.
    expect(r.dnsSeconds).toBeLessThan(ttl + skew + 2 * renew + 2);
    expect(r.collectorSeconds).toBeGreaterThanOrEqual(r.dnsSeconds - 0.5);
    expect(r.collectorSeconds - r.dnsSeconds).toBeLessThan(3);
    expect(drill.dns?.last?.addresses).toEqual([SITES.dr]);
    expect(drill.dns?.last?.lease).toMatchObject({ holder: 'dr', epoch: 2 });
    expect(r.collectionGapSeconds).not.toBeNull();
  });

  it('the primary boots again from the same disk: package and config still there, standby, its VM with a gap', async () => {
    await step('primary back', () => drill.primaryBack());
    // The DR collected for a while that the primary's VM knows nothing of.
    expect(Number(drill.measured.samples_missed_in_outage)).toBeGreaterThanOrEqual(5 * SERIES);
    expect(drill.dns?.last?.addresses).toEqual([SITES.dr]);
  });

  it('right after the return the failback gate is closed: failoverctl failback --dry-run is refused (exit 1)', async () => {
    const r = await step('failback gate closed on return', () => drill.failbackGateClosedOnReturn(), true);
    expect(r.output).toMatch(/vmsync-failback-ready/);
  });

  it('the primary, passive, repairs its VM from the DR\'s and reports FAILBACK READY; both VMs agree', async () => {
    const r = await step('gap repaired', () => drill.gapRepaired());
    expect(r.samplesCopied).toBeGreaterThanOrEqual(Number(drill.measured.samples_missed_in_outage));
    expect(r.primaryCount).toBe(r.drCount);
    expect(r.readySeconds).toBeLessThan(90);
  });

  it('failoverctl failback: the record names the primary, its collector runs, the DR\'s is stopped', async () => {
    const r = await step('failback', () => drill.failback());
    expect(r.output).toMatch(/failback done/);
    expect(drill.dns?.last?.addresses).toEqual([SITES.primary]);
    expect(drill.dns?.last?.lease).toMatchObject({ holder: 'primary', epoch: 3 });
    expect(r.dnsSeconds).toBeLessThan(5);
    expect(r.drStoppedSeconds).toBeLessThan(2 * seconds(TIMINGS.collector_interval) + 5);
  });
});
