/**
 * Admin moves (failback, switchover) as a pure plan: preconditions checked
 * against a fresh snapshot, the steps in words, and whether it is refused.
 * The agent and failoverctl's direct mode both execute this same plan.
 */
import { formatLease, transferred, type Role } from '../lease/lease.js';
import type { Snapshot } from '../lease/witness.js';
import type { CollectorState, CoreConfig } from './decide.js';
import { namedSite } from './decide.js';

export type AdminOp = 'failback' | 'switchover';

/** Read-plan-CAS rounds for an admin move racing the active site's renewals. */
export const ADMIN_ATTEMPTS = 5;

const OVERRIDABLE = new Set(['vmsync-failback-ready', 'collector-unit']);

/** One checked precondition of an admin move (the control protocol carries them as they are). */
export interface Precondition {
  name: string;
  ok: boolean;
  detail: string;
}

export interface FailbackGate {
  ready: boolean;
  detail: string;
}

export interface AdminPlan {
  op: AdminOp;
  to: Role;
  preconditions: Precondition[];
  plan: string[];
  /** The first failed precondition, or null. */
  refused: string | null;
}

export function planAdmin(
  op: AdminOp,
  config: Pick<CoreConfig, 'sites' | 'role'> & { dns: { record: string; lease_name: string } },
  snap: Snapshot,
  gate: FailbackGate,
  collector: CollectorState | null,
  nowSeconds: number,
  force: boolean,
): AdminPlan {
  const from: Role = op === 'failback' ? 'dr' : 'primary';
  const to: Role = op === 'failback' ? 'primary' : 'dr';
  const named = namedSite(snap, { sites: config.sites } as CoreConfig);
  const lease = snap.lease;
  const pre: Precondition[] = [
    {
      name: 'witness-consistent',
      ok: !!lease && named !== undefined && lease.holder === named,
      detail: lease
        ? `record names ${snap.addresses.join(', ') || 'nothing'} (${named ?? 'no site'}), lease holder ${lease.holder} epoch ${lease.epoch}`
        : `no valid lease (${snap.leaseError ?? 'absent'})`,
    },
    {
      name: `${from}-active`,
      ok: named === from,
      detail: named === from ? `the ${from} is active` : `the record names the ${named ?? 'no site'}, not the ${from}: nothing to ${op}`,
    },
  ];
  if (op === 'failback') pre.push({ name: 'vmsync-failback-ready', ok: gate.ready, detail: gate.detail });
  // Only the site that will run the collector is checked, and only from there: a broken collector
  // at the site giving up the record is a reason to move, not to refuse (the other site's unit
  // cannot be seen from here; its agent reports it).
  if (config.role === to && (collector === 'failed' || collector === 'missing')) {
    pre.push({ name: 'collector-unit', ok: false, detail: `this site's collector unit is ${collector}, and the ${to} would run the collector after the ${op}` });
  }
  const next = lease ? transferred(lease, to, nowSeconds) : null;
  const plan = [
    `CAS in ONE update: ${config.dns.record} ${snap.addresses.join(',') || '(none)'} -> ${config.sites[to]}; ` +
      `${config.dns.lease_name} "${lease ? formatLease(lease) : '?'}" -> "${next ? formatLease(next) : '?'}" ` +
      `(prerequisites: both exactly as read)`,
    `the ${from} agent sees the record name the ${to} and stops its collector`,
    `the ${to} agent renews the lease and keeps its collector running`,
  ];
  // --force overrides the sync gate and a broken collector, never the state of the witness.
  const failed = pre.find((p) => !p.ok && !(force && OVERRIDABLE.has(p.name)));
  return { op, to, preconditions: pre, plan, refused: failed ? `${failed.name}: ${failed.detail}` : null };
}
