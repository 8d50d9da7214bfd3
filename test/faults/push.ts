/**
 * Push senders in the fault world (issue 20): the pull-side figures say what the collectors
 * scraped; these say what happens to syslog that devices SEND to the record's name.
 *
 * In the devices namespace: unbound as the caching resolver (a stub zone to the witness, every
 * other name refused; the namespace's /etc/resolv.conf points at it) and two rsyslog senders
 * (Debian's, unpacked by scripts/lib/deps.sh), each fed one numbered line every 100 ms by its own
 * generator (../senders/generator.mjs) and forwarding over TCP to the record's NAME: one with the
 * documented configuration (src/cli/senders.ts; port 5514), one with rsyslog's defaults (port
 * 5515). The namespace runs the documented sysctls (they are per network namespace, so the
 * defaults sender has them too: it notices a dead connection sooner than a host with the
 * kernel's defaults would). Each site's collector unit runs a receiver per port beside vmagent
 * (../senders/receiver.mjs; started and stopped with the collector, i.e. "in the collector's
 * place"), logging every line with its arrival time into a host directory bind-mounted into the
 * container, so what a site received survives its power cut.
 *
 * Per case and sender (`rows`): follow_s (the record's move, as the checker saw it at the
 * witness -> the first line at the site it now names), lines_lost (lines sent in the case's
 * window, up to 3 s before its end, received by neither site), lines_to_inactive (lines a site
 * received while the record named the other site and its own agent answered that it is not
 * active: it knew).
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rsyslogAction, SENDER_SYSCTLS } from '../../src/cli/senders.js';
import { requireBinary, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { senderBinaries, parseReceived } from '../senders/world.js';
import type { Sample } from './analyze.js';
import type { World as Net } from './net.js';
import type { SiteRole } from './sites.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const RECEIVER = path.resolve(HERE, '../senders/receiver.mjs');
const GENERATOR = path.resolve(HERE, '../senders/generator.mjs');
/** where each container sees the receiver script and its log directory */
export const RECEIVER_INSIDE = '/opt/fa-push/receiver.mjs';
export const LOG_INSIDE = '/var/log/fa-push';
/** lines sent in the last DRAIN_MS of a window may still be on their way: not judged */
const DRAIN_MS = 3_000;
const ROLES: SiteRole[] = ['primary', 'dr'];

export interface PushSender {
  /** the row's `sender` */
  name: string;
  documented: boolean;
  port: number;
  inputPort: number;
}

export const PUSH_SENDERS: PushSender[] = [
  { name: 'rsyslog omfwd TCP, documented', documented: true, port: 5514, inputPort: 5140 },
  { name: 'rsyslog omfwd TCP, defaults', documented: false, port: 5515, inputPort: 5141 },
];

export interface SenderRow {
  name: string;
  system: 'failover-agent';
  sender: string;
  documented: boolean;
  /** record move -> first line at the site it names (s); null: no move in the case, or none arrived */
  follow_s: number | null;
  /** the case moved the record but no line reached the new site before the window ended */
  followed: boolean | null;
  lines_lost: number;
  lines_to_inactive: number;
  /** lines sent to a dead site (power cut) between its death and the record's move: the loss allowed */
  sent_to_dead_before_move: number;
  /** documented rows against the targets (null for defaults: measured, not judged) */
  pass: boolean | null;
  failures: string[];
}

/** The host directory each site's receivers log into (bind-mounted at LOG_INSIDE). */
export function pushLogDir(base: string, role: SiteRole): string {
  return path.join(base, 'rx', role);
}

/** The collector unit's ExecStart: the receivers in the background, then `exec` the collector. */
export function collectorExec(address: string, collector: string): string {
  const rx = PUSH_SENDERS.map((s) => `/usr/bin/node ${RECEIVER_INSIDE} --address ${address} --port ${s.port} >>${LOG_INSIDE}/${s.port}.log 2>/dev/null &`).join(' ');
  if (/[$%']/.test(rx + collector)) throw new Error('push: the collector command must not hold $, % or a quote');
  return `/bin/sh -c '${rx} exec ${collector}'`;
}

export interface Push {
  dir: string;
  /** start unbound and the senders in the devices namespace (once the sites listen) */
  start(): Promise<void>;
  rows(o: { name: string; fromMs: number; toMs: number; samples: Sample[]; siteOf: Record<string, SiteRole>; recordTtlS: number; deadSites?: { role: SiteRole; atMs: number }[] }): SenderRow[];
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createPush(net: Net, witness: DnsServerFixture): Push {
  const bins = senderBinaries();
  const unbound = requireBinary('unbound');
  const dig = requireBinary('dig');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-push-'));
  for (const r of ROLES) fs.mkdirSync(pushLogDir(dir, r), { recursive: true, mode: 0o777 });
  const netnsEtc = `/etc/netns/${net.ns.devices}`;
  const children: ChildProcess[] = [];
  const genLog = (s: PushSender) => path.join(dir, `gen-${s.port}.log`);

  const spawnLogged = (argv: string[], logFile: string): ChildProcess => {
    const fd = fs.openSync(logFile, 'a');
    const c = net.spawn('devices', argv, { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    children.push(c);
    return c;
  };

  return {
    dir,
    async start() {
      fs.mkdirSync(netnsEtc, { recursive: true });
      fs.writeFileSync(path.join(netnsEtc, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:2\n');
      for (const [k, v] of Object.entries(SENDER_SYSCTLS)) {
        const r = await net.exec('devices', ['sysctl', '-q', '-w', `${k}=${v}`]);
        if (r.code !== 0) throw new Error(`push: sysctl ${k}: ${r.stderr}`);
      }
      const conf = path.join(dir, 'unbound.conf');
      fs.writeFileSync(
        conf,
        `server:
  interface: 127.0.0.1
  port: 53
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${dir}/unbound.pid"
  use-syslog: no
  logfile: "${dir}/unbound.log"
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  qname-minimisation: no
  do-not-query-localhost: yes
  local-zone: "." refuse
  local-zone: "${witness.zone}." transparent
stub-zone:
  name: "${witness.zone}."
  stub-addr: ${witness.host}@${witness.port}
`,
      );
      spawnLogged([unbound, '-d', '-c', conf], path.join(dir, 'unbound.out'));
      for (let i = 0; ; i++) {
        const r = await net.exec('devices', [dig, '+time=1', '+tries=1', '@127.0.0.1', witness.zone, 'SOA'], { timeoutMs: 5_000 });
        if (r.code === 0 && /status: NOERROR/.test(r.stdout)) break;
        if (i >= 50) throw new Error(`push: unbound does not answer for ${witness.zone}: ${r.stdout}${r.stderr}`);
        await sleep(200);
      }
      for (const s of PUSH_SENDERS) {
        const work = path.join(dir, `rsyslog-${s.port}`);
        fs.mkdirSync(work);
        const action = s.documented ? rsyslogAction(witness.record, s.port) : `action(type="omfwd" target="${witness.record}" port="${s.port}" protocol="tcp")`;
        fs.writeFileSync(
          path.join(work, 'rsyslog.conf'),
          `global(workDirectory="${work}")\nmodule(load="imudp")\ninput(type="imudp" address="127.0.0.1" port="${s.inputPort}")\n*.* ${action}\n`,
        );
        spawnLogged([bins.rsyslogd, '-n', '-f', path.join(work, 'rsyslog.conf'), '-i', path.join(work, 'pid'), '-M', bins.rsyslogModules], path.join(work, 'out.log'));
      }
      await sleep(1_000);
      // bounded: 40,000 lines = 66 minutes at 10 per second, longer than the matrix with --soak
      for (const s of PUSH_SENDERS) spawnLogged([process.execPath, GENERATOR, '--port', String(s.inputPort), '--interval-ms', '100', '--count', '40000'], genLog(s));
    },
    rows(o) {
      const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n') : []);
      const at = (t: number): Sample | undefined => {
        let best: Sample | undefined;
        for (const s of o.samples) if (s.wallMs <= t) best = s;
        return best;
      };
      const startRecord = o.samples[0]?.record ?? null;
      const move = o.samples.find((s) => s.record !== null && startRecord !== null && s.record !== startRecord);
      return PUSH_SENDERS.map((s) => {
        const sent = new Map<number, number>();
        for (const l of read(genLog(s))) {
          const [a, b] = l.split(' ').map(Number);
          if (Number.isFinite(a) && Number.isFinite(b)) sent.set(a, b);
        }
        const got = Object.fromEntries(ROLES.map((r) => [r, parseReceived(read(path.join(pushLogDir(dir, r), `${s.port}.log`)))])) as Record<SiteRole, Map<number, number>>;
        let lost = 0;
        for (const [seq, t] of sent) if (t >= o.fromMs && t <= o.toMs - DRAIN_MS && !got.primary.has(seq) && !got.dr.has(seq)) lost++;
        let toInactive = 0;
        for (const r of ROLES) {
          for (const t of got[r].values()) {
            if (t < o.fromMs || t > o.toMs) continue;
            // the old site once it knows: the record names the other site and its agent answers
            // that it is not active (an agent cut off from the witness cannot know, and lines
            // to the site the record still names are the sender doing what it should)
            const x = at(t);
            const a = x?.agents[r];
            if (a?.answered && !a.active && x?.record && o.siteOf[x.record] !== undefined && o.siteOf[x.record] !== r) toInactive++;
          }
        }
        let follow: number | null = null;
        let followed: boolean | null = null;
        let budget = 0;
        if (move?.record) {
          const to = o.siteOf[move.record];
          const first = Math.min(...[...(to ? got[to].values() : [])].filter((t) => t >= move.wallMs && t <= o.toMs), Infinity);
          followed = first !== Infinity;
          follow = followed ? Math.round((first - move.wallMs) / 100) / 10 : null;
          for (const d of o.deadSites ?? []) budget += [...sent.values()].filter((t) => t >= d.atMs && t < move.wallMs).length;
        }
        const failures: string[] = [];
        if (s.documented) {
          if (followed === false || (follow !== null && follow > o.recordTtlS + 5)) failures.push(`first line at the new site ${follow === null ? 'never in the window' : `${follow} s`} after the move (target <= record_ttl + 5 = ${o.recordTtlS + 5} s)`);
          if (lost > budget) failures.push(`${lost} lines lost (target <= ${budget})`);
          if (toInactive > 0) failures.push(`${toInactive} lines reached a site that knew it was not active`);
        }
        return {
          name: o.name,
          system: 'failover-agent' as const,
          sender: s.name,
          documented: s.documented,
          follow_s: follow,
          followed,
          lines_lost: lost,
          lines_to_inactive: toInactive,
          sent_to_dead_before_move: budget,
          pass: s.documented ? failures.length === 0 : null,
          failures,
        };
      });
    },
    async stop() {
      for (const c of children.splice(0).reverse()) {
        if (c.exitCode !== null || c.signalCode !== null || !c.pid) continue;
        const gone = new Promise((r) => c.once('exit', r));
        try {
          process.kill(c.pid, 'SIGTERM');
        } catch {
          continue;
        }
        await Promise.race([gone, sleep(5_000)]);
        if (c.exitCode === null && c.signalCode === null) {
          try {
            process.kill(c.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
          await Promise.race([gone, sleep(5_000)]);
        }
      }
      fs.rmSync(netnsEtc, { recursive: true, force: true });
      if (process.env.FAULTS_KEEP_PUSH !== '1') fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
