// The push senders' per-case figures (./push.ts `rows`) from planted logs: follow, lost, to
// inactive and the loss a dead site allows.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Sample } from './analyze.js';
import type { World as Net } from './net.js';
import { collectorExec, createPush, pushLogDir, PUSH_SENDERS, type Push } from './push.js';
import type { DnsServerFixture } from '../fixtures/dns-servers.js';

const P = '198.18.1.2';
const D = '198.18.2.2';
const siteOf = { [P]: 'primary', [D]: 'dr' } as const;
const fakeNet = { ns: { devices: 'fa-push-test-devices' } } as unknown as Net;
const fakeWitness = { zone: 'example.test', record: 'syslog.example.test', host: '198.18.3.2', port: 53 } as DnsServerFixture;

const sample = (wallMs: number, record: string, primaryActive: boolean, drActive: boolean): Sample => ({
  wallMs,
  record,
  agents: {
    primary: { answered: true, active: primaryActive, phase: null },
    dr: { answered: true, active: drActive, phase: null },
  },
  collectors: { primary: primaryActive, dr: drActive },
});

let push: Push | null = null;
afterEach(async () => {
  await push?.stop();
  push = null;
});

describe('push senders: rows', () => {
  it('measures follow, lost, to-inactive and the dead site allowance from the logs', () => {
    push = createPush(fakeNet, fakeWitness);
    const doc = PUSH_SENDERS.find((s) => s.documented)!;
    const t0 = 1_000_000;
    // 100 lines, one every 100 ms; the record moves at t0 + 5 s; the primary died at t0 + 3 s
    const gen = Array.from({ length: 100 }, (_, i) => `${i + 1} ${t0 + i * 100}`).join('\n');
    fs.writeFileSync(path.join(push.dir, `gen-${doc.port}.log`), `${gen}\n`);
    const line = (t: number, seq: number) => `${t} tcp <13>x gen: seq=${seq}`;
    // primary got 1..30; lines 31..55 lost; dr got 56..100 from t0 + 6.2 s, and the primary one
    // more after the move, when it knew (planted)
    const prim = [...Array.from({ length: 30 }, (_, i) => line(t0 + i * 100 + 5, i + 1)), line(t0 + 7000, 99)];
    const dr = Array.from({ length: 45 }, (_, i) => line(t0 + 6200 + i * 100, 56 + i));
    fs.writeFileSync(path.join(pushLogDir(push.dir, 'primary'), `${doc.port}.log`), `ready\n${prim.join('\n')}\n`);
    fs.writeFileSync(path.join(pushLogDir(push.dir, 'dr'), `${doc.port}.log`), `ready\n${dr.join('\n')}\n`);
    const samples: Sample[] = [];
    for (let t = t0; t <= t0 + 14_000; t += 100) samples.push(t < t0 + 5000 ? sample(t, P, true, false) : sample(t, D, false, true));
    const rows = push.rows({ name: 'planted', fromMs: t0, toMs: t0 + 14_000, samples, siteOf, recordTtlS: 1, deadSites: [{ role: 'primary', atMs: t0 + 3000 }] });
    const r = rows.find((x) => x.documented)!;
    expect(r).toMatchObject({ name: 'planted', system: 'failover-agent', sender: doc.name, follow_s: 1.2, followed: true, lines_lost: 25, lines_to_inactive: 1, sent_to_dead_before_move: 20 });
    expect(r.pass).toBe(false);
    expect(r.failures.join(' ')).toMatch(/25 lines lost \(target <= 20\).*1 lines reached/);
    // the defaults sender has no logs here: everything lost, not judged
    const d = rows.find((x) => !x.documented)!;
    expect(d.pass).toBeNull();
  });

  it('a case without a move has no follow figure; lines to the named site are not "to inactive"', () => {
    push = createPush(fakeNet, fakeWitness);
    const doc = PUSH_SENDERS.find((s) => s.documented)!;
    const t0 = 2_000_000;
    fs.writeFileSync(path.join(push.dir, `gen-${doc.port}.log`), '1 2000000\n2 2000100\n');
    fs.writeFileSync(path.join(pushLogDir(push.dir, 'primary'), `${doc.port}.log`), `${t0 + 5} tcp a seq=1\n${t0 + 105} tcp a seq=2\n`);
    // the primary's agent says "not active" (cut off from the witness) while the record names it
    const samples = Array.from({ length: 50 }, (_, i) => sample(t0 + i * 100, P, false, false));
    const r = push.rows({ name: 'no move', fromMs: t0, toMs: t0 + 5000, samples, siteOf, recordTtlS: 1 }).find((x) => x.documented)!;
    expect(r).toMatchObject({ follow_s: null, followed: null, lines_lost: 0, lines_to_inactive: 0, pass: true });
  });

  it('the collector unit runs the receivers in the background and execs the collector', () => {
    const cmd = collectorExec(P, '/usr/bin/vmagent -a=b');
    expect(cmd).toMatch(/^\/bin\/sh -c '.*--port 5514 >>\/var\/log\/fa-push\/5514\.log 2>\/dev\/null & .*--port 5515 .* & exec \/usr\/bin\/vmagent -a=b'$/);
    expect(() => collectorExec(P, 'x $HOME')).toThrow(/must not hold/);
  });
});
