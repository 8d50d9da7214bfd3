/** failoverctl check-config: the agent's own validation, run on demand, plus the margin warnings. */
import fs from 'node:fs';
import path from 'node:path';

import { loadConfig } from '../config/load.js';
import { marginWarnings, type MarginWarning } from '../config/margins.js';
import type { Config } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import { AgentError, ExitCode } from '../errors.js';
import type { GssSession, GssSessionEvent } from '../dns/gss/context.js';
import { GssError } from '../dns/gss/addon.js';
import { openWitness } from '../lease/open.js';
import type { Snapshot } from '../lease/witness.js';
import { describeSigning, loadSigning, type DnsSigning } from '../dns/signing.js';
import type { Output } from './output.js';
import { selectConfigFile, type ConfigSelector } from './select-config.js';
import { signerName, writeAccessRefusal } from './write-access.js';

/** Reads of the witness timed to measure the round trip (the median is taken). */
const RTT_SAMPLES = 3;

export async function checkConfigCommand(args: ConfigSelector, out: Output, env: NodeJS.ProcessEnv, polkitDirs: readonly string[] = POLKIT_RULE_DIRS): Promise<number> {
  const file = selectConfigFile(args, env);
  const config = loadConfig(file); // ConfigError: exit 78, every problem listed
  // KeyFileError: exit 77 (mode) or 78 (content); GSS_ADDON_UNAVAILABLE: 78 (never unsigned)
  const signing = loadSigning(config);
  // GSS-TSIG: a Kerberos failure (credentials, the service principal, the KDC, a TKEY refused)
  // is thrown from here: exit 77, or 69 when no KDC answers.
  const { rtt, gss, access } = await measureRtt(config, signing);
  // A record this site may not change (AD: owned by the other site's account) fails the check: 77.
  if (access && typeof access !== 'string' && 'refusal' in access) throw access.refusal;
  const warnings = [...marginWarnings(config, typeof rtt === 'number' ? rtt : undefined), ...polkitWarnings(config, polkitDirs), ...handoverWarnings(config)];
  const lines = [
    `${file}: OK (instance ${config.instance}, role ${config.role}, ${signing.auth === 'tsig' ? `key ${signing.key.name} ${signing.key.algorithm}` : `gss-tsig as ${signing.config.principal}`})`,
    `signing: ${describeSigning(signing)}`,
    ...(gss ? [`gss: context with ${gss.target} negotiated (credentials from the keytab, TKEY) in ${gss.tookMs.toFixed(0)} ms, valid for ${formatDuration(gss.lifetimeMs)}`] : []),
    typeof rtt === 'number' ? `DNS round trip: ${rtt.toFixed(1)} ms (median of ${RTT_SAMPLES} signed reads)` : `DNS round trip: not measured (${rtt.error})`,
    ...(access === null ? [] : [`write access: ${typeof access === 'string' ? access : access.text}`]),
    handoverLine(config),
    ...warnings.map((w) => `warning: ${w.key}: ${w.message}`),
  ];
  out.result(lines.join('\n'), {
    ok: true,
    file,
    instance: config.instance,
    role: config.role,
    auth: signing.auth,
    ...(signing.auth === 'tsig'
      ? { key: { name: signing.key.name, algorithm: signing.key.algorithm, file: signing.file } }
      : { gss: { principal: signing.config.principal, keytab: signing.config.keytab, server_principal: signing.config.server_principal ?? null } }),
    dnsRttMs: typeof rtt === 'number' ? rtt : null,
    ...(signing.auth === 'gss-tsig' ? { gssNegotiation: gss ?? null } : {}),
    writeAccess: access === null ? null : typeof access === 'string' ? { checked: false, text: access } : { checked: true, text: access.text, names: access.names },
    warnings,
  });
  return ExitCode.OK;
}

/** What this site does when its collector breaks, in one line. */
export function handoverLine(c: Pick<Config, 'collector' | 'health' | 'dns'>): string {
  const k = c.collector;
  if (k.control === 'none') return 'collector handover: none (collector.control = "none": DNS failover only)';
  if (!k.handover) return `collector handover: off (collector.handover = false); a broken ${k.unit} is reported, not handed over`;
  return (
    `collector handover: on: ${k.unit} is broken when failed, after more than ${k.restart_limit} restart(s) within ${formatDuration(k.handover_after)}` +
    `${k.probe ? `, or when ${k.probe} has failed for ${formatDuration(k.handover_after)}` : ''}; handed to the other site once ${c.health.peer_targets.join(' or ')} answers ready;` +
    ` none within ${formatDuration(k.handover_hold)} of the last; paused and held at ${c.dns.control_name}`
  );
}

/** Handover settings that cannot work as written (exit 0: warnings, as the margins). */
export function handoverWarnings(c: Pick<Config, 'collector' | 'health' | 'sites' | 'role'>): MarginWarning[] {
  const out: MarginWarning[] = [];
  if (c.collector.control === 'none' || !c.collector.handover) return out;
  if (!c.health.peer_targets.some((t) => /^https?:\/\//.test(t))) {
    out.push({ key: 'health.peer_targets', message: 'only http(s) targets (the other agent\'s /healthz) report readiness: with none, no handover can ever be confirmed' });
  }
  const own = c.sites[c.role];
  if (c.health.peer_targets.some((t) => t.includes(`//${own.includes(':') ? `[${own}]` : own}:`))) {
    out.push({ key: 'health.peer_targets', message: `names this site's own address (${own}): the other site's agent is the one to ask` });
  }
  return out;
}

/** GSS-TSIG: the context check-config negotiated, as its first read did it. */
export interface GssNegotiation {
  target: string;
  keyName: string;
  tookMs: number;
  lifetimeMs: number;
}

/** Whether this site may change the names that exist: in words, or the refusal (write-access.ts). */
type Access = string | { text: string; names: string[] } | { refusal: AgentError };

/**
 * The median time of a signed read of the witness, or why it could not be measured: a DNS server
 * that does not answer is not fatal here (the agent may run where check-config cannot reach it);
 * one that refuses our key or signature is (thrown: exit 77).
 * With GSS-TSIG the first read acquires credentials from the keytab and negotiates the context
 * (TKEY): a Kerberos failure there IS fatal (thrown: GssError, exit 77, or 69 with no KDC), as is
 * a server that refuses the context (77): the agent could sign nothing. With GSS-TSIG also whether
 * this site may change the names that exist (`access`; null: not asked, HMAC): in Active Directory
 * the account that created a record owns it.
 */
async function measureRtt(config: Config, signing: DnsSigning): Promise<{ rtt: number | { error: string }; gss?: GssNegotiation; access: Access | null }> {
  let negotiated: GssNegotiation | undefined;
  const onGssEvent = (e: GssSessionEvent): void => {
    if (e.kind === 'negotiated') negotiated = { target: '', keyName: e.keyName, tookMs: e.tookMs, lifetimeMs: e.lifetimeMs };
  };
  let session: GssSession | undefined;
  try {
    // One attempt per read: an unreachable server costs one dns.timeout here, not the agent's full budget.
    const { witness, gss } = await openWitness({ ...config, dns: { ...config.dns, retries: 0 } }, signing, { onGssEvent });
    session = gss;
    // GSS-TSIG: the context is negotiated by the first read (or finding the zone), not timed.
    const first = gss ? await witness.read() : undefined;
    const samples: number[] = [];
    for (let i = 0; i < RTT_SAMPLES; i++) {
      const t0 = performance.now();
      await witness.read();
      samples.push(performance.now() - t0);
    }
    const gssDone = negotiated && session ? { ...negotiated, target: session.status().target ?? '' } : undefined;
    const access = first ? await accessOf(witness, first, config, signing) : null;
    return { rtt: samples.sort((a, b) => a - b)[Math.floor(RTT_SAMPLES / 2)]!, ...(gssDone ? { gss: gssDone } : {}), access };
  } catch (err) {
    if (fatal(err, signing)) throw err;
    const error = (err as Error).message;
    return { rtt: { error }, access: signing.auth === 'gss-tsig' ? `not checked (${error})` : null };
  } finally {
    session?.close();
  }
}

/** May this site change each name that exists? Asked by an update that changes nothing (Witness.writeAccess). */
async function accessOf(witness: Awaited<ReturnType<typeof openWitness>>['witness'], seen: Snapshot, config: Config, signing: DnsSigning): Promise<Access> {
  const names = [seen.addresses.length ? config.dns.record : null, seen.leaseText ? config.dns.lease_name : null, seen.controlText ? witness.controlName : null].filter(
    (n): n is string => n !== null,
  );
  if (names.length === 0) return 'nothing to check yet: failoverctl init creates the record, the lease and the control record (in Active Directory the account that creates them owns them)';
  try {
    const refusal = await writeAccessRefusal(witness, seen, config, signing);
    if (refusal) return { refusal };
  } catch (err) {
    return `not checked (${(err as Error).message})`;
  }
  return { text: `${signerName(signing)} may change ${names.join(', ')} (asked by an update that changes nothing)`, names };
}

/**
 * A failure check-config stops on: the server refusing us (a key or signature it does not accept,
 * a clock outside the TSIG fudge, REFUSED: exit 77, the agent could write nothing), or Kerberos
 * itself (GSS-TSIG). Not the server's silence: the agent may run where check-config cannot reach it.
 */
function fatal(err: unknown, signing: DnsSigning): boolean {
  return (err instanceof AgentError && err.exitCode === ExitCode.NOPERM) || (signing.auth === 'gss-tsig' && err instanceof GssError);
}

/** Where polkitd reads rules; a file in the first masks one of the same name in the second. */
export const POLKIT_RULE_DIRS: readonly string[] = ['/etc/polkit-1/rules.d', '/usr/share/polkit-1/rules.d'];
const PACKAGED_RULE = '50-failover-agent.rules';

/**
 * The units the installed polkit rules let the user failover-agent manage. Understands ONE form,
 * the one of the packaged 50-failover-agent.rules and of the override failoverctl setup writes: a
 * `polkit.addRule(...)` whose text has `action.id == "org.freedesktop.systemd1.manage-units"`,
 * `subject.user == "failover-agent"` and one or more `action.lookup("unit") == "NAME"` (NAME a JSON
 * string); such a rule without a unit comparison allows every unit ("*"). Whole-line `//` comments
 * are skipped; anything else (groups, helper functions, other users) is not read and allows nothing.
 * `ours`: the package's rule file (even masked by an empty one) or a rule for our user is there.
 */
export function polkitAllowedUnits(dirs: readonly string[] = POLKIT_RULE_DIRS): { units: Set<string>; ours: boolean; unreadable: string[] } {
  const files = new Map<string, string>(); // file name → path (the first directory wins)
  const unreadable: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') unreadable.push(dir);
      continue;
    }
    for (const n of names) if (n.endsWith('.rules') && !files.has(n)) files.set(n, path.join(dir, n));
  }
  const units = new Set<string>();
  let ours = files.has(PACKAGED_RULE);
  for (const file of files.values()) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      unreadable.push(file);
      continue;
    }
    text = text.replace(/^\s*\/\/.*$/gm, '');
    for (const rule of text.split(/\bpolkit\.addRule\s*\(/).slice(1)) {
      if (!/action\.id\s*==\s*"org\.freedesktop\.systemd1\.manage-units"/.test(rule)) continue;
      if (!/subject\.user\s*==\s*"failover-agent"/.test(rule)) continue;
      ours = true;
      const named = [...rule.matchAll(/action\.lookup\(\s*"unit"\s*\)\s*==\s*("(?:[^"\\]|\\.)*")/g)].map((m) => JSON.parse(m[1]!) as string);
      for (const u of named.length > 0 ? named : ['*']) units.add(u);
    }
  }
  return { units, ours, unreadable };
}

/**
 * A warning when the collector unit is one no installed polkit rule lets the agent manage (it would
 * fail at runtime with "Interactive authentication required"). None where the package's rule is not
 * installed at all (a source checkout: nothing to judge by).
 */
export function polkitWarnings(config: { collector: Pick<Config['collector'], 'control' | 'unit'> }, dirs: readonly string[] = POLKIT_RULE_DIRS): MarginWarning[] {
  if (config.collector.control !== 'systemd') return [];
  const { units, ours, unreadable } = polkitAllowedUnits(dirs);
  const unit = config.collector.unit;
  if (!ours || units.has(unit) || units.has('*')) return [];
  const allowed = units.size > 0 ? `only ${[...units].join(', ')}` : 'no unit';
  return [
    {
      key: 'collector.unit',
      message:
        `the installed polkit rules let the user failover-agent manage ${allowed}, not ${unit}: starting it will fail ` +
        `("Interactive authentication required"). Write /etc/polkit-1/rules.d/49-failover-agent-local.rules for it ` +
        `(failoverctl setup does; docs/HARDENING.md)${unreadable.length > 0 ? `; not readable here: ${unreadable.join(', ')} (run as root)` : ''}`,
    },
  ];
}
