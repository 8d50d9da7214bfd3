/**
 * failoverctl setup against real parts: the BIND and Knot configurations it prints are loaded by
 * a real named and knotd, `failoverctl init` and an agent pair run on the files it wrote; and the
 * interactive mode is driven through a pseudo-terminal (util-linux script(1)).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/failoverctl.js';
import { loadConfig } from '../../src/config/load.js';
import { AgentProcess, CTL, ensureBuilt } from '../agent/harness.js';
import { freePort, requireBinary, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';

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

describe('setup through a pseudo-terminal', () => {
  it('asks each question with its default, re-asks a bad answer, writes files that pass check-config', { timeout: 60_000 }, async () => {
    ensureBuilt();
    const dir = tempDir();
    const cmd = `${process.execPath} ${CTL} setup --out ${dir} --collector none`;
    const child = spawn(requireBinary('script'), ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    cleanup.push(async () => void (child.exitCode === null && child.kill('SIGKILL')));
    let screen = '';
    const waiters: { re: RegExp; from: number; resolve: () => void }[] = [];
    // The terminal's view without readline's cursor movements (ESC [ ... letter).
    child.stdout.on('data', (c) => {
      screen += String(c).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
      for (const w of [...waiters]) if (w.re.test(screen.slice(w.from))) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    /** Waits for `prompt` (after what was seen so far), then types `answer` and Enter. */
    const answer = async (prompt: RegExp, text: string): Promise<void> => {
      const from = screen.length;
      await new Promise<void>((resolve, reject) => {
        if (prompt.test(screen.slice(from))) return resolve();
        const timer = setTimeout(() => reject(new Error(`no prompt ${prompt} within 10 s; screen:\n${screen}`)), 10_000);
        waiters.push({ re: prompt, from, resolve: () => (clearTimeout(timer), resolve()) });
      });
      child.stdin.write(`${text}\r`);
    };
    const seen = (re: RegExp) => expect(screen).toMatch(re);

    await answer(/Failover record \(the name clients resolve\): $/, 'syslog.example.test');
    await answer(/Zone holding the record: $/, 'other.test');
    await answer(/dns\.record: "syslog\.example\.test" is not inside dns\.zone "other\.test"\r?\nZone holding the record: $/, 'example.test');
    await answer(/Primary site's address: $/, '10.0.0.300');
    await answer(/sites\.primary: "10\.0\.0\.300" is not an IPv4 or IPv6 address[\s\S]*\nPrimary site's address: $/, '127.0.0.91');
    await answer(/DR site's address: $/, '127.0.0.92');
    await answer(/DNS server taking the updates \(host or host:port\): $/, '127.0.0.1:5353');
    await answer(/Primary's VictoriaMetrics URL \(empty: no VM sync\): $/, '');
    await answer(/DR's VictoriaMetrics URL \(empty: no VM sync\): $/, '');
    await answer(/Webhook URL for notifications \(empty: none\): $/, '');
    await answer(/Port of \/healthz and \/metrics on each site \[9465\]: $/, '');
    await answer(/TSIG key name \[failover\]: $/, '');
    await answer(new RegExp(`Where to write the TSIG key file \\[${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/tsig\\.key\\]: $`), '');
    expect(await exited, screen).toBe(0);
    seen(/wrote .*primary\.toml, .*dr\.toml and the TSIG key/);
    seen(/grant failover name syslog\.example\.test\. A AAAA;/);
    const c = loadConfig(path.join(dir, 'dr.toml'));
    expect(c).toMatchObject({ role: 'dr', sites: { primary: '127.0.0.91', dr: '127.0.0.92' }, dns: { server: { host: '127.0.0.1', port: 5353 }, key_file: path.join(dir, 'tsig.key') }, collector: { control: 'none' } });
    for (const f of ['primary.toml', 'dr.toml']) expect((await ctl(['--config', path.join(dir, f), 'check-config'])).code).toBe(0);
  });
});
