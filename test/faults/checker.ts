/**
 * The checker of the fault world: samples, from outside, at 10 Hz
 *   - the failover record at the witness (record-probe.mjs inside the WAN namespace, whose own
 *     traffic the link faults do not touch),
 *   - each agent's phase and whether it holds a valid lease (`active`), over its control socket
 *     (the host reaches it through the container's root; a paused or dead agent answers nothing),
 *   - whether each collector runs (its unit's cgroup has a process),
 * and keeps the timeline. The figures of a case are computed by ./analyze.ts from that timeline,
 * the devices' scrape log and the VictoriaMetrics data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { SiteRole } from './sites.js';
import type { AgentSample, Sample } from './analyze.js';

const PROBE = fileURLToPath(new URL('./record-probe.mjs', import.meta.url));
const PERIOD_MS = 100;

export interface Watched {
  role: SiteRole;
  /** control socket path as the host reaches it */
  socket: () => string | null;
  /** the collector unit's cgroup.procs as the host reaches it */
  collectorCgroup: () => string | null;
}

/** One status request on a control socket; null when nothing answers within timeoutMs. */
export function askStatus(socketPath: string, timeoutMs: number): Promise<AgentSample> {
  return new Promise((resolve) => {
    const none: AgentSample = { answered: false, active: false, phase: null };
    const s = net.createConnection({ path: socketPath });
    let buf = '';
    const timer = setTimeout(() => finish(none), timeoutMs);
    function finish(v: AgentSample): void {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    }
    s.on('connect', () => s.write('{"cmd":"status"}\n'));
    s.on('data', (c) => {
      buf += String(c);
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const r = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: { active?: boolean; phase?: string } };
        finish(r.ok && r.result ? { answered: true, active: r.result.active === true, phase: r.result.phase ?? null } : none);
      } catch {
        finish(none);
      }
    });
    s.on('error', () => finish(none));
  });
}

function collectorRuns(cgroupProcs: string | null): boolean {
  if (!cgroupProcs) return false;
  try {
    return fs.readFileSync(cgroupProcs, 'utf8').trim() !== '';
  } catch {
    return false; // no cgroup: the unit is not running (or the site is gone)
  }
}

export class Checker {
  readonly samples: Sample[] = [];
  private probe: ChildProcess | null = null;
  private record: string | null = null;
  private leaseSeq: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private waiters: { pred: (s: Sample) => boolean; resolve: (s: Sample) => void }[] = [];

  constructor(
    private readonly wanNetns: string,
    private readonly witness: { address: string; port: number; name: string },
    private readonly watched: Watched[],
  ) {}

  /** Starts the record probe (awaits its `ready`) and the 10 Hz sampling. */
  async start(): Promise<void> {
    const p = spawn('ip', ['netns', 'exec', this.wanNetns, process.execPath, PROBE, '--server', this.witness.address, '--port', String(this.witness.port), '--name', this.witness.name], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.probe = p;
    const lines = readline.createInterface({ input: p.stdout! });
    await new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`record-probe exited (${code}) before ready`));
      p.once('exit', onExit);
      lines.on('line', (l) => {
        if (l === 'ready') {
          p.off('exit', onExit);
          resolve();
          return;
        }
        const [, value, seq] = l.split(' ');
        this.record = value && value !== '-' ? value : null;
        this.leaseSeq = seq && seq !== '-' ? Number(seq) : null;
      });
    });
    this.timer = setInterval(() => void this.tick(), PERIOD_MS);
  }

  private async tick(): Promise<void> {
    if (this.busy) return; // a slow socket never stacks samples up
    this.busy = true;
    try {
      const wallMs = Date.now();
      const agents = {} as Record<SiteRole, AgentSample>;
      const collectors = {} as Record<SiteRole, boolean>;
      await Promise.all(
        this.watched.map(async (w) => {
          const sock = w.socket();
          agents[w.role] = sock ? await askStatus(sock, PERIOD_MS * 0.8) : { answered: false, active: false, phase: null };
          collectors[w.role] = collectorRuns(w.collectorCgroup());
        }),
      );
      const s: Sample = { wallMs, record: this.record, leaseSeq: this.leaseSeq, agents, collectors };
      this.samples.push(s);
      for (const w of [...this.waiters]) {
        if (w.pred(s)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(s);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** The first sample (from now on) that satisfies pred; rejects after timeoutMs with `what`. */
  until(pred: (s: Sample) => boolean, timeoutMs: number, what: string): Promise<Sample> {
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (s: Sample): void => {
          clearTimeout(t);
          resolve(s);
        },
      };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const last = this.samples[this.samples.length - 1];
        reject(new Error(`checker: not within ${timeoutMs} ms: ${what}; last sample ${JSON.stringify(last)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Samples from wallMs on (the case's window). */
  since(wallMs: number): Sample[] {
    return this.samples.filter((s) => s.wallMs >= wallMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const p = this.probe;
    this.probe = null;
    if (p && p.exitCode === null && p.signalCode === null && p.pid) {
      const gone = new Promise((r) => p.once('exit', r));
      process.kill(p.pid, 'SIGTERM');
      await gone;
    }
  }
}
