/**
 * One fault case's measurement: after the fault healed, wait (bounded) until the collectors'
 * queues are delivered and VM sync has checked past the window, then compute the figures.
 */
import { converse } from '../fixtures/control-raw.js';
import {
  failoverSeconds,
  fencedSeconds,
  gapSeconds,
  renewalFigures,
  overlapSeconds,
  samplesLost,
  splitBrainSeconds,
  type CaseFigures,
  type Scrape,
} from './analyze.js';
import type { Site, SiteRole } from './sites.js';
import { SCRAPE_INTERVAL_MS, SITE_NODE, type World } from './world.js';

export interface MeasureOptions {
  name: string;
  /** the case's window: from before the fault to after it healed and the system settled */
  fromMs: number;
  toMs: number;
  faultMs: number;
  /** the site a failover should move to (failover_s), if any */
  failoverTo?: SiteRole;
  /** sites whose VictoriaMetrics is gone (power cut): not checked, their last flush excused */
  lostSites?: { role: SiteRole; atMs: number }[];
}

/** The full status of an agent (null when it does not answer). */
export async function agentStatus(site: Site): Promise<Record<string, unknown> | null> {
  try {
    const r = await converse(site.socket, '{"cmd":"status"}\n', 1, 3000);
    const parsed = JSON.parse(r.lines[0] ?? '{}') as { ok?: boolean; result?: Record<string, unknown> };
    return parsed.ok ? (parsed.result ?? null) : null;
  } catch {
    return null;
  }
}

/** Bytes a collector still holds for the VictoriaMetrics at these addresses (0 when it is not running). */
async function pendingBytes(site: Site, to: string[]): Promise<number> {
  const r = await site.container.exec(['sh', '-c', 'curl -fsS 127.0.0.1:8429/metrics 2>/dev/null | grep ^vmagent_remotewrite_pending_data_bytes'], { timeoutMs: 10_000 });
  let sum = 0;
  for (const line of r.stdout.split('\n')) {
    if (to.some((a) => line.includes(`//${a}:`))) sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** Bounded poll of an async condition (for states that have no event to await: another process's queue). */
async function eventually(cond: () => Promise<boolean>, timeoutMs: number, stepMs = 500): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / stepMs) + 1; i++) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

export async function measure(world: World, o: MeasureOptions): Promise<CaseFigures & { lostExamples: string[] }> {
  const gone = new Set((o.lostSites ?? []).map((l) => l.role));
  const live = (['primary', 'dr'] as SiteRole[]).filter((r) => !gone.has(r));
  const liveVms = live.map((r) => world.sites[r].address);
  // Every running collector has delivered what it holds for the VictoriaMetrics still there.
  await eventually(async () => (await Promise.all(live.map((r) => pendingBytes(world.sites[r], liveVms)))).every((b) => b === 0), 90_000);
  // VM sync has completed a check whose range reaches past the window (its settle time excluded);
  // with one VictoriaMetrics gone there is nothing to sync.
  if (gone.size === 0) await eventually(async () => {
    const st = await Promise.all(live.map((r) => agentStatus(world.sites[r])));
    return st.every((s) => {
      const v = s?.vmsync as { last_check?: string | null; last_check_ok?: boolean } | null | undefined;
      return !v || (v.last_check_ok === true && v.last_check !== null && v.last_check !== undefined && Date.parse(v.last_check) - 10_000 > o.toMs);
    });
  }, 90_000);
  const scrapes = world.scrapes();
  const excused = (s: Scrape): boolean => (o.lostSites ?? []).some((l) => l.role === s.site && s.wallMs > l.atMs - 2 * SCRAPE_INTERVAL_MS);
  const fetch = async () => Promise.all(live.map(async (r) => ({ name: r, holds: await world.holdings(r) })));
  // The last scrapes of the window may still be on their way into VictoriaMetrics: ask again
  // (bounded) until nothing is missing or 30 s have passed; what is missing then is lost.
  let lost = samplesLost(scrapes, await fetch(), o.fromMs, o.toMs, excused);
  for (let i = 0; i < 15 && lost.lost > 0; i++) {
    await new Promise((r) => setTimeout(r, 2000));
    lost = samplesLost(scrapes, await fetch(), o.fromMs, o.toMs, excused);
  }
  const samples = world.checker.since(o.fromMs).filter((s) => s.wallMs <= o.toMs);
  return {
    name: o.name,
    system: 'failover-agent',
    pass: false,
    failover_s: o.failoverTo ? failoverSeconds(samples, o.faultMs, { role: o.failoverTo, address: world.net.addr[SITE_NODE[o.failoverTo]] }) : null,
    gap_s: gapSeconds(scrapes, world.devices, o.fromMs, o.toMs, SCRAPE_INTERVAL_MS),
    overlap_s: overlapSeconds(scrapes, o.fromMs, o.toMs, SCRAPE_INTERVAL_MS),
    samples_lost: lost.lost,
    split_brain_s: splitBrainSeconds(samples),
    fenced_s: fencedSeconds(samples),
    ...renewalFigures(samples),
    lostExamples: lost.examples,
  };
}

/** Let the system run for a stretch of the case (an observation window, not a wait for an event). */
export function observe(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
