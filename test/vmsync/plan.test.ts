/**
 * The export plan (src/vmsync/plan.ts): which series a gap range exports, from detection's counts.
 */
import { describe, expect, test } from 'vitest';

import {
  DEVICES_PER_BATCH,
  MATCH_ALL,
  MAX_MATCHER_CHARS,
  MAX_TARGETED_DEVICES,
  deviceMatchers,
  escapeRegex,
  planCopies,
  planExports,
  planRange,
  type GroupCounts,
  type Naming,
  type PlanInput,
} from '../../src/vmsync/plan.js';
import type { GapRange } from '../../src/vmsync/ranges.js';

const S = 60_000;
const T0 = 1_700_000_040_000 - (1_700_000_040_000 % S);
/** Bucket i of the test window: T0 + i·S. */
const b = (i: number) => T0 + i * S;

/** label value → counts of buckets 1..n (index 0 = bucket 1). */
function groups(spec: Record<string, number[]>): GroupCounts {
  return new Map(Object.entries(spec).map(([v, counts]) => [v, new Map(counts.map((c, i) => [b(i + 1), c]))]));
}

function totals(g: GroupCounts): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of g.values()) for (const [t, v] of m) out.set(t, (out.get(t) ?? 0) + v);
  return out;
}

/** A range over buckets 1..n of the two sides' groups, with the totals they add up to. */
function input(src: Record<string, number[]>, dst: Record<string, number[]>, naming?: Naming): PlanInput {
  const s = groups(src);
  const d = groups(dst);
  const n = Math.max(...Object.values(src).map((c) => c.length));
  const srcTotals = totals(s);
  const dstTotals = totals(d);
  let missing = 0;
  for (const [t, v] of srcTotals) missing += Math.max(0, v - (dstTotals.get(t) ?? 0));
  const range: GapRange = { start: b(0), end: b(n), missing };
  return { range, naming: naming ?? { kind: 'named', src: s, dst: d }, srcTotals, dstTotals };
}

const DEVICES = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`dev-${i}`, [4, 4, 4]]));

describe('planRange: which series a range exports', () => {
  test('one device short in part of the range: only its series, over the whole range; the samples are its source samples', () => {
    const p = planRange(input({ 'dev-1': [4, 4, 4], 'dev-7': [4, 4, 4], '': [2, 2, 2] }, { 'dev-1': [4, 4, 4], 'dev-7': [4, 0, 1], '': [2, 2, 2] }), 'instance', S);
    expect(p).toMatchObject({ reason: 'devices', devices: ['dev-7'], deviceTotal: 2, matchers: ['{__name__!="", instance=~"dev-7"}'], samples: 12 });
  });

  test('a full gap exports every series; its samples are the source totals of the range', () => {
    const i = input({ 'dev-1': [4, 4], '': [1, 1] }, {}, { kind: 'full' });
    expect(planRange(i, 'instance', S)).toMatchObject({ reason: 'full_gap', devices: null, matchers: [MATCH_ALL], samples: 10 });
  });

  test.each(['naming_off', 'naming_failed', 'not_named'] as const)('not named (%s): every series, the reason kept', (reason) => {
    const i = input({ 'dev-1': [4] }, { 'dev-1': [1] }, { kind: 'unnamed', reason });
    expect(planRange(i, 'instance', S)).toMatchObject({ reason, devices: null, matchers: [MATCH_ALL], samples: 4 });
  });

  test('series WITHOUT the label short in a bucket: no matcher can name them, so every series', () => {
    const p = planRange(input({ 'dev-7': [4, 4], '': [2, 2] }, { 'dev-7': [0, 4], '': [2, 1] }), 'instance', S);
    expect(p).toMatchObject({ reason: 'unexplained', devices: null, matchers: [MATCH_ALL], samples: 12 });
  });

  test('a device-less shortfall masked in the totals by a device the destination has MORE of still falls back', () => {
    // bucket 1: dev-7 lacks 4, "" lacks 2, dev-3 has 2 extra on the destination: the totals say 4 missing
    const p = planRange(input({ 'dev-3': [4], 'dev-7': [4], '': [2] }, { 'dev-3': [6], 'dev-7': [0], '': [0] }), 'instance', S);
    expect(p.reason).toBe('unexplained');
  });

  test('a bucket whose total deficit exceeds what the named devices lack (counts moved between the queries) falls back', () => {
    const i = input({ 'dev-7': [4, 4] }, { 'dev-7': [0, 4] });
    const srcTotals = new Map(i.srcTotals);
    srcTotals.set(b(2), 9); // the count query saw 5 more in bucket 2 than the by-device query
    expect(planRange({ ...i, srcTotals }, 'instance', S).reason).toBe('unexplained');
  });

  test('counts that show no device short at all (not a gap of devices) fall back', () => {
    const i = input({ 'dev-7': [4] }, { 'dev-7': [4] });
    expect(planRange({ ...i, range: { ...i.range, missing: 1 } }, 'instance', S).reason).toBe('unexplained');
  });

  test('a device the destination holds more of is not exported', () => {
    const p = planRange(input({ 'dev-1': [4, 4], 'dev-2': [4, 4] }, { 'dev-1': [6, 4], 'dev-2': [0, 0] }), 'instance', S);
    expect(p.devices).toEqual(['dev-2']);
  });

  test(`up to ${MAX_TARGETED_DEVICES} devices short: targeted, in batches of ${DEVICES_PER_BATCH}; one more: every series`, () => {
    // the destination lacks nothing of dev-100..104 and everything of dev-0..99
    const dst = Object.fromEntries(Array.from({ length: MAX_TARGETED_DEVICES + 5 }, (_, i) => [`dev-${i}`, i < MAX_TARGETED_DEVICES ? [0, 0, 0] : [4, 4, 4]]));
    const p = planRange(input(DEVICES(MAX_TARGETED_DEVICES + 5), dst), 'instance', S);
    expect(p.reason).toBe('devices');
    expect(p.devices).toHaveLength(MAX_TARGETED_DEVICES);
    expect(p.matchers).toHaveLength(Math.ceil(MAX_TARGETED_DEVICES / DEVICES_PER_BATCH));
    const over = Object.fromEntries(Array.from({ length: MAX_TARGETED_DEVICES + 5 }, (_, i) => [`dev-${i}`, i <= MAX_TARGETED_DEVICES ? [0, 0, 0] : [4, 4, 4]]));
    expect(planRange(input(DEVICES(MAX_TARGETED_DEVICES + 5), over), 'instance', S)).toMatchObject({ reason: 'too_many_devices', matchers: [MATCH_ALL], devices: null });
  });

  test('devices in natural order; the configured label is the one matched', () => {
    const p = planRange(input({ 'dev-10': [4], 'dev-2': [4], 'dev-1': [4] }, { 'dev-10': [0], 'dev-2': [0], 'dev-1': [4] }), 'host_name', S);
    expect(p.devices).toEqual(['dev-2', 'dev-10']);
    expect(p.matchers).toEqual(['{__name__!="", host_name=~"dev-2|dev-10"}']);
  });

  test('planExports plans every range in order', () => {
    const a = input({ 'dev-7': [4] }, { 'dev-7': [0], 'dev-1': [4] });
    const full = input({ 'dev-7': [4] }, {}, { kind: 'full' });
    expect(planExports([a, full], 'instance', S).map((p) => p.reason)).toEqual(['devices', 'full_gap']);
  });
});

describe('selectors', () => {
  test('escapeRegex: every RE2 metacharacter escaped; the anchored regex matches the value and nothing else', () => {
    const values = ['dev.1', 'a|b', 'x+y*z?', '(g)[h]{2}', '^start$', 'back\\slash', 'plain-dev_9'];
    for (const v of values) {
      const re = new RegExp(`^(?:${escapeRegex(v)})$`);
      expect(re.test(v), v).toBe(true);
    }
    expect(new RegExp(`^(?:${escapeRegex('dev.1')})$`).test('devX1')).toBe(false);
    expect(new RegExp(`^(?:${escapeRegex('a|b')})$`).test('a')).toBe(false);
  });

  test('the regex is quoted for PromQL: backslashes doubled, quotes escaped', () => {
    expect(deviceMatchers('instance', ['dev.1', 'say "hi"'])).toEqual(['{__name__!="", instance=~"dev\\\\.1|say \\"hi\\""}']);
  });

  test(`batches of at most ${DEVICES_PER_BATCH} values`, () => {
    const devs = Array.from({ length: DEVICES_PER_BATCH + 1 }, (_, i) => `d${i}`);
    const m = deviceMatchers('instance', devs);
    expect(m).toHaveLength(2);
    expect(m[1]).toBe(`{__name__!="", instance=~"d${DEVICES_PER_BATCH}"}`);
    const alternatives = (sel: string) => (JSON.parse(sel.slice(sel.indexOf('=~') + 2, -1)) as string).split('|');
    expect(m.flatMap(alternatives)).toEqual(devs);
  });

  test(`batches under ${MAX_MATCHER_CHARS} characters; a single longer value gets a batch of its own`, () => {
    const long = Array.from({ length: 10 }, (_, i) => `${'x'.repeat(600)}-${i}`);
    const m = deviceMatchers('instance', long);
    expect(m.length).toBeGreaterThan(1);
    for (const sel of m) expect(sel.length).toBeLessThanOrEqual(MAX_MATCHER_CHARS);
    const huge = 'y'.repeat(MAX_MATCHER_CHARS + 10);
    expect(deviceMatchers('instance', ['a', huge, 'b'])).toEqual([
      '{__name__!="", instance=~"a"}',
      `{__name__!="", instance=~"${huge}"}`,
      '{__name__!="", instance=~"b"}',
    ]);
  });
});

describe('planCopies', () => {
  const H = 3_600_000;
  test('every series: cut into pieces for the streams; targeted: one chunk per batch, cut only at max_chunk', () => {
    const whole = planRange(input({ 'dev-1': Array(120).fill(4) }, {}, { kind: 'full' }), 'instance', S);
    const devs = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`dev-${i}`, Array(120).fill(4)]));
    const dst = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`dev-${i}`, Array(120).fill(i < 27 ? 0 : 4)]));
    const targeted = planRange(input(devs, dst), 'instance', S);
    expect(targeted.matchers).toHaveLength(2); // 27 devices: 25 + 2

    const copies = planCopies([whole, targeted], 6 * H, 2, S);
    const ofWhole = copies.filter((c) => c.plan === whole);
    expect(ofWhole.map((c) => [c.start - whole.range.start, c.end - whole.range.start, c.match])).toEqual([
      [0, H, MATCH_ALL],
      [H, 2 * H, MATCH_ALL],
    ]);
    const ofTargeted = copies.filter((c) => c.plan === targeted);
    expect(ofTargeted.map((c) => [c.start, c.end, c.match])).toEqual(targeted.matchers.map((m) => [targeted.range.start, targeted.range.end, m]));

    const cut = planCopies([targeted], H / 2, 2, S).filter((c) => c.match === targeted.matchers[0]);
    expect(cut.map((c) => c.end - c.start)).toEqual([H / 2, H / 2, H / 2, H / 2]);
  });
});
