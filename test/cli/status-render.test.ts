/** failoverctl status, the text: the GSS-TSIG line (dns.auth = "gss-tsig") and its absence with HMAC TSIG. */
import { describe, expect, it } from 'vitest';
import { renderGss, renderStatus } from '../../src/cli/agent-commands.js';
import type { GssContextStatus } from '../../src/dns/gss/context.js';
import { fakeStatus } from '../fixtures/status.js';

const NOW = Date.parse('2025-01-01T10:00:00.000Z');
const live: GssContextStatus = {
  principal: 'failover-agent@EXAMPLE.TEST',
  target: 'DNS/ns.example.test',
  keyName: '1234.sig-ns.example.test.',
  live: true,
  negotiatedAt: '2025-01-01T09:58:00.000Z',
  expiresAt: '2025-01-01T19:58:30.000Z',
  negotiations: 1,
  renewalFailures: 0,
  lastRenewalError: null,
};

describe('failoverctl status: the gss line', () => {
  it('a live context: for whom, expires in (whole minutes), no failures', () => {
    expect(renderGss(live, NOW)).toBe(
      'gss      context for failover-agent@EXAMPLE.TEST with DNS/ns.example.test, expires in 9h58m (2025-01-01T19:58:30.000Z), 0 renewal failures',
    );
  });

  it('failed renewals while the context lives: their count and the last error in words', () => {
    const g = { ...live, renewalFailures: 3, lastRenewalError: { text: 'Cannot contact any KDC for realm EXAMPLE.TEST', at: '2025-01-01T09:59:00.000Z', why: 'renewal' as const } };
    expect(renderGss(g, NOW)).toBe(
      'gss      context for failover-agent@EXAMPLE.TEST with DNS/ns.example.test, expires in 9h58m (2025-01-01T19:58:30.000Z), 3 renewal failures; ' +
        'last error (renewal, 2025-01-01T09:59:00.000Z): Cannot contact any KDC for realm EXAMPLE.TEST',
    );
  });

  it('under a minute left: seconds', () => {
    expect(renderGss({ ...live, expiresAt: '2025-01-01T10:00:42.500Z' }, NOW)).toMatch(/expires in 42s /);
  });

  it('an expired context says NO live context and since when', () => {
    const g = { ...live, live: false, expiresAt: '2025-01-01T09:55:00.000Z', renewalFailures: 1, lastRenewalError: { text: 'KDC down', at: '2025-01-01T09:56:00.000Z', why: 'expired' as const } };
    expect(renderGss(g, NOW)).toBe(
      'gss      NO live context for failover-agent@EXAMPLE.TEST with DNS/ns.example.test: the last one ended 5m ago (2025-01-01T09:55:00.000Z), 1 renewal failure; last error (expired, 2025-01-01T09:56:00.000Z): KDC down',
    );
  });

  it('before the first negotiation (target not found yet)', () => {
    const g = { ...live, target: null, keyName: null, live: false, negotiatedAt: null, expiresAt: null, negotiations: 0 };
    expect(renderGss(g, NOW)).toBe('gss      no context yet for failover-agent@EXAMPLE.TEST, 0 renewal failures');
  });

  it('renderStatus puts the line after dns with gss-tsig, and none with HMAC TSIG', () => {
    const lines = renderStatus(fakeStatus({ gss: live }), NOW).split('\n');
    const dns = lines.findIndex((l) => l.startsWith('dns '));
    expect(lines[dns + 1]).toBe(renderGss(live, NOW));
    expect(renderStatus(fakeStatus(), NOW)).not.toMatch(/^gss /m);
  });
});
