/**
 * The other site's readiness (health.peer_targets), asked every health.interval in its own loop:
 * an answer counts while it was ASKED for within two intervals and a timeout. Counted from its
 * arrival instead, an answer held up (in this process, stopped meanwhile) looked fresh however old
 * it was: the simulator found a DR frozen 25 s handing the job to a primary frozen since (seed
 * 3133307).
 */
import { describe, expect, test } from 'vitest';

import { Engine, type WitnessPort } from '../../src/agent/engine.js';
import { NoCollector } from '../../src/collector/port.js';
import { loadConfig } from '../../src/config/load.js';
import type { PeerReport } from '../../src/core/decide.js';
import type { PeerPort } from '../../src/health/peer.js';
import { formatLease, type Lease } from '../../src/lease/lease.js';
import type { Snapshot } from '../../src/lease/witness.js';
import { nullLogger } from '../../src/log/logger.js';
import { ManualClock } from '../fixtures/manual-clock.js';
import { minimalToml } from '../fixtures/minimal-config.js';

const config = loadConfig('/etc/failover-agent/primary.toml', { text: minimalToml('primary') });
const lease: Lease = { holder: 'primary', epoch: 1, seq: 1, at: 1 };
const seen: Snapshot = { addresses: [config.sites.primary], addressType: 'A', leaseText: [formatLease(lease)], lease, controlText: null, control: { pause: null, handover: null } };

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** An engine whose peer checks wait until the test answers them (`answer`). */
async function world() {
  const clock = new ManualClock();
  const witness: WitnessPort = { read: async () => seen, write: async (_s, next) => ({ snapshot: { ...seen, lease: next.lease, leaseText: [formatLease(next.lease)] }, rttMs: 1 }) };
  const asks: ((r: PeerReport) => void)[] = [];
  const peer: PeerPort = { check: () => new Promise<PeerReport>((resolve) => asks.push(resolve)), close: async () => undefined };
  const engine = new Engine({ config, witness, server: 'test', zone: 'example.com', health: null, collector: new NoCollector(), logger: nullLogger(), clock, peer });
  await engine.start();
  clock.advance(0); // the first peer check is due at once
  await flush();
  return { clock, engine, asks };
}

const ready: PeerReport = { ready: true, detail: 'witness readable, collector unit inactive', collectorBroken: null };
const maxAge = 2 * config.health.interval + config.health.timeout;

describe('the peer answer and its age', () => {
  test('an answer that comes promptly counts, its age from the ask', async () => {
    const { clock, engine, asks } = await world();
    expect(asks).toHaveLength(1);
    clock.advance(200);
    asks[0]!(ready);
    await flush();
    expect(engine.job().peer).toMatchObject({ ready: true, ageSeconds: 0.2 });
    await engine.stop();
  });

  test('an answer delivered long after its ask (a stopped process) does not count: it says nothing of now', async () => {
    const { clock, engine, asks } = await world();
    clock.advance(maxAge + 2_000);
    asks[0]!(ready);
    await flush();
    expect(engine.job().peer).toBeNull();
    await engine.stop();
  });
});
