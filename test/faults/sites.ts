/**
 * The two sites of the fault world: each a booted Debian container (systemd-nspawn) whose network
 * is its own namespace of test/faults/net.ts, with the INSTALLED .deb, its own VictoriaMetrics,
 * and the collector unit `otelcol-contrib.service`: Debian's `vmagent`, scraping the devices and
 * writing every sample to BOTH sites' VictoriaMetrics, labelled with the site that scraped it
 * (`site="primary"` / `site="dr"`), as the original system's collectors do.
 *
 * The packages are installed inside the booted container from the staged .deb: every dependency is
 * already in the cached root, so apt needs no network (the site namespaces have no way out).
 * victoria-metrics and vmagent are the host's Debian binaries (static Go programs), bind-mounted
 * read-only: the roots stay the ones every other container test uses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bootContainer, defaultRoot, type Container, type ExecResult, type Suite } from '../fixtures/nspawn.js';
import { dnsTable, requireBinary, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { installDeb, stageDeb, type Packages } from '../packaging/deb.js';
import { collectorExec, LOG_INSIDE, RECEIVER, RECEIVER_INSIDE } from './push.js';

export type SiteRole = 'primary' | 'dr';

/** What a case may change in the agents' configuration (the rest is the world's timing). */
export interface AgentTimings {
  ttl: string;
  renew: string;
  maxSkew: string;
  healthInterval: string;
  healthTimeout: string;
  healthFailures: number;
  collectorInterval: string;
  dnsTimeout: string;
  dnsRetries: number;
  selfFence: boolean;
}

/** Short enough for a matrix in CI, with the margins README "Tuning for a lossy WAN" asks for. */
export const DEFAULT_TIMINGS: AgentTimings = {
  ttl: '6s',
  renew: '1s',
  maxSkew: '1s',
  healthInterval: '1s',
  healthTimeout: '1s',
  healthFailures: 3,
  collectorInterval: '1s',
  dnsTimeout: '500ms',
  dnsRetries: 1,
  selfFence: false,
};

export interface Site {
  role: SiteRole;
  address: string;
  container: Container;
  /** the agent's control socket as the host reaches it (through the container's root) */
  socket: string;
  /** the collector unit's cgroup as the host sees it: non-empty cgroup.procs = vmagent runs */
  collectorCgroup: string;
  /** run a shell command inside; rejects on a non-zero exit */
  sh(cmd: string, timeoutMs?: number): Promise<string>;
  /** the unit's main PID inside the container's PID namespace as the host sees it (0 if none) */
  agentPid(): Promise<number>;
}

export interface SiteSpec {
  role: SiteRole;
  /** the site's address (net.ts: 198.18.1.2 / 198.18.2.2) */
  address: string;
  /** the path of the site's network namespace (/run/netns/<name>) */
  netnsPath: string;
  peerAddress: string;
  devices: string[];
  witness: DnsServerFixture;
  timings: AgentTimings;
  packages: Packages;
  suite: Suite;
  /** container name prefix (unique per run) */
  prefix: string;
  /** push senders (./push.ts): the host directory this site's syslog receivers log into */
  pushLogDir?: string;
}

const VM_PORT = 8428;
/** dns.record_ttl of the fault world's agents (the push senders' follow target is this + 5 s) */
export const RECORD_TTL_S = 1;
const HTTP_PORT = 9465;

export function agentToml(s: SiteSpec): string {
  const t = s.timings;
  const primary = s.role === 'primary' ? s.address : s.peerAddress;
  const dr = s.role === 'dr' ? s.address : s.peerAddress;
  return `# written by test/faults/sites.ts
role = "${s.role}"
[sites]
primary = "${primary}"
dr = "${dr}"
${dnsTable(s.witness, { keyFile: '/etc/failover-agent/tsig.key', timeout: t.dnsTimeout, retries: t.dnsRetries, recordTtl: `${RECORD_TTL_S}s` })}
[lease]
ttl = "${t.ttl}"
renew_interval = "${t.renew}"
max_skew = "${t.maxSkew}"
[health]
targets = ["http://${primary}:${HTTP_PORT}/healthz"]
interval = "${t.healthInterval}"
timeout = "${t.healthTimeout}"
failures = ${t.healthFailures}
[collector]
unit = "otelcol-contrib.service"
mode = "when-active"
interval = "${t.collectorInterval}"
self_fence = ${t.selfFence}
# No hold between automatic handovers here: each case starts afresh (\`init --force\` leaves the
# control record, and a hold one case left would change the next; the hold is the simulator's).
handover_hold = "0s"
[vmsync]
enabled = true
local_url = "http://${s.address}:${VM_PORT}"
remote_url = "http://${s.peerAddress}:${VM_PORT}"
interval = "5s"
bucket = "5s"
settle = "10s"
lookback = "1h"
clean_checks = 1
[http]
listen = "${s.address}:${HTTP_PORT}"
[log]
level = "info"
`;
}

function units(s: SiteSpec): Record<string, string> {
  const vm = (a: string): string => `http://${a}:${VM_PORT}/api/v1/write`;
  const vmagent = `/usr/bin/vmagent -promscrape.config=/etc/vmagent/scrape.yml -remoteWrite.url=${vm(s.address)} -remoteWrite.url=${vm(s.peerAddress)} -remoteWrite.label=site=${s.role} -remoteWrite.tmpDataPath=/var/lib/vmagent -remoteWrite.flushInterval=500ms -remoteWrite.showURL -httpListenAddr=127.0.0.1:8429 -loggerLevel=WARN`;
  return {
    'etc/systemd/system/victoria-metrics.service': `[Unit]
Description=VictoriaMetrics of this site (fault world)
[Service]
ExecStart=/usr/bin/victoria-metrics -httpListenAddr=${s.address}:${VM_PORT} -storageDataPath=/var/lib/victoria-metrics -retentionPeriod=1d -dedup.minScrapeInterval=100ms -search.latencyOffset=0s -search.disableCache -loggerLevel=WARN
StateDirectory=victoria-metrics
[Install]
WantedBy=multi-user.target
`,
    // The collector: scrapes the devices, writes to both sites (buffering on disk for an
    // unreachable one, as vmagent does), every sample labelled with this site. With push senders,
    // the syslog receivers run in the same unit, started and stopped with it (./push.ts).
    'etc/systemd/system/otelcol-contrib.service': `[Unit]
Description=the collector of this site (vmagent; fault world)
[Service]
ExecStart=${s.pushLogDir === undefined ? vmagent : collectorExec(s.address, vmagent)}
StateDirectory=vmagent
`,
    'etc/vmagent/scrape.yml': `global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: devices
    static_configs:
      - targets: [${s.devices.map((d) => `"${d}"`).join(', ')}]
`,
  };
}

/** Boot a site, install the .deb, configure and start VictoriaMetrics and the agent. */
export async function startSite(s: SiteSpec): Promise<Site> {
  const root = await defaultRoot(30 * 60_000, s.suite);
  const deb = s.packages.debs[s.suite];
  let debInside = '';
  const c = await bootContainer({
    name: `${s.prefix}-${s.role}`,
    baseRoot: root,
    bootTimeoutMs: 90_000,
    nspawnArgs: [
      `--network-namespace-path=${s.netnsPath}`,
      `--bind-ro=${requireBinary('victoria-metrics')}:/usr/bin/victoria-metrics`,
      `--bind-ro=${requireBinary('vmagent')}:/usr/bin/vmagent`,
      ...(s.pushLogDir === undefined ? [] : [`--bind-ro=${RECEIVER}:${RECEIVER_INSIDE}`, `--bind=${s.pushLogDir}:${LOG_INSIDE}`]),
    ],
    setup: async (r) => {
      debInside = stageDeb(r, deb);
      for (const [p, text] of Object.entries(units(s))) {
        fs.mkdirSync(path.dirname(path.join(r, p)), { recursive: true });
        fs.writeFileSync(path.join(r, p), text);
      }
    },
  });
  const sh = async (cmd: string, timeoutMs = 60_000): Promise<string> => {
    const r: ExecResult = await c.exec(['sh', '-c', cmd], { timeoutMs });
    if (r.code !== 0) throw new Error(`[${s.role}] ${cmd} failed (${r.code}):\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  try {
    // The unit as shipped (WatchdogSec=30s: a pause past the lease is a pause, not a watchdog kill).
    await installDeb(c, debInside);
    const key = fs.readFileSync(s.witness.key.file);
    const put = async (file: string, content: string | Buffer, mode: string, owner: string): Promise<void> => {
      const r = await c.exec(['sh', '-c', `cat > ${file} && chown ${owner} ${file} && chmod ${mode} ${file}`], { input: content });
      if (r.code !== 0) throw new Error(`[${s.role}] writing ${file}: ${r.stderr}`);
    };
    await put('/etc/failover-agent/tsig.key', key, '0640', 'root:failover-agent');
    await put(`/etc/failover-agent/${s.role}.toml`, agentToml(s), '0644', 'root:root');
    await sh('systemctl daemon-reload && systemctl enable --now victoria-metrics.service');
    await c.waitFor(['curl', '-fsS', `http://${s.address}:${VM_PORT}/health`], (r) => r.code === 0, 30_000);
  } catch (err) {
    await c.stop();
    throw err;
  }
  return {
    role: s.role,
    address: s.address,
    container: c,
    socket: `/proc/${c.pid}/root/run/failover-agent/${s.role}.sock`,
    collectorCgroup: `/proc/${c.pid}/root/sys/fs/cgroup/system.slice/otelcol-contrib.service/cgroup.procs`,
    sh,
    async agentPid() {
      const out = await sh(`systemctl show -p MainPID --value failover-agent@${s.role}.service`);
      const inner = Number(out.trim());
      if (!inner) return 0;
      // NSpid of the container's processes: find the host PID whose innermost PID is `inner`.
      for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const st = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
          const ns = /^NSpid:\s+(.*)$/m.exec(st)?.[1]?.trim().split(/\s+/).map(Number);
          if (ns && ns.length > 1 && ns[ns.length - 1] === inner && isIn(c.pid, Number(entry))) return Number(entry);
        } catch {
          /* exited */
        }
      }
      return 0;
    },
  };
}

/** Is host PID `pid` in the PID namespace of the container whose init is `init`? */
function isIn(init: number, pid: number): boolean {
  try {
    return fs.readlinkSync(`/proc/${init}/ns/pid`) === fs.readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return false;
  }
}

/** Start the agent (enable --now returns after READY). */
export async function startAgent(site: Site): Promise<void> {
  await site.sh(`systemctl enable --now failover-agent@${site.role}.service`, 120_000);
}
