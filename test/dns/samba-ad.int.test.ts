/**
 * GSS-TSIG against Active Directory as operators run it: a REAL Samba AD domain controller (its
 * internal DNS and its KDC) in a network namespace of its own with a 198.18.0.0/15 address
 * (test/fixtures/samba.ts), issue 22. The agent signs as a user account of the domain, with its
 * keytab, and asks for DNS/<SOA MNAME> (DNS/dc1.ad.example.test) as nsupdate -g does; `nsupdate -g`
 * is the outside witness. Each of Samba's quirks has its test here:
 *
 * 1. its answers' MAC is over the request MAC WITHOUT its length prefix: signed reads and CAS
 *    updates verify (that layout, and only with a MIC that verifies); a tampered answer does not;
 * 2. its error answers (NXRRSET, SERVFAIL) are unsigned, echoing our signature: the exchange ends
 *    at once (DNS_UNSIGNED_ERROR), and a signed re-read decides: a stale CAS is lost;
 * 3. a captured update is applied again once ~20 newer messages passed (its replay window): every
 *    CAS (the lease's, and the control record's through its revision) rests on a rising value;
 * 4. the SOA serial stays 1: propagation is judged on the record's value;
 * 5. the account that created a record owns it: another account's change gets SERVFAIL (unsigned);
 *    init and check-config say so (77), and a group granted full control (samba-tool dsacl set)
 *    fixes it.
 * And the agent's own life against it: failoverctl init, check-config, two agents renewing, a
 * takeover, a failback, Samba restarted (contexts lost: renegotiated once).
 * A missing samba, samba-tool, nsupdate or kinit fails the test (never a skip).
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPause, witnessPauseIo } from '../../src/admin/pause.js';
import { loadConfig } from '../../src/config/load.js';
import { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import { loadGssAddon, type GssApi } from '../../src/dns/gss/addon.js';
import { GssSession } from '../../src/dns/gss/context.js';
import { negotiate, type GssTsigContext } from '../../src/dns/gss/tkey.js';
import type { SignerSession, TsigSigner } from '../../src/dns/signer.js';
import { loadSigning } from '../../src/dns/signing.js';
import { change, prereq } from '../../src/dns/update.js';
import { decodeMessage, NO_FLAGS, type Message } from '../../src/dns/wire.js';
import { revisionOf } from '../../src/lease/control.js';
import { formatLease } from '../../src/lease/lease.js';
import { openWitness, type OpenedWitness } from '../../src/lease/open.js';
import { renewalOf, transferOf, Witness } from '../../src/lease/witness.js';
import { AgentProcess, HealthPath, agentStatus, ensureBuilt, pairConfig, runCtl, waitWitness } from '../agent/harness.js';
import { runInProcess } from '../cli/in-process.js';
import { freePort, requireBinary, runCommand } from '../fixtures/dns-servers.js';
import { requireSambaTools, startSambaDc, type SambaDc, type SambaUser } from '../fixtures/samba.js';

const PRIMARY = '127.0.0.81';
const DR = '127.0.0.82';
const PATH_HOST = '127.0.0.83';
const INTERVAL = 200;
const FAILURES = 3;
const TTL = 1000;
const SKEW = 200;
const TAKEOVER_BOUND = FAILURES * INTERVAL + TTL + SKEW + 1000;

let dc: SambaDc;
let gss: GssApi;
let agent: SambaUser;
let other: SambaUser;
let dir: string;
const record = (): string => `syslog.${dc.zone}`;
const leaseName = (): string => `_lease.${record()}`;
const controlName = (): string => `_control.${record()}`;
const opened: OpenedWitness[] = [];
const contexts: GssTsigContext[] = [];
const procs: AgentProcess[] = [];
let pathToPrimary: HealthPath | undefined;
const ports = { primary: 0, dr: 0 };
const timings: Record<string, number> = {};

beforeAll(async () => {
  requireSambaTools();
  for (const tool of ['nsupdate', 'kinit']) requireBinary(tool);
  gss = loadGssAddon();
  ensureBuilt();
  const t0 = performance.now();
  dc = await startSambaDc();
  timings.dcStart = Math.round(performance.now() - t0);
  Object.assign(process.env, dc.env);
  agent = await dc.addUser('failover');
  other = await dc.addUser('othersite');
  timings.users = Math.round(performance.now() - t0) - timings.dcStart;
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'fa-samba-int-'));
  for (const [name, u] of [
    ['failover', agent],
    ['othersite', other],
  ] as const) {
    await fsp.copyFile(u.keytab, path.join(dir, `${name}.keytab`));
    await fsp.chmod(path.join(dir, `${name}.keytab`), 0o600);
  }
  ports.primary = await freePort();
  ports.dr = await freePort();
}, 120_000);

afterAll(async () => {
  for (const p of procs) await p.stop();
  await pathToPrimary?.stop();
  for (const o of opened) o.gss?.close();
  for (const c of contexts) c.close();
  await dc?.stop();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
  console.log(`samba-ad timings (ms): ${JSON.stringify({ ...timings, ...(dc ? dc.timings : {}) })}`);
});

/** An agent configuration signing as `keytab`'s account (failover.keytab: the one both sites share). */
function configText(role: 'primary' | 'dr', keytab = 'failover.keytab', principal = agent.principal): string {
  return pairConfig({
    role,
    sites: { primary: PRIMARY, dr: DR },
    // No server_principal: DNS/<SOA MNAME>, as nsupdate -g.
    dns: `[dns]
record = "${record()}"
zone = "${dc.zone}"
server = "${dc.host}:${dc.port}"
auth = "gss-tsig"
timeout = "300ms"
retries = 1
verify_servers = ["${dc.host}:${dc.port}"]
[dns.gss]
principal = "${principal}"
keytab = "${keytab}"`,
    lease: { ttl: `${TTL}ms`, renew: `${INTERVAL}ms`, skew: `${SKEW}ms` },
    health: { target: `http://${PATH_HOST}:${pathToPrimary?.port ?? 9}/healthz`, interval: `${INTERVAL}ms`, timeout: '150ms', failures: FAILURES },
    listen: role === 'primary' ? `${PRIMARY}:${ports.primary}` : `${DR}:${ports.dr}`,
  });
}

async function configFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await fsp.writeFile(file, text);
  return file;
}

/** The Witness the agent builds (openWitness + loadSigning) from a config file. */
async function witnessFor(file: string): Promise<OpenedWitness> {
  const config = loadConfig(file);
  const w = await openWitness(config, loadSigning(config));
  opened.push(w);
  return w;
}

/** A context of our own (not through the session), for raw exchanges. */
async function context(user: SambaUser): Promise<GssTsigContext> {
  const cred = await gss.acquireCredentials(user.principal, user.keytab);
  try {
    const ctx = await negotiate({ gss, cred, principal: user.principal, server: { host: dc.host, port: dc.port }, serverPrincipal: dc.servicePrincipal, timeoutMs: 10_000 });
    contexts.push(ctx);
    return ctx;
  } finally {
    gss.releaseCredentials(cred);
  }
}

/** Sends `wire` once over UDP and returns the raw answer. */
function udpOnce(wire: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error('no answer within 2 s'));
    }, 2_000);
    s.on('message', (buf) => {
      clearTimeout(timer);
      s.close();
      resolve(buf);
    });
    s.send(wire, dc.port, dc.host);
  });
}

function updateMessage(id: number, prerequisites: Message['answers'], updates: Message['authorities']): Message {
  return { id, opcode: 'UPDATE', flags: NO_FLAGS, rcode: 0, questions: [{ name: dc.zone, type: 'SOA', class: 'IN' }], answers: prerequisites, authorities: updates, additionals: [] };
}

/** A SignerSession that keeps the wire of every request it signs (a capture of what went out). */
function capturing(inner: SignerSession): { session: SignerSession; sent: Buffer[] } {
  const sent: Buffer[] = [];
  const wrap = (s: TsigSigner): TsigSigner => ({
    ...s,
    sign: (m, now) => {
      const r = s.sign(m, now);
      if (m.opcode === 'UPDATE') sent.push(r.wire);
      return r;
    },
    verify: (...a) => s.verify(...a),
  });
  const wrapped = new Map<TsigSigner, TsigSigner>();
  return {
    sent,
    session: {
      principal: inner.principal!,
      acquire: async () => {
        const s = await inner.acquire();
        if (!wrapped.has(s)) wrapped.set(s, wrap(s));
        return wrapped.get(s)!;
      },
      invalidate: (used) => {
        for (const [k, v] of wrapped) if (v === used) inner.invalidate(k);
      },
    },
  };
}

/** kinit into a private ccache and run nsupdate -g with `script`. */
async function nsupdate(user: SambaUser, script: string[]): Promise<{ code: number | null; out: string }> {
  const ccache = `FILE:${path.join(dir, `${path.basename(user.keytab)}.ccache`)}`;
  const kinit = await runCommand('env', [`KRB5CCNAME=${ccache}`, 'kinit', '-k', '-t', user.keytab, user.principal]);
  expect(kinit.code, kinit.stderr).toBe(0);
  const r = await runCommand('env', [`KRB5CCNAME=${ccache}`, 'nsupdate', '-g'], { input: [`server ${dc.host} ${dc.port}`, `zone ${dc.zone}`, ...script, 'send', ''].join('\n'), timeoutMs: 20_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

describe('GSS-TSIG against a Samba AD domain controller (internal DNS) in its own network namespace', () => {
  it('the DC lives in its namespace at a 198.18.0.0/15 address only, and asks nothing outside it', async () => {
    const addrs = await runCommand('ip', ['netns', 'exec', dc.netns, 'ip', '-o', 'addr', 'show']);
    const v4 = [...addrs.stdout.matchAll(/inet (\S+)/g)].map((m) => m[1]!);
    expect(v4.sort()).toEqual([`${dc.host}/30`, '127.0.0.1/8'].sort());
    expect(addrs.stdout).not.toMatch(/inet6/);
    expect(dc.host).toMatch(/^198\.1[89]\./);
    const routes = await runCommand('ip', ['netns', 'exec', dc.netns, 'ip', '-4', 'route', 'show']);
    expect(routes.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^198\.18\.53\.\d+\/30 dev dc0/)]);
    expect(fs.readFileSync(path.join(dc.dir, 'dc', 'etc', 'smb.conf'), 'utf8')).not.toMatch(/dns forwarder/);
  });

  it('quirk 1: TKEY gss-tsig in one round trip; signed reads and a CAS update verify over the request MAC without its length; a tampered answer does not', async () => {
    const ctx = await context(agent);
    expect(ctx.keyName).toMatch(/^\d+\.sig-dc1\.ad\.example\.test$/);
    const c = new DnsClient({ server: { host: dc.host, port: dc.port }, signer: ctx.signer, timeoutMs: 2_000, retries: 1 });
    const soa = await c.read(dc.zone, 'SOA');
    expect(soa).toMatchObject({ authenticated: true, values: [expect.objectContaining({ mname: dc.fqdn })] });
    // A negative answer is signed too.
    expect(await c.read(`nothing.${dc.zone}`, 'A')).toMatchObject({ rcode: 'NXDOMAIN', authenticated: true });
    const A = { name: record(), type: 'A' as const };
    const u = await c.update(dc.zone, [prereq.rrsetAbsent(A)], [change.add({ ...A, data: '10.0.0.1' }, 30)]);
    expect(u.authenticated).toBe(true);

    // The raw answer to a signed CAS: it verifies in Samba's layout only, and not once tampered with.
    const signed = ctx.signer.sign(updateMessage(0x4242, prereq.rrsetEquals(A, ['10.0.0.1']), [change.deleteRrset(A), change.add({ ...A, data: '10.0.0.2' }, 30)]), Date.now() / 1000);
    const answer = await udpOnce(signed.wire);
    const decoded = decodeMessage(answer);
    expect(decoded.message.rcode).toBe(0);
    const v = ctx.signer.verify(answer, decoded, signed.mac, Date.now() / 1000);
    expect(v).toMatchObject({ kind: 'ok', quirk: 'request-mac-without-length' });
    const tampered = Buffer.from(answer);
    tampered[3] = tampered[3]! ^ 0x10; // a header bit the MAC covers
    expect(ctx.signer.verify(tampered, decodeMessage(tampered), signed.mac, Date.now() / 1000)).toMatchObject({ kind: 'bad' });
    // ... nor chained to another request's MAC.
    expect(ctx.signer.verify(answer, decoded, Buffer.alloc(signed.mac.length, 7), Date.now() / 1000)).toMatchObject({ kind: 'bad' });
    expect((await c.read(record(), 'A')).values).toEqual(['10.0.0.2']);
  });

  it('nsupdate -g as the oracle: it reports "tsig verify failure" (quirk 1) yet its update applies; it sees our write, we see its', async () => {
    const c = new DnsClient({ server: { host: dc.host, port: dc.port }, signer: (await context(agent)).signer, timeoutMs: 2_000, retries: 1 });
    const ns = await nsupdate(agent, [`prereq yxrrset ${record()}. A 10.0.0.2`, `update delete ${record()}. A`, `update add ${record()}. 30 A 10.0.0.3`]);
    expect(ns.code).not.toBe(0);
    expect(ns.out).toMatch(/tsig verify failure/);
    expect(await c.read(record(), 'A')).toMatchObject({ authenticated: true, values: ['10.0.0.3'] });
    // Clean slate for init.
    await c.update(dc.zone, [], [change.deleteRrset({ name: record(), type: 'A' })]);
  });

  it('check-config and failoverctl init against the DC: the record, the lease and the control record created by one account; a second init refuses (exists)', async () => {
    const primary = await configFile('primary.toml', configText('primary'));
    const cc = await runInProcess(['--config', primary, 'check-config']);
    expect(cc.code, cc.stderr + cc.stdout).toBe(0);
    expect(cc.stdout).toMatch(/write access: nothing to check yet/);
    const init = await runInProcess(['--config', primary, 'init']);
    expect(init.code, init.stderr + init.stdout + dc.log().slice(-2000)).toBe(0);
    // Its probe's NXRRSET came unsigned: what a server that enforces prerequisites says.
    expect(init.stdout).toMatch(/refused a false prerequisite, with an unsigned NXRRSET/);
    expect(init.stdout).toMatch(/served by 1\/1 servers/);
    const w = (await witnessFor(primary)).witness;
    const s = await w.read();
    expect(s.addresses).toEqual([PRIMARY]);
    expect(s.lease).toMatchObject({ holder: 'primary', epoch: 1, seq: 0 });
    expect(s.controlText).toEqual(['v=1 rev n=1']);
    const again = await runInProcess(['--config', primary, 'init']);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/refused: the record or the lease exists already/);
    const cc2 = await runInProcess(['--config', primary, 'check-config']);
    expect(cc2.code, cc2.stderr).toBe(0);
    expect(cc2.stdout).toContain(`write access: ${agent.principal} may change ${record()}, ${leaseName()}, ${controlName()}`);
  }, 30_000);

  it('quirk 2: a stale CAS gets an UNSIGNED NXRRSET: the exchange ends at once (not retried), and the signed re-read says the CAS was lost', async () => {
    const w = await witnessFor(path.join(dir, 'primary.toml'));
    const first = await w.witness.read();
    const seen = (await w.witness.write(first, renewalOf(first, Date.now() / 1000))).snapshot;
    // The raw client: DNS_UNSIGNED_ERROR within far less than the 600 ms budget (timeout 300 ms × 2).
    const t0 = performance.now();
    const raw = await w.client.update(dc.zone, prereq.rrsetEquals({ name: leaseName(), type: 'TXT' }, [[formatLease(first.lease!)]]), [change.deleteRrset({ name: leaseName(), type: 'TXT' })]).catch((e: unknown) => e);
    const took = performance.now() - t0;
    expect(raw).toBeInstanceOf(DnsError);
    expect(raw).toMatchObject({ code: 'DNS_UNSIGNED_ERROR', rcode: 'NXRRSET', authenticated: false, exitCode: 69 });
    expect((raw as Error).message).toMatch(/without a signature of its own/);
    expect(took).toBeLessThan(300); // within the first attempt's timeout: no resend
    // The Witness: a signed re-read decides. Someone moved first: the CAS is lost (a conflict, authenticated by that read).
    const stale = await w.witness.write(first, transferOf(first, 'dr', { primary: PRIMARY, dr: DR }, Date.now() / 1000)).catch((e: unknown) => e);
    expect(stale).toMatchObject({ code: 'DNS_PREREQ_FAILED', rcode: 'NXRRSET', authenticated: true });
    expect((stale as Error).message).toMatch(/lost: the server answered NXRRSET unsigned, and a signed re-read shows the witness changed/);
    expect((await w.witness.read()).lease).toEqual(seen.lease);
    // Two copies of one renewal (the engine's hedge on a lossy path): one applies, the other's
    // unsigned NXRRSET is recognised as our own write by the re-read.
    const next = renewalOf(seen, Date.now() / 1000);
    const [a, b] = await Promise.all([w.witness.write(seen, next), w.witness.write(seen, next)]);
    expect([a.recovered ?? false, b.recovered ?? false].sort()).toEqual([false, true]);
    expect((await w.witness.read()).lease).toEqual(next.lease);
  });

  it('quirk 3: a captured CAS replayed after the server\'s replay window is processed again and fails its rising prerequisite; so does a captured pause after resume (the control revision)', async () => {
    const session = new GssSession({ gss, principal: agent.principal, keytab: path.join(dir, 'failover.keytab'), server: { host: dc.host, port: dc.port }, serverPrincipal: dc.servicePrincipal, timeoutMs: 10_000 });
    const cap = capturing(session);
    const client = new DnsClient({ server: { host: dc.host, port: dc.port }, session: cap.session, timeoutMs: 1_000, retries: 0 });
    const w = new Witness(client, { zone: dc.zone, record: record(), leaseName: leaseName(), ttlSeconds: 30 }, 'A');
    try {
      const tick = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) await client.read(record(), 'A');
      };
      // A renewal captured on the wire, then more renewals.
      let seen = await w.read();
      seen = (await w.write(seen, renewalOf(seen, Date.now() / 1000))).snapshot;
      const renewal = cap.sent.at(-1)!;
      for (let i = 0; i < 3; i++) seen = (await w.write(seen, renewalOf(seen, Date.now() / 1000))).snapshot;
      await tick(30);
      // The premise: an update resting on nothing rising IS applied again (Samba has no replay protection past its window).
      const A = { name: `replayed.${dc.zone}`, type: 'A' as const };
      await client.update(dc.zone, [], [change.deleteRrset(A), change.add({ ...A, data: '10.9.9.1' }, 30)]);
      const plain = cap.sent.at(-1)!;
      await client.update(dc.zone, [], [change.deleteRrset(A), change.add({ ...A, data: '10.9.9.2' }, 30)]);
      await tick(30);
      expect(decodeMessage(await udpOnce(plain)).message.rcode).toBe(0);
      expect((await client.read(A.name, 'A')).values).toEqual(['10.9.9.1']);
      await client.update(dc.zone, [], [change.deleteName(A.name)]);
      // The captured renewal: processed again, refused by its prerequisite (the lease's seq rose): the lease stays.
      const before = await w.read();
      const answer = decodeMessage(await udpOnce(renewal)).message;
      expect(answer.rcode).toBe(8); // NXRRSET
      expect((await w.read()).leaseText).toEqual(before.leaseText);

      // pause → resume, then the captured pause again: its prerequisite names the revision before it.
      const rev0 = revisionOf((await w.read()).controlText);
      const io = witnessPauseIo(w, () => Date.now() / 1000 + (seen.offsetSeconds ?? 0));
      await runPause('pause', { by: 'ops', reason: 'replay test', forSeconds: null }, io);
      const pause = cap.sent.at(-1)!;
      expect((await w.read()).control!.pause).toMatchObject({ by: 'ops' });
      await runPause('resume', { by: 'ops', reason: '', forSeconds: null }, io);
      await tick(30);
      expect(decodeMessage(await udpOnce(pause)).message.rcode).toBe(8);
      const after = await w.read();
      expect(after.control!.pause).toBeNull();
      expect(after.controlText).toEqual([`v=1 rev n=${rev0 + 2}`]);
    } finally {
      session.close();
    }
  }, 30_000);

  it('value-dependent prerequisites are checked record by record (not as the RRset): the control revision still fails a takeover read before a pause', async () => {
    const w = await witnessFor(path.join(dir, 'primary.toml'));
    const before = await w.witness.read();
    const io = witnessPauseIo(w.witness, () => Date.now() / 1000);
    await runPause('pause', { by: 'ops', reason: 'maintenance', forSeconds: null }, io);
    const paused = await w.witness.read();
    expect(paused.controlText!.length).toBe(2);
    // Samba: a prerequisite naming one of the two TXT records passes (RFC 2136 §3.2.5 would say NXRRSET).
    const rev = paused.controlText!.find((t) => t.startsWith('v=1 rev'))!;
    await w.client.update(dc.zone, prereq.rrsetEquals({ name: controlName(), type: 'TXT' }, [[rev]]), []);
    // A takeover planned on the read before the pause names the old revision: refused, nothing moves.
    const takeover = await w.witness.write(before, { ...transferOf(before, 'dr', { primary: PRIMARY, dr: DR }, Date.now() / 1000), guardControl: true }).catch((e: unknown) => e);
    expect(takeover).toMatchObject({ code: 'DNS_PREREQ_FAILED', authenticated: true });
    expect((await w.witness.read()).lease!.holder).toBe('primary');
    await runPause('resume', { by: 'ops', reason: '', forSeconds: null }, io);
  });

  it('two agents: renewals over one context each, a takeover, a failback; the SOA serial stays 1 and propagation is judged on the value (quirk 4)', async () => {
    pathToPrimary = new HealthPath(PATH_HOST, () => `http://${PRIMARY}:${ports.primary}/healthz`);
    await pathToPrimary.start();
    const primaryFile = await configFile('primary.toml', configText('primary'));
    const drFile = await configFile('dr.toml', configText('dr'));
    for (const r of ['run-primary', 'run-dr']) await fsp.mkdir(path.join(dir, r), { recursive: true });
    const primary = new AgentProcess('primary', primaryFile, path.join(dir, 'run-primary'));
    const dr = new AgentProcess('dr', drFile, path.join(dir, 'run-dr'));
    procs.push(primary, dr);
    const w = (await witnessFor(primaryFile)).witness;
    const t0 = performance.now();
    for (const a of [primary, dr]) {
      a.start();
      await a.waitLog(/event=ready/, 15_000);
    }
    timings.agentsReady = Math.round(performance.now() - t0);
    const seq0 = (await w.read()).lease!.seq;
    await waitWitness(w, (s) => s.lease!.seq >= seq0 + 5, 5_000);
    let p = await agentStatus(primary);
    for (let i = 0; i < 40 && !p.active; i++) {
      await new Promise((r) => setTimeout(r, 100));
      p = await agentStatus(primary);
    }
    expect(p).toMatchObject({ phase: 'active', active: true });
    expect(p.gss).toMatchObject({ principal: agent.principal, target: dc.servicePrincipal, live: true, negotiations: 1 });
    expect((await agentStatus(dr)).phase).toBe('monitoring');

    // Takeover: the primary is killed; the DR takes over within the bound.
    const from = dr.lines.length;
    const t1 = performance.now();
    primary.signal('SIGKILL');
    await primary.exit();
    await waitWitness(w, (s) => s.addresses[0] === DR && s.lease?.holder === 'dr', TAKEOVER_BOUND + 2_000, 20);
    timings.takeover = Math.round(performance.now() - t1);
    expect(timings.takeover).toBeLessThan(TAKEOVER_BOUND + 1_000);
    await dr.waitLog(/event=takeover /, 2_000, from);
    const epoch = (await w.read()).lease!.epoch;
    // The SOA serial did not move through all of it; the propagation check still sees the DR's address served.
    const client = (await witnessFor(primaryFile)).client;
    expect((await client.soa(dc.zone)).serial).toBe(1);
    let d = await agentStatus(dr);
    for (let i = 0; i < 50 && d.propagation?.in_sync !== 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      d = await agentStatus(dr);
    }
    expect(d.propagation).toMatchObject({ value: [DR], in_sync: 1, total: 1, servers: [expect.objectContaining({ serial: 1, in_sync: true })] });
    const dns = await runCtl(dr, ['--json', 'dns']);
    expect(dns.code, dns.stderr).toBe(0);
    expect(JSON.parse(dns.stdout)).toMatchObject({ soa_serial: 1, addresses: [DR], servers: [expect.objectContaining({ in_sync: true })] });

    // Failback: the primary restarted stays standby; failoverctl failback moves the record back.
    primary.start();
    await primary.waitLog(/event=ready/, 15_000);
    const fb = await runCtl(primary, ['failback']);
    expect(fb.code, fb.stdout + fb.stderr).toBe(0);
    expect(fb.stdout).toContain('failback done');
    const back = await waitWitness(w, (s) => s.addresses[0] === PRIMARY && s.lease?.holder === 'primary', 3_000);
    expect(back.snap.lease!.epoch).toBe(epoch + 1);
    const seq1 = back.snap.lease!.seq;
    await waitWitness(w, (s) => s.lease!.holder === 'primary' && s.lease!.seq >= seq1 + 3, 3_000);
    const metrics = await (await fetch(`http://${PRIMARY}:${ports.primary}/metrics`)).text();
    // An unsigned error answer is a DNS error code of its own (counted when it reaches the engine).
    expect(metrics).toMatch(/^failover_dns_errors_total\{[^}]*code="DNS_UNSIGNED_ERROR"[^}]*\} \d+$/m);
    for (const a of [primary, dr]) await a.stop();
    expect((await client.soa(dc.zone)).serial).toBe(1);
  }, 60_000);

  it('Samba restarted (its contexts lost): the next CAS is refused BADKEY, renegotiated once, and succeeds', async () => {
    const w = await witnessFor(path.join(dir, 'primary.toml'));
    let seen = await w.witness.read();
    seen = (await w.witness.write(seen, renewalOf(seen, Date.now() / 1000))).snapshot;
    expect(w.gss!.negotiations).toBe(1);
    const t0 = performance.now();
    await dc.restart();
    timings.restart = Math.round(performance.now() - t0);
    const after = await w.witness.write(seen, renewalOf(seen, Date.now() / 1000));
    expect(after.snapshot.lease!.seq).toBe(seen.lease!.seq + 1);
    expect(w.gss!.negotiations).toBe(2);
    expect(w.gss!.status().lastRenewalError).toBeNull();
  }, 30_000);

  it('quirk 5: a second account may not change what the first created: SERVFAIL unsigned; check-config and init say so (77); a group granted full control fixes it', async () => {
    const otherFile = await configFile('other.toml', configText('dr', 'othersite.keytab', other.principal));
    const cc = await runInProcess(['--config', otherFile, 'check-config']);
    expect(cc.code, cc.stdout).toBe(77);
    expect(cc.stderr).toMatch(/the record is owned by another account: both sites must sign as one account/i);
    expect(cc.stderr).toMatch(/grant a group of both accounts full control on the record, the lease and the control record with samba-tool dsacl set/);
    expect(cc.stderr).toContain(`may not change them: the server answered SERVFAIL without a signature`);
    expect(cc.stderr).toContain('[DNS_RECORD_NOT_OURS]');
    for (const args of [['init'], ['init', '--force']]) {
      const r = await runInProcess(['--config', otherFile, ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(77);
      expect(r.stderr).toMatch(/The record is owned by another account/);
    }
    // Its CAS: SERVFAIL unsigned; the signed re-read shows nothing changed: an unknown outcome, the AD hint said.
    const w = await witnessFor(otherFile);
    const seen = await w.witness.read();
    const err = await w.witness.write(seen, { ...transferOf(seen, 'dr', { primary: PRIMARY, dr: DR }, Date.now() / 1000), guardControl: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DNS_UNSIGNED_ERROR', rcode: 'SERVFAIL', authenticated: false });
    expect((err as Error).message).toMatch(/unchanged since we read it: not applied so far; Active Directory answers SERVFAIL to an account that does not own the record/);
    expect((await w.witness.read()).leaseText).toEqual(seen.leaseText);

    // The fix the words name: a group of both accounts with full control on the three names.
    await dc.sambaTool(['group', 'add', 'failover-sites']);
    await dc.sambaTool(['group', 'addmembers', 'failover-sites', 'failover,othersite']);
    const sid = await dc.sid('failover-sites', 'group');
    for (const name of [record(), leaseName(), controlName()]) {
      await dc.sambaTool(['dsacl', 'set', '-H', path.join(dc.dir, 'dc', 'private', 'sam.ldb'), `--objectdn=${dc.dnsNodeDn(name)}`, `--sddl=(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;${sid})`]);
    }
    const ok = await runInProcess(['--config', otherFile, 'check-config']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toContain(`write access: ${other.principal} may change`);
    // A new context (a new ticket, which carries the group) and its CAS lands.
    const w2 = await witnessFor(otherFile);
    const now = await w2.witness.read();
    const moved = await w2.witness.write(now, transferOf(now, 'dr', { primary: PRIMARY, dr: DR }, Date.now() / 1000));
    expect(moved.snapshot.lease).toMatchObject({ holder: 'dr', epoch: now.lease!.epoch + 1 });
  }, 30_000);
});
