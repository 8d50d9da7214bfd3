/**
 * The failback gate end to end: a primary agent on standby (the record names
 * the DR) with VM sync on, two real VictoriaMetrics, a gap in the primary's.
 * `failoverctl failback` is refused (exit 1, with the gate's reason) until the
 * agent's own sync loop has repaired the gap and seen `clean_checks` clean
 * checks; then it goes through. `failoverctl sync` shows ranges and gate.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentStatus, SyncResult } from '../../src/control/protocol.js';
import type { Witness } from '../../src/lease/witness.js';
import { dnsTable, freePort, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { generate, startVm, waitQuiet, type VmFixture } from '../fixtures/vm.js';
import { AgentProcess, CTL, ensureBuilt, waitWitness, witnessOf } from './harness.js';

const SITES = { primary: '127.0.0.41', dr: '127.0.0.42' };
const S = 15_000;
const MIN = 60_000;

let srv: DnsServerFixture;
let witness: Witness;
let local: VmFixture; // the primary's VM, missing a gap
let remote: VmFixture; // the DR's VM (active site)
let dir: string;
let primary: AgentProcess;
let gapStart = 0;

function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [CTL, '--config', primary.configFile, ...args], { env: { ...process.env, RUNTIME_DIRECTORY: primary.runtimeDir, STATE_DIRECTORY: path.join(primary.runtimeDir, 'state') }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  ensureBuilt();
  srv = await startServer('bind');
  witness = witnessOf(srv);
  // The DR is active (epoch 2): the primary is the passive site that must catch up.
  await witness.init(await witness.read(), SITES, Date.now() / 1000, false);
  await witness.transfer(await witness.read(), 'dr', SITES, Date.now() / 1000);
  [local, remote] = await Promise.all([startVm(), startVm()]);
  const end = Math.floor(Date.now() / S) * S - 2 * S;
  gapStart = end - 20 * MIN;
  await Promise.all([
    generate(remote.url, { series: 200, from: end - 40 * MIN, to: end }),
    generate(local.url, { series: 200, from: end - 40 * MIN, to: end, holes: [{ from: gapStart, to: gapStart + 5 * MIN }] }),
  ]);
  await Promise.all([waitQuiet(local.url), waitQuiet(remote.url)]);

  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-gate-'));
  const httpPort = await freePort();
  const config = `role = "primary"
[sites]
primary = "${SITES.primary}"
dr = "${SITES.dr}"
${dnsTable(srv)}
[lease]
ttl = "3s"
renew_interval = "500ms"
max_skew = "500ms"
[collector]
control = "none"
[vmsync]
enabled = true
local_url = "${local.url}"
remote_url = "${remote.url}"
interval = "2s"
bucket = "15s"
settle = "0s"
lookback = "1h"
clean_checks = 2
[http]
listen = "${SITES.primary}:${httpPort}"
`;
  fs.writeFileSync(path.join(dir, 'primary.toml'), config);
  fs.mkdirSync(path.join(dir, 'run'));
  primary = new AgentProcess('primary', path.join(dir, 'primary.toml'), path.join(dir, 'run'));
  primary.start();
  await primary.waitLog(/event=ready/, 15_000);
}, 120_000);

afterAll(async () => {
  await primary?.stop();
  await Promise.all([local?.stop(), remote?.stop()]);
  await srv?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('failback gate through the agent', { timeout: 120_000 }, () => {
  it('failback is refused with the gate reason before FAILBACK READY', async () => {
    const from = primary.lines.length;
    const r = await ctl(['failback']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/REFUSED: vmsync-failback-ready: not ready/);
    // the agent's journal says so too (the operator's attempt and why)
    expect((await primary.waitLog(/event=failback_refused/, 2000, from)).line).toMatch(/failback refused: vmsync-failback-ready: not ready/);
    expect((await witness.read()).addresses).toEqual([SITES.dr]);
    const dry = await ctl(['--json', 'failback', '--dry-run']);
    expect(dry.code).toBe(1);
    const plan = JSON.parse(dry.stdout);
    expect(plan.preconditions.find((p: { name: string }) => p.name === 'vmsync-failback-ready')).toMatchObject({ ok: false });
  });

  it('the agent repairs the gap in its own loop and reaches FAILBACK READY; sync and status say so', async () => {
    await primary.waitLog(/event=vmsync_failback_ready/, 90_000);
    expect(primary.lines.map((l) => l.line).join('\n')).toMatch(/event=vmsync_repair\b/);
    const sync = await ctl(['--json', 'sync']);
    expect(sync.code, sync.stderr).toBe(0);
    const r = JSON.parse(sync.stdout) as SyncResult;
    expect(r.report).toMatchObject({ role: 'passive', clean: true, ranges_found: [] });
    expect(r.gate.ready).toBe(true);
    expect(r.status!.samples_copied_total).toBe(200 * 20); // 200 series × 5 min at 15 s
    const st = JSON.parse((await ctl(['--json', 'status'])).stdout) as AgentStatus;
    expect(st.vmsync).toMatchObject({ failback_ready: true });
    const human = (await ctl(['status'])).stdout;
    expect(human).toMatch(/vmsync\s+FAILBACK READY/);
  });

  it('failback goes through once ready', async () => {
    // The gate as persisted (failoverctl without the agent reads this file): READY for this failover.
    // Read BEFORE the failback: its new epoch starts a new failover, whose gate the next cycle resets.
    expect(JSON.parse(fs.readFileSync(path.join(primary.runtimeDir, 'state', 'vmsync.json'), 'utf8'))).toMatchObject({ failback_ready: true });
    const r = await ctl(['failback']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await waitWitness(witness, (s) => s.addresses[0] === SITES.primary && s.lease?.holder === 'primary', 5000);
  });

  it('with the agent down, failback reads the persisted gate: a new failover is refused, --force moves past it', async () => {
    primary.signal('SIGTERM');
    expect(await primary.exit()).toBe(0);
    // A new failover (a new epoch): the gate the agent persisted was for the last one.
    await witness.transfer(await witness.read(), 'dr', SITES, Date.now() / 1000);
    const refused = await ctl(['failback']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(refused.stdout).toMatch(/^failback REFUSED: vmsync-failback-ready: not ready: no sync check yet for the current failover \(epoch \d+; state holds (failover epoch \d+|no failover recorded)\)/);
    expect(refused.stdout).toContain('the agent is not running: executed directly against DNS with the key file');
    expect((await witness.read()).addresses).toEqual([SITES.dr]);
    const forced = await ctl(['failback', '--force']);
    expect(forced.code, forced.stdout + forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/^failback done \(forced\)\n/);
    expect(forced.stdout).toMatch(/NO  vmsync-failback-ready: /);
    expect(await witness.read()).toMatchObject({ addresses: [SITES.primary], lease: { holder: 'primary' } });
  });
});
