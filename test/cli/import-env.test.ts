/**
 * failoverctl import-env: the original system's env files (seeds/000: dns_failover.py's .env.primary
 * / .env.dr and otel_watcher.py's .env.otel-watcher; seeds/002: vm_sync.py's .env) → a TOML config
 * that the agent's own validation accepts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'smol-toml';
import { afterAll, describe, expect, test } from 'vitest';

import {
  CONTAINER_REASON,
  importEnv,
  importEnvCommand,
  importEnvFiles,
  KEY_FILE,
  parseEnvFile,
  tomlString,
  type ImportResult,
} from '../../src/cli/import-env.js';
import { Output } from '../../src/cli/output.js';
import { ConfigError, validateConfig, type Config } from '../../src/config/load.js';
import { ExitCode, exitCodeOf } from '../../src/errors.js';

// ---------------------------------------------------------------------------------------------
// Fixtures, as the original's setup.py / documentation wrote them.

const TSIG_SECRET = 'c2VjcmV0LWZvci10aGUtb2xkLWRucy1mYWlsb3Zlci0xMjM0NTY3OA==';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY';

/** dns_failover.py on the primary, BIND with TSIG (seeds/000 step 2). */
const ENV_PRIMARY = `# AST DNS Failover - primary site (written by setup.py)
ROLE=primary
DNS_PROVIDER=bind-tsig
DNS_SERVER=10.10.1.53
DNS_ZONE=example.com
DNS_RECORD=syslog.example.com
DNS_TTL=30
PRIMARY_IP=10.10.10.10
DR_IP=10.20.20.20
MY_IP=10.10.10.10
LEASE_TTL=60
UPDATE_INTERVAL=10
TSIG_KEYFILE=/secrets/tsig.key
`;

/** dns_failover.py on the DR: TCP health check, key name and secret carried in the env file. */
const ENV_DR = `# AST DNS Failover - DR site
export ROLE=dr
DNS_PROVIDER=bind-tsig
DNS_SERVER=10.10.1.53
DNS_ZONE=example.com
DNS_RECORD=syslog.example.com
DNS_TTL=30
PRIMARY_IP=10.10.10.10
DR_IP=10.20.20.20
MY_IP=10.20.20.20

# timing
LEASE_TTL=60
CHECK_INTERVAL=10
FAIL_THRESHOLD=3

# health check of the primary
HEALTH_MODE=tcp
HEALTH_HOST=10.10.10.10
HEALTH_PORT=6514
HEALTH_TIMEOUT=2

TSIG_KEYFILE=/secrets/tsig.key
TSIG_KEY_NAME=failover
TSIG_ALGORITHM=hmac-sha256
TSIG_SECRET="${TSIG_SECRET}"
`;

/** dns_failover.py on the DR as its technical documentation shows it: metrics health mode, Route 53. */
const ENV_DR_METRICS = `ROLE=dr
DNS_PROVIDER=route53
DNS_ZONE=example.com
DNS_RECORD=failover.example.com
DNS_TTL=30
PRIMARY_IP=192.168.100.144
DR_IP=192.168.100.143
LEASE_TTL=60
UPDATE_INTERVAL=30
FAIL_THRESHOLD=2
HEALTH_MODE=metrics
HEALTH_URL=http://192.168.100.144:8888/metrics
HEALTH_METRIC=otelcol_receiver_accepted_metric_points_total
HEALTH_STALE_COUNT=2
HEALTH_TIMEOUT=5
AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
AWS_SECRET_ACCESS_KEY=${AWS_SECRET}
ROUTE53_ZONE_ID=Z0123456789
`;

/** otel_watcher.py on the DR, exactly as seeds/000 step 3 creates it. */
const ENV_OTEL_WATCHER = `# DNS record to watch (same as failover)
DNS_RECORD=syslog.example.com

# This site's IP (DR)
MY_IP=10.20.20.20

# Optional: specific DNS server
DNS_SERVER=10.10.1.53

# Check interval
OTEL_CHECK_INTERVAL=15

# Command to start OTEL collector
OTEL_COMMAND=otelcol-contrib --config /etc/otel/config.yaml
`;

/** vm_sync.py's /opt/vm-sync/.env on the DR (seeds/002: required and optional settings). */
const ENV_VM_SYNC = `# vm-sync - DR site
ROLE=dr
LOCAL_VM_URL=http://127.0.0.1:8428
REMOTE_VM_URL=http://10.10.10.10:8428
DNS_RECORD=syslog.example.com
PRIMARY_IP=10.10.10.10
DR_IP=10.20.20.20

CHECK_INTERVAL=120
QUERY_WINDOW=3600
GAP_THRESHOLD=0.9
FAILBACK_CLEAN_CHECKS=3
NOTIFY_WEBHOOK=https://hooks.slack.com/services/T000/B000/XXXXXXXX
`;

// ---------------------------------------------------------------------------------------------
// Helpers

function run(text: string, file: string, role?: 'primary' | 'dr'): ImportResult {
  return importEnv(parseEnvFile(text, file), { file, role });
}

/** Validate the TOML exactly as the agent would; the test fails on any issue. */
function configOf(r: ImportResult): Config {
  const { config, issues } = validateConfig(r.toml, '/etc/failover-agent/test.toml');
  expect(issues).toEqual([]);
  expect(r.warnings.filter((w) => w.includes('does not validate'))).toEqual([]);
  return config!;
}

function tomlOf(r: ImportResult): Record<string, Record<string, unknown>> {
  return parse(r.toml) as Record<string, Record<string, unknown>>;
}

function unmappedNames(r: ImportResult): string[] {
  return r.unmapped.map((u) => u.variable);
}

/** Every variable of the file is either mapped or unmapped. */
function expectAccounted(r: ImportResult, text: string, file: string): void {
  const vars = [...parseEnvFile(text, file).keys()].sort();
  const seen = [...new Set([...r.mapped.map((m) => m.variable), ...r.unmapped.map((u) => u.variable)])].sort();
  expect(seen).toEqual(vars);
}

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'import-env-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'd'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

async function command(
  args: { file: string; more?: string[]; role?: string; json?: boolean },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = sink();
  const stderr = sink();
  const json = args.json ?? false;
  const out = new Output({ stdout: stdout.stream, stderr: stderr.stream }, () => json);
  let code: number;
  try {
    code = await importEnvCommand({ ...args, json }, out, stderr.stream);
  } catch (err) {
    // As failoverctl's guard does.
    code = exitCodeOf(err);
    out.error(err);
  }
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

// ---------------------------------------------------------------------------------------------

describe('parseEnvFile', () => {
  test('KEY=value, export, quotes, comments, blank lines, CRLF and a BOM', () => {
    const text = [
      '\uFEFF# a comment',
      '',
      '   # an indented comment',
      'PLAIN=value',
      'export EXPORTED=yes',
      'SPACED = around the equals sign  ',
      "SINGLE='literal \\n $HOME # not a comment'",
      'DOUBLE="say \\"hi\\" \\\\ tab\\tend"  # trailing comment',
      'INLINE=value # comment after whitespace',
      'HASH=abc#def',
      'EMPTY=',
      'OTEL_COMMAND=otelcol-contrib --config /etc/otel/config.yaml',
      'CRLF=windows\r',
      'PLAIN=later wins',
    ].join('\n');
    const vars = parseEnvFile(text, '.env');
    expect(Object.fromEntries(vars)).toEqual({
      PLAIN: 'later wins',
      EXPORTED: 'yes',
      SPACED: 'around the equals sign',
      SINGLE: 'literal \\n $HOME # not a comment',
      DOUBLE: 'say "hi" \\ tab\tend',
      INLINE: 'value',
      HASH: 'abc#def',
      EMPTY: '',
      OTEL_COMMAND: 'otelcol-contrib --config /etc/otel/config.yaml',
      CRLF: 'windows',
    });
  });

  test.each([
    ['a line without "="', 'GOOD=1\nJUST_A_NAME\n', 2, 'JUST_A_NAME has no "="'],
    ['a line that is not an assignment', 'GOOD=1\n\n- item: yes\n', 3, 'not a KEY=value line'],
    ['a bad variable name', '1BAD=x\n', 1, '"1BAD" is not a variable name'],
    ['a dash in the name', 'GOOD=1\nNOT-OK=x\n', 2, '"NOT-OK" is not a variable name'],
    ['an unterminated quote', 'A=1\nB=2\nTSIG_SECRET="abc\n', 3, 'TSIG_SECRET: the value\'s opening " is never closed'],
    ['text after the closing quote', "X='a' b\n", 1, 'unexpected text after the closing'],
    ['no name', '=value\n', 1, 'missing variable name'],
  ])('%s is a ConfigError naming file and line', (_what, text, line, message) => {
    let err: unknown;
    try {
      parseEnvFile(text, '/opt/dns-failover/.env.dr');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const ce = err as ConfigError;
    expect(ce.message).toContain(`/opt/dns-failover/.env.dr:${line}: `);
    expect(ce.message).toContain(message);
    expect(ce.issues[0]).toMatchObject({ file: '/opt/dns-failover/.env.dr', line });
    expect(exitCodeOf(err)).toBe(ExitCode.CONFIG);
  });

  test('the error never repeats the malformed line (it may hold a secret)', () => {
    expect(() => parseEnvFile(`TSIG_SECRET: ${TSIG_SECRET}\n`, '.env.dr')).toThrow(ConfigError);
    try {
      parseEnvFile(`TSIG_SECRET: ${TSIG_SECRET}\n`, '.env.dr');
    } catch (e) {
      expect((e as Error).message).not.toContain(TSIG_SECRET);
      expect((e as Error).message).toContain('.env.dr:1:');
    }
  });
});

describe('realistic env files → TOML with zero validation issues', () => {
  test('.env.primary', () => {
    const r = run(ENV_PRIMARY, '.env.primary');
    const c = configOf(r);
    expect(c.role).toBe('primary');
    expect(c.sites).toEqual({ primary: '10.10.10.10', dr: '10.20.20.20' });
    expect(c.dns).toMatchObject({
      record: 'syslog.example.com',
      zone: 'example.com',
      server: { host: '10.10.1.53', port: 53 },
      key_file: KEY_FILE,
      record_ttl: 30_000,
    });
    expect(c.lease).toMatchObject({ ttl: 60_000, renew_interval: 10_000 });
    // The primary listens on its site IP so the DR's default health check reaches /healthz.
    expect(c.http.listen).toEqual({ host: '10.10.10.10', port: 9465 });
    const t = tomlOf(r);
    expect(t.lease).toEqual({ ttl: '60s', renew_interval: '10s' });
    expect(t.health).toBeUndefined(); // UPDATE_INTERVAL is the renewal interval on the primary
    expect(r.unmapped).toEqual([]);
    expectAccounted(r, ENV_PRIMARY, '.env.primary');
    expect(r.mapped).toContainEqual({ variable: 'UPDATE_INTERVAL', key: 'lease.renew_interval' });
    expect(r.mapped).toContainEqual({ variable: 'TSIG_KEYFILE', key: 'dns.key_file' });
    // Migration notes the operator must act on.
    expect(r.warnings.some((w) => w.includes('collector.mode = "always"'))).toBe(true);
    expect(r.warnings.some((w) => w.includes('_lease.syslog.example.com'))).toBe(true);
  });

  test('.env.dr (CHECK_INTERVAL=10 → health.interval "10s", TCP health check)', () => {
    const r = run(ENV_DR, '.env.dr');
    const c = configOf(r);
    expect(c.role).toBe('dr');
    expect(c.sites).toEqual({ primary: '10.10.10.10', dr: '10.20.20.20' });
    expect(c.health).toMatchObject({ targets: ['tcp://10.10.10.10:6514'], interval: 10_000, timeout: 2_000, failures: 3 });
    expect(c.lease.ttl).toBe(60_000);
    const t = tomlOf(r);
    expect(t.health).toEqual({ targets: ['tcp://10.10.10.10:6514'], interval: '10s', timeout: '2s', failures: 3 });
    expect(t.dns!.key_file).toBe(KEY_FILE);
    expect(r.mapped).toContainEqual({ variable: 'CHECK_INTERVAL', key: 'health.interval' });
    for (const v of ['TSIG_KEYFILE', 'TSIG_KEY_NAME', 'TSIG_ALGORITHM', 'TSIG_SECRET', 'DNS_PROVIDER']) {
      expect(r.mapped).toContainEqual({ variable: v, key: 'dns.key_file' });
    }
    expect(r.unmapped).toEqual([]);
    expectAccounted(r, ENV_DR, '.env.dr');
    expect(tomlOf(r).http).toBeUndefined(); // only the primary needs its /healthz reachable
  });

  test('.env.dr as the technical documentation shows it (metrics health, Route 53)', () => {
    const r = run(ENV_DR_METRICS, '.env.dr');
    const c = configOf(r);
    expect(c.dns.record).toBe('failover.example.com');
    expect(c.health).toMatchObject({ targets: ['http://192.168.100.144:8888/metrics'], interval: 30_000, timeout: 5_000, failures: 2 });
    // One interval for both in dns_failover.py.
    expect(c.lease).toMatchObject({ ttl: 60_000, renew_interval: 30_000 });
    expect(unmappedNames(r).sort()).toEqual(
      ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'DNS_PROVIDER', 'HEALTH_METRIC', 'HEALTH_STALE_COUNT', 'ROUTE53_ZONE_ID'].sort(),
    );
    expect(r.unmapped.find((u) => u.variable === 'DNS_PROVIDER')!.reason).toContain('route53 provider is not supported');
    expectAccounted(r, ENV_DR_METRICS, '.env.dr');
    expect(r.warnings.some((w) => w.includes('HEALTH_MODE=metrics'))).toBe(true);
  });

  test('.env.otel-watcher with .env.dr: one DR config', () => {
    const r = importEnvFiles([
      { file: '.env.dr', vars: parseEnvFile(ENV_DR, '.env.dr') },
      { file: '.env.otel-watcher', vars: parseEnvFile(ENV_OTEL_WATCHER, '.env.otel-watcher') },
    ]);
    const c = configOf(r);
    expect(c.role).toBe('dr');
    expect(c.collector.interval).toBe(15_000);
    expect(c.health.interval).toBe(10_000);
    expect(tomlOf(r).collector).toEqual({ interval: '15s' });
    expect(unmappedNames(r)).toEqual(['OTEL_COMMAND']);
    expect(r.unmapped[0]!.reason.startsWith(CONTAINER_REASON)).toBe(true);
    // Same values in both files: no disagreement reported.
    expect(r.warnings.filter((w) => w.includes('differ'))).toEqual([]);
  });

  test('.env.otel-watcher alone: the DR by its file name; only the primary IP is missing', () => {
    const r = run(ENV_OTEL_WATCHER, '.env.otel-watcher');
    const t = tomlOf(r);
    expect(t.role).toBe('dr');
    expect(t.sites).toEqual({ dr: '10.20.20.20' }); // MY_IP
    expect(t.collector).toEqual({ interval: '15s' });
    expect(r.mapped).toContainEqual({ variable: 'MY_IP', key: 'sites.dr' });
    expect(r.mapped).toContainEqual({ variable: 'OTEL_CHECK_INTERVAL', key: 'collector.interval' });
    expect(r.unmapped).toEqual([
      { variable: 'OTEL_COMMAND', reason: `${CONTAINER_REASON} (the collector's command line belongs in that unit's ExecStart=)` },
    ]);
    expectAccounted(r, ENV_OTEL_WATCHER, '.env.otel-watcher');
    const { issues } = validateConfig(r.toml, 'dr.toml');
    expect(issues.map((i) => i.key)).toEqual(['sites.primary']);
    const w = r.warnings.filter((x) => x.includes('does not validate'));
    expect(w).toHaveLength(1);
    expect(w[0]).toContain('sites.primary: required key is missing');
    expect(w[0]).toContain('PRIMARY_IP');
    // The watcher's DNS_SERVER was a resolver for lookups: say what dns.server must be.
    expect(r.warnings.some((x) => x.includes("dns.server comes from DNS_SERVER of otel_watcher.py"))).toBe(true);
  });

  test('vm-sync .env (CHECK_INTERVAL is the sync interval there)', () => {
    const r = run(ENV_VM_SYNC, '/opt/vm-sync/.env');
    const c = configOf(r);
    expect(c.role).toBe('dr');
    expect(c.vmsync).toMatchObject({
      enabled: true,
      local_url: 'http://127.0.0.1:8428',
      remote_url: 'http://10.10.10.10:8428',
      interval: 120_000,
      clean_checks: 3,
      lookback: 24 * 3600_000, // QUERY_WINDOW=3600 is not carried over
    });
    expect(c.notify.webhook).toBe('https://hooks.slack.com/services/T000/B000/XXXXXXXX');
    expect(c.health.interval).toBe(10_000); // the default: CHECK_INTERVAL is not a health setting here
    expect(tomlOf(r).vmsync).toMatchObject({ interval: '120s', clean_checks: 3, enabled: true });
    expect(r.mapped).toContainEqual({ variable: 'CHECK_INTERVAL', key: 'vmsync.interval' });
    expect(unmappedNames(r).sort()).toEqual(['GAP_THRESHOLD', 'QUERY_WINDOW']);
    expectAccounted(r, ENV_VM_SYNC, '/opt/vm-sync/.env');
  });

  test('all four files of a DR site together', () => {
    const r = importEnvFiles(
      [
        ['.env.dr', ENV_DR],
        ['.env.otel-watcher', ENV_OTEL_WATCHER],
        ['/opt/vm-sync/.env', ENV_VM_SYNC],
      ].map(([file, text]) => ({ file: file!, vars: parseEnvFile(text!, file!) })),
    );
    const c = configOf(r);
    expect(c.health.interval).toBe(10_000); // .env.dr's CHECK_INTERVAL
    expect(c.vmsync.interval).toBe(120_000); // vm-sync's CHECK_INTERVAL
    expect(c.collector.interval).toBe(15_000);
    // Several files: the unmapped reasons say which file.
    expect(r.unmapped.find((u) => u.variable === 'GAP_THRESHOLD')!.reason).toMatch(/\[\.env\]$/);
  });
});

describe('mapping rules', () => {
  test('an unknown variable is listed as unmapped, in the TOML header and not as a key', () => {
    const r = run(`${ENV_DR}FROBNICATE=yes\n`, '.env.dr');
    expect(r.unmapped).toEqual([{ variable: 'FROBNICATE', reason: expect.stringContaining('unknown variable') }]);
    const header = r.toml.split('\n').filter((l) => l.startsWith('#'));
    expect(header.some((l) => l.includes('FROBNICATE: unknown variable'))).toBe(true);
    expect(r.toml).not.toMatch(/^[^#]*FROBNICATE/m);
    configOf(r);
  });

  test('Docker settings are unmapped: the systemd unit replaces the container', () => {
    const r = run(`${ENV_OTEL_WATCHER}OTEL_CONTAINER=otel-collector\nOTEL_IMAGE=otel/opentelemetry-collector-contrib:0.98.0\nCOMPOSE_PROJECT_NAME=vm-sync\n`, '.env.otel-watcher');
    for (const v of ['OTEL_CONTAINER', 'OTEL_IMAGE', 'COMPOSE_PROJECT_NAME']) {
      expect(r.unmapped).toContainEqual({ variable: v, reason: CONTAINER_REASON });
    }
  });

  test('a secret never appears in the output', async () => {
    const text = `${ENV_DR}AWS_SECRET_ACCESS_KEY=${AWS_SECRET}\nVAULT_TOKEN=hvs.VAULTTOKEN123\nSMTP_PASSWORD=hunter2hunter2\n`;
    const r = run(text, '.env.dr');
    const everything = JSON.stringify(r);
    for (const secret of [TSIG_SECRET, AWS_SECRET, 'hvs.VAULTTOKEN123', 'hunter2hunter2']) {
      expect(everything).not.toContain(secret);
    }
    // ... and the operator is told exactly how to make the key file.
    const w = r.warnings.find((x) => x.startsWith('dns.key_file'))!;
    expect(w).toContain('tsig-keygen -a hmac-sha256 failover');
    expect(w).toContain('TSIG_SECRET');
    expect(w).toContain('key "failover" {\n  \talgorithm hmac-sha256;\n  \tsecret "<base64 secret>";\n  };');
    expect(w).toContain('chmod 0640');

    const file = writeFile('.env.dr', text);
    for (const json of [false, true]) {
      const res = await command({ file, json });
      for (const secret of [TSIG_SECRET, AWS_SECRET, 'hvs.VAULTTOKEN123', 'hunter2hunter2']) {
        expect(res.stdout).not.toContain(secret);
        expect(res.stderr).not.toContain(secret);
      }
    }
  });

  test('an nsupdate -y style TSIG_KEY gives the key name and algorithm, never the secret', () => {
    const r = run(`${ENV_PRIMARY}TSIG_KEY=hmac-sha512:dns-failover-key:${TSIG_SECRET}\n`, '.env.primary');
    expect(JSON.stringify(r)).not.toContain(TSIG_SECRET);
    const w = r.warnings.find((x) => x.startsWith('dns.key_file'))!;
    expect(w).toContain('key "dns-failover-key" {');
    expect(w).toContain('algorithm hmac-sha512;');
    expect(r.mapped).toContainEqual({ variable: 'TSIG_KEY', key: 'dns.key_file' });
  });

  test('the key file warning is there even when the env file has no TSIG settings', () => {
    const r = run(ENV_VM_SYNC, '.env');
    expect(r.warnings.some((w) => w.startsWith(`dns.key_file = "${KEY_FILE}"`) && w.includes('tsig-keygen'))).toBe(true);
    expect(tomlOf(r).dns!.key_file).toBe(KEY_FILE);
  });

  test('MY_IP must be the role\'s site IP', () => {
    const r = run(ENV_DR.replace('MY_IP=10.20.20.20', 'MY_IP=10.20.20.21'), '.env.dr');
    expect(tomlOf(r).sites).toEqual({ primary: '10.10.10.10', dr: '10.20.20.20' });
    expect(r.warnings.some((w) => w.includes('MY_IP=10.20.20.21') && w.includes("dr site's IP 10.20.20.20"))).toBe(true);
    configOf(r);
  });

  test('files that disagree about a key: dns_failover.py wins, and the operator is told', () => {
    const r = importEnvFiles([
      { file: '.env.dr', vars: parseEnvFile(ENV_DR, '.env.dr') },
      { file: '.env.otel-watcher', vars: parseEnvFile(ENV_OTEL_WATCHER.replace('DNS_SERVER=10.10.1.53', 'DNS_SERVER=8.8.8.8'), '.env.otel-watcher') },
    ]);
    expect(tomlOf(r).dns!.server).toBe('10.10.1.53');
    expect(r.warnings).toContain('dns.server: DNS_SERVER (.env.dr) and DNS_SERVER (.env.otel-watcher) differ; using DNS_SERVER (.env.dr)');
  });

  test('numbers of seconds become durations; a non-number is unmapped and the default kept', () => {
    const r = run('ROLE=dr\nPRIMARY_IP=10.10.10.10\nDR_IP=10.20.20.20\nDNS_RECORD=s.example.com\nCHECK_INTERVAL=ten\nHEALTH_TIMEOUT=1.5\nLEASE_TTL=45\nFAILURE_THRESHOLD=x\n', '.env');
    expect(tomlOf(r).health).toEqual({ timeout: '1.5s' });
    expect(tomlOf(r).lease).toEqual({ ttl: '45s' });
    expect(unmappedNames(r).sort()).toEqual(['CHECK_INTERVAL', 'FAILURE_THRESHOLD']);
    configOf(r);
  });

  test('aliases: FAILURE_THRESHOLD, TTL, LEASE_*, HEALTH_URL, SYNC_INTERVAL, LOOKBACK', () => {
    const r = run(
      [
        'ROLE=dr', 'PRIMARY_IP=10.10.10.10', 'DR_IP=10.20.20.20', 'DNS_RECORD=syslog.example.com',
        'FAILURE_THRESHOLD=4', 'TTL=20', 'LEASE_TTL=40', 'LEASE_RENEW_INTERVAL=8', 'LEASE_MAX_SKEW=4',
        'HEALTH_URL=http://10.10.10.10:9465/healthz', 'SYNC_INTERVAL=300', 'LOOKBACK=172800',
        'LOCAL_VM_URL=http://127.0.0.1:8428/',
      ].join('\n'),
      '.env',
    );
    const c = configOf(r);
    expect(c.health).toMatchObject({ failures: 4, targets: ['http://10.10.10.10:9465/healthz'] });
    expect(c.dns.record_ttl).toBe(20_000);
    expect(c.lease).toEqual({ ttl: 40_000, renew_interval: 8_000, max_skew: 4_000 });
    expect(c.vmsync).toMatchObject({ interval: 300_000, lookback: 172_800_000, local_url: 'http://127.0.0.1:8428' });
  });

  test('HEALTH_MODE=tcp without host and port: dns_failover.py\'s defaults (the primary, port 6514)', () => {
    const r = run(`${ENV_PRIMARY.replace('ROLE=primary', 'ROLE=dr').replace('MY_IP=10.10.10.10\n', '')}HEALTH_MODE=tcp\n`, '.env.dr');
    expect(tomlOf(r).health).toMatchObject({ targets: ['tcp://10.10.10.10:6514'] });
    expect(r.mapped).toContainEqual({ variable: 'HEALTH_MODE', key: 'health.targets' });
    expect(r.warnings.some((w) => w.includes('default port 6514'))).toBe(true);
    configOf(r);
  });

  test('no HEALTH_* on the DR: the agent\'s default target, and the operator is told', () => {
    const r = run(ENV_PRIMARY.replace('ROLE=primary', 'ROLE=dr').replace('MY_IP=10.10.10.10\n', ''), '.env.dr');
    expect(tomlOf(r).health).toEqual({ interval: '10s' });
    expect(configOf(r).health.targets).toEqual(['http://10.10.10.10:9465/healthz']);
    expect(r.warnings.some((w) => w.startsWith('health.targets is left at its default'))).toBe(true);
  });

  test('QUERY_WINDOW of a day or more becomes vmsync.lookback', () => {
    const r = run(ENV_VM_SYNC.replace('QUERY_WINDOW=3600', 'QUERY_WINDOW=172800'), '.env');
    expect(tomlOf(r).vmsync!.lookback).toBe('172800s');
    expect(unmappedNames(r)).toEqual(['GAP_THRESHOLD']);
  });

  test('a VictoriaMetrics URL naming a compose service is flagged', () => {
    const r = run(ENV_VM_SYNC.replace('http://127.0.0.1:8428', 'http://victoriametrics:8428'), '.env');
    expect(r.warnings.some((w) => w.includes('"victoriametrics" looks like a Docker Compose service name'))).toBe(true);
  });

  test('a lease the new agent would refuse is reported, naming the variable behind it', () => {
    const r = run(ENV_PRIMARY.replace('LEASE_TTL=60', 'LEASE_TTL=20').replace('UPDATE_INTERVAL=10', 'UPDATE_INTERVAL=16'), '.env.primary');
    const w = r.warnings.filter((x) => x.includes('does not validate'));
    expect(w).toHaveLength(1);
    expect(w[0]).toContain('lease.renew_interval');
    expect(w[0]).toContain('UPDATE_INTERVAL');
  });

  test('empty values leave the key at its default', () => {
    const r = run(`${ENV_VM_SYNC}NOTIFY_WEBHOOK=\nDNS_SERVER=\n`, '.env');
    expect(tomlOf(r).notify).toBeUndefined();
    expect(tomlOf(r).dns!.server).toBeUndefined();
    expect(r.mapped).toContainEqual({ variable: 'DNS_SERVER', key: 'dns.server' });
    configOf(r);
  });
});

describe('the role', () => {
  const noRole = ENV_DR.replace('export ROLE=dr\n', '');

  test.each([
    ['.env.primary', 'primary'],
    ['/opt/dns-failover/.env.dr', 'dr'],
    ['site-b.env.dr', 'dr'],
    ['.env.otel-watcher', 'dr'],
  ])('is inferred from the file name %s', (file, role) => {
    const r = run(ENV_DR.replace('export ROLE=dr\n', '').replace('MY_IP=10.20.20.20\n', ''), file);
    expect(tomlOf(r).role).toBe(role);
    expect(r.toml).toContain(`# role: the file name ${path.basename(file)}`);
    configOf(r);
  });

  test('--role when there is no ROLE', () => {
    expect(tomlOf(run(noRole, '/opt/dns-failover/.env', 'dr')).role).toBe('dr');
  });

  test('ROLE wins over --role, with a warning', () => {
    const r = run(ENV_DR, '.env.primary', 'primary');
    expect(tomlOf(r).role).toBe('dr');
    expect(r.warnings).toContain('--role primary ignored: .env.primary says ROLE=dr');
  });

  test('no ROLE, no --role and an uninformative name is an error', () => {
    expect(() => run(noRole, '/opt/dns-failover/.env')).toThrow(/cannot tell the role.*--role primary or --role dr/);
    try {
      run(noRole, '.env');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect(exitCodeOf(e)).toBe(ExitCode.CONFIG);
    }
  });

  test('a ROLE other than primary or dr is an error', () => {
    expect(() => run('ROLE=standby\n', '.env.dr')).toThrow(/ROLE=standby is neither "primary" nor "dr"/);
  });

  test('files of two sites cannot be combined', () => {
    expect(() =>
      importEnvFiles([
        { file: '.env.primary', vars: parseEnvFile(ENV_PRIMARY, '.env.primary') },
        { file: '.env.dr', vars: parseEnvFile(ENV_DR, '.env.dr') },
      ]),
    ).toThrow(/disagree about the role/);
  });
});

describe('TOML output', () => {
  test.each(['plain', 'with "quotes"', 'back\\slash', 'C:\\path\\"x"', 'tab\tnew\nline\r', 'bell\u0007 del\u007f', 'ünïcödé ✓'])(
    'strings round-trip: %j',
    (s) => {
      expect((parse(`v = ${tomlString(s)}`) as { v: string }).v).toBe(s);
    },
  );

  test('a value with quotes and backslashes is escaped in the file', () => {
    const r = run(`${ENV_VM_SYNC.replace(/NOTIFY_WEBHOOK=.*/, '')}NOTIFY_WEBHOOK='https://example.com/hook?a="b"&c=\\d'\n`, '.env');
    expect(r.toml).toContain('webhook = "https://example.com/hook?a=\\"b\\"&c=\\\\d"');
    expect(tomlOf(r).notify!.webhook).toBe('https://example.com/hook?a="b"&c=\\d');
  });

  test('tables come in SPEC §8 order, after a header saying where the file came from', () => {
    const r = importEnvFiles([
      { file: '.env.dr', vars: parseEnvFile(ENV_DR, '.env.dr') },
      { file: '.env.otel-watcher', vars: parseEnvFile(ENV_OTEL_WATCHER, '.env.otel-watcher') },
      { file: '.env', vars: parseEnvFile(ENV_VM_SYNC, '.env') },
    ]);
    const lines = r.toml.split('\n');
    expect(lines[0]).toMatch(/^# failover-agent configuration written by "failoverctl import-env"/);
    expect(lines).toContain('#   .env.dr (dns_failover.py)');
    expect(lines).toContain('#   .env.otel-watcher (otel_watcher.py)');
    expect(lines).toContain('#   .env (vm_sync.py)');
    const tables = lines.filter((l) => /^\[/.test(l));
    expect(tables).toEqual(['[sites]', '[dns]', '[lease]', '[health]', '[collector]', '[vmsync]', '[notify]']);
    const firstKey = lines.findIndex((l) => /^[a-z]/.test(l));
    expect(lines[firstKey]).toMatch(/^role = "dr"/);
    expect(lines.slice(0, firstKey).every((l) => l === '' || l.startsWith('#'))).toBe(true);
  });
});

describe('importEnvCommand', () => {
  test('human: the TOML on stdout, one warning line per unmapped variable on stderr', async () => {
    const file = writeFile('.env.otel-watcher', `${ENV_OTEL_WATCHER}OTEL_CONTAINER=otel-collector\n`);
    const dr = writeFile('.env.dr', ENV_DR);
    const res = await command({ file: dr, more: [file] });
    expect(res.code).toBe(ExitCode.OK);
    expect(validateConfig(res.stdout, 'dr.toml').issues).toEqual([]);
    expect(res.stdout).toContain('#   OTEL_COMMAND: systemd unit replaces the container');
    const lines = res.stderr.split('\n');
    expect(lines.filter((l) => l.startsWith('failoverctl: warning: OTEL_CONTAINER not mapped: '))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('failoverctl: warning: OTEL_COMMAND not mapped: '))).toHaveLength(1);
    expect(res.stderr).toContain('failoverctl: warning: dns.key_file');
  });

  test('--json: { toml, mapped, unmapped, warnings } on stdout, nothing on stderr', async () => {
    const file = writeFile('.env.primary', ENV_PRIMARY.replace('ROLE=primary\n', '') + 'EXTRA=1\n');
    const res = await command({ file, json: true });
    expect(res.code).toBe(ExitCode.OK);
    expect(res.stderr).toBe('');
    const data = JSON.parse(res.stdout) as ImportResult;
    expect(Object.keys(data).sort()).toEqual(['mapped', 'toml', 'unmapped', 'warnings']);
    expect(data.unmapped).toEqual([{ variable: 'EXTRA', reason: expect.any(String) }]);
    expect((parse(data.toml) as { role: string }).role).toBe('primary');
    expect(validateConfig(data.toml, 'primary.toml').issues).toEqual([]);
  });

  test('--role decides when nothing else does', async () => {
    const file = writeFile('old.env', ENV_DR.replace('export ROLE=dr\n', ''));
    const res = await command({ file, role: 'dr' });
    expect(res.code).toBe(ExitCode.OK);
    expect(res.stdout).toMatch(/^role = "dr"/m);
  });

  test('the TOML is printed even when it does not validate yet, with exit 78', async () => {
    const file = writeFile('.env.otel-watcher', ENV_OTEL_WATCHER);
    const res = await command({ file });
    expect(res.code).toBe(ExitCode.CONFIG);
    expect(res.stdout).toMatch(/^role = "dr"/m);
    expect(res.stderr).toContain('sites.primary: required key is missing');
  });

  test('a malformed line: exit 78 with file:line', async () => {
    const file = writeFile('.env.dr', 'ROLE=dr\nDNS_RECORD syslog.example.com\n');
    const res = await command({ file });
    expect(res.code).toBe(ExitCode.CONFIG);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain(`${file}:2: `);
  });

  test('a missing file: exit 78', async () => {
    const res = await command({ file: path.join(tmp, 'nope', '.env.dr') });
    expect(res.code).toBe(ExitCode.CONFIG);
    expect(res.stderr).toContain('file not found');
  });

  test('no file (yargs normally catches this): a usage error', async () => {
    expect((await command({ file: undefined as unknown as string })).code).toBe(ExitCode.REFUSED);
  });

  test('an unknown role, or none at all', async () => {
    const file = writeFile('settings.env', ENV_DR.replace('export ROLE=dr\n', ''));
    expect((await command({ file, role: 'standby' })).code).toBe(ExitCode.REFUSED);
    const res = await command({ file });
    expect(res.code).toBe(ExitCode.CONFIG);
    expect(res.stderr).toContain('cannot tell the role');
  });
});
