import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

import {
  ConfigError,
  configPathForInstance,
  formatIssue,
  instanceFromPath,
  loadConfig,
  validateConfig,
  type ConfigIssue,
} from '../../src/config/load.js';
import { parseHostPort } from '../../src/config/schema.js';
import { ExitCode, exitCodeOf } from '../../src/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLES = ['primary', 'dr'].map((n) => path.join(ROOT, 'etc/failover-agent', `${n}.toml.example`));

const MINIMAL = `role = "dr"

[sites]
primary = "10.10.10.10"
dr = "10.20.20.20"

[dns]
record = "syslog.example.com"
key_file = "/etc/failover-agent/tsig.key"
`;

/** MINIMAL with `extra` lines appended to the [dns]… tail, or replacing a whole section. */
function withSection(section: string, body: string): string {
  return `${MINIMAL}\n[${section}]\n${body}\n`;
}

function issuesOf(text: string, file = 'test.toml'): ConfigIssue[] {
  return validateConfig(text, file).issues;
}

/** "LINE key: message" shorthand of issues, for compact assertions. */
function brief(issues: ConfigIssue[]): string[] {
  return issues.map((i) => `${i.line ?? '-'} ${i.key}: ${i.message}`);
}

describe('example configs', () => {
  test.each(EXAMPLES)('%s validates with zero issues', (file) => {
    const { config, issues } = validateConfig(fs.readFileSync(file, 'utf8'), file);
    expect(issues).toEqual([]);
    expect(config).toBeDefined();
  });

  test('the examples set every key of the schema (they document all of them)', () => {
    for (const file of EXAMPLES) {
      const text = fs.readFileSync(file, 'utf8');
      for (const key of ['role', 'primary', 'dr', 'record', 'zone', 'server', 'key_file', 'record_ttl', 'lease_name',
        'timeout', 'retries', 'ttl', 'renew_interval', 'max_skew', 'targets', 'expect', 'require', 'interval', 'failures',
        'control', 'unit', 'mode', 'self_fence', 'enabled', 'local_url', 'local_write_url', 'remote_url', 'bucket', 'settle',
        'lookback', 'max_chunk', 'concurrency', 'clean_checks', 'format', 'device_label', 'webhook', 'listen', 'level']) {
        expect(text, `${file} lacks ${key}`).toMatch(new RegExp(`^${key} = `, 'm'));
      }
    }
  });

  test('the primary example as the primary instance', () => {
    const config = loadConfig('/etc/failover-agent/primary.toml', { text: fs.readFileSync(EXAMPLES[0], 'utf8') });
    expect(config.instance).toBe('primary');
    expect(config.role).toBe('primary');
    expect(config.http.listen).toEqual({ host: '10.10.10.10', port: 9465 });
    expect(config.vmsync.remote_url).toBe('http://10.20.20.20:8428');
  });
});

describe('defaults (SPEC §8)', () => {
  test('a minimal file gets every default', () => {
    const config = loadConfig('/etc/failover-agent/dr.toml', { text: MINIMAL });
    expect(config).toEqual({
      file: '/etc/failover-agent/dr.toml',
      instance: 'dr',
      role: 'dr',
      sites: { primary: '10.10.10.10', dr: '10.20.20.20' },
      dns: {
        record: 'syslog.example.com',
        zone: undefined,
        server: undefined,
        auth: 'tsig',
        key_file: '/etc/failover-agent/tsig.key',
        gss: undefined,
        record_ttl: 30_000,
        lease_name: '_lease.syslog.example.com',
        control_name: '_control.syslog.example.com',
        timeout: 2_000,
        retries: 2,
        verify_servers: [],
        verify_interval: 60_000,
        propagation_timeout: 30_000,
      },
      lease: { ttl: 30_000, renew_interval: 10_000, max_skew: 5_000 },
      health: {
        targets: ['http://10.10.10.10:9465/healthz'],
        expect: '',
        require: 'any',
        interval: 10_000,
        timeout: 3_000,
        failures: 3,
        // the other site's agent on the port this one listens on
        peer_targets: ['http://10.10.10.10:9465/healthz'],
      },
      collector: {
        control: 'systemd',
        unit: 'otelcol-contrib.service',
        mode: 'when-active',
        interval: 5_000,
        self_fence: false,
        handover: true,
        restart_limit: 3,
        handover_after: 30_000,
        handover_hold: 1_800_000,
        probe: '',
      },
      vmsync: {
        enabled: false,
        local_url: 'http://127.0.0.1:8428',
        local_write_url: 'http://127.0.0.1:8428',
        remote_url: 'http://10.10.10.10:8428',
        interval: 120_000,
        bucket: 60_000,
        settle: 120_000,
        lookback: 86_400_000,
        max_chunk: 21_600_000,
        concurrency: 2,
        clean_checks: 3,
        format: 'json',
        device_label: 'instance',
      },
      notify: { webhook: '' },
      http: { listen: { host: '127.0.0.1', port: 9465 } },
      log: { level: 'info' },
    });
  });

  test('the primary role defaults remote_url to the DR site', () => {
    const config = loadConfig('primary.toml', { text: MINIMAL.replace('role = "dr"', 'role = "primary"') });
    expect(config.vmsync.remote_url).toBe('http://10.20.20.20:8428');
  });

  test('IPv6 sites: canonical form, bracketed in default URLs', () => {
    const text = MINIMAL.replace('"10.10.10.10"', '"2001:DB8:0::0001"').replace('"10.20.20.20"', '"2001:db8::2"');
    const config = loadConfig('dr.toml', { text });
    expect(config.sites).toEqual({ primary: '2001:db8::1', dr: '2001:db8::2' });
    expect(config.health.targets).toEqual(['http://[2001:db8::1]:9465/healthz']);
    expect(config.vmsync.remote_url).toBe('http://[2001:db8::1]:8428');
  });

  test('names are normalised; lease_name follows the normalised record', () => {
    const text = MINIMAL.replace('record = "syslog.example.com"', 'record = "SysLog.Example.COM."\nzone = "Example.com."');
    const config = loadConfig('dr.toml', { text });
    expect(config.dns.record).toBe('syslog.example.com');
    expect(config.dns.zone).toBe('example.com');
    expect(config.dns.lease_name).toBe('_lease.syslog.example.com');
  });

  test('a relative key_file is taken from the config file directory', () => {
    const text = MINIMAL.replace('"/etc/failover-agent/tsig.key"', '"keys/tsig.key"');
    expect(loadConfig('/srv/fa/dr.toml', { text }).dns.key_file).toBe('/srv/fa/keys/tsig.key');
  });

  test('http.listen "" disables the listener; URLs lose trailing slashes', () => {
    const text = `${MINIMAL}\n[http]\nlisten = ""\n\n[vmsync]\nlocal_url = "http://127.0.0.1:8481/insert/0/prometheus/"\n`;
    const config = loadConfig('dr.toml', { text });
    expect(config.http.listen).toBeNull();
    expect(config.vmsync.local_url).toBe('http://127.0.0.1:8481/insert/0/prometheus');
  });

  test('vmsync.local_write_url: "" means local_url; a URL (VM cluster vminsert) is kept, minus trailing slashes', () => {
    const cluster = withSection(
      'vmsync',
      'local_url = "http://127.0.0.1:8481/select/0/prometheus"\nlocal_write_url = "http://127.0.0.1:8480/insert/0/prometheus/"',
    );
    const c = loadConfig('dr.toml', { text: cluster }).vmsync;
    expect(c.local_url).toBe('http://127.0.0.1:8481/select/0/prometheus');
    expect(c.local_write_url).toBe('http://127.0.0.1:8480/insert/0/prometheus');
    const single = loadConfig('dr.toml', { text: withSection('vmsync', 'local_url = "http://127.0.0.1:9428/"\nlocal_write_url = ""') }).vmsync;
    expect(single.local_write_url).toBe('http://127.0.0.1:9428');
    expect(brief(issuesOf(withSection('vmsync', 'local_write_url = "127.0.0.1:8480"')))).toEqual([
      '12 vmsync.local_write_url: must be "" (write to local_url) or an http(s) URL: "127.0.0.1:8480" is not a URL',
    ]);
    expect(brief(issuesOf(withSection('vmsync', 'local_write_url = 8480')))).toEqual(['12 vmsync.local_write_url: expected a string, got integer 8480']);
  });

  test('vmsync.device_label: a label name, or "" for no naming; reserved and malformed names refused', () => {
    expect(loadConfig('dr.toml', { text: MINIMAL }).vmsync.device_label).toBe('instance');
    expect(loadConfig('dr.toml', { text: withSection('vmsync', 'device_label = "host_name"') }).vmsync.device_label).toBe('host_name');
    expect(loadConfig('dr.toml', { text: withSection('vmsync', 'device_label = ""') }).vmsync.device_label).toBe('');
    expect(brief(issuesOf(withSection('vmsync', 'device_label = "dev-name"')))).toEqual([
      '12 vmsync.device_label: must be a label name ([a-zA-Z_][a-zA-Z0-9_]*) or "" (no device naming: every repair exports every series)',
    ]);
    expect(brief(issuesOf(withSection('vmsync', 'device_label = "__name__"')))).toEqual([
      '12 vmsync.device_label: labels starting with "__" are reserved by Prometheus and VictoriaMetrics',
    ]);
  });

  test('dns.server forms', () => {
    const server = (v: string) => loadConfig('dr.toml', { text: MINIMAL.replace('key_file', `server = "${v}"\nkey_file`) }).dns.server;
    expect(server('10.10.1.53')).toEqual({ host: '10.10.1.53', port: 53 });
    expect(server('10.10.1.53:5353')).toEqual({ host: '10.10.1.53', port: 5353 });
    expect(server('NS1.Example.com.')).toEqual({ host: 'ns1.example.com', port: 53 });
    expect(server('ns1.example.com:53')).toEqual({ host: 'ns1.example.com', port: 53 });
    expect(server('[2001:db8::53]:5353')).toEqual({ host: '2001:db8::53', port: 5353 });
    expect(server('[2001:db8::53]')).toEqual({ host: '2001:db8::53', port: 53 });
    expect(server('2001:db8::53')).toEqual({ host: '2001:db8::53', port: 53 });
  });

  test('dns.verify_servers: host[:port] each (port 53 by default), empty by default (the NS set); a bad one names its index', () => {
    const dns = (v: string) => loadConfig('dr.toml', { text: MINIMAL.replace('key_file', `${v}\nkey_file`) }).dns;
    expect(dns('').verify_servers).toEqual([]);
    expect(dns('verify_servers = ["10.0.0.53", "ns2.example.com:5353", "[2001:db8::53]"]').verify_servers).toEqual([
      { host: '10.0.0.53', port: 53 },
      { host: 'ns2.example.com', port: 5353 },
      { host: '2001:db8::53', port: 53 },
    ]);
    expect(dns('verify_interval = "5s"\npropagation_timeout = "10s"')).toMatchObject({ verify_interval: 5000, propagation_timeout: 10_000 });
    expect(() => dns('verify_servers = ["ns1.example.com:0"]')).toThrow(/dns\.verify_servers\.0: "ns1\.example\.com:0": port must be a number from 1 to 65535/);
  });

  test('parseHostPort refusals', () => {
    expect(parseHostPort('host:0', 53)).toMatch(/port must be a number from 1 to 65535/);
    expect(parseHostPort('host:70000', 53)).toMatch(/port/);
    expect(parseHostPort('host:', 53)).toMatch(/port/);
    expect(parseHostPort(':53', 53)).toMatch(/missing host/);
    expect(parseHostPort('[10.0.0.1]:53', 53)).toMatch(/not an IPv6/);
    expect(parseHostPort('bad host:53', 53)).toMatch(/not an IP address or host name/);
  });
});

describe('every problem at once, with lines', () => {
  const BROKEN = [
    'role = "dr"', //                        1
    'colour = "blue"', //                    2  unknown top-level key
    '', //                                   3
    '[sites]', //                            4
    'primary = "10.10.10.10"', //            5
    'dr = "10.20.20.20"', //                 6
    '', //                                   7
    '[dns]', //                              8  record missing (required)
    'key_file = "/etc/failover-agent/tsig.key"', // 9
    'timeout = "2 seconds"', //              10 bad duration
    'retries = "two"', //                    11 wrong type
    'record_tll = "30s"', //                 12 unknown key (typo)
    '', //                                   13
    '[lease]', //                            14
    'ttl = 30', //                           15 wrong type (number, not duration string)
    '', //                                   16
    '[health]', //                           17
    'targets = [', //                        18
    '  "http://10.10.10.10:9465/healthz",', // 19
    '  "udp://10.10.10.10:53",', //          20 bad target (element 1)
    ']', //                                  21
    'failures = 0', //                       22 out of range
    '', //                                   23
    '[log]', //                              24
    'level = "verbose"', //                  25 not a syslog level
    '',
  ].join('\n');

  test('all issues, sorted by line, with dotted keys', () => {
    expect(brief(issuesOf(BROKEN))).toEqual([
      '2 colour: unknown key',
      '8 dns.record: required key is missing',
      '10 dns.timeout: invalid duration "2 seconds" (write e.g. "10s", "250ms", "1m30s"; units: ms, s, m, h)',
      '11 dns.retries: expected an integer, got string "two"',
      '12 dns.record_tll: unknown key; did you mean "record_ttl"?',
      '15 lease.ttl: expected a duration string like "10s", got integer 30',
      '20 health.targets.1: health target "udp://10.10.10.10:53" must be http://…, https://… or tcp://host:port',
      '22 health.failures: must be at least 1, got integer 0',
      '25 log.level: must be one of "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"; got string "verbose"',
    ]);
  });

  test('loadConfig throws ConfigError: exit 78, issues, FILE:LINE: key: message per line', () => {
    let err: unknown;
    try {
      loadConfig('/etc/failover-agent/dr.toml', { text: BROKEN });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const ce = err as ConfigError;
    expect(ce.code).toBe('CONFIG_INVALID');
    expect(ce.exitCode).toBe(ExitCode.CONFIG);
    expect(exitCodeOf(ce)).toBe(78);
    expect(ce.issues).toHaveLength(9);
    const lines = ce.message.split('\n');
    expect(lines).toHaveLength(9);
    expect(lines[0]).toBe('/etc/failover-agent/dr.toml:2: colour: unknown key');
    expect(lines[1]).toBe('/etc/failover-agent/dr.toml:8: dns.record: required key is missing');
    expect(ce.issues[1]).toEqual({ file: '/etc/failover-agent/dr.toml', key: 'dns.record', line: 8, message: 'required key is missing' });
  });

  test('missing keys without their table: no line, and say the table is missing', () => {
    expect(brief(issuesOf('role = "dr"\n'))).toEqual([
      '- sites.primary: required key is missing (and there is no [sites] table)',
      '- sites.dr: required key is missing (and there is no [sites] table)',
      '- dns.record: required key is missing (and there is no [dns] table)',
      '- dns.key_file: required key is missing (and there is no [dns] table)',
    ]);
    expect(brief(issuesOf(MINIMAL.replace('role = "dr"', '')))).toEqual(['- role: required key is missing']);
  });

  test('an empty file', () => {
    expect(issuesOf('')).toHaveLength(5);
  });

  test('a table where a value belongs and vice versa', () => {
    expect(brief(issuesOf(`log = "debug"\n${MINIMAL}`))).toEqual(['1 log: expected a table ([log]), got string "debug"']);
    expect(brief(issuesOf(`${MINIMAL}[dns.extra]\nx = 1\n`))).toEqual(['10 dns.extra: unknown table']);
  });

  test('formatIssue leaves out what is unknown', () => {
    expect(formatIssue({ file: 'f.toml', key: 'a.b', line: 3, message: 'm' })).toBe('f.toml:3: a.b: m');
    expect(formatIssue({ file: 'f.toml', key: 'a.b', message: 'm' })).toBe('f.toml: a.b: m');
    expect(formatIssue({ file: 'f.toml', key: '', line: 3, message: 'm' })).toBe('f.toml:3: m');
  });
});

describe('dns.auth: HMAC TSIG or GSS-TSIG, exclusive (SPEC §2a)', () => {
  const GSS = `role = "dr"
[sites]
primary = "10.10.10.10"
dr = "10.20.20.20"
[dns]
record = "syslog.example.com"
auth = "gss-tsig"
[dns.gss]
principal = "failover-agent@EXAMPLE.COM"
keytab = "failover.keytab"
`;

  test('gss-tsig: the principal, the keytab (relative to the file) and the server principal left to the SOA', () => {
    const c = loadConfig('/etc/failover-agent/dr.toml', { text: GSS });
    expect(c.dns).toMatchObject({ auth: 'gss-tsig', key_file: undefined });
    expect(c.dns.gss).toEqual({ principal: 'failover-agent@EXAMPLE.COM', keytab: '/etc/failover-agent/failover.keytab', server_principal: undefined });
    const named = loadConfig('/etc/failover-agent/dr.toml', { text: `${GSS}server_principal = "DNS/ns1.example.com"\n` });
    expect(named.dns.gss!.server_principal).toBe('DNS/ns1.example.com');
  });

  test('gss-tsig with key_file set: an error naming file, key and line', () => {
    const text = GSS.replace('auth = "gss-tsig"', 'auth = "gss-tsig"\nkey_file = "/etc/failover-agent/tsig.key"');
    expect(brief(issuesOf(text))).toEqual(['8 dns.key_file: must not be set with dns.auth = "gss-tsig" (the two are exclusive: GSS-TSIG signs with the [dns.gss] principal and keytab)']);
    const err = (() => {
      try {
        loadConfig('/etc/failover-agent/dr.toml', { text });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(exitCodeOf(err)).toBe(ExitCode.CONFIG);
    expect((err as Error).message).toBe('/etc/failover-agent/dr.toml:8: dns.key_file: must not be set with dns.auth = "gss-tsig" (the two are exclusive: GSS-TSIG signs with the [dns.gss] principal and keytab)');
  });

  test('tsig without key_file (the default auth), and tsig with [dns.gss]', () => {
    expect(brief(issuesOf(MINIMAL.replace('key_file = "/etc/failover-agent/tsig.key"\n', '')))).toEqual([
      '7 dns.key_file: required key is missing (dns.auth = "tsig", the default, signs with a TSIG key file)',
    ]);
    expect(brief(issuesOf(GSS.replace('auth = "gss-tsig"', 'auth = "tsig"\nkey_file = "k"')))).toEqual([
      '9 dns.gss: [dns.gss] is for dns.auth = "gss-tsig"; with "tsig" (the default) requests are signed with dns.key_file: set auth = "gss-tsig" or remove [dns.gss]',
    ]);
  });

  test('gss-tsig without [dns.gss]; a broken [dns.gss]; an unknown auth', () => {
    expect(brief(issuesOf(GSS.replace(/\[dns\.gss\][^]*$/, '')))).toEqual([
      '5 dns.gss: required key is missing (dns.auth = "gss-tsig" needs a [dns.gss] table with principal and keytab)',
    ]);
    expect(brief(issuesOf(GSS.replace('principal = "failover-agent@EXAMPLE.COM"', 'principal = "failover-agent"\nkeytabs = "x"').replace('keytab = "failover.keytab"\n', '')))).toEqual([
      '9 dns.gss.principal: must be a Kerberos principal with its realm, like "failover-agent@EXAMPLE.COM"',
      '8 dns.gss.keytab: required key is missing',
      '10 dns.gss.keytabs: unknown key; did you mean "keytab"?',
    ].sort((a, b) => parseInt(a) - parseInt(b)));
    expect(brief(issuesOf(GSS.replace('"gss-tsig"', '"kerberos"')))[0]).toMatch(/^7 dns\.auth: must be one of "tsig", "gss-tsig"/);
  });
});

describe('TOML syntax errors', () => {
  test('one syntax error: its line and column', () => {
    const issues = issuesOf(`${MINIMAL}retries = \n`);
    expect(issues).toEqual([
      { file: 'test.toml', key: '', line: 10, message: 'TOML syntax error (column 11): invalid value' },
    ]);
  });

  test('several syntax errors and the schema problems around them, at once', () => {
    const text = [
      'role = "dr"', //                    1
      '[sites]', //                        2
      'primary = "10.10.10.10"', //        3
      'dr = ', //                          4 syntax error (dr then "missing": not reported twice)
      '[dns]', //                          5
      'record = "syslog.example.com"', //  6
      'key_file = "k"', //                 7
      'retries = 1 2', //                  8 syntax error
      'timeout = "fast"', //               9 schema error
      '',
    ].join('\n');
    expect(brief(issuesOf(text))).toEqual([
      '4 : TOML syntax error (column 6): invalid value',
      '8 : TOML syntax error (column 13): each key-value declaration must be followed by an end-of-line',
      '9 dns.timeout: invalid duration "fast" (write e.g. "10s", "250ms", "1m30s"; units: ms, s, m, h)',
    ]);
  });

  test('a broken table header stops there (the keys below it would be misplaced)', () => {
    const text = `${MINIMAL}[lease\nttl = "x"\nfoo = = 1\n`;
    expect(brief(issuesOf(text))).toEqual(['10 : TOML syntax error (column 7): illegal character in key']);
  });

  test('an unterminated multi-line string is one error, not a cascade', () => {
    const issues = issuesOf(`${MINIMAL}[notify]\nwebhook = """\nhttp://x\n`);
    expect(issues).toHaveLength(1);
    expect(issues[0].line).toBe(11);
  });

  test('duplicate keys', () => {
    expect(brief(issuesOf(`${MINIMAL}record = "x.example.com"\n`))).toEqual([
      '10 : TOML syntax error (column 1): trying to redefine an already defined table or value',
    ]);
  });
});

describe('semantic checks', () => {
  const one = (text: string) => brief(issuesOf(text));

  test('sites: valid, distinct, same family', () => {
    expect(one(MINIMAL.replace('"10.20.20.20"', '"10.20.20"'))).toEqual(['5 sites.dr: "10.20.20" is not an IPv4 or IPv6 address']);
    expect(one(MINIMAL.replace('"10.20.20.20"', '"10.10.10.10"'))).toEqual(['5 sites.dr: must differ from sites.primary (both are 10.10.10.10)']);
    expect(one(MINIMAL.replace('"10.20.20.20"', '"2001:db8::1"'))).toEqual(['5 sites.dr: must be the same address family as sites.primary (IPv4)']);
    expect(one(MINIMAL.replace('"10.20.20.20"', '"fe80::1%eth0"'))).toEqual(['5 sites.dr: "fe80::1%eth0" is not an IPv4 or IPv6 address']);
    expect(one(MINIMAL.replace('"10.20.20.20"', '"syslog-dr.example.com"'))).toHaveLength(1);
  });

  test('record and lease inside the zone', () => {
    expect(one(MINIMAL.replace('key_file', 'zone = "example.org"\nkey_file'))).toEqual([
      '8 dns.record: "syslog.example.com" is not inside dns.zone "example.org"',
    ]);
    expect(one(MINIMAL.replace('key_file', 'zone = "example.com"\nlease_name = "_lease.example.net"\nkey_file'))).toEqual([
      '10 dns.lease_name: "_lease.example.net" is not inside dns.zone "example.com"',
    ]);
    expect(one(MINIMAL.replace('key_file', 'zone = "syslog.example.com"\nkey_file'))).toEqual([]);
    // "notexample.com" is not inside "example.com"
    expect(one(MINIMAL.replace('syslog.example.com', 'notexample.com').replace('key_file', 'zone = "example.com"\nkey_file'))).toHaveLength(1);
    expect(one(MINIMAL.replace('syslog.example.com', 'bad..name'))).toEqual(['8 dns.record: "bad..name" is not a valid DNS name: empty label']);
  });

  test('lease timing', () => {
    expect(one(withSection('lease', 'ttl = "30s"\nrenew_interval = "25s"\nmax_skew = "5s"'))).toEqual([
      '13 lease.renew_interval: must be shorter than lease.ttl - lease.max_skew (30s - 5s = 25s), got 25s: the primary would count its own lease as lost between renewals',
    ]);
    expect(one(withSection('lease', 'ttl = "30s"\nmax_skew = "30s"'))).toEqual([
      '13 lease.max_skew: must be shorter than lease.ttl (30s), got 30s',
    ]);
    expect(one(withSection('lease', 'ttl = "30s"\nrenew_interval = "24999ms"\nmax_skew = "5s"'))).toEqual([]);
    expect(one(withSection('lease', 'ttl = "0s"'))).toEqual(['12 lease.ttl: must be longer than 0s']);
    expect(one(withSection('lease', 'max_skew = "0s"'))).toEqual([]);
  });

  test('dns.retries 0..10, record_ttl whole seconds', () => {
    expect(one(MINIMAL + 'retries = 0\n')).toEqual([]);
    expect(one(MINIMAL + 'retries = 10\n')).toEqual([]);
    expect(one(MINIMAL + 'retries = -1\n')).toEqual(['10 dns.retries: must be at least 0, got integer -1']);
    expect(one(MINIMAL + 'retries = 1.5\n')).toEqual(['10 dns.retries: expected an integer, got float 1.5']);
    expect(one(MINIMAL + 'record_ttl = "1500ms"\n')).toEqual(['10 dns.record_ttl: must be a whole number of seconds, got "1500ms"']);
  });

  test('timer durations are capped at what setTimeout can do', () => {
    expect(one(withSection('health', 'interval = "600h"'))).toEqual([
      '12 health.interval: must be at most 596h31m23s647ms (the longest timer Node.js supports), got "600h"',
    ]);
    expect(one(withSection('vmsync', 'lookback = "720h"'))).toEqual([]);
  });

  test('health', () => {
    expect(one(withSection('health', 'targets = ["https://primary.example.com/healthz", "tcp://10.10.10.10:22", "tcp://[2001:db8::1]:22"]'))).toEqual([]);
    expect(one(withSection('health', 'targets = []'))).toEqual([
      '12 health.targets: needs at least one target (or leave the key out for the default)',
    ]);
    expect(one(withSection('health', 'targets = ["tcp://10.10.10.10"]'))).toEqual([
      '12 health.targets.0: health target "tcp://10.10.10.10" needs a port (tcp://host:port)',
    ]);
    expect(one(withSection('health', 'targets = "http://x"'))).toEqual(['12 health.targets: expected an array, got string "http://x"']);
    expect(one(withSection('health', 'require = "most"'))).toEqual(['12 health.require: must be one of "any", "all"; got string "most"']);
  });

  test('health.expect: a body substring, "" by default', () => {
    const expectOf = (body: string) => loadConfig('dr.toml', { text: withSection('health', body) }).health.expect;
    expect(expectOf('expect = "\\"active\\": true"')).toBe('"active": true');
    expect(expectOf('expect = ""')).toBe('');
    expect(expectOf('require = "all"')).toBe('');
    expect(one(withSection('health', 'expect = 200'))).toEqual(['12 health.expect: expected a string, got integer 200']);
    expect(one(withSection('health', 'expected = "ok"'))).toEqual(['12 health.expected: unknown key; did you mean "expect"?']);
  });

  test('vmsync', () => {
    expect(one(withSection('vmsync', 'bucket = "1500ms"'))).toEqual(['12 vmsync.bucket: must be a whole number of seconds, got "1500ms"']);
    expect(one(withSection('vmsync', 'bucket = "500ms"'))).toEqual(['12 vmsync.bucket: must be at least 1s, got "500ms"']);
    expect(one(withSection('vmsync', 'clean_checks = 0'))).toEqual(['12 vmsync.clean_checks: must be at least 1, got integer 0']);
    expect(one(withSection('vmsync', 'remote_url = "10.10.10.10:8428"'))).toEqual([
      '12 vmsync.remote_url: "10.10.10.10:8428" is not a URL',
    ]);
    expect(one(withSection('vmsync', 'remote_url = "ftp://10.10.10.10:8428"'))).toEqual([
      '12 vmsync.remote_url: "ftp://10.10.10.10:8428" must start with http:// or https://',
    ]);
    expect(one(withSection('vmsync', 'max_chunk = "30s"'))).toEqual(['12 vmsync.max_chunk: must be at least vmsync.bucket (1m)']);
    expect(one(withSection('vmsync', 'format = "csv"'))).toEqual(['12 vmsync.format: must be one of "json", "native"; got string "csv"']);
    expect(one(withSection('vmsync', 'settle = "0s"'))).toEqual([]);
  });

  test('collector', () => {
    expect(one(withSection('collector', 'unit = "otelcol"'))).toEqual([
      '12 collector.unit: must be a systemd service unit name like "otelcol-contrib.service"',
    ]);
    expect(one(withSection('collector', 'unit = "otelcol@site-a.service"\nmode = "always"\ncontrol = "none"'))).toEqual([]);
    expect(one(withSection('collector', 'self_fence = "yes"'))).toEqual([
      '12 collector.self_fence: expected a boolean (true or false), got string "yes"',
    ]);
  });

  test('notify.webhook, log.level, http.listen', () => {
    expect(one(withSection('notify', 'webhook = "https://hooks.slack.com/services/T/B/X"'))).toEqual([]);
    expect(one(withSection('notify', 'webhook = "hooks.slack.com/x"'))).toEqual([
      '12 notify.webhook: must be "" (no webhook) or an http(s) URL: "hooks.slack.com/x" is not a URL',
    ]);
    expect(one(withSection('notify', 'webhook = "ftp://x/y"'))).toHaveLength(1);
    for (const level of ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug']) {
      expect(one(withSection('log', `level = "${level}"`))).toEqual([]);
    }
    expect(one(withSection('http', 'listen = "0.0.0.0:99999"'))).toEqual([
      '12 http.listen: "0.0.0.0:99999": port must be a number from 1 to 65535 (use "" to disable the listener)',
    ]);
  });
});

describe('files and instances', () => {
  test('configPathForInstance / instanceFromPath', () => {
    expect(configPathForInstance('dr')).toBe('/etc/failover-agent/dr.toml');
    expect(configPathForInstance('site-b', '/tmp/cfg')).toBe('/tmp/cfg/site-b.toml');
    expect(instanceFromPath('/etc/failover-agent/primary.toml')).toBe('primary');
    expect(instanceFromPath('dr.toml')).toBe('dr');
    for (const bad of ['', '.', '..', '../etc/passwd', 'a/b']) {
      expect(() => configPathForInstance(bad)).toThrow(expect.objectContaining({ code: 'INSTANCE_INVALID', exitCode: 78 }));
    }
  });

  test('loadConfig reads the file; a missing file is a configuration error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-config-'));
    try {
      const file = path.join(dir, 'dr.toml');
      fs.writeFileSync(file, MINIMAL.replace('"/etc/failover-agent/tsig.key"', '"tsig.key"'));
      const config = loadConfig(file);
      expect(config.instance).toBe('dr');
      expect(config.file).toBe(file);
      expect(config.dns.key_file).toBe(path.join(dir, 'tsig.key'));

      const missing = path.join(dir, 'none.toml');
      expect(() => loadConfig(missing)).toThrow(
        expect.objectContaining({ code: 'CONFIG_UNREADABLE', exitCode: 78, message: `${missing}: file not found` }),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ConfigError with a free message', () => {
    const e = new ConfigError('no *.toml in /etc/failover-agent');
    expect(e.message).toBe('no *.toml in /etc/failover-agent');
    expect(e.issues).toEqual([]);
    expect(e.exitCode).toBe(78);
  });

  test('a byte-order mark is tolerated', () => {
    expect(issuesOf(`\uFEFF${MINIMAL}`)).toEqual([]);
  });
});
