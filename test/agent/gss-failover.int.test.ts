/**
 * Two real agent processes signing with GSS-TSIG (one account, as AD needs: both sites sign as
 * failover-agent@EXAMPLE.TEST) against a REAL local realm: MIT krb5kdc whose tickets live 30 s
 * (so a context expires within the test) and BIND 9 with tkey-gssapi-keytab, on 127.0.0.0/8.
 * In order, as an operator would see it: failoverctl init; the primary renews over one context;
 * SIGKILL → the DR takes over; restarted, the primary stands by; failback; named restarted with its
 * contexts lost → both renegotiate, no takeover; the KDC down while the
 * contexts live → nothing changes until they expire (renewal failures counted, the expiry on
 * /metrics: what FailoverGssContextExpiring fires on), then a clear error and nobody moves the
 * record; the KDC back → both renegotiate and the primary holds again.
 * A missing krb5kdc or named fails the test (never a skip).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../src/control/protocol.js';
import type { Snapshot, Witness } from '../../src/lease/witness.js';
import { freePort, requireBinary, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { agentGrants, gssDnsTable, requireKerberosTools, startGssBind, startKdc, type KdcFixture } from '../fixtures/kdc.js';
import { AgentProcess, HealthPath, pairConfig, runCtl as ctl, agentStatus as status, ensureBuilt, waitWitness, witnessOf } from './harness.js';

const ACCOUNT = 'failover-agent@EXAMPLE.TEST';
const SERVICE = 'DNS/ns.example.test';
const PRIMARY = '127.0.0.21';
const DR = '127.0.0.22';
const PATH_HOST = '127.0.0.23';
const INTERVAL = 250;
const FAILURES = 3;
const TTL = 1500;
const SKEW = 250;
const TAKEOVER_BOUND = FAILURES * INTERVAL + TTL + SKEW + 1000;
/** kdc.conf max_life: every service ticket, hence every GSS context, lives this long. */
const LIFE_S = 30;

let kdc: KdcFixture;
let bind: DnsServerFixture;
/** Reads for the assertions, unsigned (the agents' own reads are the signed ones). */
let witness: Witness;
let dir: string;
let primary: AgentProcess;
let dr: AgentProcess;
let pathToPrimary: HealthPath;
const ports = { primaryHttp: 0, drHttp: 0 };

function configText(role: 'primary' | 'dr'): string {
  return pairConfig({
    role,
    sites: { primary: PRIMARY, dr: DR },
    dns: gssDnsTable(bind, { principal: ACCOUNT, serverPrincipal: SERVICE, timeout: '300ms' }),
    lease: { ttl: `${TTL}ms`, renew: `${INTERVAL}ms`, skew: `${SKEW}ms` },
    health: { target: `http://${PATH_HOST}:${pathToPrimary.port}/healthz`, interval: `${INTERVAL}ms`, timeout: '200ms', failures: FAILURES },
    listen: role === 'primary' ? `${PRIMARY}:${ports.primaryHttp}` : `${DR}:${ports.drHttp}`,
  });
}

const names = (site: string) => (s: Snapshot) => s.addresses.length === 1 && s.addresses[0] === site;

async function startAgent(agent: AgentProcess): Promise<void> {
  const from = agent.lines.length;
  agent.start();
  await agent.waitLog(/event=ready/, 15_000, from);
}

async function metric(host: string, port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://${host}:${port}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics:\n${text}`);
  return Number(m[1]);
}

/** Polls `failoverctl --json status` of `agent` until `pred` holds (bounded). */
async function statusUntil(agent: AgentProcess, pred: (s: AgentStatus) => boolean, timeoutMs: number): Promise<AgentStatus> {
  const deadline = performance.now() + timeoutMs;
  let last = await status(agent);
  while (!pred(last)) {
    if (performance.now() > deadline) throw new Error(`${agent.name}: status condition not met within ${timeoutMs} ms; last: ${JSON.stringify(last)}\n${agent.tail()}`);
    await new Promise((r) => setTimeout(r, 200));
    last = await status(agent);
  }
  return last;
}

beforeAll(async () => {
  requireKerberosTools();
  for (const tool of ['named', 'dig']) requireBinary(tool);
  ensureBuilt();
  kdc = await startKdc({ maxLife: `${LIFE_S}s` });
  // The agents and failoverctl inherit the realm's krb5.conf through KRB5_CONFIG.
  Object.assign(process.env, kdc.env);
  const serverKeytab = await kdc.addPrincipal(`${SERVICE}@EXAMPLE.TEST`);
  const accountKeytab = await kdc.addPrincipal(ACCOUNT);
  bind = await startGssBind(serverKeytab, agentGrants(ACCOUNT));
  witness = witnessOf(bind, { unsigned: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-gss-failover-'));
  ports.primaryHttp = await freePort();
  ports.drHttp = await freePort();
  pathToPrimary = new HealthPath(PATH_HOST, () => `http://${PRIMARY}:${ports.primaryHttp}/healthz`);
  await pathToPrimary.start();
  fs.copyFileSync(accountKeytab, path.join(dir, 'failover.keytab'));
  fs.chmodSync(path.join(dir, 'failover.keytab'), 0o600);
  for (const role of ['primary', 'dr'] as const) {
    fs.writeFileSync(path.join(dir, `${role}.toml`), configText(role));
    fs.mkdirSync(path.join(dir, `run-${role}`));
  }
  primary = new AgentProcess('primary', path.join(dir, 'primary.toml'), path.join(dir, 'run-primary'));
  dr = new AgentProcess('dr', path.join(dir, 'dr.toml'), path.join(dir, 'run-dr'));
}, 60_000);

afterAll(async () => {
  await primary?.stop();
  await dr?.stop();
  await pathToPrimary?.stop();
  await bind?.stop();
  await kdc?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('two agents signing with GSS-TSIG (MIT krb5kdc + BIND 9)', { timeout: 60_000 }, () => {
  it('failoverctl init writes the record and the lease, signed; both agents start; the primary renews over one context', async () => {
    const init = await ctl(primary, ['init']);
    expect(init.code, init.stdout + init.stderr).toBe(0);
    expect((await witness.read()).lease).toMatchObject({ holder: 'primary' });
    await startAgent(primary);
    await startAgent(dr);
    const seq = (await witness.read()).lease!.seq;
    await waitWitness(witness, (s) => names(PRIMARY)(s) && s.lease!.holder === 'primary' && s.lease!.seq >= seq + 4, 5000);
    const p = await statusUntil(primary, (s) => s.active, 5000);
    expect(p.gss).toMatchObject({ principal: ACCOUNT, target: SERVICE, live: true, negotiations: 1, renewalFailures: 0 });
    const d = await statusUntil(dr, (s) => s.phase === 'monitoring', 5000);
    expect(d.gss).toMatchObject({ principal: ACCOUNT, live: true, renewalFailures: 0 });
    // The context's lifetime is the ticket's (kdc max_life): it will expire within this test.
    const left = (Date.parse(p.gss!.expiresAt!) - Date.now()) / 1000;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(LIFE_S);
  });

  it('primary SIGKILL: the DR takes over, signing with the same account', async () => {
    const from = dr.lines.length;
    const t0 = performance.now();
    primary.signal('SIGKILL');
    await waitWitness(witness, (s) => names(DR)(s) && s.lease!.holder === 'dr', TAKEOVER_BOUND + 2000, 20);
    expect(performance.now() - t0).toBeLessThan(TAKEOVER_BOUND + 2000);
    await dr.waitLog(/event=takeover /, 2000, from);
    await primary.exit();
    const seq = (await witness.read()).lease!.seq;
    await waitWitness(witness, (s) => s.lease!.holder === 'dr' && s.lease!.seq >= seq + 2, 3000);
  });

  it('the primary restarted stands by; failoverctl failback moves the record back', async () => {
    await startAgent(primary);
    await statusUntil(primary, (s) => s.phase === 'standby', 5000);
    expect((await witness.read()).addresses).toEqual([DR]);
    const epoch = (await witness.read()).lease!.epoch;
    const r = await ctl(primary, ['failback']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('failback done');
    await waitWitness(witness, (s) => names(PRIMARY)(s) && s.lease!.holder === 'primary' && s.lease!.epoch === epoch + 1, 3000);
    await statusUntil(dr, (s) => s.phase === 'monitoring', 5000);
  });

  it('named restarted with its contexts lost: both agents renegotiate (BADKEY, once), no takeover', async () => {
    const before = await witness.read();
    const negotiated = { p: (await status(primary)).gss!.negotiations, d: (await status(dr)).gss!.negotiations };
    const fromP = primary.lines.length;
    const fromD = dr.lines.length;
    // named keeps TKEY-made keys across a clean restart (<view>.tsigkeys): lose them, as a crash would.
    await bind.restart({
      whileDown: async () => {
        for (const f of fs.readdirSync(bind.dir).filter((n) => n.endsWith('.tsigkeys'))) fs.rmSync(path.join(bind.dir, f));
      },
    });
    await primary.waitLog(/event=gss_negotiated .*why=rejected|why=rejected.*event=gss_negotiated/, 10_000, fromP);
    await dr.waitLog(/event=gss_negotiated .*why=rejected|why=rejected.*event=gss_negotiated/, 10_000, fromD);
    await waitWitness(witness, (s) => names(PRIMARY)(s) && s.lease!.epoch === before.lease!.epoch && s.lease!.seq >= before.lease!.seq + 4, 5000);
    expect((await status(primary)).gss!.negotiations).toBeGreaterThan(negotiated.p);
    expect((await status(dr)).gss!.negotiations).toBeGreaterThan(negotiated.d);
    expect((await status(dr)).takeovers).toBe(1);
  });

  it('the KDC down while the contexts live: renewals go on until they expire, then a clear error and an alert; nobody moves the record; the KDC back, both recover', async () => {
    const epoch = (await witness.read()).lease!.epoch;
    const fromP = primary.lines.length;
    const fromD = dr.lines.length;
    await kdc.down();
    try {
      // While the contexts live: the primary keeps renewing (its current context is < LIFE_S old).
      const seq = (await witness.read()).lease!.seq;
      await waitWitness(witness, (s) => names(PRIMARY)(s) && s.lease!.seq >= seq + 4, 3000);
      // A renewal is due at 80 % of the life and fails: counted, the expiry still ahead, on /metrics.
      const failed = await primary.waitLog(/event=gss_failed/, (LIFE_S + 5) * 1000, fromP);
      expect(failed.line).toMatch(/Cannot contact any KDC for requested realm/);
      const failures = await metric(PRIMARY, ports.primaryHttp, 'failover_gss_renewal_failures_total');
      expect(failures).toBeGreaterThanOrEqual(1);
      const expiry = await metric(PRIMARY, ports.primaryHttp, 'failover_gss_context_expiry_timestamp_seconds');
      // FailoverGssContextExpiring: expiry − time() < 15 min and renewal failures increased.
      expect(expiry - Date.now() / 1000).toBeLessThan(15 * 60);
      // Then the contexts expire: every signed request fails, the status names the KDC.
      // (expired, and the next request's negotiation failed too: the last error is of that one)
      const p = await statusUntil(primary, (s) => s.gss?.live === false && s.gss.lastRenewalError?.why === 'expired', (LIFE_S + 5) * 1000);
      expect(p.gss!.lastRenewalError?.text).toMatch(/gss_acquire_cred_from: .*Cannot contact any KDC for requested realm/);
      // Its lease runs out unrenewed: it stops counting itself active (ttl − max_skew later).
      expect((await statusUntil(primary, (st) => !st.active, TTL + 3000)).active).toBe(false);
      await statusUntil(dr, (s) => s.gss !== null && s.gss !== undefined && !s.gss.live, (LIFE_S + 5) * 1000);
      await dr.waitLog(/event=gss_failed .*why=expired|why=expired.*event=gss_failed/, 5000, fromD);
      // Nobody can write: the record stays where it was, no takeover.
      const s = await witness.read();
      expect(names(PRIMARY)(s)).toBe(true);
      expect(s.lease!.epoch).toBe(epoch);
      expect((await status(dr)).takeovers).toBe(1);
    } finally {
      await kdc.up();
    }
    // Back: both negotiate anew and the primary renews its own epoch again.
    const seq = (await witness.read()).lease!.seq;
    await waitWitness(witness, (s) => names(PRIMARY)(s) && s.lease!.epoch === epoch && s.lease!.seq >= seq + 3, 10_000);
    const p = await statusUntil(primary, (s) => s.active && s.gss?.live === true, 10_000);
    expect(p.gss!.negotiations).toBeGreaterThanOrEqual(2);
    expect((await statusUntil(dr, (s) => s.gss?.live === true, 10_000)).phase).toBe('monitoring');
    expect((await status(dr)).takeovers).toBe(1);
  }, 120_000);
});
