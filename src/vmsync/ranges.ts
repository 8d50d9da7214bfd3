/**
 * VM sync range arithmetic (SPEC §6), pure: no I/O, no clock. All times are unix MILLISECONDS.
 *
 * Buckets. Detection asks each VM for `sum(count_over_time({__name__!=""}[S]))` with `step=S` and
 * start/end multiples of S. The point at time t counts the samples with timestamps in (t-S, t]
 * (VM's and Prometheus' range-vector window: open on the left, closed on the right; checked
 * against VictoriaMetrics 1.79 in test/vmsync). So "bucket t" is the half-open interval (t-S, t],
 * and a deficient bucket t means the samples of (t-S, t] must be copied: a range
 * `{ start, end }` always means (start, end], i.e. export from start+1 ms to end inclusive.
 * Adjacent ranges (a, b] and (b, c] neither overlap nor leave a hole.
 *
 * A window `{ start, end }` (type `BucketWindow`) is different: it lists bucket TIMESTAMPS,
 * start and end inclusive, both multiples of S; it covers the data (start-S, end].
 */

/** (start, end] in unix ms, plus how many samples the destination lacks in it (source - destination). */
export interface GapRange {
  start: number;
  end: number;
  missing: number;
}

/** (start, end] in unix ms. */
export interface Span {
  start: number;
  end: number;
}

/** Bucket timestamps start, start+S, …, end (inclusive, multiples of S). Covers (start-S, end]. */
export interface BucketWindow {
  start: number;
  end: number;
}

export const DAY_MS = 24 * 3600_000;

function assertBucket(bucket: number): void {
  if (!Number.isSafeInteger(bucket) || bucket <= 0) throw new RangeError(`bucket must be a positive integer of ms, got ${bucket}`);
}

/** Largest multiple of `bucket` ≤ t. */
export function alignDown(t: number, bucket: number): number {
  assertBucket(bucket);
  return Math.floor(t / bucket) * bucket;
}

/** Smallest multiple of `bucket` ≥ t. */
export function alignUp(t: number, bucket: number): number {
  assertBucket(bucket);
  return Math.ceil(t / bucket) * bucket;
}

/** The timestamp of the bucket whose interval (t-S, t] holds the instant x. */
export function bucketOf(x: number, bucket: number): number {
  return alignUp(x, bucket);
}

/**
 * The buckets one check scans.
 *
 * - end = floor((now - settle)/S)*S: the newest bucket that has fully settled (data still
 *   arriving is left alone).
 * - The scan starts at the bucket holding the instant `from`, where `from` is the EARLIER of
 *   `now - lookback` and, when a failover is known, its start (`since`, unix ms). So a check
 *   always covers at least `lookback`, and during a long failover it covers the whole failover:
 *   a gap is never forgotten while the failover it belongs to lasts.
 *
 * Returns null when nothing has settled yet in that span (start > end).
 */
export function scanWindow(
  now: number,
  settle: number,
  bucket: number,
  from: { since?: number | null; lookback: number },
): BucketWindow | null {
  assertBucket(bucket);
  const end = alignDown(now - settle, bucket);
  let first = now - from.lookback;
  if (from.since !== undefined && from.since !== null && Number.isFinite(from.since)) first = Math.min(first, from.since);
  const start = bucketOf(first, bucket);
  return start <= end ? { start, end } : null;
}

/**
 * Split a window into consecutive query windows that each cover at most `maxSpan` of data
 * (default 24 h): every window holds at most floor(maxSpan/S) buckets; together they list every
 * bucket of `win` exactly once, in order.
 */
export function queryWindows(win: BucketWindow, bucket: number, maxSpan: number = DAY_MS): BucketWindow[] {
  assertBucket(bucket);
  if (win.start % bucket !== 0 || win.end % bucket !== 0) throw new RangeError('window bounds must be multiples of the bucket');
  const perQuery = Math.max(1, Math.floor(maxSpan / bucket));
  const out: BucketWindow[] = [];
  for (let s = win.start; s <= win.end; s += perQuery * bucket) {
    out.push({ start: s, end: Math.min(win.end, s + (perQuery - 1) * bucket) });
  }
  return out;
}

/**
 * The ranges where the destination has fewer samples than the source: every bucket t with
 * dst(t) < src(t) (a bucket absent from `dst` counts as 0; one absent from `src` is never
 * deficient), adjacent deficient buckets (t, t+S) merged into one range (first-S, last].
 * `missing` is the sum of src - dst over the range's buckets. Sorted by time.
 */
export function gapRanges(src: ReadonlyMap<number, number>, dst: ReadonlyMap<number, number>, bucket: number): GapRange[] {
  assertBucket(bucket);
  const deficient: [number, number][] = [];
  for (const [t, s] of src) {
    const d = dst.get(t) ?? 0;
    if (d < s) deficient.push([t, s - d]);
  }
  deficient.sort((a, b) => a[0] - b[0]);
  const out: GapRange[] = [];
  for (const [t, miss] of deficient) {
    const last = out[out.length - 1];
    if (last && last.end === t - bucket) {
      last.end = t;
      last.missing += miss;
    } else {
      out.push({ start: t - bucket, end: t, missing: miss });
    }
  }
  return out;
}

/**
 * Split (start, end] into consecutive pieces of at most `maxChunk` each: (start, start+c],
 * (start+c, start+2c], …; together exactly (start, end].
 */
export function splitRange(range: Span, maxChunk: number): Span[] {
  if (!(maxChunk > 0)) throw new RangeError(`maxChunk must be positive, got ${maxChunk}`);
  const out: Span[] = [];
  for (let s = range.start; s < range.end; s += maxChunk) out.push({ start: s, end: Math.min(range.end, s + maxChunk) });
  return out;
}

/** A piece of a gap range that one export → import stream copies. */
export interface Chunk extends Span {
  range: GapRange;
}

/** Pieces are not cut below this many buckets just to have more streams. */
export const MIN_PIECE_BUCKETS = 10;

/**
 * The chunks of a repair, in time order: every range split at `maxChunk` and, when that leaves
 * it fewer pieces than `streams`, into `streams` pieces (bucket-aligned, each at least
 * MIN_PIECE_BUCKETS buckets) so that parallel streams share a large range.
 */
export function planChunks(ranges: readonly GapRange[], maxChunk: number, streams: number, bucket: number): Chunk[] {
  if (!(streams >= 1)) throw new RangeError(`streams must be at least 1, got ${streams}`);
  const out: Chunk[] = [];
  for (const range of ranges) {
    const len = range.end - range.start;
    const share = Math.ceil(len / streams / bucket) * bucket;
    const size = Math.min(maxChunk, Math.max(share, MIN_PIECE_BUCKETS * bucket));
    for (const c of splitRange(range, size)) out.push({ ...c, range });
  }
  return out;
}

/** The bucket timestamps of the ranges (each (start, end] → start+S … end), as windows for re-detection. */
export function windowsOfRanges(ranges: readonly Span[], bucket: number): BucketWindow[] {
  return ranges.map((r) => ({ start: bucketOf(r.start + 1, bucket), end: alignDown(r.end, bucket) })).filter((w) => w.start <= w.end);
}

/** True when bucket t lies inside one of the ranges (its interval (t-S, t] within (start, end]). */
export function inRanges(t: number, ranges: readonly Span[], bucket: number): boolean {
  return ranges.some((r) => t - bucket >= r.start && t <= r.end);
}
