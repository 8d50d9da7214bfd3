/**
 * Do syslog senders follow the failover record? (issue 20; docs/SENDERS.md.) Each sender
 * configuration, with its defaults and with the configuration docs/SENDERS.md documents
 * (src/cli/senders.ts), forwards one numbered line every 100 ms to the record's NAME through a
 * caching resolver (unbound); the record (TTL 5 s) is moved from site 1 to site 2 with the old
 * site alive (its receiver stops at the move, as its collector would) and with the old site dead
 * (receiver killed, address blackholed, record moved 5 s later). See ./world.ts.
 *
 * The documented rows must meet the targets: first line at the new site <= record_ttl + 5 s after
 * the move; lines lost <= those sent to the already dead site before the move; 0 lines to the old
 * site after the move. The default rows are measurements (the wait capped at 30 s), not tests.
 * The documented rows run again with a 15 s TTL: the follow time is bounded by the TTL.
 *
 * The second test measures the senders that look the name up once (busybox syslogd `-R`,
 * inetutils syslogd `@host`; UDP only): their defaults, and `follow-record` (src/cli/senders.ts)
 * restarting (busybox) or reloading (inetutils) them when the record's address changes, whose
 * follow time is judged (its lines lost are measured: a UDP sender loses what it sends to the old
 * address until it follows). `-t "look the name up once"` runs it alone.
 *
 * Writes bench/results/senders.json (SENDERS_RESULTS: another path): each test replaces its own
 * rows and keeps the others'. The two tests run concurrently, each with two worlds side by side
 * (one per case), to keep the file's wall time near 4½ minutes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FOLLOW_RECORD_INTERVAL_S, RSYSLOG_REBIND_INTERVAL, SENDER_SYSCTLS, SYSLOG_NG_RELOAD_S } from '../../src/cli/senders.js';
import { createSendersWorld, LINE_INTERVAL_MS, type CaseKind, type CaseResult, type SenderConfig } from './world.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RESULTS = process.env.SENDERS_RESULTS ?? path.join(REPO, 'bench/results/senders.json');
const TTL_S = 5;
/** the documented rows once more at this TTL: how the record's TTL bounds the follow time */
const TTL_LONG_S = 15;
const CAP_S = 30;

export const SENDERS: SenderConfig[] = [
  { name: 'rsyslog omfwd TCP, documented', kind: 'rsyslog', protocol: 'tcp', documented: true },
  { name: 'syslog-ng network() TCP, documented', kind: 'syslog-ng', protocol: 'tcp', documented: true },
  { name: 'rsyslog omfwd UDP, defaults', kind: 'rsyslog', protocol: 'udp', documented: false },
  { name: 'rsyslog omfwd TCP, defaults', kind: 'rsyslog', protocol: 'tcp', documented: false },
  { name: 'syslog-ng network() UDP, defaults', kind: 'syslog-ng', protocol: 'udp', documented: false },
  { name: 'syslog-ng network() TCP, defaults', kind: 'syslog-ng', protocol: 'tcp', documented: false },
];

/** senders that look the name up once; their documented remedy is follow-record */
export const RESOLVE_ONCE: SenderConfig[] = [
  { name: 'busybox syslogd -R UDP, defaults', kind: 'busybox', protocol: 'udp', documented: false },
  { name: 'inetutils syslogd @host UDP, defaults', kind: 'inetutils', protocol: 'udp', documented: false },
  { name: 'busybox syslogd -R UDP, restarted by follow-record', kind: 'busybox', protocol: 'udp', documented: true, followHook: true },
  { name: 'inetutils syslogd @host UDP, reloaded by follow-record', kind: 'inetutils', protocol: 'udp', documented: true, followHook: true },
];

const only = process.env.SENDERS_ONLY; // a substring of sender names, to run a few rows by hand
const ORDER = [...SENDERS, ...RESOLVE_ONCE].map((s) => s.name);

/** Replace this test's rows in RESULTS, keeping the other test's (sorted: TTL, sender, case). */
function writeResults(test: string, rows: CaseResult[], wallS: number): void {
  let prev: { rows?: CaseResult[]; runs?: Record<string, unknown> } = {};
  try {
    prev = JSON.parse(fs.readFileSync(RESULTS, 'utf8')) as typeof prev;
  } catch {
    /* first run */
  }
  const mine = new Set(rows.map((r) => r.sender));
  const all = [...(prev.rows ?? []).filter((r) => !mine.has(r.sender) && ORDER.includes(r.sender)), ...rows].sort(
    (a, b) => a.record_ttl_s - b.record_ttl_s || ORDER.indexOf(a.sender) - ORDER.indexOf(b.sender) || a.case.localeCompare(b.case),
  );
  const now = new Date().toISOString();
  fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
  fs.writeFileSync(
    RESULTS,
    `${JSON.stringify(
      {
        generated_at: now,
        command: 'nice -n 10 npx vitest run test/senders/senders.int.test.ts',
        runs: { ...(prev.runs ?? {}), [test]: { generated_at: now, wall_s: wallS } },
        record_ttl_s: [TTL_S, TTL_LONG_S],
        line_interval_ms: LINE_INTERVAL_MS,
        cap_s: CAP_S,
        documented: {
          rsyslog_rebind_interval: RSYSLOG_REBIND_INTERVAL,
          syslog_ng_reload_s: SYSLOG_NG_RELOAD_S,
          sysctls: SENDER_SYSCTLS,
          follow_record_interval_s: FOLLOW_RECORD_INTERVAL_S,
        },
        rows: all,
      },
      null,
      2,
    )}\n`,
  );
}

/** Each sender at TTL_S, the documented ones again at TTL_LONG_S; one world per case, side by side. */
async function measure(list: SenderConfig[], tags: [string, string]): Promise<{ rows: CaseResult[]; runs: number; wallS: number }> {
  const senders = list.filter((s) => !only || s.name.includes(only));
  const runs = [...senders.map((s) => ({ s, ttlS: TTL_S })), ...senders.filter((s) => s.documented).map((s) => ({ s, ttlS: TTL_LONG_S }))];
  const t0 = Date.now();
  if (!runs.length) return { rows: [], runs: 0, wallS: 0 };
  const runWorld = async (kind: CaseKind, tag: string): Promise<CaseResult[]> => {
    const world = await createSendersWorld(tag);
    const out: CaseResult[] = [];
    try {
      for (const { s, ttlS } of runs) {
        const r = await world.runCase(s, kind, { ttlS, capS: CAP_S, measureCost: s.documented && ttlS === TTL_S });
        const extra = r.hook_runs === null ? '' : `; follow-record ran ${r.hook_runs}x${r.lost_in_restart === null ? '' : `, ${r.lost_in_restart} lost in the restart or reload`}`;
        console.log(`senders: ${r.sender} / TTL ${ttlS} s / old site ${kind}: follow ${r.follow_s ?? `not within ${CAP_S}`} s, lost ${r.lines_lost} (allowed ${r.sent_to_dead_before_move}), to inactive ${r.lines_to_inactive}; cost ${r.connections_per_min ?? '–'} connections/min, ${r.resolver_queries_per_min ?? '–'} resolver queries/min${extra}${r.failures.length ? ` FAILS: ${r.failures.join('; ')}` : ''}`);
        out.push(r);
      }
    } finally {
      await world.destroy();
    }
    return out;
  };
  // both worlds run to their end (and are removed) before a failure of either is reported
  const settled = await Promise.allSettled([runWorld('alive', tags[0]), runWorld('dead', tags[1])]);
  const [alive, dead] = settled.map((x) => {
    if (x.status === 'rejected') throw x.reason;
    return x.value;
  });
  const rows = runs.flatMap(({ s, ttlS }) => [alive, dead].flatMap((rs) => rs.filter((r) => r.sender === s.name && r.record_ttl_s === ttlS)));
  return { rows, runs: runs.length, wallS: Math.round((Date.now() - t0) / 1000) };
}

function check(rows: CaseResult[], runs: number): void {
  // every row measured something (the sender delivered to site 1 before the move)
  expect(rows.length).toBe(runs * 2);
  for (const r of rows) expect(r.sent, r.sender).toBeGreaterThan(30);
  expect(rows.filter((r) => r.documented).flatMap((r) => r.failures.map((f) => `${r.sender} / ${r.case}: ${f}`))).toEqual([]);
}

describe('syslog senders across a record move (real BIND, unbound, rsyslog, syslog-ng, busybox and inetutils syslogd in namespaces)', () => {
  it.concurrent('documented configurations follow the record within record_ttl + 5 s; defaults measured', async () => {
    const { rows, runs, wallS } = await measure(SENDERS, ['a', 'd']);
    if (!only && rows.length) writeResults('rsyslog, syslog-ng', rows, wallS);
    check(rows, runs);
  }, 600_000);

  it.concurrent('senders that look the name up once (busybox, inetutils syslogd): defaults measured; follow-record follows within record_ttl + 5 s', async () => {
    const { rows, runs, wallS } = await measure(RESOLVE_ONCE, ['b', 'e']);
    if (!only && rows.length) writeResults('busybox, inetutils syslogd', rows, wallS);
    check(rows, runs);
  }, 600_000);
});
