/**
 * The other site's readiness (src/health/peer.ts) through an injected undici MockAgent: only an
 * answer that says `job.ready` confirms a peer; an agent of an earlier version (no `job`), a body
 * that is not JSON, an error or no answer within the timeout never do.
 */
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createPeerChecker } from '../../src/health/peer.js';

const ORIGIN = 'http://10.10.10.10:9465';
const TARGET = `${ORIGIN}/healthz`;

let agent: MockAgent;
afterEach(async () => {
  await agent?.close();
});

function mock(): ReturnType<MockAgent['get']> {
  agent = new MockAgent();
  agent.disableNetConnect();
  return agent.get(ORIGIN);
}

describe('peer readiness', () => {
  it('ready when the other agent says so (a 503 body counts too: readiness is its own field)', async () => {
    const pool = mock();
    pool.intercept({ path: '/healthz', method: 'GET' }).reply(200, { healthy: true, job: { ready: true, ready_detail: 'witness readable, collector unit inactive', collector_broken: null, paused: false } });
    pool.intercept({ path: '/healthz', method: 'GET' }).reply(503, { healthy: false, job: { ready: false, ready_detail: 'its collector unit is failed', collector_broken: 'the collector unit is failed', paused: false } });
    const p = createPeerChecker([TARGET], 1000, { dispatcher: agent });
    expect(await p.check()).toEqual({ ready: true, detail: 'witness readable, collector unit inactive', collectorBroken: null });
    expect(await p.check()).toEqual({ ready: false, detail: 'its collector unit is failed', collectorBroken: 'the collector unit is failed' });
  });

  it('an agent of an earlier version (no job), a body that is not JSON, a refused connection: not confirmed', async () => {
    const pool = mock();
    pool.intercept({ path: '/healthz', method: 'GET' }).reply(200, { healthy: true, build: { version: '0.0.9' } });
    pool.intercept({ path: '/healthz', method: 'GET' }).reply(200, 'OK');
    pool.intercept({ path: '/healthz', method: 'GET' }).replyWithError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const p = createPeerChecker([TARGET], 1000, { dispatcher: agent });
    const old = await p.check();
    expect(old.ready).toBe(false);
    expect(old.detail).toMatch(/does not report readiness \(agent 0.0.9: upgrade it\)/);
    expect((await p.check()).detail).toMatch(/not JSON/);
    const refused = await p.check();
    expect(refused.ready).toBe(false);
    expect(refused.detail).toMatch(/ECONNREFUSED/);
  });

  it('no answer within the timeout: not confirmed, said so; a tcp:// target cannot report readiness', async () => {
    const pool = mock();
    pool.intercept({ path: '/healthz', method: 'GET' }).reply(200, { job: { ready: true } }).delay(500);
    const p = createPeerChecker([TARGET], 50, { dispatcher: agent });
    const r = await p.check();
    expect(r).toMatchObject({ ready: false, collectorBroken: null });
    expect(r.detail).toMatch(/no answer within 50 ms/);
    const tcp = createPeerChecker(['tcp://10.10.10.10:9465'], 50, { dispatcher: agent });
    expect((await tcp.check()).detail).toMatch(/only http\(s\) targets report readiness/);
  });

  it('two targets: ready when either says so', async () => {
    const pool = mock();
    pool.intercept({ path: '/healthz', method: 'GET' }).reply(200, { job: { ready: false, ready_detail: 'paused' } });
    pool.intercept({ path: '/other', method: 'GET' }).reply(200, { job: { ready: true, ready_detail: 'ok' } });
    const p = createPeerChecker([TARGET, `${ORIGIN}/other`], 1000, { dispatcher: agent });
    expect((await p.check()).ready).toBe(true);
  });
});
