/**
 * failoverctl setup's PowerDNS text, applied EXACTLY as printed to a real pdns_server (gsqlite3
 * backend; test/fixtures/dns-servers.ts startPowerDns): the agent's signed reads and CAS updates
 * go through, a wrong key and an address outside ALLOW-DNSUPDATE-FROM are refused, a stale CAS
 * is refused with an authenticated NXRRSET. The sites are loopback addresses: the primary's is
 * 127.0.0.1 (where the agent's packets come from), the DR's 127.0.0.2; 127.0.0.3 is neither.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runInProcess as ctl } from './in-process.js';
import { loadConfig } from '../../src/config/load.js';
import { loadKeyFile } from '../../src/config/keyfile.js';
import { DnsClient } from '../../src/dns/client.js';
import { loadSigning } from '../../src/dns/signing.js';
import { openWitness } from '../../src/lease/open.js';
import { Witness, type Snapshot } from '../../src/lease/witness.js';
import { data, rejection } from '../fixtures/dns-assert.js';
import { freePort, parsePowerDnsConfig, requireBinary, runCommand, startPowerDns, type DnsServerFixture } from '../fixtures/dns-servers.js';

const SITES = { primary: '127.0.0.1', dr: '127.0.0.2' };
const OUTSIDER = '127.0.0.3';

describe('setup output applied to a real PowerDNS (gsqlite3)', () => {
  let dir: string;
  let srv: DnsServerFixture;
  let printed: string;
  let keyFile: string;
  const primary = (): string => path.join(dir, 'primary.toml');

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-setup-pdns-'));
    const port = await freePort();
    const r = await ctl([
      '--json', 'setup', '--out', dir, '--record', 'syslog.example.test', '--zone', 'example.test',
      '--primary-ip', SITES.primary, '--dr-ip', SITES.dr, '--dns-server', `127.0.0.1:${port}`,
      '--collector', 'none', '--http-port', String(await freePort()),
    ]);
    expect(r.code, r.stderr).toBe(0);
    printed = (JSON.parse(r.stdout) as { powerdns: string }).powerdns;
    keyFile = path.join(dir, 'tsig.key');
    srv = await startPowerDns({ port, serverConfig: printed });
  }, 60_000);
  afterAll(async () => {
    await srv?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the printed text is what the fixture applied: dnsupdate on, the key imported, both sites allowed', () => {
    const plan = parsePowerDnsConfig(printed);
    expect(plan.settings).toContain('dnsupdate=yes');
    expect(plan.pdnsutil.map((a) => a[0])).toEqual(['import-tsig-key', 'set-meta', 'set-meta']);
    expect(plan.pdnsutil[2]).toEqual(['set-meta', 'example.test', 'ALLOW-DNSUPDATE-FROM', '127.0.0.1/32', '127.0.0.2/32']);
  });

  it('check-config, init and the signed CAS of the agent go through, reads authenticated', { timeout: 60_000 }, async () => {
    const check = await ctl(['--config', primary(), 'check-config']);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/DNS round trip: [\d.]+ ms/);
    const init = await ctl(['--config', primary(), 'init']);
    expect(init.code, init.stdout + init.stderr).toBe(0);

    const config = loadConfig(primary());
    const { client, witness } = await openWitness(config, loadSigning(config));
    const read = await client.read(srv.record, 'A');
    expect(read.authenticated).toBe(true);
    expect(read.values).toEqual([SITES.primary]);
    const seen = await witness.read();
    expect(seen.lease).toMatchObject({ holder: 'primary', epoch: 1 });
    const renewed = await witness.renew(seen, Math.floor(Date.now() / 1000));
    expect(renewed.snapshot.lease!.seq).toBe(seen.lease!.seq + 1);
    expect((await witness.read()).lease).toEqual(renewed.snapshot.lease);
    await witness.transfer(await witness.read(), 'dr', SITES, Math.floor(Date.now() / 1000));
    expect(await witness.read()).toMatchObject({ addresses: [SITES.dr], lease: { holder: 'dr', epoch: 2 } });
  });

  it('a stale CAS is refused with an authenticated NXRRSET and changes nothing', { timeout: 30_000 }, async () => {
    const config = loadConfig(primary());
    const { witness } = await openWitness(config, loadSigning(config));
    const before = await witness.read();
    const stale: Snapshot = { ...before, addresses: ['192.0.2.99'] };
    const err = await rejection(witness.transfer(stale, 'primary', SITES, Math.floor(Date.now() / 1000)));
    expect(err.code).toBe('DNS_PREREQ_FAILED');
    expect(err.rcode).toBe('NXRRSET');
    expect(err.authenticated).toBe(true);
    expect(data(await witness.read())).toEqual(data(before));
  });

  it('a wrong secret under the right key name: an unsigned REFUSED, not trusted, nothing changed', { timeout: 30_000 }, async () => {
    const key = loadKeyFile(keyFile);
    const good = new Witness(new DnsClient({ server: { host: srv.host, port: srv.port }, key, timeoutMs: 3000, retries: 0 }), { zone: srv.zone, record: srv.record, leaseName: srv.leaseName, ttlSeconds: 30 });
    const before = await good.read();
    const bad = new Witness(
      new DnsClient({ server: { host: srv.host, port: srv.port }, key: { ...key, secret: Buffer.alloc(32, 7) }, timeoutMs: 1500, retries: 0 }),
      { zone: srv.zone, record: srv.record, leaseName: srv.leaseName, ttlSeconds: 30 },
    );
    const err = await rejection(bad.renew(before, Math.floor(Date.now() / 1000)));
    expect(err.code).toBe('DNS_TSIG_UNSIGNED');
    expect(err.authenticated).toBe(false);
    expect(err.message).toMatch(/unsigned REFUSED/);
    expect(srv.log()).toMatch(/Signature with TSIG key '.+' failed to validate/);
    expect(data(await good.read())).toEqual(data(before));
  });

  it('ALLOW-DNSUPDATE-FROM: the DR site\'s address may update, any other is REFUSED (signed)', { timeout: 30_000 }, async () => {
    const nsupdate = requireBinary('nsupdate');
    const dig = requireBinary('dig');
    const from = async (local: string, value: string): Promise<string> => {
      const r = await runCommand(nsupdate, ['-k', keyFile], {
        input: `server ${srv.host} ${srv.port}\nlocal ${local}\nzone ${srv.zone}\nupdate add probe-${value}.${srv.zone} 30 TXT "${value}"\nsend\n`,
        timeoutMs: 15_000,
      });
      return `${r.code} ${r.stdout}${r.stderr}`.trim();
    };
    const txt = async (value: string): Promise<string> =>
      (await runCommand(dig, ['+short', '+norec', '-p', String(srv.port), `@${srv.host}`, `probe-${value}.${srv.zone}`, 'TXT'], { timeoutMs: 10_000 })).stdout.trim();

    expect(await from(SITES.dr, 'dr')).toBe('0');
    expect(await txt('dr')).toBe('"dr"');
    const refused = await from(OUTSIDER, 'outsider');
    expect(refused).toMatch(/^2 .*update failed: REFUSED/s);
    // signed: nsupdate verified the refusal (an unsigned one reads "expected a TSIG or SIG(0)")
    expect(refused).not.toMatch(/TSIG error/);
    expect(srv.log()).toMatch(new RegExp(`from ${OUTSIDER.replace(/\./g, '\\.')} for example\\.test: Remote not listed in allow-dnsupdate-from`));
    expect(await txt('outsider')).toBe('');
  });
});
