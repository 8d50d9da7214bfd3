/**
 * DNS benchmark: the round trip of one signed compare-and-swap UPDATE (the
 * lease renewal) done by our client, compared with BIND's own `nsupdate`
 * against the SAME loopback `named` in the SAME run:
 *
 *   ours                  Witness.renew() chained on the snapshot it returns, sequentially
 *   nsupdate_persistent   one long-lived `nsupdate -k KEYFILE`, one update block per renewal
 *   nsupdate_per_process  one `nsupdate -k KEYFILE` process per renewal (spawn .. exit 0)
 *
 * Ours and the persistent nsupdate run in R alternating rounds (--rounds,
 * default 10: blocks of N/R updates, which one goes first alternating too),
 * after untimed warm-ups of both, so that load on a shared machine, or any
 * drift of the server as its journal grows, hits both alike; --rounds 1 is
 * one phase of each. The per-process phase comes last.
 *
 * Every phase sends the same UPDATE message (zone example.test; prerequisites:
 * A RRset == 10.10.10.10 and TXT RRset == the exact current lease; updates:
 * delete A, add A, delete TXT, add TXT with seq+1) signed with the same
 * hmac-sha256 key, over UDP, to 127.0.0.1 only. After every block the lease
 * is read back with our client and its seq must have advanced by exactly the
 * number of updates sent; the persistent nsupdate's answers must all be
 * NOERROR; at the end `dig` must see the last lease written.
 *
 * Run it with `scripts/bench dns [--n 300] [--warmup 20] [--n-proc 50]`; it
 * writes bench/results/dns.json and appends one row to docs/PERFORMANCE.md.
 * A missed target is reported, never an error exit: only a broken run
 * (server not starting, an update refused, a seq mismatch) exits non-zero.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { parseBenchArgs, parseOrUsage, type CommonOptions } from './args.js';
import { machineInfo } from './machine.js';
import { appendPerfRow } from './perf-md.js';
import fs from 'node:fs';
import path from 'node:path';
import type { TsigKey } from '../src/config/keyfile.js';
import { DnsClient } from '../src/dns/client.js';
import { formatLease, renewed, type Lease } from '../src/lease/lease.js';
import { Witness, type Snapshot } from '../src/lease/witness.js';
import { requireBinary, startBind, type DnsServerFixture } from '../test/fixtures/dns-servers.js';
import { BenchError, CAS_FLAGS, casOptions, digLease, expectSeq, f2, nsupdateBlock, nsupdateOnce, nsupdatePreamble, r3, SITES, stats, TTL, type CasOptions, type Stats } from './dns-common.js';

// ------------------------------------------------------------------------------------ options

type Options = CasOptions & CommonOptions;

const USAGE = `usage: scripts/bench dns [--n N] [--warmup W] [--rounds R] [--n-proc P] [--proc-warmup Q] [--out FILE] [--perf-md FILE] [--no-write]
  --n N            timed updates for ours and for the persistent nsupdate (default 300)
  --warmup W       untimed updates of each of those two first (default 20)
  --rounds R       alternate ours / persistent nsupdate in R blocks of N/R updates each, so
                   that load drift on a shared machine hits both alike (default 10;
                   1 = one phase of ours, then one phase of nsupdate)
  --n-proc P       timed nsupdate processes, one per update (default 50)
  --proc-warmup Q  untimed nsupdate processes first (default 3)
  --out FILE       JSON result (default bench/results/dns.json)
  --perf-md FILE   markdown log that gets one row per run (default docs/PERFORMANCE.md)
  --no-write       print only; write neither file`;

function parseOptions(argv: string[]): Options {
  const { values: v, common, help } = parseBenchArgs(argv, CAS_FLAGS, 'bench/results/dns.json');
  if (help) {
    console.log(USAGE);
    process.exit(0);
  }
  return { ...casOptions(v, 50), ...common };
}


// ------------------------------------------------------------------------------------ helpers

function tsigKey(srv: DnsServerFixture): TsigKey {
  return { name: srv.key.name, algorithm: srv.key.algorithm, secret: Buffer.from(srv.key.secret, 'base64') };
}

function log(msg: string): void {
  process.stderr.write(`bench dns: ${msg}\n`);
}


// ------------------------------------------------------------------------------------ phases

/** `count` renewals by our client, chained on the snapshot each one returns. */
async function oursBlock(witness: Witness, start: Snapshot, count: number, samples: number[] | null): Promise<Snapshot> {
  let snap = start;
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const r = await witness.renew(snap, Date.now() / 1000);
    const dt = performance.now() - t0;
    if (r.recovered) throw new BenchError(`ours: a renewal hit a prerequisite failure (recovered by re-read)`);
    snap = r.snapshot;
    samples?.push(dt);
  }
  return snap;
}

/**
 * One nsupdate process for the whole run. stdout goes through `stdbuf -oL` so
 * every line of `answer` arrives as it is printed; the header line of each
 * answer (";; ->>HEADER<<- opcode: UPDATE, status: NOERROR, id: ...") marks
 * the end of that update's round trip. A failed update prints "update failed:
 * RCODE" on stderr and nsupdate carries on, so every status is checked and
 * stderr must stay empty.
 */
class PersistentNsupdate {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exit: Promise<void>;
  private exited: { code: number | null; signal: string | null } | undefined;
  private stderr = '';
  private partial = '';
  private pending: { resolve: (a: { status: string; at: number }) => void; reject: (e: Error) => void } | undefined;
  private protocolError: string | undefined;
  readonly statuses: Record<string, number> = {};
  updates = 0;

  constructor(private readonly srv: DnsServerFixture) {
    const stdbuf = requireBinary('stdbuf');
    const nsupdate = requireBinary('nsupdate');
    this.child = spawn(stdbuf, ['-oL', '-eL', nsupdate, '-k', srv.key.file], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exit = new Promise<void>((resolve) =>
      this.child.on('close', (code, signal) => {
        this.exited = { code, signal };
        this.pending?.reject(new BenchError(`nsupdate exited (${JSON.stringify(this.exited)}) before answering; stderr: ${this.stderr}`));
        resolve();
      }),
    );
    this.child.on('error', () => {}); // reported through 'close'
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.child.stdin.on('error', () => {});
    this.child.stdout.setEncoding('utf8').on('data', (d: string) => this.onStdout(d, performance.now()));
    this.child.stdin.write(nsupdatePreamble(srv));
  }

  /** Each answer header settles the one pending update, stamped with its arrival time. */
  private onStdout(d: string, at: number): void {
    this.partial += d;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl);
      this.partial = this.partial.slice(nl + 1);
      const m = /->>HEADER<<- opcode: UPDATE, status: ([A-Z0-9]+),/.exec(line);
      if (!m) continue;
      this.statuses[m[1]!] = (this.statuses[m[1]!] ?? 0) + 1;
      const p = this.pending;
      this.pending = undefined;
      if (p) p.resolve({ status: m[1]!, at });
      else this.protocolError ??= `nsupdate printed an answer nobody waited for: ${line}`;
    }
  }

  /** One CAS renewal from `current`; resolves with the new lease and the time from write to answer. */
  async renew(current: Lease): Promise<{ next: Lease; ms: number }> {
    if (this.exited) throw new BenchError(`nsupdate already exited ${JSON.stringify(this.exited)}; stderr: ${this.stderr}`);
    const next = renewed(current, Date.now() / 1000);
    const block = `${nsupdateBlock(this.srv, current, next)}\nanswer\n`;
    const waiting = new Promise<{ status: string; at: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BenchError(`nsupdate: no answer within 10 s; stderr: ${this.stderr}`)), 10_000);
      this.pending = {
        resolve: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
    const t0 = performance.now();
    this.child.stdin.write(block);
    const { status, at } = await waiting;
    this.updates++;
    if (this.protocolError) throw new BenchError(this.protocolError);
    if (status !== 'NOERROR') throw new BenchError(`nsupdate update ${this.updates} answered ${status}; stderr: ${this.stderr}`);
    if (this.stderr.trim()) throw new BenchError(`nsupdate wrote to stderr at update ${this.updates}: ${this.stderr}`);
    return { next, ms: at - t0 };
  }

  async block(start: Lease, count: number, samples: number[] | null): Promise<Lease> {
    let lease = start;
    for (let i = 0; i < count; i++) {
      const r = await this.renew(lease);
      lease = r.next;
      samples?.push(r.ms);
    }
    return lease;
  }

  /** `quit`, and the process must exit 0. */
  async close(): Promise<void> {
    this.child.stdin.end('quit\n');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exit;
    clearTimeout(t);
    if (this.exited?.code !== 0) throw new BenchError(`nsupdate exited ${JSON.stringify(this.exited)}; stderr: ${this.stderr}`);
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

async function benchPerProcess(
  srv: DnsServerFixture,
  keyFile: string,
  start: Lease,
  warmup: number,
  n: number,
): Promise<{ samples: number[]; last: Lease }> {
  const nsupdate = requireBinary('nsupdate');
  const samples: number[] = [];
  let lease = start;
  for (let i = 0; i < warmup + n; i++) {
    const next = renewed(lease, Date.now() / 1000);
    const dt = await nsupdateOnce(srv, nsupdate, ['-k', keyFile], lease, next);
    lease = next;
    if (i >= warmup) samples.push(dt);
  }
  return { samples, last: lease };
}

// ------------------------------------------------------------------------------------ output

const TARGETS = { ours_vs_persistent_max: 1.2, per_process_vs_ours_min: 15 };

function bindVersion(): string {
  const r = spawnSync(requireBinary('named'), ['-v'], { encoding: 'utf8' });
  return (r.stdout || r.stderr).trim();
}

const MD_SECTION = '## DNS: signed CAS update round trip (`scripts/bench dns`)';
const MD_TABLE_HEAD = [
  '| date (UTC) | n | ours median / p99 (ms) | nsupdate persistent median / p99 (ms) | nsupdate per process median / p99 (ms) | ours / persistent (≤ 1.2) | per process / ours (≥ 15) | result | command |',
  '|---|---|---|---|---|---|---|---|---|',
];

const MD_INTRO = [
    'One TSIG-signed (hmac-sha256) RFC 2136 compare-and-swap UPDATE per lease renewal, exactly what',
    '`Witness.renew` sends (prerequisites: A and TXT RRsets equal to the last read; updates: delete +',
    'add of both), chained sequentially against one BIND `named` started by test/fixtures/dns-servers.ts.',
    'Compared with the same updates sent by one long-lived `nsupdate -k` (time from writing the update',
    'block with `send` to the answer header printed by `answer`) and by one `nsupdate -k` process per',
    'update (spawn to exit 0). Ours and the persistent nsupdate alternate in blocks ("rounds") so that',
    'load on a shared machine hits both alike. Targets: ours ≤ 1.2 × persistent nsupdate (median) and',
    'process per update ≥ 15 × ours (median). Raw numbers of the last run: bench/results/dns.json.',
];



// ------------------------------------------------------------------------------------ main

async function main(): Promise<number> {
  const opts = parseOrUsage('dns', USAGE, () => parseOptions(process.argv.slice(2)));
  if (opts === 64) return 64;

  const version = bindVersion();
  log(`starting BIND (${version}) on 127.0.0.1`);
  const srv = await startBind();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= srv.stop());
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: stopping BIND (pid ${srv.pid})`);
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    log(`BIND pid ${srv.pid} port ${srv.port}; zone ${srv.zone}; key ${srv.key.name} (${srv.key.algorithm})`);
    const client = new DnsClient({ server: { host: srv.host, port: srv.port }, key: tsigKey(srv), timeoutMs: 1000, retries: 1 });
    const witness = new Witness(client, { zone: srv.zone, record: srv.record, leaseName: srv.leaseName, ttlSeconds: TTL });

    const empty = await witness.read();
    if (empty.leaseText !== null || empty.addresses.length) throw new BenchError('fresh zone is not empty');
    await witness.init(empty, SITES, Date.now() / 1000, false);
    let snap = await expectSeq(witness, 0, 'init');
    let seq = 0;
    const nsupdate = new PersistentNsupdate(srv);
    const samples = { ours: [] as number[], persistent: [] as number[], perProc: [] as number[] };
    const blocks = { ours: 0, persistent: 0 };
    try {
      // -- warm-up of both (untimed): JIT and first-use paths here, process start-up for nsupdate
      log(`warm-up: ${opts.warmup} renewals by ours, ${opts.warmup} by the persistent nsupdate`);
      snap = await oursBlock(witness, snap, opts.warmup, null);
      seq += opts.warmup;
      snap = await expectSeq(witness, seq, 'ours warm-up');
      await nsupdate.block(snap.lease!, opts.warmup, null);
      seq += opts.warmup;
      snap = await expectSeq(witness, seq, 'nsupdate persistent warm-up');

      // -- timed: R rounds; each round one block of ours and one of the persistent nsupdate,
      //    alternating which goes first. After every block the lease is read back with our
      //    client and must have advanced by exactly the block's updates.
      log(`timed: ${opts.n} renewals by ours and ${opts.n} by the persistent nsupdate, in ${opts.rounds} alternating round(s)`);
      for (let r = 0; r < opts.rounds; r++) {
        const count = Math.floor(((r + 1) * opts.n) / opts.rounds) - Math.floor((r * opts.n) / opts.rounds);
        for (const who of r % 2 === 0 ? (['ours', 'persistent'] as const) : (['persistent', 'ours'] as const)) {
          if (who === 'ours') {
            const last = await oursBlock(witness, snap, count, samples.ours);
            seq += count;
            snap = await expectSeq(witness, seq, `ours round ${r + 1}`);
            if (snap.leaseText![0] !== last.leaseText![0]) throw new BenchError('ours: the witness does not hold our last write');
          } else {
            await nsupdate.block(snap.lease!, count, samples.persistent);
            seq += count;
            snap = await expectSeq(witness, seq, `nsupdate persistent round ${r + 1}`);
          }
          blocks[who]++;
        }
      }
      await nsupdate.close();
    } finally {
      nsupdate.kill();
    }
    const statuses = nsupdate.statuses;
    if (statuses.NOERROR !== opts.warmup + opts.n || Object.keys(statuses).length !== 1) {
      throw new BenchError(`nsupdate persistent: answers ${JSON.stringify(statuses)}, expected ${opts.warmup + opts.n} NOERROR`);
    }

    // -- one nsupdate per update
    log(`nsupdate per process: ${opts.procWarmup} warm-up + ${opts.nProc} timed processes`);
    const perProc = await benchPerProcess(srv, srv.key.file, snap.lease!, opts.procWarmup, opts.nProc);
    samples.perProc = perProc.samples;
    seq += opts.procWarmup + opts.nProc;
    snap = await expectSeq(witness, seq, 'nsupdate per process');
    const dug = digLease(srv);
    if (dug !== `"${formatLease(perProc.last)}"`) throw new BenchError(`dig sees ${dug}, expected "${formatLease(perProc.last)}"`);

    const s = { ours: stats(samples.ours), persistent: stats(samples.persistent), perProc: stats(samples.perProc) };
    const ratios = {
      ours_vs_persistent: r3(s.ours.median_ms / s.persistent.median_ms),
      per_process_vs_ours: r3(s.perProc.median_ms / s.ours.median_ms),
    };
    const checks = {
      ours_vs_persistent: ratios.ours_vs_persistent <= TARGETS.ours_vs_persistent_max,
      per_process_vs_ours: ratios.per_process_vs_ours >= TARGETS.per_process_vs_ours_min,
    };
    const pass = checks.ours_vs_persistent && checks.per_process_vs_ours;
    const result = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      bind_version: version,
      command: ['scripts/bench dns', ...process.argv.slice(2)].join(' '),
      n: opts.n,
      warmup: opts.warmup,
      n_proc: opts.nProc,
      proc_warmup: opts.procWarmup,
      rounds: opts.rounds,
      transport: 'udp',
      tsig_algorithm: srv.key.algorithm,
      ours: s.ours,
      nsupdate_persistent: s.persistent,
      nsupdate_per_process: s.perProc,
      ratios,
      targets: TARGETS,
      checks,
      verified: {
        final_seq: seq,
        expected_seq: seq,
        blocks_verified: blocks,
        nsupdate_persistent_statuses: statuses,
        dig_final_lease: dug,
      },
      pass,
    };

    const line = (name: string, x: Stats): string =>
      `  ${name.padEnd(22)} median ${f2(x.median_ms).padStart(7)} ms   p99 ${f2(x.p99_ms).padStart(7)} ms   mean ${f2(x.mean_ms).padStart(7)} ms   (n=${x.n}, min ${f2(x.min_ms)}, max ${f2(x.max_ms)})`;
    console.log(`DNS signed CAS update, BIND on 127.0.0.1 (${version}); n=${opts.n} in ${opts.rounds} alternating round(s)`);
    console.log(line('ours', s.ours));
    console.log(line('nsupdate persistent', s.persistent));
    console.log(line('nsupdate per process', s.perProc));
    console.log(
      `  ours / persistent      ${f2(ratios.ours_vs_persistent)}x  (target <= ${TARGETS.ours_vs_persistent_max}x): ${checks.ours_vs_persistent ? 'MET' : 'MISSED'}`,
    );
    console.log(
      `  per process / ours     ${f2(ratios.per_process_vs_ours)}x  (target >= ${TARGETS.per_process_vs_ours_min}x): ${checks.per_process_vs_ours ? 'MET' : 'MISSED'}`,
    );
    console.log(
      `  verified: lease seq ${seq} after ${seq} updates (checked after each of ${blocks.ours + blocks.persistent + 3} blocks), all nsupdate answers NOERROR, dig agrees`,
    );
    console.log(pass ? 'RESULT: PASS (all targets met)' : 'RESULT: FAIL (target missed; not a build failure)');

    if (opts.write) {
      fs.mkdirSync(path.dirname(opts.out), { recursive: true });
      fs.writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
      const ms = (x: Stats): string => `${f2(x.median_ms)} / ${f2(x.p99_ms)}`;
      const row =
        `| ${result.date.slice(0, 16).replace('T', ' ')} | ${opts.n}${opts.rounds > 1 ? ` (${opts.rounds} rounds)` : ''} | ${ms(s.ours)} | ${ms(s.persistent)} | ${ms(s.perProc)} (n=${opts.nProc}) | ` +
        `${f2(ratios.ours_vs_persistent)} | ${f2(ratios.per_process_vs_ours)} | ${pass ? 'pass' : 'FAIL'} | \`${['scripts/bench dns', ...process.argv.slice(2)].join(' ')}\` |`;
      appendPerfRow(opts.perfMd, { heading: MD_SECTION, intro: MD_INTRO, tableHead: MD_TABLE_HEAD }, row);
      log(`wrote ${path.relative(opts.root, opts.out)} and a row in ${path.relative(opts.root, opts.perfMd)}`);
    }
    return 0;
  } finally {
    await stop();
    log(`BIND (pid ${srv.pid}) stopped`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench dns: ERROR: ${err instanceof Error ? err.message : String(err)}`);
    if (!(err instanceof BenchError) && err instanceof Error && err.stack) console.error(err.stack);
    process.exit(1);
  },
);
