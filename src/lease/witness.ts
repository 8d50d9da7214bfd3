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
import { NO_CONTROL, parseControl, type Control } from './control.js';

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
  /** Server clock minus ours (s), from the signed answers. */
  offsetSeconds?: number;
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
  /** Replace the control RRset with this (null: delete it); undefined: leave it. */
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

/** `snap` with the control RRset as read, parsed strictly (an error is kept, not thrown). */
export function withControl(snap: Snapshot, txt: RData[]): Snapshot {
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
  return { ...snap, controlText, ...lastControl.parsed };
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
    const snap = ctl === undefined ? base : withControl(base, ctl);
    const offset = txt.offsetSeconds ?? addr.offsetSeconds;
    if (offset !== undefined) snap.offsetSeconds = offset;
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
   * On a prerequisite failure it re-reads once: if the witness already holds
   * what we meant to write, an earlier attempt of ours was applied and its
   * answer lost; otherwise the conflict is rethrown for the caller to decide.
   */
  async write(seen: Snapshot, { address, lease, guardControl, control }: Intended): Promise<WriteResult> {
    const t0 = this.clock.monotonicMs();
    const controlNow = control === undefined ? (seen.controlText ?? null) : control;
    const intended: Snapshot = withControl(
      { addresses: [address], addressType: this.addressType, leaseText: [formatLease(lease)], lease },
      controlNow ? controlNow.map((t) => [t]) : [],
    );
    try {
      const updates = [...this.replace(address, lease), ...(control === undefined ? [] : this.replaceControl(control))];
      const r = await this.client.update(this.names.zone, this.casPrereqs(seen, guardControl === true || control !== undefined), updates);
      if (r.offsetSeconds !== undefined) intended.offsetSeconds = r.offsetSeconds;
      return { snapshot: intended, rttMs: r.rttMs };
    } catch (err) {
      if (!(err instanceof DnsError) || err.code !== 'DNS_PREREQ_FAILED') throw err;
      const now = await this.read();
      if (sameAddresses(now.addresses, intended.addresses) && now.leaseText?.length === 1 && now.leaseText[0] === intended.leaseText![0]) {
        return { snapshot: now, rttMs: this.clock.monotonicMs() - t0, recovered: true };
      }
      throw err;
    }
  }

  /**
   * The control record alone (pause, resume): CAS on the control RRset exactly as read; the
   * record and the lease are neither required nor touched (renewals go on meanwhile).
   */
  async writeControl(seen: Snapshot, next: string[] | null): Promise<WriteResult> {
    const r = await this.client.update(this.names.zone, this.controlPrereq(seen), this.replaceControl(next));
    return { snapshot: withControl(seen, next ? next.map((t) => [t]) : []), rttMs: r.rttMs };
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
   */
  init(seen: Snapshot, sites: Sites, nowSeconds: number, force: boolean): Promise<WriteResult> {
    const empty: Snapshot = { addresses: [], addressType: this.addressType, leaseText: null, lease: null };
    const epoch = force && seen.lease ? seen.lease.epoch + 1 : 1;
    const seq = force && seen.lease ? seen.lease.seq + 1 : 0;
    return this.write(force ? seen : empty, { address: sites.primary, lease: { holder: 'primary', epoch, seq, at: Math.floor(nowSeconds) } });
  }

  /**
   * Proves the server checks the key and enforces prerequisites: a CAS on a
   * lease value that cannot exist must come back NXRRSET. Its update only
   * deletes that same non-existent record, so even a server that ignored the
   * prerequisite would change nothing.
   */
  async probe(): Promise<'enforced' | 'ignored'> {
    const bogus = [`v=1 probe=${this.random.fraction().toString(36).slice(2)}`];
    const t = { name: this.names.leaseName, type: 'TXT' as const };
    try {
      await this.client.update(this.names.zone, prereq.rrsetEquals(t, [bogus]), [change.deleteRr({ ...t, data: bogus })]);
      return 'ignored';
    } catch (err) {
      if (err instanceof DnsError && err.code === 'DNS_PREREQ_FAILED' && err.rcode === 'NXRRSET' && err.authenticated) return 'enforced';
      throw err;
    }
  }
}

function sameAddresses(a: string[], b: string[]): boolean {
  const norm = (xs: string[]): string => xs.map((x) => normalizeName(x)).sort().join(',');
  return norm(a) === norm(b);
}
