/**
 * Builds the DNS client and witness from a validated config: resolves the
 * server (configured or SOA MNAME) and the zone (configured or found by
 * asking that server), so failoverctl and the agent share one path.
 */
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { DnsClient } from '../dns/client.js';
import { resolveServer } from '../dns/discover.js';
import { GssSession, type GssSessionEvent } from '../dns/gss/context.js';
import type { DnsSigning } from '../dns/signing.js';
import type { DnsServer } from '../dns/transport.js';
import { Witness } from './witness.js';

export interface OpenedWitness {
  client: DnsClient;
  witness: Witness;
  server: DnsServer;
  zone: string;
  /** GSS-TSIG: the context every message is signed with (undefined with HMAC TSIG). */
  gss?: GssSession;
}

export interface OpenOptions {
  /** The clock of the DNS transport (TSIG time, deadlines, timers) and of the witness; default the system clock. */
  clock?: Clock;
  onDropped?: (why: string) => void;
  tcp?: boolean;
  /** GSS-TSIG: negotiations, renewals and their failures. */
  onGssEvent?: (e: GssSessionEvent) => void;
}

export async function openWitness(config: Config, signing: DnsSigning, opts: OpenOptions = {}): Promise<OpenedWitness> {
  const { dns } = config;
  const server = await resolveServer(dns.server, dns.zone ?? dns.record);
  const base = {
    server,
    timeoutMs: dns.timeout,
    retries: dns.retries,
    ...(opts.tcp !== undefined ? { tcp: opts.tcp } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.onDropped ? { onDropped: opts.onDropped } : {}),
  };
  let gss: GssSession | undefined;
  if (signing.auth === 'gss-tsig') {
    const g = signing.config;
    gss = new GssSession({
      gss: signing.gss,
      principal: g.principal,
      keytab: g.keytab,
      server,
      // As nsupdate -g: the service of the zone's primary master, named by its SOA (read unsigned:
      // it only picks the name; mutual authentication then proves the server holds its key).
      serverPrincipal: g.server_principal ?? (() => soaMnamePrincipal(new DnsClient(base), dns.zone ?? dns.record, dns.zone !== undefined)),
      // Credentials (the KDC) and the TKEY exchange: the budget of one DNS request, at least 5 s.
      timeoutMs: Math.max(5_000, dns.timeout * (dns.retries + 1)),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.onGssEvent ? { onEvent: opts.onGssEvent } : {}),
    });
  }
  const client = new DnsClient(signing.auth === 'tsig' ? { ...base, key: signing.key } : { ...base, session: gss! });
  let zone = dns.zone;
  try {
    zone ??= await client.findZone(dns.record);
  } catch (err) {
    gss?.close(); // the caller never gets the session it would close (check-config, failoverctl)
    throw err;
  }
  const witness = new Witness(
    client,
    { zone, record: dns.record, leaseName: dns.lease_name, controlName: dns.control_name, ttlSeconds: Math.round(dns.record_ttl / 1000) },
    Witness.addressTypeFor(config.sites),
    opts.clock,
  );
  return { client, witness, server, zone, ...(gss ? { gss } : {}) };
}

/** `DNS/<SOA MNAME>` of the zone (or of the zone holding `name`), asked unsigned of the server. */
async function soaMnamePrincipal(unsigned: DnsClient, name: string, isZone: boolean): Promise<string> {
  const zone = isZone ? name : await unsigned.findZone(name);
  const soa = await unsigned.soa(zone);
  return `DNS/${soa.mname.replace(/\.$/, '').toLowerCase()}`;
}
