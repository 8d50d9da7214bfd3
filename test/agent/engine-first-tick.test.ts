/**
 * The engine's first tick on a DR (before any verified read it does not know who is named): it
 * reads the witness first and checks the primary's health only when the record does not name the
 * DR, so a restarted active DR neither waits for nor loads a checker it does not use.
 */
import { describe, expect, test } from 'vitest';

import { Engine, type WitnessPort } from '../../src/agent/engine.js';
import { NoCollector } from '../../src/collector/port.js';
import { loadConfig } from '../../src/config/load.js';
import type { HealthChecker, HealthResult } from '../../src/health/checks.js';
import type { Snapshot } from '../../src/lease/witness.js';
import { nullLogger } from '../../src/log/logger.js';
import { minimalToml } from '../fixtures/minimal-config.js';

const config = loadConfig('/etc/failover-agent/dr.toml', { text: `${minimalToml('dr')}[health]\ntargets = ["http://10.10.10.10:9465/healthz"]\n` });
const naming = (address: string): Snapshot => ({ addresses: [address], addressType: 'A', leaseText: null, lease: null });

function engineWith(read: () => Promise<Snapshot>): { engine: Engine; events: string[] } {
  const events: string[] = [];
  const witness: WitnessPort = {
    read: async () => {
      events.push('read');
      return read();
    },
    write: () => Promise.reject(new Error('no writes in this test')),
  };
  const health: HealthChecker = {
    check: async (): Promise<HealthResult> => {
      events.push('check');
      return { ok: true, detail: 'ok', results: [] };
    },
    close: async () => {},
  };
  const engine = new Engine({ config, witness, server: 'test', zone: 'example.com', health, collector: new NoCollector(), logger: nullLogger() });
  return { engine, events };
}

describe('a DR before its first verified read', () => {
  test('does not check the primary when the record names the DR', async () => {
    const { engine, events } = engineWith(async () => naming(config.sites.dr));
    await engine.tick();
    await engine.tick();
    expect(engine.hasVerifiedRead()).toBe(true);
    expect(events).toEqual(['read', 'read']);
  });

  test('checks the primary after the read when the record names the primary, in parallel afterwards', async () => {
    const { engine, events } = engineWith(async () => naming(config.sites.primary));
    await engine.tick();
    expect(events).toEqual(['read', 'check']);
    await engine.tick();
    expect(events.slice(2).sort()).toEqual(['check', 'read']);
  });

  test('checks the primary when the read fails (nothing known)', async () => {
    const { engine, events } = engineWith(() => Promise.reject(new Error('SERVFAIL')));
    await engine.tick();
    expect(engine.hasVerifiedRead()).toBe(false);
    expect(events).toEqual(['read', 'check']);
  });
});
