/**
 * Duration strings of the config file ("250ms", "10s", "5m", "24h", "1m30s") to milliseconds.
 *
 * Deliberately stricter than Go's time.ParseDuration: a bare number is refused (is "30" seconds or
 * milliseconds?), units must go from largest to smallest without repeats ("30s1m" and "1s1s" are
 * almost certainly typos). The result must be whole milliseconds.
 */

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;
const UNIT_ORDER: readonly Unit[] = ['h', 'm', 's', 'ms'];

/**
 * Largest delay setTimeout/setInterval honour (about 24.8 days): a longer one fires at once, which
 * would turn a long interval into a busy loop. The schema caps every timer-driven key with it.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export class DurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DurationError';
  }
}

/** Parse a duration string to whole milliseconds; throws DurationError with a message fit for users. */
export function parseDuration(input: string): number {
  if (typeof input !== 'string') {
    throw new DurationError(`expected a duration string like "10s", got ${typeof input}`);
  }
  const s = input.trim();
  if (s === '') throw new DurationError('empty duration (write e.g. "10s", "250ms", "1m30s")');
  if (s.startsWith('-')) throw new DurationError(`negative duration "${input}" is not allowed`);
  if (/^\+?\d+(\.\d+)?$/.test(s)) {
    throw new DurationError(`duration "${input}" has no unit (write e.g. "${s.replace(/^\+/, '')}s"; units: ms, s, m, h)`);
  }

  const part = /(\d+(?:\.\d+)?)([a-zA-Z\u00b5]+)/y; // the micro sign escaped: an all-ASCII bundle is kept by V8 as a one-byte string (docs/PERFORMANCE.md)
  let pos = 0;
  let total = 0;
  let lastRank = -1;
  while (pos < s.length) {
    part.lastIndex = pos;
    const m = part.exec(s);
    if (!m) {
      throw new DurationError(`invalid duration "${input}" (write e.g. "10s", "250ms", "1m30s"; units: ms, s, m, h)`);
    }
    const [, num, unitRaw] = m;
    if (!(unitRaw in UNIT_MS)) {
      throw new DurationError(`unknown unit "${unitRaw}" in duration "${input}" (units: ms, s, m, h)`);
    }
    const unit = unitRaw as Unit;
    const rank = UNIT_ORDER.indexOf(unit);
    if (rank <= lastRank) {
      throw new DurationError(`invalid duration "${input}": units must go from largest to smallest, each once (e.g. "1h30m")`);
    }
    lastRank = rank;
    total += Number(num) * UNIT_MS[unit];
    pos = part.lastIndex;
  }
  // Fractions are fine ("1.5s") as long as they land on whole milliseconds.
  const ms = Math.round(total * 1000) / 1000;
  if (!Number.isInteger(ms)) {
    throw new DurationError(`duration "${input}" is not a whole number of milliseconds`);
  }
  if (!Number.isSafeInteger(ms)) throw new DurationError(`duration "${input}" is too long`);
  return ms;
}

/** Milliseconds back to the canonical string form ("1m30s", "250ms", "0s"); used in messages and docs. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return `${ms}ms`;
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const unit of UNIT_ORDER) {
    const n = Math.floor(rest / UNIT_MS[unit]);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * UNIT_MS[unit];
    }
  }
  return out;
}
