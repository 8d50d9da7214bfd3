/**
 * Builds the DNS client and witness from a validated config: resolves the
 * server (configured or SOA MNAME) and the zone (configured or found by
 * asking that server), so failoverctl and the agent share one path.
 */
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { TsigKey } from '../config/keyfile.js';
import { DnsClient } from '../dns/client.js';
import { resolveServer } from '../dns/discover.js';
import type { DnsServer } from '../dns/transport.js';
import { Witness } from './witness.js';

export interface OpenedWitness {
  client: DnsClient;
  witness: Witness;
  server: DnsServer;
  zone: string;
}

export interface OpenOptions {
  /** The clock of the DNS transport (TSIG time, deadlines, timers) and of the witness; default the system clock. */
  clock?: Clock;
  onDropped?: (why: string) => void;
  tcp?: boolean;
}

export async function openWitness(config: Config, key: TsigKey, opts: OpenOptions = {}): Promise<OpenedWitness> {
  const { dns } = config;
  const server = await resolveServer(dns.server, dns.zone ?? dns.record);
  const client = new DnsClient({
    server,
    key,
    timeoutMs: dns.timeout,
    retries: dns.retries,
    ...(opts.tcp !== undefined ? { tcp: opts.tcp } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.onDropped ? { onDropped: opts.onDropped } : {}),
  });
  const zone = dns.zone ?? (await client.findZone(dns.record));
  const witness = new Witness(
    client,
    { zone, record: dns.record, leaseName: dns.lease_name, controlName: dns.control_name, ttlSeconds: Math.round(dns.record_ttl / 1000) },
    Witness.addressTypeFor(config.sites),
    opts.clock,
  );
  return { client, witness, server, zone };
}
