/**
 * The port to the zone's authoritative servers for the propagation check, and its DNS
 * implementation: which servers (dns.verify_servers, else the zone's NS set with each name's
 * addresses) and what one of them serves (SOA serial and the record, RD=0, AA required).
 * Plain unsigned queries: secondaries do not know our key, and nothing read here decides anything.
 */
import { promises as dnsPromises } from 'node:dns';
import net from 'node:net';

import type { Clock } from '../clock.js';
import { inZone, urlHost, type HostPort } from '../config/schema.js';
import { DnsClient } from '../dns/client.js';
import { normalizeName, type RRType } from '../dns/wire.js';
import type { ServerId } from './policy.js';

export interface VerifyServer extends ServerId {
  host: string;
  port: number;
}

export interface ServerList {
  servers: VerifyServer[];
  /** Names that gave no address: reported as servers that never serve the value. */
  unresolved: (ServerId & { error: string })[];
}

export interface AuthorityPort {
  /** The servers to ask now. */
  servers(): Promise<ServerList>;
  /** One server's SOA serial and the record's values; rejects (DnsError) on no authoritative answer. */
  ask(server: VerifyServer): Promise<{ serial: number; values: string[] }>;
}

/** Addresses of a host name (IPv4 and IPv6, each one a server of its own). */
export type Lookup = (name: string) => Promise<string[]>;

const systemLookup: Lookup = async (name) => (await dnsPromises.lookup(name, { all: true, verbatim: true })).map((a) => a.address);

export interface DnsAuthorityOptions {
  /** The witness's client: the NS set and in-zone addresses are read from it (signed, authoritative). */
  witness: DnsClient;
  zone: string;
  record: string;
  type: RRType;
  /** dns.verify_servers; empty: the NS set. */
  configured: readonly HostPort[];
  timeoutMs: number;
  retries: number;
  clock?: Clock;
  /** Names outside the zone (default: the system resolver). */
  lookup?: Lookup;
}

const label = (host: string, port: number): string => `${urlHost(host)}:${port}`;

export class DnsAuthority implements AuthorityPort {
  private readonly clients = new Map<string, DnsClient>();
  private readonly lookup: Lookup;

  constructor(private readonly o: DnsAuthorityOptions) {
    this.lookup = o.lookup ?? systemLookup;
  }

  async servers(): Promise<ServerList> {
    const wanted: { name: string | null; host: string; port: number }[] = this.o.configured.length
      ? this.o.configured.map((hp) => ({ name: net.isIP(hp.host) ? null : hp.host, host: hp.host, port: hp.port }))
      : (await this.o.witness.read(this.o.zone, 'NS')).values.map((v) => ({ name: normalizeName(String(v)), host: normalizeName(String(v)), port: 53 }));
    const out: ServerList = { servers: [], unresolved: [] };
    for (const w of wanted) {
      if (net.isIP(w.host)) {
        out.servers.push({ server: label(w.host, w.port), name: w.name, host: w.host, port: w.port });
        continue;
      }
      try {
        const addrs = await this.addresses(w.host);
        if (!addrs.length) throw new Error('no A or AAAA record');
        for (const a of addrs) out.servers.push({ server: label(a, w.port), name: w.host, host: a, port: w.port });
      } catch (err) {
        out.unresolved.push({ server: label(w.host, w.port), name: w.host, error: `cannot resolve ${w.host}: ${(err as Error).message}` });
      }
    }
    return out;
  }

  /** In-zone names from the witness (it is authoritative for them), others through the resolver. */
  private async addresses(name: string): Promise<string[]> {
    if (!inZone(name, this.o.zone)) return this.lookup(name);
    const [a, aaaa] = await Promise.all([this.o.witness.read(name, 'A'), this.o.witness.read(name, 'AAAA')]);
    return [...a.values, ...aaaa.values].map(String);
  }

  async ask(s: VerifyServer): Promise<{ serial: number; values: string[] }> {
    let c = this.clients.get(s.server);
    if (!c) {
      c = new DnsClient({ server: { host: s.host, port: s.port }, timeoutMs: this.o.timeoutMs, retries: this.o.retries, ...(this.o.clock ? { clock: this.o.clock } : {}) });
      this.clients.set(s.server, c);
    }
    const [soa, rr] = await Promise.all([c.soa(this.o.zone), c.read(this.o.record, this.o.type)]);
    return { serial: soa.serial, values: rr.values.map(String) };
  }
}
