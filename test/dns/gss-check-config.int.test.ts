/**
 * failoverctl check-config with dns.auth = "gss-tsig" on a REAL local realm (MIT krb5kdc + BIND 9
 * with tkey-gssapi-keytab on 127.0.0.1): it acquires credentials from the keytab and negotiates
 * the context (TKEY) with the server, and says so; a wrong service principal fails with the
 * Kerberos minor status in words (exit 77), an unreachable KDC too (exit 69), a DNS server that
 * does not answer stays "not measured" as with HMAC TSIG (exit 0).
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runInProcess } from '../cli/in-process.js';
import { freePort, requireBinary, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { gssDnsTable, requireKerberosTools, startGssBind, startKdc, type KdcFixture } from '../fixtures/kdc.js';

const AGENT = 'failover-agent@EXAMPLE.TEST';
const SERVICE = 'DNS/ns.example.test';

let kdc: KdcFixture;
let bind: DnsServerFixture;
let dir: string;

beforeAll(async () => {
  requireKerberosTools();
  requireBinary('named');
  kdc = await startKdc();
  Object.assign(process.env, kdc.env);
  const serverKeytab = await kdc.addPrincipal(`${SERVICE}@EXAMPLE.TEST`);
  const agentKeytab = await kdc.addPrincipal(AGENT);
  bind = await startGssBind(serverKeytab, [{ principal: AGENT, name: '_lease.syslog.example.test.', types: 'TXT' }]);
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fa-gss-check-'));
  await fsp.copyFile(agentKeytab, path.join(dir, 'failover.keytab'));
  await fsp.chmod(path.join(dir, 'failover.keytab'), 0o600);
}, 60_000);

afterAll(async () => {
  await bind?.stop();
  await kdc?.stop();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

/** A gss-tsig configuration file; `server` defaults to the fixture's BIND. */
async function config(name: string, o: { serverPrincipal?: string; server?: string } = {}): Promise<string> {
  const file = path.join(dir, `${name}.toml`);
  await fsp.writeFile(
    file,
    `role = "primary"
[sites]
primary = "10.10.10.10"
dr = "10.20.20.20"
${gssDnsTable(bind, { principal: AGENT, ...o })}
[collector]
control = "none"
`,
  );
  return file;
}

describe('check-config with gss-tsig (MIT krb5kdc + BIND 9)', () => {
  it('negotiates a context with the server and measures signed reads over it', async () => {
    const r = await runInProcess(['--config', await config('good'), 'check-config']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^gss: context with DNS\/ns\.example\.test negotiated \(credentials from the keytab, TKEY\) in \d+ ms, valid for \d+h/m);
    expect(r.stdout).toMatch(/DNS round trip: [\d.]+ ms \(median of 3 signed reads\)/);
    const j = await runInProcess(['--config', await config('good'), '--json', 'check-config']);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, gssNegotiation: { target: 'DNS/ns.example.test', tookMs: expect.any(Number), lifetimeMs: expect.any(Number) } });
  }, 30_000);

  it('a wrong service principal: exit 77, "Server not found in Kerberos database"', async () => {
    const r = await runInProcess(['--config', await config('wrong-service', { serverPrincipal: 'DNS/nosuch.example.test' }), 'check-config']);
    expect(r.code, r.stderr + r.stdout).toBe(77);
    expect(r.stderr).toMatch(/DNS\/nosuch\.example\.test/);
    expect(r.stderr).toMatch(/Server not found in Kerberos database/);
    expect(r.stderr).toMatch(/\[GSS_ERROR\]/);
    expect(r.stdout).toBe('');
  }, 30_000);

  it('a DNS server that does not answer: not measured, not fatal (as with HMAC TSIG)', async () => {
    const r = await runInProcess(['--config', await config('no-dns', { serverPrincipal: SERVICE, server: `127.0.0.1:${await freePort()}` }), 'check-config']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/DNS round trip: not measured \(.*(TKEY: cannot connect|no answer)/);
    expect(r.stdout).not.toMatch(/^gss: context/m);
  }, 30_000);

  it('an unreachable KDC: exit 69, "Cannot contact any KDC for requested realm"', async () => {
    // The realm's krb5.conf with its KDC on a port where nothing listens (read at each acquisition).
    const krb5 = path.join(dir, 'krb5-no-kdc.conf');
    const text = await fsp.readFile(kdc.env.KRB5_CONFIG, 'utf8');
    await fsp.writeFile(krb5, text.replace(/kdc = 127\.0\.0\.1:\d+/, `kdc = 127.0.0.1:${await freePort()}`));
    expect(await fsp.readFile(krb5, 'utf8')).not.toBe(text);
    process.env.KRB5_CONFIG = krb5;
    try {
      const r = await runInProcess(['--config', await config('no-kdc'), 'check-config']);
      expect(r.code, r.stderr + r.stdout).toBe(69);
      expect(r.stderr).toMatch(/Cannot contact any KDC for requested realm/);
      expect(r.stderr).toMatch(/\[GSS_ERROR\]/);
    } finally {
      process.env.KRB5_CONFIG = kdc.env.KRB5_CONFIG;
    }
  }, 60_000);
});
