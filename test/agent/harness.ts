/**
 * Runs real agent processes (the built dist/agent.js) for integration tests,
 * plus a controllable stand-in for the inter-site path to the primary's
 * /healthz. Everything listens on 127.0.0.0/8 only; every wait is bounded.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentStatus } from '../../src/control/protocol.js';
import { DnsClient } from '../../src/dns/client.js';
import { Witness, type Snapshot } from '../../src/lease/witness.js';
import type { DnsServerFixture } from '../fixtures/dns-servers.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const AGENT = path.join(ROOT, 'dist/agent.js');
export const CTL = path.join(ROOT, 'dist/failoverctl.js');

export function ensureBuilt(): void {
  if (!fs.existsSync(AGENT) || !fs.existsSync(CTL)) execFileSync('node', ['scripts/build.mjs'], { cwd: ROOT });
}

/** Runs the built failoverctl against `agent`'s config and socket; never rejects. */
export function runCtl(agent: AgentProcess, args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [CTL, '--config', agent.configFile, ...args], { env: { ...process.env, RUNTIME_DIRECTORY: agent.runtimeDir }, timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

export interface LogLine {
  t: number; // performance.now() when read
  line: string;
}

export class AgentProcess {
  proc!: ChildProcess;
  readonly lines: LogLine[] = [];
  private waiters: { re: RegExp; from: number; resolve: (l: LogLine) => void }[] = [];
  exitCode: number | null = null;
  private exited!: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly configFile: string,
    readonly runtimeDir: string,
  ) {}

  start(): this {
    this.proc = spawn('node', [AGENT, '--config', this.configFile], {
      env: { ...process.env, RUNTIME_DIRECTORY: this.runtimeDir, STATE_DIRECTORY: `${this.runtimeDir}/state`, JOURNAL_STREAM: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const l = { t: performance.now(), line: buf.slice(0, nl) };
        buf = buf.slice(nl + 1);
        this.lines.push(l);
        for (const w of [...this.waiters]) {
          if (this.lines.indexOf(l) >= w.from && w.re.test(l.line)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(l);
          }
        }
      }
    };
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve((this.exitCode = code))));
    return this;
  }

  /** Resolves with the first log line (from index `from`) matching `re`. */
  waitLog(re: RegExp, timeoutMs: number, from = 0): Promise<LogLine> {
    const seen = this.lines.slice(from).find((l) => re.test(l.line));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { re, from, resolve: (l: LogLine) => (clearTimeout(timer), resolve(l)) };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: no log line matching ${re} within ${timeoutMs} ms; last lines:\n${this.tail()}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  tail(n = 15): string {
    return this.lines
      .slice(-n)
      .map((l) => l.line)
      .join('\n');
  }

  signal(sig: NodeJS.Signals): void {
    if (this.proc.pid) process.kill(this.proc.pid, sig);
  }

  /** Waits for exit (bounded). */
  async exit(timeoutMs = 10_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    if (this.exitCode !== null || !this.proc?.pid) return;
    try {
      this.signal('SIGCONT');
      this.signal('SIGTERM');
      await this.exit(5000);
    } catch {
      this.signal('SIGKILL');
      await this.exit(5000);
    }
  }
}

/** What a pair test sets of one agent's configuration; everything else is the schema's default. */
export interface PairConfig {
  role: 'primary' | 'dr';
  sites: { primary: string; dr: string };
  /** The [dns] table (dnsTable, gssDnsTable). */
  dns: string;
  lease: { ttl: string; renew: string; skew: string };
  /** The DR's health check of the primary's /healthz. */
  health: { target: string; interval: string; timeout: string; failures: number };
  /** host:port of /healthz, /metrics */
  listen: string;
  /** further tables, appended */
  extra?: string;
}

/** An agent's configuration file for the pair tests: no collector, no VM sync. */
export function pairConfig(c: PairConfig): string {
  return `role = "${c.role}"
[sites]
primary = "${c.sites.primary}"
dr = "${c.sites.dr}"
${c.dns}
[lease]
ttl = "${c.lease.ttl}"
renew_interval = "${c.lease.renew}"
max_skew = "${c.lease.skew}"
[health]
targets = ["${c.health.target}"]
interval = "${c.health.interval}"
timeout = "${c.health.timeout}"
failures = ${c.health.failures}
[collector]
control = "none"
[vmsync]
enabled = false
[http]
listen = "${c.listen}"
${c.extra ?? ''}`;
}

/** `failoverctl --json status` of a running agent. */
export async function agentStatus(agent: AgentProcess): Promise<AgentStatus> {
  const r = await runCtl(agent, ['--json', 'status']);
  // Answered: 0 fine, or a verdict (2 DNS unreadable, 3 named but not active yet, 4 unhealthy).
  if (![0, 2, 3, 4].includes(r.code)) throw new Error(`${agent.name}: failoverctl status exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as AgentStatus;
}

/** Reads the witness directly, for assertions: signed with the fixture's key, or unsigned (a GSS-TSIG server knows no HMAC key). */
export function witnessOf(srv: DnsServerFixture, o: { unsigned?: boolean } = {}): Witness {
  const client = new DnsClient({
    server: { host: srv.host, port: srv.port },
    ...(o.unsigned ? {} : { key: { name: srv.key.name, algorithm: srv.key.algorithm, secret: Buffer.from(srv.key.secret, 'base64') } }),
    timeoutMs: 500,
    retries: 1,
  });
  return new Witness(client, { zone: srv.zone, record: srv.record, leaseName: srv.leaseName, ttlSeconds: 30 });
}

/** Polls the witness (every `everyMs`, bounded by `timeoutMs`) until `pred` holds. */
export async function waitWitness(w: Witness, pred: (s: Snapshot) => boolean, timeoutMs: number, everyMs = 25): Promise<{ snap: Snapshot; t: number }> {
  const deadline = performance.now() + timeoutMs;
  let last: Snapshot | undefined;
  while (performance.now() < deadline) {
    try {
      last = await w.read();
      if (pred(last)) return { snap: last, t: performance.now() };
    } catch {
      // DNS down in some scenarios: keep polling until the deadline.
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`witness condition not met within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

/**
 * The inter-site path to the primary's /healthz, under test control:
 * 'proxy' forwards to the primary, 'cut' drops connections (no answer),
 * 'pattern' answers from a cyclic list of status codes.
 */
export class HealthPath {
  mode: 'proxy' | 'cut' | 'pattern' = 'proxy';
  pattern: number[] = [];
  requests = 0;
  private i = 0;
  private server!: http.Server;
  port = 0;

  constructor(
    readonly host: string,
    private readonly upstream: () => string,
  ) {}

  async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.requests++;
      if (this.mode === 'cut') {
        req.socket.destroy();
        return;
      }
      if (this.mode === 'pattern') {
        res.statusCode = this.pattern[this.i++ % this.pattern.length]!;
        res.end();
        return;
      }
      const up = http.get(this.upstream(), { timeout: 1000 }, (r) => {
        res.statusCode = r.statusCode ?? 502;
        r.pipe(res);
      });
      up.on('timeout', () => up.destroy());
      up.on('error', () => req.socket.destroy());
    });
    await new Promise<void>((r) => this.server.listen(port, this.host, r));
    this.port = (this.server.address() as { port: number }).port;
  }

  setPattern(codes: number[]): void {
    this.pattern = codes;
    this.i = 0;
    this.mode = 'pattern';
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
