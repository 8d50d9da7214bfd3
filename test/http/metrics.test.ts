/** /metrics series added for the operator's kit: counters that only rise, VM sync errors, webhook deliveries. */
import { describe, expect, it } from 'vitest';
import { DROPPED_DEFAULT_METRICS, Metrics } from '../../src/http/metrics.js';
import type { WebhookStats } from '../../src/vmsync/notify.js';
import { fakeGss, fakeStatus, fakeVmSync } from '../fixtures/status.js';

async function scrape(m: Metrics): Promise<string> {
  return (await m.render()).body;
}

describe('/metrics types and series', () => {
  it('running totals are counters; the VM sync error count is exported', async () => {
    const body = await scrape(new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus({ vmsync: fakeVmSync() }), { defaultMetrics: false }));
    for (const [name, value] of [
      ['failover_vmsync_samples_copied_total', 1200],
      ['failover_vmsync_samples_backfilled_total', 240],
      ['failover_vmsync_samples_exported_total', 400],
      ['failover_vmsync_errors_total', 3],
      ['failover_takeovers_total', 2],
    ] as const) {
      expect(body).toMatch(new RegExp(`^# TYPE ${name} counter$`, 'm'));
      expect(body).toMatch(new RegExp(`^${name} ${value}$`, 'm'));
    }
    expect(body).toMatch(/^# TYPE failover_vmsync_consecutive_errors gauge$/m);
    expect(body).toMatch(/^failover_vmsync_consecutive_errors 0$/m);
  });

  it('VM sync series are absent when vmsync is disabled (no made-up 0)', async () => {
    const body = await scrape(new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus(), { defaultMetrics: false }));
    expect(body).not.toMatch(/^failover_vmsync_\w+ /m);
  });

  it('webhook deliveries: sent, failed, dropped and the queue, live from the webhook', async () => {
    const stats: WebhookStats = { sent: 4, failed: 1, dropped: 2, queued: 3 };
    const m = new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus(), { defaultMetrics: false, webhook: () => stats });
    let body = await scrape(m);
    expect(body).toMatch(/^# TYPE failover_webhook_notifications_total counter$/m);
    for (const line of [
      'failover_webhook_notifications_total{result="sent"} 4',
      'failover_webhook_notifications_total{result="failed"} 1',
      'failover_webhook_notifications_total{result="dropped"} 2',
      'failover_webhook_queued 3',
    ]) {
      expect(body.split('\n')).toContain(line);
    }
    stats.failed = 5;
    body = await scrape(m);
    expect(body.split('\n')).toContain('failover_webhook_notifications_total{result="failed"} 5');
    const none = await scrape(new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus(), { defaultMetrics: false }));
    expect(none).not.toContain('failover_webhook');
  });

  it("prom-client's gauges named like counters are left out; their per-type gauges stay", async () => {
    const body = await scrape(new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus()));
    for (const name of DROPPED_DEFAULT_METRICS) expect(body).not.toContain(`${name} `);
    expect(body).toMatch(/^# TYPE nodejs_active_handles gauge$/m);
    // Every *_total left is a counter.
    const totals = [...body.matchAll(/^# TYPE (\w+_total) (\w+)$/gm)];
    expect(totals.length).toBeGreaterThan(3);
    for (const [, name, type] of totals) expect(type, name).toBe('counter');
  });

  it('GSS-TSIG: the context expiry as a unix timestamp and the failed renewals as a counter', async () => {
    let gss = fakeGss();
    const m = new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus({ gss }), { defaultMetrics: false });
    let body = await scrape(m);
    expect(body).toMatch(/^# HELP failover_gss_context_expiry_timestamp_seconds Unix time the GSS-TSIG context stops being usable/m);
    expect(body).toMatch(/^# TYPE failover_gss_context_expiry_timestamp_seconds gauge$/m);
    expect(body).toMatch(/^# TYPE failover_gss_renewal_failures_total counter$/m);
    const lines = body.split('\n');
    expect(lines).toContain(`failover_gss_context_expiry_timestamp_seconds ${Date.parse('2025-01-01T10:00:00.000Z') / 1000}`);
    expect(lines).toContain('failover_gss_renewal_failures_total 1');
    gss = fakeGss({ renewalFailures: 7, expiresAt: '2025-01-01T18:00:00.000Z' });
    body = await scrape(m);
    expect(body.split('\n')).toContain('failover_gss_renewal_failures_total 7');
    expect(body.split('\n')).toContain(`failover_gss_context_expiry_timestamp_seconds ${Date.parse('2025-01-01T18:00:00.000Z') / 1000}`);
  });

  it('GSS-TSIG before the first context: no expiry (never NaN), the failures counted from 0', async () => {
    const body = await scrape(
      new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus({ gss: fakeGss({ keyName: null, live: false, negotiatedAt: null, expiresAt: null, negotiations: 0, renewalFailures: 0, lastRenewalError: null }) }), {
        defaultMetrics: false,
      }),
    );
    expect(body).not.toMatch(/^failover_gss_context_expiry_timestamp_seconds /m);
    expect(body).not.toContain('NaN');
    expect(body.split('\n')).toContain('failover_gss_renewal_failures_total 0');
  });

  it('HMAC TSIG: no failover_gss_* series at all', async () => {
    const body = await scrape(new Metrics({ instance: 'dr', role: 'dr' }, () => fakeStatus(), { defaultMetrics: false }));
    expect(body).not.toMatch(/^failover_gss_\w+ /m);
  });
});
