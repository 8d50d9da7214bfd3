/**
 * The propagation check's runner on a fake clock with a fake AuthorityPort (the port a test
 * replaces, nothing patched): rounds on writes and on changed reads, the lag, a late server logged,
 * counted and notified once, its catching up; and that no decision reads any of it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../src/clock.js';
import { DnsError } from '../../src/dns/errors.js';
import { Metrics } from '../../src/http/metrics.js';
import type { Logger } from '../../src/log/logger.js';
import type { AuthorityPort, VerifyServer } from '../../src/propagation/authority.js';
import { PropagationVerifier } from '../../src/propagation/verifier.js';
import { fakeStatus } from '../fixtures/status.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

class FakeClock implements Clock {
  now = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  monotonicMs = (): number => this.now;
  wallMs = (): number => T0 + this.now;
  setTimer(fn: () => void, ms: number): TimerHandle {
    const id = this.next++;
    this.timers.set(id, { at: this.now + ms, fn });
    return id as unknown as TimerHandle;
  }
  cancel(t: TimerHandle | undefined): void {
    this.timers.delete(t as unknown as number);
  }
  /** Runs every timer due within `ms`, in order, letting each one's promise chain settle. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (let i = 0; i < 10_000; i++) {
      await settle();
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = end;
    await settle();
  }
}
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

function recordingLogger(): Logger & { lines: { level: string; msg: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push({ level, msg, fields });
  const l = {
    lines,
    emerg: at('emerg'), alert: at('alert'), crit: at('crit'), error: at('error'), warning: at('warning'), notice: at('notice'), info: at('info'), debug: at('debug'),
    child: () => l,
    setLevel: () => {},
  };
  return l as unknown as Logger & { lines: typeof lines };
}

/** Three servers; each serves what `serving[server]` says at the clock's time, or does not answer. */
function fakePort(clock: FakeClock, serving: Record<string, (t: number) => string[] | 'down'>): AuthorityPort & { asked: number } {
  const servers: VerifyServer[] = Object.keys(serving).map((server) => ({ server, name: null, host: '127.0.0.1', port: Number(server.split(':')[1]) }));
  const port = {
    asked: 0,
    servers: async () => ({ servers, unresolved: [] }),
    ask: async (s: VerifyServer) => {
      port.asked++;
      const v = serving[s.server]!(clock.now);
      if (v === 'down') throw new DnsError('DNS_TIMEOUT', `no answer from ${s.server}`);
      return { serial: 10, values: v };
    },
  };
  return port;
}

function verifier(clock: FakeClock, port: AuthorityPort, logger: Logger, notified: [string, string][]) {
  return new PropagationVerifier({
    port,
    clock,
    logger,
    record: 'syslog.example.test',
    sites: { primary: '10.10.10.10', dr: '10.20.20.20' },
    recordTtlMs: 30_000,
    verifyIntervalMs: 60_000,
    propagationTimeoutMs: 30_000,
    notify: (e, t) => void notified.push([e, t]),
  });
}

const DR = ['10.20.20.20'];
const PRIMARY = ['10.10.10.10'];
/** Serves the primary's address until `at`, the DR's after. */
const switchesAt = (at: number) => (t: number) => (t >= at ? DR : PRIMARY);

describe('PropagationVerifier', () => {
  it('after a takeover: asks until each server serves it, with each lag (at the fast poll resolution) and the words', async () => {
    const clock = new FakeClock();
    const logger = recordingLogger();
    const port = fakePort(clock, { '127.0.0.1:1': switchesAt(0), '127.0.0.1:2': switchesAt(2100), '127.0.0.1:3': switchesAt(5000) });
    const v = verifier(clock, port, logger, []);
    v.start();
    v.written(DR, 'takeover', 0);
    await clock.advance(4000);
    expect(v.status()!.servers.map((s) => [s.in_sync, s.lag_ms])).toEqual([[true, 0], [true, 2250], [false, null]]);
    await clock.advance(2000);
    const st = v.status()!;
    expect(st.servers.map((s) => s.lag_ms)).toEqual([0, 2250, 5000]);
    expect(st).toMatchObject({ op: 'takeover', site: 'dr', in_sync: 3, total: 3, propagation_seconds: 5, late_total: 0 });
    expect(st.summary).toBe("the DR's address is served by 3/3 servers since 12:00:05.0; clients follow by 12:00:35 UTC (record TTL 30 s)");
    expect(logger.lines.filter((l) => l.fields.event === 'propagation_done').map((l) => l.msg)).toEqual([st.summary]);
    // Then only every verify_interval: 3 queries a minute, not 12 a second.
    const asked = port.asked;
    await clock.advance(60_000);
    expect(port.asked - asked).toBe(3);
  });

  it('a server that does not catch up within propagation_timeout: warned, counted and notified once; caught up later, the status says so', async () => {
    const clock = new FakeClock();
    const logger = recordingLogger();
    const notified: [string, string][] = [];
    let down = true;
    const port = fakePort(clock, { '127.0.0.1:1': switchesAt(0), '127.0.0.1:2': (t) => (down ? 'down' : switchesAt(0)(t)) });
    const v = verifier(clock, port, logger, notified);
    v.start();
    v.written(DR, 'takeover', 0);
    await clock.advance(29_900);
    expect(v.status()!.late_total).toBe(0);
    expect(notified).toEqual([]);
    await clock.advance(200);
    let st = v.status()!;
    expect(st.late_total).toBe(1);
    expect(st.servers[1]).toMatchObject({ in_sync: false, late: true, error: 'DNS_TIMEOUT: no answer from 127.0.0.1:2' });
    expect(st.summary).toMatch(/served by 1\/2 servers; 127\.0\.0\.1:2 not yet \(30\.\d s, LATE, DNS_TIMEOUT/);
    const warned = logger.lines.filter((l) => l.level === 'warning');
    expect(warned.map((l) => l.fields.event)).toEqual(['propagation_late']);
    expect(notified).toEqual([['propagation_late', warned[0]!.msg]]);
    expect(warned[0]!.msg).toMatch(/^127\.0\.0\.1:2 does not serve syslog\.example\.test = 10\.20\.20\.20 after 30 s: DNS_TIMEOUT/);
    // /metrics shows it: out of sync, counted, no propagation time yet.
    const body = (await new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus({ propagation: st }), { defaultMetrics: false }).render()).body.split('\n');
    expect(body).toEqual(expect.arrayContaining(['failover_dns_server_in_sync{server="127.0.0.1:1"} 1', 'failover_dns_server_in_sync{server="127.0.0.1:2"} 0', 'failover_dns_propagation_late_total 1']));
    expect(body.some((l) => l.startsWith('failover_dns_propagation_seconds '))).toBe(false);
    // Still late a while later: not reported again.
    await clock.advance(120_000);
    expect(notified.length).toBe(1);
    // Back: at the next pass (verify_interval) it serves the value; caught up, and the words say 2/2.
    down = false;
    await clock.advance(60_000);
    st = v.status()!;
    expect(st.servers[1]).toMatchObject({ in_sync: true, late: false, error: null });
    expect(st.in_sync).toBe(2);
    expect(st.summary).toMatch(/^the DR's address is served by 2\/2 servers since /);
    expect(logger.lines.some((l) => l.fields.event === 'propagation_caught_up' && l.fields.server === '127.0.0.1:2')).toBe(true);
    expect(st.late_total).toBe(1);
  });

  it('settled() waits for a pass of the value written, then for every server to serve it or be late; answeringOnly (failoverctl init) not for one that does not answer', async () => {
    const clock = new FakeClock();
    const port = fakePort(clock, { '127.0.0.1:1': switchesAt(0), '127.0.0.1:2': () => 'down' });
    const v = verifier(clock, port, recordingLogger(), []);
    v.start();
    v.written(DR, 'init', 0);
    let settled = false;
    let answering = false;
    void v.settled().then(() => (settled = true));
    void v.settled({ answeringOnly: true }).then(() => (answering = true));
    await clock.advance(0);
    expect(answering).toBe(true); // the first pass: :1 serves the value, :2 errs
    expect(v.status()).toMatchObject({ in_sync: 1, total: 2 });
    await clock.advance(29_900);
    expect(settled).toBe(false);
    await clock.advance(200);
    expect(settled).toBe(true);
    expect(v.status()).toMatchObject({ in_sync: 1, total: 2, late_total: 1 });
  });

  it('a read of the value being verified starts nothing; a changed one (a move made elsewhere) starts a round from the read', async () => {
    const clock = new FakeClock();
    const port = fakePort(clock, { '127.0.0.1:1': switchesAt(0) });
    const v = verifier(clock, port, recordingLogger(), []);
    v.start();
    v.seen(PRIMARY);
    await clock.advance(1000);
    expect(v.status()).toMatchObject({ op: 'read', value: PRIMARY, in_sync: 0 });
    v.written(DR, 'takeover', 1000);
    await clock.advance(500);
    v.seen(DR);
    await clock.advance(500);
    expect(v.status()).toMatchObject({ op: 'takeover', in_sync: 1, written_at: new Date(T0 + 1000).toISOString() });
  });
});

describe('informational only', () => {
  it('neither the decision core nor the lease logic imports the propagation check', () => {
    const src = fileURLToPath(new URL('../../src', import.meta.url));
    for (const dir of ['core', 'lease']) {
      for (const f of fs.readdirSync(path.join(src, dir))) {
        expect(fs.readFileSync(path.join(src, dir, f), 'utf8'), `${dir}/${f}`).not.toMatch(/propagation\//);
      }
    }
  });
});
