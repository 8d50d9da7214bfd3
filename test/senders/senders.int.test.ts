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
 * Writes bench/results/senders.json (SENDERS_RESULTS: another path). Two worlds run side by side
 * (one per case) to keep the wall time near 3 minutes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RSYSLOG_REBIND_INTERVAL, SENDER_SYSCTLS, SYSLOG_NG_RELOAD_S } from '../../src/cli/senders.js';
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

const only = process.env.SENDERS_ONLY; // a substring of sender names, to run a few rows by hand

describe('syslog senders across a record move (real BIND, unbound, rsyslog, syslog-ng in namespaces)', () => {
  it('documented configurations follow the record within record_ttl + 5 s; defaults measured', async () => {
    const senders = SENDERS.filter((s) => !only || s.name.includes(only));
    const runs = [
      ...senders.map((s) => ({ s, ttlS: TTL_S })),
      ...senders.filter((s) => s.documented).map((s) => ({ s, ttlS: TTL_LONG_S })),
    ];
    const t0 = Date.now();
    const runWorld = async (kind: CaseKind, tag: string): Promise<CaseResult[]> => {
      const world = await createSendersWorld(tag);
      const out: CaseResult[] = [];
      try {
        for (const { s, ttlS } of runs) {
          const r = await world.runCase(s, kind, { ttlS, capS: CAP_S, measureCost: s.documented && ttlS === TTL_S });
          console.log(`senders: ${r.sender} / TTL ${ttlS} s / old site ${kind}: follow ${r.follow_s ?? `not within ${CAP_S}`} s, lost ${r.lines_lost} (allowed ${r.sent_to_dead_before_move}), to inactive ${r.lines_to_inactive}; cost ${r.connections_per_min ?? "–"} connections/min, ${r.resolver_queries_per_min ?? "–"} resolver queries/min${r.failures.length ? ` FAILS: ${r.failures.join('; ')}` : ''}`);
          out.push(r);
        }
      } finally {
        await world.destroy();
      }
      return out;
    };
    // both worlds run to their end (and are removed) before a failure of either is reported
    const settled = await Promise.allSettled([runWorld('alive', 'a'), runWorld('dead', 'd')]);
    const [alive, dead] = settled.map((x) => {
      if (x.status === 'rejected') throw x.reason;
      return x.value;
    });
    const rows = runs.flatMap(({ s, ttlS }) => [alive, dead].flatMap((rs) => rs.filter((r) => r.sender === s.name && r.record_ttl_s === ttlS)));
    if (!only) {
      fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
      fs.writeFileSync(
        RESULTS,
        `${JSON.stringify(
          {
            generated_at: new Date().toISOString(),
            command: 'nice -n 10 npx vitest run test/senders/senders.int.test.ts',
            wall_s: Math.round((Date.now() - t0) / 1000),
            record_ttl_s: [TTL_S, TTL_LONG_S],
            line_interval_ms: LINE_INTERVAL_MS,
            cap_s: CAP_S,
            documented: { rsyslog_rebind_interval: RSYSLOG_REBIND_INTERVAL, syslog_ng_reload_s: SYSLOG_NG_RELOAD_S, sysctls: SENDER_SYSCTLS },
            rows,
          },
          null,
          2,
        )}\n`,
      );
    }
    // every row measured something (the sender delivered to site 1 before the move)
    expect(rows.length).toBe(runs.length * 2);
    for (const r of rows) expect(r.sent, r.sender).toBeGreaterThan(30);
    expect(rows.filter((r) => r.documented).flatMap((r) => r.failures.map((f) => `${r.sender} / ${r.case}: ${f}`))).toEqual([]);
  }, 600_000);
});
