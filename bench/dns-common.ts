/**
 * What the DNS benchmarks share (bench/dns.ts: HMAC TSIG vs nsupdate; bench/dns-gss.ts: GSS-TSIG
 * vs HMAC TSIG vs nsupdate -g): sample statistics, the lease CAS as nsupdate commands, one
 * nsupdate process per update, and the checks that every phase really wrote what it claims.
 */
import { spawn, spawnSync } from 'node:child_process';
import { formatLease, type Lease } from '../src/lease/lease.js';
import type { Snapshot, Witness } from '../src/lease/witness.js';
import { requireBinary, type DnsServerFixture } from '../test/fixtures/dns-servers.js';
import { intFlag, UsageError } from './args.js';

/** The flags both DNS benches take: timed CAS renewals, warm-up, rounds, nsupdate processes. */
export const CAS_FLAGS = ['n', 'warmup', 'rounds', 'n-proc', 'proc-warmup'] as const;

export interface CasOptions {
  n: number;
  warmup: number;
  rounds: number;
  nProc: number;
  procWarmup: number;
}

/** CAS_FLAGS' values with their defaults (`nProc`: the bench's own default process count). */
export function casOptions(v: Partial<Record<(typeof CAS_FLAGS)[number], string>>, nProc: number): CasOptions {
  const o: CasOptions = {
    n: intFlag('n', v.n, 1, 300),
    warmup: intFlag('warmup', v.warmup, 0, 20),
    rounds: intFlag('rounds', v.rounds, 1, 10),
    nProc: intFlag('n-proc', v['n-proc'], 1, nProc),
    procWarmup: intFlag('proc-warmup', v['proc-warmup'], 0, 3),
  };
  if (o.rounds > o.n) throw new UsageError(`--rounds ${o.rounds} exceeds --n ${o.n}`);
  return o;
}

export interface Stats {
  n: number;
  median_ms: number;
  p99_ms: number;
  mean_ms: number;
  p90_ms: number;
  p95_ms: number;
  min_ms: number;
  max_ms: number;
}

/** Nearest-rank percentile (p in 0..100) of sorted samples. */
export function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

export function median(sorted: number[]): number {
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
}

export const r3 = (x: number): number => Math.round(x * 1000) / 1000;

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    median_ms: r3(median(s)),
    p99_ms: r3(percentile(s, 99)),
    mean_ms: r3(s.reduce((a, b) => a + b, 0) / s.length),
    p90_ms: r3(percentile(s, 90)),
    p95_ms: r3(percentile(s, 95)),
    min_ms: r3(s[0]!),
    max_ms: r3(s[s.length - 1]!),
  };
}

export const SITES = { primary: '10.10.10.10', dr: '10.20.20.20' };
export const TTL = 30;

export class BenchError extends Error {}

/** Reads the lease with our client and checks it is the primary's with the expected seq. */
export async function expectSeq(witness: Witness, seq: number, phase: string): Promise<Snapshot> {
  const snap = await witness.read();
  if (!snap.lease) throw new BenchError(`${phase}: lease unreadable after the phase (${snap.leaseError ?? 'absent'})`);
  if (snap.lease.seq !== seq || snap.lease.holder !== 'primary' || snap.addresses.join() !== SITES.primary) {
    throw new BenchError(
      `${phase}: expected seq=${seq} held by primary at ${SITES.primary}, the witness holds ${JSON.stringify(snap.leaseText)} ${snap.addresses.join()}`,
    );
  }
  return snap;
}

/**
 * The nsupdate commands for one renewal: the same prerequisites and updates
 * that Witness.renew puts in its one UPDATE message (see witness.ts cas()).
 */
export function nsupdateBlock(srv: DnsServerFixture, current: Lease, next: Lease): string {
  const fqdn = (n: string): string => `${n}.`;
  return [
    `prereq yxrrset ${fqdn(srv.record)} A ${SITES.primary}`,
    `prereq yxrrset ${fqdn(srv.leaseName)} TXT "${formatLease(current)}"`,
    `update delete ${fqdn(srv.record)} A`,
    `update add ${fqdn(srv.record)} ${TTL} A ${SITES.primary}`,
    `update delete ${fqdn(srv.leaseName)} TXT`,
    `update add ${fqdn(srv.leaseName)} ${TTL} TXT "${formatLease(next)}"`,
    'send',
  ].join('\n');
}

export function nsupdatePreamble(srv: DnsServerFixture): string {
  return `server ${srv.host} ${srv.port}\nzone ${srv.zone}.\n`;
}

/**
 * One nsupdate process for one update: spawn, feed the script, wait for exit 0. `args`: how it
 * signs (`-k KEYFILE`, or `-g` with the Kerberos realm in `env`).
 */
export function nsupdateOnce(srv: DnsServerFixture, nsupdate: string, args: string[], current: Lease, next: Lease, env?: NodeJS.ProcessEnv): Promise<number> {
  const script = `${nsupdatePreamble(srv)}${nsupdateBlock(srv, current, next)}\nquit\n`;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(nsupdate, args, { stdio: ['pipe', 'ignore', 'pipe'], ...(env ? { env } : {}) });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      const dt = performance.now() - t0;
      clearTimeout(timer);
      if (code !== 0) reject(new BenchError(`nsupdate (one per update) exited code=${code} signal=${signal}: ${stderr.trim()}`));
      else resolve(dt);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(script);
  });
}

/** `dig` cross-check of the final lease (independent of our decoder). */
export function digLease(srv: DnsServerFixture): string {
  const r = spawnSync(requireBinary('dig'), ['+short', '+norec', '-p', String(srv.port), `@${srv.host}`, srv.leaseName, 'TXT'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.status !== 0) throw new BenchError(`dig failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

export const f2 = (x: number): string => x.toFixed(2);
