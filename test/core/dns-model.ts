/**
 * An in-memory authoritative DNS server for property tests of the decision
 * core: the witness of SPEC §2 without sockets, TSIG or time.
 *
 * - It stores RRsets by (owner name, type) and processes RFC 2136 UPDATE
 *   messages built from src/dns/update.ts records: prerequisites per §3.2
 *   (value-independent "RRset exists", value-dependent "RRset exists" = the
 *   RRset must have exactly the prerequisite's members, compared as a set of
 *   RDATA; "RRset does not exist"; name in use / not in use), then updates per
 *   §3.4 (add; delete RRset; delete all RRsets of a name; delete one RR), all
 *   or nothing. Answers: NOERROR, NXRRSET, YXRRSET, NXDOMAIN, YXDOMAIN, NOTZONE.
 * - `cas(seen, address, lease)` sends exactly the update `Witness` sends
 *   (src/lease/witness.ts): prerequisites on the exact record RRset and lease
 *   TXT RRset of `seen` (or "RRset does not exist" where `seen` had none), then
 *   delete-RRset + add for both. `read()` returns a Snapshot built exactly as
 *   `Witness.read()` builds it (values joined per TXT record, the lease parsed
 *   with parseLease only when there is exactly one TXT record, leaseError
 *   otherwise). `client(who)` is a DnsClient look-alike (read/update) so the
 *   real Witness can run against the model (see property.test.ts).
 * - Faults: a client (by name) or everyone ('*') can be cut off: its reads and
 *   updates fail like DnsClient after its retries (DnsError DNS_TIMEOUT), and
 *   an update's answer can be lost: the server applies it (if its prerequisites
 *   hold) and the writer gets the same timeout.
 */
import { DnsError } from '../../src/dns/errors.js';
import { change, prereq } from '../../src/dns/update.js';
import { normalizeName as normalize, type RData, type ResourceRecord, type RRType } from '../../src/dns/wire.js';
import { formatLease, type Lease } from '../../src/lease/lease.js';
import { snapshotOf, withControl, type Snapshot } from '../../src/lease/witness.js';

export type CasResult = 'ok' | 'conflict';
export type UpdateRcode = 'NOERROR' | 'NXRRSET' | 'YXRRSET' | 'NXDOMAIN' | 'YXDOMAIN' | 'NOTZONE';

export interface CasOptions {
  /** Who writes: checked against the cut-off set; undefined = a packet already in the network. */
  client?: string;
  /** Apply the update (if its prerequisites hold) but answer the writer with a timeout. */
  loseAnswer?: boolean;
  /** Label kept in the history (e.g. "D takeover"). */
  by?: string;
  /** The caller's clock when the server applies it, kept in the history. */
  at?: number;
}

/** One change the server applied, in order (load() and successful updates). */
export interface Applied {
  addresses: string[];
  leaseText: string[] | null;
  lease: Lease | null;
  by: string;
  at: number | undefined;
}

export interface ModelNames {
  zone: string;
  record: string;
  leaseName: string;
  controlName?: string;
  ttlSeconds: number;
}

export const DEFAULT_NAMES: ModelNames = {
  zone: 'example.com',
  record: 'syslog.example.com',
  leaseName: '_lease.syslog.example.com',
  ttlSeconds: 30,
};

/** The two sites' addresses, a wall clock (s) and the primary's first lease the witness tests start from. */
export const SITES = { primary: '10.10.10.10', dr: '10.20.20.20' };
export const WALL = 1_800_000_000;
export const LEASE1: Lease = { holder: 'primary', epoch: 1, seq: 3, at: WALL };

/** A model whose record names the primary under LEASE1. */
export function primaryModel(): DnsModel {
  const m = new DnsModel('A', DEFAULT_NAMES);
  m.load([SITES.primary], LEASE1);
  return m;
}

/** Canonical text of one RDATA, for set comparison (TXT keeps its string boundaries). */
function rdataKey(type: string, data: RData): string {
  if (type === 'TXT') {
    // One string (every lease and control entry): the string itself, marked so no JSON array can equal it.
    const strings = Array.isArray(data) ? data : [String(data)];
    if (strings.length === 1 && typeof strings[0] === 'string') return `1${strings[0]}`;
    return JSON.stringify(strings);
  }
  if (type === 'A' || type === 'AAAA') return String(data).toLowerCase();
  return JSON.stringify(data);
}

/** normalizeName, remembered: the simulator's server meets the same few names millions of times. */
const NORMAL = new Map<string, string>();
function normalizeName(name: string): string {
  let n = NORMAL.get(name);
  if (n === undefined) {
    if (NORMAL.size >= 1024) NORMAL.clear(); // property tests draw names: stay small
    NORMAL.set(name, (n = normalize(name)));
  }
  return n;
}

const typeName = (t: RRType | number): string => String(t);
const className = (c: ResourceRecord['class']): string => String(c);

export class DnsModel {
  /** owner name -> type -> (rdata key -> rdata) */
  private readonly zone = new Map<string, Map<string, Map<string, RData>>>();
  private readonly cut = new Set<string>();
  /** The last snapshot built, until the zone changes. */
  private cached: Snapshot | null = null;
  readonly history: Applied[] = [];
  readonly counts = { reads: 0, updates: 0, refused: 0, lostAnswers: 0, timeouts: 0 };

  constructor(
    readonly addressType: RRType = 'A',
    readonly names: ModelNames = DEFAULT_NAMES,
  ) {}

  // ---- faults -----------------------------------------------------------------

  /** Cut a client off the server (up = false) or reconnect it; '*' is every client. */
  setReachable(client: string, up: boolean): void {
    if (up) this.cut.delete(client);
    else this.cut.add(client);
  }

  reachable(client: string | undefined): boolean {
    return client === undefined || (!this.cut.has('*') && !this.cut.has(client));
  }

  private assertReachable(client: string | undefined, what: string): void {
    if (!this.reachable(client)) {
      this.counts.timeouts++;
      throw new DnsError('DNS_TIMEOUT', `${what}: no answer from the server (${client} is cut off)`);
    }
  }

  // ---- the witness view (what the agent's Witness does) ---------------------------

  /** Server-side write with no prerequisites (what `failoverctl init` leaves behind). */
  load(addresses: string[], lease: Lease | null, by = 'load', at?: number): void {
    const { record, leaseName, ttlSeconds } = this.names;
    const updates = [change.deleteRrset({ name: record, type: this.addressType }), ...addresses.map((a) => change.add({ name: record, type: this.addressType, data: a }, ttlSeconds))];
    updates.push(change.deleteRrset({ name: leaseName, type: 'TXT' }));
    if (lease) updates.push(change.add({ name: leaseName, type: 'TXT', data: [formatLease(lease)] }, ttlSeconds));
    const rc = this.process(this.names.zone, [], updates);
    if (rc !== 'NOERROR') throw new Error(`load: ${rc}`);
    this.record(by, at);
  }

  /** A read as `Witness.read()` returns it; throws DNS_TIMEOUT when `client` is cut off. */
  read(client?: string): Snapshot {
    this.assertReachable(client, 'read');
    this.counts.reads++;
    return this.snapshot();
  }

  /**
   * read() without the exception, in the shape of a tick's `dns` observation
   * (hot path of the property test: building a DnsError captures a stack).
   */
  tryRead(client?: string): { ok: true; snapshot: Snapshot } | { ok: false; code: 'DNS_TIMEOUT'; message: string } {
    if (!this.reachable(client)) {
      this.counts.timeouts++;
      return { ok: false, code: 'DNS_TIMEOUT', message: `read: no answer from the server (${client} is cut off)` };
    }
    this.counts.reads++;
    return { ok: true, snapshot: this.snapshot() };
  }

  /** What the server holds, without any fault: for invariants. */
  peek(): Snapshot {
    return this.snapshot();
  }

  /** peek() without the copy, for the simulator's checks at every event: shared, never to be changed. */
  view(): Readonly<Snapshot> {
    return (this.cached ??= this.build());
  }

  /**
   * The CAS `Witness` sends for a renewal, takeover, failback or switchover:
   * ONE update whose prerequisites are exactly `seen`, replacing both RRsets.
   */
  cas(seen: Snapshot, address: string, lease: Lease, opts: CasOptions = {}): CasResult {
    this.assertReachable(opts.client, 'update');
    const { record, leaseName, ttlSeconds } = this.names;
    const a = { name: record, type: this.addressType };
    const t = { name: leaseName, type: 'TXT' as const };
    // Witness.casPrereqs and Witness.replace, record for record.
    const prereqs = [
      ...(seen.addresses.length ? prereq.rrsetEquals(a, seen.addresses) : [prereq.rrsetAbsent(a)]),
      ...(seen.leaseText ? prereq.rrsetEquals(t, seen.leaseText.map((s) => [s])) : [prereq.rrsetAbsent(t)]),
    ];
    const updates = [
      change.deleteRrset({ name: record, type: this.addressType }),
      change.add({ name: record, type: this.addressType, data: address }, ttlSeconds),
      change.deleteRrset(t),
      change.add({ name: leaseName, type: 'TXT', data: [formatLease(lease)] }, ttlSeconds),
    ];
    const rc = this.process(this.names.zone, prereqs, updates);
    if (rc === 'NOERROR') this.record(opts.by ?? opts.client ?? 'network', opts.at);
    if (opts.loseAnswer) {
      this.counts.lostAnswers++;
      throw new DnsError('DNS_TIMEOUT', `update: no answer (lost; the server answered ${rc})`);
    }
    if (rc === 'NOERROR') return 'ok';
    if (rc === 'NXRRSET' || rc === 'YXRRSET') return 'conflict';
    throw new Error(`cas: unexpected ${rc}`);
  }

  /** True when the server holds exactly `address` + `lease` (what a writer meant to write). */
  holds(address: string, lease: Lease): boolean {
    const s = this.snapshot();
    return s.addresses.length === 1 && s.addresses[0] === address && s.leaseText?.length === 1 && s.leaseText[0] === formatLease(lease);
  }

  /**
   * A DnsClient look-alike over this model for `new Witness(client, names)`:
   * read(name, type) and update(zone, prerequisites, updates), with the faults above.
   * `loseNextAnswer()` makes the next update be applied but time out.
   */
  client(who: string): {
    read(name: string, type: RRType): Promise<{ name: string; type: RRType; values: RData[]; rcode: 'NOERROR' | 'NXDOMAIN' }>;
    update(zone: string, prerequisites: ResourceRecord[], updates: ResourceRecord[]): Promise<{ authenticated: boolean; rttMs: number; attempts: number; transport: 'udp' }>;
    loseNextAnswer(): void;
  } {
    let lose = false;
    return {
      read: async (name, type) => {
        this.assertReachable(who, 'read');
        this.counts.reads++;
        const set = this.zone.get(normalizeName(name))?.get(type);
        return { name, type, values: set ? [...set.values()] : [], rcode: this.zone.has(normalizeName(name)) ? 'NOERROR' : 'NXDOMAIN' };
      },
      update: async (zone, prerequisites, updates) => {
        this.assertReachable(who, 'update');
        const rc = this.process(zone, prerequisites, updates);
        if (rc === 'NOERROR') this.record(who, undefined);
        if (lose) {
          lose = false;
          this.counts.lostAnswers++;
          throw new DnsError('DNS_TIMEOUT', `update: no answer (lost; the server answered ${rc})`);
        }
        if (rc === 'NXRRSET' || rc === 'YXRRSET' || rc === 'NXDOMAIN' || rc === 'YXDOMAIN') {
          throw new DnsError('DNS_PREREQ_FAILED', `update not applied: prerequisite failed (${rc})`, { rcode: rc, authenticated: true });
        }
        if (rc !== 'NOERROR') throw new DnsError('DNS_NOTZONE', `update: ${rc}`, { rcode: rc, authenticated: true });
        return { authenticated: true, rttMs: 0, attempts: 1, transport: 'udp' };
      },
      loseNextAnswer: () => {
        lose = true;
      },
    };
  }

  // ---- RFC 2136 -------------------------------------------------------------------

  private inZone(zone: string, name: string): boolean {
    const z = normalizeName(zone);
    const n = normalizeName(name);
    return n === z || n.endsWith(`.${z}`);
  }

  /** RFC 2136 §3.2 (prerequisites) then §3.4 (updates), atomically. */
  process(zone: string, prereqs: ResourceRecord[], updates: ResourceRecord[]): UpdateRcode {
    this.counts.updates++;
    for (const rr of prereqs) if (!this.inZone(zone, rr.name)) return 'NOTZONE';
    for (const rr of updates) if (!this.inZone(zone, rr.name)) return 'NOTZONE';
    const rc = this.checkPrerequisites(prereqs);
    if (rc !== 'NOERROR') {
      this.counts.refused++;
      return rc;
    }
    for (const rr of updates) this.applyUpdate(rr);
    return 'NOERROR';
  }

  private checkPrerequisites(prereqs: ResourceRecord[]): UpdateRcode {
    const valueDependent = new Map<string, { name: string; type: string; keys: Set<string> }>();
    for (const rr of prereqs) {
      const name = normalizeName(rr.name);
      const type = typeName(rr.type);
      const cls = className(rr.class);
      const node = this.zone.get(name);
      if (cls === 'ANY') {
        if (type === 'ANY') {
          if (!node || node.size === 0) return 'NXDOMAIN'; // name is in use
        } else if (!node?.get(type)?.size) return 'NXRRSET'; // RRset exists (value independent)
      } else if (cls === 'NONE') {
        if (type === 'ANY') {
          if (node && node.size > 0) return 'YXDOMAIN'; // name is not in use
        } else if (node?.get(type)?.size) return 'YXRRSET'; // RRset does not exist
      } else {
        // RRset exists (value dependent): collect, compare whole RRsets below.
        const k = `${name}\u0000${type}`;
        const entry = valueDependent.get(k) ?? { name, type, keys: new Set<string>() };
        entry.keys.add(rdataKey(type, rr.data));
        valueDependent.set(k, entry);
      }
    }
    for (const { name, type, keys } of valueDependent.values()) {
      const set = this.zone.get(name)?.get(type);
      if (!set || set.size !== keys.size || [...keys].some((k) => !set.has(k))) return 'NXRRSET';
    }
    return 'NOERROR';
  }

  private applyUpdate(rr: ResourceRecord): void {
    this.cached = null;
    const name = normalizeName(rr.name);
    const type = typeName(rr.type);
    const cls = className(rr.class);
    let node = this.zone.get(name);
    if (cls === 'ANY') {
      if (type === 'ANY') this.zone.delete(name);
      else node?.delete(type);
    } else if (cls === 'NONE') {
      node?.get(type)?.delete(rdataKey(type, rr.data));
      if (node?.get(type)?.size === 0) node.delete(type);
    } else {
      if (!node) this.zone.set(name, (node = new Map()));
      let set = node.get(type);
      if (!set) node.set(type, (set = new Map()));
      set.set(rdataKey(type, rr.data), rr.data);
    }
    if (node && node.size === 0) this.zone.delete(name);
  }

  // ---- snapshots ----------------------------------------------------------------

  /** The RRset's values as a read answers them (the simulator's server serves reads with this). */
  values(name: string, type: string): RData[] {
    const set = this.zone.get(normalizeName(name))?.get(type);
    return set ? [...set.values()] : [];
  }

  private record(by: string, at: number | undefined): void {
    const s = this.snapshot();
    this.history.push({ addresses: s.addresses, leaseText: s.leaseText, lease: s.lease, by, at });
  }

  /** A fresh copy of the current snapshot (callers may keep it; the zone moves on). */
  private snapshot(): Snapshot {
    const c = (this.cached ??= this.build());
    return { ...c, addresses: [...c.addresses], leaseText: c.leaseText && [...c.leaseText], lease: c.lease && { ...c.lease }, controlText: c.controlText && [...c.controlText] };
  }

  /** The same construction as Witness.read() (without offsetSeconds: no signed answers here). */
  private build(): Snapshot {
    return withControl(
      snapshotOf(this.values(this.names.record, this.addressType), this.values(this.names.leaseName, 'TXT'), this.addressType, this.names.leaseName),
      this.values(this.names.controlName ?? `_control.${this.names.record}`, 'TXT'),
    );
  }
}
