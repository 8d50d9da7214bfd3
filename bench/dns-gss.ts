/**
 * DNS benchmark with GSS-TSIG (`scripts/bench dns --auth gss-tsig`): the round trip of one signed
 * compare-and-swap UPDATE (the lease renewal) over ONE reused GSS-TSIG context, against the same
 * CAS signed with an HMAC TSIG key (the anchor), both on the SAME loopback BIND in the SAME run,
 * and against `nsupdate -g`, one process per update as a shell script would run it. And the TKEY
 * negotiation itself (credentials from the keytab + the TKEY exchange).
 *
 *   gss                 Witness.renew over a GssSession (one context for the whole phase)
 *   hmac                Witness.renew with an hmac-sha256 key (the anchor)
 *   nsupdate_g          one `nsupdate -g` per renewal (spawn .. exit 0), its TGT from one kinit
 *                       into a temp ccache first (a script's k5start/kinit); each process asks
 *                       for the SOA, negotiates its own TKEY and sends the update
 *   tkey                a fresh GssSession per sample: acquire credentials from the keytab (the
 *                       KDC), then the TKEY exchange with named over TCP
 *
 * The realm is a real MIT krb5kdc and named has tkey-gssapi-keytab (test/fixtures/kdc.ts). gss and
 * hmac alternate in R rounds (--rounds, default 10) after untimed warm-ups, so that load on a
 * shared machine hits both alike. Every message carries the same prerequisites and updates (A ==
 * the primary, TXT == the exact current lease; delete + add of both). After every block the lease
 * is read back and its seq must have advanced by exactly the updates sent; the GSS phase must have
 * used one context; at the end `dig` must see the last lease written.
 *
 * Targets: gss median ≤ 1.2 × hmac median; nsupdate -g per process ≥ 10 × gss (median). A missed
 * target is reported, never an error exit: only a broken run exits non-zero.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { TsigKey } from '../src/config/keyfile.js';
import { DnsClient } from '../src/dns/client.js';
import { loadGssAddon, type GssApi } from '../src/dns/gss/addon.js';
import { GssSession } from '../src/dns/gss/context.js';
import { formatLease, renewed, type Lease } from '../src/lease/lease.js';
import { Witness, type Snapshot } from '../src/lease/witness.js';
import { requireBinary, runCommand, type DnsServerFixture } from '../test/fixtures/dns-servers.js';
import { requireKerberosTools, startGssBind, startKdc, type KdcFixture } from '../test/fixtures/kdc.js';
import { intFlag, parseBenchArgs, parseOrUsage, type CommonOptions } from './args.js';
import { BenchError, CAS_FLAGS, casOptions, digLease, expectSeq, f2, nsupdateOnce, r3, SITES, stats, TTL, type CasOptions, type Stats } from './dns-common.js';
import { machineInfo } from './machine.js';
import { appendPerfRow } from './perf-md.js';

type Options = CasOptions & CommonOptions & { nTkey: number };

const USAGE = `usage: scripts/bench dns --auth gss-tsig [--n N] [--warmup W] [--rounds R] [--n-proc P] [--proc-warmup Q] [--n-tkey T] [--out FILE] [--perf-md FILE] [--no-write]
  --n N            timed renewals over the GSS-TSIG context and with the HMAC key, each (default 300)
  --warmup W       untimed renewals of each of those two first (default 20)
  --rounds R       alternate gss / hmac in R blocks of N/R renewals (default 10)
  --n-proc P       timed nsupdate -g processes, one per renewal (default 30)
  --proc-warmup Q  untimed nsupdate -g processes first (default 3)
  --n-tkey T       timed negotiations: credentials from the keytab + TKEY (default 20)
  --out FILE       JSON result (default bench/results/dns-gss.json)
  --perf-md FILE   markdown log that gets one row per run (default docs/PERFORMANCE.md)
  --no-write       print only; write neither file`;

function parseOptions(argv: string[]): Options {
  const { values: v, common, help } = parseBenchArgs(argv, [...CAS_FLAGS, 'n-tkey'] as const, 'bench/results/dns-gss.json');
  if (help) {
    console.log(USAGE);
    process.exit(0);
  }
  return { ...casOptions(v, 30), nTkey: intFlag('n-tkey', v['n-tkey'], 1, 20), ...common };
}

const AGENT = 'failover-agent@EXAMPLE.TEST';
const SERVICE = 'DNS/ns.example.test';
const HMAC_KEY = 'bench-hmac';
const TARGETS = { gss_vs_hmac_max: 1.2, nsupdate_g_vs_gss_min: 10 };

function log(msg: string): void {
  process.stderr.write(`bench dns --auth gss-tsig: ${msg}\n`);
}

/** `count` renewals chained on the snapshot each returns; samples in ms (null: untimed). */
async function renewals(witness: Witness, start: Snapshot, count: number, samples: number[] | null, who: string): Promise<Snapshot> {
  let snap = start;
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const r = await witness.renew(snap, Date.now() / 1000);
    const dt = performance.now() - t0;
    if (r.recovered) throw new BenchError(`${who}: a renewal hit a prerequisite failure (recovered by re-read)`);
    snap = r.snapshot;
    samples?.push(dt);
  }
  return snap;
}

/** A fresh session each time: credentials from the keytab (the KDC) and the TKEY exchange, timed. */
async function negotiations(gss: GssApi, keytab: string, srv: DnsServerFixture, n: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = new GssSession({ gss, principal: AGENT, keytab, server: { host: srv.host, port: srv.port }, serverPrincipal: SERVICE, timeoutMs: 10_000 });
    try {
      const t0 = performance.now();
      await s.acquire();
      samples.push(performance.now() - t0);
      if (s.negotiations !== 1) throw new BenchError(`tkey: ${s.negotiations} negotiations for one acquire`);
    } finally {
      s.close();
    }
  }
  return samples;
}

/** The first line a tool prints about its version; 'unknown' without the tool. */
function versionOf(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
  return r.error ? 'unknown' : (r.stdout || r.stderr).trim().split('\n')[0]!;
}

const MD_SECTION = '## DNS with GSS-TSIG: signed CAS round trip (`scripts/bench dns --auth gss-tsig`)';
const MD_INTRO = [
  'The lease renewal\'s compare-and-swap UPDATE signed over ONE reused GSS-TSIG context (RFC 3645,',
  'Kerberos via the gss addon) against the same CAS signed with an hmac-sha256 TSIG key, both sent',
  'to the same BIND `named` (tkey-gssapi-keytab) with a real MIT `krb5kdc` on 127.0.0.1, alternating',
  'in rounds; against `nsupdate -g`, one process per update (each asks the SOA and negotiates its own',
  'TKEY; its TGT from one `kinit` beforehand); and the TKEY negotiation of a fresh context',
  '(credentials from the keytab, then TKEY over TCP). Targets: GSS median ≤ 1.2 × HMAC median;',
  '`nsupdate -g` per process ≥ 10 × GSS (median). Raw numbers of the last run: bench/results/dns-gss.json.',
];
const MD_TABLE_HEAD = [
  '| date (UTC) | n | GSS median / p95 (ms) | HMAC median / p95 (ms) | nsupdate -g per process median / p95 (ms) | TKEY negotiation median / p95 (ms) | GSS / HMAC (≤ 1.2) | nsupdate -g / GSS (≥ 10) | result | load (1 min) | command |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
];

async function main(): Promise<number> {
  const opts = parseOrUsage('dns --auth gss-tsig', USAGE, () => parseOptions(process.argv.slice(2)));
  if (opts === 64) return 64;
  requireKerberosTools();
  for (const b of ['named', 'nsupdate', 'dig']) requireBinary(b);
  const gss = loadGssAddon([path.join(opts.root, 'native/gss/build/Release/gss.node')]);

  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-dns-gss-'));
  let kdc: KdcFixture | undefined;
  let srv: DnsServerFixture | undefined;
  const sessions: GssSession[] = [];
  const cleanup = async (): Promise<void> => {
    for (const s of sessions) s.close();
    await srv?.stop();
    await kdc?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: stopping named and krb5kdc`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    kdc = await startKdc();
    // named, kinit, nsupdate -g and the addon (libkrb5 reads it per context) all use this realm.
    Object.assign(process.env, kdc.env);
    const serverKeytab = await kdc.addPrincipal(`${SERVICE}@${kdc.realm}`);
    const keytab = await kdc.addPrincipal(AGENT);
    const hmac: TsigKey = { name: HMAC_KEY, algorithm: 'hmac-sha256', secret: randomBytes(32) };
    const grants = [AGENT, HMAC_KEY].flatMap((principal) => [
      { principal, name: 'syslog.example.test.', types: 'A AAAA' },
      { principal, name: '_lease.syslog.example.test.', types: 'TXT' },
    ]);
    srv = await startGssBind(serverKeytab, grants, { preamble: `key "${HMAC_KEY}" { algorithm hmac-sha256; secret "${hmac.secret.toString('base64')}"; };` });
    const bindVersion = versionOf('named', ['-v']);
    log(`krb5kdc on 127.0.0.1:${kdc.port}, ${bindVersion} pid ${srv.pid} port ${srv.port}; principal ${AGENT} to ${SERVICE}`);

    const server = { host: srv.host, port: srv.port };
    const where = { zone: srv.zone, record: srv.record, leaseName: srv.leaseName, ttlSeconds: TTL };
    const session = new GssSession({ gss, principal: AGENT, keytab, server, serverPrincipal: SERVICE, timeoutMs: 10_000 });
    sessions.push(session);
    const gssWitness = new Witness(new DnsClient({ server, session, timeoutMs: 2000, retries: 1 }), where);
    const hmacWitness = new Witness(new DnsClient({ server, key: hmac, timeoutMs: 2000, retries: 1 }), where);

    const empty = await hmacWitness.read();
    if (empty.leaseText !== null || empty.addresses.length) throw new BenchError('fresh zone is not empty');
    await hmacWitness.init(empty, SITES, Date.now() / 1000, false);
    let seq = 0;
    let snap = await expectSeq(hmacWitness, seq, 'init');

    const samples = { gss: [] as number[], hmac: [] as number[], nsupdateG: [] as number[], tkey: [] as number[] };
    const blocks = { gss: 0, hmac: 0 };
    log(`warm-up: ${opts.warmup} renewals each (the GSS context negotiated here, untimed)`);
    for (const [w, who] of [[gssWitness, 'gss'], [hmacWitness, 'hmac']] as const) {
      snap = await renewals(w, snap, opts.warmup, null, who);
      seq += opts.warmup;
      snap = await expectSeq(hmacWitness, seq, `${who} warm-up`);
    }
    log(`timed: ${opts.n} renewals over the GSS context and ${opts.n} with the HMAC key, in ${opts.rounds} alternating round(s)`);
    for (let r = 0; r < opts.rounds; r++) {
      const count = Math.floor(((r + 1) * opts.n) / opts.rounds) - Math.floor((r * opts.n) / opts.rounds);
      for (const who of r % 2 === 0 ? (['gss', 'hmac'] as const) : (['hmac', 'gss'] as const)) {
        const w = who === 'gss' ? gssWitness : hmacWitness;
        const last = await renewals(w, snap, count, samples[who], who);
        seq += count;
        snap = await expectSeq(hmacWitness, seq, `${who} round ${r + 1}`);
        if (snap.leaseText![0] !== last.leaseText![0]) throw new BenchError(`${who}: the witness does not hold its last write`);
        blocks[who]++;
      }
    }
    if (session.negotiations !== 1) throw new BenchError(`gss: ${session.negotiations} contexts negotiated, expected ONE reused for the phase`);

    log(`nsupdate -g per process: kinit once, then ${opts.procWarmup} warm-up + ${opts.nProc} timed processes`);
    const ccache = `FILE:${path.join(scratch, 'nsupdate.ccache')}`;
    const env = { ...process.env, KRB5CCNAME: ccache };
    const kinit = await runCommand('env', [`KRB5CCNAME=${ccache}`, requireBinary('kinit'), '-k', '-t', keytab, AGENT], { timeoutMs: 20_000 });
    if (kinit.code !== 0) throw new BenchError(`kinit failed (${kinit.code}): ${kinit.stderr}`);
    const nsupdate = requireBinary('nsupdate');
    let lease: Lease = snap.lease!;
    for (let i = 0; i < opts.procWarmup + opts.nProc; i++) {
      const next = renewed(lease, Date.now() / 1000);
      const dt = await nsupdateOnce(srv, nsupdate, ['-g'], lease, next, env);
      lease = next;
      if (i >= opts.procWarmup) samples.nsupdateG.push(dt);
    }
    seq += opts.procWarmup + opts.nProc;
    snap = await expectSeq(hmacWitness, seq, 'nsupdate -g per process');
    const dug = digLease(srv);
    if (dug !== `"${formatLease(lease)}"`) throw new BenchError(`dig sees ${dug}, expected "${formatLease(lease)}"`);

    log(`TKEY: ${opts.nTkey} negotiations of a fresh context (credentials from the keytab + TKEY)`);
    samples.tkey = await negotiations(gss, keytab, srv, opts.nTkey);

    const s = { gss: stats(samples.gss), hmac: stats(samples.hmac), nsupdateG: stats(samples.nsupdateG), tkey: stats(samples.tkey) };
    const ratios = { gss_vs_hmac: r3(s.gss.median_ms / s.hmac.median_ms), nsupdate_g_vs_gss: r3(s.nsupdateG.median_ms / s.gss.median_ms) };
    const checks = { gss_vs_hmac: ratios.gss_vs_hmac <= TARGETS.gss_vs_hmac_max, nsupdate_g_vs_gss: ratios.nsupdate_g_vs_gss >= TARGETS.nsupdate_g_vs_gss_min };
    const pass = checks.gss_vs_hmac && checks.nsupdate_g_vs_gss;
    const command = ['scripts/bench dns --auth gss-tsig', ...process.argv.slice(2)].join(' ');
    const result = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      bind_version: bindVersion,
      krb5: versionOf('krb5-config', ['--version']),
      command,
      n: opts.n,
      warmup: opts.warmup,
      rounds: opts.rounds,
      n_proc: opts.nProc,
      proc_warmup: opts.procWarmup,
      n_tkey: opts.nTkey,
      transport: 'udp (TKEY over tcp)',
      gss: s.gss,
      hmac_sha256: s.hmac,
      nsupdate_g_per_process: s.nsupdateG,
      tkey_negotiation: s.tkey,
      ratios,
      targets: TARGETS,
      checks,
      verified: { final_seq: seq, blocks_verified: blocks, gss_contexts_in_phase: session.negotiations, dig_final_lease: dug },
      pass,
    };

    const line = (name: string, x: Stats): string =>
      `  ${name.padEnd(24)} median ${f2(x.median_ms).padStart(7)} ms   p95 ${f2(x.p95_ms).padStart(7)} ms   mean ${f2(x.mean_ms).padStart(7)} ms   (n=${x.n}, min ${f2(x.min_ms)}, max ${f2(x.max_ms)})`;
    console.log(`DNS signed CAS update with GSS-TSIG, ${bindVersion} + MIT krb5kdc on 127.0.0.1; n=${opts.n} in ${opts.rounds} alternating round(s)`);
    console.log(line('gss (one context)', s.gss));
    console.log(line('hmac-sha256', s.hmac));
    console.log(line('nsupdate -g per process', s.nsupdateG));
    console.log(line('TKEY negotiation', s.tkey));
    console.log(`  gss / hmac               ${f2(ratios.gss_vs_hmac)}x  (target <= ${TARGETS.gss_vs_hmac_max}x): ${checks.gss_vs_hmac ? 'MET' : 'MISSED'}`);
    console.log(`  nsupdate -g / gss        ${f2(ratios.nsupdate_g_vs_gss)}x  (target >= ${TARGETS.nsupdate_g_vs_gss_min}x): ${checks.nsupdate_g_vs_gss ? 'MET' : 'MISSED'}`);
    console.log(`  verified: lease seq ${seq} after ${seq} updates (checked after each of ${blocks.gss + blocks.hmac + 3} blocks), one GSS context for the gss phase, dig agrees`);
    console.log(pass ? 'RESULT: PASS (all targets met)' : 'RESULT: FAIL (target missed; not a build failure)');

    if (opts.write) {
      fs.mkdirSync(path.dirname(opts.out), { recursive: true });
      fs.writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
      const ms = (x: Stats): string => `${f2(x.median_ms)} / ${f2(x.p95_ms)}`;
      const row =
        `| ${result.date.slice(0, 16).replace('T', ' ')} | ${opts.n}${opts.rounds > 1 ? ` (${opts.rounds} rounds)` : ''} | ${ms(s.gss)} | ${ms(s.hmac)} | ${ms(s.nsupdateG)} (n=${opts.nProc}) | ${ms(s.tkey)} (n=${opts.nTkey}) | ` +
        `${f2(ratios.gss_vs_hmac)} | ${f2(ratios.nsupdate_g_vs_gss)} | ${pass ? 'pass' : 'FAIL'} | ${result.machine.loadavg[0]} | \`${command}\` |`;
      appendPerfRow(opts.perfMd, { heading: MD_SECTION, intro: MD_INTRO, tableHead: MD_TABLE_HEAD }, row);
      log(`wrote ${path.relative(opts.root, opts.out)} and a row in ${path.relative(opts.root, opts.perfMd)}`);
    }
    return 0;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench dns --auth gss-tsig: ERROR: ${err instanceof Error ? err.message : String(err)}`);
    if (!(err instanceof BenchError) && err instanceof Error && err.stack) console.error(err.stack);
    process.exit(1);
  },
);
