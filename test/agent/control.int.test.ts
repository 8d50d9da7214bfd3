/**
 * Commands that tell the truth, against two real agents and a real BIND:
 * - the control socket refuses malformed, misspelt and oversized requests, and the witness shows
 *   that nothing was done (the same check then sees a well-formed switchover move the record);
 * - `failoverctl status` exit codes: 0 fine in its role, 3 named but not active, 2 DNS unreadable;
 * - `failoverctl reload` (what ExecReload runs) fails on an invalid file or a restart-only key,
 *   and the running configuration stays.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentStatus, ControlResponse } from '../../src/control/protocol.js';
import { socketPath } from '../../src/control/client.js';
import { MAX_REQUEST_BYTES } from '../../src/control/server.js';
import type { Snapshot, Witness } from '../../src/lease/witness.js';
import { StatusExit } from '../../src/cli/status-verdict.js';
import { converse } from '../fixtures/control-raw.js';
import { dnsTable, freePort, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { AgentProcess, ensureBuilt, pairConfig, runCtl, witnessOf } from './harness.js';

const SITES = { primary: '127.0.0.61', dr: '127.0.0.62' };

let srv: DnsServerFixture;
let witness: Witness;
let dir: string;
let primary: AgentProcess;
let dr: AgentProcess;
const http = { primary: 0, dr: 0 };

function configText(role: 'primary' | 'dr', failures = 3): string {
  return pairConfig({
    role,
    sites: SITES,
    dns: dnsTable(srv, { timeout: '200ms' }),
    lease: { ttl: '3s', renew: '200ms', skew: '1s' },
    health: { target: `http://${SITES.primary}:${http.primary}/healthz`, interval: '200ms', timeout: '150ms', failures },
    listen: `${SITES[role]}:${http[role]}`,
  });
}

/** One connection to `agent`'s socket: every response line until the agent closes or `count` came. */
async function talk(agent: AgentProcess, data: string, count: number): Promise<{ responses: ControlResponse[]; closed: boolean }> {
  const p = socketPath(path.basename(agent.configFile, '.toml'), { RUNTIME_DIRECTORY: agent.runtimeDir });
  const { lines, closed } = await converse(p, data, count);
  return { responses: lines.map((l) => JSON.parse(l) as ControlResponse), closed };
}

/** What a state change would alter: who is named, who holds, which epoch (seq rises with renewals). */
const holding = (s: Snapshot): unknown => ({ addresses: s.addresses, holder: s.lease?.holder, epoch: s.lease?.epoch });

async function statusOf(agent: AgentProcess): Promise<{ code: number; status: AgentStatus; stdout: string }> {
  const r = await runCtl(agent, ['--json', 'status']);
  return { code: r.code, status: JSON.parse(r.stdout) as AgentStatus, stdout: r.stdout + r.stderr };
}

beforeAll(async () => {
  ensureBuilt();
  srv = await startServer('bind');
  witness = witnessOf(srv);
  await witness.init(await witness.read(), SITES, Date.now() / 1000, false);
  [http.primary, http.dr] = await Promise.all([freePort(), freePort()]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-control-'));
  for (const role of ['primary', 'dr'] as const) {
    fs.mkdirSync(path.join(dir, role, 'state'), { recursive: true });
    fs.writeFileSync(path.join(dir, `${role}.toml`), configText(role));
  }
  primary = new AgentProcess('primary', path.join(dir, 'primary.toml'), path.join(dir, 'primary')).start();
  dr = new AgentProcess('dr', path.join(dir, 'dr.toml'), path.join(dir, 'dr')).start();
  // A fresh primary counts its lease after ttl + max_skew (4 s); the DR monitors it meanwhile.
  await Promise.all([primary.waitLog(/phase=active/, 15_000), dr.waitLog(/phase=monitoring/, 15_000)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([primary?.stop(), dr?.stop()]);
  await srv?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('control socket and failoverctl against two agents and BIND', { timeout: 60_000 }, () => {
  it('status exits 0 for the active primary and for the monitoring DR', async () => {
    const p = await statusOf(primary);
    expect(p.code, p.stdout).toBe(StatusExit.FINE);
    expect(p.status.active).toBe(true);
    const d = await statusOf(dr);
    expect(d.code, d.stdout).toBe(StatusExit.FINE);
    expect(d.status.phase).toBe('monitoring');
    const human = await runCtl(primary, ['status']);
    expect(human.stdout).toMatch(/^verdict {2}active and healthy \(exit 0\)$/m);
  });

  it('malformed, misspelt and oversized requests are refused and change nothing at the witness', async () => {
    const before = await witness.read();
    expect(before.addresses).toEqual([SITES.primary]);
    const bad = [
      '{"cmd":"switchover","dry_run":true}',
      '{"cmd":"switchover","force":true}',
      '{"cmd":"switchover","args":{"dry_run":true}}',
      '{"cmd":"switchover","args":{"dryRun":"false"}}',
      '{"cmd":"switchover","args":null}',
      '{"cmd":"Switchover"}',
      '{"cmd":"switchover"',
      '["switchover"]',
    ];
    for (const agent of [primary, dr]) {
      const { responses } = await talk(agent, bad.map((l) => l + '\n').join(''), bad.length);
      expect(responses).toHaveLength(bad.length);
      for (const r of responses) expect(r).toMatchObject({ ok: false, error: { code: 'CONTROL_BAD_REQUEST', exitCode: 1 } });
    }
    // A request line over the limit, a valid switchover padded out: refused, connection closed.
    const padded = `{"cmd":"switchover","args":{},"pad":"${'x'.repeat(MAX_REQUEST_BYTES)}"}\n`;
    const big = await talk(primary, padded, 2);
    expect(big.closed).toBe(true);
    expect(big.responses).toEqual([{ ok: false, error: expect.objectContaining({ code: 'CONTROL_BAD_REQUEST', message: expect.stringMatching(/longer than/) }) }]);

    const after = await witness.read();
    expect(holding(after)).toEqual(holding(before));
    expect(after.lease!.seq).toBeGreaterThanOrEqual(before.lease!.seq); // renewals went on
    expect([...primary.lines, ...dr.lines].filter((l) => /event=control cmd=/.test(l.line))).toEqual([]);
  });

  it('the same check sees a well-formed switchover; the newly named DR exits 3 until its lease counts', async () => {
    const before = await witness.read();
    const dry = await talk(primary, '{"cmd":"switchover","args":{"dryRun":true}}\n', 1);
    expect(dry.responses[0]).toMatchObject({ ok: true, result: { op: 'switchover', dryRun: true, done: false } });
    expect(holding(await witness.read())).toEqual(holding(before));

    const from = dr.lines.length;
    const sw = await runCtl(primary, ['switchover']);
    expect(sw.code, sw.stdout + sw.stderr).toBe(0);
    // The log line the refusals above were checked against does appear for an executed request.
    expect(primary.lines.some((l) => /event=control cmd=switchover/.test(l.line))).toBe(true);
    const moved = await witness.read();
    expect(holding(moved)).toEqual({ addresses: [SITES.dr], holder: 'dr', epoch: before.lease!.epoch + 1 });
    // Holder other than by its own takeover: pending for ttl + max_skew (4 s).
    await dr.waitLog(/phase=pending/, 3000, from);
    const pending = await statusOf(dr);
    expect(pending.code, pending.stdout).toBe(StatusExit.NOT_ACTIVE);
    expect(pending.status.phase).toBe('pending');
    await dr.waitLog(/phase=active/, 8000, from);
    expect((await statusOf(dr)).code).toBe(StatusExit.FINE);
    expect((await statusOf(primary)).code).toBe(StatusExit.FINE); // standby, healthy
  });

  it('reload: an invalid file or a restart-only key fails (exit 78) and the running configuration stays', async () => {
    const file = dr.configFile;
    const good = fs.readFileSync(file, 'utf8');
    try {
      fs.writeFileSync(file, good.replace('failures = 3', 'failures = "three"'));
      const invalid = await runCtl(dr, ['reload']);
      expect(invalid.code, invalid.stderr).toBe(78);
      expect(invalid.stderr).toMatch(/dr\.toml:\d+: health\.failures/);

      fs.writeFileSync(file, good.replace('failures = 3', 'failures = 4').replace('timeout = "200ms"', 'timeout = "300ms"'));
      const restartOnly = await runCtl(dr, ['reload']);
      expect(restartOnly.code, restartOnly.stderr).toBe(78);
      expect(restartOnly.stderr).toMatch(/cannot change dns\.timeout by reload.*\[RELOAD_REFUSED\]/);
      expect((await statusOf(dr)).status.health.threshold).toBe(3); // not half applied

      fs.writeFileSync(file, good.replace('failures = 3', 'failures = 5'));
      const ok = await runCtl(dr, ['reload']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/dr\.toml reloaded: health\.failures applied/);
      expect((await statusOf(dr)).status.health.threshold).toBe(5);
    } finally {
      fs.writeFileSync(file, good);
    }
    expect((await runCtl(dr, ['reload'])).code).toBe(0);
  });

  it('status exits 2 while the agent cannot read DNS, and 0 again once it can', async () => {
    let from = primary.lines.length;
    await srv.restart({
      whileDown: async () => {
        await primary.waitLog(/DNS unreadable/, 5000, from);
        const down = await statusOf(primary);
        expect(down.code, down.stdout).toBe(StatusExit.DNS_UNREADABLE);
        expect((await runCtl(primary, ['status'])).stdout).toMatch(/^verdict {2}DNS unreadable: /m);
        from = primary.lines.length;
      },
    });
    await primary.waitLog(/phase=standby/, 5000, from);
    expect((await statusOf(primary)).code).toBe(StatusExit.FINE);
  });
});
