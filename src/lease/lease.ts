/**
 * The lease TXT record: `v=1 holder=<primary|dr> epoch=<n> seq=<n> at=<unix s>`.
 *
 * epoch rises by one on every change of holder (the fencing token), seq rises
 * on every write of any kind (renewals included), at is informational only:
 * nobody compares wall clocks across sites.
 */
import { AgentError, ExitCode } from '../errors.js';

export type Role = 'primary' | 'dr';

export interface Lease {
  holder: Role;
  epoch: number;
  seq: number;
  at: number;
}

export class LeaseFormatError extends AgentError {
  constructor(message: string) {
    super('LEASE_MALFORMED', message, ExitCode.UNAVAILABLE);
  }
}

const FIELDS = ['v', 'holder', 'epoch', 'seq', 'at'] as const;
/** At most 15 digits: always a safe integer, as the general path requires. */
const CANONICAL = /^v=1 holder=(primary|dr) epoch=(\d{1,15}) seq=(\d{1,15}) at=(\d{1,15})$/;

export function formatLease(l: Lease): string {
  for (const k of ['epoch', 'seq', 'at'] as const) {
    if (!Number.isSafeInteger(l[k]) || l[k] < 0) throw new LeaseFormatError(`lease ${k} must be a non-negative integer, got ${l[k]}`);
  }
  return `v=1 holder=${l.holder} epoch=${l.epoch} seq=${l.seq} at=${l.at}`;
}

/**
 * Strict parse: exactly the five fields, in order, once each. Anything else is
 * a LeaseFormatError: a lease we do not fully understand is never acted on.
 */
export function parseLease(text: string): Lease {
  // The form formatLease writes, read in one match (every agent reads the lease each tick); any
  // other text takes the general path below, which accepts the same leases and names what is wrong.
  const m = CANONICAL.exec(text);
  if (m) return { holder: m[1] as Role, epoch: Number(m[2]), seq: Number(m[3]), at: Number(m[4]) };
  const tokens = text.trim().split(/\s+/);
  if (tokens.length !== FIELDS.length) {
    throw new LeaseFormatError(`lease ${JSON.stringify(text)}: expected ${FIELDS.length} fields (${FIELDS.join(' ')})`);
  }
  const values: Record<string, string> = {};
  tokens.forEach((tok, i) => {
    const eq = tok.indexOf('=');
    const key = eq > 0 ? tok.slice(0, eq) : '';
    if (key !== FIELDS[i]) throw new LeaseFormatError(`lease ${JSON.stringify(text)}: field ${i + 1} must be ${FIELDS[i]}=`);
    values[key] = tok.slice(eq + 1);
  });
  if (values.v !== '1') throw new LeaseFormatError(`lease ${JSON.stringify(text)}: unsupported version v=${values.v}`);
  const holder = values.holder;
  if (holder !== 'primary' && holder !== 'dr') throw new LeaseFormatError(`lease ${JSON.stringify(text)}: holder must be primary or dr`);
  const int = (k: 'epoch' | 'seq' | 'at'): number => {
    const s = values[k]!;
    const n = Number(s);
    if (!/^\d{1,15}$/.test(s) || !Number.isSafeInteger(n)) throw new LeaseFormatError(`lease ${JSON.stringify(text)}: ${k} must be a non-negative integer`);
    return n;
  };
  return { holder, epoch: int('epoch'), seq: int('seq'), at: int('at') };
}

/** The lease after a renewal by its holder. */
export function renewed(l: Lease, nowSeconds: number): Lease {
  return { ...l, seq: l.seq + 1, at: Math.floor(nowSeconds) };
}

/** The lease after a change of holder: a new epoch (fencing token). */
export function transferred(l: Lease, to: Role, nowSeconds: number): Lease {
  return { holder: to, epoch: l.epoch + 1, seq: l.seq + 1, at: Math.floor(nowSeconds) };
}

export function sameLease(a: Lease | null, b: Lease | null): boolean {
  return a === b || (!!a && !!b && a.holder === b.holder && a.epoch === b.epoch && a.seq === b.seq && a.at === b.at);
}
