/**
 * The margins that keep a lossy WAN from flipping the sites (README "Tuning for a lossy WAN").
 * Warnings only: a configuration below them works, it just fences or fails checks sooner than it
 * needs to. `failoverctl check-config` prints them, with the DNS round trip it measured.
 *
 * - Renewal exchanges that may be lost in a row: the holder renews by CAS on what its own last
 *   write left (one exchange a round; a read first only every few rounds or after a conflict). After
 *   its last confirmed renewal it sends the next one `renew_interval` after that write's answer (one
 *   round trip); an exchange whose every attempt is lost costs one DNS budget
 *   (`dns.timeout × (dns.retries + 1)`) and the next goes out {@link HOLDER_RETRY_MS} later (after a
 *   renewal whose answer never came: a read, then the CAS). A read that is not lost adds a round trip. Its lease is lost at `ttl - max_skew` after the last
 *   confirmed SEND, so ⌊(ttl - max_skew - renew_interval - 2 × rtt) / (budget + retry)⌋ exchanges
 *   may be lost in a row (one whose ANSWER alone is lost still counts: the retry or the next read
 *   confirms it). Fewer than {@link MIN_LOST_ROUNDS}: a warning. The DR's side is wider (ttl + max_skew of READ, unchanged
 *   lease, and `health.failures` failed checks), so the holder's margin is the one to watch.
 * - A health check costs one round trip on its kept-alive connection (a new connection gets its own
 *   budget first): `health.timeout` below {@link RTT_FACTOR} × the measured round trip leaves no room
 *   for a retransmission, and a lossy path fails checks by construction.
 */
import type { Config } from './schema.js';
import { formatDuration } from './duration.js';
import { HOLDER_RETRY_MS } from '../core/decide.js';

export const MIN_LOST_ROUNDS = 2;
export const RTT_FACTOR = 3;

export interface MarginWarning {
  /** The configuration key to change. */
  key: string;
  message: string;
}

/** The time one wholly lost renewal exchange costs the holder: its DNS budget and the wait before the next. */
export function lostExchangeMs(c: Pick<Config, 'lease' | 'dns'>): number {
  return c.dns.timeout * (c.dns.retries + 1) + Math.min(c.lease.renew_interval, HOLDER_RETRY_MS);
}

/** Whole renewal exchanges the holder may lose in a row before its lease runs out (`rttMs`: the measured round trip, 0 when unknown). */
export function lostRoundsTolerated(c: Pick<Config, 'lease' | 'dns'>, rttMs = 0): number {
  return Math.max(0, Math.floor((c.lease.ttl - c.lease.max_skew - c.lease.renew_interval - 2 * rttMs) / lostExchangeMs(c)));
}

export function marginWarnings(c: Config, measuredRttMs?: number): MarginWarning[] {
  const out: MarginWarning[] = [];
  const rounds = lostRoundsTolerated(c, measuredRttMs);
  if (rounds < MIN_LOST_ROUNDS) {
    const budget = c.dns.timeout * (c.dns.retries + 1);
    const rtt = measuredRttMs === undefined ? '' : ` - 2 x round trip ${measuredRttMs.toFixed(0)}ms`;
    out.push({
      key: 'lease.ttl',
      message:
        `the holder survives ${rounds} wholly lost renewal exchange(s) in a row (want >= ${MIN_LOST_ROUNDS}): ` +
        `(ttl ${formatDuration(c.lease.ttl)} - max_skew ${formatDuration(c.lease.max_skew)} - renew_interval ${formatDuration(c.lease.renew_interval)}${rtt}) / ` +
        `(dns.timeout ${formatDuration(c.dns.timeout)} x ${c.dns.retries + 1} attempts = ${formatDuration(budget)}, + ${formatDuration(lostExchangeMs(c) - budget)} before the next); raise lease.ttl or lower lease.renew_interval`,
    });
  }
  if (c.role === 'dr' && measuredRttMs !== undefined && c.health.timeout < RTT_FACTOR * measuredRttMs) {
    out.push({
      key: 'health.timeout',
      message: `${formatDuration(c.health.timeout)} is below ${RTT_FACTOR} x the measured DNS round trip (${measuredRttMs.toFixed(1)} ms): a lossy path will fail health checks by construction`,
    });
  }
  return out;
}
