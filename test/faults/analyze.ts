/**
 * The figures of a fault case, computed from what the checker saw (pure functions, unit-tested
 * with planted faults in analyze.test.ts):
 *
 * - split_brain_s: time both agents answered "active" (each holds a lease it believes valid and
 *   the record names it, as far as it knows), summed over the 10 Hz samples;
 * - failover_s: fault → the first sample where the record names the other site AND its collector
 *   runs;
 * - gap_s: the longest stretch in which no collector scraped a device, beyond one scrape interval
 *   (the devices' own log: every scrape, by whom, when);
 * - overlap_s: time in which both sites scraped the same device (each scrape covers one interval);
 * - samples_lost: scrapes (from the devices' log) whose sample is missing from a VictoriaMetrics
 *   that should hold it, after the repair.
 */
import type { SiteRole } from './sites.js';

export interface AgentSample {
  /** the agent answered on its control socket within the sample period */
  answered: boolean;
  active: boolean;
  phase: string | null;
}

export interface Sample {
  wallMs: number;
  /** the address the record holds at the witness; null when the witness did not answer */
  record: string | null;
  /** the lease's seq at the witness (each applied write raises it); null when it did not answer */
  leaseSeq?: number | null;
  agents: Record<SiteRole, AgentSample>;
  collectors: Record<SiteRole, boolean>;
}

export interface Scrape {
  wallMs: number;
  device: string;
  site: SiteRole;
  seq: number;
}

export interface CaseFigures {
  name: string;
  system: 'failover-agent' | 'keepalived';
  pass: boolean;
  failover_s: number | null;
  gap_s: number | null;
  overlap_s: number | null;
  samples_lost: number | null;
  split_brain_s: number | null;
  /** time either agent reported phase `fenced` (its lease lost while the record names it), s */
  fenced_s?: number | null;
  /** lease writes applied per minute over the window, and the longest time between two (s) */
  renewals_per_min?: number | null;
  longest_unrenewed_s?: number | null;
}

/** Seconds either agent said `fenced` (sampled at 10 Hz: each sample stands for the time to the next). */
export function fencedSeconds(samples: Sample[]): number {
  let ms = 0;
  for (let i = 0; i + 1 < samples.length; i++) {
    const s = samples[i]!;
    if (s.agents.primary.phase === 'fenced' || s.agents.dr.phase === 'fenced') ms += samples[i + 1]!.wallMs - s.wallMs;
  }
  return round(ms / 1000);
}

/** Lease writes applied per minute, and the longest time between two, as the witness showed them. */
export function renewalFigures(samples: Sample[]): { renewals_per_min: number | null; longest_unrenewed_s: number | null } {
  const seen = samples.filter((s) => s.leaseSeq !== null && s.leaseSeq !== undefined);
  if (seen.length < 2) return { renewals_per_min: null, longest_unrenewed_s: null };
  let changes = 0;
  let longest = 0;
  let since = seen[0]!.wallMs;
  for (let i = 1; i < seen.length; i++) {
    if (seen[i]!.leaseSeq !== seen[i - 1]!.leaseSeq) {
      changes++;
      longest = Math.max(longest, seen[i]!.wallMs - since);
      since = seen[i]!.wallMs;
    }
  }
  longest = Math.max(longest, seen.at(-1)!.wallMs - since);
  const minutes = (seen.at(-1)!.wallMs - seen[0]!.wallMs) / 60_000;
  return { renewals_per_min: minutes > 0 ? round(changes / minutes) : null, longest_unrenewed_s: round(longest / 1000) };
}

const round = (x: number): number => Math.round(x * 10) / 10;

/** Seconds during which both agents answered active (each sample counts until the next one). */
export function splitBrainSeconds(samples: Sample[]): number {
  let ms = 0;
  for (let i = 0; i + 1 < samples.length; i++) {
    const a = samples[i].agents;
    if (a.primary?.active && a.dr?.active) ms += samples[i + 1].wallMs - samples[i].wallMs;
  }
  return round(ms / 1000);
}

/** Seconds from the fault to the first sample where the record names `to` and its collector runs. */
export function failoverSeconds(samples: Sample[], faultMs: number, to: { role: SiteRole; address: string }): number | null {
  const s = samples.find((x) => x.wallMs >= faultMs && x.record === to.address && x.collectors[to.role]);
  return s ? round((s.wallMs - faultMs) / 1000) : null;
}

/** Did the record ever name `address` in the samples? */
export function recordEverNamed(samples: Sample[], address: string): boolean {
  return samples.some((s) => s.record === address);
}

/** How often the record changed value (ignoring unanswered samples). */
export function recordChanges(samples: Sample[]): number {
  let last: string | null = null;
  let changes = 0;
  for (const s of samples) {
    if (s.record === null) continue;
    if (last !== null && s.record !== last) changes++;
    last = s.record;
  }
  return changes;
}

/** Parses the devices' log (`<wallMs> <device> <scraper address> <seq>` lines). */
export function parseScrapes(text: string, siteOf: Record<string, SiteRole>): Scrape[] {
  const out: Scrape[] = [];
  for (const line of text.split('\n')) {
    const [t, device, from, seq] = line.split(' ');
    const site = siteOf[from ?? ''];
    if (!t || !device || !site || !seq) continue;
    out.push({ wallMs: Number(t), device, site, seq: Number(seq) });
  }
  return out;
}

function byDevice(scrapes: Scrape[]): Map<string, Scrape[]> {
  const m = new Map<string, Scrape[]>();
  for (const s of scrapes) m.set(s.device, [...(m.get(s.device) ?? []), s]);
  for (const list of m.values()) list.sort((a, b) => a.wallMs - b.wallMs);
  return m;
}

/**
 * The longest stretch of [fromMs, toMs] in which nobody scraped some device, beyond one interval
 * (a device nobody scraped at all is missing for the whole window).
 */
export function gapSeconds(scrapes: Scrape[], devices: string[], fromMs: number, toMs: number, intervalMs: number): number {
  const inWindow = byDevice(scrapes.filter((s) => s.wallMs >= fromMs && s.wallMs <= toMs));
  let worst = 0;
  for (const d of devices) {
    const times = [fromMs, ...(inWindow.get(d) ?? []).map((s) => s.wallMs), toMs];
    for (let i = 0; i + 1 < times.length; i++) worst = Math.max(worst, times[i + 1] - times[i] - intervalMs);
  }
  return round(Math.max(0, worst) / 1000);
}

/**
 * Seconds in which both sites scraped the same device: a scrape covers [t, t + interval); the
 * covered 100 ms slots of each site are intersected per device, and the union over devices counted.
 */
export function overlapSeconds(scrapes: Scrape[], fromMs: number, toMs: number, intervalMs: number): number {
  const slot = 100;
  const both = new Set<number>();
  for (const list of byDevice(scrapes.filter((s) => s.wallMs >= fromMs && s.wallMs <= toMs)).values()) {
    const covered: Record<SiteRole, Set<number>> = { primary: new Set(), dr: new Set() };
    for (const s of list) {
      for (let t = s.wallMs; t < s.wallMs + intervalMs; t += slot) covered[s.site].add(Math.floor(t / slot));
    }
    for (const k of covered.primary) if (covered.dr.has(k)) both.add(k);
  }
  return round((both.size * slot) / 1000);
}

/** Per VictoriaMetrics: the seqs it holds, keyed `<site>/<device>`. */
export type VmHoldings = Map<string, Set<number>>;

/**
 * Scrapes in the window whose sample one of the given VictoriaMetrics lacks. `excused` removes
 * scrapes that nobody could have kept (e.g. those of a site in the flush interval before its power
 * was cut: they were still in its collector's memory).
 */
export function samplesLost(
  scrapes: Scrape[],
  vms: { name: string; holds: VmHoldings }[],
  fromMs: number,
  toMs: number,
  excused: (s: Scrape) => boolean = () => false,
): { lost: number; examples: string[] } {
  let lost = 0;
  const examples: string[] = [];
  for (const s of scrapes) {
    if (s.wallMs < fromMs || s.wallMs > toMs || excused(s)) continue;
    for (const vm of vms) {
      if (vm.holds.get(`${s.site}/${s.device}`)?.has(s.seq)) continue;
      lost++;
      if (examples.length < 5) examples.push(`${vm.name} lacks ${s.site}/${s.device} seq ${s.seq} (${new Date(s.wallMs).toISOString()})`);
    }
  }
  return { lost, examples };
}

/** Parses VictoriaMetrics' /api/v1/export JSON lines of device_scrape_seq into holdings. */
export function parseExport(text: string, instanceToDevice: (instance: string) => string): VmHoldings {
  const m: VmHoldings = new Map();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { metric: Record<string, string>; values: (number | null)[] };
    const site = r.metric.site;
    const device = r.metric.device ?? instanceToDevice(r.metric.instance ?? '');
    if (!site || !device) continue;
    const key = `${site}/${device}`;
    const set = m.get(key) ?? new Set<number>();
    for (const v of r.values) if (typeof v === 'number' && Number.isFinite(v)) set.add(v);
    m.set(key, set);
  }
  return m;
}
