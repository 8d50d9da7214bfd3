/**
 * failoverctl setup as a new user meets it: the built CLI (scripts/build.mjs, built afresh into a
 * temp directory from the sources under test) driven through a pseudo-terminal (util-linux
 * script(1)), every answer typed, and the files it writes read back.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { polkitAllowedUnits } from '../../src/cli/check-config.js';
import { loadConfig } from '../../src/config/load.js';
import { requireBinary } from '../fixtures/dns-servers.js';
import { runInProcess } from './in-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dirs: string[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
let ctl: string;

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-setup-pty-'));
  dirs.push(d);
  return d;
}

beforeAll(() => {
  // Not dist/: a stale bundle there would test old code.
  const out = tempDir();
  execFileSync(process.execPath, ['scripts/build.mjs', out], { cwd: ROOT });
  ctl = path.join(out, 'failoverctl.js');
}, 120_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** `failoverctl setup ARGS` on a pseudo-terminal: wait for a prompt, type an answer. */
function wizard(args: string[]) {
  const cmd = [process.execPath, ctl, 'setup', ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn(requireBinary('script'), ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let screen = '';
  const waiters: { re: RegExp; from: number; resolve: () => void }[] = [];
  // The terminal's view without readline's cursor movements (ESC [ ... letter).
  child.stdout.on('data', (c) => {
    screen += String(c).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    for (const w of [...waiters]) if (w.re.test(screen.slice(w.from))) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    exited,
    screen: () => screen,
    /** Waits for `prompt` (after what was seen so far), then types `text` and Enter. */
    answer: async (prompt: RegExp, text: string): Promise<void> => {
      const from = screen.length;
      await new Promise<void>((resolve, reject) => {
        if (prompt.test(screen.slice(from))) return resolve();
        const timer = setTimeout(() => reject(new Error(`no prompt ${prompt} within 10 s; screen:\n${screen}`)), 10_000);
        waiters.push({ re: prompt, from, resolve: () => (clearTimeout(timer), resolve()) });
      });
      child.stdin.write(`${text}\r`);
    },
  };
}

describe('setup through a pseudo-terminal', () => {
  it('every answer typed, VM URLs included: VM sync on with both URLs, the zone defaulted from the record, handover answers, polkit override', { timeout: 60_000 }, async () => {
    const [dir, polkitDir] = [tempDir(), tempDir()];
    const w = wizard(['--out', dir, '--polkit-dir', polkitDir]);
    await w.answer(/Failover record \(the name clients resolve\): $/, 'syslog.example.test');
    // The record names its zone: the parent is offered, Enter takes it.
    await w.answer(/Zone holding the record \[example\.test\]: $/, '');
    await w.answer(/Primary site's address: $/, '127.0.0.91');
    await w.answer(/DR site's address: $/, '127.0.0.92');
    await w.answer(/DNS server taking the updates \(host or host:port\): $/, '127.0.0.1:5353');
    await w.answer(/Primary's VictoriaMetrics URL \(empty: no VM sync\): $/, 'http://127.0.0.91:8428');
    // Next comes the DR's URL: the pair is checked once both are given, not after the first.
    await w.answer(/\nDR's VictoriaMetrics URL \(empty: no VM sync\): $/, 'http://127.0.0.92:8428');
    await w.answer(/Webhook URL for notifications \(empty: none\): $/, '');
    await w.answer(/Collector unit \("none": DNS failover only\) \[otelcol-contrib\.service\]: $/, 'otelcol-custom.service');
    await w.answer(/Hand the collector over to the other site when it breaks \(yes\/no\) \[yes\]: $/, 'maybe');
    await w.answer(/answer yes or no\r?\nHand the collector over to the other site when it breaks \(yes\/no\) \[yes\]: $/, 'no');
    await w.answer(/Local health probe of the collector \(empty: none; otelcol's health_check is http:\/\/127\.0\.0\.1:13133\/\): $/, 'http://127.0.0.1:13133/');
    await w.answer(/Minimum time between automatic handovers \[30m\]: $/, '');
    await w.answer(/Port of \/healthz and \/metrics on each site \[9465\]: $/, '');
    await w.answer(/How to sign the updates: .* \[tsig\]: $/, '');
    await w.answer(/TSIG key name \[failover\]: $/, '');
    await w.answer(new RegExp(`Where to write the TSIG key file \\[${escape(dir)}/tsig\\.key\\]: $`), '');
    expect(await w.exited, w.screen()).toBe(0);
    expect(w.screen()).not.toMatch(/give both VictoriaMetrics URLs/);

    const primary = loadConfig(path.join(dir, 'primary.toml'));
    const dr = loadConfig(path.join(dir, 'dr.toml'));
    expect(primary).toMatchObject({ dns: { record: 'syslog.example.test', zone: 'example.test' }, vmsync: { enabled: true, local_url: 'http://127.0.0.91:8428', remote_url: 'http://127.0.0.92:8428' } });
    expect(dr).toMatchObject({ dns: { zone: 'example.test' }, vmsync: { enabled: true, local_url: 'http://127.0.0.92:8428', remote_url: 'http://127.0.0.91:8428' } });
    for (const c of [primary, dr]) {
      expect(c.collector).toMatchObject({ control: 'systemd', unit: 'otelcol-custom.service', handover: false, probe: 'http://127.0.0.1:13133/' });
    }
    // Written even at the default, with its comment.
    expect(fs.readFileSync(path.join(dir, 'dr.toml'), 'utf8')).toMatch(/# No automatic handover back within this time.*\nhandover_hold = "30m"\n/);
    // The polkit override for the unit it was given.
    const rule = path.join(polkitDir, '49-failover-agent-local.rules');
    expect(w.screen()).toContain(`wrote ${rule}`);
    expect(polkitAllowedUnits([polkitDir]).units).toEqual(new Set(['otelcol-custom.service']));
    for (const f of ['primary.toml', 'dr.toml']) expect((await runInProcess(['--config', path.join(dir, f), 'check-config'])).code).toBe(0);
  });

  it('re-asks a bad answer (the defaulted zone too); one VM URL of two re-asks the DR one; "none" skips the handover questions', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    const w = wizard(['--out', dir, '--collector', 'none']);
    await w.answer(/Failover record \(the name clients resolve\): $/, 'syslog.example.test');
    await w.answer(/Zone holding the record \[example\.test\]: $/, 'other.test');
    await w.answer(/dns\.record: "syslog\.example\.test" is not inside dns\.zone "other\.test"\r?\nZone holding the record \[example\.test\]: $/, 'example.test');
    await w.answer(/Primary site's address: $/, '10.0.0.300');
    await w.answer(/sites\.primary: "10\.0\.0\.300" is not an IPv4 or IPv6 address[\s\S]*\nPrimary site's address: $/, '127.0.0.91');
    await w.answer(/DR site's address: $/, '127.0.0.92');
    await w.answer(/DNS server taking the updates \(host or host:port\): $/, '127.0.0.1:5353');
    await w.answer(/Primary's VictoriaMetrics URL \(empty: no VM sync\): $/, 'http://127.0.0.91:8428');
    await w.answer(/\nDR's VictoriaMetrics URL \(empty: no VM sync\): $/, '');
    await w.answer(/give both VictoriaMetrics URLs, or neither\r?\nDR's VictoriaMetrics URL \(empty: no VM sync\): $/, 'http://127.0.0.92:8428');
    await w.answer(/Webhook URL for notifications \(empty: none\): $/, '');
    // --collector none: no collector, so no handover questions.
    await w.answer(/\nPort of \/healthz and \/metrics on each site \[9465\]: $/, '');
    await w.answer(/How to sign the updates: .* \[tsig\]: $/, '');
    await w.answer(/TSIG key name \[failover\]: $/, '');
    await w.answer(new RegExp(`Where to write the TSIG key file \\[${escape(dir)}/tsig\\.key\\]: $`), '');
    expect(await w.exited, w.screen()).toBe(0);
    expect(w.screen()).not.toMatch(/Hand the collector over|health probe|between automatic handovers/);
    expect(w.screen()).toMatch(/wrote .*primary\.toml, .*dr\.toml and the TSIG key/);
    expect(w.screen()).toMatch(/grant failover name syslog\.example\.test\. A AAAA;/);
    const c = loadConfig(path.join(dir, 'dr.toml'));
    expect(c).toMatchObject({
      role: 'dr',
      sites: { primary: '127.0.0.91', dr: '127.0.0.92' },
      dns: { zone: 'example.test', server: { host: '127.0.0.1', port: 5353 }, key_file: path.join(dir, 'tsig.key') },
      collector: { control: 'none' },
      vmsync: { enabled: true, local_url: 'http://127.0.0.92:8428', remote_url: 'http://127.0.0.91:8428' },
    });
    for (const f of ['primary.toml', 'dr.toml']) expect((await runInProcess(['--config', path.join(dir, f), 'check-config'])).code).toBe(0);
  });
});
