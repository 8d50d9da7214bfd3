/**
 * The configuration schema of SPEC §8 and the typed `Config` it produces.
 *
 * Each section is validated on its own (strict zod objects: unknown keys are errors) so that one
 * broken section does not hide the problems of another; cross-key checks run on every section
 * that parsed. The result is a list of problems with key paths; load.ts adds file and line.
 */
import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';

import { AgentError, ExitCode } from '../errors.js';
import { SYSLOG_LEVELS, type LogLevel } from '../log/logger.js';
import { formatDuration, MAX_TIMER_MS, parseDuration } from './duration.js';

export interface HostPort {
  /** Hostname (lowercase) or IP address; IPv6 without brackets. */
  host: string;
  port: number;
}

/**
 * The validated configuration. Names and nesting are those of the TOML file (snake_case), with
 * every default applied and values in usable form:
 * - every duration is a number of MILLISECONDS (`lease.ttl = "30s"` → `30000`), including
 *   `dns.record_ttl` (a whole number of seconds; divide by 1000 for the wire);
 * - DNS names are lowercase without a trailing dot; IPs are in canonical form;
 * - `dns.server` is parsed (port 53 by default) or undefined (use the zone's SOA MNAME);
 * - `http.listen` is parsed (port 9465 by default) or null when set to "" (listener disabled);
 * - `dns.key_file` and `dns.gss.keytab` are absolute (a relative path is taken from the config file's
 *   directory); exactly one is set, as `dns.auth` says;
 * - URLs lose trailing slashes so paths can be appended.
 */
export interface Config {
  /** Absolute path of the file this was read from. */
  file: string;
  /** Instance name: the file's basename without `.toml` (`dr.toml` → `dr`). */
  instance: string;
  role: Role;
  sites: { primary: string; dr: string };
  dns: {
    record: string;
    /** undefined: found from the SOA of the record. */
    zone: string | undefined;
    /** undefined: the zone's SOA MNAME, port 53. */
    server: HostPort | undefined;
    /** How requests are signed and answers verified (SPEC §2a): HMAC TSIG with key_file, or GSS-TSIG with gss. */
    auth: DnsAuth;
    /** auth "tsig": the TSIG key file; undefined with "gss-tsig". */
    key_file: string | undefined;
    /** auth "gss-tsig": the Kerberos identity; undefined with "tsig". */
    gss: GssConfig | undefined;
    record_ttl: number;
    lease_name: string;
    /** TXT record of the pause and the last automatic handover (default `_control.<record>`). */
    control_name: string;
    timeout: number;
    retries: number;
    /** Authoritative servers whose answers are verified after each write; empty: the zone's NS set, port 53. */
    verify_servers: HostPort[];
    verify_interval: number;
    propagation_timeout: number;
  };
  lease: { ttl: number; renew_interval: number; max_skew: number };
  health: {
    targets: string[];
    /** "" (the default): a 2xx answer is enough; else an http(s) target is healthy only if the 2xx body contains this substring. */
    expect: string;
    require: 'any' | 'all';
    interval: number;
    timeout: number;
    failures: number;
    /** The other site's agent (/healthz): is it ready to collect? Asked before an automatic handover. */
    peer_targets: string[];
  };
  collector: {
    control: 'systemd' | 'none';
    unit: string;
    mode: 'when-active' | 'always';
    interval: number;
    self_fence: boolean;
    /** Hand the job to the other site when this site's collector is broken. */
    handover: boolean;
    /** More restarts than this within handover_after: broken. */
    restart_limit: number;
    handover_after: number;
    /** No automatic handover back within this long after one (ms). */
    handover_hold: number;
    /** "" (none), or an http(s):// or tcp:// target checked every collector.interval. */
    probe: string;
  };
  vmsync: {
    enabled: boolean;
    /** This site's VM for reads (query, export); may carry a path prefix (VM cluster: vmselect). */
    local_url: string;
    /**
     * This site's VM for writes (import, force_flush). The TOML default "" means "same as
     * local_url" and is resolved here, so this is always a URL (VM cluster: vminsert).
     */
    local_write_url: string;
    remote_url: string;
    interval: number;
    bucket: number;
    settle: number;
    lookback: number;
    max_chunk: number;
    /** Export → import streams a repair runs at once. */
    concurrency: number;
    clean_checks: number;
    format: 'json' | 'native';
    /** The label that names a device (`sum by (<label>)`, `match[]` on it); "" turns naming and targeted repair off. */
    device_label: string;
  };
  notify: { webhook: string };
  http: { listen: HostPort | null };
  log: { level: LogLevel };
}

export type Role = 'primary' | 'dr';

export const DNS_AUTHS = ['tsig', 'gss-tsig'] as const;
export type DnsAuth = (typeof DNS_AUTHS)[number];

/** `[dns.gss]`: GSS-TSIG (RFC 3645) with Kerberos credentials from a keytab. */
export interface GssConfig {
  /** The client principal, e.g. failover-agent@EXAMPLE.COM (the server's update policy names it). */
  principal: string;
  /** Absolute path of the keytab holding `principal`'s keys (same checks as dns.key_file). */
  keytab: string;
  /** The DNS server's service principal; undefined: `DNS/<the zone's SOA MNAME>`, found at start (as nsupdate -g). */
  server_principal: string | undefined;
}

/** A problem found in the parsed TOML; `missing` marks a required key that is absent. */
export interface Problem {
  path: (string | number)[];
  message: string;
  missing?: boolean;
}

export const DEFAULT_DNS_PORT = 53;
export const DEFAULT_HTTP_PORT = 9465;
export const DEFAULT_VM_PORT = 8428;
export const DEFAULT_COLLECTOR_UNIT = 'otelcol-contrib.service';

// ---------------------------------------------------------------------------------------------
// Field schemas

interface DurationOpts {
  /** Smallest allowed value in ms (default 1: zero makes no sense for intervals and timeouts). */
  min?: number;
  /** Largest allowed value in ms (default: Node's timer limit; pass Infinity for non-timer keys). */
  max?: number;
  /** The value must be a whole number of seconds. */
  wholeSeconds?: boolean;
}

const durationType = z.string({
  error: (iss) => (iss.input === undefined ? undefined : `expected a duration string like "10s", got ${describeValue(iss.input)}`),
});

function duration(def: string, opts: DurationOpts = {}) {
  const { min = 1, max = MAX_TIMER_MS, wholeSeconds = false } = opts;
  return durationType
    .transform((s, ctx) => {
      let ms: number;
      try {
        ms = parseDuration(s);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
      let why: string | undefined;
      if (ms < min) why = min === 1 ? 'must be longer than 0s' : `must be at least ${formatDuration(min)}, got "${s}"`;
      else if (ms > max) {
        const note = max === MAX_TIMER_MS ? ' (the longest timer Node.js supports)' : '';
        why = `must be at most ${formatDuration(max)}${note}, got "${s}"`;
      } else if (wholeSeconds && ms % 1000 !== 0) why = `must be a whole number of seconds, got "${s}"`;
      if (why) ctx.addIssue({ code: 'custom', message: why });
      return ms;
    })
    .prefault(def);
}

/** An IPv4 or IPv6 address, returned in canonical form (IPv6 lowercase and compressed). */
const ipAddress = z.string().transform((s, ctx) => {
  const ip = canonicalIp(s);
  if (ip === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an IPv4 or IPv6 address` });
    return z.NEVER;
  }
  return ip;
});

/** A DNS name: lowercased, trailing dot dropped. */
const dnsName = z.string().transform((s, ctx) => {
  const name = normaliseName(s);
  const why = dnsNameProblem(name);
  if (why) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a valid DNS name: ${why}` });
    return z.NEVER;
  }
  return name;
});

function hostPort(defaultPort: number) {
  return z.string().transform((s, ctx) => {
    const r = parseHostPort(s, defaultPort);
    if (typeof r === 'string') {
      ctx.addIssue({ code: 'custom', message: r });
      return z.NEVER;
    }
    return r;
  });
}

const httpUrl = () =>
  z.string().transform((s, ctx) => {
    const why = httpUrlProblem(s);
    if (why) {
      ctx.addIssue({ code: 'custom', message: why });
      return z.NEVER;
    }
    return s.replace(/\/+$/, '');
  });

const healthTarget = z.string().superRefine((s, ctx) => {
  const why = healthTargetProblem(s);
  if (why) ctx.addIssue({ code: 'custom', message: why });
});

// systemd unit names: letters, digits, ":-_.\" and one "@" for templates; the collector is a service.
const unitName = z
  .string()
  .regex(/^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.service$/, {
    message: 'must be a systemd service unit name like "otelcol-contrib.service"',
  });

const integerType = z.int({
  error: (iss) =>
    iss.code === 'invalid_type' && iss.input !== undefined ? `expected an integer, got ${describeValue(iss.input)}` : undefined,
});

const count = (min: number, max: number, def: number) =>
  integerType
    .min(min)
    .max(max)
    .default(def);

// ---------------------------------------------------------------------------------------------
// Sections (TOML names are the public interface: SPEC §8)

const sections = {
  sites: z.strictObject({
    primary: ipAddress,
    dr: ipAddress,
  }),
  dns: z.strictObject({
    record: dnsName,
    zone: dnsName.optional(),
    server: hostPort(DEFAULT_DNS_PORT).optional(),
    auth: z.enum(DNS_AUTHS).default('tsig'),
    // Exactly one of key_file and [dns.gss], as auth says (crossChecks).
    key_file: z.string().min(1, { message: 'must not be empty' }).optional(),
    gss: z
      .strictObject({
        principal: z.string().regex(/^[^\s@]+@[^\s@]+$/, { message: 'must be a Kerberos principal with its realm, like "failover-agent@EXAMPLE.COM"' }),
        keytab: z.string().min(1, { message: 'must not be empty' }),
        server_principal: z.string().regex(/^[^\s@/]+\/[^\s@/]+(@[^\s@]+)?$/, { message: 'must be a service principal like "DNS/ns1.example.com"' }).optional(),
      })
      .optional(),
    // DNS TTLs are whole seconds, at most 2^31-1 (RFC 2181 §8).
    record_ttl: duration('30s', { min: 0, max: (2 ** 31 - 1) * 1000, wholeSeconds: true }),
    lease_name: dnsName.optional(),
    control_name: dnsName.optional(),
    timeout: duration('2s'),
    retries: count(0, 10, 2),
    // Propagation checks (informational only: never an input to a decision).
    verify_servers: z.array(hostPort(DEFAULT_DNS_PORT)).default([]),
    verify_interval: duration('60s', { min: 1000 }),
    propagation_timeout: duration('30s', { min: 1000 }),
  }),
  lease: z.strictObject({
    ttl: duration('30s'),
    renew_interval: duration('10s'),
    max_skew: duration('5s', { min: 0 }),
  }),
  health: z.strictObject({
    targets: z.array(healthTarget).min(1, { message: 'needs at least one target (or leave the key out for the default)' }).optional(),
    expect: z.string().default(''),
    require: z.enum(['any', 'all']).default('any'),
    interval: duration('10s'),
    timeout: duration('3s'),
    failures: count(1, Number.MAX_SAFE_INTEGER, 3),
    peer_targets: z.array(healthTarget).min(1, { message: 'needs at least one target (or leave the key out for the default)' }).optional(),
  }),
  collector: z.strictObject({
    control: z.enum(['systemd', 'none']).default('systemd'),
    unit: unitName.default(DEFAULT_COLLECTOR_UNIT),
    mode: z.enum(['when-active', 'always']).default('when-active'),
    interval: duration('5s'),
    self_fence: z.boolean().default(false),
    handover: z.boolean().default(true),
    restart_limit: count(0, 1000, 3),
    handover_after: duration('30s', { min: 1000 }),
    handover_hold: duration('30m', { min: 0, max: Infinity }),
    probe: z.union([z.literal(''), healthTarget]).default(''),
  }),
  vmsync: z.strictObject({
    enabled: z.boolean().default(false),
    local_url: httpUrl().prefault(`http://127.0.0.1:${DEFAULT_VM_PORT}`),
    // "" (the default): writes go to local_url too (single-node VM).
    local_write_url: z
      .string()
      .default('')
      .transform((s, ctx) => {
        if (s === '') return '';
        const why = httpUrlProblem(s);
        if (why) {
          ctx.addIssue({ code: 'custom', message: `must be "" (write to local_url) or an http(s) URL: ${why}` });
          return z.NEVER;
        }
        return s.replace(/\/+$/, '');
      }),
    remote_url: httpUrl().optional(),
    interval: duration('120s'),
    // Query window arithmetic (bucket, settle, lookback, max_chunk) is not timer-driven: no timer cap.
    bucket: duration('60s', { min: 1000, max: Infinity, wholeSeconds: true }),
    settle: duration('120s', { min: 0, max: Infinity }),
    lookback: duration('24h', { max: Infinity }),
    max_chunk: duration('6h', { max: Infinity }),
    concurrency: count(1, 16, 2),
    clean_checks: count(1, Number.MAX_SAFE_INTEGER, 3),
    format: z.enum(['json', 'native']).default('json'),
    device_label: z
      .string()
      .regex(/^(|[a-zA-Z_][a-zA-Z0-9_]*)$/, { message: 'must be a label name ([a-zA-Z_][a-zA-Z0-9_]*) or "" (no device naming: every repair exports every series)' })
      .refine((s) => !s.startsWith('__'), { message: 'labels starting with "__" are reserved by Prometheus and VictoriaMetrics' })
      .default('instance'),
  }),
  notify: z.strictObject({
    webhook: z
      .string()
      .default('')
      .superRefine((s, ctx) => {
        const why = s === '' ? undefined : httpUrlProblem(s);
        if (why) ctx.addIssue({ code: 'custom', message: `must be "" (no webhook) or an http(s) URL: ${why}` });
      }),
  }),
  http: z.strictObject({
    listen: z
      .string()
      .default(`127.0.0.1:${DEFAULT_HTTP_PORT}`)
      .transform((s, ctx): HostPort | null => {
        if (s === '') return null;
        const r = parseHostPort(s, DEFAULT_HTTP_PORT);
        if (typeof r === 'string') {
          ctx.addIssue({ code: 'custom', message: `${r} (use "" to disable the listener)` });
          return z.NEVER;
        }
        return r;
      }),
  }),
  log: z.strictObject({
    level: z.enum(SYSLOG_LEVELS).default('info'),
  }),
};

type SectionName = keyof typeof sections;
type Sections = { [K in SectionName]: z.output<(typeof sections)[K]> };

const SECTION_NAMES = Object.keys(sections) as SectionName[];
const role = z.enum(['primary', 'dr']);

/** Known keys per table, for "did you mean" hints. */
export const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': ['role', ...SECTION_NAMES],
  ...Object.fromEntries(SECTION_NAMES.map((s) => [s, Object.keys(sections[s].shape)])),
  // Sub-tables: a key of its parent's list is a table of its own here.
  'dns.gss': Object.keys(sections.dns.shape.gss.unwrap().shape),
};

// ---------------------------------------------------------------------------------------------
// Validation

/** Validate a parsed TOML document (`raw`) read from `file`. */
export function checkConfig(raw: Record<string, unknown>, file: string): { config?: Config; problems: Problem[] } {
  const problems: Problem[] = [];
  const parsed: Partial<Sections> = {};
  let roleValue: Role | undefined;

  for (const key of Object.keys(raw)) {
    if (key === 'role' || (SECTION_NAMES as string[]).includes(key)) continue;
    problems.push({ path: [key], message: unknownKeyMessage('', key, isTable(raw[key])) });
  }

  const r = role.safeParse(raw.role, { error: errorMap });
  if (r.success) roleValue = r.data;
  else problems.push(...zodProblems(r.error, ['role'], raw));

  for (const name of SECTION_NAMES) {
    const value = raw[name];
    if (value !== undefined && !isTable(value)) {
      problems.push({ path: [name], message: `expected a table ([${name}]), got ${describeValue(value)}` });
      continue;
    }
    const res = sections[name].safeParse(value ?? {}, { error: errorMap });
    if (res.success) (parsed as Record<string, unknown>)[name] = res.data;
    else problems.push(...zodProblems(res.error, [name], raw));
  }

  problems.push(...crossChecks(parsed), ...authChecks(raw.dns));

  if (problems.length > 0 || roleValue === undefined) return { problems };
  const s = parsed as Sections;
  return { config: assemble(roleValue, s, file), problems };
}

function assemble(roleValue: Role, s: Sections, file: string): Config {
  const abs = path.resolve(file);
  const other = roleValue === 'primary' ? s.sites.dr : s.sites.primary;
  const { dns, health, vmsync } = s;
  return {
    file: abs,
    instance: instanceFromPath(abs),
    role: roleValue,
    sites: s.sites,
    dns: {
      record: dns.record,
      zone: dns.zone,
      server: dns.server,
      auth: dns.auth,
      key_file: dns.key_file === undefined ? undefined : path.resolve(path.dirname(abs), dns.key_file),
      gss:
        dns.gss === undefined
          ? undefined
          : { principal: dns.gss.principal, keytab: path.resolve(path.dirname(abs), dns.gss.keytab), server_principal: dns.gss.server_principal },
      record_ttl: dns.record_ttl,
      lease_name: dns.lease_name ?? `_lease.${dns.record}`,
      control_name: dns.control_name ?? `_control.${dns.record}`,
      timeout: dns.timeout,
      retries: dns.retries,
      verify_servers: dns.verify_servers,
      verify_interval: dns.verify_interval,
      propagation_timeout: dns.propagation_timeout,
    },
    lease: s.lease,
    health: {
      // SPEC §5: by default the DR watches the primary agent's own /healthz.
      targets: health.targets ?? [`http://${urlHost(s.sites.primary)}:${DEFAULT_HTTP_PORT}/healthz`],
      expect: health.expect,
      require: health.require,
      interval: health.interval,
      timeout: health.timeout,
      failures: health.failures,
      // The other site's agent on the port this one listens on (both sites run the same setup).
      peer_targets: health.peer_targets ?? [`http://${urlHost(other)}:${s.http.listen?.port ?? DEFAULT_HTTP_PORT}/healthz`],
    },
    collector: s.collector,
    vmsync: {
      enabled: vmsync.enabled,
      local_url: vmsync.local_url,
      local_write_url: vmsync.local_write_url === '' ? vmsync.local_url : vmsync.local_write_url,
      // Default: the other site's VictoriaMetrics on its usual port.
      remote_url: vmsync.remote_url ?? `http://${urlHost(other)}:${DEFAULT_VM_PORT}`,
      interval: vmsync.interval,
      bucket: vmsync.bucket,
      settle: vmsync.settle,
      lookback: vmsync.lookback,
      max_chunk: vmsync.max_chunk,
      concurrency: vmsync.concurrency,
      clean_checks: vmsync.clean_checks,
      format: vmsync.format,
      device_label: vmsync.device_label,
    },
    notify: s.notify,
    http: s.http,
    log: s.log,
  };
}

/**
 * The two ways to sign are exclusive: exactly the one dns.auth names is configured. Judged on the
 * raw [dns] table (only presence matters), so a key_file missing is reported beside the [dns]
 * table's other problems, as a required key is.
 */
function authChecks(rawDns: unknown): Problem[] {
  const dns = isTable(rawDns) ? rawDns : {};
  const auth = dns.auth ?? 'tsig';
  if (!(DNS_AUTHS as readonly unknown[]).includes(auth)) return []; // the enum reports it
  const hasKey = dns.key_file !== undefined;
  const hasGss = dns.gss !== undefined;
  const missing = (why: string): string => (isTable(rawDns) ? `required key is missing (${why})` : 'required key is missing (and there is no [dns] table)');
  const out: Problem[] = [];
  if (auth === 'tsig') {
    if (!hasKey) out.push({ path: ['dns', 'key_file'], message: missing('dns.auth = "tsig", the default, signs with a TSIG key file'), missing: true });
    if (hasGss) out.push({ path: ['dns', 'gss'], message: '[dns.gss] is for dns.auth = "gss-tsig"; with "tsig" (the default) requests are signed with dns.key_file: set auth = "gss-tsig" or remove [dns.gss]' });
  } else {
    if (hasKey) out.push({ path: ['dns', 'key_file'], message: 'must not be set with dns.auth = "gss-tsig" (the two are exclusive: GSS-TSIG signs with the [dns.gss] principal and keytab)' });
    if (!hasGss) out.push({ path: ['dns', 'gss'], message: missing('dns.auth = "gss-tsig" needs a [dns.gss] table with principal and keytab'), missing: true });
  }
  return out;
}

/** Checks that involve more than one key; only sections that parsed take part. */
function crossChecks(p: Partial<Sections>): Problem[] {
  const out: Problem[] = [];
  if (p.sites) {
    const { primary, dr } = p.sites;
    if (primary === dr) {
      out.push({ path: ['sites', 'dr'], message: `must differ from sites.primary (both are ${dr})` });
    } else if (net.isIP(primary) !== net.isIP(dr)) {
      // One failover record holds one RRset type: both sites must be A or both AAAA.
      out.push({ path: ['sites', 'dr'], message: `must be the same address family as sites.primary (IPv${net.isIP(primary)})` });
    }
  }
  if (p.dns) {
    const { zone, record, lease_name, control_name } = p.dns;
    if (zone !== undefined && !inZone(record, zone)) {
      out.push({ path: ['dns', 'record'], message: `"${record}" is not inside dns.zone "${zone}"` });
    }
    // The takeover update changes the A record and the lease in ONE message: same zone.
    if (zone !== undefined && lease_name !== undefined && !inZone(lease_name, zone)) {
      out.push({ path: ['dns', 'lease_name'], message: `"${lease_name}" is not inside dns.zone "${zone}"` });
    }
    // A handover moves the record, the lease and the control record in ONE message too.
    if (zone !== undefined && control_name !== undefined && !inZone(control_name, zone)) {
      out.push({ path: ['dns', 'control_name'], message: `"${control_name}" is not inside dns.zone "${zone}"` });
    }
    if (control_name !== undefined && [record, lease_name ?? `_lease.${record}`].includes(control_name)) {
      out.push({ path: ['dns', 'control_name'], message: `must differ from dns.record and dns.lease_name` });
    }
  }
  if (p.lease) {
    const { ttl, renew_interval, max_skew } = p.lease;
    if (max_skew >= ttl) {
      out.push({ path: ['lease', 'max_skew'], message: `must be shorter than lease.ttl (${formatDuration(ttl)}), got ${formatDuration(max_skew)}` });
    } else if (renew_interval >= ttl - max_skew) {
      out.push({
        path: ['lease', 'renew_interval'],
        message: `must be shorter than lease.ttl - lease.max_skew (${formatDuration(ttl)} - ${formatDuration(max_skew)} = ${formatDuration(ttl - max_skew)}), got ${formatDuration(renew_interval)}: the primary would count its own lease as lost between renewals`,
      });
    }
  }
  if (p.vmsync) {
    const { bucket, max_chunk, lookback } = p.vmsync;
    if (max_chunk < bucket) out.push({ path: ['vmsync', 'max_chunk'], message: `must be at least vmsync.bucket (${formatDuration(bucket)})` });
    if (lookback < bucket) out.push({ path: ['vmsync', 'lookback'], message: `must be at least vmsync.bucket (${formatDuration(bucket)})` });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// zod issues → problems

function zodProblems(err: z.ZodError, prefix: (string | number)[], raw: Record<string, unknown>): Problem[] {
  const out: Problem[] = [];
  for (const iss of err.issues) {
    const base = [...prefix, ...iss.path.map((k) => (typeof k === 'number' ? k : String(k)))];
    if (iss.code === 'unrecognized_keys') {
      const table = base.join('.');
      for (const key of iss.keys) {
        out.push({ path: [...base, key], message: unknownKeyMessage(table, key, isTable(valueAt(raw, [...base, key]))) });
      }
      continue;
    }
    const missing = (iss.code === 'invalid_type' || iss.code === 'invalid_value') && valueAt(raw, base) === undefined;
    const section = prefix[0];
    const message =
      missing && typeof section === 'string' && raw[section] === undefined && section !== 'role'
        ? `required key is missing (and there is no [${section}] table)`
        : iss.message;
    out.push(missing ? { path: base, message, missing } : { path: base, message });
  }
  return out;
}

const errorMap: z.core.$ZodErrorMap = (iss) => {
  if (iss.input === undefined && (iss.code === 'invalid_type' || iss.code === 'invalid_value')) return 'required key is missing';
  switch (iss.code) {
    case 'invalid_type':
      return `expected ${typeName(iss.expected)}, got ${describeValue(iss.input)}`;
    case 'invalid_value':
      return `must be one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}; got ${describeValue(iss.input)}`;
    case 'too_small':
      if (iss.origin === 'number' || iss.origin === 'int') return `must be at least ${iss.minimum}, got ${describeValue(iss.input)}`;
      return undefined;
    case 'too_big':
      if (iss.origin === 'number' || iss.origin === 'int') return `must be at most ${iss.maximum}, got ${describeValue(iss.input)}`;
      return undefined;
    default:
      return undefined;
  }
};

function typeName(expected: string): string {
  switch (expected) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'int':
      return 'an integer';
    case 'boolean':
      return 'a boolean (true or false)';
    case 'array':
      return 'an array';
    case 'object':
      return 'a table';
    default:
      return expected;
  }
}

/** A TOML-flavoured description of a parsed value, for messages. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `integer ${v}` : `float ${v}`;
  if (typeof v === 'bigint') return `integer ${v}`;
  if (typeof v === 'boolean') return `boolean ${v}`;
  if (v instanceof Date) return 'a date-time';
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  return String(v);
}

function unknownKeyMessage(table: string, key: string, isTableValue: boolean): string {
  const what = isTableValue ? 'table' : 'key';
  const hint = closest(key, KNOWN_KEYS[table] ?? []);
  return hint ? `unknown ${what}; did you mean "${hint}"?` : `unknown ${what}`;
}

/** The known name within edit distance 2 (or a case-insensitive match), if any. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

function valueAt(raw: unknown, p: readonly (string | number)[]): unknown {
  let v: unknown = raw;
  for (const k of p) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

export function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

// ---------------------------------------------------------------------------------------------
// Value helpers (exported for failoverctl and tests)

export function normaliseName(s: string): string {
  return s.trim().toLowerCase().replace(/\.$/, '');
}

/** Why `name` (already normalised) is not a usable DNS name, or undefined if it is. */
export function dnsNameProblem(name: string): string | undefined {
  if (name === '') return 'empty';
  if (name.length > 253) return 'longer than 253 characters';
  for (const label of name.split('.')) {
    if (label === '') return 'empty label';
    if (label.length > 63) return `label "${label}" is longer than 63 characters`;
    // Underscores are legal in DNS (and needed for _lease.*); hostnames proper are stricter.
    if (!/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(label)) return `label "${label}" has characters other than letters, digits, "-" and "_"`;
  }
  return undefined;
}

/** True when `name` is `zone` or below it (both normalised). */
export function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

/** Canonical text of an IP address (IPv6 lowercase, compressed), or undefined. Zone IDs are refused. */
export function canonicalIp(s: string): string | undefined {
  const family = net.isIP(s);
  if (family === 4) return s;
  if (family === 6 && !s.includes('%')) return new URL(`http://[${s}]/`).hostname.slice(1, -1);
  return undefined;
}

/** An IP or hostname as it goes into a URL (IPv6 in brackets). */
export function urlHost(host: string): string {
  return net.isIP(host) === 6 ? `[${host}]` : host;
}

/**
 * "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address → HostPort; a string explains
 * what is wrong.
 */
export function parseHostPort(s: string, defaultPort: number): HostPort | string {
  const t = s.trim();
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]*)\](?::(.*))?$/.exec(t);
  if (bracket) {
    host = bracket[1];
    portText = bracket[2];
    if (net.isIP(host) !== 6) return `"${s}": "${host}" in brackets is not an IPv6 address`;
  } else if (net.isIP(t) === 6) {
    host = t; // bare IPv6, no port
  } else {
    const i = t.lastIndexOf(':');
    if (i >= 0) {
      host = t.slice(0, i);
      portText = t.slice(i + 1);
      if (host.includes(':')) return `"${s}": write IPv6 with a port as "[addr]:port"`;
    } else {
      host = t;
    }
  }
  if (host === '') return `"${s}": missing host`;
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      return `"${s}": port must be a number from 1 to 65535`;
    }
    port = Number(portText);
  }
  const ip = canonicalIp(host);
  if (ip !== undefined) return { host: ip, port };
  const name = normaliseName(host);
  const why = dnsNameProblem(name);
  if (why) return `"${s}": "${host}" is not an IP address or host name (${why})`;
  return { host: name, port };
}

function httpUrlProblem(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `"${s}" is not a URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `"${s}" must start with http:// or https://`;
  if (u.hostname === '') return `"${s}" has no host`;
  return undefined;
}

function healthTargetProblem(s: string): string | undefined {
  if (/^https?:\/\//i.test(s)) {
    const why = httpUrlProblem(s);
    return why ? `health target ${why}` : undefined;
  }
  if (/^tcp:\/\//i.test(s)) {
    const r = parseHostPort(s.slice('tcp://'.length), 0);
    if (typeof r === 'string') return `health target ${r}`;
    if (r.port === 0) return `health target "${s}" needs a port (tcp://host:port)`;
    return undefined;
  }
  return `health target "${s}" must be http://…, https://… or tcp://host:port`;
}

// ---------------------------------------------------------------------------------------------
// Instance names ↔ files (SPEC §8 command-line contract)

export const DEFAULT_CONFIG_DIR = '/etc/failover-agent';

/** `/etc/failover-agent/<name>.toml`. Throws on names that could escape the directory. */
export function configPathForInstance(name: string, dir = DEFAULT_CONFIG_DIR): string {
  if (name === '' || name === '.' || name === '..' || /[/\0]/.test(name)) {
    throw new InstanceNameError(name);
  }
  return path.join(dir, `${name}.toml`);
}

/** Instance name of a config file: its basename without `.toml`. */
export function instanceFromPath(file: string): string {
  return path.basename(file, '.toml');
}

export class InstanceNameError extends AgentError {
  constructor(readonly instance: string) {
    super('INSTANCE_INVALID', `invalid instance name "${instance}" (it names /etc/failover-agent/<instance>.toml)`, ExitCode.CONFIG);
  }
}
