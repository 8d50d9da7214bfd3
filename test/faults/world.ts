/**
 * The fault world, assembled: the networks (./net.ts), BIND as the witness in its own namespace,
 * the devices (./devices.mjs), the two sites (./sites.ts) and the checker (./checker.ts).
 * One world serves a whole matrix: `reset()` brings it back to the steady state between cases
 * (faults cleared, agents restarted, the record and lease re-initialised to the primary).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startBind, type DnsServerFixture } from '../fixtures/dns-servers.js';
import type { Suite } from '../fixtures/nspawn.js';
import { ensurePackages } from '../packaging/deb.js';
import { parseExport, parseScrapes, type Sample, type Scrape, type VmHoldings } from './analyze.js';
import { Checker } from './checker.js';
import type { Node, World as Net } from './net.js';
import { DEFAULT_TIMINGS, agentToml, startAgent, startSite, type AgentTimings, type Site, type SiteRole } from './sites.js';
import { createPush, pushLogDir, type Push } from './push.js';

const DEVICES = fileURLToPath(new URL('./devices.mjs', import.meta.url));
export const DEVICE_PORTS = [9101, 9102, 9103, 9104, 9105];
export const SCRAPE_INTERVAL_MS = 1000;

export type { Node };
export const SITE_NODE: Record<SiteRole, Node> = { primary: 'site1', dr: 'site2' };

export interface World {
  net: Net;
  witness: DnsServerFixture;
  sites: Record<SiteRole, Site>;
  checker: Checker;
  /** the push senders (./push.ts): rsyslog in the devices namespace, receivers in the collectors' place */
  push: Push;
  /** each site's address -> its role */
  siteOf: Record<string, SiteRole>;
  timings: AgentTimings;
  devices: string[];
  /** the devices' scrape log so far */
  scrapes(): Scrape[];
  /** what a site's VictoriaMetrics holds of device_scrape_seq (force-flushed first) */
  holdings(role: SiteRole): Promise<VmHoldings>;
  /** a site anew (after its power was cut): booted, installed, VictoriaMetrics running, agent not started */
  rebuildSite(role: SiteRole): Promise<void>;
  /** steady state: no fault, record and lease on the primary, both agents running, primary collecting */
  reset(timings?: Partial<AgentTimings>): Promise<void>;
  destroy(): Promise<void>;
}

function spawnReady(argv: string[], what: string): Promise<ChildProcess> {
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: p.stdout! });
  return new Promise((resolve, reject) => {
    p.once('exit', (code) => reject(new Error(`${what} exited (${code}) before ready`)));
    lines.once('line', (l) => (l === 'ready' ? resolve(p) : reject(new Error(`${what}: ${l}`))));
  });
}

async function stopChild(p: ChildProcess | null): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null || !p.pid) return;
  const gone = new Promise((r) => p.once('exit', r));
  process.kill(p.pid, 'SIGTERM');
  const t = setTimeout(() => p.pid && p.exitCode === null && process.kill(p.pid, 'SIGKILL'), 5000);
  await gone;
  clearTimeout(t);
}

export async function createWorld(net: Net, opts: { suite?: Suite; prefix: string }): Promise<World> {
  const suite: Suite = opts.suite ?? ((process.env.FAULTS_SUITE as Suite | undefined) ?? 'trixie');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-faults-'));
  const scrapeLog = path.join(dir, 'scrapes.log');
  const devices = DEVICE_PORTS.map((p) => `${net.addr.devices}:${p}`);
  const siteOf: Record<string, SiteRole> = { [net.addr.site1]: 'primary', [net.addr.site2]: 'dr' };
  let devicesProc: ChildProcess | null = null;
  let witness: DnsServerFixture | null = null;
  const sites: Partial<Record<SiteRole, Site>> = {};
  let checker: Checker | null = null;
  let push: Push | null = null;
  let pushStarted = false;
  let timings: AgentTimings = { ...DEFAULT_TIMINGS };

  const destroy = async (): Promise<void> => {
    await checker?.stop().catch(() => undefined);
    await push?.stop().catch(() => undefined);
    for (const s of Object.values(sites)) await s?.container.stop().catch(() => undefined);
    await witness?.stop().catch(() => undefined);
    await stopChild(devicesProc).catch(() => undefined);
    await net.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const packages = await ensurePackages();
    witness = await startBind({ netns: { name: net.ns.witness, address: net.addr.witness } });
    push = createPush(net, witness);
    devicesProc = await spawnReady(['ip', 'netns', 'exec', net.ns.devices, process.execPath, DEVICES, '--address', net.addr.devices, '--ports', DEVICE_PORTS.join(','), '--log', scrapeLog], 'devices');
    const spec = (role: SiteRole) => ({
      role,
      address: net.addr[SITE_NODE[role]],
      peerAddress: net.addr[SITE_NODE[role === 'primary' ? 'dr' : 'primary']],
      netnsPath: `/run/netns/${net.ns[SITE_NODE[role]]}`,
      devices,
      witness: witness!,
      packages,
      suite,
      prefix: opts.prefix,
      pushLogDir: pushLogDir(push!.dir, role),
    });
    const boot = async (role: SiteRole): Promise<void> => {
      sites[role] = await startSite({ ...spec(role), timings });
    };
    // One at a time: two container boots at once only compete for the two cores.
    await boot('primary');
    await boot('dr');
    checker = new Checker(net.ns.wan, { address: witness.host, port: witness.port, name: witness.record }, (['primary', 'dr'] as SiteRole[]).map((role) => ({
      role,
      socket: () => sites[role]?.socket ?? null,
      collectorCgroup: () => sites[role]?.collectorCgroup ?? null,
    })));
    await checker.start();

    const world: World = {
      net,
      witness,
      get sites() {
        return sites as Record<SiteRole, Site>;
      },
      checker,
      push,
      siteOf,
      get timings() {
        return timings;
      },
      devices: DEVICE_PORTS.map((p) => `dev${p}`),
      scrapes: () => parseScrapes(fs.existsSync(scrapeLog) ? fs.readFileSync(scrapeLog, 'utf8') : '', siteOf),
      async holdings(role) {
        const s = sites[role]!;
        const vm = `http://${s.address}:8428`;
        await s.sh(`curl -fsS ${vm}/internal/force_flush >/dev/null`);
        const text = await s.sh(`curl -fsS ${vm}/api/v1/export -d 'match[]=device_scrape_seq'`, 60_000);
        return parseExport(text, (instance) => `dev${instance.split(':')[1]}`);
      },
      async rebuildSite(role) {
        await sites[role]?.container.stop();
        delete sites[role];
        await boot(role);
      },
      async reset(t = {}) {
        await net.heal();
        const next = { ...DEFAULT_TIMINGS, ...t };
        const changed = JSON.stringify(next) !== JSON.stringify(timings);
        timings = next;
        for (const role of ['dr', 'primary'] as SiteRole[]) {
          const s = sites[role]!;
          await s.sh(`systemctl stop failover-agent@${role}.service otelcol-contrib.service; systemctl reset-failed failover-agent@${role}.service 2>/dev/null; rm -rf /var/lib/failover-agent/${role}/*; true`);
          if (changed) {
            await s.container.exec(['sh', '-c', `cat > /etc/failover-agent/${role}.toml`], { input: agentToml({ ...spec(role), timings }) });
          }
        }
        await sites.primary!.sh('failoverctl --instance primary init --force');
        await startAgent(sites.primary!);
        await startAgent(sites.dr!);
        await checker!.until(
          (x: Sample) => x.record === net.addr.site1 && x.agents.primary.active && x.collectors.primary && !x.collectors.dr && x.agents.dr.answered && !x.agents.dr.active,
          60_000,
          'steady state: the primary named, active and collecting; the DR standing by',
        );
        // The push senders start once the record exists: a lookup before `init` would leave its
        // NXDOMAIN in the resolver's negative cache (the zone's 30 s) and the first case blind.
        if (!pushStarted) {
          pushStarted = true;
          await push!.start();
        }
      },
      destroy,
    };
    return world;
  } catch (err) {
    await destroy();
    throw err;
  }
}
