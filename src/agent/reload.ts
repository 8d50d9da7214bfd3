/**
 * What a SIGHUP reload may change. The engine's timers and the pure core read the configuration
 * on every use, so their keys apply at once; everything else (the DNS client and key, the health
 * checker, the collector port, VM sync, the HTTP listener, the webhook) is built at start, and a
 * reload that changes it is refused as a whole, naming the keys, rather than half applied or
 * silently ignored.
 */
import type { Config } from '../config/schema.js';

/** Keys (dotted TOML paths) a reload applies while running. */
export const LIVE_KEYS: ReadonlySet<string> = new Set([
  'lease.ttl',
  'lease.renew_interval',
  'lease.max_skew',
  'health.interval',
  'health.failures',
  'collector.mode',
  'collector.self_fence',
  'collector.interval',
  'vmsync.interval',
  'log.level',
]);

/** The dotted paths of the leaves that differ between two parsed configurations (arrays compare whole). */
export function changedKeys(a: unknown, b: unknown, prefix = ''): string[] {
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => changedKeys(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
}

/** What a reload from `running` to `next` does: the keys it applies, or those that need a restart. */
export function planReload(running: Config, next: Config): { apply: string[]; restart: string[] } {
  // `file` and `instance` are where the configuration came from, not settings.
  const changed = changedKeys(running, next).filter((k) => k !== 'file' && k !== 'instance');
  return { apply: changed.filter((k) => LIVE_KEYS.has(k)), restart: changed.filter((k) => !LIVE_KEYS.has(k)) };
}
