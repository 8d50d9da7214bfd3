/**
 * failoverctl setup against real parts: the BIND and Knot configurations it prints are loaded by
 * a real named and knotd, `failoverctl init` and an agent pair run on the files it wrote. The
 * interactive mode, through a pseudo-terminal: setup-pty.int.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/failoverctl.js';
import { loadConfig } from '../../src/config/load.js';
import { AgentProcess, ensureBuilt } from '../agent/harness.js';
import { freePort, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';

const SITES = { primary: '127.0.0.91', dr: '127.0.0.92' };
const dirs: string[] = [];
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-setup-int-'));
  dirs.push(d);
  return d;
}

async function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [o, e] = [new PassThrough(), new PassThrough()];
  let stdout = '';
  let stderr = '';
  o.on('data', (c) => (stdout += String(c)));
  e.on('data', (c) => (stderr += String(c)));
  const code = await run(args, { stdin: Object.assign(new PassThrough(), { isTTY: false }), stdout: o, stderr: e });
  return { code, stdout, stderr };
}

describe.each(['bind', 'knot'] as const)('setup output loaded by a real %s', (kind) => {
  it('check-config passes, init creates the record, and an agent pair runs on the files', { timeout: 90_000 }, async () => {
    const dir = tempDir();
    const [port, httpPort] = [await freePort(), await freePort()];
    const r = await ctl([
      '--json', 'setup', '--out', dir, '--record', 'syslog.example.test', '--zone', 'example.test',
      '--primary-ip', SITES.primary, '--dr-ip', SITES.dr, '--dns-server', `127.0.0.1:${port}`,
      '--collector', 'none', '--http-port', String(httpPort),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const printed = JSON.parse(r.stdout) as { bind: string; knot: string };
    const srv: DnsServerFixture = await startServer(kind, { port, serverConfig: printed[kind] });
    cleanup.push(() => srv.stop());

    for (const f of ['primary.toml', 'dr.toml']) {
      const check = await ctl(['--config', path.join(dir, f), 'check-config']);
      expect(check.code, check.stderr).toBe(0);
    }
    const init = await ctl(['--config', path.join(dir, 'primary.toml'), '--json', 'init']);
    expect(init.code, init.stdout + init.stderr).toBe(0);
    // The zone's NS set names an address where nothing listens (port 53): init reports that server
    // as not answering and does not wait it out (waited out, it would be `late`).
    const servers = (JSON.parse(init.stdout) as { servers: { server: string; in_sync: boolean; late: boolean; error: string | null }[] }).servers;
    expect(servers.length, init.stdout).toBeGreaterThan(0);
    for (const x of servers) expect(x, init.stdout).toMatchObject({ in_sync: false, late: false, error: expect.stringMatching(/\S/) });
    // The printed server side lets the key write the control record: pause and resume go through.
    const pause = await ctl(['--config', path.join(dir, 'dr.toml'), 'pause', '--for', '1m', '--reason', 'setup test']);
    expect(pause.code, pause.stdout + pause.stderr).toBe(0);
    expect(pause.stdout).toMatch(/paused by .* \(setup test\)/);
    const resume = await ctl(['--config', path.join(dir, 'primary.toml'), 'resume']);
    expect(resume.code, resume.stdout + resume.stderr).toBe(0);
    expect(resume.stdout).toMatch(/^resumed/);
    const dns = await ctl(['--config', path.join(dir, 'primary.toml'), '--json', 'dns']);
    expect(dns.code, dns.stderr).toBe(0);
    expect(JSON.parse(dns.stdout)).toMatchObject({ addresses: [SITES.primary], lease: { holder: 'primary', epoch: 1 } });

    ensureBuilt();
    const agents = (['primary', 'dr'] as const).map((role) => {
      fs.mkdirSync(path.join(dir, `run-${role}`, 'state'), { recursive: true });
      return new AgentProcess(role, path.join(dir, `${role}.toml`), path.join(dir, `run-${role}`)).start();
    });
    cleanup.push(async () => {
      await Promise.all(agents.map((a) => a.stop()));
    });
    const [primary, dr] = agents as [AgentProcess, AgentProcess];
    // The primary renews with the generated key (a confirmed renewal leaves `starting`); the DR
    // reads the same witness and finds the primary's /healthz on the generated listen address.
    await primary.waitLog(/event=decision .*phase=(pending|active)/, 20_000);
    await dr.waitLog(/phase=monitoring/, 20_000);
    // A renewal at the witness, with the generated key (renew_interval is the default 10 s).
    let seq = 1;
    const deadline = performance.now() + 25_000;
    while (seq <= 1 && performance.now() < deadline) {
      const after = await ctl(['--config', path.join(dir, 'primary.toml'), '--json', 'dns']);
      expect(after.code, after.stderr).toBe(0);
      seq = (JSON.parse(after.stdout) as { lease: { seq: number } }).lease.seq;
      if (seq <= 1) await new Promise((r) => setTimeout(r, 500));
    }
    expect(seq).toBeGreaterThan(1);
  });
});
