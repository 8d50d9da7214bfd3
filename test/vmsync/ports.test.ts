/**
 * The HTTP clients take their port: a VmClient, the Webhook sender and the health checker each
 * send through an injected undici Dispatcher (here a MockAgent with the network off), and VmSync
 * builds its VM clients through its `vmClient` option: what the simulator and the benchmarks
 * use instead of patching prototypes.
 */
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';

import { createHealthChecker } from '../../src/health/checks.js';
import { nullLogger } from '../../src/log/logger.js';
import { Webhook } from '../../src/vmsync/notify.js';
import { VmClient } from '../../src/vmsync/vm-client.js';

const agents: MockAgent[] = [];
function mockAgent(): MockAgent {
  const m = new MockAgent();
  m.disableNetConnect();
  agents.push(m);
  return m;
}
afterEach(async () => {
  for (const m of agents.splice(0)) await m.close();
});

describe('an injected dispatcher carries every request', () => {
  it('VmClient: query_range answered by the port, never the network', async () => {
    const m = mockAgent();
    m.get('http://vm.invalid:8428')
      .intercept({ path: (p) => p.startsWith('/api/v1/query_range?') && p.includes('nocache=1'), method: 'GET' })
      .reply(200, { status: 'success', data: { resultType: 'matrix', result: [{ metric: {}, values: [[60, '5']] }] } });
    const vm = new VmClient('http://vm.invalid:8428', { timeoutMs: 1000, retries: 0, logger: nullLogger(), dispatcher: m });
    const series = await vm.queryRange('up', 0, 60_000, 60_000);
    expect(series[0]!.values).toEqual([[60_000, 5]]);
    await vm.close(); // the caller's dispatcher stays open
    m.assertNoPendingInterceptors();
  });

  it('Webhook: the notification goes to the port', async () => {
    const m = mockAgent();
    const bodies: unknown[] = [];
    m.get('http://hook.invalid')
      .intercept({ path: '/x', method: 'POST' })
      .reply(200, (opts) => {
        bodies.push(JSON.parse(String(opts.body)));
        return 'ok';
      });
    const hook = new Webhook('http://hook.invalid/x', { logger: nullLogger(), retries: 0, dispatcher: m });
    hook.send('failover', 'the DR took over');
    await hook.close(2000);
    expect(bodies).toEqual([{ text: 'the DR took over' }]);
    expect(hook.stats()).toMatchObject({ sent: 1, failed: 0 });
  });

  it('health checker: the verdict from the port', async () => {
    const m = mockAgent();
    m.get('http://primary.invalid:9100').intercept({ path: '/healthz', method: 'GET' }).reply(503, 'down');
    const checker = createHealthChecker({ targets: ['http://primary.invalid:9100/healthz'], require: 'any', timeout: 1000 }, { dispatcher: m });
    const r = await checker.check();
    await checker.close();
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/503/);
    m.assertNoPendingInterceptors();
  });
});
