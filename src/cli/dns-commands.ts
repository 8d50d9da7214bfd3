/** failoverctl dns / init: straight to the DNS server with the key file. */
import { loadConfig } from '../config/load.js';
import { loadSigning, type DnsSigning } from '../dns/signing.js';
import type { Config } from '../config/schema.js';
import { AgentError, ExitCode } from '../errors.js';
import { openWitness, type OpenedWitness } from '../lease/open.js';
import { siteOf, type Snapshot } from '../lease/witness.js';
import { systemClock } from '../clock.js';
import { callAgent, socketPath } from '../control/client.js';
import type { AgentStatus, PropagationStatus, ServerSync } from '../control/protocol.js';
import { nullLogger } from '../log/logger.js';
import { openPropagation } from '../propagation/open.js';
import { sameValue } from '../propagation/policy.js';
import { renderServers } from './agent-commands.js';
import type { Output } from './output.js';
import { selectConfigFile, type ConfigSelector } from './select-config.js';
import { writeAccessRefusal } from './write-access.js';

async function open(sel: ConfigSelector, env: NodeJS.ProcessEnv, tcp = false): Promise<{ config: Config; w: OpenedWitness; signing: DnsSigning }> {
  const config = loadConfig(selectConfigFile(sel, env));
  const signing = loadSigning(config);
  return { config, w: await openWitness(config, signing, { tcp }), signing };
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

/** The running agent's propagation check, when it answers (it knows the lags: it saw the write). */
async function agentPropagation(config: Config, socket: string | undefined): Promise<PropagationStatus | null> {
  try {
    const r = await callAgent(socket ?? socketPath(config.instance), { cmd: 'status' }, { timeoutMs: 3_000 });
    return r.ok ? ((r.result as AgentStatus).propagation ?? null) : null;
  } catch {
    return null;
  }
}

/**
 * Every authoritative server asked once, now, for the value just read from the witness. The lag
 * (time from the write) only the agent can know: taken from it when it verifies the same value.
 */
async function serversNow(config: Config, w: OpenedWitness, snap: Snapshot, socket: string | undefined): Promise<{ servers: ServerSync[]; agent: PropagationStatus | null }> {
  const v = openPropagation(config, w, { clock: systemClock, logger: nullLogger() });
  v.seen(snap.addresses);
  const [, agent] = await Promise.all([v.passNow(), agentPropagation(config, socket)]);
  const same = agent !== null && sameValue(agent.value, snap.addresses) ? agent : null;
  const servers = v.status()!.servers.map((s) => {
    const a = same?.servers.find((x) => x.server === s.server);
    return { ...s, lag_ms: a?.lag_ms ?? null, since: a?.since ?? null };
  });
  return { servers, agent: same };
}

export async function dnsCommand(args: ConfigSelector & { tcp?: boolean; socket?: string }, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const { config, w } = await open(args, env, args.tcp ?? false);
  const [snap, soa] = await Promise.all([w.witness.read(), w.client.soa(w.zone)]);
  const offset = snap.offsetSeconds ?? w.client.lastOffsetSeconds;
  const { servers, agent } = await serversNow(config, w, snap, args.socket);
  const human = [
    `server   ${w.server.host}:${w.server.port} zone ${w.zone} serial ${soa.serial}`,
    ...describe(snap, config),
    `clock    server ${offset === undefined ? 'unknown' : `${offset >= 0 ? '+' : ''}${offset} s`} relative to this host (TSIG-verified answers)`,
    `servers  ${servers.filter((s) => s.in_sync).length}/${servers.length} authoritative servers serve it now (unsigned, RD=0, AA required)` +
      (agent ? `; the agent: ${agent.summary}` : ''),
    ...renderServers(servers),
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
    servers,
    propagation: agent,
  });
  return ExitCode.OK;
}

export async function initCommand(args: ConfigSelector & { force?: boolean }, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const { config, w, signing } = await open(args, env);
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
  // Names that exist and that we may not change (AD: created by another account, which owns
  // them): say so, whether or not --force would overwrite them (77, as a refused key).
  const refusal = exists || seen.controlText ? await writeAccessRefusal(w.witness, seen, config, signing) : null;
  if (refusal) throw refusal;
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
  const v = openPropagation(config, w, { clock: systemClock, logger: nullLogger() });
  const sentAt = systemClock.monotonicMs();
  // GSS-TSIG: the control record too, so that where the creator owns a record (AD) one account owns all three.
  const r = await w.witness.init(seen, config.sites, Date.now() / 1000, Boolean(args.force), { createControl: signing.auth === 'gss-tsig' });
  // Then until every authoritative server that answers serves it, or is late
  // (dns.propagation_timeout); one that does not answer is reported, not waited for.
  v.start();
  v.written(r.snapshot.addresses, 'init', sentAt);
  await v.settled({ answeringOnly: true });
  await v.stop();
  const p = v.status()!;
  const checked =
    probe === 'enforced'
      ? 'the server checked our key and enforces prerequisites'
      : 'the server checked our key and refused a false prerequisite, with an unsigned NXRRSET as Active Directory answers every error';
  out.result([`initialised (${checked}):`, ...describe(r.snapshot, config), `servers  ${p.summary}`, ...renderServers(p.servers)].join('\n'), {
    ok: true,
    addresses: r.snapshot.addresses,
    lease: r.snapshot.lease,
    forced: Boolean(args.force) && exists,
    prerequisites: probe,
    servers: p.servers,
    propagation: p,
  });
  return ExitCode.OK;
}
