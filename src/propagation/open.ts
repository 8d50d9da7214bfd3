/** Builds the propagation check from a validated config and the opened witness (the agent and failoverctl share it). */
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { OpenedWitness } from '../lease/open.js';
import { Witness } from '../lease/witness.js';
import type { Logger } from '../log/logger.js';
import { DnsAuthority, type AuthorityPort } from './authority.js';
import { PropagationVerifier } from './verifier.js';

export function dnsAuthorityFor(config: Config, w: OpenedWitness, clock?: Clock): AuthorityPort {
  return new DnsAuthority({
    witness: w.client,
    zone: w.zone,
    record: config.dns.record,
    type: Witness.addressTypeFor(config.sites),
    configured: config.dns.verify_servers,
    timeoutMs: config.dns.timeout,
    retries: config.dns.retries,
    ...(clock ? { clock } : {}),
  });
}

export function openPropagation(
  config: Config,
  w: OpenedWitness,
  o: { clock: Clock; logger: Logger; notify?: (event: string, text: string) => void; port?: AuthorityPort },
): PropagationVerifier {
  return new PropagationVerifier({
    port: o.port ?? dnsAuthorityFor(config, w, o.clock),
    clock: o.clock,
    logger: o.logger,
    record: config.dns.record,
    sites: config.sites,
    recordTtlMs: config.dns.record_ttl,
    verifyIntervalMs: config.dns.verify_interval,
    propagationTimeoutMs: config.dns.propagation_timeout,
    ...(o.notify ? { notify: o.notify } : {}),
  });
}
