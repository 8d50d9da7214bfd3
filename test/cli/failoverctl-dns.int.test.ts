/**
 * failoverctl check-config / dns / init through the BUILT binary
 * (dist/failoverctl.js, as the package installs it), against real BIND and
 * Knot on loopback; `dns --json` is checked against dig.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnsTable, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CTL = path.join(ROOT, 'dist/failoverctl.js');

beforeAll(() => {
  // Tests run the bundle users get; build it if this run has not.
  if (!fs.existsSync(CTL)) execFileSync('node', ['scripts/build.mjs'], { cwd: ROOT });
});

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function ctl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile('node', [CTL, ...args], { env: { ...process.env, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function dig(srv: DnsServerFixture, name: string, type: string): string[] {
  const out = execFileSync('dig', ['+short', '+norec', '-y', `hmac-sha256:${srv.key.name}:${srv.key.secret}`, `@${srv.host}`, '-p', String(srv.port), name, type], {
    encoding: 'utf8',
  });
  return out.split('\n').filter(Boolean);
}

export function writeConfig(dir: string, srv: DnsServerFixture, role: 'primary' | 'dr', extra = ''): string {
  const file = path.join(dir, `${role}.toml`);
  fs.writeFileSync(
    file,
    `role = "${role}"

[sites]
primary = "10.10.10.10"
dr = "10.20.20.20"

${dnsTable(srv)}
${extra}`,
  );
  return file;
}

describe.each(['bind', 'knot'] as const)('failoverctl against %s', (kind) => {
  let srv: DnsServerFixture;
  let dir: string;
  let config: string;

  beforeAll(async () => {
    srv = await startServer(kind);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-ctl-'));
    config = writeConfig(dir, srv, 'dr');
  });
  afterAll(async () => {
    await srv?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('check-config accepts the file and names the key', async () => {
    const r = await ctl(['--config', config, 'check-config']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`key ${srv.key.name} hmac-sha256`);
    // It measures the round trip with signed reads of the witness; the defaults leave margin: no warning.
    expect(r.stdout).toMatch(/^DNS round trip: \d+\.\d ms \(median of 3 signed reads\)$/m);
    expect(r.stdout).not.toContain('warning:');
  });

  it('check-config fails (exit 77) when the server refuses the key: the right name, another secret', async () => {
    const keyFile = path.join(dir, 'wrong.key');
    fs.writeFileSync(keyFile, `key "${srv.key.name}" {\n\talgorithm hmac-sha256;\n\tsecret "${Buffer.alloc(32, 7).toString('base64')}";\n};\n`, { mode: 0o600 });
    const file = writeConfig(fs.mkdtempSync(path.join(dir, 'w')), { ...srv, key: { ...srv.key, file: keyFile } }, 'dr');
    const r = await ctl(['--config', file, 'check-config']);
    expect(r.code, r.stdout).toBe(77);
    expect(r.stderr).toMatch(/DNS_TSIG_BADSIG|DNS_NOTAUTH|DNS_TSIG_BADKEY/);
    expect(r.stdout).not.toContain('OK');
  });

  it('check-config warns (exit 0) when the lease leaves less margin than the lossy-WAN rule', async () => {
    const tight = writeConfig(dir, srv, 'primary', '[lease]\nttl = "6s"\nrenew_interval = "4s"\nmax_skew = "1s"\n');
    const r = await ctl(['--config', tight, '--json', 'check-config']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { dnsRttMs: number; warnings: { key: string; message: string }[] };
    expect(out.dnsRttMs).toBeGreaterThan(0);
    expect(out.warnings.map((w) => w.key)).toEqual(['lease.ttl']);
    // (6 - 1 - 4 s - 2 x rtt) / (500 ms x 2 attempts + 250 ms before the next): none
    expect(out.warnings[0]!.message).toMatch(/survives 0 wholly lost renewal exchange\(s\) in a row/);
  });

  it('init creates the record and the lease once; a second init is refused (exit 1)', async () => {
    const first = await ctl(['--config', config, '--json', 'init']);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ ok: true, addresses: ['10.10.10.10'], lease: { holder: 'primary', epoch: 1, seq: 0 } });
    expect(dig(srv, srv.record, 'A')).toEqual(['10.10.10.10']);

    const second = await ctl(['--config', config, 'init']);
    expect(second.code).toBe(1);
    expect(second.stdout).toContain('refused');
    const lease = dig(srv, srv.leaseName, 'TXT');
    expect(lease).toHaveLength(1);
    expect(lease[0]).toMatch(/^"v=1 holder=primary epoch=1 seq=0 at=\d+"$/);

    const forced = await ctl(['--config', config, '--json', 'init', '--force']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ ok: true, forced: true, lease: { holder: 'primary', epoch: 2, seq: 1 } });
  });

  it('dns --json matches what dig reads from the server', async () => {
    const r = await ctl(['--config', config, '--json', 'dns']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.addresses).toEqual(dig(srv, srv.record, 'A'));
    expect(j.lease_text.map((t: string) => `"${t}"`)).toEqual(dig(srv, srv.leaseName, 'TXT'));
    const soa = dig(srv, srv.zone, 'SOA')[0]!.split(' ');
    expect(j.soa_serial).toBe(Number(soa[2]));
    expect(j.active).toBe('primary');
    expect(j.server).toBe(`${srv.host}:${srv.port}`);
    expect(j.zone).toBe(srv.zone);
    expect(typeof j.offset_seconds).toBe('number');
    expect(Math.abs(j.offset_seconds)).toBeLessThanOrEqual(2);
    const [, holder, epoch, seq] = /holder=(\w+) epoch=(\d+) seq=(\d+)/.exec(j.lease_text[0])!;
    expect(j.lease).toMatchObject({ holder, epoch: Number(epoch), seq: Number(seq) });

    const tcp = await ctl(['--config', config, '--json', 'dns', '--tcp']);
    expect(JSON.parse(tcp.stdout).addresses).toEqual(j.addresses);
  });

  it('a key the server does not know: exit 77 with the TSIG error named', async () => {
    const keyFile = path.join(dir, 'other.key');
    fs.writeFileSync(keyFile, `key "not-on-server" {\n\talgorithm hmac-sha256;\n\tsecret "${srv.key.secret}";\n};\n`, { mode: 0o600 });
    const other = writeConfig(fs.mkdtempSync(path.join(dir, 'k')), { ...srv, key: { ...srv.key, file: keyFile } }, 'dr');
    const r = await ctl(['--config', other, 'dns']);
    expect(r.code).toBe(77);
    expect(r.stderr).toContain('DNS_TSIG_BADKEY');
  });
});

describe('failoverctl without a server or with bad files', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-ctl-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const fakeSrv = (port: number, keyFile: string): DnsServerFixture =>
    ({ host: '127.0.0.1', port, zone: 'example.test', record: 'syslog.example.test', leaseName: '_lease.syslog.example.test', key: { file: keyFile } }) as DnsServerFixture;

  it('a usage error exits 1 and runs nothing', async () => {
    const r = await ctl(['--config', path.join(dir, 'missing.toml'), 'check-config', '--bogus']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Unknown argument: bogus');
    expect(r.stderr).not.toContain('missing.toml');
  });

  it('import-env turns an original .env.dr into a config that check-config accepts', async () => {
    const env = path.join(dir, '.env.dr');
    fs.writeFileSync(env, 'ROLE=dr\nDNS_RECORD=syslog.example.test\nPRIMARY_IP=10.10.10.10\nDR_IP=10.20.20.20\nMY_IP=10.20.20.20\nDNS_SERVER=127.0.0.1\nUPDATE_INTERVAL=10\nFAIL_THRESHOLD=3\nOTEL_CONTAINER=otel\n');
    const r = await ctl(['import-env', env]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('OTEL_CONTAINER');
    const toml = path.join(dir, 'imported.toml');
    fs.writeFileSync(toml, r.stdout);
    const keyFile = path.join(dir, 'imported.key');
    fs.writeFileSync(keyFile, `key "k" {\n\talgorithm hmac-sha256;\n\tsecret "${Buffer.alloc(32, 1).toString('base64')}";\n};\n`, { mode: 0o600 });
    fs.writeFileSync(toml, r.stdout.replaceAll('/etc/failover-agent/tsig.key', keyFile));
    const check = await ctl(['--config', toml, '--json', 'check-config']);
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ ok: true, role: 'dr' });
  });

  it('a config error exits 78 naming file, key and line', async () => {
    const file = path.join(dir, 'bad.toml');
    fs.writeFileSync(file, 'role = "dr"\n\n[sites]\nprimary = "10.10.10.10"\ndr = "10.20.20.20"\n\n[dns]\nrecord = "syslog.example.test"\nkey_file = "/nonexistent"\ntimeout = "soon"\n');
    const r = await ctl(['--config', file, 'check-config']);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${file}:10`);
    expect(r.stderr).toContain('dns.timeout');
  });

  it('a world-readable key file exits 77', async () => {
    const keyFile = path.join(dir, 'open.key');
    fs.writeFileSync(keyFile, `key "k" {\n\talgorithm hmac-sha256;\n\tsecret "${Buffer.alloc(32, 1).toString('base64')}";\n};\n`);
    fs.chmodSync(keyFile, 0o644);
    const file = writeConfig(dir, fakeSrv(53, keyFile), 'primary');
    const r = await ctl(['--config', file, 'check-config']);
    expect(r.code).toBe(77);
    expect(r.stderr).toContain('KEYFILE_PERMS');
  });

  it('server unreachable: exit 69 within the configured budget', async () => {
    const keyFile = path.join(dir, 'ok.key');
    fs.writeFileSync(keyFile, `key "k" {\n\talgorithm hmac-sha256;\n\tsecret "${Buffer.alloc(32, 1).toString('base64')}";\n};\n`, { mode: 0o600 });
    // Port 9 on loopback (discard): nothing of ours listens there.
    const file = writeConfig(fs.mkdtempSync(path.join(dir, 'u')), fakeSrv(9, keyFile), 'dr');
    const t0 = Date.now();
    const r = await ctl(['--config', file, 'dns']);
    expect(r.code).toBe(69);
    expect(r.stderr).toContain('DNS_TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('with neither --config nor --instance, the only *.toml in the config dir is used', async () => {
    const etc = fs.mkdtempSync(path.join(dir, 'etc'));
    const r0 = await ctl(['check-config'], { FAILOVER_AGENT_CONFIG_DIR: etc });
    expect(r0.code).toBe(78);
    expect(r0.stderr).toContain('no *.toml');
    const keyFile = path.join(etc, 'tsig.key');
    fs.writeFileSync(keyFile, `key "k" {\n\talgorithm hmac-sha512;\n\tsecret "${Buffer.alloc(64, 1).toString('base64')}";\n};\n`, { mode: 0o640 });
    writeConfig(etc, fakeSrv(53, keyFile), 'dr');
    const r = await ctl(['check-config'], { FAILOVER_AGENT_CONFIG_DIR: etc });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('instance dr, role dr, key k hmac-sha512');
  });
});
