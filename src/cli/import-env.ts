/**
 * failoverctl import-env: turn the original system's env files (`.env.primary` / `.env.dr` of
 * dns_failover.py, `.env.otel-watcher` of otel_watcher.py, the `.env` of vm_sync.py) into a
 * failover-agent TOML config (SPEC §8, whose keys mirror those variables).
 *
 * Every variable ends up either `mapped` (to one or more TOML keys) or `unmapped` (with the
 * reason). Secrets are never copied: the TSIG key goes into its own key file (dns.key_file), and
 * no value of an unmapped variable is ever printed. The TOML is validated with the agent's own
 * schema; anything still wrong is reported in `warnings`.
 *
 * Several files may be combined (the DR site had `.env.dr` AND `.env.otel-watcher`, and maybe a
 * vm-sync `.env`): each file is read with the meaning its own program gave its variables
 * (vm_sync.py's CHECK_INTERVAL is the sync interval, dns_failover.py's the health-check interval),
 * then the keys are merged, dns_failover.py's values first.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { ConfigError, validateConfig, type ConfigIssue } from '../config/load.js';
import { parseDuration } from '../config/duration.js';
import { AgentError, ExitCode } from '../errors.js';
import type { Output } from './output.js';

export interface ImportResult {
  toml: string;
  mapped: { variable: string; key: string }[];
  unmapped: { variable: string; reason: string }[];
  warnings: string[];
}

type Role = 'primary' | 'dr';

/** Where the imported config points for the TSIG key; the secret itself is never written to the TOML. */
export const KEY_FILE = '/etc/failover-agent/tsig.key';

/** Reason given for settings of the old Docker deployment. */
export const CONTAINER_REASON = 'systemd unit replaces the container; see collector.unit';

const AGENT_HTTP_PORT = 9465;

// ---------------------------------------------------------------------------------------------
// The env file

/**
 * Parse an env file as Docker's `--env-file` and docker compose read them: `KEY=value` lines,
 * optional `export `, values in '…' (literal) or "…" (\" \\ \n \t \r \$ escapes), `#` comments
 * (whole lines, or after whitespace behind an unquoted value), blank lines, CRLF. A later
 * definition of the same variable wins. Any other line is a ConfigError naming file and line
 * (the message never repeats the line: it may hold a secret).
 */
export function parseEnvFile(text: string, file: string): Map<string, string> {
  const vars = new Map<string, string>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((raw, i) => {
    const line = i + 1;
    const fail = (message: string): never => {
      throw new ConfigError([{ file, key: '', line, message }]);
    };
    const t = raw.replace(/\r$/, '').trim();
    if (t === '' || t.startsWith('#')) return;
    const body = t.replace(/^export\s+/, '');
    const eq = body.indexOf('=');
    if (eq < 0) {
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(body)) {
        fail(`${body} has no "=" and no value (write ${body}=value)`);
      }
      fail('not a KEY=value line');
    }
    const name = body.slice(0, eq).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      fail(name === '' ? 'missing variable name before "="' : `"${name}" is not a variable name (letters, digits and "_", not starting with a digit)`);
    }
    vars.set(name, parseValue(body.slice(eq + 1).trim(), name, fail));
  });
  return vars;
}

function parseValue(rest: string, name: string, fail: (message: string) => never): string {
  const quote = rest[0];
  if (quote !== "'" && quote !== '"') return rest.replace(/\s+#.*$/, '').trim();
  let value = '';
  let i = 1;
  for (;; i++) {
    if (i >= rest.length) return fail(`${name}: the value's opening ${quote} is never closed on this line`);
    const c = rest[i];
    if (c === quote) break;
    if (quote === '"' && c === '\\' && i + 1 < rest.length) {
      const n = rest[++i];
      const esc: Record<string, string> = { n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\', $: '$' };
      value += esc[n] ?? `\\${n}`;
      continue;
    }
    value += c;
  }
  const after = rest.slice(i + 1).trim();
  if (after !== '' && !after.startsWith('#')) fail(`${name}: unexpected text after the closing ${quote}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Mapping

type Kind = 'dns-failover' | 'otel-watcher' | 'vm-sync';
type Value = string | number | boolean | string[];

const PROGRAM: Record<Kind, string> = {
  'dns-failover': 'dns_failover.py',
  'otel-watcher': 'otel_watcher.py',
  'vm-sync': 'vm_sync.py',
};

/** On a key set by several files, dns_failover.py's value wins over otel_watcher.py's over vm_sync.py's. */
const KIND_RANK: Record<Kind, number> = { 'dns-failover': 30, 'otel-watcher': 20, 'vm-sync': 10 };

/** Variables only vm_sync.py reads. */
const VM_SYNC_VARS = new Set([
  'LOCAL_VM_URL', 'REMOTE_VM_URL', 'QUERY_WINDOW', 'QUERY_STEP', 'GAP_THRESHOLD', 'CHUNK_SIZE',
  'FAILBACK_CLEAN_CHECKS', 'STATE_FILE', 'NOTIFY_ON_GAP', 'NOTIFY_ON_SYNC', 'NOTIFY_ON_FAILBACK_READY',
  'SYNC_INTERVAL', 'LOOKBACK',
]);
/** Variables only otel_watcher.py (Docker and Kubernetes variants) reads. */
const WATCHER_VARS = new Set([
  'OTEL_CHECK_INTERVAL', 'OTEL_COMMAND', 'OTEL_CONTAINER', 'OTEL_NAMESPACE', 'OTEL_DEPLOYMENT',
  'OTEL_REPLICAS_ACTIVE', 'OTEL_REPLICAS_INACTIVE',
]);
/** Variables only dns_failover.py reads. */
function isFailoverVar(v: string): boolean {
  return (
    /^(DNS_PROVIDER|DNS_ZONE|DNS_TTL|TTL|LEASE_\w+|UPDATE_INTERVAL|FAIL_THRESHOLD|FAILURE_THRESHOLD|FAIL_COUNT|HEALTH_\w+|TSIG\w*|DRYRUN_STATEFILE|SCRIPT_SET|SCRIPT_GET|VAULT_\w+)$/.test(v) ||
    PROVIDER_PREFIXES.some(([p]) => v.startsWith(p))
  );
}

function kindOf(vars: Map<string, string>): Kind {
  const names = [...vars.keys()];
  const failover = names.some(isFailoverVar);
  if (!failover && names.some((v) => VM_SYNC_VARS.has(v))) return 'vm-sync';
  if (!failover && names.some((v) => WATCHER_VARS.has(v))) return 'otel-watcher';
  return 'dns-failover';
}

/** Credentials and settings of dns_failover.py's other DNS back ends. */
const PROVIDER_PREFIXES: [string, string][] = [
  ['INFOBLOX_', 'infoblox'],
  ['CLOUDFLARE_', 'cloudflare'],
  ['AWS_', 'route53'],
  ['ROUTE53_', 'route53'],
  ['AZURE_', 'azure-dns'],
  ['GCP_', 'gcp-dns'],
  ['F5_', 'f5-gtm'],
];
const PROVIDER_OF: Record<string, string> = { DRYRUN_STATEFILE: 'dry-run', SCRIPT_SET: 'script', SCRIPT_GET: 'script' };

const K8S_REASON = 'systemd unit replaces the Kubernetes deployment; see collector.unit';
const RUNTIME_VARS = new Set(['TZ', 'PYTHONUNBUFFERED', 'PYTHONDONTWRITEBYTECODE', 'PYTHONPATH', 'PATH', 'HOME', 'HOSTNAME', 'LANG', 'LC_ALL']);

const TSIG_NAME_VARS = ['TSIG_KEY_NAME', 'TSIG_KEYNAME', 'TSIG_NAME'];
const TSIG_ALGORITHM_VARS = ['TSIG_ALGORITHM', 'TSIG_ALGO', 'TSIG_KEY_ALGORITHM'];
const TSIG_SECRET_VARS = ['TSIG_SECRET', 'TSIG_KEY_SECRET', 'TSIG_SECRET_KEY', 'TSIG_KEY'];

/** One value for one TOML key, from one variable of one file. */
interface Entry {
  key: string;
  value: Value;
  variable: string;
  file: string;
  kind: Kind;
  /** Higher wins when several entries set the key; equal: the later file wins. */
  rank: number;
  /** Comment put behind the key in the TOML (default: the variable's name). */
  note?: string;
  /** Not reported when it loses to another entry (MY_IP has its own check). */
  quiet?: boolean;
}

interface TsigFacts {
  name?: string;
  algorithm?: string;
  secretVars: string[];
  oldKeyFiles: string[];
}

/** Collects what one import learns, file by file. */
class Importer {
  readonly entries: Entry[] = [];
  readonly mapped: ImportResult['mapped'] = [];
  readonly unmapped: ImportResult['unmapped'] = [];
  readonly warnings: string[] = [];
  readonly tsig: TsigFacts = { secretVars: [], oldKeyFiles: [] };
  /** MY_IP values to check against the role's site IP once everything is merged. */
  readonly myIps: { value: string; file: string }[] = [];
  private file = '';
  private kind: Kind = 'dns-failover';
  private multi = false;
  private handled = new Set<string>();

  /** The file being mapped. */
  get currentFile(): string {
    return this.file;
  }

  begin(file: string, kind: Kind, multi: boolean): void {
    this.file = file;
    this.kind = kind;
    this.multi = multi;
    this.handled = new Set();
  }

  /** Record that `variable` maps to `key` and, unless its value is empty, set the key. */
  set(variable: string, key: string, value: Value | '', opts: { rank?: number; note?: string; quiet?: boolean } = {}): void {
    this.markMapped(variable, key);
    if (value === '') return; // empty: the program used its default, so does the agent
    this.entries.push({
      key,
      value,
      variable,
      file: this.file,
      kind: this.kind,
      rank: KIND_RANK[this.kind] + (opts.rank ?? 1),
      note: opts.note,
      quiet: opts.quiet,
    });
  }

  markMapped(variable: string, key: string): void {
    this.handled.add(variable);
    if (!this.mapped.some((m) => m.variable === variable && m.key === key)) this.mapped.push({ variable, key });
  }

  unmap(variable: string, reason: string): void {
    this.handled.add(variable);
    this.unmapped.push({ variable, reason: this.multi ? `${reason} [${path.basename(this.file)}]` : reason });
  }

  isHandled(variable: string): boolean {
    return this.handled.has(variable);
  }

  /** A number of seconds (or a duration string) → duration string; else unmapped. */
  seconds(variable: string, raw: string, key: string | string[], opts: { rank?: number } = {}): void {
    const keys = Array.isArray(key) ? key : [key];
    const d = toDuration(raw);
    if (d === undefined) {
      this.unmap(variable, `not a number of seconds; ${keys.join(' and ')} keep${keys.length > 1 ? '' : 's'} the default`);
      return;
    }
    for (const k of keys) this.set(variable, k, d, opts);
  }

  /** A whole number ≥ min → integer; else unmapped. */
  integer(variable: string, raw: string, key: string, min: number): void {
    if (raw === '') return this.set(variable, key, '');
    if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
      this.unmap(variable, `not a whole number of at least ${min}; ${key} keeps the default`);
      return;
    }
    this.set(variable, key, Number(raw));
  }
}

function toDuration(raw: string): string | '' | undefined {
  if (raw === '') return '';
  if (/^\d+(\.\d+)?$/.test(raw)) return `${Number(raw)}s`;
  try {
    parseDuration(raw);
    return raw;
  } catch {
    return undefined;
  }
}

/** Import one env file (see importEnvFiles). */
export function importEnv(vars: Map<string, string>, opts: { role?: Role; file: string }): ImportResult {
  return importEnvFiles([{ file: opts.file, vars }], { role: opts.role });
}

/**
 * Import one or more env files of the same site into one TOML config. Throws ConfigError (exit 78)
 * when the role cannot be told or the files disagree about it.
 */
export function importEnvFiles(inputs: { file: string; vars: Map<string, string> }[], opts: { role?: Role } = {}): ImportResult {
  if (inputs.length === 0) throw new ConfigError('import-env needs at least one env file', []);
  const { role, how } = resolveRole(inputs, opts.role);
  const imp = new Importer();
  const kinds: Kind[] = [];
  for (const input of inputs) {
    const kind = kindOf(input.vars);
    kinds.push(kind);
    imp.begin(input.file, kind, inputs.length > 1);
    mapFile(imp, input.vars, kind, role);
  }
  if (how.warning) imp.warnings.unshift(how.warning);

  const chosen = merge(imp);
  derive(imp, chosen, role, how.text);
  const tsigWarning = keyFileWarning(imp.tsig);
  const migration = migrationWarnings(chosen, role, kinds);
  imp.warnings.push(tsigWarning, ...migration);

  const body = renderBody(chosen, inputs.length > 1);
  const { issues } = validateConfig(body, `${role}.toml`);
  for (const issue of issues) imp.warnings.push(issueWarning(issue, chosen, role));

  const header = renderHeader(inputs.map((i, n) => ({ file: i.file, kind: kinds[n]! })), role, how.text, imp.unmapped, imp.warnings);
  return { toml: `${header}\n${body}`, mapped: imp.mapped, unmapped: imp.unmapped, warnings: imp.warnings };
}

function resolveRole(
  inputs: { file: string; vars: Map<string, string> }[],
  cliRole: Role | undefined,
): { role: Role; how: { text: string; warning?: string } } {
  const declared: { file: string; role: Role }[] = [];
  for (const { file, vars } of inputs) {
    const raw = vars.get('ROLE');
    if (raw === undefined || raw === '') continue;
    const r = raw.trim().toLowerCase();
    if (r !== 'primary' && r !== 'dr') {
      throw new ConfigError([{ file, key: 'ROLE', message: `ROLE=${raw} is neither "primary" nor "dr"` }]);
    }
    declared.push({ file, role: r });
  }
  const roles = [...new Set(declared.map((d) => d.role))];
  if (roles.length > 1) {
    throw new ConfigError(
      `the files disagree about the role (${declared.map((d) => `ROLE=${d.role} in ${d.file}`).join(', ')}): import the files of one site at a time`,
      [],
    );
  }
  if (roles.length === 1) {
    const role = roles[0]!;
    const text = `ROLE=${role} (${declared[0]!.file})`;
    const warning =
      cliRole !== undefined && cliRole !== role ? `--role ${cliRole} ignored: ${declared[0]!.file} says ROLE=${role}` : undefined;
    return { role, how: { text, warning } };
  }
  if (cliRole) return { role: cliRole, how: { text: `--role ${cliRole}` } };

  const inferred: { file: string; role: Role }[] = [];
  for (const { file } of inputs) {
    const base = path.basename(file);
    const m = /(?:^|\.)env\.(primary|dr)$/.exec(base);
    if (m) inferred.push({ file, role: m[1] as Role });
    // otel_watcher.py ran on the DR site only (seeds/000: "otel_watcher.py | DR only").
    else if (/(?:^|\.)env\.otel-watcher$/.test(base)) inferred.push({ file, role: 'dr' });
  }
  const guesses = [...new Set(inferred.map((d) => d.role))];
  if (guesses.length === 1) {
    return { role: guesses[0]!, how: { text: `the file name ${path.basename(inferred[0]!.file)}` } };
  }
  if (guesses.length > 1) {
    throw new ConfigError(
      `the file names disagree about the role (${inferred.map((d) => path.basename(d.file)).join(', ')}): import the files of one site at a time`,
      [],
    );
  }
  throw new ConfigError(
    `cannot tell the role of ${inputs.map((i) => i.file).join(', ')}: no ROLE variable, no --role, and the file name is neither .env.primary nor .env.dr; pass --role primary or --role dr`,
    [],
  );
}

/** Map every variable of one file. */
function mapFile(imp: Importer, vars: Map<string, string>, kind: Kind, role: Role): void {
  const get = (v: string): string | undefined => vars.get(v);

  if (vars.has('ROLE')) imp.set('ROLE', 'role', vars.get('ROLE')!.trim().toLowerCase());

  // Sites. MY_IP is this site's address: it fills sites.<role> when PRIMARY_IP / DR_IP do not,
  // and is checked against them after the merge.
  if (vars.has('PRIMARY_IP')) imp.set('PRIMARY_IP', 'sites.primary', get('PRIMARY_IP')!, { rank: 2 });
  if (vars.has('DR_IP')) imp.set('DR_IP', 'sites.dr', get('DR_IP')!, { rank: 2 });
  if (vars.has('MY_IP')) {
    const v = get('MY_IP')!;
    imp.set('MY_IP', `sites.${role}`, v, { rank: 0, quiet: true });
    if (v !== '') imp.myIps.push({ value: v, file: imp.currentFile });
  }

  // DNS.
  if (vars.has('DNS_RECORD')) imp.set('DNS_RECORD', 'dns.record', get('DNS_RECORD')!);
  if (vars.has('DNS_ZONE')) imp.set('DNS_ZONE', 'dns.zone', get('DNS_ZONE')!);
  if (vars.has('DNS_SERVER')) imp.set('DNS_SERVER', 'dns.server', get('DNS_SERVER')!);
  for (const v of ['DNS_TTL', 'TTL']) if (vars.has(v)) imp.seconds(v, get(v)!, 'dns.record_ttl');
  for (const v of ['LEASE_NAME', 'LEASE_RECORD']) if (vars.has(v)) imp.set(v, 'dns.lease_name', get(v)!);

  // Lease and intervals. dns_failover.py used one UPDATE_INTERVAL for the renewals and for the
  // DR's health checks.
  if (vars.has('LEASE_TTL')) imp.seconds('LEASE_TTL', get('LEASE_TTL')!, 'lease.ttl');
  for (const v of ['LEASE_RENEW_INTERVAL', 'LEASE_RENEW']) if (vars.has(v)) imp.seconds(v, get(v)!, 'lease.renew_interval', { rank: 2 });
  for (const v of ['LEASE_MAX_SKEW', 'LEASE_SKEW']) if (vars.has(v)) imp.seconds(v, get(v)!, 'lease.max_skew');
  if (vars.has('UPDATE_INTERVAL')) {
    const keys = role === 'dr' ? ['lease.renew_interval', 'health.interval'] : ['lease.renew_interval'];
    imp.seconds('UPDATE_INTERVAL', get('UPDATE_INTERVAL')!, keys);
  }
  if (vars.has('CHECK_INTERVAL')) {
    // vm_sync.py: seconds between sync checks; dns_failover.py: between health checks.
    imp.seconds('CHECK_INTERVAL', get('CHECK_INTERVAL')!, kind === 'vm-sync' ? 'vmsync.interval' : 'health.interval', { rank: 2 });
    if (kind !== 'vm-sync' && [...vars.keys()].some((v) => VM_SYNC_VARS.has(v))) {
      imp.warnings.push(
        `CHECK_INTERVAL in ${imp.currentFile} was taken as health.interval (dns_failover.py's meaning); vm_sync.py read it as the sync interval: set vmsync.interval if that is what it meant`,
      );
    }
  }
  if (vars.has('HEALTH_INTERVAL')) imp.seconds('HEALTH_INTERVAL', get('HEALTH_INTERVAL')!, 'health.interval', { rank: 2 });
  for (const v of ['FAIL_THRESHOLD', 'FAILURE_THRESHOLD', 'FAIL_COUNT']) if (vars.has(v)) imp.integer(v, get(v)!, 'health.failures', 1);
  if (vars.has('HEALTH_TIMEOUT')) imp.seconds('HEALTH_TIMEOUT', get('HEALTH_TIMEOUT')!, 'health.timeout');
  mapHealth(imp, vars);

  // Collector (otel_watcher.py).
  if (vars.has('OTEL_CHECK_INTERVAL')) imp.seconds('OTEL_CHECK_INTERVAL', get('OTEL_CHECK_INTERVAL')!, 'collector.interval');

  // vm_sync.py.
  for (const [v, key] of [['LOCAL_VM_URL', 'vmsync.local_url'], ['REMOTE_VM_URL', 'vmsync.remote_url']] as const) {
    if (!vars.has(v)) continue;
    const url = get(v)!.replace(/\/+$/, '');
    imp.set(v, key, url);
    if (url !== '') {
      imp.set(v, 'vmsync.enabled', true, { note: 'vm_sync.py was configured' });
      const host = hostOf(url);
      if (host !== undefined && !host.includes('.') && !host.includes(':') && host !== 'localhost') {
        imp.warnings.push(
          `${v}: host "${host}" looks like a Docker Compose service name, which does not resolve outside the compose network; failover-agent runs on the host: use the address VictoriaMetrics is published on (e.g. http://127.0.0.1:8428)`,
        );
      }
    }
  }
  if (vars.has('SYNC_INTERVAL')) imp.seconds('SYNC_INTERVAL', get('SYNC_INTERVAL')!, 'vmsync.interval', { rank: 2 });
  if (vars.has('QUERY_STEP')) imp.seconds('QUERY_STEP', get('QUERY_STEP')!, 'vmsync.bucket');
  if (vars.has('LOOKBACK')) imp.seconds('LOOKBACK', get('LOOKBACK')!, 'vmsync.lookback', { rank: 2 });
  if (vars.has('QUERY_WINDOW')) {
    const d = toDuration(get('QUERY_WINDOW')!);
    if (d !== undefined && d !== '' && parseDuration(d) >= 24 * 3600_000) imp.set('QUERY_WINDOW', 'vmsync.lookback', d);
    else if (d === '') imp.set('QUERY_WINDOW', 'vmsync.lookback', '');
    else {
      imp.unmap(
        'QUERY_WINDOW',
        'vm_sync.py compared only this fixed window (1 h by default) and so forgot gaps older than it; failover-agent scans from the start of the current failover, or vmsync.lookback (24h) back: a shorter window is not carried over',
      );
    }
  }
  if (vars.has('FAILBACK_CLEAN_CHECKS')) imp.integer('FAILBACK_CLEAN_CHECKS', get('FAILBACK_CLEAN_CHECKS')!, 'vmsync.clean_checks', 1);
  if (vars.has('NOTIFY_WEBHOOK')) imp.set('NOTIFY_WEBHOOK', 'notify.webhook', get('NOTIFY_WEBHOOK')!);
  if (vars.has('LOG_LEVEL')) {
    const raw = get('LOG_LEVEL')!;
    const level = LOG_LEVELS[raw.trim().toUpperCase()];
    if (raw === '') imp.set('LOG_LEVEL', 'log.level', '');
    else if (level) imp.set('LOG_LEVEL', 'log.level', level);
    else imp.unmap('LOG_LEVEL', 'not a level failover-agent knows (DEBUG, INFO, WARN, ERROR, CRITICAL); log.level keeps the default "info"');
  }

  mapTsig(imp, vars);

  // Everything else.
  for (const v of vars.keys()) {
    if (imp.isHandled(v)) continue;
    imp.unmap(v, reasonFor(v));
  }
}

const LOG_LEVELS: Record<string, string> = {
  DEBUG: 'debug',
  INFO: 'info',
  NOTICE: 'notice',
  WARN: 'warning',
  WARNING: 'warning',
  ERROR: 'error',
  CRITICAL: 'crit',
};

/** dns_failover.py's health check: HEALTH_MODE=tcp (HEALTH_HOST:HEALTH_PORT) or metrics (HEALTH_URL). */
function mapHealth(imp: Importer, vars: Map<string, string>): void {
  const mode = vars.get('HEALTH_MODE')?.trim().toLowerCase() || undefined;
  const url = vars.get('HEALTH_URL') || undefined;
  const host = vars.get('HEALTH_HOST') || undefined;
  const port = vars.get('HEALTH_PORT') || undefined;
  const statMetric = ['HEALTH_METRIC', 'HEALTH_STALE_COUNT'];
  const noCounter =
    'failover-agent does not judge health by a rising metric: an http(s) target is healthy on any 2xx answer; the default target, the primary agent\'s /healthz, fails when its collector is not active';
  for (const v of statMetric) if (vars.has(v)) imp.unmap(v, noCounter);

  if (mode !== undefined && mode !== 'tcp' && mode !== 'metrics') {
    imp.unmap('HEALTH_MODE', 'neither "tcp" nor "metrics"; health.targets keeps the default');
    for (const v of ['HEALTH_URL', 'HEALTH_HOST', 'HEALTH_PORT']) if (vars.has(v)) imp.unmap(v, 'HEALTH_MODE is not understood');
    return;
  }
  const useUrl = mode === 'metrics' || (mode === undefined && url !== undefined && host === undefined && port === undefined);
  if (useUrl) {
    for (const v of ['HEALTH_HOST', 'HEALTH_PORT']) if (vars.has(v)) imp.unmap(v, 'not used with HEALTH_MODE=metrics (dns_failover.py ignored it too)');
    if (url === undefined) {
      if (vars.has('HEALTH_MODE')) imp.unmap('HEALTH_MODE', 'HEALTH_MODE=metrics without HEALTH_URL; health.targets keeps the default');
      if (vars.has('HEALTH_URL')) imp.set('HEALTH_URL', 'health.targets', '');
      return;
    }
    imp.set('HEALTH_URL', 'health.targets', [url]);
    if (vars.has('HEALTH_MODE')) imp.markMapped('HEALTH_MODE', 'health.targets');
    if (mode === 'metrics') {
      imp.warnings.push(
        `health.targets is HEALTH_URL: HEALTH_MODE=metrics judged the primary by a rising ${vars.get('HEALTH_METRIC') || 'otelcol_receiver_accepted_metric_points'} counter; failover-agent counts any 2xx answer as healthy. Consider leaving health.targets out: the default, the primary agent's /healthz, also fails when the primary's collector is down`,
      );
    }
    return;
  }
  if (mode === undefined && host === undefined && port === undefined) {
    if (vars.has('HEALTH_URL')) imp.set('HEALTH_URL', 'health.targets', '');
    for (const v of ['HEALTH_HOST', 'HEALTH_PORT']) if (vars.has(v)) imp.set(v, 'health.targets', '');
    return;
  }
  // TCP (dns_failover.py's default mode; its defaults were HEALTH_HOST = the primary, HEALTH_PORT = 6514).
  if (vars.has('HEALTH_URL')) imp.unmap('HEALTH_URL', 'not used with HEALTH_MODE=tcp (dns_failover.py ignored it too)');
  const h = host ?? vars.get('PRIMARY_IP');
  if (!h) {
    for (const v of ['HEALTH_MODE', 'HEALTH_PORT']) if (vars.has(v)) imp.unmap(v, 'a tcp check needs HEALTH_HOST (or PRIMARY_IP); health.targets keeps the default');
    return;
  }
  const p = port ?? '6514';
  if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) {
    for (const v of ['HEALTH_MODE', 'HEALTH_HOST', 'HEALTH_PORT']) if (vars.has(v)) imp.unmap(v, 'HEALTH_PORT is not a port number; health.targets keeps the default');
    return;
  }
  const target = `tcp://${net.isIP(h) === 6 ? `[${h}]` : h}:${p}`;
  const sources = ['HEALTH_MODE', 'HEALTH_HOST', 'HEALTH_PORT'].filter((v) => vars.has(v));
  imp.set(sources[0]!, 'health.targets', [target], { note: sources.join(', ') });
  for (const v of sources.slice(1)) imp.markMapped(v, 'health.targets');
  if (port === undefined) {
    imp.warnings.push(`health.targets = ["${target}"]: HEALTH_PORT was not set, so dns_failover.py's default port 6514 is used`);
  }
}

/** The TSIG key: only the path of the key file goes into the TOML, never the secret. */
function mapTsig(imp: Importer, vars: Map<string, string>): void {
  const provider = vars.get('DNS_PROVIDER')?.trim().toLowerCase();
  if (provider !== undefined) {
    if (provider === 'bind-tsig' || provider === '') imp.markMapped('DNS_PROVIDER', 'dns.key_file');
    else if (provider === 'ad-gss') {
      imp.unmap('DNS_PROVIDER', 'ad-gss (GSS-TSIG, Kerberos) is not supported: failover-agent signs its RFC 2136 updates with a TSIG key (hmac-sha256/sha512) that the zone must accept');
    } else {
      imp.unmap('DNS_PROVIDER', `the ${provider} provider is not supported: failover-agent only sends RFC 2136 dynamic updates signed with TSIG, so the zone must be on a server that accepts them (BIND 9, Knot DNS, ...)`);
    }
  }
  for (const [v, raw] of vars) {
    if (!/^TSIG/.test(v)) continue;
    if (v === 'TSIG_KEYFILE' || v === 'TSIG_KEY_FILE') {
      imp.set(v, 'dns.key_file', KEY_FILE, { note: 'TSIG key: see the note at the top' });
      if (raw !== '') imp.tsig.oldKeyFiles.push(raw);
    } else if (TSIG_NAME_VARS.includes(v)) {
      imp.markMapped(v, 'dns.key_file');
      if (raw !== '') imp.tsig.name = raw.trim().replace(/\.$/, '');
    } else if (TSIG_ALGORITHM_VARS.includes(v)) {
      imp.markMapped(v, 'dns.key_file');
      if (raw !== '') imp.tsig.algorithm = raw.trim().toLowerCase().replace(/\.$/, '');
    } else if (TSIG_SECRET_VARS.includes(v)) {
      imp.markMapped(v, 'dns.key_file');
      imp.tsig.secretVars.push(v);
      // nsupdate -y style "[alg:]name:secret": the name and algorithm are not secret.
      const m = /^(?:(hmac-[a-z0-9-]+):)?([^:\s]+):[A-Za-z0-9+/=]+$/i.exec(raw.trim());
      if (m) {
        if (m[1]) imp.tsig.algorithm ??= m[1].toLowerCase();
        imp.tsig.name ??= m[2]!.replace(/\.$/, '');
      }
    } else {
      imp.unmap(v, 'a TSIG setting import-env does not know; the key lives in the key file dns.key_file');
    }
  }
}

/** Why a variable no rule maps is left out. */
function reasonFor(v: string): string {
  if (WATCHER_VARS.has(v) && /^OTEL_(NAMESPACE|DEPLOYMENT|REPLICAS_)/.test(v)) return K8S_REASON;
  if (v === 'KUBECONFIG') return K8S_REASON;
  if (v === 'OTEL_COMMAND') return `${CONTAINER_REASON} (the collector's command line belongs in that unit's ExecStart=)`;
  if (/(^|_)(CONTAINER|CONTAINER_NAME|IMAGE|IMAGE_TAG)$/.test(v) || /^(COMPOSE|DOCKER)_/.test(v) || v === 'OTEL_SERVICE') {
    return CONTAINER_REASON;
  }
  if (RUNTIME_VARS.has(v)) return 'runtime setting of the old container; not used (the agent runs under systemd and logs to the journal)';
  if (v.startsWith('VAULT_')) return 'HashiCorp Vault is not read: the only secret failover-agent has is the TSIG key file (dns.key_file)';
  const provider = PROVIDER_OF[v] ?? PROVIDER_PREFIXES.find(([p]) => v.startsWith(p))?.[1];
  if (provider) return `setting of dns_failover.py's ${provider} DNS provider; failover-agent only speaks RFC 2136 + TSIG`;
  switch (v) {
    case 'CHUNK_SIZE':
      return 'vm_sync.py held each export in memory, hence its small chunks; failover-agent streams the export straight into the import (memory flat in the gap size), so vmsync.max_chunk keeps its default (6h)';
    case 'GAP_THRESHOLD':
      return 'failover-agent repairs every bucket where the destination has fewer samples than the source: there is no ratio threshold';
    case 'STATE_FILE':
      return 'the sync state lives in /var/lib/failover-agent/<instance>/vmsync.json (systemd StateDirectory=); the old state is not carried over';
    case 'NOTIFY_ON_GAP':
    case 'NOTIFY_ON_SYNC':
    case 'NOTIFY_ON_FAILBACK_READY':
      return 'failover-agent always notifies on gaps, repairs and FAILBACK READY when notify.webhook is set';
    case 'HEALTH_MODE':
    case 'HEALTH_HOST':
    case 'HEALTH_PORT':
    case 'HEALTH_URL':
      return 'not used';
    default:
      return 'unknown variable: not a setting of dns_failover.py, otel_watcher.py or vm_sync.py that import-env knows';
  }
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Merge and derived keys

/** The winning entry of every key; warns where files or variables disagree. */
function merge(imp: Importer): Map<string, Entry> {
  const byKey = new Map<string, Entry[]>();
  for (const e of imp.entries) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
  const chosen = new Map<string, Entry>();
  for (const [key, list] of byKey) {
    let best = list[0]!;
    for (const e of list.slice(1)) if (e.rank >= best.rank) best = e;
    chosen.set(key, best);
    const losers = list.filter((e) => e !== best && !e.quiet && JSON.stringify(e.value) !== JSON.stringify(best.value));
    if (losers.length > 0) {
      const where = (e: Entry) => `${e.variable} (${path.basename(e.file)})`;
      imp.warnings.push(`${key}: ${[best, ...losers].map(where).join(' and ')} differ; using ${where(best)}`);
    }
  }
  return chosen;
}

function derive(imp: Importer, chosen: Map<string, Entry>, role: Role, roleHow: string): void {
  if (!chosen.has('role')) {
    chosen.set('role', { key: 'role', value: role, variable: '', file: '', kind: 'dns-failover', rank: 0, note: `from ${roleHow}` });
  }
  // The TOML always names the key file (required); the key itself is the operator's to install.
  if (!chosen.has('dns.key_file')) {
    chosen.set('dns.key_file', {
      key: 'dns.key_file',
      value: KEY_FILE,
      variable: '',
      file: '',
      kind: 'dns-failover',
      rank: 0,
      note: 'TSIG key: see the note at the top',
    });
  }
  const site = chosen.get(`sites.${role}`);
  for (const my of imp.myIps) {
    if (site && site.variable !== 'MY_IP' && site.value !== my.value) {
      imp.warnings.push(
        `MY_IP=${my.value} (${path.basename(my.file)}) is not the ${role} site's IP ${String(site.value)} (${site.variable}): the TOML uses sites.${role} = "${String(site.value)}"; check which is right`,
      );
    }
  }
  // The primary's agent must answer the DR's default health check on its site address.
  if (role === 'primary' && site && !chosen.has('http.listen')) {
    const host = String(site.value);
    chosen.set('http.listen', {
      key: 'http.listen',
      value: `${net.isIP(host) === 6 ? `[${host}]` : host}:${AGENT_HTTP_PORT}`,
      variable: site.variable,
      file: site.file,
      kind: site.kind,
      rank: 0,
      note: "the DR's default health check reads /healthz here",
    });
    imp.markMapped(site.variable, 'http.listen');
  }
}

function migrationWarnings(chosen: Map<string, Entry>, role: Role, kinds: Kind[]): string[] {
  const out: string[] = [];
  const server = chosen.get('dns.server');
  if (server && server.kind !== 'dns-failover') {
    out.push(
      `dns.server comes from DNS_SERVER of ${PROGRAM[server.kind]}, which only used it for lookups: failover-agent sends its TSIG-signed updates to dns.server and requires authoritative answers from it, so it must be the zone's primary server (leave dns.server out to use the zone's SOA MNAME)`,
    );
  }
  const record = chosen.get('dns.record');
  if (kinds.includes('dns-failover')) {
    const name = record ? String(record.value).replace(/\.$/, '') : '<record>';
    out.push(
      `the lease moves: dns_failover.py kept it as a TXT "owner=… exp=…" on ${name} itself; failover-agent keeps it at _lease.${name} ("v=1 holder=… epoch=… seq=…"). Allow the TSIG key to update _lease.${name} TXT on the DNS server, run "failoverctl init" once (on the primary), then delete the old TXT record on ${name}`,
    );
  }
  if (role === 'primary') {
    const listen = chosen.get('http.listen');
    if (listen && listen.rank === 0) {
      out.push(
        `http.listen = "${String(listen.value)}" (not the default 127.0.0.1:${AGENT_HTTP_PORT}) so that the DR's default health check reaches this agent's /healthz; allow TCP ${AGENT_HTTP_PORT} from the DR site only`,
      );
    }
    out.push(
      'collector: the original primary ran its collector always; failover-agent stops it while DNS names the DR (collector.mode = "when-active", so a returning primary does not scrape beside an active DR). Add collector.mode = "always" under [collector] to keep the old behaviour',
    );
  }
  if (role === 'dr' && kinds.includes('dns-failover') && !chosen.has('health.targets')) {
    out.push(
      `health.targets is left at its default, the primary agent's http://<sites.primary>:${AGENT_HTTP_PORT}/healthz (dns_failover.py checked tcp://HEALTH_HOST:6514 when HEALTH_* was not set): the primary's http.listen must be reachable from this site`,
    );
  }
  return out;
}

function keyFileWarning(t: TsigFacts): string {
  const name = t.name && /^[A-Za-z0-9_.-]+$/.test(t.name) ? t.name : 'failover';
  const alg = t.algorithm === 'hmac-sha512' ? 'hmac-sha512' : 'hmac-sha256';
  const ways: string[] = [];
  if (t.oldKeyFiles.length > 0) {
    ways.push(
      `copy the old key file (TSIG_KEYFILE=${t.oldKeyFiles[0]} inside the old container) if it is in the format below (a K*.private file from dnssec-keygen is not: copy its Key: value into secret): install -o root -g failover-agent -m 0640 OLD_FILE ${KEY_FILE}`,
    );
  }
  if (t.secretVars.length > 0) {
    ways.push(`write the old secret (${t.secretVars.join(', ')} in the env file; it was NOT copied) into a file in the format below`);
  }
  ways.push(`make a new key: tsig-keygen -a ${alg} ${name} > ${KEY_FILE} (and give the DNS server the same key)`);
  const lines = [
    `dns.key_file = "${KEY_FILE}": the TOML never holds the TSIG secret. Create the key file before starting the agent:`,
    ...ways.map((w, i) => `  - ${i > 0 ? 'or ' : ''}${w}`),
    'The file must be in BIND\'s format, exactly as tsig-keygen writes it:',
    `  key "${name}" {`,
    `  \talgorithm ${alg};`,
    '  \tsecret "<base64 secret>";',
    '  };',
    `then: chown root:failover-agent ${KEY_FILE} && chmod 0640 ${KEY_FILE}`,
  ];
  if (t.algorithm !== undefined && t.algorithm !== 'hmac-sha256' && t.algorithm !== 'hmac-sha512') {
    lines.push(`The old algorithm ${t.algorithm} is not supported (hmac-sha256 or hmac-sha512 only): make a new key.`);
  }
  return lines.join('\n');
}

/** Which variables would set a key, for messages about validation issues. */
const HINTS: Record<string, string> = {
  role: 'ROLE or --role',
  'sites.primary': 'PRIMARY_IP (or MY_IP on the primary)',
  'sites.dr': 'DR_IP (or MY_IP on the DR)',
  'dns.record': 'DNS_RECORD',
};

function issueWarning(issue: ConfigIssue, chosen: Map<string, Entry>, role: Role): string {
  const e = chosen.get(issue.key) ?? chosen.get(issue.key.replace(/\.\d+$/, ''));
  let from = '';
  if (e && e.variable !== '') from = ` (from ${e.variable}${e.file ? `, ${path.basename(e.file)}` : ''})`;
  else if (HINTS[issue.key]) from = ` (set ${HINTS[issue.key]} in the env file, or edit ${role}.toml)`;
  return `the generated TOML does not validate: ${issue.key !== '' ? `${issue.key}: ` : ''}${issue.message}${from}`;
}

// ---------------------------------------------------------------------------------------------
// TOML output

/** SPEC §8 order of tables and keys. */
const LAYOUT: [string, string[]][] = [
  ['', ['role']],
  ['sites', ['primary', 'dr']],
  ['dns', ['record', 'zone', 'server', 'key_file', 'record_ttl', 'lease_name', 'timeout', 'retries']],
  ['lease', ['ttl', 'renew_interval', 'max_skew']],
  ['health', ['targets', 'expect', 'require', 'interval', 'timeout', 'failures']],
  ['collector', ['control', 'unit', 'mode', 'interval', 'self_fence']],
  ['vmsync', ['enabled', 'local_url', 'remote_url', 'interval', 'bucket', 'settle', 'lookback', 'max_chunk', 'concurrency', 'clean_checks', 'format', 'device_label']],
  ['notify', ['webhook']],
  ['http', ['listen']],
  ['log', ['level']],
];

/** A TOML basic string. */
export function tomlString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

function tomlValue(v: Value): string {
  if (typeof v === 'string') return tomlString(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return `[${v.map(tomlString).join(', ')}]`;
}

/** A comment's text on one line. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

function renderBody(chosen: Map<string, Entry>, multi: boolean): string {
  const out: string[] = [];
  for (const [table, keys] of LAYOUT) {
    const lines: string[] = [];
    for (const k of keys) {
      const e = chosen.get(table === '' ? k : `${table}.${k}`);
      if (!e) continue;
      const note = e.note ?? e.variable;
      const where = multi && e.file && e.note === undefined ? ` (${path.basename(e.file)})` : '';
      lines.push(`${k} = ${tomlValue(e.value)}${note ? `  # ${oneLine(note)}${where}` : ''}`);
    }
    if (lines.length === 0) continue;
    if (table !== '') out.push('', `[${table}]`);
    out.push(...lines);
  }
  return `${out.join('\n')}\n`;
}

function renderHeader(
  files: { file: string; kind: Kind }[],
  role: Role,
  roleHow: string,
  unmapped: ImportResult['unmapped'],
  warnings: string[],
): string {
  const c = (s = '') => (s === '' ? '#' : `# ${oneLine(s)}`);
  const out = [
    c('failover-agent configuration written by "failoverctl import-env" from the original system:'),
    ...files.map((f) => c(`  ${f.file} (${PROGRAM[f.kind]})`)),
    c(`role: ${roleHow}`),
    c(`Only the settings found there are set; every other key keeps its default (see ${role}.toml.example).`),
    c(`Review it, install it as /etc/failover-agent/${role}.toml (root:failover-agent, 0640) and run "failoverctl --instance ${role} check-config".`),
  ];
  if (unmapped.length > 0) {
    out.push(c(), c('Not mapped:'));
    for (const u of unmapped) out.push(c(`  ${u.variable}: ${u.reason}`));
  }
  if (warnings.length > 0) {
    out.push(c(), c('Notes:'));
    for (const w of warnings) {
      const [first, ...rest] = w.split('\n');
      out.push(c(`- ${first}`), ...rest.map((l) => `#   ${l}`.replace(/\s+$/, '')));
    }
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// The command

export interface ImportEnvArgs {
  /** The env file. */
  file: string;
  /** More env files of the same site (e.g. `.env.dr` plus `.env.otel-watcher`), merged in. */
  more?: string[];
  role?: string;
  json: boolean;
}

/**
 * `failoverctl import-env FILE [FILE...] [--role primary|dr]`: the TOML on stdout (or
 * `{ toml, mapped, unmapped, warnings }` with --json); each unmapped variable and each warning
 * one line on `stderr` (human mode). Exit 0, or 78 when the TOML still has validation issues
 * (it is printed all the same, to be completed by hand) or a file cannot be read or parsed.
 */
export async function importEnvCommand(args: ImportEnvArgs, out: Output, stderr: NodeJS.WritableStream): Promise<number> {
  if (typeof args.file !== 'string' || args.file === '') {
    throw new AgentError('USAGE', 'import-env needs the env file: failoverctl import-env FILE [FILE...] [--role primary|dr]', ExitCode.REFUSED);
  }
  if (args.role !== undefined && args.role !== 'primary' && args.role !== 'dr') {
    throw new AgentError('USAGE', `--role must be "primary" or "dr", got "${args.role}"`, ExitCode.REFUSED);
  }
  const files = [args.file, ...(args.more ?? [])];
  const inputs = files.map((file) => ({ file, vars: parseEnvFile(readEnvFile(file), file) }));
  const result = importEnvFiles(inputs, { role: args.role as Role | undefined });
  const valid = validateConfig(result.toml, 'import-env.toml').issues.length === 0;

  out.result(result.toml, { toml: result.toml, mapped: result.mapped, unmapped: result.unmapped, warnings: result.warnings });
  if (!args.json) {
    for (const u of result.unmapped) stderr.write(`failoverctl: warning: ${u.variable} not mapped: ${u.reason}\n`);
    for (const w of result.warnings) {
      const [first, ...rest] = w.split('\n');
      stderr.write(`failoverctl: warning: ${first}\n${rest.map((l) => `  ${l}\n`).join('')}`);
    }
  }
  return valid ? ExitCode.OK : ExitCode.CONFIG;
}

function readEnvFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason = e.code === 'ENOENT' ? 'file not found' : `cannot read: ${e.message}`;
    throw new ConfigError([{ file, key: '', message: reason }], undefined, 'CONFIG_UNREADABLE');
  }
}
