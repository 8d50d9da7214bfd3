import { describe, expect, test } from 'vitest';

import { changedKeys, LIVE_KEYS, planReload } from '../../src/agent/reload.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { minimalToml } from '../fixtures/minimal-config.js';

const BASE = `${minimalToml('dr')}[health]
targets = ["http://10.10.10.10:9465/healthz"]
failures = 3
[vmsync]
enabled = true
remote_url = "http://10.10.10.10:8428"
`;

const conf = (text: string, file = '/etc/failover-agent/dr.toml'): Config => loadConfig(file, { text });

describe('reload', () => {
  test('changedKeys names the differing leaves by their TOML path; arrays compare whole', () => {
    expect(changedKeys({ a: { b: 1, c: [1, 2] }, d: 'x' }, { a: { b: 2, c: [1, 2] }, d: 'x' })).toEqual(['a.b']);
    expect(changedKeys({ a: { c: [1, 2] } }, { a: { c: [2, 1] } })).toEqual(['a.c']);
    expect(changedKeys({ a: 1 }, { a: 1, b: undefined })).toEqual([]);
    expect(changedKeys({ a: 1 }, { a: 1, b: 2 })).toEqual(['b']);
  });

  test('timings, thresholds and the log level apply live', () => {
    const next = conf(
      BASE.replace('failures = 3', 'failures = 4\ninterval = "5s"') +
        '[lease]\nttl = "40s"\n[collector]\nself_fence = true\ninterval = "3s"\n[log]\nlevel = "debug"\n',
    );
    expect(planReload(conf(BASE), next)).toEqual({
      apply: ['collector.interval', 'collector.self_fence', 'health.failures', 'health.interval', 'lease.ttl', 'log.level'],
      restart: [],
    });
  });

  test('what is built at start needs a restart, and a mixed change is refused whole', () => {
    const next = conf(BASE.replace('10.10.10.10:9465', '10.10.10.11:9465').replace('http://10.10.10.10:8428', 'http://10.10.10.12:8428').replace('failures = 3', 'failures = 5'));
    expect(planReload(conf(BASE), next)).toEqual({ apply: ['health.failures'], restart: ['health.targets', 'vmsync.remote_url'] });
    expect(planReload(conf(BASE), conf(BASE.replace('"/etc/failover-agent/tsig.key"', '"/etc/failover-agent/other.key"'))).restart).toEqual(['dns.key_file']);
    expect(planReload(conf(BASE), conf(BASE.replace('role = "dr"', 'role = "primary"'))).restart).toContain('role');
  });

  test('the same settings read again change nothing (the file path is not a setting)', () => {
    expect(planReload(conf(BASE), conf(BASE, '/etc/failover-agent/dr.toml'))).toEqual({ apply: [], restart: [] });
  });

  test('every live key exists in the configuration', () => {
    const c = conf(BASE) as unknown as Record<string, Record<string, unknown>>;
    for (const k of LIVE_KEYS) {
      const [section, key] = k.split('.');
      expect(c[section!], k).toHaveProperty(key!);
    }
  });
});
