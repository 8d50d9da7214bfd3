/**
 * The margins that keep a lossy WAN from flipping the sites (README "Tuning for a lossy WAN").
 * Warnings only: a configuration below them works, it just fences or fails checks sooner than it
 * needs to. `failoverctl check-config` prints them, with the DNS round trip it measured.
 *
 * - Renewal rounds that may be lost in a row: after its last confirmed renewal the holder starts the
 *   next one `renew_interval` later; a round whose every attempt is lost costs one DNS exchange
 *   budget (`dns.timeout × (dns.retries + 1)`) and the next round starts at once. Its lease is lost
 *   at `ttl - max_skew`, so ⌊(ttl - max_skew - renew_interval) / budget⌋ whole rounds may be lost
 *   (a round whose ANSWER alone is lost still counts: the next read confirms it). Fewer than
 *   {@link MIN_LOST_ROUNDS}: a warning. The DR's side is wider (ttl + max_skew of READ, unchanged
 *   lease, and `health.failures` failed checks), so the holder's margin is the one to watch.
 * - A health check costs one round trip on its kept-alive connection (a new connection gets its own
 *   budget first): `health.timeout` below {@link RTT_FACTOR} × the measured round trip leaves no room
 *   for a retransmission, and a lossy path fails checks by construction.
 */
import type { Config } from './schema.js';
import { formatDuration } from './duration.js';

export const MIN_LOST_ROUNDS = 2;
export const RTT_FACTOR = 3;

export interface MarginWarning {
  /** The configuration key to change. */
  key: string;
  message: string;
}

/** Whole renewal rounds the holder may lose in a row before its lease runs out. */
export function lostRoundsTolerated(c: Pick<Config, 'lease' | 'dns'>): number {
  const budget = c.dns.timeout * (c.dns.retries + 1);
  return Math.max(0, Math.floor((c.lease.ttl - c.lease.max_skew - c.lease.renew_interval) / budget));
}

export function marginWarnings(c: Config, measuredRttMs?: number): MarginWarning[] {
  const out: MarginWarning[] = [];
  const rounds = lostRoundsTolerated(c);
  if (rounds < MIN_LOST_ROUNDS) {
    const budget = c.dns.timeout * (c.dns.retries + 1);
    out.push({
      key: 'lease.ttl',
      message:
        `the holder survives ${rounds} wholly lost renewal round(s) in a row (want >= ${MIN_LOST_ROUNDS}): ` +
        `(ttl ${formatDuration(c.lease.ttl)} - max_skew ${formatDuration(c.lease.max_skew)} - renew_interval ${formatDuration(c.lease.renew_interval)}) / ` +
        `(dns.timeout ${formatDuration(c.dns.timeout)} x ${c.dns.retries + 1} attempts = ${formatDuration(budget)}); raise lease.ttl or lower lease.renew_interval`,
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
