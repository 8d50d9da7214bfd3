/**
 * The syslog senders' world (issue 20; docs/SENDERS.md): does a push sender follow the failover
 * record? Built from the fault suite's networks (../faults/net.ts: namespaces joined by a routing
 * WAN namespace, addresses from 198.18.0.0/15 only, nothing leading out):
 * - `witness`: BIND (../fixtures/dns-servers.ts), authoritative for example.test; the record
 *   `syslog.example.test A` is set and moved with nsupdate (TSIG), with the case's TTL;
 * - `devices`: unbound as the caching resolver on 127.0.0.1 (a stub zone to BIND; every other name
 *   refused, so nothing is ever asked outside), the namespace's /etc/resolv.conf pointing at it
 *   (`ip netns exec` binds /etc/netns/<ns>/resolv.conf), the sender (rsyslog, syslog-ng, busybox
 *   syslogd or inetutils syslogd, the Debian packages unpacked by scripts/lib/deps.sh) forwarding
 *   to the record's NAME, and a generator handing it one numbered line every 100 ms: over UDP on
 *   127.0.0.1 (rsyslog, syslog-ng) or to its unix socket (./generator-unix.py: busybox and
 *   inetutils syslogd read only that). busybox syslogd always binds /dev/log (following a symlink
 *   there) and writes /run/syslogd.pid: it runs in a mount namespace of its own (unshare) whose
 *   /dev and /run are the case's directories, so the machine's /dev/log and /run are never
 *   touched. inetutils syslogd gets its socket, pidfile and configuration by options, and sends
 *   to the syslog port (514) only: its case's receivers listen there. For the documented
 *   remedy of these two (they look the name up once), `follow-record` (src/cli/senders.ts) runs
 *   beside them, its command reporting each change of the record's address to the test, which
 *   restarts busybox syslogd or sends inetutils syslogd SIGHUP, as the operator's command would;
 * - `site1`, `site2`: a receiver each (./receiver.mjs, UDP and TCP) logging every line with its
 *   arrival time.
 *
 * A case: the record names site 1, the sender delivers there; then either (alive) the record is
 * moved to site 2 and site 1's receiver stops at once, as its collector does when the site stops
 * being named; or (dead) site 1's receiver is SIGKILLed and its address blackholed (both
 * directions dropped in the WAN), and the record moved 5 s later. Measured from the receivers'
 * logs: follow_s (move -> first line at site 2), lines_lost (numbered lines received nowhere),
 * lines_to_inactive (lines that reached site 1 after the move).
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FOLLOW_RECORD_INTERVAL_S, followRecordScript, rsyslogAction, SENDER_SYSCTLS, SYSLOG_NG_RELOAD_S, syslogNgDestination } from '../../src/cli/senders.js';
import { requireBinary, startBind, type DnsServerFixture } from '../fixtures/dns-servers.js';
import { alive } from '../fixtures/nspawn.js';
import { createWorld as createNet, removeWorld, type World as Net } from '../faults/net.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RECEIVER = path.join(HERE, 'receiver.mjs');
const GENERATOR = path.join(HERE, 'generator.mjs');
const GENERATOR_UNIX = path.join(HERE, 'generator-unix.py');
/** Debian's python3 (faults deps), not a shim in front of it */
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
export const SYSLOG_PORT = 5514;
const INPUT_PORT = 5140;
export const LINE_INTERVAL_MS = 100;
/** the steady state before the fault when the case measures the sender's cost */
const STEADY_COST_MS = 10_000;
const CACHE = process.env.FAILOVER_AGENT_CACHE ?? path.join(os.homedir(), '.cache/failover-agent');
const SENDERS_DIR = path.join(CACHE, 'senders');
const HINT = 'run scripts/test-all, or `bash scripts/lib/deps.sh install senders`, which unpacks it there';
/** the kernel's own defaults (a new network namespace starts with them) */
const KERNEL_SYSCTLS: Record<string, number> = { 'net.ipv4.tcp_syn_retries': 6, 'net.ipv4.tcp_retries2': 15 };

export type SenderKind = 'rsyslog' | 'syslog-ng' | 'busybox' | 'inetutils';
export interface SenderConfig {
  /** e.g. `rsyslog omfwd TCP, documented` */
  name: string;
  kind: SenderKind;
  protocol: 'udp' | 'tcp';
  /** the configuration docs/SENDERS.md documents (src/cli/senders.ts), or the sender's defaults */
  documented: boolean;
  /** busybox, inetutils: `follow-record` (src/cli/senders.ts) beside the sender, restarting
   * (busybox) or reloading (inetutils: SIGHUP) it when the record's address changes */
  followHook?: boolean;
}
export type CaseKind = 'alive' | 'dead';

export interface CaseResult {
  sender: string;
  kind: SenderKind;
  protocol: 'udp' | 'tcp';
  documented: boolean;
  case: CaseKind;
  record_ttl_s: number;
  /** record move -> first line at site 2 (s); null: not within cap_s */
  follow_s: number | null;
  cap_s: number;
  sent: number;
  /** numbered lines received at neither site */
  lines_lost: number;
  /** lines that reached site 1 after the move */
  lines_to_inactive: number;
  /** dead case: lines sent after site 1 died and before the move (the loss the target allows) */
  sent_to_dead_before_move: number;
  /** what the sender costs in the steady state before the fault (10 s at site 1): TCP
   * connections accepted per minute (null: not measured in this case) */
  connections_per_min: number | null;
  /** ... and queries for the record (A and AAAA) the sender sent its resolver (unbound), per minute */
  resolver_queries_per_min: number | null;
  /** follow-record rows: how often its command ran (restart or reload); null without it */
  hook_runs: number | null;
  /** follow-record rows: lines lost that were sent while the sender was being restarted
   * (busybox) or reloaded (inetutils), from the stop or SIGHUP until the first line that reached a
   * site after it; null otherwise */
  lost_in_restart: number | null;
  /** whether lines_lost is judged: TCP rows only (a UDP sender loses what it sends to the old
   * address until it follows, so its lines lost are measured, not judged) */
  lost_judged: boolean;
  /** documented rows: the targets; null for defaults (measured, not judged) */
  pass: boolean | null;
  failures: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The unpacked Debian sender binaries (scripts/lib/deps.sh); a missing one is an error. */
export function senderBinaries(): { rsyslogd: string; rsyslogModules: string; syslogNg: string; syslogNgCtl: string; syslogNgLib: string; syslogNgModules: string } {
  const r = path.join(SENDERS_DIR, 'rsyslog');
  const s = path.join(SENDERS_DIR, 'syslog-ng-core');
  const need = (p: string) => {
    if (!fs.existsSync(p)) throw new Error(`senders: ${p} missing (the Debian package unpacked under ${SENDERS_DIR}): ${HINT}`);
    return p;
  };
  const modules = fs.existsSync(path.join(s, 'usr/lib/syslog-ng')) ? fs.readdirSync(path.join(s, 'usr/lib/syslog-ng')).filter((d) => /^\d+\.\d+$/.test(d)) : [];
  return {
    rsyslogd: need(path.join(r, 'usr/sbin/rsyslogd')),
    rsyslogModules: need(path.join(r, 'usr/lib/x86_64-linux-gnu/rsyslog')),
    syslogNg: need(path.join(s, 'usr/sbin/syslog-ng')),
    syslogNgCtl: need(path.join(s, 'usr/sbin/syslog-ng-ctl')),
    syslogNgLib: need(path.join(s, 'usr/lib/syslog-ng')),
    syslogNgModules: need(path.join(s, 'usr/lib/syslog-ng', modules[0] ?? 'MODULES')),
  };
}

/** busybox (its syslogd applet) and inetutils syslogd, unpacked by scripts/lib/deps.sh. */
export function resolveOnceBinaries(): { busybox: string; inetutilsSyslogd: string } {
  const need = (p: string) => {
    if (!fs.existsSync(p)) throw new Error(`senders: ${p} missing (the Debian package unpacked under ${SENDERS_DIR}): ${HINT}`);
    return p;
  };
  return {
    busybox: need(path.join(SENDERS_DIR, 'busybox/bin/busybox')),
    inetutilsSyslogd: need(path.join(SENDERS_DIR, 'inetutils-syslogd/usr/sbin/syslogd')),
  };
}

/** The port a sender sends to: inetutils syslogd only to the syslog service's (514). */
export const senderPort = (s: SenderConfig): number => (s.kind === 'inetutils' ? 514 : SYSLOG_PORT);

/** A line-logging child: its parsed lines so far. */
class Lines {
  readonly lines: string[] = [];
  /** the last 8 KiB of its stderr, if piped */
  stderr = '';
  readonly exited: Promise<void>;
  constructor(readonly child: ChildProcess, onLine?: (l: string) => void) {
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (l) => {
      this.lines.push(l);
      onLine?.(l);
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-8192)));
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }
  async until(pred: (l: string) => boolean, timeoutMs: number, what: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.lines.some(pred)) {
      if (Date.now() > end) throw new Error(`senders: ${what} within ${timeoutMs} ms`);
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`senders: ${what}: the process exited`);
      await sleep(50);
    }
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.child;
    if (c.exitCode !== null || c.signalCode !== null || !c.pid) return;
    try {
      process.kill(c.pid, signal);
    } catch {
      /* gone */
    }
    await Promise.race([this.exited, sleep(5_000)]);
    if (c.exitCode === null && c.signalCode === null && alive(c.pid)) {
      process.kill(c.pid, 'SIGKILL');
      await Promise.race([this.exited, sleep(5_000)]);
    }
  }
}

/** `<arrival ms> <proto> ... seq=N ...` lines of a receiver: arrival per seq (first arrival). */
export function parseReceived(lines: string[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const l of lines) {
    const m = /^(\d+) (?:udp|tcp) .*\bseq=(\d+)\b/.exec(l);
    if (m && !out.has(Number(m[2]))) out.set(Number(m[2]), Number(m[1]));
  }
  return out;
}

export interface SendersWorld {
  net: Net;
  dns: DnsServerFixture;
  /** `measureCost`: 10 s of steady state before the fault, counting connections and resolver queries */
  runCase(sender: SenderConfig, kind: CaseKind, o: { ttlS: number; capS: number; measureCost?: boolean; log?: (s: string) => void }): Promise<CaseResult>;
  destroy(): Promise<void>;
}

const ORPHAN = /^sn(\d+)[a-z]-(wan|site1|site2|witness|devices)$/;

let orphansRemoved: Promise<void> | null = null;
/** Remove worlds `sn<pid><x>-*` (and their /etc/netns dirs) whose pid is dead; once per process. */
function removeOrphans(): Promise<void> {
  orphansRemoved ??= removeOrphansNow();
  return orphansRemoved;
}

async function removeOrphansNow(): Promise<void> {
  let names: string[] = [];
  try {
    names = fs.readdirSync('/run/netns');
  } catch {
    return;
  }
  const prefixes = new Set<string>();
  for (const n of names) {
    const m = ORPHAN.exec(n);
    if (m && !alive(Number(m[1]))) prefixes.add(n.slice(0, n.indexOf('-') + 1));
  }
  for (const p of prefixes) {
    await removeWorld(p);
    for (const k of ['wan', 'site1', 'site2', 'witness', 'devices']) fs.rmSync(`/etc/netns/${p}${k}`, { recursive: true, force: true });
  }
}

/** A world of its own; `tag` (one letter) tells parallel worlds of one process apart. */
export async function createSendersWorld(tag: string): Promise<SendersWorld> {
  if (!/^[a-z]$/.test(tag)) throw new Error(`senders: tag must be one letter, got ${tag}`);
  const bins = senderBinaries();
  const unbound = requireBinary('unbound');
  const nsupdate = requireBinary('nsupdate');
  const dig = requireBinary('dig');
  await removeOrphans();
  const prefix = `sn${process.pid}${tag}-`;
  const net = await createNet({ prefix, removeOrphans: false });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fa-senders-${tag}-`));
  const netnsEtc = `/etc/netns/${net.ns.devices}`;
  let dns: DnsServerFixture | null = null;
  const destroy = async () => {
    await dns?.stop().catch(() => undefined);
    await net.destroy();
    fs.rmSync(netnsEtc, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    fs.mkdirSync(netnsEtc, { recursive: true });
    fs.writeFileSync(path.join(netnsEtc, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:2\n');
    dns = await startBind({ netns: { name: net.ns.witness, address: net.addr.witness } });
  } catch (e) {
    await destroy();
    throw e;
  }
  const srv = dns;
  const record = srv.record;

  const setRecord = async (addr: string, ttlS: number) => {
    const script = `server ${srv.host} ${srv.port}\nzone ${srv.zone}\nupdate delete ${record} A\nupdate add ${record} ${ttlS} A ${addr}\nsend\n`;
    const r = await net.exec('witness', [nsupdate, '-t', '3', '-k', srv.key.file], { input: script, timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`senders: nsupdate (${record} -> ${addr}) exit ${r.code}: ${r.stderr}`);
  };

  const sysctls = async (values: Record<string, number>) => {
    for (const [k, v] of Object.entries(values)) {
      const r = await net.exec('devices', ['sysctl', '-q', '-w', `${k}=${v}`]);
      if (r.code !== 0) throw new Error(`senders: sysctl ${k}=${v} in the devices namespace: ${r.stderr}`);
    }
  };

  const startUnbound = async (caseDir: string): Promise<Lines> => {
    const conf = path.join(caseDir, 'unbound.conf');
    fs.writeFileSync(
      conf,
      `server:
  interface: 127.0.0.1
  port: 53
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "${caseDir}"
  pidfile: "${caseDir}/unbound.pid"
  use-syslog: no
  logfile: "${caseDir}/unbound.log"
  verbosity: 1
  log-queries: yes
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  qname-minimisation: no
  do-not-query-localhost: yes
  local-zone: "." refuse
  local-zone: "${srv.zone}." transparent
stub-zone:
  name: "${srv.zone}."
  stub-addr: ${srv.host}@${srv.port}
`,
    );
    const u = new Lines(net.spawn('devices', [unbound, '-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const end = Date.now() + 10_000;
    for (;;) {
      const r = await net.exec('devices', [dig, '+short', '+time=1', '+tries=1', '@127.0.0.1', record, 'A'], { timeoutMs: 5_000 });
      if (r.code === 0 && /^\d+\.\d+\.\d+\.\d+$/m.test(r.stdout)) break;
      if (Date.now() > end) throw new Error(`senders: unbound does not answer ${record}: ${r.stdout}${r.stderr}\n${fs.existsSync(`${caseDir}/unbound.log`) ? fs.readFileSync(`${caseDir}/unbound.log`, 'utf8') : ''}`);
      await sleep(200);
    }
    return u;
  };

  const startReceiver = async (where: 'site1' | 'site2', port: number): Promise<Lines> => {
    const r = new Lines(net.spawn(where, [process.execPath, RECEIVER, '--address', net.addr[where], '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await r.until((l) => l === 'ready', 10_000, `the receiver at ${where} ready`);
    return r;
  };

  /** the sender, started; `stop` also ends syslog-ng's reload timer; `input`: its unix socket
   * (busybox, inetutils), else its UDP input on 127.0.0.1:INPUT_PORT; `restart` and `reload`
   * (SIGHUP) for follow-record's command */
  type Sender = { proc: Lines; stop: () => Promise<void>; input?: string; restart?: () => Promise<void>; reload?: () => void };
  const startSender = (s: SenderConfig, caseDir: string): Sender => {
    if (s.kind === 'busybox') {
      const bb = resolveOnceBinaries().busybox;
      for (const d of ['dev', 'run']) fs.mkdirSync(path.join(caseDir, d));
      fs.writeFileSync(path.join(caseDir, 'dev/null'), '');
      // its own mount namespace: the case's dev/ (with the real /dev/null bound in) as /dev, run/ as /run
      const script = 'mount --bind /dev/null "$1/dev/null" && mount --rbind "$1/dev" /dev && mount --bind "$1/run" /run && exec "$2" syslogd -n -R "$3"';
      const spawnIt = () =>
        new Lines(net.spawn('devices', ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', caseDir, bb, `${record}:${senderPort(s)}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
      const h: Sender = {
        proc: spawnIt(),
        input: path.join(caseDir, 'dev/log'),
        stop: () => h.proc.stop(),
        restart: async () => {
          await h.proc.stop();
          h.proc = spawnIt();
        },
      };
      return h;
    }
    if (s.kind === 'inetutils') {
      const conf = path.join(caseDir, 'syslog.conf');
      fs.writeFileSync(conf, `*.*\t@${record}\n`);
      fs.mkdirSync(path.join(caseDir, 'syslog.d'));
      const sock = path.join(caseDir, 'log');
      const proc = new Lines(
        net.spawn('devices', [resolveOnceBinaries().inetutilsSyslogd, '-n', '--no-klog', '-p', sock, '-P', path.join(caseDir, 'syslog.pid'), '-f', conf, '-D', path.join(caseDir, 'syslog.d')], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      return {
        proc,
        input: sock,
        stop: () => proc.stop(),
        reload: () => {
          if (proc.child.pid && proc.child.exitCode === null) process.kill(proc.child.pid, 'SIGHUP');
        },
      };
    }
    if (s.kind === 'rsyslog') {
      const action = s.documented
        ? rsyslogAction(record, SYSLOG_PORT)
        : `action(type="omfwd" target="${record}" port="${SYSLOG_PORT}" protocol="${s.protocol}")`;
      const conf = path.join(caseDir, 'rsyslog.conf');
      fs.writeFileSync(conf, `global(workDirectory="${caseDir}")\nmodule(load="imudp")\ninput(type="imudp" address="127.0.0.1" port="${INPUT_PORT}")\n*.* ${action}\n`);
      const proc = new Lines(
        net.spawn('devices', [bins.rsyslogd, '-n', '-f', conf, '-i', path.join(caseDir, 'rsyslogd.pid'), '-M', bins.rsyslogModules], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      return { proc, stop: () => proc.stop() };
    }
    const dest = s.documented
      ? syslogNgDestination(record, SYSLOG_PORT)
      : `destination d_failover {\n  network("${record}" port(${SYSLOG_PORT}) transport("${s.protocol}"));\n};`;
    const conf = path.join(caseDir, 'syslog-ng.conf');
    const ctl = path.join(caseDir, 'syslog-ng.ctl');
    fs.writeFileSync(
      conf,
      `@version: 3.38\noptions { stats-freq(0); };\nsource s_gen { network(transport("udp") ip("127.0.0.1") port(${INPUT_PORT}) flags(no-parse)); };\n${dest}\nlog { source(s_gen); destination(d_failover); };\n`,
    );
    const env = { ...process.env, LD_LIBRARY_PATH: bins.syslogNgLib, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
    const proc = new Lines(
      net.spawn(
        'devices',
        [bins.syslogNg, '-F', '--no-caps', '-f', conf, '-R', path.join(caseDir, 'syslog-ng.persist'), '-p', path.join(caseDir, 'syslog-ng.pid'), '-c', ctl, `--module-path=${bins.syslogNgModules}`],
        { stdio: ['ignore', 'pipe', 'pipe'], env },
      ),
    );
    // the documented configuration reloads every SYSLOG_NG_RELOAD_S (an operator's systemd timer)
    let timer: NodeJS.Timeout | null = null;
    if (s.documented) {
      timer = setInterval(() => {
        void net.exec('devices', ['env', `LD_LIBRARY_PATH=${bins.syslogNgLib}`, bins.syslogNgCtl, 'reload', '-c', ctl], { timeoutMs: 5_000 });
      }, SYSLOG_NG_RELOAD_S * 1000);
    }
    return {
      proc,
      stop: async () => {
        if (timer) clearInterval(timer);
        await proc.stop();
      },
    };
  };

  const runCase: SendersWorld['runCase'] = async (s, kind, o) => {
    const log = o.log ?? (() => undefined);
    const caseDir = fs.mkdtempSync(path.join(dir, 'case-'));
    await net.heal();
    await setRecord(net.addr.site1, o.ttlS);
    await sysctls(s.documented ? SENDER_SYSCTLS : KERNEL_SYSCTLS);
    const started: Array<() => Promise<void>> = [];
    const stopAll = async () => {
      for (const f of started.splice(0).reverse()) await f().catch(() => undefined);
    };
    try {
      const u = await startUnbound(caseDir);
      started.push(() => u.stop());
      const rx1 = await startReceiver('site1', senderPort(s));
      started.push(() => rx1.stop());
      const rx2 = await startReceiver('site2', senderPort(s));
      started.push(() => rx2.stop());
      const sender = startSender(s, caseDir);
      started.push(() => sender.stop());
      // follow-record beside the sender: its command prints `changed`; the test restarts (busybox)
      // or reloads (inetutils) the sender on each, one at a time
      let hookRuns = 0;
      const restartStarts: number[] = [];
      if (s.followHook) {
        const script = path.join(caseDir, 'follow-record');
        fs.writeFileSync(script, followRecordScript(), { mode: 0o755 });
        let chain = Promise.resolve();
        const onChange = () => {
          hookRuns++;
          chain = chain.then(async () => {
            restartStarts.push(Date.now());
            if (sender.restart) await sender.restart();
            else sender.reload?.();
          });
        };
        const hook = new Lines(
          net.spawn('devices', ['sh', script, record, String(FOLLOW_RECORD_INTERVAL_S), 'echo', 'changed'], { stdio: ['ignore', 'pipe', 'inherit'] }),
          (l) => l === 'changed' && onChange(),
        );
        started.push(async () => {
          await hook.stop();
          await chain;
        });
      }
      await sleep(1_000);
      const genArgv = sender.input
        ? [PYTHON, GENERATOR_UNIX, '--socket', sender.input]
        : [process.execPath, GENERATOR, '--port', String(INPUT_PORT)];
      const gen = new Lines(net.spawn('devices', [...genArgv, '--interval-ms', String(LINE_INTERVAL_MS), '--count', '2000'], { stdio: ['ignore', 'pipe', 'inherit'] }));
      started.push(() => gen.stop());
      const seqLine = (l: string) => /\bseq=\d+/.test(l);
      await rx1.until(seqLine, 15_000, `${s.name}: a line at site 1 before the move`).catch((e: Error) => {
        throw new Error(`${e.message}; the sender's stderr: ${sender.proc.stderr.trim() || '(none)'}`);
      });
      // steady state at site 1; the documented rows longer, to measure what they cost
      const tSteady = Date.now();
      await sleep(o.measureCost ? STEADY_COST_MS : 2_000);
      let tDead: number | null = null;
      if (kind === 'dead') {
        await net.drop('devices', 'site1');
        await net.drop('site1', 'devices');
        await rx1.stop('SIGKILL');
        tDead = Date.now();
        await sleep(5_000);
      }
      await setRecord(net.addr.site2, o.ttlS);
      const tMove = Date.now();
      const tSteadyEnd = tDead ?? tMove;
      if (kind === 'alive') await rx1.stop('SIGTERM');
      log(`${s.name} / ${kind}: record moved`);
      let followed = true;
      await rx2.until(seqLine, o.capS * 1000, 'first line at site 2').catch(() => (followed = false));
      await sleep(followed ? 2_000 : 0);
      await gen.stop();
      // drain: what the sender still holds (queues, retries) may yet arrive
      await sleep(followed ? 3_000 : 1_000);
      await stopAll();

      const sentAt = new Map<number, number>();
      for (const l of gen.lines) {
        const [a, b] = l.split(' ').map(Number);
        if (Number.isFinite(a) && Number.isFinite(b)) sentAt.set(a, b);
      }
      const got1 = parseReceived(rx1.lines);
      const got2 = parseReceived(rx2.lines);
      const first2 = Math.min(...[...got2.values()].filter((t) => t >= tMove), Infinity);
      const follow = first2 === Infinity ? null : (first2 - tMove) / 1000;
      let lost = 0;
      // a restart's loss: lines sent from its stop until the first line that reached a site after it
      const arrivals = [...got1.values(), ...got2.values()].sort((a, b) => a - b);
      const restartWindows = restartStarts.map((a) => [a, arrivals.find((t) => t >= a) ?? Infinity] as const);
      let lostInRestart = 0;
      for (const [seq, t] of sentAt) {
        if (got1.has(seq) || got2.has(seq)) continue;
        lost++;
        if (restartWindows.some(([a, b]) => t >= a && t < b)) lostInRestart++;
      }
      const toInactive = [...got1.values()].filter((t) => t > tMove).length;
      const budget = tDead === null ? 0 : [...sentAt.values()].filter((t) => t >= tDead! && t < tMove).length;
      const steadyMin = (tSteadyEnd - tSteady) / 60_000;
      const accepts = rx1.lines.filter((l) => / accept /.test(l)).map((l) => Number(l.split(' ')[0])).filter((t) => t >= tSteady && t < tSteadyEnd).length;
      const ulog = fs.existsSync(path.join(caseDir, 'unbound.log')) ? fs.readFileSync(path.join(caseDir, 'unbound.log'), 'utf8') : '';
      const queries = [...ulog.matchAll(/^\[(\d+)\] .* info: 127\.0\.0\.1 (\S+) /gm)]
        .filter((m) => m[2] === `${record}.` && Number(m[1]) * 1000 >= tSteady && Number(m[1]) * 1000 < tSteadyEnd).length;
      const failures: string[] = [];
      if (s.documented) {
        if (follow === null || follow > o.ttlS + 5) failures.push(`first line at the new site ${follow === null ? `not within ${o.capS} s` : `${follow.toFixed(1)} s`} after the move (target <= record_ttl + 5 = ${o.ttlS + 5} s)`);
        if (s.protocol === 'tcp' && lost > budget) failures.push(`${lost} lines lost (target <= ${budget}: those sent to the dead site before the move)`);
        if (toInactive > 0) failures.push(`${toInactive} lines reached the old site after the move (target 0)`);
      }
      return {
        sender: s.name,
        kind: s.kind,
        protocol: s.protocol,
        documented: s.documented,
        case: kind,
        record_ttl_s: o.ttlS,
        follow_s: follow === null ? null : Math.round(follow * 10) / 10,
        cap_s: o.capS,
        sent: sentAt.size,
        lines_lost: lost,
        lines_to_inactive: toInactive,
        sent_to_dead_before_move: budget,
        connections_per_min: o.measureCost ? Math.round(accepts / steadyMin) : null,
        resolver_queries_per_min: o.measureCost ? Math.round(queries / steadyMin) : null,
        hook_runs: s.followHook ? hookRuns : null,
        lost_in_restart: s.followHook ? lostInRestart : null,
        lost_judged: s.protocol === 'tcp',
        pass: s.documented ? failures.length === 0 : null,
        failures,
      };
    } finally {
      await stopAll();
      await net.heal();
    }
  };

  return { net, dns: srv, runCase, destroy };
}
