import { describe, expect, it } from 'vitest';
import { StatusExit, statusVerdict } from '../../src/cli/status-verdict.js';
import { fakeStatus } from '../fixtures/status.js';

const base = fakeStatus();
const drStandby = fakeStatus({
  instance: 'dr',
  role: 'dr',
  phase: 'monitoring',
  active: false,
  reason: 'primary healthy and active',
});

describe('failoverctl status exit code', () => {
  it.each([
    ['the active primary', base, StatusExit.FINE, /active and healthy/],
    ['a monitoring DR', drStandby, StatusExit.FINE, /monitoring, healthy/],
    [
      'named but pending',
      fakeStatus({ phase: 'pending', active: false, reason: 'waiting ttl + max_skew' }),
      StatusExit.NOT_ACTIVE,
      /DNS names this site but it is not active \(pending\): waiting ttl \+ max_skew/,
    ],
    ['named but fenced', fakeStatus({ phase: 'fenced', active: false }), StatusExit.NOT_ACTIVE, /not active \(fenced\)/],
    [
      'the last read failed',
      fakeStatus({ dns: { ...base.dns, consecutiveFailures: 2, lastError: 'DNS_TIMEOUT: no answer' } }),
      StatusExit.DNS_UNREADABLE,
      /DNS unreadable: DNS_TIMEOUT: no answer/,
    ],
    ['no verified read yet', fakeStatus({ phase: 'starting', active: false, dns: { ...base.dns, readAgeSeconds: null } }), StatusExit.DNS_UNREADABLE, /no verified read yet/],
    [
      'active but the collector is down',
      fakeStatus({ healthy: false, unhealthyReason: 'collector is failed but should be running' }),
      StatusExit.UNHEALTHY,
      /not healthy: collector is failed/,
    ],
    [
      'a DR named by DNS that is not active',
      fakeStatus({ ...drStandby, phase: 'pending', sites: base.sites.map((s) => ({ ...s, named: s.role === 'dr' })) }),
      StatusExit.NOT_ACTIVE,
      /not active \(pending\)/,
    ],
  ])('%s', (_name, status, code, why) => {
    const v = statusVerdict(status);
    expect(v.code).toBe(code);
    expect(v.why).toMatch(why);
  });

  it('the codes are distinct from each other and from 1, 69, 77, 78', () => {
    const codes = Object.values(StatusExit);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect([1, 69, 77, 78]).not.toContain(c);
  });
});
