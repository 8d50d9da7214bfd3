/**
 * The fault suite's test world of separate networks (issue 13): network namespaces the suite
 * creates and removes itself, and per-link, per-direction faults applied in the WAN namespace.
 *
 * Usage:
 *   const world = await createWorld();               // namespaces fa<pid>-wan, fa<pid>-site1, ...
 *   try {
 *     await world.exec('site1', ['ping', '-c1', world.addr.witness]);
 *     // systemd-nspawn --network-namespace-path=${world.nsPath.site1} ...
 *     await world.drop('site1', 'witness');           // site1 -> witness packets dropped
 *     await world.undrop('site1', 'witness');
 *     await world.impair('site1', 'witness', { delayMs: 100, jitterMs: 25, lossPct: 20 });
 *     const stats = await world.unimpair('site1', 'witness');   // the delayer's counts
 *   } finally {
 *     await world.destroy();                          // idempotent; no namespace, no process left
 *   }
 *
 * Topology (decided): `<prefix>wan` ROUTES, it does not bridge. Frames crossing a Linux bridge skip
 * the IPv4 netfilter hooks unless br_netfilter is loaded (a host-wide switch this suite must not
 * flip), and on a router each direction of each link is simply "in on veth A, out on veth B" in
 * the FORWARD hook. Each leaf (site1, site2, witness, devices) has one veth to the WAN namespace:
 * `wan0` in the leaf, `v-<node>` in the WAN namespace, its own /24 of 198.18.0.0/15 (site1
 * 198.18.1.0/24, site2 .2, witness .3, devices .4; .1 on the WAN side, .2 in the leaf), a default
 * route via the WAN side. ip_forward=1 in the WAN namespace only; lo up everywhere; IPv6 off (no
 * link-local addresses either). Nothing links to the host's namespace, so nothing is routed
 * anywhere else.
 *
 * Faults, all in the WAN namespace's FORWARD path:
 * - drop: an nftables table of the world's own (`inet faults`, forward hook at priority -10, so
 *   a dropped packet never reaches a delayer) holding a set of `iifname . oifname` pairs.
 * - impair (delay, jitter, loss): this kernel has no sch_netem and no nft `queue` expression
 *   (CONFIG_NFT_QUEUE is not set), but has the xt NFQUEUE target: `iptables -A FORWARD -i v-A -o
 *   v-B -j NFQUEUE --queue-num N --queue-bypass` and one test/faults/nfqueue-delayer.py per
 *   impaired direction (its own queue number and seeded RNG), running inside the WAN namespace.
 *   A changed impairment is sent to the running delayer (`set`, acknowledged), no restart.
 *   Real netem is detected (`netem` on the World) but not used: per-pair netem needs a prio qdisc
 *   plus fwmark filters on each egress veth, and one mechanism everywhere keeps the figures
 *   comparable between machines.
 *
 * Every process the world starts (delayers, `world.spawn`) is stopped by PID; destroy() also
 * SIGKILLs, by PID, anything still inside the world's namespaces (`ip netns pids`), then deletes
 * them. createWorld() first removes namespaces of the same prefix (a crashed earlier run) and, by
 * default, worlds `fa<pid>-*` whose pid is dead.
 */
import { spawn as spawnProcess, execFile, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, type ExecResult } from '../fixtures/nspawn.js';

export type Node = 'site1' | 'site2' | 'witness' | 'devices';
export const NODES: readonly Node[] = ['site1', 'site2', 'witness', 'devices'];
export type NsName = Node | 'wan';

/** One direction's impairment; the delayer holds each packet delayMs ± uniform jitterMs. */
export interface Impairment {
  delayMs: number;
  jitterMs?: number;
  lossPct?: number;
  /** RNG seed of this direction's delayer; default fixed per (from, to), so runs repeat */
  seed?: number;
}

/** A delayer's counts (test/faults/nfqueue-delayer.py `stats`). */
export interface DelayerStats {
  /** packets seen */
  packets: number;
  /** accepted after their delay */
  accepted: number;
  /** dropped as the loss share */
  dropped: number;
  /** accepted early because the delayer stopped while holding them */
  flushed: number;
  held: number;
  maxHeld: number;
  /** dropped by the kernel because the queue was full (null: unknown) */
  kernelDropped: number | null;
  enobufs: number;
}

export interface WorldOptions {
  /** namespace name prefix ([A-Za-z0-9_-], at most 40); default `fa<pid>-` */
  prefix?: string;
  /** also remove worlds `fa<pid>-*` whose pid is dead (default true) */
  removeOrphans?: boolean;
}

export interface World {
  prefix: string;
  /** namespace names (`ip netns` names) */
  ns: Record<NsName, string>;
  /** /run/netns/<name>, for `systemd-nspawn --network-namespace-path=` */
  nsPath: Record<NsName, string>;
  /** each leaf's address (198.18.N.2) */
  addr: Record<Node, string>;
  /** each leaf's gateway, the WAN side of its veth (198.18.N.1) */
  gateway: Record<Node, string>;
  /** the WAN-side veth of each leaf (`v-<node>`); inside each leaf the interface is `wan0` */
  wanIf: Record<Node, string>;
  /** true if this kernel has sch_netem (informational: impair always uses the delayer) */
  netem: boolean;
  /** run argv inside a namespace; never rejects on a non-zero exit (check `code`) */
  exec(where: NsName, argv: string[], opts?: { timeoutMs?: number; input?: string }): Promise<ExecResult>;
  /** start a long-running process inside a namespace; destroy() stops it by PID if still running */
  spawn(where: NsName, argv: string[], opts?: SpawnOptions): ChildProcess;
  /** drop every packet from -> to (one direction); idempotent */
  drop(from: Node, to: Node): Promise<void>;
  /** undo drop(from, to); idempotent */
  undrop(from: Node, to: Node): Promise<void>;
  /** drop both directions between node and every other leaf */
  isolate(node: Node): Promise<void>;
  /** delay/jitter/lose from -> to; a second call changes the running delayer's parameters */
  impair(from: Node, to: Node, imp: Impairment): Promise<void>;
  /** stop impairing from -> to (held packets are released); the delayer's final counts, null if none */
  unimpair(from: Node, to: Node): Promise<DelayerStats | null>;
  /** the running delayer's counts, null if from -> to is not impaired */
  delayerStats(from: Node, to: Node): Promise<DelayerStats | null>;
  /** remove every drop and impairment; the final counts per `from>to` */
  heal(): Promise<Record<string, DelayerStats>>;
  /** the faults in force */
  faults(): { dropped: Array<[Node, Node]>; impaired: Array<{ from: Node; to: Node; imp: Impairment; pid: number }> };
  /** PIDs of the processes the world started and that still run */
  pids(): number[];
  /** stop everything started (by PID), remove the namespaces. Idempotent. */
  destroy(): Promise<void>;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
// FAULTS_DELAYER: another delayer script, only to plant a fault in a copy and see the check fail.
const DELAYER = process.env.FAULTS_DELAYER ?? path.join(HERE, 'nfqueue-delayer.py');
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const ENV = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin:/sbin:/bin`, LANG: 'C' };
const SUBNET: Record<Node, number> = { site1: 1, site2: 2, witness: 3, devices: 4 };
const NS_KINDS: readonly NsName[] = ['wan', ...NODES];
const ORPHAN = /^fa(\d+)-(wan|site1|site2|witness|devices)$/;

function run(file: string, args: string[], timeoutMs = 30_000, input?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20, env: ENV, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err == null ? 0 : typeof err.code === 'number' ? err.code : 127;
        resolve({ code, stdout, stderr: stderr + (err && typeof err.code !== 'number' ? err.message : '') });
      },
    );
    // a command that exits without reading its stdin must not crash the caller (EPIPE)
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** run, and reject with the command and its stderr on a non-zero exit */
async function must(file: string, args: string[], input?: string): Promise<string> {
  const r = await run(file, args, 30_000, input);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

function netnsList(): string[] {
  try {
    return fs.readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/** Not running: gone, or a zombie (dead; its parent has not reaped it yet). */
function gone(pid: number): boolean {
  if (!alive(pid)) return true;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Wait (bounded) for a process to be gone; SIGKILL it after graceMs. */
async function stopPid(pid: number, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  const signalIt = (s: NodeJS.Signals) => {
    try {
      process.kill(pid, s);
    } catch {
      /* already gone */
    }
  };
  signalIt(signal);
  for (let i = 0; i < Math.ceil(graceMs / 20) && !gone(pid); i++) await new Promise((r) => setTimeout(r, 20));
  if (gone(pid)) return;
  signalIt('SIGKILL');
  for (let i = 0; i < 250 && !gone(pid); i++) await new Promise((r) => setTimeout(r, 20));
  if (!gone(pid)) throw new Error(`pid ${pid} survived SIGKILL for 5 s`);
}

/** A child that has exited is a zombie until Node reaps it; `alive` still sees it. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await stopPid(child.pid, signal, graceMs).catch(() => undefined);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
}

/**
 * Remove the namespaces `<prefix>wan`, `<prefix>site1`, ...: SIGKILL (by PID) every process still
 * inside, then `ip netns del`. For a crashed run's leftovers too. Idempotent.
 */
export async function removeWorld(prefix: string): Promise<void> {
  const present = new Set(netnsList());
  for (const kind of NS_KINDS) {
    const name = prefix + kind;
    if (!present.has(name)) continue;
    const pids = (await run('ip', ['netns', 'pids', name])).stdout.split(/\s+/).filter(Boolean).map(Number);
    await Promise.all(pids.map((pid) => stopPid(pid, 'SIGKILL', 0)));
    await must('ip', ['netns', 'del', name]);
  }
}

/** Remove worlds named `fa<pid>-*` whose pid no longer runs; the prefixes removed. */
export async function removeOrphanWorlds(): Promise<string[]> {
  const prefixes = new Set<string>();
  for (const name of netnsList()) {
    const m = ORPHAN.exec(name);
    if (m && !alive(Number(m[1]))) prefixes.add(`fa${m[1]}-`);
  }
  for (const p of prefixes) await removeWorld(p);
  return [...prefixes];
}

/** Line-oriented conversation with one delayer process. */
class Delayer {
  private readonly lines: string[] = [];
  private readonly waiters: Array<{ pred: (l: string) => boolean; done: (l: string | Error) => void }> = [];
  private stderr = '';
  private exitError: Error | null = null;
  readonly exited: Promise<void>;

  constructor(
    readonly child: ChildProcess,
    readonly queue: number,
  ) {
    let partial = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const l of parts) this.deliver(l);
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (this.stderr.length < 8192) this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitError = new Error(`nfqueue-delayer (queue ${queue}) exited ${code ?? signal}: ${this.stderr.trim()}`);
        for (const w of this.waiters.splice(0)) w.done(this.exitError);
        resolve();
      });
    });
    // A write after exit must not crash the test process.
    child.stdin?.on('error', () => undefined);
  }

  private deliver(line: string): void {
    const i = this.waiters.findIndex((w) => w.pred(line));
    if (i >= 0) this.waiters.splice(i, 1)[0].done(line);
    else this.lines.push(line);
  }

  /** the next line starting with one of `words` (bounded by timeoutMs) */
  next(words: string[], timeoutMs = 10_000): Promise<string> {
    const pred = (l: string) => words.some((w) => l === w || l.startsWith(`${w} `));
    const i = this.lines.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.lines.splice(i, 1)[0]);
    if (this.exitError) return Promise.reject(this.exitError);
    return new Promise((resolve, reject) => {
      const waiter = {
        pred,
        done: (l: string | Error) => {
          clearTimeout(timer);
          if (l instanceof Error) reject(l);
          else resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`nfqueue-delayer (queue ${this.queue}): no ${words.join('/')} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async ask(command: string, words: string[]): Promise<string> {
    this.child.stdin?.write(`${command}\n`);
    const line = await this.next([...words, 'error']);
    if (line.startsWith('error')) throw new Error(`nfqueue-delayer (queue ${this.queue}): ${command}: ${line}`);
    return line;
  }

  /** quit (held packets are accepted at once), the final counts; SIGKILL if it does not exit in 5 s */
  async stop(): Promise<DelayerStats | null> {
    if (this.exitError) return null;
    this.child.stdin?.end('quit\n');
    const bye = await this.next(['bye'], 5_000).catch(() => null);
    await stopChild(this.child, 'SIGTERM', 5_000);
    return bye === null ? null : parseStats(bye);
  }
}

function parseStats(line: string): DelayerStats {
  const s = JSON.parse(line.slice(line.indexOf(' ') + 1)) as Record<string, number | null>;
  const n = (k: string) => Number(s[k] ?? 0);
  return {
    packets: n('packets'),
    accepted: n('accepted'),
    dropped: n('dropped'),
    flushed: n('flushed'),
    held: n('held'),
    maxHeld: n('max_held'),
    kernelDropped: s.kernel_dropped ?? null,
    enobufs: n('enobufs'),
  };
}

const pairKey = (from: Node, to: Node) => `${from}>${to}`;

function checkPair(from: Node, to: Node): void {
  if (!NODES.includes(from) || !NODES.includes(to) || from === to) {
    throw new Error(`faults: bad link ${String(from)} -> ${String(to)} (two different nodes of ${NODES.join(', ')})`);
  }
}

function checkImpairment(imp: Impairment): void {
  const fields: Array<[string, number | undefined, number]> = [
    ['delayMs', imp.delayMs, Infinity],
    ['jitterMs', imp.jitterMs, Infinity],
    ['lossPct', imp.lossPct, 100],
  ];
  for (const [k, v, max] of fields) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0 && v <= max)) {
      throw new Error(`faults: impairment ${k} must be a number in [0, ${max}], got ${String(v)}`);
    }
  }
}

export async function createWorld(opts: WorldOptions = {}): Promise<World> {
  const prefix = opts.prefix ?? `fa${process.pid}-`;
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(prefix)) throw new Error(`faults: bad namespace prefix ${JSON.stringify(prefix)}`);
  if (opts.removeOrphans ?? true) await removeOrphanWorlds();
  await removeWorld(prefix);

  const ns = Object.fromEntries(NS_KINDS.map((k) => [k, prefix + k])) as Record<NsName, string>;
  const nsPath = Object.fromEntries(NS_KINDS.map((k) => [k, `/run/netns/${ns[k]}`])) as Record<NsName, string>;
  const addr = Object.fromEntries(NODES.map((n) => [n, `198.18.${SUBNET[n]}.2`])) as Record<Node, string>;
  const gateway = Object.fromEntries(NODES.map((n) => [n, `198.18.${SUBNET[n]}.1`])) as Record<Node, string>;
  const wanIf = Object.fromEntries(NODES.map((n) => [n, `v-${n}`])) as Record<Node, string>;

  const children = new Set<ChildProcess>();
  const delayers = new Map<string, { from: Node; to: Node; imp: Impairment; d: Delayer }>();
  const dropped = new Map<string, [Node, Node]>();
  let nextQueue = 1;
  let destroyed = false;
  // fault operations run one at a time (iptables and nft rule edits, delayer lifecycles)
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  const exec = (where: NsName, argv: string[], o: { timeoutMs?: number; input?: string } = {}) =>
    run('ip', ['netns', 'exec', ns[where], ...argv], o.timeoutMs, o.input);
  const inNs = (where: NsName, argv: string[], input?: string) =>
    must('ip', ['netns', 'exec', ns[where], ...argv], input);
  const ipIn = (where: NsName, args: string[]) => must('ip', ['-n', ns[where], ...args]);

  const iptables = (op: '-A' | '-D', from: Node, to: Node, queue: number) =>
    inNs('wan', [
      'iptables', '-w', '10', op, 'FORWARD', '-i', wanIf[from], '-o', wanIf[to],
      '-j', 'NFQUEUE', '--queue-num', String(queue), '--queue-bypass',
    ]);

  const world: World = {
    prefix,
    ns,
    nsPath,
    addr,
    gateway,
    wanIf,
    netem: false,
    exec,
    spawn(where, argv, o = {}) {
      if (destroyed) throw new Error('faults: world destroyed');
      const child = spawnProcess('ip', ['netns', 'exec', ns[where], ...argv], { env: ENV, ...o });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    drop: (from, to) =>
      serial(async () => {
        checkPair(from, to);
        if (dropped.has(pairKey(from, to))) return;
        await inNs('wan', ['nft', `add element inet faults cut { "${wanIf[from]}" . "${wanIf[to]}" }`]);
        dropped.set(pairKey(from, to), [from, to]);
      }),
    undrop: (from, to) =>
      serial(async () => {
        checkPair(from, to);
        if (!dropped.has(pairKey(from, to))) return;
        await inNs('wan', ['nft', `delete element inet faults cut { "${wanIf[from]}" . "${wanIf[to]}" }`]);
        dropped.delete(pairKey(from, to));
      }),
    async isolate(node) {
      for (const other of NODES) {
        if (other === node) continue;
        await world.drop(node, other);
        await world.drop(other, node);
      }
    },
    impair: (from, to, imp) =>
      serial(async () => {
        checkPair(from, to);
        checkImpairment(imp);
        const params = { delay_ms: imp.delayMs, jitter_ms: imp.jitterMs ?? 0, loss_pct: imp.lossPct ?? 0 };
        const running = delayers.get(pairKey(from, to));
        if (running) {
          await running.d.ask(`set ${JSON.stringify(params)}`, ['ok']);
          running.imp = { ...imp, seed: running.imp.seed };
          return;
        }
        if (destroyed) throw new Error('faults: world destroyed');
        const queue = nextQueue++;
        const seed = imp.seed ?? 1000 + 10 * NODES.indexOf(from) + NODES.indexOf(to);
        // `ip netns exec` execs the command itself: the child's PID is the delayer's.
        const child = spawnProcess(
          'ip',
          [
            'netns', 'exec', ns.wan, PYTHON, DELAYER, '--queue', String(queue), '--seed', String(seed),
            '--delay-ms', String(params.delay_ms), '--jitter-ms', String(params.jitter_ms),
            '--loss-pct', String(params.loss_pct),
          ],
          { env: ENV, stdio: ['pipe', 'pipe', 'pipe'] },
        );
        const d = new Delayer(child, queue);
        try {
          await d.next(['ready']);
          await iptables('-A', from, to, queue);
        } catch (e) {
          await d.stop();
          throw e;
        }
        delayers.set(pairKey(from, to), { from, to, imp: { ...imp, seed }, d });
      }),
    unimpair: (from, to) =>
      serial(async () => {
        checkPair(from, to);
        const running = delayers.get(pairKey(from, to));
        if (!running) return null;
        delayers.delete(pairKey(from, to));
        await iptables('-D', from, to, running.d.queue);
        return running.d.stop();
      }),
    async delayerStats(from, to) {
      const running = delayers.get(pairKey(from, to));
      return running ? parseStats(await running.d.ask('stats', ['stats'])) : null;
    },
    async heal() {
      const out: Record<string, DelayerStats> = {};
      for (const [from, to] of [...dropped.values()]) await world.undrop(from, to);
      for (const { from, to } of [...delayers.values()]) {
        const s = await world.unimpair(from, to);
        if (s) out[pairKey(from, to)] = s;
      }
      return out;
    },
    faults: () => ({
      dropped: [...dropped.values()],
      impaired: [...delayers.values()].map(({ from, to, imp, d }) => ({ from, to, imp, pid: d.child.pid ?? -1 })),
    }),
    pids: () =>
      [...[...delayers.values()].map((x) => x.d.child), ...children]
        .filter((c) => c.exitCode === null && c.signalCode === null)
        .map((c) => c.pid ?? -1)
        .filter((p) => p > 0),
    destroy: () =>
      serial(async () => {
        destroyed = true;
        const stops = [...delayers.values()].map((x) => x.d.stop().catch(() => null));
        delayers.clear();
        dropped.clear();
        await Promise.all([...stops, ...[...children].map((c) => stopChild(c, 'SIGTERM', 3_000))]);
        await removeWorld(prefix);
      }),
  };

  try {
    for (const kind of NS_KINDS) {
      await must('ip', ['netns', 'add', ns[kind]]);
      // IPv6 off before any veth arrives: no link-local addresses, IPv4 from 198.18.0.0/15 only.
      await inNs(kind, ['sh', '-c', 'for k in all default; do echo 1 > /proc/sys/net/ipv6/conf/$k/disable_ipv6; done']);
      await ipIn(kind, ['link', 'set', 'lo', 'up']);
    }
    await inNs('wan', ['sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    for (const n of NODES) {
      await ipIn('wan', ['link', 'add', wanIf[n], 'type', 'veth', 'peer', 'name', 'wan0', 'netns', ns[n]]);
      await ipIn('wan', ['addr', 'add', `${gateway[n]}/24`, 'dev', wanIf[n]]);
      await ipIn('wan', ['link', 'set', wanIf[n], 'up']);
      await ipIn(n, ['addr', 'add', `${addr[n]}/24`, 'dev', 'wan0']);
      await ipIn(n, ['link', 'set', 'wan0', 'up']);
      await ipIn(n, ['route', 'add', 'default', 'via', gateway[n]]);
    }
    await inNs(
      'wan',
      ['nft', '-f', '-'],
      [
        'table inet faults {',
        '  set cut { type ifname . ifname; }',
        '  chain forward { type filter hook forward priority -10; policy accept;',
        '    iifname . oifname @cut drop',
        '  }',
        '}',
      ].join('\n'),
    );
    const probe = await exec('wan', ['tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
    world.netem = probe.code === 0;
    if (world.netem) await exec('wan', ['tc', 'qdisc', 'del', 'dev', 'lo', 'root']);
  } catch (e) {
    await world.destroy();
    throw e;
  }
  return world;
}

// ---------------------------------------------------------------------------------------------
// ping and the check of the delayer itself

export interface PingResult {
  sent: number;
  received: number;
  lossPct: number;
  /** round-trip times of the replies, ms, in arrival order */
  rttsMs: number[];
  medianMs: number | null;
  minMs: number | null;
  stdevMs: number | null;
}

const median = (xs: number[]) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** `ping -c count -i intervalS` from one leaf to another (waiting 1.5 s for the last replies). */
export async function ping(world: World, from: Node, to: Node, count: number, intervalS: number): Promise<PingResult> {
  const r = await world.exec(from, ['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1.5', world.addr[to]], {
    timeoutMs: 10_000 + count * intervalS * 1000 * 2,
  });
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  if (!summary) throw new Error(`ping ${from} -> ${to}: no summary (exit ${r.code}): ${r.stdout}${r.stderr}`);
  const rttsMs = [...r.stdout.matchAll(/icmp_seq=\d+ .*time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const sent = Number(summary[1]);
  const received = Number(summary[2]);
  const mean = rttsMs.reduce((a, b) => a + b, 0) / (rttsMs.length || 1);
  return {
    sent,
    received,
    lossPct: sent ? (100 * (sent - received)) / sent : 100,
    rttsMs,
    medianMs: median(rttsMs),
    minMs: rttsMs.length ? Math.min(...rttsMs) : null,
    stdevMs: rttsMs.length > 1 ? Math.sqrt(rttsMs.reduce((a, x) => a + (x - mean) ** 2, 0) / (rttsMs.length - 1)) : null,
  };
}

/** One stage of checkDelayer: the settings applied to both directions, the band, what was measured. */
export interface DelayerStage {
  name: 'baseline' | 'delay' | 'jitter' | 'loss' | 'healed';
  /** applied to site1 -> witness and witness -> site1 (none for baseline/healed) */
  each: Impairment | null;
  ping: PingResult;
  /** the delayers' final counts per direction */
  stats: Record<string, DelayerStats>;
  failures: string[];
}

export interface DelayerCheck {
  ok: boolean;
  failures: string[];
  stages: DelayerStage[];
}

const inBand = (what: string, v: number | null, lo: number, hi: number): string[] =>
  v !== null && v >= lo && v <= hi ? [] : [`${what} ${v === null ? 'none' : v.toFixed(2)} not in [${lo}, ${hi}]`];

/**
 * Ping site1 -> witness through the delayer, both directions impaired alike, and judge the round
 * trips against bands derived from the settings (delay 100 ms each way: median RTT in [195, 260];
 * 50 ± 20 ms: every RTT >= 59 and the spread of two uniform jitters, sd 16 ms, in [6, 30]; 20 %
 * loss each way: 1 - 0.8^2 = 36 % of 200 pings lost, band [22, 50]). The fault suite calls it
 * before its cases and reports the figures. Leaves no fault in force.
 */
export async function checkDelayer(world: World): Promise<DelayerCheck> {
  const stages: DelayerStage[] = [];
  const stage = async (
    name: DelayerStage['name'],
    each: Impairment | null,
    count: number,
    intervalS: number,
    judge: (p: PingResult) => string[],
  ) => {
    if (each) {
      await world.impair('site1', 'witness', each);
      await world.impair('witness', 'site1', each);
    }
    let p: PingResult;
    const stats: Record<string, DelayerStats> = {};
    try {
      p = await ping(world, 'site1', 'witness', count, intervalS);
    } finally {
      for (const [a, b] of [['site1', 'witness'], ['witness', 'site1']] as const) {
        const s = await world.unimpair(a, b);
        if (s) stats[pairKey(a, b)] = s;
      }
    }
    stages.push({ name, each, ping: p, stats, failures: judge(p).map((f) => `${name}: ${f}`) });
  };
  await stage('baseline', null, 20, 0.02, (p) => [...inBand('loss %', p.lossPct, 0, 0), ...inBand('median RTT ms', p.medianMs, 0, 20)]);
  await stage('delay', { delayMs: 100 }, 40, 0.05, (p) => [
    ...inBand('loss %', p.lossPct, 0, 0),
    ...inBand('median RTT ms', p.medianMs, 195, 260),
  ]);
  await stage('jitter', { delayMs: 50, jitterMs: 20 }, 60, 0.05, (p) => [
    ...inBand('loss %', p.lossPct, 0, 0),
    ...inBand('min RTT ms', p.minMs, 59, 200),
    ...inBand('median RTT ms', p.medianMs, 85, 140),
    ...inBand('RTT sd ms', p.stdevMs, 6, 30),
  ]);
  await stage('loss', { delayMs: 0, lossPct: 20 }, 200, 0.01, (p) => [...inBand('loss %', p.lossPct, 22, 50)]);
  await stage('healed', null, 20, 0.02, (p) => [...inBand('loss %', p.lossPct, 0, 0), ...inBand('median RTT ms', p.medianMs, 0, 20)]);
  const failures = stages.flatMap((s) => s.failures);
  return { ok: failures.length === 0, failures, stages };
}
