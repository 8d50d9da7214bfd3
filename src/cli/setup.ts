/**
 * failoverctl setup: writes primary.toml and dr.toml and a new TSIG key file, and prints the DNS
 * server side (BIND, Knot, PowerDNS). Interactive on a terminal (each question shows its default
 * and is validated at once by the agent's own schema), or non-interactive from flags (Ansible and
 * the like). Never overwrites without --force.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline/promises';

import { ConfigError, loadConfig } from '../config/load.js';
import { loadKeyFile } from '../config/keyfile.js';
import { DEFAULT_COLLECTOR_UNIT, DEFAULT_CONFIG_DIR, DEFAULT_HTTP_PORT } from '../config/schema.js';
import { lookupGroup } from '../control/server.js';
import { AgentError, ExitCode } from '../errors.js';
import type { Output } from './output.js';
import { senderSnippets } from './senders.js';

/** The questions, in order: the flag (camelCase as yargs gives it), the prompt, the config keys it sets. */
export const QUESTIONS = [
  { name: 'record', prompt: 'Failover record (the name clients resolve)', keys: ['dns.record'] },
  { name: 'zone', prompt: 'Zone holding the record', keys: ['dns.zone'] },
  { name: 'primaryIp', prompt: "Primary site's address", keys: ['sites.primary'] },
  { name: 'drIp', prompt: "DR site's address", keys: ['sites.dr'] },
  { name: 'dnsServer', prompt: 'DNS server taking the updates (host or host:port)', keys: ['dns.server'] },
  { name: 'primaryVm', prompt: "Primary's VictoriaMetrics URL (empty: no VM sync)", keys: ['vmsync.local_url', 'vmsync.remote_url'] },
  { name: 'drVm', prompt: "DR's VictoriaMetrics URL (empty: no VM sync)", keys: ['vmsync.local_url', 'vmsync.remote_url'] },
  { name: 'webhook', prompt: 'Webhook URL for notifications (empty: none)', keys: ['notify.webhook'] },
  { name: 'collector', prompt: 'Collector unit ("none": DNS failover only)', keys: ['collector.unit', 'collector.control'] },
  { name: 'handover', prompt: 'Hand the collector over to the other site when it breaks (yes/no)', keys: ['collector.handover'] },
  { name: 'probe', prompt: "Local health probe of the collector (empty: none; otelcol's health_check is http://127.0.0.1:13133/)", keys: ['collector.probe'] },
  { name: 'handoverHold', prompt: 'Minimum time between automatic handovers', keys: ['collector.handover_hold'] },
  { name: 'httpPort', prompt: 'Port of /healthz and /metrics on each site', keys: ['http.listen', 'health.targets'] },
  { name: 'keyName', prompt: 'TSIG key name', keys: [] },
  { name: 'keyFile', prompt: 'Where to write the TSIG key file', keys: ['dns.key_file'] },
] as const;

export type SetupAnswers = { [Q in (typeof QUESTIONS)[number]['name']]: string };

/** `--primary-ip` for `primaryIp`. */
export const flagOf = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** One string flag per question, described by its prompt (yargs options for `failoverctl setup`). */
export const SETUP_FLAGS: Record<string, { type: 'string'; describe: string }> = Object.fromEntries(
  QUESTIONS.map((x) => [flagOf(x.name), { type: 'string', describe: x.prompt }]),
);
type Name = keyof SetupAnswers;

/** Answers every question needs; the rest have defaults. */
const REQUIRED: readonly Name[] = ['record', 'zone', 'primaryIp', 'drIp', 'dnsServer'];

/** Questions about the collector's handover: not asked when there is no collector ("none"). */
const COLLECTOR_ONLY: readonly Name[] = ['handover', 'probe', 'handoverHold'];

/** The packaged polkit rule allows this unit; any other one needs the override setup writes. */
export const POLKIT_DIR = '/etc/polkit-1/rules.d';
/** Sorts before the packaged 50-failover-agent.rules; a different name, so an upgrade never touches it. */
export const POLKIT_OVERRIDE = '49-failover-agent-local.rules';

/** The record's parent ("syslog.example.com" → "example.com"): the zone's default. */
export const parentOf = (record: string): string => (record.replace(/\.$/, '').includes('.') ? record.slice(record.indexOf('.') + 1) : '');

/** yes/no answers (and what yargs makes of --no-handover). */
const YES = /^(y|yes|true)$/i;
const NO = /^(n|no|false)$/i;

export function defaults(out: string): SetupAnswers {
  return {
    record: '',
    zone: '',
    primaryIp: '',
    drIp: '',
    dnsServer: '',
    primaryVm: '',
    drVm: '',
    webhook: '',
    collector: DEFAULT_COLLECTOR_UNIT,
    handover: 'yes',
    probe: '',
    handoverHold: '30m',
    httpPort: String(DEFAULT_HTTP_PORT),
    keyName: 'failover',
    keyFile: path.join(out, 'tsig.key'),
  };
}

const q = (s: string): string => JSON.stringify(s);

/** One site's configuration file. */
export function siteToml(a: SetupAnswers, role: 'primary' | 'dr'): string {
  const [local, remote] = role === 'primary' ? [a.primaryVm, a.drVm] : [a.drVm, a.primaryVm];
  const own = role === 'primary' ? a.primaryIp : a.drIp;
  const host = (ip: string): string => (ip.includes(':') ? `[${ip}]` : ip);
  const lines = [
    `# failover-agent, ${role} site; written by failoverctl setup. See failover-agent.toml(5).`,
    `role = ${q(role)}`,
    '',
    '[sites]',
    `primary = ${q(a.primaryIp)}`,
    `dr = ${q(a.drIp)}`,
    '',
    '[dns]',
    `record = ${q(a.record)}`,
    `zone = ${q(a.zone)}`,
    `server = ${q(a.dnsServer)}`,
    `key_file = ${q(a.keyFile)}`,
    '',
    '[health]',
    `targets = [${q(`http://${host(a.primaryIp)}:${a.httpPort}/healthz`)}]`,
    '',
    '[collector]',
    ...(a.collector === 'none' ? ['control = "none"'] : [`unit = ${q(a.collector)}`]),
    // Written even at their defaults, so the operator sees them (failover-agent.toml(5)).
    '# Hand the job to the other site when this collector is broken: its unit failed, restarted more',
    '# than restart_limit (3) times within handover_after ("30s"), or the probe failing that long.',
    `handover = ${YES.test(a.handover)}`,
    '# Local health probe: "" none; "http://127.0.0.1:13133/" (otelcol\'s health_check); "tcp://host:port".',
    `probe = ${q(a.probe)}`,
    '# No automatic handover back within this time after one (recorded at the witness).',
    `handover_hold = ${q(a.handoverHold)}`,
    '',
    '[vmsync]',
    ...(local && remote ? ['enabled = true', `local_url = ${q(local)}`, `remote_url = ${q(remote)}`] : ['enabled = false']),
    '',
    '[notify]',
    `webhook = ${q(a.webhook)}`,
    '',
    '[http]',
    // The other site checks the primary's /healthz: listen on the site's address, not loopback.
    `listen = ${q(`${host(own)}:${a.httpPort}`)}`,
    '',
  ];
  return lines.join('\n');
}

/**
 * Problems with the answers as the agent's schema sees them, per question ('' : not tied to one).
 * `vmPair: false` leaves out "both VictoriaMetrics URLs or neither": the wizard asks it only once
 * both URLs were answered (checked after the primary's alone, it refused every primary URL).
 */
export function problems(a: SetupAnswers, out: string, opts: { vmPair?: boolean } = {}): Map<Name | '', string[]> {
  const found = new Map<Name | '', string[]>();
  // Both files share most keys: one message once.
  const add = (name: Name | '', msg: string): void => void found.set(name, [...new Set([...(found.get(name) ?? []), msg])]);
  if (!/^\d+$/.test(a.httpPort) || Number(a.httpPort) < 1 || Number(a.httpPort) > 65535) add('httpPort', 'must be a port number, 1-65535');
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(a.keyName)) add('keyName', 'must be a DNS-style name (letters, digits, . _ -)');
  if (!path.isAbsolute(a.keyFile)) add('keyFile', 'must be an absolute path');
  if (!YES.test(a.handover) && !NO.test(a.handover)) add('handover', 'answer yes or no');
  if ((opts.vmPair ?? true) && Boolean(a.primaryVm) !== Boolean(a.drVm)) add(a.primaryVm ? 'drVm' : 'primaryVm', 'give both VictoriaMetrics URLs, or neither');
  for (const role of ['primary', 'dr'] as const) {
    try {
      loadConfig(path.join(out, `${role}.toml`), { text: siteToml(a, role) });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const issue of err.issues) {
        add(questionOf(issue.key, role), `${issue.key}: ${issue.message}`);
      }
    }
  }
  return found;
}

/** Which question a config key of `role`'s file comes from (the VM URLs swap between the files). */
function questionOf(key: string, role: 'primary' | 'dr'): Name | '' {
  const own = role === 'primary' ? 'primaryVm' : 'drVm';
  const other = role === 'primary' ? 'drVm' : 'primaryVm';
  if (key.startsWith('vmsync.local_url')) return own;
  if (key.startsWith('vmsync.remote_url')) return other;
  return QUESTIONS.find((x) => (x.keys as readonly string[]).some((k) => key === k || key.startsWith(`${k}.`)))?.name ?? '';
}

/** The TSIG key file in BIND's format (as tsig-keygen writes it). */
export function keyFileText(name: string, secret: string): string {
  return `key ${q(name)} {\n\talgorithm hmac-sha256;\n\tsecret ${q(secret)};\n};\n`;
}

const lease = (a: SetupAnswers): string => `_lease.${a.record.replace(/\.$/, '')}`;
/** The control record (dns.control_name's default): the pause and the last automatic handover. */
const control = (a: SetupAnswers): string => `_control.${a.record.replace(/\.$/, '')}`;
const fqdn = (n: string): string => `${n.replace(/\.$/, '')}.`;

/** BIND: the key and the dynamic zone, updates limited to the record (A/AAAA), the lease and the control record (TXT). */
export function bindConfig(a: SetupAnswers, secret: string): string {
  return `${keyFileText(a.keyName, secret)}zone ${q(a.zone.replace(/\.$/, ''))} {
\ttype primary;
\tfile ${q(`${a.zone.replace(/\.$/, '')}.zone`)};
\tupdate-policy {
\t\tgrant ${a.keyName} name ${fqdn(a.record)} A AAAA;
\t\tgrant ${a.keyName} name ${fqdn(lease(a))} TXT;
\t\tgrant ${a.keyName} name ${fqdn(control(a))} TXT;
\t};
};
`;
}

/** Knot: one ACL rule for the three names (Knot checks a whole update against one rule). */
export function knotConfig(a: SetupAnswers, secret: string): string {
  return `key:
  - id: ${a.keyName}
    algorithm: hmac-sha256
    secret: ${secret}

acl:
  - id: failover_update
    key: ${a.keyName}
    action: update
    update-type: [A, AAAA, TXT]
    update-owner: name
    update-owner-match: equal
    update-owner-name: [${fqdn(a.record)}, ${fqdn(lease(a))}, ${fqdn(control(a))}]

zone:
  - domain: ${a.zone.replace(/\.$/, '')}
    file: ${a.zone.replace(/\.$/, '')}.zone
    acl: failover_update
`;
}

/** PowerDNS (gsqlite3/gmysql backends): the key and who may update; it cannot limit updates per name. */
export function powerdnsConfig(a: SetupAnswers, secret: string): string {
  const zone = a.zone.replace(/\.$/, '');
  return `# pdns.conf: dnsupdate=yes
pdnsutil import-tsig-key ${a.keyName} hmac-sha256 ${secret}
pdnsutil set-meta ${zone} TSIG-ALLOW-DNSUPDATE ${a.keyName}
pdnsutil set-meta ${zone} ALLOW-DNSUPDATE-FROM ${a.primaryIp}/${a.primaryIp.includes(':') ? 128 : 32} ${a.drIp}/${a.drIp.includes(':') ? 128 : 32}
# PowerDNS cannot restrict an update to ${fqdn(a.record)}, ${fqdn(lease(a))} and ${fqdn(control(a))}: give them a zone
# of their own (docs/WITNESS.md) so the key can change nothing else.
`;
}

/**
 * The polkit rule letting the agent's user start, stop and restart `unit` and nothing else: the
 * packaged 50-failover-agent.rules with another unit name (check-config's parser reads both).
 */
export function polkitRule(unit: string): string {
  return `// Written by failoverctl setup: lets the failover-agent service user start, stop and restart
// the collector unit ${unit} and nothing else. The packaged rule
// (/usr/share/polkit-1/rules.d/50-failover-agent.rules) allows only ${DEFAULT_COLLECTOR_UNIT};
// package upgrades never touch /etc/polkit-1. See docs/HARDENING.md.
polkit.addRule(function (action, subject) {
  if (action.id == "org.freedesktop.systemd1.manage-units" &&
      subject.user == "failover-agent" &&
      action.lookup("unit") == ${q(unit)}) {
    var verb = action.lookup("verb");
    if (verb == "start" || verb == "stop" || verb == "restart") {
      return polkit.Result.YES;
    }
  }
});
`;
}

/** A directory this process may create files in. */
function writableDir(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

export interface SetupArgs extends Partial<SetupAnswers> {
  out?: string;
  /** Where the polkit override for a collector unit other than the packaged one goes. */
  polkitDir?: string;
  force: boolean;
}

/** Asks every question not answered by a flag, re-asking until the schema accepts the answer. */
async function ask(a: SetupAnswers, given: ReadonlySet<Name>, out: string, streams: { stdin: NodeJS.ReadableStream; stdout: NodeJS.WritableStream }): Promise<void> {
  const rl = readline.createInterface({ input: streams.stdin, output: streams.stdout, terminal: true });
  // What the operator has answered so far (flags included): checks spanning two answers wait for both.
  const answered = new Set<Name>(given);
  const check = (names: ReadonlySet<Name>): Map<Name | '', string[]> =>
    problems(filled(a), out, { vmPair: names.has('primaryVm') && names.has('drVm') });
  try {
    for (const question of QUESTIONS) {
      if (given.has(question.name)) continue;
      if (a.collector === 'none' && COLLECTOR_ONLY.includes(question.name)) continue;
      // The record names its zone: its parent is the default (a deeper zone cut is typed in).
      if (question.name === 'zone' && a.zone === '') a.zone = parentOf(a.record);
      // Bounded: an operator who keeps answering wrongly gets the error, not an endless loop.
      for (let attempt = 1; ; attempt++) {
        const def = a[question.name];
        const before = new Set([...check(answered).values()].flat());
        const answer = (await rl.question(`${question.prompt}${def ? ` [${def}]` : ''}: `)).trim();
        a[question.name] = answer === '' ? def : answer;
        const now = check(new Set([...answered, question.name]));
        // This answer's own problems, and any it caused elsewhere (a zone that leaves out the record).
        const mine = [...new Set([...(now.get(question.name) ?? []), ...[...now.values()].flat().filter((m) => !before.has(m))])];
        if (REQUIRED.includes(question.name) && a[question.name] === '') mine.unshift('an answer is required');
        if (mine.length === 0) break;
        a[question.name] = def; // the refused answer does not become the default
        streams.stdout.write(`  ${mine.join('\n  ')}\n`);
        if (attempt >= 5) throw new AgentError('SETUP_INVALID', `${question.prompt}: ${mine.join('; ')}`, ExitCode.CONFIG);
      }
      answered.add(question.name);
    }
  } finally {
    rl.close();
  }
}

/** Answers with placeholders for the required ones not given yet, so one answer can be checked alone. */
function filled(a: SetupAnswers): SetupAnswers {
  // The record and zone placeholders fit whichever of the two is answered.
  const parent = parentOf(a.record) || 'invalid';
  const placeholder: Partial<SetupAnswers> = {
    record: a.zone ? `failover.${a.zone}` : 'r.invalid',
    zone: a.record ? parent : 'invalid',
    primaryIp: '192.0.2.1',
    drIp: '192.0.2.2',
    dnsServer: '192.0.2.53',
  };
  const out = { ...a };
  for (const k of REQUIRED) if (out[k] === '') out[k] = placeholder[k]!;
  return out;
}

export async function setupCommand(
  args: SetupArgs,
  out: Output,
  streams: { stdin: NodeJS.ReadableStream & { isTTY?: boolean }; stdout: NodeJS.WritableStream },
): Promise<number> {
  const dir = path.resolve(args.out ?? DEFAULT_CONFIG_DIR);
  const a = defaults(dir);
  const given = new Set<Name>();
  for (const question of QUESTIONS) {
    const v: unknown = args[question.name];
    if (v !== undefined) {
      // A flag given twice: the last one counts, as with most commands.
      a[question.name] = String(Array.isArray(v) ? v[v.length - 1] : v);
      given.add(question.name);
    }
  }
  const missing = REQUIRED.filter((n) => !given.has(n));
  if (missing.length > 0) {
    if (!streams.stdin.isTTY) {
      throw new AgentError(
        'USAGE',
        `not a terminal, so no questions: give ${missing.map((n) => `--${flagOf(n)}`).join(', ')}`,
        ExitCode.REFUSED,
      );
    }
    await ask(a, given, dir, streams);
  }
  a.keyFile = path.resolve(a.keyFile);
  const found = problems(a, dir);
  if (found.size > 0) {
    const lines = [...found].map(([n, msgs]) => `${n ? `--${flagOf(n)}: ` : ''}${msgs.join('; ')}`);
    throw new AgentError('SETUP_INVALID', `setup: nothing written:\n${lines.join('\n')}`, ExitCode.CONFIG);
  }

  const files = { primary: path.join(dir, 'primary.toml'), dr: path.join(dir, 'dr.toml'), key: a.keyFile };
  // A unit the packaged polkit rule does not name fails at runtime ("Interactive authentication
  // required") without an override: written where polkit reads it, or printed when that cannot be.
  const polkitDir = path.resolve(args.polkitDir ?? POLKIT_DIR);
  const polkit =
    a.collector === 'none' || a.collector === DEFAULT_COLLECTOR_UNIT
      ? undefined
      : { file: path.join(polkitDir, POLKIT_OVERRIDE), rule: polkitRule(a.collector), written: writableDir(polkitDir) };
  const existing = [...Object.values(files), ...(polkit?.written ? [polkit.file] : [])].filter((f) => fs.existsSync(f));
  if (existing.length > 0 && !args.force) {
    throw new AgentError('SETUP_EXISTS', `setup: ${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; nothing written (--force overwrites)`, ExitCode.REFUSED);
  }

  const secret = randomBytes(32).toString('base64');
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(path.dirname(files.key), { recursive: true });
  writeFile(files.key, keyFileText(a.keyName, secret), 0o640);
  const gid = lookupGroup('failover-agent');
  if (gid !== undefined) fs.chownSync(files.key, -1, gid);
  writeFile(files.primary, siteToml(a, 'primary'), 0o644);
  writeFile(files.dr, siteToml(a, 'dr'), 0o644);
  if (polkit?.written) writeFile(polkit.file, polkit.rule, 0o644);
  // What check-config does, on what was written.
  for (const f of [files.primary, files.dr]) loadKeyFile(loadConfig(f).dns.key_file!);

  out.result(
    [
      `wrote ${files.primary}, ${files.dr} and the TSIG key ${files.key} (mode 0640${gid !== undefined ? ', group failover-agent' : ''})`,
      `copy ${path.basename(files.dr)} and the key to the DR site; both files pass failoverctl check-config`,
      ...(polkit === undefined
        ? []
        : polkit.written
          ? [`wrote ${polkit.file} (polkit: the agent may start and stop ${a.collector}); copy it to the same place on the DR site`]
          : [
              `# ---- polkit: ${a.collector} is not the packaged rule's unit; as root, on both sites, write ${polkit.file}: ----`,
              polkit.rule.trimEnd(),
            ]),
      '',
      '# ---- BIND (named.conf; a dynamic zone: create the zone file first) ----',
      bindConfig(a, secret),
      '# ---- Knot (knot.conf) ----',
      knotConfig(a, secret),
      '# ---- PowerDNS ----',
      powerdnsConfig(a, secret),
      `then, on the primary: failoverctl --config ${files.primary} init`,
      '',
      '# ---- the syslog senders (devices, servers): so they follow the record (docs/SENDERS.md) ----',
      senderSnippets(a.record),
    ].join('\n'),
    { files, polkit: polkit ?? null, bind: bindConfig(a, secret), knot: knotConfig(a, secret), powerdns: powerdnsConfig(a, secret), senders: senderSnippets(a.record) },
  );
  return ExitCode.OK;
}

/** Written whole to a temporary name, then renamed: a crash never leaves half a file. */
function writeFile(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}
