/**
 * The agent under a REAL systemd (booted Debian bookworm container), as the
 * service user, with the hardened unit, the polkit rule and a stand-in
 * collector: collector control over D-Bus, drift repair, failures reported,
 * READY/STATUS/WATCHDOG, restarts, exit 78, reload, journal priorities.
 * The DNS server (BIND) runs on the host's loopback, which the container shares.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../src/control/protocol.js';
import type { Witness } from '../../src/lease/witness.js';
import { ensureBuilt, waitWitness, witnessOf } from '../agent/harness.js';
import { agentConfig, installAgent, writeAgentFiles } from '../fixtures/agent-in-container.js';
import { freePort, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { bootContainer, type Container } from '../fixtures/nspawn.js';

const SITES = { primary: '127.0.0.31', dr: '127.0.0.32' };
const UNIT = 'failover-agent@primary.service';
const WATCHDOG_S = 4;

let srv: DnsServerFixture;
let witness: Witness;
let c: Container;
let httpPort: number;
let config: string;
const timings = { start: [] as number[], stop: [] as number[] };

async function sh(cmd: string, timeoutMs = 30_000): Promise<{ code: number; out: string }> {
  const r = await c.exec(['sh', '-c', cmd], { timeoutMs });
  return { code: r.code, out: r.stdout + r.stderr };
}

const prop = async (unit: string, p: string): Promise<string> => (await sh(`systemctl show -p ${p} --value ${unit}`)).out.trim();

async function waitProp(unit: string, p: string, want: (v: string) => boolean, timeoutMs: number): Promise<string> {
  const r = await c.waitFor(['systemctl', 'show', '-p', p, '--value', unit], (x) => want(x.stdout.trim()), timeoutMs);
  return r.stdout.trim();
}

async function status(): Promise<AgentStatus> {
  const r = await sh('failoverctl --instance primary --json status');
  // Answered: 0 fine, or a verdict (2 DNS unreadable, 3 not active yet, 4 unhealthy).
  expect([0, 2, 3, 4], r.out).toContain(r.code);
  return JSON.parse(r.out) as AgentStatus;
}

async function healthz(): Promise<{ code: number; body: { healthy: boolean; reason: string | null } }> {
  const res = await fetch(`http://${SITES.primary}:${httpPort}/healthz`);
  return { code: res.status, body: (await res.json()) as { healthy: boolean; reason: string | null } };
}

/** Moves the record with a direct CAS, as the other site (or an operator) would. */
async function moveTo(site: 'primary' | 'dr'): Promise<void> {
  // The agent renews concurrently: a conflict means re-read and try again (bounded).
  for (let i = 0; ; i++) {
    try {
      await witness.transfer(await witness.read(), site, SITES, Date.now() / 1000);
      return;
    } catch (err) {
      if (i >= 10 || (err as { code?: string }).code !== 'DNS_PREREQ_FAILED') throw err;
    }
  }
}

async function journalSince(cursorTime: string, extra = ''): Promise<string> {
  return (await sh(`journalctl -u ${UNIT} --since '${cursorTime}' -o cat ${extra}`)).out;
}

const nowInside = async (): Promise<string> => (await sh('date "+%Y-%m-%d %H:%M:%S"')).out.trim();

beforeAll(async () => {
  ensureBuilt();
  srv = await startServer('bind');
  witness = witnessOf(srv);
  await witness.init(await witness.read(), SITES, Date.now() / 1000, false);
  httpPort = await freePort();
  config = agentConfig(srv, { role: 'primary', sites: SITES, httpPort });
  c = await bootContainer({
    name: 'fa-systemd',
    setup: async (root) => writeAgentFiles(root, { unitDropIn: `[Service]\nWatchdogSec=${WATCHDOG_S}s\nRestartSec=1s\n` }),
  });
  await installAgent(c, srv, 'primary', config);
}, 300_000);

afterAll(async () => {
  await c?.stop();
  await srv?.stop();
  if (timings.start.length) console.log(`collector via D-Bus (ms): start ${JSON.stringify(timings.start)} stop ${JSON.stringify(timings.stop)}`);
});

describe('the agent under systemd', { timeout: 120_000 }, () => {
  it('systemctl start returns only after READY; systemctl status shows the STATUS line', async () => {
    const r = await sh(`systemctl start ${UNIT}`, 60_000);
    expect(r.code, r.out).toBe(0);
    // Type=notify: by the time start returns, READY was sent (logged just before).
    expect(await journalSince('-5min', '')).toMatch(/event=ready/);
    expect(await prop(UNIT, 'ActiveState')).toBe('active');
    expect(await prop(UNIT, 'StatusText')).toMatch(/^role=primary state=(active|pending|starting) dns=127\.0\.0\.31 lease=primary\/epoch 1 collector=/);
    const st = (await sh(`systemctl status --no-pager ${UNIT}`)).out;
    expect(st).toMatch(/Status: "role=primary state=/);
    expect(await prop(UNIT, 'User')).toBe('failover-agent');
  });

  it('DNS names this site -> collector active; names the other -> stopped (timed over D-Bus)', async () => {
    await c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 15_000);
    for (let i = 0; i < 5; i++) {
      await moveTo('dr');
      await c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'inactive', 15_000);
      await moveTo('primary');
      await c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 15_000);
    }
    const log = await journalSince('-5min');
    for (const m of log.matchAll(/event=collector_(start|stop) unit=otelcol-contrib\.service ms=(\d+)/g)) {
      timings[m[1] as 'start' | 'stop'].push(Number(m[2]));
    }
    expect(timings.start.length).toBeGreaterThanOrEqual(5);
    expect(timings.stop.length).toBeGreaterThanOrEqual(5);
    expect((await status()).collector).toMatchObject({ control: 'systemd', desired: 'running', state: 'active', lastError: null });
    // Our CAS moved the record (a new epoch the agent did not take over): its lease counts only
    // once the other site's would have run out (ttl + max_skew = 7 s here).
    for (let i = 0; i < 150 && !(await status()).active; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await status()).active).toBe(true);
  });

  it('systemctl stop otelcol-contrib on the active site: started again within collector.interval', async () => {
    const since = await nowInside();
    await sh('systemctl stop otelcol-contrib');
    const t0 = performance.now();
    await c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 10_000);
    const took = performance.now() - t0;
    if (took >= 2000) console.log((await sh(`journalctl -u ${UNIT} -u otelcol-contrib --since '${since}' -o short-precise --no-pager`)).out);
    expect(took).toBeLessThan(2000); // collector.interval = 2s
    expect(await journalSince(since)).toMatch(/(went \w+ -> inactive without this agent asking|was changed by someone else while).*event=collector_drift/);
  });

  it('a collector whose binary is missing is reported failed in failoverctl status and /healthz', async () => {
    await sh('mv /usr/local/bin/otelcol-standin /usr/local/bin/otelcol-standin.away && systemctl stop otelcol-contrib');
    try {
      const st = await (async () => {
        for (let i = 0; i < 100; i++) {
          const s = await status();
          if (s.collector.state === 'failed' && s.collector.lastError) return s;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error('collector never reported failed');
      })();
      expect(st.collector.lastError, st.collector.lastError ?? '').toMatch(/is (failed|inactive) .* after its start job was done|start job finished with result "failed"/);
      expect(st.healthy).toBe(false);
      const hz = await healthz();
      expect(hz.code).toBe(503);
      expect(hz.body.reason).toMatch(/collector is failed but should be running/);
      const human = await sh('failoverctl --instance primary status');
      expect(human.out).toMatch(/collector otelcol-contrib\.service: failed, should be running \(error: .*failed/);
      // Active but unhealthy: status exits 4 (UNHEALTHY), for scripts.
      expect(human.code, human.out).toBe(4);
      expect(human.out).toMatch(/verdict {2}not healthy: collector is failed but should be running .*\(exit 4\)/);
      // A broken collector at the site giving up the record is a reason to move, not to refuse:
      // the switchover goes (--force changes nothing here: no precondition failed).
      const dry = await sh('failoverctl --instance primary switchover --dry-run');
      expect(dry.code, dry.out).toBe(0);
      expect(dry.out).toMatch(/^switchover \(dry run\): would proceed/);
      expect(dry.out).not.toMatch(/collector-unit/);
      expect((await witness.read()).addresses).toEqual([SITES.primary]);
      let since = await nowInside();
      const moved = await sh('failoverctl --instance primary switchover --force');
      expect(moved.code, moved.out).toBe(0);
      expect(moved.out).toMatch(/^switchover done \(forced\)/);
      expect(await witness.read()).toMatchObject({ addresses: [SITES.dr], lease: { holder: 'dr' } });
      expect(await journalSince(since)).not.toMatch(/forced past failed preconditions/);
      // The failback would make this site run the collector again: refused while its unit fails;
      // --dry-run says so (exit 1) and --force goes past it (the journal names what was overridden).
      await waitProp('otelcol-contrib.service', 'ActiveState', (v) => v === 'failed' || v === 'inactive', 10_000);
      const back = await sh('failoverctl --instance primary failback --dry-run');
      expect(back.code, back.out).toBe(1);
      expect(back.out).toMatch(/^failback \(dry run\): would be REFUSED: collector-unit: this site's collector unit is (failed|missing), and the primary would run the collector after the failback/);
      since = await nowInside();
      const forced = await sh('failoverctl --instance primary failback --force');
      expect(forced.code, forced.out).toBe(0);
      expect(forced.out).toMatch(/^failback done \(forced\)/);
      expect(forced.out).toMatch(/NO  collector-unit: this site's collector unit is/);
      expect(await witness.read()).toMatchObject({ addresses: [SITES.primary], lease: { holder: 'primary' } });
      expect(await journalSince(since)).toMatch(/failback forced past failed preconditions.*failed=collector-unit/);
    } finally {
      await sh('mv /usr/local/bin/otelcol-standin.away /usr/local/bin/otelcol-standin');
    }
    // The forced failback made this site active again: backoff retries bring the collector back.
    await c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 20_000);
    await waitProp(UNIT, 'ActiveState', (v) => v === 'active', 1000);
    // The failback's new epoch counts once the DR's lease would have run out (ttl + max_skew = 7 s).
    for (let i = 0; i < 150 && !(await status()).active; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await status()).active).toBe(true);
  });

  it('as the service user, any other unit is denied: reported, and the agent keeps running', async () => {
    const direct = await c.exec(['systemctl', 'start', 'other.service'], { user: 'failover-agent' });
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/Access denied|Interactive authentication required/);
    await sh(`systemctl stop ${UNIT}`);
    await sh(`sed -i 's/^unit = .*/unit = "other.service"/' /etc/failover-agent/primary.toml`);
    try {
      expect((await sh(`systemctl start ${UNIT}`, 60_000)).code).toBe(0);
      let st: AgentStatus | undefined;
      for (let i = 0; i < 100 && !st?.collector.lastError; i++) {
        st = await status();
        if (!st.collector.lastError) await new Promise((r) => setTimeout(r, 100));
      }
      expect(st!.collector.lastError).toMatch(/AccessDenied|InteractiveAuthorizationRequired/);
      expect(st!.collector.lastError).toMatch(/polkit rule/);
      expect((await healthz()).code).toBe(503);
      expect(await prop(UNIT, 'ActiveState')).toBe('active');
      expect(await prop('other.service', 'ActiveState')).toBe('inactive');
      const metrics = await (await fetch(`http://${SITES.primary}:${httpPort}/metrics`)).text();
      expect(metrics).toMatch(/^failover_healthy(\{[^}]*\})? 0$/m);
    } finally {
      await sh(`systemctl stop ${UNIT}`);
      await sh(`sed -i 's/^unit = .*/unit = "otelcol-contrib.service"/' /etc/failover-agent/primary.toml`);
      expect((await sh(`systemctl start ${UNIT}`, 60_000)).code).toBe(0);
    }
  });

  it('journalctl -p err shows error lines only (journald priority prefixes work)', async () => {
    const errOnly = (await sh(`journalctl -u ${UNIT} -p err -o cat --no-pager`)).out;
    expect(errOnly).toMatch(/AccessDenied|InteractiveAuthorizationRequired/);
    expect(errOnly).not.toMatch(/event=ready/);
    const json = (await sh(`journalctl -u ${UNIT} -p err -o json --no-pager`)).out.trim().split('\n').filter(Boolean);
    const agentLines = json.map((l) => JSON.parse(l) as { PRIORITY: string; _PID?: string; MESSAGE: string }).filter((e) => e._PID);
    expect(agentLines.length).toBeGreaterThan(0);
    for (const e of agentLines) expect(Number(e.PRIORITY)).toBeLessThanOrEqual(3);
    // And the notice lines are there at their own priority, without a "<5>" left in the text.
    const all = (await sh(`journalctl -u ${UNIT} -o cat --no-pager`)).out;
    expect(all).toMatch(/event=ready/);
    expect(all).not.toMatch(/^<\d>/m);
  });

  it('kill -STOP: the watchdog fires, systemd restarts it, and it resumes the right state', async () => {
    const pid = await prop(UNIT, 'MainPID');
    const epoch = (await witness.read()).lease!.epoch;
    await sh(`kill -STOP ${pid}`);
    const newPid = await waitProp(UNIT, 'MainPID', (v) => v !== pid && v !== '0', (WATCHDOG_S + 20) * 1000);
    await waitProp(UNIT, 'ActiveState', (v) => v === 'active', 30_000);
    expect(newPid).not.toBe(pid);
    expect((await sh(`journalctl -u ${UNIT} --no-pager`)).out).toMatch(/[Ww]atchdog timeout/);
    const s = await (async () => {
      for (let i = 0; i < 100; i++) {
        const st = await status();
        if (st.phase === 'active' && st.active) return st;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('did not resume active');
    })();
    expect(s.lease.epoch).toBe(epoch);
    expect((await witness.read()).addresses).toEqual([SITES.primary]);
    await c.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 10_000);
  });

  it('kill -9: restarted by Restart=on-failure, no DNS flip', async () => {
    const pid = await prop(UNIT, 'MainPID');
    const before = await witness.read();
    await sh(`kill -9 ${pid}`);
    await waitProp(UNIT, 'MainPID', (v) => v !== pid && v !== '0', 20_000);
    await waitProp(UNIT, 'ActiveState', (v) => v === 'active', 30_000);
    const { snap } = await waitWitness(witness, (s) => s.lease!.seq > before.lease!.seq, 10_000);
    expect(snap.addresses).toEqual([SITES.primary]);
    expect(snap.lease!.epoch).toBe(before.lease!.epoch);
    expect(Number(await prop(UNIT, 'NRestarts'))).toBeGreaterThanOrEqual(1);
  });

  it('systemctl reload applies a valid change without a restart', async () => {
    const pid = await prop(UNIT, 'MainPID');
    const since = await nowInside();
    await sh(`sed -i 's/^failures = 3/failures = 5/' /etc/failover-agent/primary.toml`);
    expect((await sh(`systemctl reload ${UNIT}`)).code).toBe(0);
    await c.waitFor(['sh', '-c', `journalctl -u ${UNIT} --since '${since}' -o cat`], (r) => /event=reload /.test(r.stdout), 10_000);
    expect((await status()).health.threshold).toBe(5);
    expect(await prop(UNIT, 'MainPID')).toBe(pid);
    expect(await prop(UNIT, 'ActiveState')).toBe('active');
  });

  // Planted once: with ExecReload=/bin/kill -HUP $MAINPID (the old unit) this test fails at the
  // first expectation ("expected +0 not to be +0": systemctl reported success).
  it('systemctl reload fails when the agent refuses the file or a key; the running configuration stays', async () => {
    const pid = await prop(UNIT, 'MainPID');
    const file = path.join(c.root, 'etc/failover-agent/primary.toml');
    const good = fs.readFileSync(file, 'utf8');
    try {
      fs.writeFileSync(file, good.replace('failures = 5', 'failures = "five"'));
      const invalid = await sh(`systemctl reload ${UNIT}`);
      expect(invalid.code, invalid.out).not.toBe(0);
      expect(await journalSince('-1min')).toMatch(/primary\.toml:\d+: health\.failures/);
      fs.writeFileSync(file, good.replace('failures = 5', 'failures = 4').replace('unit = "otelcol-contrib.service"', 'unit = "other.service"'));
      const restartOnly = await sh(`systemctl reload ${UNIT}`);
      expect(restartOnly.code, restartOnly.out).not.toBe(0);
      expect(await journalSince('-1min')).toMatch(/cannot change collector\.unit by reload/);
      expect((await status()).health.threshold).toBe(5);
      expect(await prop(UNIT, 'MainPID')).toBe(pid);
      expect(await prop(UNIT, 'ActiveState')).toBe('active');
    } finally {
      fs.writeFileSync(file, good);
    }
  });

  it('a missing instance configuration fails systemctl start loudly (exit 78, the file named)', async () => {
    const typo = 'failover-agent@typo.service';
    const r = await sh(`systemctl start ${typo}`, 60_000);
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/failed/);
    await waitProp(typo, 'ActiveState', (v) => v === 'failed', 10_000);
    expect(await prop(typo, 'ExecMainStatus')).toBe('78');
    expect((await sh(`journalctl -u ${typo} -o cat --no-pager`)).out).toMatch(/\/etc\/failover-agent\/typo\.toml: file not found/);
    await sh(`systemctl reset-failed ${typo}`);
  });

  it('failoverctl setup where the group failover-agent exists: the key is root:failover-agent 0640, and both files pass check-config', async () => {
    const out = '/root/fa-setup';
    const r = await sh(`failoverctl setup --out ${out} --record syslog.example.test --zone example.test --primary-ip 10.1.1.1 --dr-ip 10.2.2.2 --dns-server 127.0.0.1 </dev/null`);
    expect(r.code, r.out).toBe(0);
    expect((await sh(`stat -c '%a %U:%G' ${out}/tsig.key`)).out.trim()).toBe('640 root:failover-agent');
    for (const f of ['primary.toml', 'dr.toml']) {
      const check = await sh(`failoverctl --config ${out}/${f} check-config`);
      expect(check.code, check.out).toBe(0);
    }
    // The service user reads it through the group (copied with its owner and mode out of /root).
    expect((await sh(`install -d -m 0755 /etc/fa-setup && cp -p ${out}/tsig.key /etc/fa-setup/ && runuser -u failover-agent -- head -c 3 /etc/fa-setup/tsig.key`)).out).toBe('key');
  });

  it('a configuration error: exit 78 and no restart loop', async () => {
    await sh(`systemctl stop ${UNIT}`);
    await sh(`sed -i 's/^failures = 5/failures = "five"/' /etc/failover-agent/primary.toml`);
    try {
      const r = await sh(`systemctl start ${UNIT}`, 60_000);
      expect(r.code).not.toBe(0);
      await waitProp(UNIT, 'ActiveState', (v) => v === 'failed', 10_000);
      expect(await prop(UNIT, 'ExecMainStatus')).toBe('78');
      const restarts = await prop(UNIT, 'NRestarts');
      // RestartSec=1s in this test: a restart loop would have restarted it by now.
      await new Promise((r) => setTimeout(r, 3000));
      expect(await prop(UNIT, 'NRestarts')).toBe(restarts);
      expect(await prop(UNIT, 'ActiveState')).toBe('failed');
      expect((await sh(`journalctl -u ${UNIT} -n 20 -o cat --no-pager`)).out).toMatch(/primary\.toml:\d+: health\.failures/);
    } finally {
      fs.writeFileSync(path.join(c.root, 'etc/failover-agent/primary.toml'), config);
    }
  });
});
