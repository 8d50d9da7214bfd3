import fc from 'fast-check';
import { describe, expect, test } from 'vitest';

import {
  alignDown,
  alignUp,
  bucketOf,
  DAY_MS,
  gapRanges,
  inRanges,
  MIN_PIECE_BUCKETS,
  planChunks,
  queryWindows,
  scanWindow,
  splitRange,
  windowsOfRanges,
} from '../../src/vmsync/ranges.js';

const S = 60_000;
const H = 3600_000;
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % S); // a bucket boundary

describe('alignment', () => {
  test('alignDown / alignUp / bucketOf', () => {
    expect(alignDown(T0, S)).toBe(T0);
    expect(alignDown(T0 + 1, S)).toBe(T0);
    expect(alignDown(T0 - 1, S)).toBe(T0 - S);
    expect(alignUp(T0, S)).toBe(T0);
    expect(alignUp(T0 + 1, S)).toBe(T0 + S);
    // bucket t holds (t-S, t]: the boundary instant belongs to the bucket that ENDS there
    expect(bucketOf(T0, S)).toBe(T0);
    expect(bucketOf(T0 + 1, S)).toBe(T0 + S);
    expect(bucketOf(T0 + S, S)).toBe(T0 + S);
    expect(() => alignDown(1, 0)).toThrow(RangeError);
  });
});

describe('scanWindow', () => {
  test('end = floor((now - settle)/S)*S; start = the bucket holding now - lookback', () => {
    const now = T0 + 150_000; // 2.5 min past a boundary
    const w = scanWindow(now, 120_000, S, { lookback: H })!;
    expect(w.end).toBe(T0); // now - settle = T0 + 30 s → T0
    expect(w.start).toBe(alignUp(now - H, S));
    expect(w.start % S).toBe(0);
    expect((w.end - w.start) / S + 1).toBeLessThanOrEqual(61);
  });

  test('now - settle exactly on a boundary: that bucket has settled', () => {
    expect(scanWindow(T0 + 120_000, 120_000, S, { lookback: H })!.end).toBe(T0);
    expect(scanWindow(T0 + 120_000 - 1, 120_000, S, { lookback: H })!.end).toBe(T0 - S);
  });

  test('a failover older than lookback extends the scan back to its start; a newer one does not shorten it', () => {
    const now = T0;
    const old = scanWindow(now, 0, S, { since: T0 - 30 * H - 1, lookback: 24 * H })!;
    expect(old.start).toBe(T0 - 30 * H); // bucket (T0-30h-S, T0-30h] holds since
    const recent = scanWindow(now, 0, S, { since: T0 - H, lookback: 24 * H })!;
    expect(recent.start).toBe(T0 - 24 * H);
    expect(scanWindow(now, 0, S, { since: null, lookback: 24 * H })!.start).toBe(T0 - 24 * H);
  });

  test('nothing settled → null', () => {
    expect(scanWindow(T0 + 10_000, 120_000, S, { lookback: 30_000 })).toBeNull();
  });
});

describe('queryWindows (≤ 24 h per query)', () => {
  test('every bucket exactly once, each query spanning ≤ 24 h of data', () => {
    const win = { start: T0 - 72 * H + S, end: T0 + 5 * S };
    const ws = queryWindows(win, S);
    expect(ws[0].start).toBe(win.start);
    expect(ws[ws.length - 1].end).toBe(win.end);
    for (let i = 0; i < ws.length; i++) {
      // a query [a, b] with step S covers data (a - S, b]
      expect(ws[i].end - ws[i].start + S).toBeLessThanOrEqual(DAY_MS);
      if (i > 0) expect(ws[i].start).toBe(ws[i - 1].end + S);
    }
    expect(ws).toHaveLength(4);
  });

  test('a short window is one query', () => {
    expect(queryWindows({ start: T0, end: T0 + 10 * S }, S)).toEqual([{ start: T0, end: T0 + 10 * S }]);
    expect(queryWindows({ start: T0, end: T0 }, S)).toEqual([{ start: T0, end: T0 }]);
  });

  test('property: tiles the window', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 48 }), (n, stepS, spanH) => {
        const step = stepS * 1000;
        const win = { start: 1000 * step, end: (1000 + n) * step };
        const ws = queryWindows(win, step, spanH * H);
        let next = win.start;
        for (const w of ws) {
          expect(w.start).toBe(next);
          expect(w.end).toBeGreaterThanOrEqual(w.start);
          expect(w.end - w.start + step <= spanH * H || w.start === w.end).toBe(true);
          next = w.end + step;
        }
        expect(next).toBe(win.end + step);
      }),
    );
  });
});

describe('gapRanges: (t-S, t] semantics', () => {
  const m = (entries: [number, number][]) => new Map(entries);

  test('one deficient bucket t means repairing (t-S, t]', () => {
    const src = m([[T0, 8], [T0 + S, 8], [T0 + 2 * S, 8]]);
    const dst = m([[T0, 8], [T0 + S, 5], [T0 + 2 * S, 8]]);
    expect(gapRanges(src, dst, S)).toEqual([{ start: T0, end: T0 + S, missing: 3 }]);
  });

  test('adjacent deficient buckets merge; a clean bucket between splits', () => {
    const src = m([0, 1, 2, 3, 4, 5, 6].map((i) => [T0 + i * S, 10]));
    const dst = m([
      [T0 + 0 * S, 10],
      [T0 + 1 * S, 0],
      [T0 + 2 * S, 4],
      // T0+3S absent on the destination: counts as 0
      [T0 + 4 * S, 10],
      [T0 + 5 * S, 9],
      [T0 + 6 * S, 12], // more than the source: not a gap
    ]);
    expect(gapRanges(src, dst, S)).toEqual([
      { start: T0, end: T0 + 3 * S, missing: 10 + 6 + 10 },
      { start: T0 + 4 * S, end: T0 + 5 * S, missing: 1 },
    ]);
  });

  test('buckets the source lacks are never gaps; unsorted maps are fine', () => {
    const src = m([[T0 + 2 * S, 4], [T0, 4]]);
    const dst = m([[T0 + S, 4]]);
    expect(gapRanges(src, dst, S)).toEqual([
      { start: T0 - S, end: T0, missing: 4 },
      { start: T0 + S, end: T0 + 2 * S, missing: 4 },
    ]);
    expect(gapRanges(new Map(), dst, S)).toEqual([]);
  });

  test('property: ranges are exactly the deficient buckets, disjoint, sorted, missing summed', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(20), fc.nat(20)), { maxLength: 200 }), (pairs) => {
        const src = new Map<number, number>();
        const dst = new Map<number, number>();
        pairs.forEach(([s, d], i) => {
          src.set(T0 + i * S, s);
          dst.set(T0 + i * S, d);
        });
        const ranges = gapRanges(src, dst, S);
        for (let i = 1; i < ranges.length; i++) expect(ranges[i].start).toBeGreaterThan(ranges[i - 1].end);
        pairs.forEach(([s, d], i) => {
          expect(inRanges(T0 + i * S, ranges, S)).toBe(d < s);
        });
        const total = pairs.reduce((n, [s, d]) => n + Math.max(0, s - d), 0);
        expect(ranges.reduce((n, r) => n + r.missing, 0)).toBe(total);
      }),
    );
  });
});

describe('splitRange', () => {
  test('pieces of at most maxChunk that tile (start, end] exactly', () => {
    expect(splitRange({ start: 0, end: 15 * H }, 6 * H)).toEqual([
      { start: 0, end: 6 * H },
      { start: 6 * H, end: 12 * H },
      { start: 12 * H, end: 15 * H },
    ]);
    expect(splitRange({ start: T0, end: T0 + S }, 6 * H)).toEqual([{ start: T0, end: T0 + S }]);
    expect(splitRange({ start: 0, end: 12 * H }, 6 * H)).toHaveLength(2);
    expect(splitRange({ start: 5, end: 5 }, H)).toEqual([]);
    expect(() => splitRange({ start: 0, end: 1 }, 0)).toThrow(RangeError);
  });

  test('property', () => {
    fc.assert(
      fc.property(fc.nat(1e9), fc.nat(1e9), fc.integer({ min: 1, max: 1e8 }), (a, len, c0) => {
        const c = Math.max(c0, Math.ceil(len / 200)); // at most ~200 pieces
        const parts = splitRange({ start: a, end: a + len }, c);
        let next = a;
        for (const p of parts) {
          expect(p.start).toBe(next);
          expect(p.end - p.start).toBeGreaterThan(0);
          expect(p.end - p.start).toBeLessThanOrEqual(c);
          next = p.end;
        }
        expect(next).toBe(a + len);
      }),
    );
  });
});

describe('planChunks', () => {
  const range = (startMin: number, endMin: number) => ({ start: T0 + startMin * S, end: T0 + endMin * S, missing: 1 });

  test('a large range is shared out among the streams, bucket-aligned', () => {
    const r = range(0, 240); // 4 h
    expect(planChunks([r], 6 * H, 2, S).map((c) => [(c.start - T0) / S, (c.end - T0) / S])).toEqual([
      [0, 120],
      [120, 240],
    ]);
    // 3 streams over 41 min: ceil(41/3) = 14 buckets a piece
    expect(planChunks([range(0, 41)], 6 * H, 3, S).map((c) => (c.end - c.start) / S)).toEqual([14, 14, 13]);
    expect(planChunks([r], 6 * H, 2, S).every((c) => c.range === r)).toBe(true);
  });

  test('max_chunk still bounds every piece; one stream is plain splitRange', () => {
    const r = range(0, 15 * 60);
    expect(planChunks([r], 6 * H, 2, S).map((c) => (c.end - c.start) / H)).toEqual([6, 6, 3]);
    expect(planChunks([r], 6 * H, 1, S).map(({ start, end }) => ({ start, end }))).toEqual(splitRange(r, 6 * H));
  });

  test('small ranges are not cut below MIN_PIECE_BUCKETS buckets; ranges keep their order', () => {
    const a = range(0, 3);
    const b = range(10, 10 + MIN_PIECE_BUCKETS + 4);
    const chunks = planChunks([a, b], 6 * H, 4, S);
    expect(chunks.map((c) => [c.range === a ? 'a' : 'b', (c.end - c.start) / S])).toEqual([
      ['a', 3],
      ['b', MIN_PIECE_BUCKETS],
      ['b', 4],
    ]);
    expect(() => planChunks([a], 6 * H, 0, S)).toThrow(RangeError);
  });

  test('property: the chunks of each range tile it exactly, in order, within max_chunk', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(2000), fc.integer({ min: 1, max: 600 })), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 400 }),
        (spans, streams, maxChunkBuckets) => {
          let t = T0;
          const ranges = spans.map(([skip, len]) => {
            const r = { start: t + skip * S, end: t + (skip + len) * S, missing: len };
            t = r.end + S;
            return r;
          });
          const chunks = planChunks(ranges, maxChunkBuckets * S, streams, S);
          for (const r of ranges) {
            const mine = chunks.filter((c) => c.range === r);
            let next = r.start;
            for (const c of mine) {
              expect(c.start).toBe(next);
              expect((c.end - c.start) % S === 0 || c.end === r.end).toBe(true);
              expect(c.end - c.start).toBeLessThanOrEqual(maxChunkBuckets * S);
              next = c.end;
            }
            expect(next).toBe(r.end);
          }
          expect(chunks.map((c) => c.start)).toEqual([...chunks.map((c) => c.start)].sort((x, y) => x - y));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('windowsOfRanges / inRanges', () => {
  test('a range (start, end] is re-detected through the buckets start+S … end', () => {
    expect(windowsOfRanges([{ start: T0, end: T0 + 3 * S }], S)).toEqual([{ start: T0 + S, end: T0 + 3 * S }]);
    expect(inRanges(T0, [{ start: T0, end: T0 + 3 * S }], S)).toBe(false); // (T0-S, T0] is outside
    expect(inRanges(T0 + S, [{ start: T0, end: T0 + 3 * S }], S)).toBe(true);
    expect(inRanges(T0 + 3 * S, [{ start: T0, end: T0 + 3 * S }], S)).toBe(true);
    expect(inRanges(T0 + 4 * S, [{ start: T0, end: T0 + 3 * S }], S)).toBe(false);
  });
});
