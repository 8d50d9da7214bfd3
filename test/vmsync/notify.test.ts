/** Webhook: Slack/Teams JSON, order, bounded retries, bounded queue, never blocks, bounded close. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';

import { nullLogger } from '../../src/log/logger.js';
import { Webhook } from '../../src/vmsync/notify.js';

interface Hit {
  event: string | undefined;
  type: string | undefined;
  body: unknown;
}

const servers: http.Server[] = [];
const hooks: Webhook[] = [];

afterEach(async () => {
  await Promise.all(hooks.splice(0).map((h) => h.close(200)));
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function receiver(answer: (n: number) => number | 'hang'): Promise<{ url: string; hits: Hit[] }> {
  const hits: Hit[] = [];
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hits.push({ event: req.headers['x-failover-agent-event'] as string, type: req.headers['content-type'], body: JSON.parse(Buffer.concat(chunks).toString()) });
      const a = answer(hits.length);
      if (a === 'hang') return;
      res.statusCode = a;
      res.end('ok');
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`, hits };
}

function hook(url: string, opts: Partial<ConstructorParameters<typeof Webhook>[1]> = {}): Webhook {
  const h = new Webhook(url, { logger: nullLogger(), timeoutMs: 1_000, retries: 2, backoffMs: 20, ...opts });
  hooks.push(h);
  return h;
}

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Webhook', () => {
  test('posts {"text"} as JSON, in order, with the event in a header', async () => {
    const r = await receiver(() => 200);
    const h = hook(r.url);
    expect(h.send('gap_found', 'two gaps')).toBe(true);
    h.send('repair_done', 'fixed');
    await until(() => h.stats().sent === 2);
    expect(r.hits).toEqual([
      { event: 'gap_found', type: 'application/json', body: { text: 'two gaps' } },
      { event: 'repair_done', type: 'application/json', body: { text: 'fixed' } },
    ]);
    expect(h.stats()).toEqual({ sent: 2, failed: 0, dropped: 0, queued: 0 });
  });

  test('5xx is retried a bounded number of times; 4xx is not retried', async () => {
    const r = await receiver(() => 503);
    const h = hook(r.url, { retries: 2 });
    h.send('x', 'y');
    await until(() => h.stats().failed === 1);
    expect(r.hits).toHaveLength(3);
    const r4 = await receiver(() => 404);
    const h4 = hook(r4.url, { retries: 2 });
    h4.send('x', 'y');
    await until(() => h4.stats().failed === 1);
    expect(r4.hits).toHaveLength(1);
  });

  test('a flaky receiver gets the message on a retry', async () => {
    const r = await receiver((n) => (n === 1 ? 500 : 200));
    const h = hook(r.url);
    h.send('failback_ready', 'FAILBACK READY');
    await until(() => h.stats().sent === 1);
    expect(r.hits).toHaveLength(2);
  });

  test('a hung receiver: send() returns at once, the queue is bounded (oldest dropped), close() is bounded', async () => {
    const r = await receiver(() => 'hang');
    const h = hook(r.url, { timeoutMs: 10_000, maxQueue: 3 });
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) h.send('e', `message ${i}`);
    expect(performance.now() - t0).toBeLessThan(50);
    await until(() => r.hits.length === 1);
    // 1 in flight, 3 waiting, 6 dropped
    expect(h.stats()).toMatchObject({ queued: 3, dropped: 6 });
    const c0 = performance.now();
    await h.close(300);
    expect(performance.now() - c0).toBeLessThan(1_500);
    expect(h.send('e', 'after close')).toBe(false);
    expect(r.hits).toHaveLength(1);
  });

  test('per-attempt timeout', async () => {
    const r = await receiver(() => 'hang');
    const h = hook(r.url, { timeoutMs: 200, retries: 1 });
    h.send('e', 'x');
    await until(() => h.stats().failed === 1, 5_000);
    expect(r.hits).toHaveLength(2);
  });

  test('close() waits for a healthy queue to drain', async () => {
    const r = await receiver(() => 200);
    const h = new Webhook(r.url, { logger: nullLogger() });
    for (let i = 0; i < 5; i++) h.send('e', String(i));
    await h.close(5_000);
    expect(r.hits.map((x) => (x.body as { text: string }).text)).toEqual(['0', '1', '2', '3', '4']);
  });
});
