/**
 * GSS-TSIG end to end against a REAL local realm: MIT krb5kdc and BIND 9 with tkey-gssapi-keytab,
 * both on 127.0.0.1 (test/fixtures/kdc.ts, test/fixtures/dns-servers.ts). The agent's side is the
 * gss addon, the TKEY negotiation over TCP and the GSS-TSIG signer behind DnsClient; `dig` and
 * `nsupdate -g` (after kinit into a temp ccache) are the outside witnesses. A missing krb5kdc,
 * named, nsupdate or kinit fails the test (never a skip).
 */
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import { GssError, loadGssAddon, type GssApi, type GssCredentials } from '../../src/dns/gss/addon.js';
import { negotiate, type GssTsigContext } from '../../src/dns/gss/tkey.js';
import { change, prereq } from '../../src/dns/update.js';
import { decodeMessage, NO_FLAGS } from '../../src/dns/wire.js';
import { requireBinary, runCommand, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { requireKerberosTools, startGssBind, startKdc, type KdcFixture } from '../fixtures/kdc.js';

const AGENT = 'failover-agent@EXAMPLE.TEST';
const INTRUDER = 'intruder@EXAMPLE.TEST';
// The zone's SOA MNAME is ns.example.test: the ticket nsupdate -g asks for, and so do we.
const SERVICE = 'DNS/ns.example.test';
const A = { name: 'syslog.example.test', type: 'A' as const };

let kdc: KdcFixture;
let bind: DnsServerFixture;
let gss: GssApi;
const keytabs: Record<string, string> = {};
const creds: GssCredentials[] = [];
const contexts: GssTsigContext[] = [];
let scratch: string;

beforeAll(async () => {
  // Checked first: a missing tool fails here, before anything starts.
  requireKerberosTools();
  for (const tool of ['named', 'nsupdate', 'dig']) requireBinary(tool);
  gss = loadGssAddon();
  kdc = await startKdc();
  // named, kinit, nsupdate and the addon (libkrb5 reads it per context) all use this realm.
  Object.assign(process.env, kdc.env);
  const serverKeytab = await kdc.addPrincipal(`${SERVICE}@EXAMPLE.TEST`);
  keytabs[AGENT] = await kdc.addPrincipal(AGENT);
  keytabs[INTRUDER] = await kdc.addPrincipal(INTRUDER);
  bind = await startGssBind(serverKeytab, [
    { principal: AGENT, name: 'syslog.example.test.', types: 'A AAAA' },
    { principal: AGENT, name: '_lease.syslog.example.test.', types: 'TXT' },
  ]);
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'fa-gss-int-'));
}, 60_000);

afterAll(async () => {
  for (const c of contexts) c.close();
  for (const c of creds) gss.releaseCredentials(c);
  await bind?.stop();
  await kdc?.stop();
  if (scratch) await fsp.rm(scratch, { recursive: true, force: true });
});

async function session(principal: string, serverPrincipal = SERVICE): Promise<GssTsigContext> {
  const cred = await gss.acquireCredentials(principal, keytabs[principal]!);
  creds.push(cred);
  const ctx = await negotiate({ gss, cred, principal, server: { host: bind.host, port: bind.port }, serverPrincipal, timeoutMs: 10_000 });
  contexts.push(ctx);
  return ctx;
}

function client(ctx: GssTsigContext): DnsClient {
  return new DnsClient({ server: { host: bind.host, port: bind.port }, signer: ctx.signer, timeoutMs: 2_000, retries: 1 });
}

async function dig(name: string, type: string): Promise<string[]> {
  const r = await runCommand('dig', ['+norec', '+short', '-p', String(bind.port), '@127.0.0.1', name, type]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').filter(Boolean).sort();
}

describe('GSS-TSIG against MIT krb5kdc and BIND 9', () => {
  it('negotiates a context with TKEY over TCP and reads the SOA signed with it', async () => {
    const ctx = await session(AGENT);
    expect(ctx.keyName).toMatch(/^\d+\.sig-ns\.example\.test$/);
    expect(ctx.signer).toMatchObject({ algorithm: 'gss-tsig', principal: AGENT });
    const r = await client(ctx).read('example.test', 'SOA');
    expect(r.authenticated).toBe(true);
    expect(r.values[0]).toMatchObject({ mname: 'ns.example.test' });
    // The MAC is an RFC 4121 MIC token (TOK_ID 04 04), as nsupdate -g sends: aes256-sha1-96 makes it 28 bytes.
    const mic = ctx.signer.sign({ id: 1, opcode: 'QUERY', flags: NO_FLAGS, rcode: 0, questions: [{ name: 'example.test', type: 'SOA', class: 'IN' }], answers: [], authorities: [], additionals: [] }, Date.now() / 1000).mac;
    expect(mic.subarray(0, 2).toString('hex')).toBe('0404');
    expect(mic.length).toBe(28);
  });

  it('applies a signed update (dig sees it) and a stale CAS answers NXRRSET, authenticated', async () => {
    const c = client(await session(AGENT));
    const u = await c.update('example.test', [prereq.rrsetAbsent(A)], [change.add({ ...A, data: '10.0.0.1' }, 30)]);
    expect(u.authenticated).toBe(true);
    expect(await dig('syslog.example.test', 'A')).toEqual(['10.0.0.1']);
    const stale = await c.update('example.test', prereq.rrsetEquals(A, ['10.9.9.9']), [change.deleteRrset(A)]).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(DnsError);
    expect(stale).toMatchObject({ code: 'DNS_PREREQ_FAILED', rcode: 'NXRRSET', authenticated: true });
    expect(await dig('syslog.example.test', 'A')).toEqual(['10.0.0.1']);
  });

  it('interoperates with nsupdate -g: it sees the agent\'s write, and the agent sees its', async () => {
    const c = client(await session(AGENT));
    await c.update('example.test', [], [change.deleteRrset(A), change.add({ ...A, data: '10.0.0.3' }, 30)]);
    const ccache = `FILE:${path.join(scratch, 'nsupdate.ccache')}`;
    const kinit = await runCommand('env', [`KRB5CCNAME=${ccache}`, 'kinit', '-k', '-t', keytabs[AGENT]!, AGENT]);
    expect(kinit.code, kinit.stderr).toBe(0);
    // The prerequisite holds only if nsupdate sees the value the agent wrote.
    const script = [
      `server 127.0.0.1 ${bind.port}`,
      'zone example.test',
      'prereq yxrrset syslog.example.test. A 10.0.0.3',
      'update delete syslog.example.test. A',
      'update add syslog.example.test. 30 A 10.0.0.4',
      'send',
      '',
    ].join('\n');
    const ns = await runCommand('env', [`KRB5CCNAME=${ccache}`, 'nsupdate', '-g'], { input: script, timeoutMs: 20_000 });
    expect(ns.code, `${ns.stdout}${ns.stderr}\n${bind.log().slice(-2000)}`).toBe(0);
    const r = await c.read('syslog.example.test', 'A');
    expect(r).toMatchObject({ authenticated: true, values: ['10.0.0.4'] });
    // And nsupdate's stale CAS fails against the agent's next write.
    await c.update('example.test', prereq.rrsetEquals(A, ['10.0.0.4']), [change.deleteRrset(A), change.add({ ...A, data: '10.0.0.5' }, 30)]);
    const again = await runCommand('env', [`KRB5CCNAME=${ccache}`, 'nsupdate', '-g'], { input: script.replace('10.0.0.3', '10.0.0.4'), timeoutMs: 20_000 });
    expect(again.code).not.toBe(0);
    expect(again.stdout + again.stderr).toMatch(/NXRRSET/);
    expect(await dig('syslog.example.test', 'A')).toEqual(['10.0.0.5']);
  });

  it('a principal the update policy does not grant is REFUSED, named in the error', async () => {
    const c = client(await session(INTRUDER));
    const err = await c.update('example.test', [], [change.add({ ...A, data: '10.6.6.6' }, 30)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DnsError);
    expect(err).toMatchObject({ code: 'DNS_REFUSED', exitCode: 77, authenticated: true });
    expect((err as Error).message).toContain(INTRUDER);
    expect(await dig('syslog.example.test', 'A')).not.toContain('10.6.6.6');
  });

  it('a wrong service principal fails with the Kerberos reason in words', async () => {
    const err = await session(AGENT, 'DNS/nowhere.example.test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GssError);
    expect((err as Error).message).toMatch(/Server not found in Kerberos database/);
  });

  it('a byte-identical replay of a signed update is refused', async () => {
    const ctx = await session(AGENT);
    const signed = ctx.signer.sign(
      { id: 0x5151, opcode: 'UPDATE', flags: NO_FLAGS, rcode: 0, questions: [{ name: 'example.test', type: 'SOA', class: 'IN' }], answers: [], authorities: [change.add({ ...A, data: '10.0.0.9' }, 30)], additionals: [] },
      Date.now() / 1000,
    );
    const send = async (): Promise<number> => {
      return new Promise((resolve, reject) => {
        const s = net.connect({ host: bind.host, port: bind.port }, () => {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(signed.wire.length);
          s.write(Buffer.concat([len, signed.wire]));
        });
        let buf = Buffer.alloc(0);
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            s.destroy();
            resolve(decodeMessage(buf.subarray(2)).message.rcode);
          }
        });
        s.on('error', reject);
      });
    };
    expect(await send()).toBe(0);
    // NOTAUTH (9): BIND's gss_verify_mic sees a duplicate token
    expect(await send()).toBe(9);
  });
});
