/**
 * Which server to talk to: `dns.server` when configured, else the zone's SOA
 * MNAME found through the system resolver (as nsupdate does). Hostnames are
 * resolved once here, because replies are matched by source address.
 */
import { promises as dnsPromises } from 'node:dns';

type Resolver = dnsPromises.Resolver;
import net from 'node:net';
import { DnsError } from './errors.js';
import type { DnsServer } from './transport.js';
import { normalizeName } from './wire.js';

async function toAddress(host: string): Promise<string> {
  if (net.isIP(host)) return host;
  try {
    return (await dnsPromises.lookup(host)).address;
  } catch (err) {
    throw new DnsError('DNS_NO_SERVER', `cannot resolve DNS server name ${host}: ${(err as Error).message}`, {}, { cause: err });
  }
}

/** Walks up from `name` until a SOA is found through the system resolver. */
async function findSoaMname(name: string, resolver: Resolver): Promise<{ zone: string; mname: string }> {
  const labels = normalizeName(name).split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const candidate = labels.slice(i).join('.');
    try {
      const soa = await resolver.resolveSoa(candidate);
      return { zone: candidate, mname: normalizeName(soa.nsname) };
    } catch {
      // NODATA/NXDOMAIN: try the parent.
    }
  }
  throw new DnsError('DNS_NO_SERVER', `no SOA found for ${name} or its parents through the system resolver; set dns.server`);
}

export async function resolveServer(
  configured: DnsServer | undefined,
  zoneOrRecord: string,
  resolver: Resolver = new dnsPromises.Resolver({ timeout: 3000, tries: 2 }),
): Promise<DnsServer> {
  if (configured) return { host: await toAddress(configured.host), port: configured.port };
  const { mname } = await findSoaMname(zoneOrRecord, resolver);
  return { host: await toAddress(mname), port: 53 };
}
