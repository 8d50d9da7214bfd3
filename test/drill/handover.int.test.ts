/**
 * The job, not only the host (issue 19), on booted systemd with the INSTALLED .deb, Debian 12 and
 * 13 (scripts/drill.ts: two site containers, BIND as the witness, a stand-in collector unit):
 * - the primary's collector dies (a drop-in `ExecStart=/bin/false`): the primary hands the job to
 *   the DR, which collects; the record names the DR;
 * - the DR's collector broken too: nothing moves, both statuses say no site can collect;
 * - a pause, then the primary's agent stopped: no takeover while paused; resume: the takeover
 *   follows within its bound.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Drill, SITES, TIMINGS } from '../../scripts/drill.js';

const seconds = (d: string): number => Number(d.replace(/ms$/, 'e-3').replace(/s$/, ''));
const ttl = seconds(TIMINGS.lease_ttl);
const skew = seconds(TIMINGS.max_skew);
const healthInterval = seconds(TIMINGS.health_interval);
const healthTimeout = seconds(TIMINGS.health_timeout);

describe.each(['bookworm', 'trixie'] as const)('collector handover and pause on %s (installed .deb, booted systemd)', { timeout: 240_000 }, (suite) => {
  let drill: Drill;
  let broken: string | null = null;

  async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (broken) throw new Error(`not run: the step "${broken}" failed`);
    try {
      return await fn();
    } catch (e) {
      broken = name;
      throw e;
    }
  }

  beforeAll(async () => {
    drill = new Drill({ suite, progress: process.env.DRILL_VERBOSE ? (l) => process.stderr.write(`${l}\n`) : undefined });
    try {
      await drill.setup();
      await drill.primaryActive();
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
      console.log(`handover drill (${suite}) timeline:\n${drill.renderTimeline()}`);
    }
  }, 180_000);

  it('the collector of the primary dies: the primary hands the job over, the DR collects, the record names the DR', async () => {
    const { at } = await step('break primary', () => drill.breakCollector('primary'));
    const r = await step('handover', () => drill.handedOver('primary', at));
    // The bound: the unit's failure is signalled at once (PropertiesChanged), the peer's readiness
    // is at most one health interval old, the CAS, the DR's next tick (one health interval plus
    // its read and check), the start job and its settle second: 2 x (interval + timeout) + 4 s.
    expect(r.collectorSeconds).toBeLessThanOrEqual(2 * (healthInterval + healthTimeout) + 4);
    expect(r.handoverLog).toMatch(/reason=collector-failed/);
    expect(r.handoverLog).toMatch(/evidence=/);
    expect(r.receiverReason).toMatch(/active through a handover from the primary/);
    const dr = await drill.status('dr');
    expect(dr?.active === true || dr?.phase === 'pending').toBe(true);
    const primary = (await drill.status('primary')) as { job?: { lastHandover?: { to: string } }; phase?: string };
    expect(primary.phase).toBe('standby');
    expect(primary.job?.lastHandover?.to).toBe('dr');
    expect(drill.dns!.last!.addresses).toEqual([SITES.dr]);
  });

  it('the collector of the DR broken too: nothing moves; both statuses say no site can collect', async () => {
    const { at } = await step('break dr', () => drill.breakCollector('dr'));
    const both = (s: Record<string, unknown>): boolean => (s.job as { noSiteCanCollect?: boolean } | undefined)?.noSiteCanCollect === true;
    const dr = await step('dr says', () => drill.waitStatus('dr', both, 30_000, 'no site can collect'));
    const pr = await step('primary says', () => drill.waitStatus('primary', both, 30_000, 'no site can collect'));
    expect(String(dr.reason)).toMatch(/no site can collect/);
    expect(String(pr.reason)).toMatch(/no site can collect/);
    // Nothing moves: watched for longer than a whole lease and a handover's detection (the
    // absence of an event can only be observed for a bounded time).
    await new Promise((r) => setTimeout(r, (ttl + skew + 2 * (healthInterval + healthTimeout)) * 1000));
    const sinceBreak = drill.epochsSince(at);
    expect(new Set(sinceBreak).size <= 1 && drill.dns!.last!.addresses[0] === SITES.dr).toBe(true);
    const out = await drill.ctl('dr', 'status').catch((e: Error) => e.message);
    expect(out).toMatch(/NO SITE CAN COLLECT/);
  });

  it('pause, then the agent of the primary stopped: no takeover while paused; after resume the DR takes over within its bound', async () => {
    // Back to a working primary holding the job: repair both collectors, fail back (an admin move works while the hold lasts).
    await step('repair', async () => {
      await drill.repairCollector('dr');
      await drill.repairCollector('primary');
    });
    await step('failback', () => drill.ctl('primary', 'failback --force'));
    await step('primary active again', () => drill.waitStatus('primary', (s) => s.active === true, 30_000, 'active'));
    const paused = await step('pause', () => drill.ctl('dr', 'pause --reason "switch upgrade"'));
    expect(paused).toMatch(/paused by .* \(switch upgrade\)/);
    await step('both see the pause', async () => {
      for (const role of ['primary', 'dr'] as const) await drill.waitStatus(role, (s) => (s.job as { pause?: unknown } | undefined)?.pause != null, 15_000, 'the pause');
    });
    const { at } = await step('stop primary agent', () => drill.stopAgent('primary'));
    const epochBefore = drill.dns!.last!.lease!.epoch;
    // The DR's health checks fail and the lease runs out: it says it would, but is paused.
    const dr = await step('dr paused', () =>
      drill.waitStatus('dr', (s) => s.decision === 'paused' && Number((s.health as { consecutiveFailures?: number }).consecutiveFailures) >= 3 && Number((s.lease as { unchangedSeconds?: number }).unchangedSeconds) > ttl + skew, 60_000, 'a takeover held back by the pause'),
    );
    expect(String(dr.reason)).toMatch(/paused by .*: no automatic takeover/);
    expect(drill.epochsSince(at).every((e) => e === epochBefore)).toBe(true);
    expect(drill.dns!.last!.addresses).toEqual([SITES.primary]);
    const resumedAt = Date.now();
    await step('resume', () => drill.ctl('primary', 'resume'));
    const dns = await step('takeover', () => drill.dns!.changes.wait((c) => c.snap.addresses[0] === SITES.dr && c.at >= resumedAt, 30_000, () => 'no takeover after resume', drill.dnsIndexAt(resumedAt)));
    // The lease was watched unchanged all along: the takeover needs only the DR's next tick and the CAS.
    expect((dns.at - resumedAt) / 1000).toBeLessThanOrEqual(2 * (healthInterval + healthTimeout) + 2);
    await drill.startAgent('primary');
  });
});
