/** failoverctl dns / init: straight to the DNS server with the key file. */
import { loadConfig } from '../config/load.js';
import { loadKeyFile } from '../config/keyfile.js';
import type { Config } from '../config/schema.js';
import { AgentError, ExitCode } from '../errors.js';
import { openWitness, type OpenedWitness } from '../lease/open.js';
import { siteOf, type Snapshot } from '../lease/witness.js';
import type { Output } from './output.js';
import { selectConfigFile, type ConfigSelector } from './select-config.js';

async function open(sel: ConfigSelector, env: NodeJS.ProcessEnv, tcp = false): Promise<{ config: Config; w: OpenedWitness }> {
  const config = loadConfig(selectConfigFile(sel, env));
  const key = loadKeyFile(config.dns.key_file);
  return { config, w: await openWitness(config, key, { tcp }) };
}

function describe(snap: Snapshot, config: Config): string[] {
  const active = siteOf(snap.addresses[0], config.sites);
  const l = snap.lease;
  return [
    `record   ${config.dns.record} ${snap.addressType} ${snap.addresses.join(', ') || '(none)'}` +
      (snap.addresses.length === 1 ? ` -> ${active ?? 'neither site'}` : ''),
    `lease    ${config.dns.lease_name} ` +
      (l ? `holder=${l.holder} epoch=${l.epoch} seq=${l.seq} at=${l.at}` : snap.leaseError ? `INVALID: ${snap.leaseError}` : '(none)'),
  ];
}

export async function dnsCommand(args: ConfigSelector & { tcp?: boolean }, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const { config, w } = await open(args, env, args.tcp ?? false);
  const [snap, soa] = await Promise.all([w.witness.read(), w.client.soa(w.zone)]);
  const offset = snap.offsetSeconds ?? w.client.lastOffsetSeconds;
  const human = [
    `server   ${w.server.host}:${w.server.port} zone ${w.zone} serial ${soa.serial}`,
    ...describe(snap, config),
    `clock    server ${offset === undefined ? 'unknown' : `${offset >= 0 ? '+' : ''}${offset} s`} relative to this host (TSIG-verified answers)`,
  ].join('\n');
  out.result(human, {
    server: `${w.server.host}:${w.server.port}`,
    zone: w.zone,
    soa_serial: soa.serial,
    record: config.dns.record,
    type: snap.addressType,
    addresses: snap.addresses,
    active: snap.addresses.length === 1 ? (siteOf(snap.addresses[0], config.sites) ?? null) : null,
    lease_name: config.dns.lease_name,
    lease: snap.lease,
    lease_text: snap.leaseText,
    lease_error: snap.leaseError ?? null,
    offset_seconds: offset ?? null,
    authenticated: true,
  });
  return ExitCode.OK;
}

export async function initCommand(args: ConfigSelector & { force?: boolean }, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const { config, w } = await open(args, env);
  // The witness is only a witness if it checks our key and our prerequisites.
  const probe = await w.witness.probe();
  if (probe === 'ignored') {
    throw new AgentError(
      'DNS_PREREQ_IGNORED',
      `${w.server.host}:${w.server.port} applied an update whose prerequisite was false: it does not enforce RFC 2136 prerequisites, so it cannot be the witness`,
      ExitCode.REFUSED,
    );
  }
  const seen = await w.witness.read();
  const exists = seen.addresses.length > 0 || seen.leaseText !== null;
  if (exists && !args.force) {
    out.result(['refused: the record or the lease exists already (use --force to overwrite):', ...describe(seen, config)].join('\n'), {
      ok: false,
      refused: 'exists',
      addresses: seen.addresses,
      lease: seen.lease,
      lease_text: seen.leaseText,
    });
    return ExitCode.REFUSED;
  }
  const r = await w.witness.init(seen, config.sites, Date.now() / 1000, Boolean(args.force));
  out.result(['initialised (the server checked our key and enforces prerequisites):', ...describe(r.snapshot, config)].join('\n'), {
    ok: true,
    addresses: r.snapshot.addresses,
    lease: r.snapshot.lease,
    forced: Boolean(args.force) && exists,
  });
  return ExitCode.OK;
}
