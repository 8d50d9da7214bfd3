/**
 * The failback gate as pure functions (as `decide` is for the lease): which failover VM sync
 * repairs, how its clean checks count, what the gate says, and which gate a failback waits for.
 * VmSync (src/vmsync/sync.ts) and the Engine only apply them; failoverctl without the agent
 * reads the persisted count through `gateVerdict` too.
 *
 * The count: a check is clean when it completed and found no gap; FAILBACK READY after
 * `clean_checks` consecutive clean checks since the failover began. A new failover (another
 * lease epoch) resets the count; a gap or a failed check resets it and withdraws READY.
 */
import type { Lease } from '../lease/lease.js';
import type { FailbackGate } from './admin.js';

/** A failover as the sync loop is told of it: the lease epoch and its start (unix SECONDS). */
export interface FailoverStart {
  epoch: number;
  since: number;
}

/**
 * The start of the current failover as this site can know it: when it first sees a lease of a new
 * epoch, that lease's `at` minus two renewals (renewals move `at`, and the first read of an epoch
 * may come a renewal or two after its start); the same epoch keeps the first estimate.
 */
export function failoverStart(prev: FailoverStart | null, lease: Lease | null | undefined, renewIntervalMs: number): FailoverStart | null {
  if (!lease || prev?.epoch === lease.epoch) return prev;
  return { epoch: lease.epoch, since: lease.at - Math.ceil((2 * renewIntervalMs) / 1000) };
}

/**
 * The gate a failback waits for: none (always ready) when VM sync is disabled, else the sync's own
 * for the current failover; enabled without a sync loop to ask, never ready (only --force moves).
 */
export function chooseFailbackGate(vmsyncEnabled: boolean, syncGate: FailbackGate | null): FailbackGate {
  if (!vmsyncEnabled) return { ready: true, detail: 'vmsync disabled: no data gate' };
  return syncGate ?? { ready: false, detail: 'VM sync is enabled but no sync loop runs: FAILBACK READY cannot be reached (use --force)' };
}

/** The gate's count, as VmSync persists it (a part of vmsync.json; times ISO). */
export interface GateCount {
  /** The failover the count is for: lease epoch and its start (ISO). */
  failover: { epoch: number; since: string } | null;
  consecutive_clean: number;
  failback_ready: boolean;
  /** When failback_ready last became true. */
  failback_ready_since: string | null;
  last_clean_check: string | null;
}

/**
 * The count for the failover `fo`: another epoch starts it over (`reset` names the epoch it
 * replaces, null when there was none); the same epoch keeps the earliest start seen.
 */
export function gateForFailover<G extends GateCount>(g: G, fo: FailoverStart | null): { gate: G; reset: { previous: number | null } | null } {
  if (!fo) return { gate: g, reset: null };
  const since = new Date(fo.since * 1000).toISOString();
  if (!g.failover || g.failover.epoch !== fo.epoch) {
    return {
      gate: { ...g, failover: { epoch: fo.epoch, since }, consecutive_clean: 0, failback_ready: false, failback_ready_since: null },
      reset: { previous: g.failover?.epoch ?? null },
    };
  }
  if (Date.parse(g.failover.since) > fo.since * 1000) return { gate: { ...g, failover: { ...g.failover, since } }, reset: null };
  return { gate: g, reset: null };
}

export type CheckOutcome = 'clean' | 'gap' | 'error';

/** The count after one check that ended at `atIso`, and whether READY was reached or withdrawn by it. */
export function gateAfterCheck<G extends GateCount>(
  g: G,
  outcome: CheckOutcome,
  atIso: string,
  cleanChecks: number,
): { gate: G; change: 'ready' | 'withdrawn' | null } {
  const clean = outcome === 'clean';
  const consecutive = clean ? g.consecutive_clean + 1 : 0;
  const ready = consecutive >= cleanChecks;
  const change = ready && !g.failback_ready ? 'ready' : !ready && g.failback_ready ? 'withdrawn' : null;
  return {
    gate: {
      ...g,
      consecutive_clean: consecutive,
      last_clean_check: clean ? atIso : g.last_clean_check,
      failback_ready: ready,
      failback_ready_since: change === 'ready' ? atIso : ready ? g.failback_ready_since : null,
    },
    change,
  };
}

/** What the verdict shows besides the count (the rest of vmsync.json). */
export interface GateView extends GateCount {
  ranges_found: readonly unknown[];
  last_check_ok: boolean;
  last_error: { code: string } | null;
}

/**
 * The gate for the failover whose lease epoch is `currentEpoch` (the witness's, as last read):
 * READY counts only for the CURRENT failover, a READY saved for an earlier epoch says nothing
 * about the gap the latest outage left.
 */
export function gateVerdict(g: GateView, cleanChecks: number, currentEpoch?: number | null): FailbackGate {
  const fo = g.failover ? `failover epoch ${g.failover.epoch}` : 'no failover recorded';
  if (currentEpoch !== undefined && currentEpoch !== null && g.failover?.epoch !== currentEpoch) {
    return { ready: false, detail: `not ready: no sync check yet for the current failover (epoch ${currentEpoch}; state holds ${fo})` };
  }
  if (g.failback_ready) {
    return { ready: true, detail: `FAILBACK READY (${fo}): ${g.consecutive_clean} consecutive clean checks, last at ${g.last_clean_check}` };
  }
  const err = g.last_error && !g.last_check_ok ? `; last check failed: ${g.last_error.code}` : '';
  const gaps = g.ranges_found.length > 0 ? `; last check found ${g.ranges_found.length} gap range(s)` : '';
  return { ready: false, detail: `not ready (${fo}): ${g.consecutive_clean}/${cleanChecks} consecutive clean checks${gaps}${err}` };
}
