/**
 * The DNS server as witness: read the failover record and the lease, and
 * change them only by compare-and-swap.
 *
 * Every write is ONE update message whose prerequisites are the exact RRsets
 * last read (value-dependent "RRset exists", or "RRset does not exist" when
 * it was empty), followed by delete-RRset + add of the new values, so readers
 * never see an empty answer and two writers can never both win.
 */
import net from 'node:net';
import { systemClock, systemRandom, type Clock, type Random } from '../clock.js';
import type { DnsClient } from '../dns/client.js';
import { DnsError } from '../dns/errors.js';
import { change, prereq } from '../dns/update.js';
import { normalizeName, type RData, type ResourceRecord, type RRType } from '../dns/wire.js';
import { formatLease, parseLease, renewed, transferred, type Lease, type Role } from './lease.js';
import { NO_CONTROL, parseControl, withRevision, type Control } from './control.js';

export interface WitnessNames {
  zone: string;
  record: string;
  leaseName: string;
  /** The control record (pause, last handover: lease/control.ts); default `_control.<record>`. */
  controlName?: string;
  /** TTL (s) written on both the record and the lease. */
  ttlSeconds: number;
}

export interface Sites {
  primary: string;
  dr: string;
}

/** What the witness said at one moment. */
export interface Snapshot {
  /** The failover record's addresses as read (normally exactly one). */
  addresses: string[];
  addressType: RRType;
  /** The lease TXT RRset as read: each record's strings joined. null when absent. */
  leaseText: string[] | null;
  /** The parsed lease, or null when absent or unparseable (see leaseError). */
  lease: Lease | null;
  leaseError?: string;
  /**
   * Server clock minus ours (s), from the signed answers, taken at receipt: a lower bound (an
   * answer held up on its way, or by a frozen process, makes it smaller than the truth).
   */
  offsetSeconds?: number;
  /** How much further ahead the server's clock may be than offsetSeconds says: the exchange's round trip (s). */
  offsetSpanSeconds?: number;
  /** The control TXT RRset as read (null: absent); undefined where no control record was read (a takeover then requires it absent). */
  controlText?: string[] | null;
  /** Parsed; an entry not understood leaves `control` empty and sets `controlError` (which counts as a pause). */
  control?: Control;
  controlError?: string;
}

/** What one write sets: the record's address and the lease (and, for a handover, the control record). */
export interface Intended {
  address: string;
  lease: Lease;
  /**
   * An automatic move (takeover, handover): the control RRset exactly as read is a prerequisite too,
   * so a pause written since makes the witness refuse it. Admin moves and renewals leave it out.
   */
  guardControl?: boolean;
  /** Replace the control RRset's entries with these (null: none; the witness adds the revision); undefined: leave it. */
  control?: string[] | null;
}

export interface WriteResult {
  /** What the witness holds now, so the next CAS needs no re-read. */
  snapshot: Snapshot;
  rttMs: number;
  /** True when a conflict turned out to be our own earlier attempt having been applied. */
  recovered?: boolean;
}

export function siteOf(address: string | undefined, sites: Sites): Role | undefined {
  if (address === undefined) return undefined;
  if (address === sites.primary) return 'primary';
  if (address === sites.dr) return 'dr';
  return undefined;
}

/** A Snapshot from the two RRsets as read; the lease parsed strictly (an error is kept, not thrown). */
export function snapshotOf(addresses: RData[], txt: RData[], addressType: RRType, leaseName: string): Snapshot {
  const snap: Snapshot = {
    addresses: addresses.map(String),
    addressType,
    leaseText: txt.length ? txt.map((v) => (Array.isArray(v) ? v.join('') : String(v))) : null,
    lease: null,
  };
  if (snap.leaseText?.length === 1) {
    try {
      snap.lease = parseLease(snap.leaseText[0]!);
    } catch (err) {
      snap.leaseError = (err as Error).message;
    }
  } else if (snap.leaseText) {
    snap.leaseError = `${snap.leaseText.length} TXT records at ${leaseName}; expected one`;
  }
  return snap;
}

/**
 * The last control RRset parsed, by its text: it changes rarely and is read every tick (a tenth of
 * the simulator's time went to parsing it again). Frozen: every reader shares it.
 */
let lastControl: { key: string; parsed: Pick<Snapshot, 'control' | 'controlError'> } | null = null;

/** `snap` with the control RRset as read, parsed strictly (an error is kept, not thrown): a copy. */
export function withControl(snap: Snapshot, txt: RData[]): Snapshot {
  return setControl({ ...snap }, txt);
}

/**
 * Sets the control RRset of `snap`, a snapshot of the caller's own making, in place: the reads
 * build one per tick, and copying it again cost a twentieth of the simulator's time.
 */
function setControl(snap: Snapshot, txt: RData[]): Snapshot {
  const controlText = txt.length ? txt.map((v) => (Array.isArray(v) ? v.join('') : String(v))) : null;
  const key = controlText ? controlText.join('\n') : '';
  if (lastControl?.key !== key) {
    let parsed: Pick<Snapshot, 'control' | 'controlError'>;
    try {
      parsed = { control: deepFreeze(parseControl(controlText)) };
    } catch (err) {
      parsed = { control: NO_CONTROL, controlError: (err as Error).message };
    }
    lastControl = { key, parsed };
  }
  snap.controlText = controlText;
  snap.control = lastControl.parsed.control;
  if (lastControl.parsed.controlError !== undefined) snap.controlError = lastControl.parsed.controlError;
  else if (snap.controlError !== undefined) delete snap.controlError; // read before with an entry not understood
  return snap;
}

function deepFreeze<T>(x: T): T {
  if (x && typeof x === 'object' && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}

/** The renewal of `seen` by its holder: same address, seq + 1. */
export function renewalOf(seen: Snapshot, nowSeconds: number): Intended {
  if (!seen.lease || seen.addresses.length !== 1) {
    throw new DnsError('DNS_PREREQ_FAILED', 'cannot renew: the witness holds no single address and valid lease');
  }
  return { address: seen.addresses[0]!, lease: renewed(seen.lease, nowSeconds) };
}

/** Takeover, failback or switchover: the record naming `to` and a new epoch. */
export function transferOf(seen: Snapshot, to: Role, sites: Sites, nowSeconds: number): Intended {
  if (!seen.lease) throw new DnsError('DNS_PREREQ_FAILED', `cannot move to ${to}: no valid lease to fence against (${seen.leaseError ?? 'absent'})`);
  return { address: sites[to], lease: transferred(seen.lease, to, nowSeconds) };
}

/** What the witness needs of a DNS client (DnsClient implements it; the simulator has its own). */
export type WitnessDns = Pick<DnsClient, 'read' | 'update'>;

/**
 * A signed answer's estimate of the server's clock (Snapshot.offsetSeconds), and how far off it
 * may be: the answer may have waited, on its way or in a stopped process, up to its round trip.
 */
function stampOffset(snap: Snapshot, answer: { offsetSeconds?: number; rttMs?: number }): void {
  if (answer.offsetSeconds === undefined) return;
  snap.offsetSeconds = answer.offsetSeconds;
  if (answer.rttMs !== undefined) snap.offsetSpanSeconds = answer.rttMs / 1000;
}

export class Witness {
  constructor(
    private readonly client: WitnessDns,
    readonly names: WitnessNames,
    private readonly addressType: RRType = 'A',
    /** For the round trip of a write recovered by a re-read (rttMs); default the system clock. */
    private readonly clock: Pick<Clock, 'monotonicMs'> = systemClock,
    /** The probe's impossible lease value. */
    private readonly random: Random = systemRandom,
  ) {}

  static addressTypeFor(sites: Sites): RRType {
    return net.isIPv6(sites.primary) ? 'AAAA' : 'A';
  }

  /** The control RRset as last read (undefined: never read). */
  private lastControl: RData[] | undefined;

  get controlName(): string {
    return this.names.controlName ?? `_control.${this.names.record}`;
  }

  async read(): Promise<Snapshot> {
    const [addr, txt, ctl] = await Promise.all([
      this.client.read(this.names.record, this.addressType),
      this.client.read(this.names.leaseName, 'TXT'),
      // The control record is not needed for a renewal: its read failing (a lossy path) must not
      // fail the read that the lease rests on. The last one read stands in (a stale pause or hold
      // is safe: every move that depends on it carries it as a prerequisite, so the witness
      // refuses it if the control record changed since).
      this.client.read(this.controlName, 'TXT').then(
        (r) => (this.lastControl = r.values),
        () => this.lastControl,
      ),
    ]);
    const base = snapshotOf(addr.values, txt.values, this.addressType, this.names.leaseName);
    const snap = ctl === undefined ? base : setControl(base, ctl);
    stampOffset(snap, txt.offsetSeconds !== undefined ? txt : addr);
    return snap;
  }

  private casPrereqs(seen: Snapshot, guardControl: boolean): ResourceRecord[] {
    const a = { name: this.names.record, type: this.addressType };
    const t = { name: this.names.leaseName, type: 'TXT' as const };
    return [
      ...(seen.addresses.length ? prereq.rrsetEquals(a, seen.addresses) : [prereq.rrsetAbsent(a)]),
      ...(seen.leaseText ? prereq.rrsetEquals(t, seen.leaseText.map((s) => [s])) : [prereq.rrsetAbsent(t)]),
      ...(guardControl ? this.controlPrereq(seen) : []),
    ];
  }

  private controlPrereq(seen: Snapshot): ResourceRecord[] {
    const c = { name: this.controlName, type: 'TXT' as const };
    return seen.controlText ? prereq.rrsetEquals(c, seen.controlText.map((s) => [s])) : [prereq.rrsetAbsent(c)];
  }

  private replaceControl(texts: string[] | null): ResourceRecord[] {
    const c = { name: this.controlName, type: 'TXT' as const };
    return [change.deleteRrset(c), ...(texts ?? []).map((t) => change.add({ ...c, data: [t] }, this.names.ttlSeconds))];
  }

  private replace(address: string, lease: Lease): ResourceRecord[] {
    const { record, leaseName, ttlSeconds } = this.names;
    return [
      change.deleteRrset({ name: record, type: this.addressType }),
      change.add({ name: record, type: this.addressType, data: address }, ttlSeconds),
      change.deleteRrset({ name: leaseName, type: 'TXT' }),
      change.add({ name: leaseName, type: 'TXT', data: [formatLease(lease)] }, ttlSeconds),
    ];
  }

  /**
   * Writes `address` + `lease` if the witness still holds exactly `seen`.
   * When it does not come back applied (a failed prerequisite, or an error the
   * server answered unsigned) one signed re-read decides (`settle`): the witness
   * holding what we meant to write means an earlier attempt of ours was applied
   * and its answer lost; otherwise the conflict is rethrown for the caller to decide.
   */
  async write(seen: Snapshot, { address, lease, guardControl, control }: Intended, copies: 1 | 2 = 1): Promise<WriteResult> {
    const t0 = this.clock.monotonicMs();
    const guarded = guardControl === true || control !== undefined;
    // A write of the control record raises its revision: it never returns to an earlier content.
    const controlNext = control === undefined ? undefined : withRevision(seen.controlText, control);
    const controlNow = controlNext ?? seen.controlText ?? null;
    const intended: Snapshot = setControl(
      { addresses: [address], addressType: this.addressType, leaseText: [formatLease(lease)], lease },
      controlNow ? controlNow.map((t) => [t]) : [],
    );
    const updates = [...this.replace(address, lease), ...(controlNext === undefined ? [] : this.replaceControl(controlNext))];
    const prerequisites = this.casPrereqs(seen, guarded);
    let applied = false;
    const send = async (): Promise<WriteResult> => {
      try {
        const r = await this.client.update(this.names.zone, prerequisites, updates);
        applied = true;
        stampOffset(intended, r);
        return { snapshot: intended, rttMs: r.rttMs };
      } catch (err) {
        // The other copy was applied already: this one's failure is that copy (its prerequisite no
        // longer holds), so nothing to settle: a re-read would only say what we know.
        if (applied) throw err;
        return this.settle(
          err,
          t0,
          (now) => sameAddresses(now.addresses, intended.addresses) && sameTexts(now.leaseText, intended.leaseText),
          (now) => !sameAddresses(now.addresses, seen.addresses) || !sameTexts(now.leaseText, seen.leaseText) || (guarded && !sameTexts(now.controlText, seen.controlText)),
        );
      }
    };
    return copies === 1 ? send() : firstApplied(send(), send());
  }

  /**
   * The control record alone (pause, resume): CAS on the control RRset exactly as read (its
   * revision included); the record and the lease are neither required nor touched (renewals go on
   * meanwhile). Settled like `write` when it does not come back applied.
   */
  async writeControl(seen: Snapshot, next: string[] | null): Promise<WriteResult> {
    const t0 = this.clock.monotonicMs();
    const texts = withRevision(seen.controlText, next);
    try {
      const r = await this.client.update(this.names.zone, this.controlPrereq(seen), this.replaceControl(texts));
      return { snapshot: withControl(seen, texts.map((t) => [t])), rttMs: r.rttMs };
    } catch (err) {
      return this.settle(
        err,
        t0,
        (now) => sameTexts(now.controlText, texts),
        (now) => !sameTexts(now.controlText, seen.controlText),
      );
    }
  }

  /**
   * A CAS that did not come back applied. A failed prerequisite (authenticated: someone moved
   * first, or our own earlier attempt was applied and its answer lost) and an error the server
   * answered UNSIGNED (DNS_UNSIGNED_ERROR: Samba's NXRRSET or SERVFAIL, which prove nothing) are
   * decided by ONE signed re-read: the witness holds what we wrote → applied (`recovered`); it
   * moved from what we read → a conflict (DNS_PREREQ_FAILED, authenticated by the read: we lost
   * the CAS); else the error stands (unsigned: not applied as far as the read shows, and still an
   * unknown outcome for the caller, which retries through its own unknown-outcome path). Any other
   * error is rethrown as it is.
   */
  private async settle(err: unknown, t0: number, wrote: (now: Snapshot) => boolean, moved: (now: Snapshot) => boolean): Promise<WriteResult> {
    if (!(err instanceof DnsError) || (err.code !== 'DNS_PREREQ_FAILED' && err.code !== 'DNS_UNSIGNED_ERROR')) throw err;
    const now = await this.read();
    if (wrote(now)) return { snapshot: now, rttMs: this.clock.monotonicMs() - t0, recovered: true };
    if (err.code === 'DNS_PREREQ_FAILED') throw err;
    if (moved(now)) {
      throw new DnsError(
        'DNS_PREREQ_FAILED',
        `update of ${this.names.zone} lost: the server answered ${err.rcode} unsigned, and a signed re-read shows the witness changed since we read it (someone else moved first); re-read before acting`,
        { rcode: err.rcode, authenticated: true, ...(now.offsetSeconds !== undefined ? { offsetSeconds: now.offsetSeconds } : {}) },
        { cause: err },
      );
    }
    const owner = err.rcode === 'SERVFAIL' ? '; Active Directory answers SERVFAIL to an account that does not own the record (`failoverctl check-config` checks)' : '';
    err.message += `; a signed re-read shows the witness unchanged since we read it: not applied so far${owner}`;
    throw err;
  }

  /** Renewal by the current holder: same address, seq + 1. */
  renew(seen: Snapshot, nowSeconds: number): Promise<WriteResult> {
    return this.write(seen, renewalOf(seen, nowSeconds));
  }

  /** Takeover, failback or switchover: point the record at `to` and start a new epoch. */
  transfer(seen: Snapshot, to: Role, sites: Sites, nowSeconds: number): Promise<WriteResult> {
    return this.write(seen, transferOf(seen, to, sites, nowSeconds));
  }

  /**
   * First write: the record naming the primary and lease epoch 1. Without
   * `force` it requires both RRsets to be absent; with `force` it replaces
   * what `seen` holds (still a CAS: a concurrent change still wins).
   * `createControl`: also create the control record (its revision alone) when
   * it does not exist, in the same update, so that where a record belongs to
   * the account that created it (Active Directory) one account owns all three.
   */
  init(seen: Snapshot, sites: Sites, nowSeconds: number, force: boolean, opts: { createControl?: boolean } = {}): Promise<WriteResult> {
    const empty: Snapshot = { addresses: [], addressType: this.addressType, leaseText: null, lease: null };
    const create = opts.createControl === true && !seen.controlText;
    // Creating the control record requires it absent; otherwise it is left out of the CAS.
    const base: Snapshot = force ? seen : create ? { ...empty, controlText: null } : empty;
    const epoch = force && seen.lease ? seen.lease.epoch + 1 : 1;
    const seq = force && seen.lease ? seen.lease.seq + 1 : 0;
    return this.write(base, { address: sites.primary, lease: { holder: 'primary', epoch, seq, at: Math.floor(nowSeconds) }, ...(create ? { control: null } : {}) });
  }

  /**
   * Proves the server checks the key and enforces prerequisites: a CAS on a
   * lease value that cannot exist must come back NXRRSET. Its update only
   * deletes that same non-existent record, so even a server that ignored the
   * prerequisite would change nothing. 'enforced-unsigned': NXRRSET, answered
   * without a signature of its own (Samba's AD DNS answers every error so):
   * what a server that enforces them says, though it proves nothing alone.
   */
  async probe(): Promise<'enforced' | 'enforced-unsigned' | 'ignored'> {
    const bogus = [`v=1 probe=${this.random.fraction().toString(36).slice(2)}`];
    const t = { name: this.names.leaseName, type: 'TXT' as const };
    try {
      await this.client.update(this.names.zone, prereq.rrsetEquals(t, [bogus]), [change.deleteRr({ ...t, data: bogus })]);
      return 'ignored';
    } catch (err) {
      if (err instanceof DnsError && err.code === 'DNS_PREREQ_FAILED' && err.rcode === 'NXRRSET' && err.authenticated) return 'enforced';
      if (err instanceof DnsError && err.code === 'DNS_UNSIGNED_ERROR' && err.rcode === 'NXRRSET') return 'enforced-unsigned';
      throw err;
    }
  }

  /**
   * Whether we may change each of the names that exist in `seen` (the record, the lease, the
   * control record), asked by an update that changes nothing: it deletes from the name a value that
   * cannot be there, with no prerequisite. A server that refuses it (REFUSED or NOTAUTH, signed:
   * BIND's update policy; SERVFAIL unsigned: Active Directory, where the account that created a
   * record owns it and no other may change it) would refuse our next real write of that name. Any
   * other failure (no answer, ...) is thrown.
   */
  async writeAccess(seen: Snapshot): Promise<WriteAccess[]> {
    const bogus = `v=1 probe=${this.random.fraction().toString(36).slice(2)}`;
    const names: { name: string; type: RRType; data: RData }[] = [
      ...(seen.addresses.length ? [{ name: this.names.record, type: this.addressType, data: this.addressType === 'A' ? '0.0.0.0' : '::' }] : []),
      ...(seen.leaseText ? [{ name: this.names.leaseName, type: 'TXT' as const, data: [bogus] }] : []),
      ...(seen.controlText ? [{ name: this.controlName, type: 'TXT' as const, data: [bogus] }] : []),
    ];
    const out: WriteAccess[] = [];
    for (const n of names) {
      try {
        await this.client.update(this.names.zone, [], [change.deleteRr(n)]);
        out.push({ name: n.name, type: n.type, ok: true });
      } catch (err) {
        if (!(err instanceof DnsError) || !refusal(err)) throw err;
        out.push({ name: n.name, type: n.type, ok: false, error: err });
      }
    }
    return out;
  }
}

/** One name's verdict of Witness.writeAccess. */
export type WriteAccess = { name: string; type: RRType; ok: true } | { name: string; type: RRType; ok: false; error: DnsError };

/** A server's no to a change it understood: its policy (signed), or AD's SERVFAIL to a non-owner (unsigned). */
function refusal(err: DnsError): boolean {
  if (err.code === 'DNS_REFUSED' || err.code === 'DNS_NOTAUTH') return true;
  return err.code === 'DNS_UNSIGNED_ERROR' && (err.rcode === 'SERVFAIL' || err.rcode === 'REFUSED' || err.rcode === 'NOTAUTH');
}

function sameTexts(a: readonly string[] | null | undefined, b: readonly string[] | null | undefined): boolean {
  const norm = (xs: readonly string[] | null | undefined): string => [...(xs ?? [])].sort().join('\n');
  return norm(a) === norm(b);
}

function sameAddresses(a: string[], b: string[]): boolean {
  const norm = (xs: string[]): string => xs.map((x) => normalizeName(x)).sort().join(',');
  return norm(a) === norm(b);
}

/** The first of two copies of one write that is applied; when neither is, a conflict (someone else wrote) wins over a timeout. */
async function firstApplied(a: Promise<WriteResult>, b: Promise<WriteResult>): Promise<WriteResult> {
  try {
    return await Promise.any([a, b]);
  } catch (err) {
    const errors = (err as AggregateError).errors;
    throw errors.find((e) => e instanceof DnsError && e.code === 'DNS_PREREQ_FAILED') ?? errors[0];
  }
}
