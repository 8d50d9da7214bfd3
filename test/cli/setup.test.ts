/** failoverctl setup, non-interactive (flags), in-process against a temp directory. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { loadKeyFile } from '../../src/config/keyfile.js';
import { senderSnippets } from '../../src/cli/senders.js';
import { runInProcess } from './in-process.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-setup-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

// The DNS server: loopback's discard port. check-config asks it below and nothing answers there
// (its round trip "not measured": the file and key checks are what is tested); no packet leaves.
const FLAGS = ['--record', 'syslog.example.com', '--zone', 'example.com', '--primary-ip', '10.10.10.10', '--dr-ip', '10.20.20.20', '--dns-server', '127.0.0.1:9'];

function setup(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runInProcess(['setup', '--out', dir, ...args]);
}

describe('failoverctl setup (flags)', () => {
  it('writes both files and the key; both pass check-config; prints BIND, Knot and PowerDNS', async () => {
    const r = await setup([...FLAGS, '--primary-vm', 'http://10.10.10.10:8428', '--dr-vm', 'http://10.20.20.20:8428', '--webhook', 'https://hooks.example.com/x']);
    expect(r.code, r.stderr).toBe(0);
    const key = path.join(dir, 'tsig.key');
    expect(fs.statSync(key).mode & 0o777).toBe(0o640);
    expect(loadKeyFile(key)).toMatchObject({ name: 'failover', algorithm: 'hmac-sha256' });
    expect(loadKeyFile(key).secret).toHaveLength(32);
    const primary = loadConfig(path.join(dir, 'primary.toml'));
    const dr = loadConfig(path.join(dir, 'dr.toml'));
    for (const c of [primary, dr]) expect(c.dns.key_file).toBe(key);
    expect(primary).toMatchObject({ role: 'primary', sites: { primary: '10.10.10.10', dr: '10.20.20.20' }, vmsync: { enabled: true, local_url: 'http://10.10.10.10:8428', remote_url: 'http://10.20.20.20:8428' } });
    expect(dr).toMatchObject({ role: 'dr', vmsync: { local_url: 'http://10.20.20.20:8428', remote_url: 'http://10.10.10.10:8428' }, notify: { webhook: 'https://hooks.example.com/x' } });
    expect(dr.http.listen).toEqual({ host: '10.20.20.20', port: 9465 });
    expect(dr.health.targets).toEqual(['http://10.10.10.10:9465/healthz']);
    for (const f of ['primary.toml', 'dr.toml']) {
      const check = await runInProcess(['--config', path.join(dir, f), 'check-config']);
      expect(check.code, check.stderr).toBe(0);
      expect(check.stdout).toMatch(/^DNS round trip: not measured \(/m);
    }
    const secret = loadKeyFile(key).secret.toString('base64');
    expect(r.stdout).toContain(`grant failover name syslog.example.com. A AAAA;`);
    expect(r.stdout).toContain(`grant failover name _lease.syslog.example.com. TXT;`);
    expect(r.stdout).toContain(`grant failover name _control.syslog.example.com. TXT;`);
    // and the senders' side: the measured configurations for this record
    expect(r.stdout).toContain(senderSnippets('syslog.example.com'));
    expect(r.stdout).toContain(`update-owner-name: [syslog.example.com., _lease.syslog.example.com., _control.syslog.example.com.]`);
    expect(r.stdout).toContain(`pdnsutil import-tsig-key failover hmac-sha256 ${secret}`);
    expect(r.stdout.split(secret).length - 1).toBe(3); // BIND, Knot, PowerDNS
  });

  it('never overwrites without --force; --force writes a new key', async () => {
    expect((await setup(FLAGS)).code).toBe(0);
    const before = Object.fromEntries(['primary.toml', 'dr.toml', 'tsig.key'].map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
    const again = await setup([...FLAGS, '--dr-ip', '10.30.30.30']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/primary\.toml, .*dr\.toml, .*tsig\.key already exist; nothing written \(--force overwrites\)/);
    for (const [f, text] of Object.entries(before)) expect(fs.readFileSync(path.join(dir, f), 'utf8'), f).toBe(text);
    const forced = await setup([...FLAGS, '--dr-ip', '10.30.30.30', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(loadConfig(path.join(dir, 'dr.toml')).sites.dr).toBe('10.30.30.30');
    expect(fs.readFileSync(path.join(dir, 'tsig.key'), 'utf8')).not.toBe(before['tsig.key']);
  });

  it('a bad answer: exit 78 naming the flag and the key, nothing written', async () => {
    const r = await setup([...FLAGS, '--primary-ip', '10.10.10.300', '--webhook', 'ftp://x', '--http-port', '0']);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/--primary-ip: sites\.primary: /);
    expect(r.stderr).toMatch(/--webhook: notify\.webhook: must be "" \(no webhook\) or an http\(s\) URL/);
    expect(r.stderr).toMatch(/--http-port: must be a port number/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('only one VictoriaMetrics URL: refused, naming the missing one', async () => {
    const r = await setup([...FLAGS, '--primary-vm', 'http://10.10.10.10:8428']);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/--dr-vm: give both VictoriaMetrics URLs, or neither/);
  });

  it('not on a terminal and answers missing: names the flags to give, writes nothing', async () => {
    const r = await setup(['--record', 'syslog.example.com']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not a terminal, so no questions: give --zone, --primary-ip, --dr-ip, --dns-server/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('--key-file and --collector none are what the files say', async () => {
    const key = path.join(dir, 'keys', 'k.key');
    const r = await setup([...FLAGS, '--key-file', key, '--key-name', 'site-key', '--collector', 'none', '--http-port', '9555']);
    expect(r.code, r.stderr).toBe(0);
    const c = loadConfig(path.join(dir, 'primary.toml'));
    expect(c.dns.key_file).toBe(key);
    expect(c.collector.control).toBe('none');
    expect(c.http.listen).toEqual({ host: '10.10.10.10', port: 9555 });
    expect(loadKeyFile(key).name).toBe('site-key');
  });
});

describe('failoverctl setup: the collector handover answers', () => {
  it('written always, at the defaults too, with a comment; check-config reads them', async () => {
    const r = await setup(FLAGS);
    expect(r.code, r.stderr).toBe(0);
    const text = fs.readFileSync(path.join(dir, 'primary.toml'), 'utf8');
    expect(text).toMatch(/\n# Hand the job to the other site .*\n.*\nhandover = true\n# Local health probe: .*\nprobe = ""\n# No automatic handover back .*\nhandover_hold = "30m"\n/);
    expect(loadConfig(path.join(dir, 'primary.toml')).collector).toMatchObject({ handover: true, probe: '', handover_hold: 30 * 60_000 });
  });

  it('--handover no, --probe, --handover-hold are what the files say', async () => {
    const r = await setup([...FLAGS, '--handover', 'no', '--probe', 'tcp://127.0.0.1:4317', '--handover-hold', '1h']);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['primary.toml', 'dr.toml']) {
      expect(loadConfig(path.join(dir, f)).collector, f).toMatchObject({ handover: false, probe: 'tcp://127.0.0.1:4317', handover_hold: 3_600_000 });
    }
  });

  it('bad answers: exit 78 naming each flag', async () => {
    const r = await setup([...FLAGS, '--handover', 'maybe', '--probe', 'ftp://x', '--handover-hold', 'soon']);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/--handover: answer yes or no/);
    expect(r.stderr).toMatch(/--probe: collector\.probe: /);
    expect(r.stderr).toMatch(/--handover-hold: collector\.handover_hold: /);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('failoverctl setup: which answer a problem belongs to', () => {
  it('a bad DR VictoriaMetrics URL is blamed on --dr-vm, not --primary-vm', async () => {
    const r = await setup([...FLAGS, '--primary-vm', 'http://10.10.10.10:8428', '--dr-vm', 'ftp://10.20.20.20']);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/--dr-vm: vmsync\.(local|remote)_url: /);
    expect(r.stderr).not.toMatch(/--primary-vm:/);
  });
});
