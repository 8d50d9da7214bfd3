// The fault matrix (issue 13): agents from the INSTALLED .deb in booted containers on separate
// networks, BIND as the witness in its own namespace, real collectors (vmagent) scraping real
// targets into both sites' VictoriaMetrics; each case one fault, measured from outside by the
// checker; keepalived beside the agent for the power cut and the site<->site cut.
// README "Fault matrix" and docs/RELIABILITY.md give the figures; `scripts/faults` writes them.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordChanges, renewalFigures, type CaseFigures, type Sample } from './analyze.js';
import { agentStatus, measure, observe, type MeasureOptions } from './case.js';
import { startKeepalived, sampleVip, vipFigures, type Keepalived, type VipSample } from './keepalived.js';
import { checkDelayer, createWorld as createNet, type DelayerCheck } from './net.js';
import type { SenderRow } from './push.js';
import { RECORD_TTL_S } from './sites.js';
import { createWorld, SITE_NODE, type Node, type World } from './world.js';

const results: CaseFigures[] = [];
/** the push senders' rows per case (./push.ts): measured beside the pull-side figures */
const senderRows: SenderRow[] = [];
let world: World;
let delayer: DelayerCheck | null = null;
/** the degraded-WAN soak: 2 minutes in CI, 10 with `scripts/faults --soak` (FAULTS_SOAK_S=600) */
const SOAK_S = Number(process.env.FAULTS_SOAK_S ?? 120);
const CASE_MS = 6 * 60_000 + SOAK_S * 1000;

const P = (): string => world.net.addr.site1;
const D = (): string => world.net.addr.site2;
const primaryAlone = (s: Sample): boolean => s.record === P() && s.agents.primary.active && s.collectors.primary && !s.collectors.dr;
const drAlone = (s: Sample): boolean => s.record === D() && s.agents.dr.active && s.collectors.dr;
const primaryStood = (s: Sample): boolean => s.agents.primary.answered && !s.agents.primary.active && !s.collectors.primary;

/** both directions of a link */
async function cut(a: Node, b: Node): Promise<void> {
  await world.net.drop(a, b);
  await world.net.drop(b, a);
}
async function heal(a: Node, b: Node): Promise<void> {
  await world.net.undrop(a, b);
  await world.net.undrop(b, a);
}

/** The case's window starts with 2 s of the steady state. */
async function begin(timings: Parameters<World['reset']>[0] = {}): Promise<number> {
  await world.reset(timings);
  const fromMs = Date.now();
  await observe(2000);
  return fromMs;
}

function record(f: CaseFigures & { lostExamples?: string[] }): CaseFigures {
  const { lostExamples, ...row } = f;
  if (lostExamples?.length) console.log(`${f.name}: samples lost, e.g.\n  ${lostExamples.join('\n  ')}`);
  results.push(row);
  console.log(JSON.stringify(row));
  // the row in `results` is what the report shows; `pass` is set on it when the case's checks held
  return row;
}

/** The case's figures, and the push senders' rows for the same window. */
async function measureAll(o: MeasureOptions & { senderTargets?: boolean }): ReturnType<typeof measure> {
  const f = await measure(world, o);
  const samples = world.checker.since(o.fromMs).filter((s) => s.wallMs <= o.toMs);
  const rows = world.push.rows({ name: o.name, fromMs: o.fromMs, toMs: o.toMs, samples, siteOf: world.siteOf, recordTtlS: RECORD_TTL_S, deadSites: o.lostSites });
  for (const r of rows) {
    senderRows.push(r);
    console.log(JSON.stringify(r));
  }
  // The documented sender configuration meets its targets (issue 20); the defaults are measured.
  // With self_fence off a site cut from the witness keeps its collector, and so its receiver,
  // running while it says fenced: lines still reach it (docs/SENDERS.md: set self_fence = true).
  const excused = (m: string): boolean => !world.timings.selfFence && /knew it was not active/.test(m);
  // (Where no site can collect, nothing can receive: the senders' figures are measured, not judged.)
  if (o.senderTargets !== false) for (const r of rows.filter((x) => x.documented)) expect(r.failures.filter((m) => !excused(m)), `${r.sender} in "${r.name}"`).toEqual([]);
  return f;
}

/** SIGCONT; the process may be gone (a watchdog kill is a possible end of a pause). */
function resume(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    /* gone */
  }
}

const window = (fromMs: number): Sample[] => world.checker.since(fromMs);
const drNeverActive = (fromMs: number): boolean => window(fromMs).every((s) => !s.agents.dr.active && !s.collectors.dr);

describe.sequential('fault matrix: failover-agent', () => {
  beforeAll(async () => {
    const net = await createNet();
    try {
      delayer = await checkDelayer(net);
    } catch (err) {
      await net.destroy();
      throw err;
    }
    expect(delayer.failures).toEqual([]);
    world = await createWorld(net, { prefix: `fm${process.pid % 10000}` });
  }, 20 * 60_000);
  afterAll(async () => {
    await world?.destroy();
    const out = process.env.FAULTS_RESULTS;
    if (out) fs.writeFileSync(out, JSON.stringify({ timings: world?.timings, soak_s: SOAK_S, delayer, cases: results, senders: senderRows, record_ttl_s: RECORD_TTL_S }, null, 1) + '\n');
  }, 180_000);

  it('primary agent SIGKILL: the restarted agent carries on; its collector ran throughout; no failover', async () => {
    const fromMs = await begin();
    const pid = await world.sites.primary.agentPid();
    expect(pid).toBeGreaterThan(0);
    const faultMs = Date.now();
    process.kill(pid, 'SIGKILL');
    await world.checker.until((s) => !s.agents.primary.answered, 10_000, 'the killed agent stops answering');
    await world.checker.until((s) => s.agents.primary.active, 30_000, 'the restarted primary active again');
    await observe(2000);
    const f = record(await measureAll({ name: 'primary agent SIGKILL', fromMs, toMs: Date.now(), faultMs }));
    expect(window(fromMs).every((s) => s.collectors.primary)).toBe(true);
    expect(drNeverActive(fromMs)).toBe(true);
    expect([f.split_brain_s, f.samples_lost, f.gap_s, f.overlap_s]).toEqual([0, 0, 0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('primary agent SIGSTOP past the lease: the DR takes over; the resumed primary stands by', async () => {
    const fromMs = await begin();
    const pid = await world.sites.primary.agentPid();
    const faultMs = Date.now();
    process.kill(pid, 'SIGSTOP');
    try {
      await world.checker.until(drAlone, 30_000, 'the DR active and collecting');
      await observe(2000);
    } finally {
      resume(pid);
    }
    await world.checker.until(primaryStood, 30_000, 'the resumed primary not active, its collector stopped');
    await observe(2000);
    const f = record(await measureAll({ name: 'primary agent SIGSTOP past the lease', fromMs, toMs: Date.now(), faultMs, failoverTo: 'dr' }));
    expect(f.failover_s).not.toBeNull();
    expect(recordChanges(window(fromMs))).toBe(1);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('site<->site cut, DNS reachable: no takeover for 10 detection periods; the DR says why', async () => {
    const fromMs = await begin();
    const t = world.timings;
    const periodMs = t.healthFailures * parseFloat(t.healthInterval) * 1000;
    const faultMs = Date.now();
    await cut('site1', 'site2');
    await observe(10 * periodMs);
    const st = await agentStatus(world.sites.dr);
    await heal('site1', 'site2');
    await observe(3000);
    const f = record(await measureAll({ name: 'site<->site cut, DNS reachable', fromMs, toMs: Date.now(), faultMs }));
    expect(String(st?.reason)).toMatch(/health \d+\/\d+ failed but the primary's lease was renewed .* ago .*: not taking over/);
    expect(drNeverActive(fromMs)).toBe(true);
    expect(recordChanges(window(fromMs))).toBe(0);
    expect([f.split_brain_s, f.samples_lost, f.gap_s, f.overlap_s]).toEqual([0, 0, 0, 0]);
    f.pass = true;
  }, CASE_MS);

  for (const selfFence of [false, true]) {
    it(`primary isolated from DNS and DR (self_fence = ${selfFence}): the DR takes over${selfFence ? ', no overlap' : '; the overlap is measured'}; nothing lost`, async () => {
      const fromMs = await begin({ selfFence });
      const faultMs = Date.now();
      await cut('site1', 'witness');
      await cut('site1', 'site2');
      await world.checker.until(drAlone, 30_000, 'the DR active and collecting');
      await observe(3000);
      await heal('site1', 'witness');
      await heal('site1', 'site2');
      await world.checker.until(primaryStood, 30_000, 'the healed primary standing by');
      await observe(2000);
      // What the cut-off primary scraped reaches the DR's VictoriaMetrics only through the active
      // site's backfill (README "Decisions", VM sync): its collector is stopped on demotion.
      const f = record(await measureAll({ name: `primary isolated from DNS and DR (self_fence ${selfFence ? 'on' : 'off'})`, fromMs, toMs: Date.now(), faultMs, failoverTo: 'dr' }));
      expect(f.failover_s).not.toBeNull();
      expect(recordChanges(window(fromMs))).toBe(1);
      expect(f.split_brain_s).toBe(0);
      if (selfFence) expect(f.overlap_s).toBe(0);
      expect(f.samples_lost).toBe(0);
      f.pass = true;
    }, CASE_MS);
  }

  it('DR isolated: no change, none after healing', async () => {
    const fromMs = await begin();
    const faultMs = Date.now();
    await cut('site2', 'witness');
    await cut('site2', 'site1');
    await observe(15_000);
    await heal('site2', 'witness');
    await heal('site2', 'site1');
    await observe(10_000);
    const f = record(await measureAll({ name: 'DR isolated', fromMs, toMs: Date.now(), faultMs }));
    expect(drNeverActive(fromMs)).toBe(true);
    expect(recordChanges(window(fromMs))).toBe(0);
    expect([f.split_brain_s, f.samples_lost, f.gap_s, f.overlap_s]).toEqual([0, 0, 0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('DNS unreachable from both sites: no change', async () => {
    const fromMs = await begin();
    const faultMs = Date.now();
    await cut('site1', 'witness');
    await cut('site2', 'witness');
    await observe(15_000);
    await heal('site1', 'witness');
    await heal('site2', 'witness');
    await world.checker.until(primaryAlone, 30_000, 'the primary active again');
    await observe(5000);
    const f = record(await measureAll({ name: 'DNS unreachable from both', fromMs, toMs: Date.now(), faultMs }));
    expect(drNeverActive(fromMs)).toBe(true);
    expect(recordChanges(window(fromMs))).toBe(0);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('both sites lose the witness for 30 s, the DR regains it 3 s before the primary: no takeover', async () => {
    const fromMs = await begin();
    const faultMs = Date.now();
    await cut('site1', 'witness');
    await cut('site2', 'witness');
    await observe(30_000);
    await heal('site2', 'witness');
    await observe(3000);
    await heal('site1', 'witness');
    await world.checker.until(primaryAlone, 30_000, 'the primary active again');
    await observe(10_000);
    const f = record(await measureAll({ name: 'uneven witness outage (30 s, DR back 3 s first)', fromMs, toMs: Date.now(), faultMs }));
    expect(drNeverActive(fromMs)).toBe(true);
    expect(recordChanges(window(fromMs))).toBe(0);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('the witness killed while the takeover update is due, then restarted: one takeover, no split brain', async () => {
    const fromMs = await begin();
    const t = world.timings;
    const expiryS = parseFloat(t.ttl) + parseFloat(t.maxSkew);
    const pid = await world.sites.primary.agentPid();
    const faultMs = Date.now();
    process.kill(pid, 'SIGSTOP');
    try {
      // The DR writes once the lease has been unchanged for ttl + max_skew: kill the witness just before.
      for (let i = 0; i < 300; i++) {
        const st = await agentStatus(world.sites.dr);
        const age = (st?.lease as { unchangedSeconds?: number | null } | undefined)?.unchangedSeconds ?? 0;
        if (age >= expiryS - 0.3) break;
        await observe(50);
      }
      process.kill(world.witness.pid, 'SIGKILL');
      await observe(2000);
      await world.witness.restart();
      await world.checker.until(drAlone, 30_000, 'the DR active and collecting after the witness restart');
      await observe(2000);
    } finally {
      resume(pid);
    }
    await world.checker.until(primaryStood, 30_000, 'the resumed primary standing by');
    await observe(2000);
    const f = record(await measureAll({ name: 'witness killed during the takeover update, restarted', fromMs, toMs: Date.now(), faultMs, failoverTo: 'dr' }));
    expect(recordChanges(window(fromMs))).toBe(1);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('the witness paused (SIGSTOP) for 15 s: no change', async () => {
    const fromMs = await begin();
    const faultMs = Date.now();
    process.kill(world.witness.pid, 'SIGSTOP');
    try {
      await observe(15_000);
    } finally {
      process.kill(world.witness.pid, 'SIGCONT');
    }
    await world.checker.until(primaryAlone, 30_000, 'the primary active again');
    await observe(5000);
    const f = record(await measureAll({ name: 'witness paused 15 s', fromMs, toMs: Date.now(), faultMs }));
    expect(drNeverActive(fromMs)).toBe(true);
    expect(recordChanges(window(fromMs))).toBe(0);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  // The lossy-WAN margin (README "Tuning for a lossy WAN"): ttl 6 s, renew 1 s, max_skew 1 s with
  // dns.timeout 500 ms and 2 retries (check-config: OK). Issue 21's target, never fenced at 20 %
  // loss, is NOT met yet (docs/RELIABILITY.md: 4.7 s in 10 minutes): the fenced time is measured
  // and reported, the absence of a failover and of split brain is required.
  for (const lossPct of [20, 30]) {
    it(`every WAN link at 200 ms RTT, 50 ms jitter, ${lossPct} % loss for ${SOAK_S} s: no spurious failover${lossPct === 20 ? '' : ' (measured)'}; fenced time measured`, async () => {
      const fromMs = await begin({ dnsRetries: 2 });
      const links: [Node, Node][] = [['site1', 'witness'], ['site2', 'witness'], ['site1', 'site2']];
      const faultMs = Date.now();
      for (const [a, b] of links) {
        await world.net.impair(a, b, { delayMs: 100, jitterMs: 50, lossPct });
        await world.net.impair(b, a, { delayMs: 100, jitterMs: 50, lossPct });
      }
      let impaired: Sample[] = [];
      try {
        await observe(SOAK_S * 1000);
        impaired = window(faultMs);
      } finally {
        await world.net.heal();
      }
      await world.checker.until(primaryAlone, 30_000, 'the primary active');
      await observe(3000);
      const f = record(await measureAll({ name: `degraded WAN (200 ms RTT, 50 ms jitter, ${lossPct} % loss, ${SOAK_S} s)`, fromMs, toMs: Date.now(), faultMs }));
      // The renewals under the impairment alone (the steady seconds around it would flatter them).
      Object.assign(f, renewalFigures(impaired));
      console.log(JSON.stringify({ lossPct, fenced_s: f.fenced_s, renewals_per_min: f.renewals_per_min, longest_unrenewed_s: f.longest_unrenewed_s }));
      expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
      if (lossPct === 20) {
        expect(drNeverActive(fromMs)).toBe(true);
        expect(recordChanges(window(fromMs))).toBe(0);
      }
      f.pass = true;
    }, CASE_MS);
  }

  it('the primary<->DNS link flapping 2 s down / 2 s up for 60 s: at most one failover, no flip-flop', async () => {
    const fromMs = await begin();
    const faultMs = Date.now();
    for (let i = 0; i < 15; i++) {
      await cut('site1', 'witness');
      await observe(2000);
      await heal('site1', 'witness');
      await observe(2000);
    }
    await observe(5000);
    const f = record(await measureAll({ name: 'primary<->DNS flapping 2 s / 2 s for 60 s', fromMs, toMs: Date.now(), faultMs, failoverTo: 'dr' }));
    expect(recordChanges(window(fromMs))).toBeLessThanOrEqual(1);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  it("answers from DNS to the primary lost while its updates apply: no split brain, at most one failover", async () => {
    const fromMs = await begin();
    const faultMs = Date.now();
    await world.net.drop('witness', 'site1');
    await observe(20_000);
    await world.net.undrop('witness', 'site1');
    await observe(10_000);
    const f = record(await measureAll({ name: 'answers DNS -> primary lost (updates apply)', fromMs, toMs: Date.now(), faultMs, failoverTo: 'dr' }));
    expect(recordChanges(window(fromMs))).toBeLessThanOrEqual(1);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('both sites restarted at once: the primary carries on', async () => {
    const fromMs = await begin();
    const faultMs = Date.now();
    await Promise.all((['primary', 'dr'] as const).map((r) => world.sites[r].sh(`systemctl restart failover-agent@${r}.service`, 120_000)));
    await world.checker.until((s) => s.agents.primary.active && s.agents.dr.answered, 30_000, 'both agents back, the primary active');
    const t = world.timings;
    await observe((parseFloat(t.ttl) + parseFloat(t.maxSkew) + 3) * 1000);
    const f = record(await measureAll({ name: 'both sites restarted at once', fromMs, toMs: Date.now(), faultMs }));
    expect(drNeverActive(fromMs)).toBe(true);
    expect(recordChanges(window(fromMs))).toBe(0);
    expect([f.split_brain_s, f.samples_lost, f.gap_s]).toEqual([0, 0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('failback under 10 % loss on every WAN link: done, one move, no split brain', async () => {
    await begin();
    await world.sites.primary.sh('failoverctl --instance primary switchover');
    await world.checker.until(drAlone, 30_000, 'the DR active after the switchover');
    const fromMs = Date.now();
    const links: [Node, Node][] = [['site1', 'witness'], ['site2', 'witness'], ['site1', 'site2']];
    for (const [a, b] of links) {
      await world.net.impair(a, b, { delayMs: 0, jitterMs: 0, lossPct: 10 });
      await world.net.impair(b, a, { delayMs: 0, jitterMs: 0, lossPct: 10 });
    }
    let out = '';
    const faultMs = Date.now();
    try {
      // VM sync must say FAILBACK READY first (clean_checks = 1); a refusal says why.
      for (let i = 0; i < 20; i++) {
        const r = await world.sites.primary.container.exec(['failoverctl', '--instance', 'primary', 'failback'], { timeoutMs: 60_000 });
        out = r.stdout + r.stderr;
        if (r.code === 0) break;
        await observe(3000);
      }
      await world.checker.until(primaryAlone, 30_000, 'the primary active after the failback');
    } finally {
      await world.net.heal();
    }
    await observe(3000);
    const f = record(await measureAll({ name: 'failback under 10 % loss', fromMs, toMs: Date.now(), faultMs, failoverTo: 'primary' }));
    expect(out).toMatch(/failback/i);
    expect(recordChanges(window(fromMs))).toBe(1);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  it('primary power cut: the DR takes over', async () => {
    const fromMs = await begin();
    const faultMs = Date.now();
    process.kill(world.sites.primary.container.pid, 'SIGKILL');
    await world.checker.until(drAlone, 30_000, 'the DR active and collecting');
    await observe(3000);
    const f = record(await measureAll({ name: 'primary power cut', fromMs, toMs: Date.now(), faultMs, failoverTo: 'dr', lostSites: [{ role: 'primary', atMs: faultMs }] }));
    await world.rebuildSite('primary');
    expect(f.failover_s).not.toBeNull();
    expect(recordChanges(window(fromMs))).toBe(1);
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  // The job, not only the host (issue 19). A collector dies as a bad config push kills it: a
  // drop-in `ExecStart=/bin/false`, then the unit (re)started. Each case removes its drop-ins.
  const BREAK = 'mkdir -p /etc/systemd/system/otelcol-contrib.service.d && printf "[Service]\\nExecStart=\\nExecStart=/bin/false\\n" > /etc/systemd/system/otelcol-contrib.service.d/broken.conf && systemctl daemon-reload';
  const REPAIR = 'rm -f /etc/systemd/system/otelcol-contrib.service.d/broken.conf; systemctl daemon-reload; systemctl reset-failed otelcol-contrib.service 2>/dev/null; true';
  const repairBoth = async (): Promise<void> => {
    for (const r of ['primary', 'dr'] as const) await world.sites[r].sh(REPAIR);
  };

  it('primary collector crash-loops: the primary hands the job over; the DR collects', async () => {
    const fromMs = await begin();
    try {
      await world.sites.primary.sh(BREAK);
      const faultMs = Date.now();
      await world.sites.primary.sh('systemctl restart otelcol-contrib.service; true');
      await world.checker.until(drAlone, 30_000, 'the DR active and collecting');
      await observe(3000);
      const st = await agentStatus(world.sites.dr);
      const f = record(await measureAll({ name: 'primary collector crash-loops', fromMs, toMs: Date.now(), faultMs, failoverTo: 'dr' }));
      expect(String(st?.reason)).toMatch(/active through a handover from the primary/);
      expect(f.failover_s).not.toBeNull();
      expect(recordChanges(window(fromMs))).toBe(1);
      expect([f.split_brain_s, f.overlap_s, f.samples_lost]).toEqual([0, 0, 0]);
      f.pass = true;
    } finally {
      await repairBoth();
    }
  }, CASE_MS);

  it('both collectors broken: after the one handover to a latently broken DR, nothing moves; both sites say no site can collect', async () => {
    const fromMs = await begin();
    try {
      // The DR's collector is broken while stopped (it fails only when started: nothing shows it
      // before): the primary's collector dies, the job goes to the DR, whose collector fails too.
      // (Starting the DR's unit by hand to make it visibly failed races the DR agent's drift repair,
      // which stops it, and a stopped unit is not failed.)
      await world.sites.dr.sh(BREAK);
      const faultMs = Date.now();
      await world.sites.primary.sh(`${BREAK} && (systemctl restart otelcol-contrib.service; true)`);
      const both = async (): Promise<boolean> => {
        const st = await Promise.all([agentStatus(world.sites.primary), agentStatus(world.sites.dr)]);
        return st.every((x) => (x?.job as { noSiteCanCollect?: boolean } | undefined)?.noSiteCanCollect === true);
      };
      for (let i = 0; i < 60 && !(await both()); i++) await observe(500);
      expect(await both()).toBe(true);
      const settledMs = Date.now();
      // A whole lease and more: no handover back, no takeover.
      await observe(10_000);
      const f = record(await measureAll({ name: 'both collectors broken', fromMs, toMs: Date.now(), faultMs, senderTargets: false }));
      expect(recordChanges(window(fromMs))).toBeLessThanOrEqual(1);
      expect(recordChanges(window(settledMs))).toBe(0);
      expect(f.split_brain_s).toBe(0);
      f.pass = true;
    } finally {
      await repairBoth();
    }
  }, CASE_MS);

  it('paused: primary power cut: no takeover while paused; after resume the DR takes over', async () => {
    const fromMs = await begin();
    await world.sites.dr.sh('failoverctl --instance dr pause --reason "fault matrix"');
    for (const r of ['primary', 'dr'] as const) {
      for (let i = 0; i < 40 && !(((await agentStatus(world.sites[r]))?.job as { pause?: unknown } | undefined)?.pause); i++) await observe(250);
    }
    const faultMs = Date.now();
    process.kill(world.sites.primary.container.pid, 'SIGKILL');
    // Past every bound a takeover would need (health failures, ttl + max_skew, the CAS), twice over.
    await observe(20_000);
    const held = await agentStatus(world.sites.dr);
    const pausedWindow = window(faultMs);
    const resumeMs = Date.now();
    await world.sites.dr.sh('failoverctl --instance dr resume');
    await world.checker.until(drAlone, 30_000, 'the DR active and collecting after resume');
    await observe(3000);
    const f = record(await measureAll({ name: 'paused: primary power cut', fromMs, toMs: Date.now(), faultMs: resumeMs, failoverTo: 'dr', lostSites: [{ role: 'primary', atMs: faultMs }] }));
    await world.rebuildSite('primary');
    expect(held?.decision).toBe('paused');
    expect(pausedWindow.every((x) => x.record !== D() && !x.collectors.dr)).toBe(true);
    expect(recordChanges(window(fromMs))).toBe(1);
    expect(f.failover_s).not.toBeNull();
    expect([f.split_brain_s, f.samples_lost]).toEqual([0, 0]);
    f.pass = true;
  }, CASE_MS);

  describe.sequential('keepalived beside it (same namespaces, same faults)', () => {
    const ka: Partial<Record<'primary' | 'dr', Keepalived>> = {};
    let samples: VipSample[] = [];
    let timer: NodeJS.Timeout | null = null;
    const nsOf = () => ({ primary: world.net.ns.site1, dr: world.net.ns.site2 });
    const start = async (track?: Record<'primary' | 'dr', string>): Promise<void> => {
      for (const r of ['primary', 'dr'] as const) {
        ka[r] = await startKeepalived({
          role: r,
          netns: world.net.ns[SITE_NODE[r]],
          address: world.net.addr[SITE_NODE[r]],
          peerAddress: world.net.addr[SITE_NODE[r === 'primary' ? 'dr' : 'primary']],
          ...(track ? { trackCgroup: track[r] } : {}),
        });
      }
      samples = [];
      let busy = false;
      timer = setInterval(() => {
        if (busy) return;
        busy = true;
        void sampleVip(nsOf()).then((s) => {
          samples.push(s);
          busy = false;
        });
      }, 100);
      for (let i = 0; i < 100 && !(samples.at(-1)?.holders.primary && !samples.at(-1)?.holders.dr); i++) await observe(100);
      expect(samples.at(-1)?.holders).toEqual({ primary: true, dr: false });
    };
    const stopAll = async (): Promise<void> => {
      if (timer) clearInterval(timer);
      for (const k of Object.values(ka)) await k?.stop();
    };
    beforeAll(async () => {
      for (const r of ['primary', 'dr'] as const) await world.sites[r].sh(`systemctl stop failover-agent@${r}.service otelcol-contrib.service`);
    }, 120_000);

    it('keepalived, primary power cut', async () => {
      await start();
      try {
        const faultMs = Date.now();
        await ka.primary!.powerCut();
        await observe(8000);
        const v = vipFigures(samples, faultMs);
        results.push({ name: 'primary power cut', system: 'keepalived', pass: v.split_brain_s === 0 && v.failover_s !== null, failover_s: v.failover_s, gap_s: null, overlap_s: null, samples_lost: null, split_brain_s: v.split_brain_s });
        expect(v.failover_s).not.toBeNull();
      } finally {
        await stopAll();
      }
    }, 120_000);

    it('keepalived, primary collector dies (track_script every 2 s, fall 1)', async () => {
      // The seed's check, `killall -0 <collector>` every 2 s, fall 1, on each site's own collector:
      // the host sees both containers' processes, so a name cannot tell the sites apart; the check
      // asks the site's collector cgroup instead (a process in it = killall -0 succeeds).
      for (const r of ['primary', 'dr'] as const) await world.sites[r].sh('systemctl start otelcol-contrib.service');
      try {
        await start({ primary: world.sites.primary.collectorCgroup, dr: world.sites.dr.collectorCgroup });
        await world.sites.primary.sh(BREAK);
        const faultMs = Date.now();
        await world.sites.primary.sh('systemctl restart otelcol-contrib.service; true');
        await observe(8000);
        const v = vipFigures(samples, faultMs);
        results.push({ name: 'primary collector crash-loops', system: 'keepalived', pass: v.split_brain_s === 0 && v.failover_s !== null, failover_s: v.failover_s, gap_s: null, overlap_s: null, samples_lost: null, split_brain_s: v.split_brain_s });
        expect(v.failover_s).not.toBeNull();
      } finally {
        await stopAll();
        await repairBoth();
        for (const r of ['primary', 'dr'] as const) await world.sites[r].sh('systemctl stop otelcol-contrib.service; true');
      }
    }, 120_000);

    it('keepalived, site<->site cut (15 s): both MASTER for the cut, measured', async () => {
      await start();
      try {
        const faultMs = Date.now();
        await cut('site1', 'site2');
        await observe(15_000);
        await heal('site1', 'site2');
        await observe(5000);
        const v = vipFigures(samples, faultMs);
        results.push({ name: 'site<->site cut, DNS reachable', system: 'keepalived', pass: v.split_brain_s === 0, failover_s: v.failover_s, gap_s: null, overlap_s: null, samples_lost: null, split_brain_s: v.split_brain_s });
        // What the comparison is for: keepalived cannot tell a cut from a dead peer.
        expect(v.split_brain_s).toBeGreaterThan(5);
      } finally {
        await stopAll();
      }
    }, 120_000);
  });
});
