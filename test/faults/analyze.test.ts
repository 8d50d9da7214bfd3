// The fault checker's arithmetic, each figure shown to catch the fault it exists for.
import { describe, expect, it } from 'vitest';
import {
  failoverSeconds,
  fencedSeconds,
  gapSeconds,
  renewalFigures,
  overlapSeconds,
  parseExport,
  parseScrapes,
  recordChanges,
  samplesLost,
  splitBrainSeconds,
  type Sample,
  type Scrape,
} from './analyze.js';
import { vipFigures } from './keepalived.js';

const P = '198.18.1.2';
const D = '198.18.2.2';

function sample(wallMs: number, o: { record?: string | null; pActive?: boolean; dActive?: boolean; pCol?: boolean; dCol?: boolean } = {}): Sample {
  return {
    wallMs,
    record: o.record === undefined ? P : o.record,
    agents: {
      primary: { answered: true, active: o.pActive ?? true, phase: null },
      dr: { answered: true, active: o.dActive ?? false, phase: null },
    },
    collectors: { primary: o.pCol ?? true, dr: o.dCol ?? false },
  };
}

/** 10 Hz from t0 for n samples, with `f(i)` choosing each sample's state. */
const timeline = (n: number, f: (i: number) => Parameters<typeof sample>[1]): Sample[] => Array.from({ length: n }, (_, i) => sample(1000 + i * 100, f(i)));

describe('split brain', () => {
  it('is zero for a clean handover and counts the time both answered active', () => {
    const clean = timeline(50, (i) => (i < 25 ? {} : { pActive: false, dActive: true, record: D }));
    expect(splitBrainSeconds(clean)).toBe(0);
    // planted: both active for 8 samples
    const bad = timeline(50, (i) => (i < 25 ? {} : i < 33 ? { dActive: true, record: D } : { pActive: false, dActive: true, record: D }));
    expect(splitBrainSeconds(bad)).toBe(0.8);
  });
});

describe('failover time', () => {
  it('needs the record AND the collector of the new site', () => {
    const s = timeline(60, (i) => (i < 20 ? {} : i < 40 ? { pActive: false, dActive: true, record: D, pCol: false } : { pActive: false, dActive: true, record: D, pCol: false, dCol: true }));
    expect(failoverSeconds(s, 1000 + 10 * 100, { role: 'dr', address: D })).toBe(3);
    expect(failoverSeconds(timeline(30, () => ({})), 1000, { role: 'dr', address: D })).toBeNull();
  });
  it('counts record flips, ignoring unanswered probes', () => {
    expect(recordChanges(timeline(30, (i) => ({ record: i % 10 === 5 ? null : P })))).toBe(0);
    expect(recordChanges(timeline(30, (i) => ({ record: i < 10 ? P : i < 20 ? D : P })))).toBe(2);
  });
});

const scrapesEvery = (site: 'primary' | 'dr', device: string, fromMs: number, toMs: number, everyMs = 1000, seq0 = 1): Scrape[] => {
  const out: Scrape[] = [];
  for (let t = fromMs, n = seq0; t < toMs; t += everyMs, n++) out.push({ wallMs: t, device, site, seq: n });
  return out;
};

describe('gap and overlap from the devices log', () => {
  it('a clean handover has no gap beyond the interval and no overlap', () => {
    const s = [...scrapesEvery('primary', 'd1', 0, 10_000), ...scrapesEvery('dr', 'd1', 10_000, 20_000)];
    expect(gapSeconds(s, ['d1'], 0, 19_500, 1000)).toBe(0);
    expect(overlapSeconds(s, 0, 20_000, 1000)).toBe(0);
  });
  it('a 4 s hole is a 4 s gap; a device nobody scraped is missing for the whole window', () => {
    const s = [...scrapesEvery('primary', 'd1', 0, 10_000), ...scrapesEvery('dr', 'd1', 14_000, 20_000)];
    expect(gapSeconds(s, ['d1'], 0, 19_500, 1000)).toBe(4);
    expect(gapSeconds(s, ['d1', 'd2'], 0, 20_000, 1000)).toBe(19);
  });
  it('both sites scraping the same device for 5 s is 5 s of overlap (not two devices on two sites)', () => {
    const s = [...scrapesEvery('primary', 'd1', 0, 15_000), ...scrapesEvery('dr', 'd1', 10_000, 20_000, 1000)];
    expect(overlapSeconds(s, 0, 20_000, 1000)).toBe(5);
    const split = [...scrapesEvery('primary', 'd1', 0, 20_000), ...scrapesEvery('dr', 'd2', 0, 20_000)];
    expect(overlapSeconds(split, 0, 20_000, 1000)).toBe(0);
  });
});

describe('samples lost', () => {
  it('counts every scrape a VM lacks, and nothing else', () => {
    const s = scrapesEvery('primary', 'd1', 0, 10_000);
    const full = new Map([['primary/d1', new Set(s.map((x) => x.seq))]]);
    expect(samplesLost(s, [{ name: 'vm1', holds: full }], 0, 10_000).lost).toBe(0);
    const holed = new Map([['primary/d1', new Set(s.map((x) => x.seq).filter((n) => n !== 4 && n !== 5))]]);
    const r = samplesLost(s, [{ name: 'vm1', holds: full }, { name: 'vm2', holds: holed }], 0, 10_000);
    expect(r.lost).toBe(2);
    expect(r.examples[0]).toMatch(/vm2 lacks primary\/d1 seq 4/);
    expect(samplesLost(s, [{ name: 'vm2', holds: holed }], 0, 10_000, (x) => x.seq >= 4 && x.seq <= 5).lost).toBe(0);
  });
  it('parses the devices log and VictoriaMetrics export (NaN staleness markers are not samples)', () => {
    const scrapes = parseScrapes(`1000 dev9101 ${P} 1\n2000 dev9101 ${D} 1\n3000 dev9101 9.9.9.9 1\n`, { [P]: 'primary', [D]: 'dr' });
    expect(scrapes).toEqual([
      { wallMs: 1000, device: 'dev9101', site: 'primary', seq: 1 },
      { wallMs: 2000, device: 'dev9101', site: 'dr', seq: 1 },
    ]);
    const h = parseExport('{"metric":{"__name__":"device_scrape_seq","device":"dev9101","site":"dr"},"values":[1,2,null],"timestamps":[1,2,3]}\n', () => '');
    expect([...(h.get('dr/dev9101') ?? [])]).toEqual([1, 2]);
  });
});

describe('keepalived VIP timeline', () => {
  it('counts both-MASTER time as split brain and finds the handover', () => {
    const t = (i: number, p: boolean, d: boolean) => ({ wallMs: i * 100, holders: { primary: p, dr: d } });
    const clean = [t(0, true, false), t(1, true, false), t(2, false, false), t(30, false, true), t(31, false, true)];
    expect(vipFigures(clean, 100)).toEqual({ split_brain_s: 0, failover_s: 2.9 });
    const both = [t(0, true, false), t(10, true, true), t(40, true, true), t(50, true, false)];
    expect(vipFigures(both, 0)).toEqual({ split_brain_s: 4, failover_s: null });
  });
});

describe('fenced time and renewals (issue 21)', () => {
  it('fenced: the time either agent said fenced; none in a clean window', () => {
    const clean = timeline(50, () => ({}));
    expect(fencedSeconds(clean)).toBe(0);
    const bad = clean.map((x, i) => (i >= 10 && i < 25 ? { ...x, agents: { ...x.agents, primary: { ...x.agents.primary, phase: 'fenced' } } } : x));
    expect(fencedSeconds(bad)).toBe(1.5);
  });

  it('renewals: writes applied per minute and the longest time between two, from the lease seq at the witness', () => {
    // 60 s at 10 Hz, the seq rising every second except one 4.5 s stretch
    let seq = 0;
    const s = Array.from({ length: 600 }, (_, i) => {
      if (i % 10 === 0 && !(i > 200 && i < 245)) seq++;
      return { ...sample(1000 + i * 100), leaseSeq: seq };
    });
    const r = renewalFigures(s);
    expect(r.longest_unrenewed_s).toBe(5);
    expect(r.renewals_per_min).toBeGreaterThan(50);
    expect(renewalFigures([sample(0)])).toEqual({ renewals_per_min: null, longest_unrenewed_s: null });
  });
});
