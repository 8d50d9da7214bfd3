import { describe, expect, test } from 'vitest';

import { validateConfig } from '../../src/config/load.js';
import { lostRoundsTolerated, marginWarnings } from '../../src/config/margins.js';
import type { Config } from '../../src/config/schema.js';
import { minimalToml } from '../fixtures/minimal-config.js';

function config(role: 'primary' | 'dr', extra = ''): Config {
  const text = `${minimalToml(role)}${extra}`;
  const { config: c, issues } = validateConfig(text, 'test.toml');
  expect(issues).toEqual([]);
  return c!;
}

describe('margin rule for a lossy WAN', () => {
  test('the defaults survive two wholly lost renewal rounds: no warning', () => {
    const c = config('dr'); // ttl 30 s, max_skew 5 s, renew 10 s, dns.timeout 2 s x 3 attempts
    expect(lostRoundsTolerated(c)).toBe(2);
    expect(marginWarnings(c, 1)).toEqual([]);
  });

  test("the issue's WAN timings (ttl 6 s, renew 1 s, max_skew 1 s, dns 500 ms x 3) survive two", () => {
    const c = config('dr', 'timeout = "500ms"\n[lease]\nttl = "6s"\nrenew_interval = "1s"\nmax_skew = "1s"');
    expect(lostRoundsTolerated(c)).toBe(2);
    expect(marginWarnings(c)).toEqual([]);
  });

  test('a tighter lease warns on lease.ttl, naming the arithmetic', () => {
    const c = config('primary', 'timeout = "2s"\n[lease]\nttl = "20s"\nrenew_interval = "10s"\nmax_skew = "5s"');
    expect(lostRoundsTolerated(c)).toBe(0);
    const w = marginWarnings(c);
    expect(w).toHaveLength(1);
    expect(w[0]!.key).toBe('lease.ttl');
    expect(w[0]!.message).toMatch(/survives 0 wholly lost renewal exchange\(s\) in a row \(want >= 2\)/);
    expect(w[0]!.message).toMatch(/\+ 250ms before the next/);
  });

  test('what a lost exchange really costs: the budget and the wait before the next; a measured round trip counts twice', () => {
    // ttl 6, max_skew 1, renew 1, 500 ms x 3: (6 - 1 - 1) / (1.5 + 0.25) = 2.28: two exchanges
    const c = config('dr', 'timeout = "500ms"\n[lease]\nttl = "6s"\nrenew_interval = "1s"\nmax_skew = "1s"');
    expect(lostRoundsTolerated(c, 200)).toBe(2); // (4 - 0.4) / 1.75 = 2.06
    expect(lostRoundsTolerated(c, 300)).toBe(1); // (4 - 0.6) / 1.75 = 1.94
    expect(marginWarnings(c, 300).map((w) => w.key)).toEqual(['lease.ttl']);
    // the old rule, one budget per round and nothing else, said 2 for 500 ms x 4 attempts: it is 1
    const four = config('dr', 'timeout = "500ms"\nretries = 3\n[lease]\nttl = "6s"\nrenew_interval = "1s"\nmax_skew = "1s"');
    expect(lostRoundsTolerated(four)).toBe(1);
  });

  test('health.timeout below 3 x the measured DNS round trip warns (DR only)', () => {
    const dr = config('dr', '[health]\ntargets = ["http://10.10.10.10:9100/healthz"]\ntimeout = "500ms"');
    expect(marginWarnings(dr, 166)).toEqual([]);
    const w = marginWarnings(dr, 200);
    expect(w.map((x) => x.key)).toEqual(['health.timeout']);
    expect(w[0]!.message).toMatch(/below 3 x the measured DNS round trip \(200\.0 ms\)/);
    expect(marginWarnings(config('primary', '[health]\ntimeout = "500ms"'), 200)).toEqual([]);
  });
});
