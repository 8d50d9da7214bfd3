/**
 * The failover drill (SPEC §10, the README's demo): two sites, each a booted Debian bookworm
 * (systemd-nspawn) with the INSTALLED .deb, its own VictoriaMetrics and a stand-in collector unit
 * that really writes samples; a BIND server as the witness; and the whole story played for real:
 *
 *   primary active → primary powered off → DR takes over and collects → primary back (same disk),
 *   standby → its VM's gap repaired from the DR's VM → FAILBACK READY → `failoverctl failback` →
 *   DR collector stopped.
 *
 * Run it with `scripts/drill` (installs what it needs, builds the .deb, bundles this file with
 * esbuild and runs it); test/drill/drill.int.test.ts drives the same steps one test each. Every
 * step is an exported method of `Drill` that waits (bounded, on events: journal entries streamed
 * from the containers, witness reads) for what it claims, and throws a `DrillError` naming the
 * step and what was seen when it does not happen in time.
 *
 * The pieces, and why they are honest:
 * - Sites: containers booted from the cached root of scripts/make-root (test/fixtures/nspawn.ts),
 *   sharing the host's network; the primary's addresses are 127.0.0.51, the DR's 127.0.0.52 (the
 *   A record's values; each site's agent /healthz and VictoriaMetrics listen on its own address).
 *   The package is installed inside with `apt-get install ./failover-agent_*.deb`, configured
 *   with /etc/failover-agent/<role>.toml and the TSIG key, and enabled with systemctl, as the
 *   README tells an operator to.
 * - VictoriaMetrics: the host's `victoria-metrics` binary copied INTO each container and run there
 *   as a systemd unit (enabled: it comes back when the site boots), data on the site's own disk. So
 *   powering the primary off takes its VM down with it.
 * - Collector: `otelcol-contrib.service` is a shell loop that every second "scrapes" 10 BIG-IPs
 *   (5 metrics each, stamped with the whole second) and DUAL-WRITES them to both sites' VMs
 *   (`/api/v1/import/prometheus`), as the original platform's collector does (the vm-sync design
 *   in shared/seeds: "active OTEL collector writes to BOTH VictoriaMetrics instances"). A write to a
 *   VM that is down is lost: that is the gap VM sync must repair. (Writing only to its own site's
 *   VM would make every newly settled bucket a gap on the standby site, so the failback gate could
 *   never see a clean check while the DR is active.) Both VMs deduplicate at 1 s = the sample
 *   interval = vmsync.bucket.
 * - Power off: SIGKILL to the primary container's PID 1 (the kernel then kills every process of
 *   its PID namespace at once: agent, VM, collector; nothing flushes, nothing says goodbye).
 * - Power on: the same machine boots again from the same disk: its first boot's overlay (upper
 *   layer: the installed package, the config, the agent's state, the VM's data) becomes the lower
 *   layer of the second boot, so everything written before the power cut is there, and nothing
 *   after it.
 * - Witness: BIND on 127.0.0.1 (test/fixtures/dns-servers.ts), a third site that stays up.
 *   `failoverctl init` on the primary creates the record and the lease.
 *
 * Clocks: every timeline entry is wall-clock ms (journal entries carry their own
 * __REALTIME_TIMESTAMP; containers share the host's clock), shown as t+seconds from the start.
 * The failover time is measured from the power cut to the first witness read that names the DR
 * (the witness is polled every 50 ms, bounded) and to systemd's "Started" of the DR's collector.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';

import type { Snapshot, Witness } from '../src/lease/witness.js';
import { witnessOf } from '../test/agent/harness.js';
import { dnsTable, startServer, type DnsServerFixture } from '../test/fixtures/dns-servers.js';
import { alive, bootContainer, defaultRoot, type Container, type ExecResult } from '../test/fixtures/nspawn.js';
import { vmHealthy } from '../test/fixtures/vm.js';

// ---------------------------------------------------------------------------------------------
// settings

export type Role = 'primary' | 'dr';

export const SITES: Readonly<Record<Role, string>> = { primary: '127.0.0.51', dr: '127.0.0.52' };

/** The drill's short but realistic timings (what goes into both sites' TOML files). */
export const TIMINGS = {
  record_ttl: '5s',
  dns_timeout: '500ms',
  dns_retries: 1,
  lease_ttl: '6s',
  renew_interval: '1s',
  max_skew: '1s',
  health_interval: '1s',
  health_timeout: '500ms',
  health_failures: 3,
  collector_interval: '2s',
  vmsync_interval: '5s',
  /** = the VMs' -dedup.minScrapeInterval = the collector's sample interval */
  vmsync_bucket: '1s',
  vmsync_settle: '3s',
  vmsync_lookback: '10m',
  vmsync_clean_checks: 2,
} as const;

const DEDUP = '1s';
/** devices × metrics the stand-in collector writes every second */
const DEVICES = 10;
const METRICS = ['bigip_up', 'bigip_cpu_usage_percent', 'bigip_memory_used_bytes', 'bigip_connections_current', 'bigip_syslog_messages_total'];
export const SERIES = DEVICES * METRICS.length;
/** one series used to find when samples stopped and resumed */
const PROBE_SERIES = '{__name__="bigip_up",instance="bigip-01"}';

const HTTP_PORT = 9465;
const VM_PORT = 8428;
const CONTAINER_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const HOST_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin:/sbin:/bin`;

// ---------------------------------------------------------------------------------------------
// errors, timeline

export class DrillError extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(`${step}: ${message}`);
  }
}

export interface TimelineEvent {
  /** wall clock, unix ms */
  at: number;
  /** who said it: the drill itself, the witness, or a site's journal */
  source: 'drill' | 'dns' | Role;
  text: string;
}

/** A list that can be waited on: history first, then what arrives (bounded). */
class Feed<T> {
  readonly items: T[] = [];
  private waiters = new Set<{ pred: (x: T) => boolean; from: number; resolve: (x: T) => void }>();

  push(x: T): void {
    this.items.push(x);
    const i = this.items.length - 1;
    for (const w of [...this.waiters]) {
      if (i >= w.from && w.pred(x)) {
        this.waiters.delete(w);
        w.resolve(x);
      }
    }
  }

  /** Resolves with the first item at index >= from that matches; rejects after timeoutMs with why(). */
  wait(pred: (x: T) => boolean, timeoutMs: number, why: () => string, from = 0): Promise<T> {
    const seen = this.items.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        from,
        resolve: (x: T) => {
          clearTimeout(timer);
          resolve(x);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(why()));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  get length(): number {
    return this.items.length;
  }
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** "6s" / "500ms" -> seconds */
const seconds = (d: string) => (d.endsWith('ms') ? Number(d.slice(0, -2)) / 1000 : Number(d.replace(/s$/, '')));
const secs = (ms: number) => Number((ms / 1000).toFixed(2));

// ---------------------------------------------------------------------------------------------
// the journal of a container, streamed (journalctl --follow -o json through nsenter)

export interface JournalEntry {
  at: number;
  /** the unit the entry is ABOUT (PID 1's messages) or FROM (a service's output) */
  unit: string;
  fromPid1: boolean;
  message: string;
}

class JournalFollower {
  readonly entries = new Feed<JournalEntry>();
  private proc: ChildProcess | null = null;

  constructor(private readonly c: Container) {}

  start(onEntry: (e: JournalEntry) => void): void {
    const args = [
      '-t',
      String(this.c.pid),
      '-a',
      '--',
      '/usr/bin/env',
      '-i',
      `PATH=${CONTAINER_PATH}`,
      'SYSTEMD_COLORS=0',
      'journalctl',
      '--follow',
      '--no-tail',
      '--no-pager',
      '-o',
      'json',
      '--output-fields=MESSAGE,UNIT,_SYSTEMD_UNIT,_PID,SYSLOG_IDENTIFIER',
    ];
    const p = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'ignore'], detached: true, env: { PATH: HOST_PATH } });
    this.proc = p;
    let buf = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let j: Record<string, unknown>;
        try {
          j = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        const msg = j.MESSAGE;
        const message = typeof msg === 'string' ? msg : Array.isArray(msg) ? Buffer.from(msg as number[]).toString('utf8') : '';
        const fromPid1 = j._PID === '1';
        const e: JournalEntry = {
          at: Math.round(Number(j.__REALTIME_TIMESTAMP) / 1000),
          unit: String((fromPid1 ? j.UNIT : j._SYSTEMD_UNIT) ?? j.SYSLOG_IDENTIFIER ?? ''),
          fromPid1,
          message,
        };
        this.entries.push(e);
        onEntry(e);
      }
    });
    p.on('error', () => undefined);
  }

  /**
   * Kills journalctl first, then nsenter. The order matters: nsenter reaps the child it forked
   * into the container's PID namespace, then exits with the same signal. Killed together, the
   * dead journalctl is reparented to the HOST's PID 1 (its parent's namespace), which need not
   * reap it; the zombie still counts in the container, and its systemd-shutdown then waits its
   * whole timeout (DefaultTimeoutStopSec) for it at the next halt.
   */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p?.pid || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    for (const child of childrenOf(p.pid)) {
      try {
        process.kill(child, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 2_000)))]);
    clearTimeout(timer);
    if (late) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        /* gone with the container */
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// the witness, watched from the host

class DnsWatcher {
  readonly changes = new Feed<{ at: number; snap: Snapshot }>();
  last: Snapshot | null = null;
  lastError: string | null = null;
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly witness: Witness,
    private readonly onChange: (at: number, snap: Snapshot) => void,
    private readonly everyMs = 50,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const t0 = Date.now();
        try {
          const snap = await this.witness.read();
          const at = Date.now();
          this.lastError = null;
          const key = (s: Snapshot | null) => (s ? `${s.addresses.join(',')}|${s.lease?.holder}|${s.lease?.epoch}` : '');
          if (key(snap) !== key(this.last)) {
            this.changes.push({ at, snap });
            this.onChange(at, snap);
          }
          this.last = snap;
        } catch (e) {
          this.lastError = (e as Error).message;
        }
        const wait = this.everyMs - (Date.now() - t0);
        if (wait > 0 && this.running) await delay(wait);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  describe(): string {
    const s = this.last;
    return s ? `A=${s.addresses.join(',') || '(none)'} lease=${s.lease ? `${s.lease.holder}/epoch ${s.lease.epoch} seq ${s.lease.seq}` : (s.leaseError ?? 'none')}` : `no read yet${this.lastError ? ` (${this.lastError})` : ''}`;
  }
}

// ---------------------------------------------------------------------------------------------
// VictoriaMetrics, from the host

async function vmQuery(url: string, query: string, timeSec: number): Promise<number> {
  const qs = new URLSearchParams({ query, time: String(timeSec), nocache: '1' });
  const res = await request(`${url}/api/v1/query?${qs}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
  const body = (await res.body.json()) as { status: string; data?: { result: { value: [number, string] }[] }; error?: string };
  if (res.statusCode !== 200 || body.status !== 'success') throw new Error(`query ${query} on ${url}: HTTP ${res.statusCode} ${body.error ?? ''}`);
  const r = body.data?.result ?? [];
  return r.length ? Number(r[0].value[1]) : 0;
}

/** Samples (after VM's deduplication) of the collector's series in (from, to], whole seconds. */
export async function countSamples(url: string, fromSec: number, toSec: number): Promise<number> {
  if (toSec <= fromSec) return 0;
  return vmQuery(url, `sum(count_over_time({job="bigip"}[${toSec - fromSec}s]))`, toSec);
}

/** Timestamps (unix s) of the probe series' samples in [from, to]. */
async function probeTimes(url: string, fromSec: number, toSec: number): Promise<number[]> {
  const qs = new URLSearchParams({ 'match[]': PROBE_SERIES, start: String(fromSec), end: String(toSec) });
  const res = await request(`${url}/api/v1/export?${qs}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`export from ${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  const out = new Set<number>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    for (const t of (JSON.parse(line) as { timestamps: number[] }).timestamps) out.add(Math.round(t / 1000));
  }
  return [...out].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
// what goes into a site

/** The stand-in collector: "scrapes" every second and dual-writes to both sites' VMs. */
export const COLLECTOR_SCRIPT = `#!/bin/bash
# Stand-in for the OpenTelemetry collector (failover drill). Every second it "scrapes" ${DEVICES}
# BIG-IPs (${METRICS.length} metrics each), stamps the samples with the whole second and writes
# them to BOTH sites' VictoriaMetrics (Prometheus text, /api/v1/import/prometheus), as the real
# collector's two exporters do. A write to a VM that is down is lost (no queue): that is the gap
# VM sync repairs. It logs only when a VM's writes start failing or work again.
set -u
. /etc/default/otelcol-standin   # SITE, LOCAL_VM, REMOTE_VM
echo "collecting at the \${SITE} site: writing every second to \${LOCAL_VM} and \${REMOTE_VM}"
declare -A state
metrics="${METRICS.join(' ')}"
while :; do
  sec=$(( $(date +%s%N) / 1000000000 ))
  ts=$(( sec * 1000 ))
  body=""
  for d in $(seq -w 1 ${DEVICES}); do
    n=$(( 10#$d ))
    for m in $metrics; do
      case $m in
        bigip_up) v=1 ;;
        bigip_cpu_usage_percent) v=$(( (sec * 7 + n * 13) % 100 )) ;;
        bigip_memory_used_bytes) v=$(( 4000000000 + (sec % 600) * 1000000 + n )) ;;
        bigip_connections_current) v=$(( 1000 + (sec * n) % 5000 )) ;;
        *) v=$(( sec * 3 + n )) ;;
      esac
      body+="$m{instance=\\"bigip-$d\\",job=\\"bigip\\"} $v $ts"$'\\n'
    done
  done
  for url in "$LOCAL_VM" "$REMOTE_VM"; do
    if err=$(curl -sS -f -m 0.8 --data-binary "$body" "$url/api/v1/import/prometheus" -o /dev/null 2>&1); then
      [ "\${state[$url]:-ok}" = ok ] || echo "writes to $url work again"
      state[$url]=ok
    else
      [ "\${state[$url]:-ok}" = fail ] || echo "writes to $url FAIL: \${err:-error}"
      state[$url]=fail
    fi
  done
  now=$(date +%s%N)
  rest=$(( 1000000000 - now % 1000000000 ))
  if [ "$rest" -ge 1000000000 ]; then sleep 1; else sleep "0.$(printf %09d "$rest")"; fi
done
`;

export const COLLECTOR_UNIT = `[Unit]
Description=OpenTelemetry collector (drill stand-in: dual-writes samples to both sites' VictoriaMetrics)
After=network.target victoria-metrics.service

[Service]
Type=simple
ExecStart=/usr/local/bin/otelcol-standin
`;

function vmUnit(ip: string, port: number): string {
  return `[Unit]
Description=VictoriaMetrics (this site's)
After=network.target

[Service]
ExecStart=/usr/local/bin/victoria-metrics -storageDataPath=/var/lib/victoria-metrics -httpListenAddr=${ip}:${port} -dedup.minScrapeInterval=${DEDUP} -search.latencyOffset=0s -search.disableCache -retentionPeriod=1y -loggerLevel=WARN
Restart=on-failure

[Install]
WantedBy=multi-user.target
`;
}

/** /etc/failover-agent/<role>.toml for the drill. */
export function siteConfig(role: Role, srv: DnsServerFixture, ports: Record<Role, { http: number; vm: number }>): string {
  const other: Role = role === 'primary' ? 'dr' : 'primary';
  const t = TIMINGS;
  return `# failover drill: ${role} site (scripts/drill.ts)
role = "${role}"

[sites]
primary = "${SITES.primary}"
dr = "${SITES.dr}"

${dnsTable(srv, { keyFile: '/etc/failover-agent/tsig.key', recordTtl: t.record_ttl, timeout: t.dns_timeout, retries: t.dns_retries })}

[lease]
ttl = "${t.lease_ttl}"
renew_interval = "${t.renew_interval}"
max_skew = "${t.max_skew}"

[health]
targets = ["http://${SITES.primary}:${ports.primary.http}/healthz"]
peer_targets = ["http://${SITES[other]}:${ports[other].http}/healthz"]
interval = "${t.health_interval}"
timeout = "${t.health_timeout}"
failures = ${t.health_failures}

[collector]
control = "systemd"
unit = "otelcol-contrib.service"
mode = "when-active"
interval = "${t.collector_interval}"

[vmsync]
enabled = true
local_url = "http://${SITES[role]}:${ports[role].vm}"
remote_url = "http://${SITES[other]}:${ports[other].vm}"
interval = "${t.vmsync_interval}"
bucket = "${t.vmsync_bucket}"
settle = "${t.vmsync_settle}"
lookback = "${t.vmsync_lookback}"
clean_checks = ${t.vmsync_clean_checks}

[http]
listen = "${SITES[role]}:${ports[role].http}"
`;
}

// ---------------------------------------------------------------------------------------------
// helpers

function runHost(file: string, args: string[], timeoutMs: number, cwd?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: { ...process.env, PATH: HOST_PATH } }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({ code: e == null ? 0 : typeof e.code === 'number' ? e.code : 127, stdout: String(stdout), stderr: String(stderr) + (e && typeof e.code !== 'number' ? e.message : '') });
    });
  });
}

/** preferred if nothing listens on ip:preferred, else a free port there */
function portOn(ip: string, preferred: number): Promise<number> {
  const tryPort = (port: number) =>
    new Promise<number | null>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(null));
      s.listen({ host: ip, port, exclusive: true }, () => {
        const a = s.address();
        const p = typeof a === 'object' && a ? a.port : null;
        s.close(() => resolve(p));
      });
    });
  return tryPort(preferred).then((p) => p ?? tryPort(0).then((q) => q ?? Promise.reject(new Error(`no free port on ${ip}`))));
}

/** host PIDs of the direct children of pid (all threads) */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(/\s+/)) if (c) out.push(Number(c));
      } catch {
        /* thread gone */
      }
    }
  } catch {
    /* process gone */
  }
  return out;
}

/** Poll `probe` every `everyMs` until it returns true (bounded). */
async function until(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > end) return false;
    await delay(everyMs);
  }
}

const AGENT_EVENTS = /\bevent=(ready|takeover|takeover_refused|failover|failback|switchover|control|collector_(?:start|stop|failed|drift|error)|vmsync_(?:gap|repair|repair_unconfirmed|failback_ready|failback_unready|gate_reset))(?=\s|$)/;

// ---------------------------------------------------------------------------------------------
// the drill

interface Site {
  role: Role;
  ip: string;
  /** the current boot (null while powered off) */
  c: Container | null;
  /** every boot of this site, oldest first (a later boot's root lies on top of an earlier one's) */
  boots: Container[];
  journal: JournalFollower | null;
  vmUrl: string;
  unit: string;
}

export interface DrillOptions {
  /** repository root (scripts/build-packages, the .deb); default $DRILL_ROOT or the cwd */
  repo?: string;
  /** the .deb to install; default: scripts/build-packages --reuse */
  deb?: string;
  /** cached root; default: scripts/make-root's of `suite` */
  baseRoot?: string;
  /** the Debian release of the sites (its root, and the .deb built for it); default bookworm */
  suite?: 'bookworm' | 'trixie';
  /** how long the DR collects while the primary is off, after its collector started; default 12 s */
  outageSeconds?: number;
  /** live progress (events as they arrive, step headers); default: nothing */
  progress?: (line: string) => void;
}

export interface Measurements {
  [k: string]: number | string | boolean | null | undefined | Record<string, unknown>;
}

export class Drill {
  readonly t0 = Date.now();
  readonly timeline: TimelineEvent[] = [];
  readonly measured: Measurements = {};
  /** failed steps (main() records them; markdown() shows them) */
  readonly failures: string[] = [];
  readonly repo: string;
  readonly sites: Record<Role, Site>;
  srv: DnsServerFixture | null = null;
  witness: Witness | null = null;
  dns: DnsWatcher | null = null;
  deb = '';
  ports: Record<Role, { http: number; vm: number }> = { primary: { http: 0, vm: 0 }, dr: { http: 0, vm: 0 } };
  private baseRoot = '';
  private readonly outageSeconds: number;
  private readonly progress: (line: string) => void;
  private readonly nameSuffix = Math.random().toString(16).slice(2, 6);
  // moments the steps need
  private tPrimaryCollecting = 0;
  private tPowerOff = 0;
  private tDrCollectorStarted = 0;
  private tPrimaryVmBack = 0;
  private tFailbackCmd = 0;
  /** the lease epoch of the DR's takeover */
  private failoverEpoch = 0;
  /** `failoverctl failback --dry-run` on the primary as soon as its agent was up again */
  private gateOnReturn: { at: number; code: number; output: string } | null = null;
  /** private temp dir (the copy of the .deb); removed at teardown */
  private tmpDir: string | null = null;
  private tornDown = false;

  constructor(private readonly opts: DrillOptions = {}) {
    this.repo = opts.repo ?? process.env.DRILL_ROOT ?? process.cwd();
    this.outageSeconds = opts.outageSeconds ?? 12;
    this.progress = opts.progress ?? (() => undefined);
    const site = (role: Role): Site => ({ role, ip: SITES[role], c: null, boots: [], journal: null, vmUrl: '', unit: `failover-agent@${role}.service` });
    this.sites = { primary: site('primary'), dr: site('dr') };
  }

  // --- timeline -------------------------------------------------------------------------------

  event(source: TimelineEvent['source'], text: string, at = Date.now()): TimelineEvent {
    const ev = { at, source, text };
    this.timeline.push(ev);
    this.progress(this.formatEvent(ev));
    return ev;
  }

  private formatEvent(ev: TimelineEvent): string {
    return `t+${((ev.at - this.t0) / 1000).toFixed(2).padStart(7)}s  ${ev.source.padEnd(7)} ${ev.text}`;
  }

  /** The timeline sorted by time, one line per event. */
  renderTimeline(): string {
    return [...this.timeline]
      .sort((a, b) => a.at - b.at)
      .map((e) => this.formatEvent(e))
      .join('\n');
  }

  private step(name: string): string {
    if (this.tornDown) throw new DrillError(name, 'not run: the drill was torn down (interrupted)');
    this.progress(`--- ${name}`);
    return name;
  }

  private onJournal(site: Site, e: JournalEntry): void {
    let text: string | null = null;
    const m = e.message;
    if (e.fromPid1 && /^(otelcol-contrib|victoria-metrics|failover-agent@\w+)\.service$/.test(e.unit)) {
      if (/^(Started|Stopped|Failed to start) /.test(m)) text = m.replace(/ - .*$/, '');
      else if (/: (Failed with result|Main process exited, code=(killed|dumped))/.test(m)) text = m;
    } else if (e.unit === site.unit && AGENT_EVENTS.test(m)) {
      text = `agent: ${m.length > 220 ? m.slice(0, 217) + '...' : m}`;
    } else if (e.unit === 'otelcol-contrib.service' && !e.fromPid1) {
      text = `collector: ${m}`;
    }
    if (text) this.event(site.role, text, e.at);
  }

  // --- small tools ------------------------------------------------------------------------------

  private container(role: Role, step: string): Container {
    const c = this.sites[role].c;
    if (!c) throw new DrillError(step, `the ${role} site is not running`);
    return c;
  }

  /** sh -c inside a site; never throws on a non-zero exit */
  async sh(role: Role, cmd: string, timeoutMs = 60_000, input?: string): Promise<ExecResult> {
    const c = this.container(role, 'sh');
    return c.exec(['sh', '-c', cmd], { timeoutMs, input }).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
  }

  private async must(step: string, role: Role, cmd: string, timeoutMs = 60_000, input?: string): Promise<string> {
    const r = await this.sh(role, cmd, timeoutMs, input);
    if (r.code !== 0) {
      // A unit that failed to start says why in its journal, not in systemctl's answer.
      const unit = /^systemctl (?:enable --now|start|restart) (\S+)$/.exec(cmd)?.[1];
      const journal = unit ? (await this.sh(role, `journalctl -u ${unit} -n 25 --no-pager -o cat`, 15_000)).stdout.trim() : '';
      throw new DrillError(step, `on the ${role} site, \`${cmd}\` failed (exit ${r.code}):\n${(r.stdout + r.stderr).trim().slice(-3000)}${journal ? `\n${unit}'s journal:\n${journal.slice(-3000)}` : ''}`);
    }
    return r.stdout;
  }

  async status(role: Role): Promise<Record<string, unknown> | null> {
    const r = await this.sh(role, `failoverctl --instance ${role} --json status`, 15_000);
    try {
      return JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      return null;
    }
  }

  private async statusLine(role: Role): Promise<string> {
    if (!this.sites[role].c) return `${role}: powered off`;
    const s = await this.status(role).catch(() => null);
    if (!s) return `${role}: no status from failoverctl`;
    const col = s.collector as { state?: string } | undefined;
    return `${role}: phase=${String(s.phase)} active=${String(s.active)} decision="${String(s.decision)}" reason="${String(s.reason)}" collector=${col?.state ?? '?'}`;
  }

  private async context(): Promise<string> {
    const lines = [`witness: ${this.dns?.describe() ?? 'not watched'}`, await this.statusLine('primary'), await this.statusLine('dr')];
    return lines.join('\n');
  }

  private async fail(step: string, what: string): Promise<never> {
    throw new DrillError(step, `${what}\n${await this.context()}`);
  }

  private journalOf(role: Role, step: string): JournalFollower {
    const j = this.sites[role].journal;
    if (!j) throw new DrillError(step, `no journal of the ${role} site`);
    return j;
  }

  /** Wait for a journal entry of a site (from the current boot). */
  private async waitJournal(step: string, role: Role, pred: (e: JournalEntry) => boolean, timeoutMs: number, what: string, from = 0): Promise<JournalEntry> {
    try {
      return await this.journalOf(role, step).entries.wait(pred, timeoutMs, () => `no ${what} on the ${role} site within ${timeoutMs / 1000} s`, from);
    } catch (e) {
      return this.fail(step, (e as Error).message);
    }
  }

  private unitEvent(unit: string, verb: 'Started' | 'Stopped'): (e: JournalEntry) => boolean {
    return (e) => e.fromPid1 && e.unit === unit && e.message.startsWith(`${verb} `);
  }

  private async waitDns(step: string, pred: (s: Snapshot) => boolean, timeoutMs: number, what: string, from = 0): Promise<{ at: number; snap: Snapshot }> {
    const dns = this.dns;
    if (!dns) throw new DrillError(step, 'the witness is not watched');
    try {
      return await dns.changes.wait((c) => pred(c.snap), timeoutMs, () => `the witness did not show ${what} within ${timeoutMs / 1000} s`, from);
    } catch (e) {
      return this.fail(step, (e as Error).message);
    }
  }

  private async waitVm(step: string, role: Role, timeoutMs: number): Promise<number> {
    const url = this.sites[role].vmUrl;
    if (!(await until(() => vmHealthy(url), timeoutMs, 100))) await this.fail(step, `the ${role} site's VictoriaMetrics (${url}) is not healthy after ${timeoutMs / 1000} s`);
    return Date.now();
  }

  private async unitActive(role: Role, unit: string): Promise<string> {
    return (await this.sh(role, `systemctl is-active ${unit}`, 10_000)).stdout.trim();
  }

  // --- setup ------------------------------------------------------------------------------------

  /** The .deb (built or reused), BIND, both sites booted with the package installed and configured. */
  async setup(): Promise<void> {
    const step = this.step('setup');
    this.event('drill', 'drill starts');
    if (this.opts.deb) {
      const copy = await this.privateCopy(this.opts.deb, false);
      if (!copy) throw new DrillError(step, `${this.opts.deb}: unreadable, or it does not match the SHA256SUMS beside it (rebuilt meanwhile?)`);
      this.deb = copy;
    } else {
      this.deb = await this.buildDeb(step);
    }
    this.baseRoot = this.opts.baseRoot ?? (await defaultRoot(undefined, this.opts.suite ?? 'bookworm'));
    this.srv = await startServer('bind');
    this.event('drill', `BIND (the witness) on ${this.srv.host}:${this.srv.port}, zone ${this.srv.zone}`);
    this.witness = witnessOf(this.srv);
    this.dns = new DnsWatcher(this.witness, (at, snap) =>
      this.event('dns', `${this.srv!.record} A ${snap.addresses.join(',') || '(none)'}; lease ${snap.lease ? `${snap.lease.holder} epoch ${snap.lease.epoch}` : 'none'}`, at),
    );
    this.dns.start();
    for (const role of ['primary', 'dr'] as Role[]) {
      this.ports[role] = { http: await portOn(SITES[role], HTTP_PORT), vm: await portOn(SITES[role], VM_PORT) };
      this.sites[role].vmUrl = `http://${SITES[role]}:${this.ports[role].vm}`;
    }
    const t = Date.now();
    await Promise.all((['primary', 'dr'] as Role[]).map((r) => this.firstBoot(step, r)));
    this.measured.setup_sites_s = secs(Date.now() - t);
  }

  /**
   * scripts/build-packages --reuse, and a private copy of the .deb checked against the SHA256SUMS
   * beside it: another run of the script (the packaging tests) may replace dist/packages at any
   * time. One more attempt if the copy does not match.
   */
  private async buildDeb(step: string): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const t = Date.now();
      const r = await runHost(path.join(this.repo, 'scripts/build-packages'), ['--reuse'], 900_000, this.repo);
      if (r.code !== 0) throw new DrillError(step, `scripts/build-packages failed (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
      const tag = this.opts.suite === 'trixie' ? '+deb13' : '+deb12';
      const deb = r.stdout.trim().split('\n').find((p) => p.endsWith('.deb') && path.basename(p).includes(tag));
      if (!deb) throw new DrillError(step, `scripts/build-packages printed no .deb:\n${r.stdout}`);
      const copy = await this.privateCopy(deb);
      if (copy) {
        this.event('drill', `package ${path.basename(deb)} ${/up to date/.test(r.stderr) ? 'reused (up to date)' : 'built'} in ${secs(Date.now() - t)} s`);
        return copy;
      }
      if (attempt >= 2) throw new DrillError(step, `${deb} changed or vanished while it was being copied (twice): is another build running?`);
    }
  }

  /**
   * A copy of deb in a private temp dir if its sha256 is the one the SHA256SUMS beside it lists
   * (without that file: only when not strict), else null.
   */
  private async privateCopy(deb: string, strict = true): Promise<string | null> {
    try {
      const bytes = await fsp.readFile(deb);
      const sums = await fsp.readFile(path.join(path.dirname(deb), 'SHA256SUMS'), 'utf8').catch(() => '');
      const want = sums.split('\n').find((l) => l.trim().endsWith(` ${path.basename(deb)}`))?.split(/\s+/)[0];
      if (want ? createHash('sha256').update(bytes).digest('hex') !== want : strict) return null;
      this.tmpDir ??= await fsp.mkdtemp(path.join(os.tmpdir(), 'drill-'));
      const copy = path.join(this.tmpDir, path.basename(deb));
      await fsp.writeFile(copy, bytes);
      return copy;
    } catch {
      return null;
    }
  }

  private machineName(role: Role): string {
    return `drill-${role}-${this.nameSuffix}`;
  }

  private async boot(role: Role, baseRoot: string, setup?: (root: string) => Promise<void>): Promise<Container> {
    const site = this.sites[role];
    const c = await bootContainer({ name: this.machineName(role), baseRoot, setup, bootTimeoutMs: 90_000 });
    site.boots.push(c);
    // torn down while it booted (interrupted): the next teardown() pass stops it
    if (this.tornDown) throw new DrillError('boot', `the drill was torn down while the ${role} site booted`);
    site.c = c;
    const j = new JournalFollower(c);
    j.start((e) => this.onJournal(site, e));
    site.journal = j;
    return c;
  }

  private async firstBoot(step: string, role: Role): Promise<void> {
    const site = this.sites[role];
    const other: Role = role === 'primary' ? 'dr' : 'primary';
    const debName = path.basename(this.deb);
    const vmBin = fs.realpathSync(this.whichVm());
    const c = await this.boot(role, this.baseRoot, async (root) => {
      const w = (p: string, content: string | Buffer, mode = 0o644) => {
        const full = path.join(root, p);
        fs.mkdirSync(path.dirname(full), { recursive: true });
        fs.writeFileSync(full, content, { mode });
        fs.chmodSync(full, mode);
      };
      w(`root/pkgs/${debName}`, fs.readFileSync(this.deb));
      w('usr/local/bin/victoria-metrics', fs.readFileSync(vmBin), 0o755);
      w('etc/systemd/system/victoria-metrics.service', vmUnit(site.ip, this.ports[role].vm));
      fs.mkdirSync(path.join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
      fs.symlinkSync('/etc/systemd/system/victoria-metrics.service', path.join(root, 'etc/systemd/system/multi-user.target.wants/victoria-metrics.service'));
      w('usr/local/bin/otelcol-standin', COLLECTOR_SCRIPT, 0o755);
      w('etc/systemd/system/otelcol-contrib.service', COLLECTOR_UNIT);
      w('etc/default/otelcol-standin', `SITE=${role}\nLOCAL_VM=${site.vmUrl}\nREMOTE_VM=${this.sites[other].vmUrl}\n`);
    });
    this.event(role, `booted (systemd ${c.bootState}) in ${secs(c.bootMs)} s`);
    this.measured[`boot_${role}_s`] = secs(c.bootMs);

    // The package, as an operator installs it. Its dependencies are in the cached root already;
    // only if apt wants something it lacks are the package lists refreshed (Debian's mirror).
    const t = Date.now();
    const install = `DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/pkgs/${debName} </dev/null`;
    let r = await this.sh(role, install, 300_000);
    if (r.code !== 0) {
      await this.must(step, role, 'apt-get update -q', 300_000);
      r = await this.sh(role, install, 300_000);
    }
    if (r.code !== 0) throw new DrillError(step, `apt-get install ./${debName} failed on the ${role} site:\n${(r.stdout + r.stderr).slice(-3000)}`);
    const version = (await this.must(step, role, "dpkg-query -W -f '${Version}' failover-agent")).trim();
    this.event(role, `apt-get install ./${debName}: failover-agent ${version} installed in ${secs(Date.now() - t)} s`);
    this.measured[`apt_install_${role}_s`] = secs(Date.now() - t);

    const key = '/etc/failover-agent/tsig.key';
    await this.must(step, role, `cat > ${key} && chown root:failover-agent ${key} && chmod 0640 ${key}`, 10_000, fs.readFileSync(this.srv!.key.file, 'utf8'));
    await this.must(step, role, `cat > /etc/failover-agent/${role}.toml && chmod 0644 /etc/failover-agent/${role}.toml`, 10_000, siteConfig(role, this.srv!, this.ports));
    await this.must(step, role, `failoverctl --instance ${role} check-config`);
    await this.waitVm(step, role, 30_000);
    this.event(role, `configured (${role}.toml, tsig.key; check-config ok); VictoriaMetrics up on ${site.vmUrl}`);
  }

  private whichVm(): string {
    for (const d of HOST_PATH.split(':')) {
      const p = path.join(d, 'victoria-metrics');
      if (d && fs.existsSync(p)) return p;
    }
    throw new DrillError('setup', "victoria-metrics not found on the host (apt-get install victoria-metrics; scripts/drill does it)");
  }

  // --- the steps --------------------------------------------------------------------------------

  /** `failoverctl init` on the primary, both agents enabled; the primary active and collecting. */
  async primaryActive(): Promise<{ initOutput: string; drPhase: string }> {
    const step = this.step('primary active');
    const initOutput = await this.must(step, 'primary', 'failoverctl --instance primary init', 30_000);
    this.event('primary', `failoverctl init: ${initOutput.trim().split('\n').pop()}`);
    await this.waitDns(step, (s) => s.addresses[0] === SITES.primary && s.lease?.holder === 'primary', 10_000, 'the record and lease naming the primary');
    await Promise.all([
      this.must(step, 'primary', 'systemctl enable --now failover-agent@primary', 60_000),
      this.must(step, 'dr', 'systemctl enable --now failover-agent@dr', 60_000),
    ]);
    await this.waitJournal(step, 'primary', this.unitEvent('otelcol-contrib.service', 'Started'), 20_000, 'start of the collector');
    // Samples arrive in both VMs (dual write), for a few seconds before the power cut.
    const from = Math.floor(Date.now() / 1000);
    this.tPrimaryCollecting = from * 1000;
    const enough = async () => (await countSamples(this.sites.primary.vmUrl, from, Math.floor(Date.now() / 1000) - 1).catch(() => 0)) >= 5 * SERIES && (await countSamples(this.sites.dr.vmUrl, from, Math.floor(Date.now() / 1000) - 1).catch(() => 0)) >= 5 * SERIES;
    if (!(await until(enough, 30_000, 250))) await this.fail(step, `5 s of the primary collector's samples (${5 * SERIES}) did not reach both VMs within 30 s`);
    this.event('drill', `the primary's collector writes ${SERIES} series/s into both VMs`);
    // Steady state, as on a primary that has run for a while: both agents' VM sync has seen the
    // VMs agree and reports FAILBACK READY for epoch 1.
    await Promise.all(
      (['primary', 'dr'] as Role[]).map((role) =>
        this.waitJournal(step, role, (e) => e.unit === this.sites[role].unit && /event=vmsync_failback_ready\b.*\bepoch=1\b/.test(e.message), 60_000, 'FAILBACK READY for epoch 1 (VMs in sync in steady state)'),
      ),
    );
    this.event('drill', 'steady state: both sites\' VM sync report the VMs in sync (FAILBACK READY for epoch 1)');
    // The DR: standby, healthy view of the primary.
    const st = await this.status('dr');
    const drPhase = String(st?.phase ?? '?');
    if (!st || st.active !== false) await this.fail(step, 'the DR agent should be on standby');
    if ((await this.unitActive('dr', 'otelcol-contrib')) === 'active') await this.fail(step, "the DR's collector runs while the primary is active");
    return { initOutput, drPhase };
  }

  /** SIGKILL to the primary container's PID 1: the whole site goes down at once. */
  async powerOffPrimary(): Promise<{ at: number }> {
    const step = this.step('primary powered off');
    const site = this.sites.primary;
    const c = this.container('primary', step);
    await site.journal?.stop();
    site.journal = null;
    this.tPowerOff = Date.now();
    process.kill(c.pid, 'SIGKILL');
    this.event('drill', `PRIMARY POWERED OFF (SIGKILL to its PID 1 ${c.pid}: agent, VictoriaMetrics, collector die at once)`, this.tPowerOff);
    site.c = null;
    if (!(await until(async () => !alive(c.pid) && !alive(c.nspawnPid), 15_000, 50))) throw new DrillError(step, `the primary container (PID ${c.pid}, nspawn ${c.nspawnPid}) is still alive 15 s after SIGKILL`);
    if (await vmHealthy(site.vmUrl)) throw new DrillError(step, "the primary's VictoriaMetrics still answers after the power cut");
    return { at: this.tPowerOff };
  }

  /** The DR's agent sees the primary fail and its lease run out, takes over, starts its collector. */
  async drTakesOver(): Promise<{ dnsSeconds: number; collectorSeconds: number; takeoverEventSeconds: number | null; collectionGapSeconds: number | null }> {
    const step = this.step('DR takes over');
    const dnsFrom = this.dns!.changes.length;
    const dns = await this.waitDns(step, (s) => s.addresses[0] === SITES.dr && s.lease?.holder === 'dr', 60_000, 'the record naming the DR', dnsFrom);
    const dnsSeconds = secs(dns.at - this.tPowerOff);
    this.failoverEpoch = dns.snap.lease?.epoch ?? 0;
    this.event('drill', `FAILOVER: the witness names the DR ${dnsSeconds} s after the power cut (lease epoch ${dns.snap.lease?.epoch})`, dns.at);
    if (dns.snap.addresses.length !== 1) await this.fail(step, `the record holds ${dns.snap.addresses.join(',')}: exactly one address expected`);
    const started = await this.waitJournal(step, 'dr', (e) => this.unitEvent('otelcol-contrib.service', 'Started')(e) && e.at >= this.tPowerOff, 20_000, 'start of the collector after the takeover');
    this.tDrCollectorStarted = started.at;
    const collectorSeconds = secs(started.at - this.tPowerOff);
    this.event('drill', `the DR's collector is active ${collectorSeconds} s after the power cut`, started.at);
    const tk = this.journalOf('dr', step).entries.items.find((e) => e.unit === this.sites.dr.unit && /event=takeover\b/.test(e.message) && e.at >= this.tPowerOff);
    const takeoverEventSeconds = tk ? secs(tk.at - this.tPowerOff) : null;
    if ((await this.unitActive('dr', 'otelcol-contrib')) !== 'active') await this.fail(step, "the DR's collector is not active");
    const st = await this.status('dr');
    if (st?.active !== true) await this.fail(step, 'the DR agent does not report itself active');
    // The data: when did samples stop (primary) and resume (DR), as the DR's VM holds them.
    let collectionGapSeconds: number | null = null;
    const resumed = async () => {
      const ts = await probeTimes(this.sites.dr.vmUrl, Math.floor(this.tPowerOff / 1000) - 30, Math.floor(Date.now() / 1000)).catch(() => []);
      const before = ts.filter((t) => t * 1000 <= this.tPowerOff).pop();
      const after = ts.find((t) => t * 1000 > this.tPowerOff);
      if (before !== undefined && after !== undefined) collectionGapSeconds = after - before - 1;
      return after !== undefined;
    };
    if (!(await until(resumed, 15_000, 250))) await this.fail(step, "no sample from the DR's collector reached the DR's VM within 15 s");
    this.measured.failover_dns_s = dnsSeconds;
    this.measured.failover_collector_s = collectorSeconds;
    this.measured.failover_takeover_event_s = takeoverEventSeconds;
    this.measured.collection_gap_s = collectionGapSeconds;
    this.event('drill', `samples resume in the DR's VM: ${collectionGapSeconds} s without samples (last primary sample to first DR sample)`);
    return { dnsSeconds, collectorSeconds, takeoverEventSeconds, collectionGapSeconds };
  }

  /**
   * The primary stays off while the DR collects (outageSeconds of DR samples its VM will lack),
   * then boots again from the same disk: the package and config are still there, the agent comes
   * up on standby (no preemption), its VM comes back with the gap.
   */
  async primaryBack(): Promise<{ gap: { primary: number; dr: number; from: number; to: number } | null }> {
    const step = this.step('primary back');
    // DR samples while the primary's VM is down: wait until the DR's VM holds outageSeconds of them.
    const from = Math.ceil(this.tDrCollectorStarted / 1000);
    const need = this.outageSeconds * SERIES;
    const enough = async () => (await countSamples(this.sites.dr.vmUrl, from, Math.floor(Date.now() / 1000) - 1).catch(() => 0)) >= need;
    if (!(await until(enough, this.outageSeconds * 1000 + 30_000, 500))) await this.fail(step, `the DR's VM did not get ${this.outageSeconds} s of samples`);
    const old = this.sites.primary.boots[this.sites.primary.boots.length - 1];
    // nspawn cannot remove its propagation dir when /run is not a tmpfs; the next boot of the
    // same machine name needs it gone (the fixture's stop() does the same).
    await fsp.rm(`/run/systemd/nspawn/propagate/${this.machineName('primary')}`, { recursive: true, force: true });
    const tBoot = Date.now();
    this.event('drill', 'primary powered on: boots from the same disk (its first boot\'s files, as they were at the power cut)');
    // When the VM answers again, watched from the power-on (it starts while the boot goes on).
    const vmBack = until(() => vmHealthy(this.sites.primary.vmUrl), 120_000, 100).then((ok) => (ok ? Date.now() : 0));
    const c = await this.boot('primary', old.root);
    this.event('primary', `booted (systemd ${c.bootState}) in ${secs(c.bootMs)} s`);
    this.tPrimaryVmBack = await vmBack;
    if (!this.tPrimaryVmBack) await this.fail(step, `the primary's VictoriaMetrics (${this.sites.primary.vmUrl}) did not answer within 120 s of the power-on`);
    this.event('primary', 'VictoriaMetrics answers again', this.tPrimaryVmBack);
    // The gap, measured straight away (the agent's first sync check comes vmsync.interval after
    // its start): what the primary's VM holds of the time before the power cut (what it had not
    // yet written to disk died with it) and of the outage, against the DR's VM (dual write).
    let gap: { primary: number; dr: number; from: number; to: number } | null = null;
    const cut = Math.floor(this.tPowerOff / 1000);
    const gFrom = Math.floor(this.tPrimaryCollecting / 1000);
    const gTo = Math.floor(this.tPrimaryVmBack / 1000) - 1;
    try {
      const [pb, db, po, dout] = await Promise.all([
        countSamples(this.sites.primary.vmUrl, gFrom, cut),
        countSamples(this.sites.dr.vmUrl, gFrom, cut),
        countSamples(this.sites.primary.vmUrl, cut, gTo),
        countSamples(this.sites.dr.vmUrl, cut, gTo),
      ]);
      gap = { primary: pb + po, dr: db + dout, from: gFrom, to: gTo };
      this.event('drill', `the primary's VM before the power cut (${cut - gFrom} s): holds ${pb} of the DR VM's ${db} samples (${db - pb} not yet on disk at the cut, lost)`);
      this.event('drill', `the primary's VM during the outage (${gTo - cut} s): holds ${po} of the DR VM's ${dout} samples`);
      this.measured.samples_lost_in_power_cut = db - pb;
      this.measured.samples_missed_in_outage = dout - po;
    } catch (e) {
      this.event('drill', `could not measure the gap directly: ${(e as Error).message}`);
    }
    this.measured.primary_down_s = secs(this.tPrimaryVmBack - this.tPowerOff);
    this.measured.primary_boot_s = secs(c.bootMs);
    this.measured.gap_samples_missing = gap ? gap.dr - gap.primary : null;
    // Everything installed before the power cut is still there, and the agent started by itself.
    await this.waitJournal(step, 'primary', (e) => this.unitEvent(this.sites.primary.unit, 'Started')(e), 60_000, `start of ${this.sites.primary.unit} (enabled before the power cut)`);
    // The failback gate as an operator would find it the moment the agent is up (judged by the
    // next step): before its first VM sync check of this failover, vmsync.interval from now.
    const gAt = Date.now();
    const g = await this.sh('primary', 'failoverctl --instance primary failback --dry-run', 20_000);
    this.gateOnReturn = { at: gAt, code: g.code, output: (g.stdout + g.stderr).trim() };
    const version = (await this.must(step, 'primary', "dpkg-query -W -f '${Status} ${Version}' failover-agent")).trim();
    if (!/^install ok installed /.test(version)) await this.fail(step, `failover-agent is not installed after the reboot: ${version}`);
    await this.must(step, 'primary', 'test -f /etc/failover-agent/primary.toml && failoverctl --instance primary check-config');
    const st = await this.status('primary');
    if (!st || st.active !== false) return this.fail(step, 'the returning primary should be on standby (the record names the DR)');
    if (this.dns!.last?.addresses[0] !== SITES.dr) await this.fail(step, 'the returning primary took the record back (no preemption expected)');
    if ((await this.unitActive('primary', 'otelcol-contrib')) === 'active') await this.fail(step, "the returning primary's collector runs beside the DR's");
    this.event('primary', `agent up on standby: ${String(st.decision)}`);
    this.measured.primary_back_s = secs(Date.now() - tBoot);
    return { gap };
  }

  /**
   * Right after the return, before the primary's VM sync has checked anything for the current
   * failover, the failback gate must be closed (SPEC §3: "refused unless VM sync reports FAILBACK
   * READY for the current failover"): `failoverctl failback --dry-run`, run by primaryBack() the
   * moment the agent was up again, must exit 1 naming the gate. Read-only (a dry run), so the
   * drill goes on whatever it finds. It is conclusive only if the agent had not yet run its first
   * sync check of the new failover (vmsync.interval after its start); the result says which.
   */
  async failbackGateClosedOnReturn(): Promise<{ output: string; conclusive: boolean }> {
    const step = this.step('failback gate closed on return');
    const g = this.gateOnReturn;
    if (!g) throw new DrillError(step, 'the gate was not looked at (the primary did not come back)');
    const { output, code } = g;
    // Conclusive only if the agent had not yet run a sync check of the new failover by then.
    const checked = this.journalOf('primary', step).entries.items.find((e) => e.unit === this.sites.primary.unit && /event=vmsync_(gate_reset|gap|repair|check)\b/.test(e.message));
    const conclusive = !checked || checked.at > g.at;
    const first = output.split('\n').find((l) => /REFUSED|would proceed/i.test(l)) ?? output.split('\n')[0];
    if (code === 1 && /vmsync-failback-ready/.test(output)) {
      this.event('primary', `failoverctl failback --dry-run: refused (exit 1)${conclusive ? '' : ' [after its first sync check: inconclusive]'}: ${first}`, g.at);
      return { output, conclusive };
    }
    const gate = output.split('\n').find((l) => /vmsync-failback-ready/.test(l))?.trim() ?? '';
    this.event('primary', `failoverctl failback --dry-run: NOT refused (exit ${code}) while the primary's VM still lacks the outage: ${gate}`, g.at);
    const file = (await this.sh('primary', 'cat /var/lib/failover-agent/primary/vmsync.json', 5_000)).stdout.trim();
    return this.fail(
      step,
      `failoverctl failback --dry-run right after the primary's return, before its VM sync has checked the gap, must be refused by the ` +
        `VM sync gate (exit 1); got exit ${code}:\n${output}\n(vmsync.json at the end of the step: ${file.replace(/\s+/g, ' ')})`,
    );
  }

  /** The primary's agent (passive) repairs its VM from the DR's and reports FAILBACK READY. */
  async gapRepaired(): Promise<{ readySeconds: number; samplesCopied: number; ranges: unknown[]; primaryCount: number; drCount: number }> {
    const step = this.step('gap repaired, FAILBACK READY');
    const epochRe = new RegExp(`\\bevent=vmsync_failback_ready\\b.*\\bepoch=${this.failoverEpoch}\\b`);
    const ready = await this.waitJournal(step, 'primary', (e) => e.unit === this.sites.primary.unit && epochRe.test(e.message), 120_000, `FAILBACK READY for epoch ${this.failoverEpoch} from the agent`);
    const readySeconds = secs(ready.at - this.tPrimaryVmBack);
    this.event('drill', `FAILBACK READY ${readySeconds} s after the primary's VM came back`, ready.at);
    const st = await this.status('primary');
    const vm = (st?.vmsync ?? null) as { failback_ready?: boolean; failover?: { epoch: number } | null; samples_copied_total?: number; ranges_repaired?: unknown[] } | null;
    if (!vm?.failback_ready || vm.failover?.epoch !== this.failoverEpoch) await this.fail(step, `failoverctl status does not show FAILBACK READY for epoch ${this.failoverEpoch}: ${JSON.stringify(vm)}`);
    const repairs = this.journalOf('primary', step).entries.items.filter((e) => e.unit === this.sites.primary.unit && /event=vmsync_repair\b/.test(e.message));
    const samplesCopied = Number(vm!.samples_copied_total ?? 0);
    if (samplesCopied <= 0 || repairs.length === 0) await this.fail(step, `no repair was made (samples_copied_total=${samplesCopied}, ${repairs.length} vmsync_repair events)`);
    // Both VMs now hold the same samples over the whole outage (and a margin on both sides).
    const from = Math.floor(this.tPowerOff / 1000) - 10;
    const to = Math.floor(ready.at / 1000) - 5;
    const [primaryCount, drCount] = await Promise.all([countSamples(this.sites.primary.vmUrl, from, to), countSamples(this.sites.dr.vmUrl, from, to)]);
    this.event('drill', `over the outage and around it (${to - from} s) the primary's VM now holds ${primaryCount} samples, the DR's ${drCount}; ${samplesCopied} samples copied`);
    if (primaryCount !== drCount) await this.fail(step, `the VMs differ after the repair: primary ${primaryCount}, DR ${drCount} samples in (${from}, ${to}]`);
    this.measured.failback_ready_after_s = readySeconds;
    this.measured.samples_copied = samplesCopied;
    return { readySeconds, samplesCopied, ranges: vm!.ranges_repaired ?? [], primaryCount, drCount };
  }

  /** `failoverctl failback` on the primary: the record names the primary, the DR stops collecting. */
  async failback(): Promise<{ output: string; dnsSeconds: number; drStoppedSeconds: number; primaryStartedSeconds: number }> {
    const step = this.step('failback');
    const dnsFrom = this.dns!.changes.length;
    const pFrom = this.journalOf('primary', step).entries.length;
    const dFrom = this.journalOf('dr', step).entries.length;
    this.tFailbackCmd = Date.now();
    this.event('drill', 'failoverctl failback (on the primary)', this.tFailbackCmd);
    const r = await this.sh('primary', 'failoverctl --instance primary failback', 30_000);
    const output = (r.stdout + r.stderr).trim();
    if (r.code !== 0) await this.fail(step, `failoverctl failback exited ${r.code}:\n${output}`);
    this.event('primary', `failoverctl failback: ${output.split('\n')[0]}`);
    const dns = await this.waitDns(step, (s) => s.addresses[0] === SITES.primary && s.lease?.holder === 'primary', 15_000, 'the record naming the primary again', dnsFrom);
    const dnsSeconds = secs(dns.at - this.tFailbackCmd);
    const pStart = await this.waitJournal(step, 'primary', this.unitEvent('otelcol-contrib.service', 'Started'), 20_000, 'start of the collector after the failback', pFrom);
    const dStop = await this.waitJournal(step, 'dr', this.unitEvent('otelcol-contrib.service', 'Stopped'), 20_000, 'stop of the collector after the failback', dFrom);
    const primaryStartedSeconds = secs(pStart.at - this.tFailbackCmd);
    const drStoppedSeconds = secs(dStop.at - this.tFailbackCmd);
    this.event('drill', `FAILBACK done: record names the primary after ${dnsSeconds} s, primary collector started after ${primaryStartedSeconds} s, DR collector stopped after ${drStoppedSeconds} s`);
    if ((await this.unitActive('dr', 'otelcol-contrib')) === 'active') await this.fail(step, "the DR's collector still runs");
    if ((await this.unitActive('primary', 'otelcol-contrib')) !== 'active') await this.fail(step, "the primary's collector is not active");
    const ds = await this.status('dr');
    if (ds?.active !== false) await this.fail(step, 'the DR agent does not report standby');
    // The primary became holder by failback, not by takeover: it counts its lease valid only
    // after ttl + max_skew (the DR may believe its own lease valid until then), then says active.
    const bound = (seconds(TIMINGS.lease_ttl) + seconds(TIMINGS.max_skew) + 5) * 1000;
    if (!(await until(async () => (await this.status('primary'))?.active === true, bound, 250))) await this.fail(step, `the primary agent does not report itself active within ${bound / 1000} s of the failback`);
    const primaryActiveSeconds = secs(Date.now() - this.tFailbackCmd);
    this.event('primary', `agent reports active (lease counted valid) ${primaryActiveSeconds} s after the failback command`);
    this.measured.failback_primary_active_s = primaryActiveSeconds;
    // The primary's samples reach both VMs again.
    const from = Math.ceil(pStart.at / 1000);
    const flowing = async () => {
      const to = Math.floor(Date.now() / 1000) - 1;
      const [p, d] = await Promise.all([countSamples(this.sites.primary.vmUrl, from, to).catch(() => 0), countSamples(this.sites.dr.vmUrl, from, to).catch(() => 0)]);
      return p >= 2 * SERIES && d >= 2 * SERIES;
    };
    if (!(await until(flowing, 20_000, 250))) await this.fail(step, "the primary's collector's samples do not reach both VMs");
    this.event('drill', "the primary's collector writes into both VMs again");
    this.measured.failback_dns_s = dnsSeconds;
    this.measured.failback_primary_collector_s = primaryStartedSeconds;
    this.measured.failback_dr_collector_stopped_s = drStoppedSeconds;
    return { output, dnsSeconds, drStoppedSeconds, primaryStartedSeconds };
  }

  // --- teardown, report -------------------------------------------------------------------------

  /**
   * Stops everything this drill started, by PID, newest boot first. Safe to call again: a later
   * call stops what a step still in flight started after the first (stopping is idempotent).
   */
  // --- the job, not only the host (collector handover, pause) ---------------------------------

  /** The collector of `role` made to die at once, as a bad config push does: a drop-in `ExecStart=/bin/false`, then (re)started. */
  async breakCollector(role: Role): Promise<{ at: number }> {
    const step = this.step(`${role} collector broken`);
    await this.must(step, role, 'mkdir -p /etc/systemd/system/otelcol-contrib.service.d && printf "[Service]\nExecStart=\nExecStart=/bin/false\n" > /etc/systemd/system/otelcol-contrib.service.d/broken.conf && systemctl daemon-reload');
    const at = Date.now();
    // A running collector is restarted into the broken binary; a stopped one only fails when started.
    await this.sh(role, 'systemctl is-active -q otelcol-contrib && systemctl restart otelcol-contrib', 30_000);
    this.event('drill', `the ${role}'s collector BROKEN (ExecStart=/bin/false)`, at);
    return { at };
  }

  /** The drop-in removed and the failed state cleared: the collector works again. */
  async repairCollector(role: Role): Promise<void> {
    const step = this.step(`${role} collector repaired`);
    await this.must(step, role, 'rm -f /etc/systemd/system/otelcol-contrib.service.d/broken.conf && systemctl daemon-reload && systemctl reset-failed otelcol-contrib');
    this.event('drill', `the ${role}'s collector repaired`);
  }

  /** After breakCollector('primary'): the primary hands the job over; the DR's collector runs. */
  async handedOver(from: Role, brokenAt: number): Promise<{ dnsSeconds: number; collectorSeconds: number; handoverLog: string; receiverReason: string }> {
    const step = this.step(`the ${from} hands over`);
    const to: Role = from === 'primary' ? 'dr' : 'primary';
    const dns = await this.waitDns(step, (x) => x.addresses[0] === SITES[to] && x.lease?.holder === to, 60_000, `the record naming the ${to}`, this.dnsIndexAt(brokenAt));
    const started = await this.waitJournal(step, to, (e) => this.unitEvent('otelcol-contrib.service', 'Started')(e) && e.at >= brokenAt, 30_000, `start of the ${to}'s collector after the handover`);
    const ho = await this.waitJournal(step, from, (e) => e.unit === this.sites[from].unit && /event=handover\b/.test(e.message) && e.at >= brokenAt, 10_000, 'event=handover');
    const st = await this.status(to);
    const receiverReason = String(st?.reason ?? '');
    const dnsSeconds = secs(dns.at - brokenAt);
    const collectorSeconds = secs(started.at - brokenAt);
    this.event('drill', `HANDOVER: the witness names the ${to} ${dnsSeconds} s after the ${from}'s collector broke; its collector active after ${collectorSeconds} s`, started.at);
    this.measured[`handover_${from}_dns_s`] = dnsSeconds;
    this.measured[`handover_${from}_collector_s`] = collectorSeconds;
    return { dnsSeconds, collectorSeconds, handoverLog: ho.message, receiverReason };
  }

  /** The index of the first witness change at or after `at` (wait for changes from there). */
  dnsIndexAt(at: number): number {
    const i = this.dns!.changes.items.findIndex((c) => c.at >= at);
    return i === -1 ? this.dns!.changes.items.length : i;
  }

  /** The witness's changes since `at` (ms), as lease epochs. */
  epochsSince(at: number): number[] {
    return this.dns!.changes.items.filter((c) => c.at >= at).map((c) => c.snap.lease?.epoch ?? -1);
  }

  /** Waits until `role`'s status satisfies `pred` (bounded), returning it. */
  async waitStatus(role: Role, pred: (s: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    const step = `${role} status`;
    let last: Record<string, unknown> | null = null;
    const ok = await until(async () => {
      last = await this.status(role);
      return last !== null && pred(last);
    }, timeoutMs, 250);
    if (!ok) throw new DrillError(step, `the ${role}'s status did not show ${what} within ${timeoutMs / 1000} s; last: ${JSON.stringify(last)?.slice(0, 1500)}`);
    return last!;
  }

  /** failoverctl on a site; throws on a non-zero exit. */
  async ctl(role: Role, args: string): Promise<string> {
    return this.must(`failoverctl ${args}`, role, `failoverctl --instance ${role} ${args}`, 60_000);
  }

  /** The agent of `role` stopped (its collector left as it is), as for an upgrade. */
  async stopAgent(role: Role): Promise<{ at: number }> {
    const step = this.step(`${role} agent stopped`);
    await this.must(step, role, `systemctl stop ${this.sites[role].unit}`, 60_000);
    const at = Date.now();
    this.event('drill', `the ${role}'s agent STOPPED`, at);
    return { at };
  }

  async startAgent(role: Role): Promise<void> {
    const step = this.step(`${role} agent started`);
    await this.must(step, role, `systemctl start ${this.sites[role].unit}`, 60_000);
  }

  async teardown(): Promise<void> {
    if (!this.tornDown) this.event('drill', 'teardown');
    this.tornDown = true;
    for (const s of Object.values(this.sites)) {
      await s.journal?.stop();
      s.journal = null;
    }
    await this.dns?.stop();
    const errors: string[] = [];
    for (const s of Object.values(this.sites)) {
      for (const c of [...s.boots].reverse()) {
        const t = Date.now();
        await c.stop().catch((e: Error) => errors.push(`${c.name}: ${e.message}`));
        this.progress(`teardown: ${c.name} (boot ${s.boots.indexOf(c) + 1}) stopped in ${secs(Date.now() - t)} s`);
      }
      s.c = null;
    }
    await this.srv?.stop().catch((e: Error) => errors.push(`bind: ${e.message}`));
    if (this.tmpDir) await fsp.rm(this.tmpDir, { recursive: true, force: true }).catch(() => undefined);
    if (errors.length) throw new Error(`teardown: ${errors.join('; ')}`);
  }

  summary(): string {
    const m = this.measured;
    const line = (k: string, v: unknown) => (v === undefined ? null : `  ${k.padEnd(58)} ${v === null ? 'n/a' : String(v)}`);
    return [
      'Measured:',
      line('failover: power cut -> witness names the DR (s)', m.failover_dns_s),
      line('failover: power cut -> DR agent logs event=takeover (s)', m.failover_takeover_event_s),
      line("failover: power cut -> DR's collector active (s)", m.failover_collector_s),
      line('data: seconds without samples (last primary, first DR)', m.collection_gap_s),
      line('primary down: power cut -> its VM answers again (s)', m.primary_down_s),
      line("primary's VM: samples lost in the power cut (not on disk)", m.samples_lost_in_power_cut),
      line("primary's VM: samples missed during the outage", m.samples_missed_in_outage),
      line("VM sync: primary's VM back -> FAILBACK READY (s)", m.failback_ready_after_s),
      line('VM sync: samples copied into the primary', m.samples_copied),
      line('failback: command -> witness names the primary (s)', m.failback_dns_s),
      line("failback: command -> primary's collector active (s)", m.failback_primary_collector_s),
      line("failback: command -> DR's collector stopped (s)", m.failback_dr_collector_stopped_s),
      line('failback: command -> primary agent reports active (s)', m.failback_primary_active_s),
    ]
      .filter((l): l is string => l !== null)
      .join('\n');
  }

  /** Markdown for docs/PERFORMANCE.md: the timeline of this run and the figures. */
  markdown(): string {
    const t = TIMINGS;
    return [
      `### Run of ${new Date(this.t0).toISOString().slice(0, 16).replace('T', ' ')} UTC (\`scripts/drill\`)`,
      '',
      `Timings: lease ttl ${t.lease_ttl}, renew ${t.renew_interval}, max_skew ${t.max_skew}; health every ${t.health_interval} ` +
        `(timeout ${t.health_timeout}), ${t.health_failures} failures; collector reconcile ${t.collector_interval}; vmsync every ${t.vmsync_interval}, ` +
        `bucket ${t.vmsync_bucket} (= VM dedup = sample interval), settle ${t.vmsync_settle}, ${t.vmsync_clean_checks} clean checks.`,
      '',
      '```',
      this.failures.length ? `DRILL FAILED:\n${this.failures.map((f) => `- ${f.split('\n')[0]}`).join('\n')}\n` : 'DRILL PASSED\n',
      this.summary(),
      '',
      this.renderTimeline(),
      '```',
      '',
    ].join('\n');
  }

  results(): Record<string, unknown> {
    return { at: new Date(this.t0).toISOString(), timings: TIMINGS, measured: this.measured, timeline: [...this.timeline].sort((a, b) => a.at - b.at).map((e) => ({ t: secs(e.at - this.t0), source: e.source, text: e.text })) };
  }
}

// ---------------------------------------------------------------------------------------------
// the command (scripts/drill bundles this module and calls main())

/**
 * The steps in order. A `soft` step only looks (it changes nothing), so the drill goes on after
 * it fails, and the failure still makes the drill fail.
 */
export const STEPS = [
  { name: 'primaryActive' },
  { name: 'powerOffPrimary' },
  { name: 'drTakesOver' },
  { name: 'primaryBack' },
  { name: 'failbackGateClosedOnReturn', soft: true },
  { name: 'gapRepaired' },
  { name: 'failback' },
] as const;

export async function main(argv = process.argv.slice(2)): Promise<number> {
  let outage: number | undefined;
  let outDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--outage') outage = Number(argv[++i]);
    else if (a === '--out') outDir = argv[++i];
    else if (a === '-h' || a === '--help') {
      process.stderr.write('usage: scripts/drill [--outage SECONDS] [--out DIR]\n');
      return 0;
    } else {
      process.stderr.write(`drill: unknown argument ${a}\n`);
      return 64;
    }
  }
  if (outage !== undefined && !(outage >= 1 && outage <= 600)) {
    process.stderr.write('drill: --outage must be 1..600 seconds\n');
    return 64;
  }
  const drill = new Drill({
    deb: process.env.DRILL_DEB || undefined,
    baseRoot: process.env.DRILL_BASE_ROOT || undefined,
    outageSeconds: outage,
    progress: (l) => process.stderr.write(`${l}\n`),
  });
  const failures: Error[] = [];
  const run = (async () => {
    try {
      await drill.setup();
      for (const s of STEPS) {
        try {
          await drill[s.name]();
        } catch (e) {
          failures.push(e as Error);
          drill.failures.push((e as Error).message);
          drill.event('drill', `STEP FAILED: ${(e as Error).message.split('\n')[0]}`);
          if (!('soft' in s && s.soft)) break;
        }
      }
    } catch (e) {
      failures.push(e as Error);
      drill.failures.push((e as Error).message);
    }
  })();

  // Ctrl-C / SIGTERM: stop everything now, give the step in flight a moment to fail (it may be
  // starting something: a second teardown pass stops that too), then exit 130.
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`drill: ${sig}: stopping everything\n`);
    void (async () => {
      await drill.teardown().catch((e: Error) => process.stderr.write(`drill: ${e.message}\n`));
      await Promise.race([run, delay(5_000)]);
      await drill.teardown().catch((e: Error) => process.stderr.write(`drill: ${e.message}\n`));
      process.exit(130);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  await run;
  if (interrupted) return new Promise<number>(() => undefined); // the signal path exits
  try {
    await drill.teardown();
  } catch (e) {
    process.stderr.write(`drill: ${(e as Error).message}\n`);
  }
  const out = outDir ?? path.join(drill.repo, 'dist/drill');
  try {
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'last-run.json'), JSON.stringify({ ...drill.results(), ok: failures.length === 0, errors: failures.map((f) => f.message) }, null, 2) + '\n');
    fs.writeFileSync(path.join(out, 'last-run.md'), drill.markdown());
  } catch (e) {
    process.stderr.write(`drill: cannot write the results to ${out}: ${(e as Error).message}\n`);
  }
  process.stdout.write(`\nFailover drill timeline (t+ seconds since the drill started)\n\n${drill.renderTimeline()}\n\n${drill.summary()}\n\n`);
  if (failures.length) {
    process.stdout.write(`DRILL FAILED (${failures.length} step${failures.length > 1 ? 's' : ''}):\n${failures.map((f) => `- ${f.message}`).join('\n')}\n`);
    return 1;
  }
  process.stdout.write(`DRILL PASSED (results: ${path.join(out, 'last-run.json')}, ${path.join(out, 'last-run.md')})\n`);
  return 0;
}
