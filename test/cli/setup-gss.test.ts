/**
 * failoverctl setup with GSS-TSIG (issue 22): the way to sign asked (or --auth), [dns.gss] written
 * instead of a key file, and the server side printed for BIND (tkey-gssapi-keytab, update-policy
 * naming the principal) and Active Directory (one account, its keytab, one domain controller).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { Output } from '../../src/cli/output.js';
import { keytabState, setupCommand, type SetupArgs } from '../../src/cli/setup.js';
import { runInProcess } from './in-process.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-setup-gss-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const FLAGS = ['--record', 'syslog.example.com', '--zone', 'example.com', '--primary-ip', '10.10.10.10', '--dr-ip', '10.20.20.20', '--dns-server', '10.10.1.53'];
const GSS = ['--auth', 'gss-tsig', '--principal', 'failover-agent@EXAMPLE.COM'];
const P = 'failover-agent@EXAMPLE.COM';

function setup(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runInProcess(['setup', '--out', dir, ...args]);
}

/** A keytab as MIT writes one: 0x05 0x02 then entries (only the head is checked before the library reads it). */
function keytab(file: string, mode: number): void {
  fs.writeFileSync(file, Buffer.from([0x05, 0x02, 0, 0, 0, 0]), { mode });
  fs.chmodSync(file, mode);
}

describe('failoverctl setup --auth gss-tsig (flags)', () => {
  it('writes dns.auth and [dns.gss] into both files, no key file; the agent reads them', async () => {
    const r = await setup([...FLAGS, ...GSS]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(['dr.toml', 'primary.toml']);
    for (const f of ['primary.toml', 'dr.toml']) {
      const c = loadConfig(path.join(dir, f));
      expect(c.dns, f).toMatchObject({ auth: 'gss-tsig', key_file: undefined, gss: { principal: P, keytab: path.join(dir, 'failover.keytab'), server_principal: undefined } });
      expect(c.dns.server).toEqual({ host: '10.10.1.53', port: 53 });
    }
    expect(fs.readFileSync(path.join(dir, 'primary.toml'), 'utf8')).toMatch(/\[dns\]\n(.*\n)*auth = "gss-tsig"\n\n#.*\n\[dns\.gss\]\nprincipal = "failover-agent@EXAMPLE\.COM"\n/);
    expect(r.stdout).toContain(`wrote ${path.join(dir, 'primary.toml')} and ${path.join(dir, 'dr.toml')} (dns.auth = "gss-tsig"`);
    expect(r.stdout).toContain(`the keytab ${path.join(dir, 'failover.keytab')} does not exist yet`);
    expect(r.stdout).not.toMatch(/TSIG key|hmac-sha256|pdnsutil|update-owner-name/);
  });

  it('--server-principal and --keytab are what the files say', async () => {
    const kt = path.join(dir, 'kt', 'fa.keytab');
    const r = await setup([...FLAGS, ...GSS, '--keytab', kt, '--server-principal', 'DNS/dc1.example.com']);
    expect(r.code, r.stderr).toBe(0);
    expect(loadConfig(path.join(dir, 'dr.toml')).dns.gss).toEqual({ principal: P, keytab: kt, server_principal: 'DNS/dc1.example.com' });
    expect(r.stdout).toContain('ktadd -k /etc/bind/dns.keytab DNS/dc1.example.com');
    expect(r.stdout).toContain('Server principal: DNS/dc1.example.com.');
  });

  it('prints BIND: tkey-gssapi-keytab and the grants to the principal on the record, the lease and the control record', async () => {
    const r = await setup([...FLAGS, ...GSS]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/options \{\n(\t\/\/.*\n)*\ttkey-gssapi-keytab "\/etc\/bind\/dns\.keytab";\n\};/);
    expect(r.stdout).toContain(`grant ${P} name syslog.example.com. A AAAA;`);
    expect(r.stdout).toContain(`grant ${P} name _lease.syslog.example.com. TXT;`);
    expect(r.stdout).toContain(`grant ${P} name _control.syslog.example.com. TXT;`);
  });

  it('prints Active Directory: one account, the group alternative, the keytab exported once, one domain controller', async () => {
    const r = await setup([...FLAGS, ...GSS]);
    expect(r.code, r.stderr).toBe(0);
    const ad = r.stdout.slice(r.stdout.indexOf('# ---- Active Directory'));
    expect(ad).toContain(`ONE account for both sites: ${P}`);
    expect(ad).toMatch(/the account that creates a record owns it/);
    expect(ad).toMatch(/lock each other out/);
    expect(ad).toContain('syslog.example.com., _lease.syslog.example.com., _control.syslog.example.com.');
    expect(ad).toMatch(/samba-tool dsacl set --objectdn=/);
    expect(ad).toContain(`ktpass /princ ${P} /mapuser failover-agent`);
    expect(ad).toMatch(/running it again invalidates the keytab/);
    expect(ad).toContain(`samba-tool domain exportkeytab failover.keytab --principal=${P}`);
    expect(ad).toMatch(/dns\.server = 10\.10\.1\.53: ONE domain controller/);
    expect(ad).toMatch(/multi-master/);
    expect(ad).toContain('the realm EXAMPLE.COM');
    expect(r.stdout).toMatch(/Knot, PowerDNS: not printed for GSS-TSIG; use --auth tsig/);
  });

  it('--json: the BIND and AD texts and the keytab state, no key', async () => {
    const r = await runInProcess(['--json', 'setup', '--out', dir, ...FLAGS, ...GSS]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(j.files).toEqual({ primary: path.join(dir, 'primary.toml'), dr: path.join(dir, 'dr.toml') });
    expect(j.bind).toContain('tkey-gssapi-keytab');
    expect(j.ad).toContain('ONE account');
    expect(j).not.toHaveProperty('knot');
  });

  it('never overwrites without --force (no key file to guard)', async () => {
    expect((await setup([...FLAGS, ...GSS])).code).toBe(0);
    const again = await setup([...FLAGS, ...GSS]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/primary\.toml, .*dr\.toml already exist; nothing written/);
  });

  it('not on a terminal and no --principal: names it', async () => {
    const r = await setup([...FLAGS, '--auth', 'gss-tsig']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not a terminal, so no questions: give --principal$/m);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('bad answers: exit 78 naming each flag, nothing written', async () => {
    const r = await setup([...FLAGS, '--auth', 'gss-tsig', '--principal', 'failover-agent', '--keytab', 'rel/fa.keytab', '--server-principal', 'dc1.example.com']);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/--principal: dns\.gss\.principal: must be a Kerberos principal with its realm/);
    expect(r.stderr).toMatch(/--server-principal: dns\.gss\.server_principal: must be a service principal/);
    expect(fs.readdirSync(dir)).toEqual([]);
    const bad = await setup([...FLAGS, '--auth', 'kerberos']);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/--auth: answer tsig or gss-tsig/);
  });

  it("the other way's flags are refused, not dropped", async () => {
    const a = await setup([...FLAGS, ...GSS, '--key-file', path.join(dir, 'k.key')]);
    expect(a.code).toBe(78);
    expect(a.stderr).toMatch(/--key-file is for --auth tsig, not gss-tsig/);
    const b = await setup([...FLAGS, '--principal', P, '--keytab', path.join(dir, 'k.keytab')]);
    expect(b.code).toBe(78);
    expect(b.stderr).toMatch(/--principal, --keytab are for --auth gss-tsig, not tsig/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('--auth tsig is the default and what the HMAC setup always wrote', async () => {
    const r = await setup([...FLAGS, '--auth', 'tsig']);
    expect(r.code, r.stderr).toBe(0);
    expect(loadConfig(path.join(dir, 'primary.toml')).dns).toMatchObject({ auth: 'tsig', key_file: path.join(dir, 'tsig.key'), gss: undefined });
    expect(fs.readFileSync(path.join(dir, 'primary.toml'), 'utf8')).not.toMatch(/auth =|dns\.gss/);
  });
});

describe('the keytab line', () => {
  it('missing, not private, or passing check-config', () => {
    const kt = path.join(dir, 'fa.keytab');
    expect(keytabState(kt)).toMatch(/does not exist yet: make it/);
    keytab(kt, 0o644);
    expect(keytabState(kt)).toMatch(/does not pass check-config yet: .*fa\.keytab/);
    keytab(kt, 0o600);
    expect(keytabState(kt)).toBe(`the keytab ${kt} passes check-config's file checks`);
    fs.writeFileSync(kt, 'not a keytab', { mode: 0o600 });
    expect(keytabState(kt)).toMatch(/is not a keytab/);
  });
});

/** setup on a stand-in terminal: each prompt answered when it shows (readline drops lines typed early). */
async function wizard(args: Partial<SetupArgs>, answers: [RegExp, string][]): Promise<{ code: number; screen: string; error?: Error }> {
  const stdin = Object.assign(new PassThrough(), { isTTY: true });
  const stdout = new PassThrough();
  let screen = '';
  let seen = 0;
  const pending = [...answers];
  stdout.on('data', (c) => {
    screen += String(c).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    const next = pending[0];
    if (next && next[0].test(screen.slice(seen))) {
      pending.shift();
      seen = screen.length;
      setImmediate(() => stdin.write(`${next[1]}\n`));
    }
  });
  const out = new Output({ stdout, stderr: stdout }, () => false);
  try {
    const code = await setupCommand({ out: dir, force: false, ...args }, out, { stdin, stdout });
    return { code, screen };
  } catch (err) {
    return { code: -1, screen, error: err as Error };
  }
}

describe('failoverctl setup on a terminal: the way to sign', () => {
  // dns.server left to ask: the wizard asks only when a required answer is missing.
  const base: Partial<SetupArgs> = { record: 'syslog.example.com', zone: 'example.com', primaryIp: '10.10.10.10', drIp: '10.20.20.20', primaryVm: '', drVm: '', webhook: '', collector: 'none', httpPort: '9465' };
  const server: [RegExp, string] = [/DNS server taking the updates \(host or host:port\): $/, '10.10.1.53'];

  it('gss-tsig: asks principal, keytab and server principal, not the TSIG key; re-asks a bad principal', async () => {
    const r = await wizard(base, [
      server,
      [/How to sign the updates: "tsig" .* or "gss-tsig" .* \[tsig\]: $/, 'gss-tsig'],
      [/Kerberos principal both sites sign as .*: $/, 'failover-agent'],
      [/must be a Kerberos principal with its realm[\s\S]*Kerberos principal both sites sign as .*: $/, P],
      [new RegExp(`Path of that principal's keytab on both sites \\[${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/failover\\.keytab\\]: $`), ''],
      [/DNS server's service principal \(empty: DNS\/<the zone's SOA MNAME>, found at start\): $/, 'DNS/dc1.example.com'],
    ]);
    expect(r.error).toBeUndefined();
    expect(r.code).toBe(0);
    expect(r.screen).not.toMatch(/TSIG key name|Where to write the TSIG key file/);
    expect(loadConfig(path.join(dir, 'primary.toml')).dns).toMatchObject({ auth: 'gss-tsig', gss: { principal: P, keytab: path.join(dir, 'failover.keytab'), server_principal: 'DNS/dc1.example.com' } });
    expect(r.screen).toContain(`grant ${P} name _control.syslog.example.com. TXT;`);
  });

  it('an empty principal is refused (no default can guess the account)', async () => {
    const r = await wizard({ ...base, auth: 'gss-tsig', serverPrincipal: '', keytab: path.join(dir, 'x.keytab') }, [
      server,
      [/Kerberos principal both sites sign as .*: $/, ''],
      [/an answer is required\n\s*Kerberos principal both sites sign as .*: $/, P],
    ]);
    expect(r.error).toBeUndefined();
    expect(loadConfig(path.join(dir, 'dr.toml')).dns.gss?.principal).toBe(P);
  });

  it('tsig (Enter): asks the key name and file as before, nothing of Kerberos', async () => {
    const r = await wizard(base, [
      server,
      [/How to sign the updates: .* \[tsig\]: $/, ''],
      [/TSIG key name \[failover\]: $/, ''],
      [/Where to write the TSIG key file \[.*tsig\.key\]: $/, ''],
    ]);
    expect(r.error).toBeUndefined();
    expect(r.screen).not.toMatch(/Kerberos principal both|Path of that principal's keytab|DNS server's service principal/);
    expect(loadConfig(path.join(dir, 'primary.toml')).dns).toMatchObject({ auth: 'tsig', key_file: path.join(dir, 'tsig.key') });
  });
});
