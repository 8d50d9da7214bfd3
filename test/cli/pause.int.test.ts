/**
 * failoverctl pause / resume against real BIND and Knot: the pause is written at the witness (a
 * signed CAS on the control record), dig sees it, renewals go on under it, an automatic move read
 * before it is refused by the SERVER (NXRRSET on the control prerequisite), a `--for` pause ends by
 * itself, resume removes it.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseControl, pauseInForce } from '../../src/lease/control.js';
import type { Witness } from '../../src/lease/witness.js';
import { witnessOf } from '../agent/harness.js';
import { dnsTable, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CTL = path.join(ROOT, 'dist/failoverctl.js');
const SITES = { primary: '10.10.10.10', dr: '10.20.20.20' };

beforeAll(() => {
  if (!fs.existsSync(CTL)) execFileSync('node', ['scripts/build.mjs'], { cwd: ROOT });
});

function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [CTL, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

function writeConfig(dir: string, srv: DnsServerFixture): string {
  const file = path.join(dir, 'dr.toml');
  fs.writeFileSync(file, `role = "dr"\n\n[sites]\nprimary = "${SITES.primary}"\ndr = "${SITES.dr}"\n\n${dnsTable(srv)}\n`);
  return file;
}

function digTxt(srv: DnsServerFixture, name: string): string[] {
  const out = execFileSync('dig', ['+short', '+norec', '-y', `hmac-sha256:${srv.key.name}:${srv.key.secret}`, `@${srv.host}`, '-p', String(srv.port), name, 'TXT'], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean);
}

describe.each(['bind', 'knot'] as const)('failoverctl pause / resume against %s', (kind) => {
  let srv: DnsServerFixture;
  let dir: string;
  let config: string;
  let witness: Witness;
  const control = `_control.${'syslog.example.test'}`;

  beforeAll(async () => {
    srv = await startServer(kind);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-pause-'));
    config = writeConfig(dir, srv);
    witness = witnessOf(srv);
    await witness.init(await witness.read(), SITES, Date.now() / 1000, false);
  });
  afterAll(async () => {
    await srv?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pause --reason writes the control record at the witness; a takeover read before it is refused by the server; renewals go on', async () => {
    const before = await witness.read();
    expect(before.controlText).toBeNull();
    const r = await ctl(['--config', config, 'pause', '--reason', 'core switch upgrade']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/paused by .*\/dr since .* until resumed \(core switch upgrade\): no automatic takeover or handover on either site/);
    const txt = digTxt(srv, control);
    // The pause, and the record's revision (every write of it raises it: no replay lands again).
    expect(txt).toHaveLength(2);
    expect(txt).toContainEqual(expect.stringMatching(/^"v=1 pause by=.* reason=core%20switch%20upgrade"$/));
    expect(txt).toContain('"v=1 rev n=1"');
    // The DR's takeover planned on the read before the pause: NXRRSET from the server itself.
    const takeover = { address: SITES.dr, lease: { holder: 'dr' as const, epoch: 2, seq: before.lease!.seq + 1, at: Math.floor(Date.now() / 1000) }, guardControl: true };
    await expect(witness.write(before, takeover)).rejects.toMatchObject({ code: 'DNS_PREREQ_FAILED' });
    const now = await witness.read();
    expect(now.lease).toEqual(before.lease);
    expect(now.control?.pause?.reason).toBe('core switch upgrade');
    // renewals do not look at the control record
    await witness.renew(now, Date.now() / 1000);
    expect((await witness.read()).lease!.seq).toBe(before.lease!.seq + 1);
  });

  it('resume removes the pause (the revision stays, raised); a second resume says there was nothing to resume', async () => {
    const r = await ctl(['--config', config, 'resume']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^resumed \(was paused by .*core switch upgrade/);
    expect(digTxt(srv, control)).toEqual(['"v=1 rev n=2"']);
    const again = await ctl(['--config', config, 'resume']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/not paused: nothing to resume/);
  });

  it('pause --for ends by itself: in force for at least that long, not after its end (by the server clock as the writer estimates it)', async () => {
    const r = await ctl(['--config', config, 'pause', '--for', '2s']);
    expect(r.code).toBe(0);
    const c = parseControl((await witness.read()).controlText ?? null);
    // `since` the earliest the server's clock can be (whole seconds, floored), the end 2 s after the
    // latest (the read's round trip added, rounded up): on loopback one second apart at most.
    expect(c.pause!.until! - c.pause!.since).toBeGreaterThanOrEqual(2);
    expect(c.pause!.until! - c.pause!.since).toBeLessThanOrEqual(3);
    expect(pauseInForce(c, c.pause!.since + 2 - 0.001)).not.toBeNull();
    expect(pauseInForce(c, c.pause!.until!)).toBeNull();
    expect((await ctl(['--config', config, 'pause', '--for', 'soon'])).code).toBe(78);
    await ctl(['--config', config, 'resume']);
  });
});
