/**
 * Two real agent processes (primary on 127.0.0.11, DR on 127.0.0.12) against a
 * real BIND on loopback, with 200 ms intervals. The scenarios run in order on
 * the same pair, as an operator would see them.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Witness, Snapshot } from '../../src/lease/witness.js';
import { dnsTable, freePort, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { AgentProcess, CTL, HealthPath, pairConfig, runCtl as ctl, agentStatus as status, ensureBuilt, waitWitness, witnessOf } from './harness.js';

const PRIMARY = '127.0.0.11';
const DR = '127.0.0.12';
const PATH_HOST = '127.0.0.13';
const INTERVAL = 200;
const FAILURES = 3;
const TTL = 1000;
const SKEW = 200;
/** The bound: failures × interval + lease ttl + max_skew + 1 s. */
const TAKEOVER_BOUND = FAILURES * INTERVAL + TTL + SKEW + 1000;
const PERIODS_10 = 10 * INTERVAL;

let srv: DnsServerFixture;
let witness: Witness;
let dir: string;
let primary: AgentProcess;
let dr: AgentProcess;
let pathToPrimary: HealthPath;
const ports = { primaryHttp: 0, drHttp: 0 };
const measured: Record<string, number> = {};

function configText(role: 'primary' | 'dr', extra = ''): string {
  return pairConfig({
    role,
    sites: { primary: PRIMARY, dr: DR },
    dns: dnsTable(srv, { timeout: '200ms' }),
    lease: { ttl: `${TTL}ms`, renew: `${INTERVAL}ms`, skew: `${SKEW}ms` },
    health: { target: `http://${PATH_HOST}:${pathToPrimary.port}/healthz`, interval: `${INTERVAL}ms`, timeout: '150ms', failures: FAILURES },
    listen: role === 'primary' ? `${PRIMARY}:${ports.primaryHttp}` : `${DR}:${ports.drHttp}`,
    extra,
  });
}

/** Watches the witness for `ms`, failing at once if `bad` ever holds. */
async function observeFor(ms: number, bad: (s: Snapshot) => string | null): Promise<number> {
  const end = performance.now() + ms;
  let reads = 0;
  while (performance.now() < end) {
    const s = await witness.read();
    reads++;
    const why = bad(s);
    if (why) throw new Error(`during the observation window: ${why}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return reads;
}

const names = (site: string) => (s: Snapshot) => s.addresses.length === 1 && s.addresses[0] === site;

async function startAgent(agent: AgentProcess): Promise<void> {
  const from = agent.lines.length;
  agent.start();
  await agent.waitLog(/event=ready/, 10_000, from);
}

async function failback(): Promise<void> {
  const r = await ctl(primary, ['failback']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).toContain('failback done');
  await waitWitness(witness, (s) => names(PRIMARY)(s) && s.lease?.holder === 'primary', 3000);
}

async function takeoverTime(fault: () => void): Promise<number> {
  const from = dr.lines.length;
  const t0 = performance.now();
  fault();
  const { t } = await waitWitness(witness, (s) => names(DR)(s) && s.lease?.holder === 'dr', TAKEOVER_BOUND + 2000, 10);
  const decided = await dr.waitLog(/event=takeover /, 1000, from);
  measured.decisionToA = Math.max(0, Math.round(t - decided.t));
  return Math.round(t - t0);
}

beforeAll(async () => {
  ensureBuilt();
  srv = await startServer('bind');
  witness = witnessOf(srv);
  await witness.init(await witness.read(), { primary: PRIMARY, dr: DR }, Date.now() / 1000, false);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-failover-'));
  ports.primaryHttp = await freePort();
  ports.drHttp = await freePort();
  pathToPrimary = new HealthPath(PATH_HOST, () => `http://${PRIMARY}:${ports.primaryHttp}/healthz`);
  await pathToPrimary.start();
  for (const role of ['primary', 'dr'] as const) {
    fs.writeFileSync(path.join(dir, `${role}.toml`), configText(role));
    fs.mkdirSync(path.join(dir, `run-${role}`));
  }
  primary = new AgentProcess('primary', path.join(dir, 'primary.toml'), path.join(dir, 'run-primary'));
  dr = new AgentProcess('dr', path.join(dir, 'dr.toml'), path.join(dir, 'run-dr'));
  await startAgent(primary);
  await startAgent(dr);
}, 60_000);

afterAll(async () => {
  await primary?.stop();
  await dr?.stop();
  await pathToPrimary?.stop();
  await srv?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (Object.keys(measured).length) console.log(`failover timings (ms): ${JSON.stringify(measured)}`);
});

describe('two agents against BIND', { timeout: 60_000 }, () => {
  it('the primary renews its lease; the DR monitors; both report why', async () => {
    const start = (await witness.read()).lease!.seq;
    await waitWitness(witness, (s) => s.lease!.seq >= start + 3, 3000);
    // A fresh agent that did not take this epoch over counts its lease after ttl + max_skew (1.2 s).
    let p = await status(primary);
    for (let i = 0; i < 40 && !p.active; i++) {
      await new Promise((r) => setTimeout(r, 100));
      p = await status(primary);
    }
    expect(p.phase).toBe('active');
    expect(p.active).toBe(true);
    expect(p.reason).toMatch(/names us and we hold the lease/);
    const d = await status(dr);
    expect(d.phase).toBe('monitoring');
    expect(d.reason).toMatch(/primary healthy and active/);
    expect(d.health.consecutiveFailures).toBe(0);
    // /healthz and /metrics of the active primary.
    const hz = await fetch(`http://${PRIMARY}:${ports.primaryHttp}/healthz`);
    expect(hz.status).toBe(200);
    expect(await hz.json()).toMatchObject({ healthy: true, role: 'primary', phase: 'active', active: true });
    const metrics = await (await fetch(`http://${PRIMARY}:${ports.primaryHttp}/metrics`)).text();
    expect(metrics).toMatch(/^failover_active(\{[^}]*\})? 1$/m);
    expect(metrics).toMatch(new RegExp(`^failover_lease_epoch(\\{[^}]*\\})? ${p.lease.epoch}$`, 'm'));
    expect(metrics).toMatch(/^failover_dns_request_duration_seconds_count\{[^}]*kind="update"[^}]*\} [1-9]/m);
  });

  it('--socket names the control socket, whatever RUNTIME_DIRECTORY says; a wrong one: agent not running (69)', async () => {
    const sock = path.join(primary.runtimeDir, 'primary.sock');
    const elsewhere = fs.mkdtempSync(path.join(dir, 'no-run-'));
    const ask = (socket: string): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) =>
        execFile('node', [CTL, '--config', primary.configFile, '--socket', socket, '--json', 'status'], { env: { ...process.env, RUNTIME_DIRECTORY: elsewhere }, timeout: 20_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
        ),
      );
    const ok = await ask(sock);
    expect([0, 2, 3, 4], ok.stderr).toContain(ok.code);
    expect(JSON.parse(ok.stdout)).toMatchObject({ role: 'primary', instance: 'primary' });
    const wrong = await ask(path.join(elsewhere, 'primary.sock'));
    expect(wrong.code).toBe(69);
    expect(wrong.stderr).toMatch(/not running/);
  });

  it('primary SIGKILL: the DR takes over within failures × interval + ttl + max_skew + 1 s', async () => {
    measured.sigkill = await takeoverTime(() => primary.signal('SIGKILL'));
    expect(measured.sigkill).toBeLessThan(TAKEOVER_BOUND);
    await primary.exit();
    const d = await status(dr);
    expect(d.phase).toBe('active');
    expect(d.takeovers).toBe(1);
    // The DR renews its own lease now.
    const seq = (await witness.read()).lease!.seq;
    await waitWitness(witness, (s) => s.lease!.holder === 'dr' && s.lease!.seq >= seq + 2, 2000);
  });

  it('the primary restarted stays standby for 10 detection periods: no preemption', async () => {
    await startAgent(primary);
    const epoch = (await witness.read()).lease!.epoch;
    await observeFor(PERIODS_10 + 500, (s) => (names(DR)(s) && s.lease!.epoch === epoch ? null : `the record or epoch changed: ${JSON.stringify(s)}`));
    const p = await status(primary);
    expect(p.phase).toBe('standby');
    expect(p.reason).toMatch(/DR active since .* run failoverctl failback when sync is ready/);
  });

  it('failoverctl failback moves the record back; the DR goes back to monitoring', async () => {
    const dry = await ctl(primary, ['failback', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('would proceed');
    expect((await witness.read()).addresses).toEqual([DR]); // a dry run changes nothing
    const epoch = (await witness.read()).lease!.epoch;
    // Lines from before the failback (some carry phase=monitoring) must not count as the DR's answer.
    const from = dr.lines.length;
    await failback();
    expect((await witness.read()).lease!.epoch).toBe(epoch + 1);
    await dr.waitLog(/phase=monitoring/, 3000, from);
    expect((await status(dr)).phase).toBe('monitoring');
    // Nothing to fail back now: refused with exit 1.
    const again = await ctl(primary, ['failback']);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/REFUSED: primary-active|REFUSED: dr-active/);
  });

  it('primary SIGSTOP: the DR takes over; resumed, the primary stands by', async () => {
    measured.sigstop = await takeoverTime(() => primary.signal('SIGSTOP'));
    expect(measured.sigstop).toBeLessThan(TAKEOVER_BOUND);
    const from = primary.lines.length;
    primary.signal('SIGCONT');
    await primary.waitLog(/phase=standby/, 3000, from);
    expect((await witness.read()).addresses).toEqual([DR]);
    await failback();
  });

  it('inter-site path cut while the primary renews: no takeover for 10 periods, and status says why', async () => {
    pathToPrimary.mode = 'cut';
    try {
      await observeFor(PERIODS_10 + 500, (s) => (names(PRIMARY)(s) ? null : 'the record moved to the DR'));
      const d = await status(dr);
      expect(d.health.consecutiveFailures).toBeGreaterThanOrEqual(FAILURES);
      expect(d.decision).toBe('wait-lease');
      expect(d.reason).toMatch(/health 3\/3 failed but the primary's lease was renewed [\d.]+ s ago.*not taking over/);
    } finally {
      pathToPrimary.mode = 'proxy';
    }
  });

  it('flapping health (fail, ok, fail, fail, ok) with the primary frozen: no takeover; steady failure: takeover', async () => {
    pathToPrimary.setPattern([503, 200, 503, 503, 200]);
    primary.signal('SIGSTOP');
    try {
      // The primary's lease runs out after ttl + skew; flapping must still hold the DR back.
      await observeFor(PERIODS_10 + TTL + SKEW, (s) => (names(PRIMARY)(s) ? null : 'took over on flapping health'));
      expect((await status(dr)).health.consecutiveFailures).toBeLessThan(FAILURES);
      pathToPrimary.setPattern([503]);
      await waitWitness(witness, names(DR), TAKEOVER_BOUND);
    } finally {
      pathToPrimary.mode = 'proxy';
      primary.signal('SIGCONT');
    }
    await primary.waitLog(/phase=standby/, 3000, Math.max(0, primary.lines.length - 5));
    await failback();
  });

  it('DNS server down for 10 periods: nobody flips, both recover when it returns', async () => {
    const before = await witness.read();
    const fromP = primary.lines.length;
    const fromD = dr.lines.length;
    await srv.restart({
      whileDown: async () => {
        await primary.waitLog(/DNS unreadable/, 2000, fromP);
        await dr.waitLog(/DNS unreadable/, 2000, fromD);
        // Keep it down for ten detection periods in all.
        await new Promise((r) => setTimeout(r, PERIODS_10));
      },
    });
    const { snap } = await waitWitness(witness, (s) => s.lease!.seq > before.lease!.seq, 5000);
    expect(snap.addresses).toEqual([PRIMARY]);
    expect(snap.lease!.epoch).toBe(before.lease!.epoch);
    expect(snap.lease!.holder).toBe('primary');
    await primary.waitLog(/phase=active/, 3000, fromP);
    expect((await status(dr)).phase).toBe('monitoring');
  });

  it('SIGHUP with a broken config keeps the old one; a valid change is applied without restart', async () => {
    const good = fs.readFileSync(dr.configFile, 'utf8');
    const pid = dr.proc.pid;
    let from = dr.lines.length;
    fs.writeFileSync(dr.configFile, good.replace('failures = 3', 'failures = "three"'));
    dr.signal('SIGHUP');
    await dr.waitLog(/event=reload_failed/, 3000, from);
    expect(dr.lines.slice(from).some((l) => /health\.failures/.test(l.line))).toBe(true);
    expect((await status(dr)).health.threshold).toBe(3);
    // A key the running agent built a component from (the health checker's timeout) cannot change
    // by reload: refused whole, naming it; the live change beside it is not half applied.
    from = dr.lines.length;
    fs.writeFileSync(dr.configFile, good.replace('failures = 3', 'failures = 4').replace('timeout = "150ms"', 'timeout = "300ms"'));
    dr.signal('SIGHUP');
    const refused = await dr.waitLog(/event=reload_failed/, 3000, from);
    expect(refused.line).toMatch(/cannot change health\.timeout by reload .*restart the agent/);
    expect(refused.line).toMatch(/code=RELOAD_REFUSED/);
    expect((await status(dr)).health.threshold).toBe(3);
    from = dr.lines.length;
    fs.writeFileSync(dr.configFile, good.replace('failures = 3', 'failures = 4'));
    dr.signal('SIGHUP');
    const applied = await dr.waitLog(/event=reload /, 3000, from);
    expect(applied.line).toMatch(/configuration reloaded: health\.failures changed/);
    const d = await status(dr);
    expect(d.health.threshold).toBe(4);
    expect(d.pid).toBe(pid);
    fs.writeFileSync(dr.configFile, good);
  });

  it('SIGTERM stops cleanly with exit 0', async () => {
    const from = dr.lines.length;
    dr.signal('SIGTERM');
    expect(await dr.exit()).toBe(0);
    expect(dr.lines.slice(from).some((l) => /event=stop/.test(l.line))).toBe(true);
    expect((await witness.read()).addresses).toEqual([PRIMARY]);
  });

  it('SIGINT stops cleanly too; a configuration error exits 78, a key file others may read 77', async () => {
    await startAgent(dr);
    const from = dr.lines.length;
    dr.signal('SIGINT');
    expect(await dr.exit()).toBe(0);
    expect(dr.lines.slice(from).some((l) => /event=stop/.test(l.line))).toBe(true);
    const bad = (name: string, text: string): AgentProcess => {
      fs.writeFileSync(path.join(dir, `${name}.toml`), text);
      fs.mkdirSync(path.join(dir, `run-${name}`), { recursive: true });
      return new AgentProcess(name, path.join(dir, `${name}.toml`), path.join(dir, `run-${name}`)).start();
    };
    const invalid = bad('dr-invalid', configText('dr').replace('failures = 3', 'failures = "three"'));
    expect(await invalid.exit()).toBe(78);
    expect(invalid.tail()).toMatch(/dr-invalid\.toml:\d+: health\.failures: expected an integer/);
    const key = path.join(dir, 'readable.key');
    fs.copyFileSync(srv.key.file, key);
    fs.chmodSync(key, 0o644);
    const readable = bad('dr-readable-key', configText('dr').replace(/^key_file = .*$/m, `key_file = "${key}"`));
    expect(await readable.exit()).toBe(77);
    expect(readable.tail()).toContain(key);
  });

  it('an agent still starting (its DNS server unreachable): SIGHUP is refused, not fatal; SIGTERM stops it cleanly', async () => {
    const deaf = await freePort();
    const text = configText('dr').replace(/^server = .*$/m, `server = "127.0.0.1:${deaf}"`).replace(/^listen = .*$/m, 'listen = ""');
    fs.writeFileSync(path.join(dir, 'dr-starting.toml'), text);
    fs.mkdirSync(path.join(dir, 'run-dr-starting'), { recursive: true });
    const starting = new AgentProcess('dr-starting', path.join(dir, 'dr-starting.toml'), path.join(dir, 'run-dr-starting')).start();
    await starting.waitLog(/DNS unreadable/, 5000);
    starting.signal('SIGHUP');
    await starting.waitLog(/SIGHUP ignored: the agent is still starting/, 3000);
    const from = starting.lines.length;
    starting.signal('SIGTERM');
    expect(await starting.exit()).toBe(0);
    expect(starting.lines.slice(from).some((l) => /stopping on SIGTERM event=stop/.test(l.line)), starting.tail()).toBe(true);
    expect(starting.lines.some((l) => /event=ready/.test(l.line))).toBe(false);
  });

  it('switchover --dry-run and switchover through the agent; with the agent down, failback runs directly with the key file', async () => {
    const before = await witness.read();
    const dry = await ctl(primary, ['switchover', '--dry-run']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^switchover \(dry run\): would proceed\n/);
    expect(dry.stdout).toMatch(/ok  primary-active: the primary is active/);
    expect(dry.stdout).toMatch(/1\. CAS in ONE update: .* -> 127\.0\.0\.12; /);
    // A dry run changes nothing (the lease moved on only by the primary's renewals).
    expect(await witness.read()).toMatchObject({ addresses: [PRIMARY], lease: { holder: 'primary', epoch: before.lease!.epoch } });
    const sw = await ctl(primary, ['switchover']);
    expect(sw.code, sw.stdout + sw.stderr).toBe(0);
    await waitWitness(witness, (s) => names(DR)(s) && s.lease?.holder === 'dr', 2000);
    await primary.waitLog(/phase=standby/, 3000, Math.max(0, primary.lines.length - 5));
    primary.signal('SIGTERM');
    expect(await primary.exit()).toBe(0);
    const fb = await ctl(primary, ['failback']);
    expect(fb.code, fb.stdout + fb.stderr).toBe(0);
    expect(fb.stdout).toContain('the agent is not running: executed directly');
    const after = await witness.read();
    expect(after).toMatchObject({ addresses: [PRIMARY], lease: { holder: 'primary' } });
    // A dry run without the agent: the same plan, said to be direct, nothing written.
    const direct = await ctl(primary, ['switchover', '--dry-run']);
    expect(direct.code, direct.stdout + direct.stderr).toBe(0);
    expect(direct.stdout).toMatch(/^switchover \(dry run\): would proceed\n\(the agent is not running: executed directly against DNS with the key file\)/);
    expect(await witness.read()).toMatchObject({ addresses: after.addresses, lease: after.lease });
    const st = await ctl(primary, ['status']);
    expect(st.code).toBe(69);
    expect(st.stderr).toContain('not running');
  });
});
