/**
 * The operator's monitoring kit against real parts: promtool (Debian's prometheus package) checks
 * a running agent's /metrics and the shipped alert rules (and runs their unit tests), and a real
 * VictoriaMetrics that scrapes two running agents (BIND witness, VM sync on between two more
 * VictoriaMetrics, a webhook) answers every query of the shipped Grafana dashboard with data.
 * The primary runs under a real systemd (a booted container sharing the host's loopback) and
 * controls its collector unit over D-Bus; the DR runs on the host with collector.control = none:
 * between them, both branches of the collector panel have real data.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/http/metrics.js';
import { AgentProcess, ROOT, ensureBuilt, witnessOf } from '../agent/harness.js';
import { dnsTable, freePort, requireBinary, startServer, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { installAgent, writeAgentFiles } from '../fixtures/agent-in-container.js';
import { bootContainer, type Container } from '../fixtures/nspawn.js';
import { fakeGss, fakeStatus, fakeVmSync } from '../fixtures/status.js';
import { generate, startVm, waitQuiet, type VmFixture } from '../fixtures/vm.js';

const SITES = { primary: '127.0.0.71', dr: '127.0.0.72' };
const MONITORING = path.join(ROOT, 'packaging/monitoring');
const DASHBOARD = path.join(MONITORING, 'grafana-dashboard.json');

let srv: DnsServerFixture;
let vms: { primary: VmFixture; dr: VmFixture; scraper: VmFixture };
let hook: http.Server;
let dir: string;
/** The primary: failover-agent@primary in a booted container, collector.control = systemd. */
let primary: Container;
/** The DR: an agent process on the host, collector.control = none. */
let dr: AgentProcess;
const ports = { primary: 0, dr: 0, hook: 0 };

function promtool(args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(requireBinary('promtool'), args, { cwd: MONITORING, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr }),
    );
    child.stdin!.end(input ?? '');
  });
}

/** The primary (in its container) controls the stand-in collector unit through systemd; the DR does not. */
function configText(role: 'primary' | 'dr'): string {
  const [local, remote] = role === 'primary' ? [vms.primary, vms.dr] : [vms.dr, vms.primary];
  return `role = "${role}"
[sites]
primary = "${SITES.primary}"
dr = "${SITES.dr}"
${dnsTable(srv, { timeout: '300ms', ...(role === 'primary' ? { keyFile: '/etc/failover-agent/tsig.key' } : {}) })}
[collector]
${role === 'primary' ? 'control = "systemd"\nunit = "otelcol-contrib.service"\ninterval = "1s"' : 'control = "none"'}
[lease]
ttl = "3s"
renew_interval = "500ms"
max_skew = "500ms"
[health]
targets = ["http://${SITES.primary}:${ports.primary}/healthz"]
interval = "500ms"
timeout = "300ms"
[vmsync]
enabled = true
local_url = "${local.url}"
remote_url = "${remote.url}"
interval = "2s"
bucket = "15s"
settle = "0s"
lookback = "10m"
[notify]
webhook = "http://127.0.0.1:${ports.hook}/hook"
[http]
listen = "${SITES[role]}:${ports[role]}"
`;
}

const PRIMARY_UNIT = 'failover-agent@primary.service';

/** Every metric family name in a Prometheus text exposition. */
function families(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
}

async function scrape(role: 'primary' | 'dr'): Promise<string> {
  const res = await fetch(`http://${SITES[role]}:${ports[role]}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** Every query of the dashboard, with Grafana's rate interval made concrete. */
function dashboardQueries(): { panel: string; expr: string }[] {
  const d = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  return d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr.replaceAll('$__rate_interval', '15s') })));
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(expr: string): Promise<Sample[]> {
  const res = await fetch(`${vms.scraper.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data?: { result: Sample[] }; error?: string };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? res.status}`);
  return body.data!.result;
}

beforeAll(async () => {
  ensureBuilt();
  srv = await startServer('bind');
  const witness = witnessOf(srv);
  await witness.init(await witness.read(), SITES, Date.now() / 1000, false);
  [ports.primary, ports.dr, ports.hook] = await Promise.all([freePort(), freePort(), freePort()]);
  hook = http.createServer((req, res) => req.resume().on('end', () => res.end('ok')));
  await new Promise<void>((r) => hook.listen(ports.hook, '127.0.0.1', r));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-monitoring-'));
  const scrapeConfig = path.join(dir, 'scrape.yml');
  fs.writeFileSync(
    scrapeConfig,
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: failover-agent\n    static_configs:\n      - targets: ['${SITES.primary}:${ports.primary}', '${SITES.dr}:${ports.dr}']\n`,
  );
  const [primaryVm, drVm, scraper] = await Promise.all([startVm(), startVm(), startVm({ dedup: '0s', extraArgs: [`-promscrape.config=${scrapeConfig}`] })]);
  vms = { primary: primaryVm, dr: drVm, scraper };
  // The same recent data on both sites, so VM sync checks come out clean (an empty source is an error).
  const end = Math.floor(Date.now() / 15_000) * 15_000;
  await Promise.all([primaryVm, drVm].map((vm) => generate(vm.url, { series: 20, from: end - 8 * 60_000, to: end })));
  await Promise.all([waitQuiet(primaryVm.url), waitQuiet(drVm.url)]);
  primary = await bootContainer({ name: 'fa-monitoring', setup: async (root) => writeAgentFiles(root) });
  await installAgent(primary, srv, 'primary', configText('primary'));
  fs.mkdirSync(path.join(dir, 'dr', 'state'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'dr.toml'), configText('dr'));
  dr = new AgentProcess('dr', path.join(dir, 'dr.toml'), path.join(dir, 'dr')).start();
  // Both running (systemctl start returns after READY), and each has finished a VM sync check
  // (its series exist from then on).
  const started = await primary.exec(['systemctl', 'start', PRIMARY_UNIT], { timeoutMs: 60_000 });
  expect(started.code, started.stdout + started.stderr).toBe(0);
  await dr.waitLog(/event=ready/, 20_000);
  await Promise.all([dr.waitLog(/event=vmsync_check/, 20_000), primary.waitFor(['journalctl', '-u', PRIMARY_UNIT, '-o', 'cat', '--no-pager'], (r) => /event=vmsync_check/.test(r.stdout), 20_000)]);
}, 300_000);

afterAll(async () => {
  await Promise.all([primary?.stop(), dr?.stop()]);
  await Promise.all([vms?.primary.stop(), vms?.dr.stop(), vms?.scraper.stop()]);
  await srv?.stop();
  hook?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('promtool', { timeout: 60_000 }, () => {
  it('check metrics: zero findings on both running agents', async () => {
    for (const role of ['primary', 'dr'] as const) {
      const r = await promtool(['check', 'metrics'], await scrape(role));
      expect({ role, ...r }).toEqual({ role, code: 0, out: '' });
    }
  });

  it('check metrics: zero findings with every optional series present (VM sync, GSS-TSIG, webhook, DR health)', async () => {
    const m = new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus({ vmsync: fakeVmSync(), gss: fakeGss(), health: { consecutiveFailures: 1, threshold: 3, last: 'timeout' } }), {
      webhook: () => ({ sent: 1, failed: 1, dropped: 1, queued: 1 }),
    });
    const r = await promtool(['check', 'metrics'], (await m.render()).body);
    expect(r).toEqual({ code: 0, out: '' });
  });

  it('docs/METRICS.md names every failover_* series, and names none that does not exist', async () => {
    const full = new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus({ vmsync: fakeVmSync(), gss: fakeGss(), health: { consecutiveFailures: 1, threshold: 3, last: null } }), {
      webhook: () => ({ sent: 0, failed: 0, dropped: 0, queued: 0 }),
      defaultMetrics: false,
    });
    const exported = new Set([...families((await full.render()).body), ...families(await scrape('primary')), ...families(await scrape('dr'))].filter((n) => n.startsWith('failover_')));
    const doc = fs.readFileSync(path.join(ROOT, 'docs/METRICS.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `(failover_\w+)` \|/gm)].map((m) => m[1]!));
    expect([...exported].filter((n) => !documented.has(n))).toEqual([]);
    expect([...documented].filter((n) => !exported.has(n))).toEqual([]);
  });

  it('check rules: the shipped alerting rules are valid, each with for: and a runbook', async () => {
    const r = await promtool(['check', 'rules', 'failover-agent.rules.yml']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
    const rules = fs.readFileSync(path.join(MONITORING, 'failover-agent.rules.yml'), 'utf8').split(/^ {6}- alert: /m).slice(1);
    expect(rules.length).toBeGreaterThanOrEqual(10);
    for (const rule of rules) {
      expect(rule, rule).toMatch(/^ {8}for: \d+[smh]$/m);
      expect(rule, rule).toMatch(/^ {10}runbook: "\S.+"$/m);
    }
  });

  it('test rules: every alert fires on its input series and stays silent on healthy ones', async () => {
    const r = await promtool(['test', 'rules', 'failover-agent.rules.test.yml']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS/);
    // Every alert of the rules file is exercised by at least one test.
    const alerts = [...fs.readFileSync(path.join(MONITORING, 'failover-agent.rules.yml'), 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    const tested = fs.readFileSync(path.join(MONITORING, 'failover-agent.rules.test.yml'), 'utf8');
    for (const a of alerts) expect(tested, a).toMatch(new RegExp(`alertname: ${a}\\n {8}exp_alerts:\\n {10}- exp_labels`));
  });
});

describe('the Grafana dashboard against VictoriaMetrics scraping both agents', { timeout: 90_000 }, () => {
  it('every panel query returns data', async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThanOrEqual(30);
    // The scraper needs a few scrapes (1 s apart) before rate() over 15 s has two samples.
    let empty = queries;
    for (let i = 0; i < 60 && empty.length > 0; i++) {
      const results = await Promise.all(empty.map(async (q) => ({ q, n: (await query(q.expr)).length })));
      empty = results.filter((r) => r.n === 0).map((r) => r.q);
      if (empty.length) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(empty.map((q) => `${q.panel}: ${q.expr}`)).toEqual([]);
    // Both agents are in it, as two distinct scrape targets.
    expect(await query('count(failover_info{job="failover-agent"})')).toMatchObject([{ value: [expect.any(Number), '2'] }]);
  });

  it("the collector panel: the unit's state as systemd reports it on the controlled site, 'not controlled' on the other", async () => {
    const [stateExpr, desiredExpr] = dashboardQueries()
      .filter((q) => q.panel === 'Collector')
      .map((q) => q.expr);
    const target = { primary: `${SITES.primary}:${ports.primary}`, dr: `${SITES.dr}:${ports.dr}` };
    /** What the panel shows per site: its rows as "state=value", and the "should run" value. */
    const panel = async (): Promise<Record<'primary' | 'dr', { rows: string[]; desired: string[] }>> => {
      const [state, desired] = await Promise.all([query(stateExpr!), query(desiredExpr!)]);
      const of = (site: 'primary' | 'dr') => ({
        rows: state.filter((r) => r.metric.instance === target[site]).map((r) => `${r.metric.state}=${r.value[1]}`).sort(),
        desired: desired.filter((r) => r.metric.instance === target[site]).map((r) => r.value[1]),
      });
      return { primary: of('primary'), dr: of('dr') };
    };
    /** Waits (bounded) until the panel shows `want` for the primary, scraped after the agent saw it. */
    const primaryShows = async (want: { rows: string[]; desired: string[] }): Promise<void> => {
      let seen = await panel();
      for (let i = 0; i < 60 && JSON.stringify(seen.primary) !== JSON.stringify(want); i++) {
        await new Promise((r) => setTimeout(r, 500));
        seen = await panel();
      }
      expect(seen.primary).toEqual(want);
      // The uncontrolled DR: one row, 'not controlled', and -1 for "should run", whatever the primary shows.
      expect(seen.dr).toEqual({ rows: ['not controlled=0'], desired: ['-1'] });
    };
    // DNS names the primary: its agent wants the unit running, and systemd says it is.
    expect((await primary.exec(['systemctl', 'is-active', 'otelcol-contrib'])).stdout.trim()).toBe('active');
    await primaryShows({ rows: ['active=1'], desired: ['1'] });
    // The unit broken (its binary gone): systemd reports it failed, and so does the panel (one row).
    await primary.exec(['sh', '-c', 'mv /usr/local/bin/otelcol-standin /usr/local/bin/otelcol-standin.away && systemctl stop otelcol-contrib']);
    try {
      await primary.waitFor(['systemctl', 'is-failed', 'otelcol-contrib'], (r) => r.stdout.trim() === 'failed', 20_000);
      await primaryShows({ rows: ['failed=1'], desired: ['1'] });
    } finally {
      await primary.exec(['mv', '/usr/local/bin/otelcol-standin.away', '/usr/local/bin/otelcol-standin']);
    }
    await primary.waitFor(['systemctl', 'is-active', 'otelcol-contrib'], (r) => r.stdout.trim() === 'active', 30_000);
    await primaryShows({ rows: ['active=1'], desired: ['1'] });
  });
});
