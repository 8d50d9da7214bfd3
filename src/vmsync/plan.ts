/**
 * The export plan of a repair, pure (no I/O, no clock): which series each gap range exports.
 *
 * Detection finds a range from the totals per bucket; for a partial gap (the destination has some
 * samples in it) it also reads `sum by (<device label>)` per bucket on both sides. From those
 * counts `planRange` decides:
 *   - the devices short in some bucket of the range explain the whole gap → export only their
 *     series: `{__name__!="", <label>=~"a|b|c"}`, the values regex-escaped, in batches of at most
 *     DEVICES_PER_BATCH values and MAX_MATCHER_CHARS characters (one export per batch);
 *   - otherwise every series (MATCH_ALL), with the reason: a full gap (nothing to compare), no
 *     naming (off, failed, or a range past the first few), more than MAX_TARGETED_DEVICES devices,
 *     or a gap the named devices do not explain: series WITHOUT the label short in a bucket (no
 *     matcher names them) or a bucket whose total deficit exceeds what the devices lack (the
 *     counts moved between the queries). Exporting too much is harmless (VM deduplicates the
 *     re-import); exporting too little would leave a gap that the totals may then no longer show.
 * `planCopies` cuts the plans into the chunks the streams copy.
 *
 * Times are unix ms; a range is (start, end] and its buckets are start+S … end (ranges.ts).
 */
import { planChunks, type Chunk, type GapRange } from './ranges.js';

/** Every series: what a full gap, or a gap the devices do not explain, exports. */
export const MATCH_ALL = '{__name__!=""}';
/**
 * More devices short in one range than this: every series. Each batch is an export request of
 * its own, and with many devices short the saving over one export of everything shrinks.
 */
export const MAX_TARGETED_DEVICES = 100;
/** Device values per `match[]` (one export request per batch and chunk). */
export const DEVICES_PER_BATCH = 25;
/** A batch's selector stays under this many characters: URLs pass proxies with 8 KiB limits. */
export const MAX_MATCHER_CHARS = 2_000;

/** One side's counts of a range: label value ('' = series without the label) → bucket → samples. */
export type GroupCounts = ReadonlyMap<string, ReadonlyMap<number, number>>;

/** What naming found for a range. */
export type Naming =
  /** The destination has no sample in the range: every series is missing, nothing to name. */
  | { kind: 'full' }
  /** Not named: `device_label` is "", the naming query failed, or the range is past the ones named. */
  | { kind: 'unnamed'; reason: 'naming_off' | 'naming_failed' | 'not_named' }
  | { kind: 'named'; src: GroupCounts; dst: GroupCounts };

export type PlanReason = 'devices' | 'full_gap' | 'naming_off' | 'naming_failed' | 'not_named' | 'too_many_devices' | 'unexplained';

export interface RangePlan {
  range: GapRange;
  /** `match[]` selectors: one export per selector (and chunk). */
  matchers: string[];
  /** The devices exported, naturally sorted; null when every series is. */
  devices: string[] | null;
  /** Devices (label values) the source has in the range; 0 when not named. */
  deviceTotal: number;
  reason: PlanReason;
  /** Source samples the exports carry (detection's counts): what moves, not what was missing. */
  samples: number;
}

export interface PlanInput {
  range: GapRange;
  naming: Naming;
  /** Both sides' totals per bucket (detection's count query). */
  srcTotals: ReadonlyMap<number, number>;
  dstTotals: ReadonlyMap<number, number>;
}

/** The buckets of (start, end]: start+S … end. */
function buckets(r: GapRange, bucket: number): number[] {
  const out: number[] = [];
  for (let t = r.start + bucket; t <= r.end; t += bucket) out.push(t);
  return out;
}

const at = (m: ReadonlyMap<number, number> | undefined, t: number): number => m?.get(t) ?? 0;

/**
 * The devices short in some bucket of the range, or 'unexplained' when they do not account for
 * the whole gap (see the file comment).
 */
export function shortDevices(input: PlanInput & { naming: { kind: 'named' } }, bucket: number): string[] | 'unexplained' {
  const { range, naming, srcTotals, dstTotals } = input;
  const short = new Set<string>();
  for (const t of buckets(range, bucket)) {
    let named = 0;
    for (const [value, counts] of naming.src) {
      const lack = at(counts, t) - at(naming.dst.get(value), t);
      if (lack <= 0) continue;
      if (value === '') return 'unexplained'; // no matcher selects series without the label alone
      short.add(value);
      named += lack;
    }
    if (named < at(srcTotals, t) - at(dstTotals, t)) return 'unexplained';
  }
  return [...short].sort(naturalCompare);
}

/** The plan of one range (see the file comment). */
export function planRange(input: PlanInput, label: string, bucket: number): RangePlan {
  const { range, naming, srcTotals } = input;
  const all = (reason: PlanReason): RangePlan => ({
    range,
    matchers: [MATCH_ALL],
    devices: null,
    deviceTotal: naming.kind === 'named' ? deviceCount(naming.src) : 0,
    reason,
    samples: buckets(range, bucket).reduce((n, t) => n + at(srcTotals, t), 0),
  });
  if (naming.kind === 'full') return all('full_gap');
  if (naming.kind === 'unnamed') return all(naming.reason);
  const devices = shortDevices({ ...input, naming }, bucket);
  if (devices === 'unexplained' || devices.length === 0) return all('unexplained');
  if (devices.length > MAX_TARGETED_DEVICES) return all('too_many_devices');
  let samples = 0;
  for (const d of devices) for (const t of buckets(range, bucket)) samples += at(naming.src.get(d), t);
  return { range, matchers: deviceMatchers(label, devices), devices, deviceTotal: deviceCount(naming.src), reason: 'devices', samples };
}

const deviceCount = (g: GroupCounts): number => [...g.keys()].filter((v) => v !== '').length;

/** The plan of every range, in their order. */
export function planExports(inputs: readonly PlanInput[], label: string, bucket: number): RangePlan[] {
  return inputs.map((i) => planRange(i, label, bucket));
}

/** A value as an RE2 literal: every metacharacter escaped (VM anchors label regexes). */
export function escapeRegex(value: string): string {
  return value.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/**
 * `{__name__!="", <label>=~"a|b"}` selectors over `devices`, in batches of at most
 * DEVICES_PER_BATCH values and MAX_MATCHER_CHARS characters (a single longer value gets a batch
 * of its own). The regex goes in a JSON-quoted string, which PromQL's string syntax reads alike.
 */
export function deviceMatchers(label: string, devices: readonly string[]): string[] {
  const selector = (alts: string[]) => `{__name__!="", ${label}=~${JSON.stringify(alts.join('|'))}}`;
  const out: string[] = [];
  let batch: string[] = [];
  for (const d of devices) {
    const next = [...batch, escapeRegex(d)];
    if (batch.length > 0 && (batch.length >= DEVICES_PER_BATCH || selector(next).length > MAX_MATCHER_CHARS)) {
      out.push(selector(batch));
      batch = [escapeRegex(d)];
    } else {
      batch = next;
    }
  }
  if (batch.length > 0) out.push(selector(batch));
  return out;
}

/** A piece of a plan that one export → import stream copies: a chunk of its range and one selector. */
export interface Copy extends Chunk {
  match: string;
  plan: RangePlan;
}

/**
 * The copies of a repair: every plan's range cut by planChunks (max_chunk, shared among the
 * streams), times its selectors. A targeted plan is cut at max_chunk only: its batches already
 * give the streams work, and its data is small.
 */
export function planCopies(plans: readonly RangePlan[], maxChunk: number, streams: number, bucket: number): Copy[] {
  const out: Copy[] = [];
  for (const plan of plans) {
    const chunks = planChunks([plan.range], maxChunk, plan.devices ? 1 : streams, bucket);
    for (const c of chunks) for (const match of plan.matchers) out.push({ ...c, match, plan });
  }
  return out;
}

export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
