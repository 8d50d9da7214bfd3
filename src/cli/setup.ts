/**
 * failoverctl setup: writes primary.toml and dr.toml and a new TSIG key file, and prints the DNS
 * server side (BIND, Knot, PowerDNS); or, with GSS-TSIG (Kerberos), the [dns.gss] table and the
 * server side for BIND (tkey-gssapi-keytab) and Active Directory (no key file: the keytab comes
 * from the realm's administrator). Interactive on a terminal (each question shows its default
 * and is validated at once by the agent's own schema), or non-interactive from flags (Ansible and
 * the like). Never overwrites without --force.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline/promises';

import { ConfigError, loadConfig } from '../config/load.js';
import { checkKeytab, KeyFileError, loadKeyFile } from '../config/keyfile.js';
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
  { name: 'auth', prompt: 'How to sign the updates: "tsig" (a TSIG key file written now) or "gss-tsig" (Kerberos: Active Directory, BIND with a keytab)', keys: ['dns.auth'] },
  { name: 'keyName', prompt: 'TSIG key name', keys: [] },
  { name: 'keyFile', prompt: 'Where to write the TSIG key file', keys: ['dns.key_file'] },
  { name: 'principal', prompt: 'Kerberos principal both sites sign as (one account, with its realm: failover-agent@EXAMPLE.COM)', keys: ['dns.gss.principal'] },
  { name: 'keytab', prompt: "Path of that principal's keytab on both sites", keys: ['dns.gss.keytab'] },
  { name: 'serverPrincipal', prompt: "DNS server's service principal (empty: DNS/<the zone's SOA MNAME>, found at start)", keys: ['dns.gss.server_principal'] },
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
/** And with GSS-TSIG: who signs (no default can guess a realm's account; the keytab has one). */
const GSS_REQUIRED: readonly Name[] = ['principal'];

const isGss = (a: SetupAnswers): boolean => a.auth === 'gss-tsig';
const required = (a: SetupAnswers): readonly Name[] => (isGss(a) ? [...REQUIRED, ...GSS_REQUIRED] : REQUIRED);

/** Questions of the way NOT chosen are not asked (and their flags are ignored). */
const TSIG_ONLY: readonly Name[] = ['keyName', 'keyFile'];
const GSS_ONLY: readonly Name[] = ['principal', 'keytab', 'serverPrincipal'];
const notAsked = (a: SetupAnswers, name: Name): boolean => (isGss(a) ? TSIG_ONLY : GSS_ONLY).includes(name);

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
    auth: 'tsig',
    keyName: 'failover',
    keyFile: path.join(out, 'tsig.key'),
    principal: '',
    keytab: path.join(out, 'failover.keytab'),
    serverPrincipal: '',
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
    ...(isGss(a)
      ? [
          `auth = ${q(a.auth)}`,
          '',
          '# GSS-TSIG (RFC 3645): realm and KDCs from /etc/krb5.conf; both sites sign as ONE principal.',
          '[dns.gss]',
          `principal = ${q(a.principal)}`,
          `keytab = ${q(a.keytab)}`,
          ...(a.serverPrincipal ? [`server_principal = ${q(a.serverPrincipal)}`] : ["# server_principal: DNS/<the zone's SOA MNAME> when left out"]),
        ]
      : [`key_file = ${q(a.keyFile)}`]),
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
  if (a.auth !== 'tsig' && a.auth !== 'gss-tsig') add('auth', 'answer tsig or gss-tsig');
  if (isGss(a)) {
    if (!path.isAbsolute(a.keytab)) add('keytab', 'must be an absolute path');
  } else {
    if (!/^[a-z0-9][a-z0-9._-]*$/i.test(a.keyName)) add('keyName', 'must be a DNS-style name (letters, digits, . _ -)');
    if (!path.isAbsolute(a.keyFile)) add('keyFile', 'must be an absolute path');
  }
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
# pdns.conf's allow-dnsupdate-from (default 127.0.0.0/8, ::1) is allowed too: the two lists add up.
# PowerDNS cannot restrict an update to ${fqdn(a.record)}, ${fqdn(lease(a))} and ${fqdn(control(a))}: give them a zone
# of their own (docs/WITNESS.md) so the key can change nothing else.
`;
}

/** The service principal as printed: the answer, or what the agent will use when it is empty. */
const serverPrincipalOf = (a: SetupAnswers): string => a.serverPrincipal || "DNS/<the zone's SOA MNAME>";
/** The service's host part (DNS/ns1.example.com@REALM → ns1.example.com). */
const serverHostOf = (a: SetupAnswers): string => (a.serverPrincipal ? a.serverPrincipal.replace(/@.*$/, '').split('/')[1]! : "<the zone's SOA MNAME>");

/**
 * BIND with GSS-TSIG: named accepts the TKEY exchange with the keys of its service principal
 * (tkey-gssapi-keytab) and the update policy names the client's principal, for the same three
 * names the HMAC grants cover (the record A/AAAA, the lease TXT, the control TXT).
 */
export function bindGssConfig(a: SetupAnswers): string {
  const p = a.principal;
  return `options {
	// The keys of ${serverPrincipalOf(a)}@<REALM> (kadmin: ktadd -k /etc/bind/dns.keytab DNS/${serverHostOf(a)}),
	// readable by named. Not the agent's keytab.
	tkey-gssapi-keytab "/etc/bind/dns.keytab";
};
zone ${q(a.zone.replace(/\.$/, ''))} {
	type primary;
	file ${q(`${a.zone.replace(/\.$/, '')}.zone`)};
	update-policy {
		grant ${p} name ${fqdn(a.record)} A AAAA;
		grant ${p} name ${fqdn(lease(a))} TXT;
		grant ${p} name ${fqdn(control(a))} TXT;
	};
};
`;
}

/**
 * Active Directory: what to do on the domain's side, in words (there is no file to paste). The
 * points that decide whether it works: one account for both sites (in a secure zone the creator
 * of a record owns it, so a second account is refused: Samba answers SERVFAIL), the keytab of
 * that one account exported once, and dns.server pinned to one domain controller.
 */
export function adGssText(a: SetupAnswers): string {
  const user = a.principal.replace(/@.*$/, '');
  const realm = a.principal.replace(/^[^@]*@/, '');
  const names = [fqdn(a.record), fqdn(lease(a)), fqdn(control(a))].join(', ');
  return `# 1. ONE account for both sites: ${a.principal} (a user account whose password does not
#    expire: a new password voids its keytab).
#    In a zone that allows only secure updates the account that creates a record owns it, and an
#    update from any other account is refused (Samba answers SERVFAIL, not REFUSED): two
#    accounts, one per site, lock each other out at the first takeover. If you must use two, put
#    them in a group and give the group Full Control on the three names
#      ${names}
#    (DNS Manager or ADUC: the record > Properties > Security > Add the group > Full control; all
#    three exist once failoverctl init has run; or Full Control on the zone for this object and
#    its descendants). On Samba: samba-tool dsacl set --objectdn=<the record's DN under
#    CN=MicrosoftDNS,DC=DomainDnsZones,...> --sddl='(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;<group SID>)'
#    for each of the three. failoverctl check-config on each site says (exit 77) when a record
#    exists that its account may not change.
# 2. Its keytab, exported ONCE and copied to ${a.keytab} on both sites (mode 0640, root:failover-agent):
#      Windows: ktpass /princ ${a.principal} /mapuser ${user} /crypto AES256-SHA1 /ptype KRB5_NT_PRINCIPAL /pass +rndPass /out ${path.basename(a.keytab)}
#               (ktpass sets a new password: running it again invalidates the keytab already copied)
#      Samba:   samba-tool domain exportkeytab ${path.basename(a.keytab)} --principal=${a.principal}
# 3. dns.server = ${a.dnsServer}: ONE domain controller, in both files. AD zones are multi-master:
#    a prerequisite checked on one DC says nothing about a write landing on another, so the
#    lease's compare-and-set holds only when both sites talk to the same DC.
#    Server principal: ${a.serverPrincipal ? a.serverPrincipal : `DNS/<the SOA MNAME this DC answers with> (found at start; set --server-principal DNS/<the DC's FQDN> to pin it)`}.
# 4. /etc/krb5.conf on both sites names the realm ${realm} and its KDCs (the domain controllers).
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
      if (notAsked(a, question.name)) continue;
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
        if (required(a).includes(question.name) && a[question.name] === '') mine.unshift('an answer is required');
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
    principal: 'placeholder@INVALID',
  };
  const out = { ...a };
  for (const k of required(a)) if (out[k] === '' && placeholder[k] !== undefined) out[k] = placeholder[k];
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
  // The flags of the way not chosen would be silently dropped: say so instead.
  const stray = [...given].filter((n) => notAsked(a, n));
  if (stray.length > 0 && (a.auth === 'tsig' || a.auth === 'gss-tsig')) {
    throw new AgentError(
      'SETUP_INVALID',
      `setup: nothing written: ${stray.map((n) => `--${flagOf(n)}`).join(', ')} ${stray.length === 1 ? 'is' : 'are'} for --auth ${isGss(a) ? 'tsig' : 'gss-tsig'}, not ${a.auth}`,
      ExitCode.CONFIG,
    );
  }
  const missing = required(a).filter((n) => !given.has(n));
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
  a.keytab = path.resolve(a.keytab);
  const found = problems(a, dir);
  if (found.size > 0) {
    const lines = [...found].map(([n, msgs]) => `${n ? `--${flagOf(n)}: ` : ''}${msgs.join('; ')}`);
    throw new AgentError('SETUP_INVALID', `setup: nothing written:\n${lines.join('\n')}`, ExitCode.CONFIG);
  }

  const gss = isGss(a);
  const files = { primary: path.join(dir, 'primary.toml'), dr: path.join(dir, 'dr.toml'), ...(gss ? {} : { key: a.keyFile }) };
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

  fs.mkdirSync(dir, { recursive: true });
  const secret = gss ? '' : randomBytes(32).toString('base64');
  const gid = lookupGroup('failover-agent');
  if (!gss) {
    fs.mkdirSync(path.dirname(a.keyFile), { recursive: true });
    writeFile(a.keyFile, keyFileText(a.keyName, secret), 0o640);
    if (gid !== undefined) fs.chownSync(a.keyFile, -1, gid);
  }
  writeFile(files.primary, siteToml(a, 'primary'), 0o644);
  writeFile(files.dr, siteToml(a, 'dr'), 0o644);
  if (polkit?.written) writeFile(polkit.file, polkit.rule, 0o644);
  // What check-config does, on what was written (the keytab: only once it exists, see keytabState).
  for (const f of [files.primary, files.dr]) {
    const c = loadConfig(f);
    if (!gss) loadKeyFile(c.dns.key_file!);
  }

  const polkitLines =
    polkit === undefined
      ? []
      : polkit.written
        ? [`wrote ${polkit.file} (polkit: the agent may start and stop ${a.collector}); copy it to the same place on the DR site`]
        : [`# ---- polkit: ${a.collector} is not the packaged rule's unit; as root, on both sites, write ${polkit.file}: ----`, polkit.rule.trimEnd()];
  const tail = [
    `then, on the primary: failoverctl --config ${files.primary} init`,
    '',
    '# ---- the syslog senders (devices, servers): so they follow the record (docs/SENDERS.md) ----',
    senderSnippets(a.record),
  ];
  if (gss) {
    const keytab = keytabState(a.keytab);
    out.result(
      [
        `wrote ${files.primary} and ${files.dr} (dns.auth = "gss-tsig", [dns.gss] principal ${a.principal}, keytab ${a.keytab})`,
        `copy ${path.basename(files.dr)} and the keytab to the DR site: both sites sign as ${a.principal} (one account: see below)`,
        keytab,
        `dns.server is ${a.dnsServer}: keep it ONE server (with Active Directory ONE domain controller, never a name that rotates among them)`,
        ...polkitLines,
        '',
        '# ---- BIND (named.conf; a dynamic zone: create the zone file first) ----',
        bindGssConfig(a),
        '# ---- Active Directory DNS (Windows or Samba domain controllers; secure dynamic updates) ----',
        adGssText(a),
        '# ---- Knot, PowerDNS: not printed for GSS-TSIG; use --auth tsig with them ----',
        '',
        ...tail,
      ].join('\n'),
      { files, keytab: { path: a.keytab, state: keytab }, polkit: polkit ?? null, bind: bindGssConfig(a), ad: adGssText(a), senders: senderSnippets(a.record) },
    );
    return ExitCode.OK;
  }
  out.result(
    [
      `wrote ${files.primary}, ${files.dr} and the TSIG key ${a.keyFile} (mode 0640${gid !== undefined ? ', group failover-agent' : ''})`,
      `copy ${path.basename(files.dr)} and the key to the DR site; both files pass failoverctl check-config`,
      ...polkitLines,
      '',
      '# ---- BIND (named.conf; a dynamic zone: create the zone file first) ----',
      bindConfig(a, secret),
      '# ---- Knot (knot.conf) ----',
      knotConfig(a, secret),
      '# ---- PowerDNS ----',
      powerdnsConfig(a, secret),
      ...tail,
    ].join('\n'),
    { files, polkit: polkit ?? null, bind: bindConfig(a, secret), knot: knotConfig(a, secret), powerdns: powerdnsConfig(a, secret), senders: senderSnippets(a.record) },
  );
  return ExitCode.OK;
}

/**
 * One line on the keytab: setup does not make it (the realm's administrator does), so it says
 * whether check-config's checks pass on it already, or what is wrong, or how to make it.
 */
export function keytabState(file: string): string {
  if (!fs.existsSync(file)) {
    return `the keytab ${file} does not exist yet: make it (below), mode 0640 root:failover-agent, before failoverctl check-config`;
  }
  try {
    checkKeytab(file);
    return `the keytab ${file} passes check-config's file checks`;
  } catch (err) {
    if (!(err instanceof KeyFileError)) throw err;
    return `the keytab ${file} does not pass check-config yet: ${err.message}`;
  }
}

/** Written whole to a temporary name, then renamed: a crash never leaves half a file. */
function writeFile(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}
