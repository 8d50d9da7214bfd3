/** The propagation check's pure parts: the in-sync judgement, the lag, lateness, the words. */
import { describe, expect, it } from 'vitest';
import { allInSync, answered, describe as words, lateNow, nextDelay, sameValue, startRound, toStatus, withServers, type PropagationState } from '../../src/propagation/policy.js';

const SITES = { primary: '10.10.10.10', dr: '10.20.20.20' };
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0); // 12:00:00.000 UTC
const ids = [
  { server: '127.0.0.1:5300', name: null },
  { server: '127.0.0.1:5301', name: 'ns2.example.test' },
  { server: '127.0.0.1:5302', name: null },
];

/** A takeover written at monotonic 1000 ms (wall 12:00:00.0), three servers known. */
function takeover(): PropagationState {
  return withServers(startRound(null, { values: ['10.20.20.20'], op: 'takeover', atMono: 1000, atWall: T0 }), ids);
}
const ok = (values: string[], serial = 7) => ({ ok: true as const, serial, values });
/** Answers in turn, each [server, values, monotonic ms] (wall time: 12:00:00.0 at monotonic 1000). */
const serve = (s: PropagationState, answers: [string, string[], number][]): PropagationState =>
  answers.reduce((st, [server, values, at]) => answered(st, server, ok(values), at, T0 + at - 1000), s);

describe('in sync', () => {
  it('is judged on the value: order and IPv6 case do not matter, a different or empty RRset is out', () => {
    expect(sameValue(['10.0.0.1', '10.0.0.2'], ['10.0.0.2', '10.0.0.1'])).toBe(true);
    expect(sameValue(['2001:DB8::1'], ['2001:db8::1'])).toBe(true);
    expect(sameValue(['10.0.0.1'], ['10.0.0.1', '10.0.0.2'])).toBe(false);
    expect(sameValue(['10.0.0.1'], [])).toBe(false);
  });

  it('a server with an older serial but the value written is in sync; one with the old value is not', () => {
    let s = answered(takeover(), '127.0.0.1:5300', ok(['10.20.20.20'], 9), 1100, T0 + 100);
    s = answered(s, '127.0.0.1:5301', ok(['10.20.20.20'], 3), 1200, T0 + 200);
    s = answered(s, '127.0.0.1:5302', ok(['10.10.10.10'], 9), 1300, T0 + 300);
    expect(s.servers.map((x) => [x.inSync, x.serial])).toEqual([[true, 9], [true, 3], [false, 9]]);
    expect(allInSync(s)).toBe(false);
  });

  it('a failed answer is out of sync and says why; a new value starts every server out of sync again', () => {
    let s = answered(takeover(), '127.0.0.1:5300', { ok: false, error: 'DNS_TIMEOUT: no answer' }, 1100, T0 + 100);
    expect(s.servers[0]).toMatchObject({ inSync: false, error: 'DNS_TIMEOUT: no answer', value: null });
    s = answered(s, '127.0.0.1:5300', ok(['10.20.20.20']), 1500, T0 + 500);
    expect(s.servers[0]).toMatchObject({ inSync: true, error: null, lagMs: 500 });
    s = startRound(s, { values: ['10.10.10.10'], op: 'failback', atMono: 9000, atWall: T0 + 8000 });
    expect(s.servers[0]).toMatchObject({ inSync: false, lagMs: null, value: ['10.20.20.20'], outSince: 9000 });
  });
});

describe('lag', () => {
  it('is from the write to the first answer serving the value, and stays that first one', () => {
    let s = takeover();
    s = answered(s, '127.0.0.1:5301', ok(['10.10.10.10']), 2000, T0 + 1000);
    s = answered(s, '127.0.0.1:5301', ok(['10.20.20.20']), 6250, T0 + 5250);
    s = answered(s, '127.0.0.1:5301', ok(['10.20.20.20']), 9000, T0 + 8000);
    expect(s.servers[1]).toMatchObject({ lagMs: 5250, sinceWall: T0 + 5250 });
  });

  it('propagation is the largest lag, once all serve it; none before', () => {
    let s = serve(takeover(), [
      ['127.0.0.1:5300', ['10.20.20.20'], 1010],
      ['127.0.0.1:5301', ['10.20.20.20'], 3200],
    ]);
    expect(toStatus(s, 'syslog.example.test', SITES, 30_000, 3200).propagation_seconds).toBeNull();
    s = answered(s, '127.0.0.1:5302', ok(['10.20.20.20']), 5200, T0 + 4200);
    const st = toStatus(s, 'syslog.example.test', SITES, 30_000, 5200);
    expect(st).toMatchObject({ propagation_seconds: 4.2, in_sync: 3, total: 3, all_in_sync_at: '2026-01-01T12:00:04.200Z', clients_follow_by: '2026-01-01T12:00:35.000Z', site: 'dr', op: 'takeover' });
    expect(st.servers.map((x) => x.lag_ms)).toEqual([10, 2200, 4200]);
  });
});

describe('late', () => {
  it('a server out of sync for propagation_timeout is late once, counted; back in sync it is no longer late', () => {
    let s = answered(takeover(), '127.0.0.1:5300', ok(['10.20.20.20']), 1100, T0 + 100);
    let r = lateNow(s, 30_999, 30_000);
    expect(r.late).toEqual([]);
    r = lateNow(r.state, 31_000, 30_000);
    expect(r.late.map((x) => x.server)).toEqual(['127.0.0.1:5301', '127.0.0.1:5302']);
    r = lateNow(r.state, 40_000, 30_000);
    expect(r.late).toEqual([]);
    expect(r.state.lateTotal).toBe(2);
    s = answered(r.state, '127.0.0.1:5301', ok(['10.20.20.20']), 41_000, T0 + 40_000);
    expect(s.servers[1]).toMatchObject({ late: false, inSync: true, lagMs: 40_000 });
    // A server that drops out later counts from when it did, not from the write.
    s = answered(s, '127.0.0.1:5300', { ok: false, error: 'DNS_TIMEOUT' }, 50_000, T0 + 49_000);
    expect(lateNow(s, 79_999, 30_000).late).toEqual([]);
    expect(lateNow(s, 80_000, 30_000).late.map((x) => x.server)).toEqual(['127.0.0.1:5300']);
  });

  it('polls fast while a server may still catch up, at verify_interval once all serve it or the rest are late', () => {
    let s = takeover();
    expect(nextDelay(s, 2000, 30_000, 250, 60_000)).toBe(250);
    expect(nextDelay(s, 31_000, 30_000, 250, 60_000)).toBe(60_000);
    for (const id of ids) s = answered(s, id.server, ok(['10.20.20.20']), 1500, T0 + 500);
    expect(nextDelay(s, 2000, 30_000, 250, 60_000)).toBe(60_000);
  });
});

describe('the words', () => {
  it('all in sync: which site, how many, since when, and when clients follow (TTL later, rounded up)', () => {
    const s = serve(takeover(), [
      ['127.0.0.1:5300', ['10.20.20.20'], 1100],
      ['127.0.0.1:5301', ['10.20.20.20'], 3000],
      ['127.0.0.1:5302', ['10.20.20.20'], 5200],
    ]);
    expect(words(s, 'dr', 30_000, 6000)).toBe("the DR's address is served by 3/3 servers since 12:00:04.2; clients follow by 12:00:35 UTC (record TTL 30 s)");
    expect(words(startRound(s, { values: ['10.10.10.10'], op: 'failback', atMono: 7000, atWall: T0 + 6000 }), 'primary', 30_000, 7000)).toMatch(
      /^the primary's address is served by 0\/3 servers; /,
    );
  });

  it('behind: who is not yet, for how long, late or not, and why', () => {
    let s = takeover();
    s = answered(s, '127.0.0.1:5300', ok(['10.20.20.20']), 1100, T0 + 100);
    s = answered(s, '127.0.0.1:5301', ok(['10.10.10.10']), 1200, T0 + 200);
    s = answered(s, '127.0.0.1:5302', { ok: false, error: 'DNS_TIMEOUT: no answer from 127.0.0.1:5302' }, 1300, T0 + 300);
    s = lateNow(s, 31_000, 30_000).state;
    expect(words(s, 'dr', 30_000, 31_000)).toBe(
      "the DR's address is served by 1/3 servers; 127.0.0.1:5301 not yet (30.0 s, LATE, serves 10.10.10.10); 127.0.0.1:5302 not yet (30.0 s, LATE, DNS_TIMEOUT: no answer from 127.0.0.1:5302)",
    );
  });

  it('no server to ask says so, and why', () => {
    const s = withServers(startRound(null, { values: ['10.0.0.9'], op: 'read', atMono: 0, atWall: T0 }), [], 'cannot list the authoritative servers: DNS_TIMEOUT');
    expect(words(s, null, 30_000, 0)).toBe('the address 10.0.0.9: no authoritative server to ask (cannot list the authoritative servers: DNS_TIMEOUT)');
  });
});
