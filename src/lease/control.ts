/**
 * The control record: a TXT RRset beside the lease (`dns.control_name`, default `_control.<record>`)
 * that holds what BOTH sites must know and neither owns alone:
 *
 *   v=1 pause by=<who> since=<unix s> until=<unix s | 0> reason=<percent-encoded>
 *   v=1 handover from=<role> to=<role> epoch=<n> at=<unix s> reason=<code> detail=<percent-encoded>
 *   v=1 rev n=<n>
 *
 * At most one of each kind. The revision is the witness's (lease/witness.ts adds it): every write
 * of the control record raises it by one and every CAS on the record carries it as read, so the
 * RRset never returns to an earlier content (no ABA: a captured pause replayed after `resume` fails
 * its prerequisite, on a server without replay protection too) and a prerequisite on it fails once
 * anything in the RRset changed, on a server that checks value-dependent prerequisites record by
 * record rather than as the whole RRset (Samba). The pause stops every automatic move (a takeover and a handover carry
 * the control RRset exactly as read among their prerequisites, so a pause written after the read
 * makes them fail at the witness); the last automatic handover holds the next one back for
 * `collector.handover_hold`. Times are the writer's estimate of the server's clock (informational
 * arithmetic, never a safety margin: a pause or a hold off by a few seconds harms nothing).
 */
import { LeaseFormatError, type Role } from './lease.js';

export interface Pause {
  by: string;
  since: number;
  /** null: until `failoverctl resume`. */
  until: number | null;
  reason: string;
}

export interface Handover {
  from: Role;
  to: Role;
  /** The lease epoch the handover started. */
  epoch: number;
  at: number;
  reason: string;
  detail: string;
}

export interface Control {
  pause: Pause | null;
  handover: Handover | null;
}

export const NO_CONTROL: Control = { pause: null, handover: null };

/** A TXT character-string holds at most 255 bytes. */
const MAX_TXT = 255;

const enc = (s: string): string => encodeURIComponent(s);

/** `key=value` pairs of an entry whose `v=1 <kind>` head is already checked. */
function fields(text: string, kind: string, keys: readonly string[]): Record<string, string> {
  const tokens = text.trim().split(/\s+/).slice(2);
  const out: Record<string, string> = {};
  for (const tok of tokens) {
    const eq = tok.indexOf('=');
    const key = eq > 0 ? tok.slice(0, eq) : '';
    if (!keys.includes(key) || key in out) throw new LeaseFormatError(`control ${kind} ${JSON.stringify(text)}: unexpected field ${JSON.stringify(tok)}`);
    out[key] = tok.slice(eq + 1);
  }
  for (const k of keys) if (!(k in out)) throw new LeaseFormatError(`control ${kind} ${JSON.stringify(text)}: missing ${k}=`);
  return out;
}

function int(v: string, what: string): number {
  if (!/^\d{1,15}$/.test(v)) throw new LeaseFormatError(`control: ${what} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function role(v: string, what: string): Role {
  if (v !== 'primary' && v !== 'dr') throw new LeaseFormatError(`control: ${what} must be primary or dr, got ${JSON.stringify(v)}`);
  return v;
}

function dec(v: string, what: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    throw new LeaseFormatError(`control: ${what} is not percent-encoded text`);
  }
}

const REVISION = /^v=1 rev n=(\d{1,15})$/;

/** `v=1 rev n=<n>`: the control record's revision entry. */
export function formatRevision(n: number): string {
  return `v=1 rev n=${n}`;
}

/** The revision of the RRset as read (0: none, or none understood); never throws. */
export function revisionOf(texts: readonly string[] | null | undefined): number {
  let rev = 0;
  for (const t of texts ?? []) {
    const m = REVISION.exec(t.trim());
    if (m) rev = Math.max(rev, Number(m[1]));
  }
  return rev;
}

/** The RRset to write over `seen`: the entries of `next` (null: none) and the revision after `seen`'s. */
export function withRevision(seen: readonly string[] | null | undefined, next: readonly string[] | null): string[] {
  return [...(next ?? []), formatRevision(revisionOf(seen) + 1)];
}

/** Strict parse of the RRset as read; anything not understood is an error (and counts as a pause: see `pauseOf`). */
export function parseControl(texts: string[] | null): Control {
  const c: Control = { pause: null, handover: null };
  let seenRevision = false;
  for (const t of texts ?? []) {
    const head = t.trim().split(/\s+/, 2).join(' ');
    if (head === 'v=1 pause') {
      if (c.pause) throw new LeaseFormatError('control: two pause entries');
      const f = fields(t, 'pause', ['by', 'since', 'until', 'reason']);
      const until = int(f.until!, 'until');
      c.pause = { by: dec(f.by!, 'by'), since: int(f.since!, 'since'), until: until === 0 ? null : until, reason: dec(f.reason!, 'reason') };
    } else if (head === 'v=1 rev') {
      if (seenRevision) throw new LeaseFormatError('control: two rev entries');
      seenRevision = true;
      int(fields(t, 'rev', ['n']).n!, 'rev n');
    } else if (head === 'v=1 handover') {
      if (c.handover) throw new LeaseFormatError('control: two handover entries');
      const f = fields(t, 'handover', ['from', 'to', 'epoch', 'at', 'reason', 'detail']);
      c.handover = {
        from: role(f.from!, 'from'),
        to: role(f.to!, 'to'),
        epoch: int(f.epoch!, 'epoch'),
        at: int(f.at!, 'at'),
        reason: dec(f.reason!, 'reason'),
        detail: dec(f.detail!, 'detail'),
      };
    } else {
      throw new LeaseFormatError(`control: unknown entry ${JSON.stringify(t.slice(0, 60))}`);
    }
  }
  return c;
}

/** The longest prefix of `text` whose encoding keeps `build(encoded)` within one TXT string. */
function fit(build: (encoded: string) => string, text: string): string {
  let t = text;
  while (Buffer.byteLength(build(enc(t))) > MAX_TXT && t.length > 0) t = t.slice(0, -1);
  return build(enc(t));
}

export function formatPause(p: Pause): string {
  return fit((r) => `v=1 pause by=${enc(p.by).slice(0, 64)} since=${p.since} until=${p.until ?? 0} reason=${r}`, p.reason);
}

export function formatHandover(h: Handover): string {
  return fit((d) => `v=1 handover from=${h.from} to=${h.to} epoch=${h.epoch} at=${h.at} reason=${enc(h.reason)} detail=${d}`, h.detail);
}

/** The entries for `c`, or null (none); the witness adds the revision when it writes them. */
export function formatControl(c: Control): string[] | null {
  const out = [...(c.pause ? [formatPause(c.pause)] : []), ...(c.handover ? [formatHandover(c.handover)] : [])];
  return out.length ? out : null;
}

/** The pause in force at `serverNowSeconds`, if any (an expired `--for` pause has ended by itself). */
export function pauseInForce(c: Control, serverNowSeconds: number): Pause | null {
  const p = c.pause;
  return p && (p.until === null || serverNowSeconds < p.until) ? p : null;
}
