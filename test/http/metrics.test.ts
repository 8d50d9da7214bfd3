/** /metrics series added for the operator's kit: counters that only rise, VM sync errors, webhook deliveries. */
import { describe, expect, it } from 'vitest';
import { DROPPED_DEFAULT_METRICS, Metrics } from '../../src/http/metrics.js';
import type { WebhookStats } from '../../src/vmsync/notify.js';
import { fakeStatus, fakeVmSync } from '../fixtures/status.js';

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
});
