/**
 * The deterministic simulator in CI: fixed seeds of the real Engine pair under faults (no violation),
 * the checker shown to fail (clock rates beyond max_skew break invariant 1), and exact replay.
 * `npm run sim -- --seeds N --hours H` runs more; README "Simulation".
 */
import { describe, expect, it } from 'vitest';
import { simulate } from './world.js';

const CI_SEEDS = Array.from({ length: 24 }, (_, i) => 1000 + i);
const CI_HOURS = 4;

describe('simulator: the real Engine of both sites under faults', () => {
  it(`${CI_SEEDS.length} seeds x ${CI_HOURS} simulated hours: no invariant violated`, { timeout: 600_000 }, async () => {
    const bad: string[] = [];
    let hours = 0;
    let takeovers = 0;
    for (const seed of CI_SEEDS) {
      const r = await simulate({ seed, hours: CI_HOURS });
      hours += r.simulatedMs / 3.6e6;
      takeovers += r.stats.takeovers ?? 0;
      if (r.violation) bad.push(`seed ${seed}: ${r.violation}\n${r.trace.slice(-40).join('\n')}`);
    }
    console.log(`sim: ${CI_SEEDS.length} seeds, ${Math.round(hours)} simulated hours, ${bad.length} violations, ${takeovers} takeovers`);
    expect(bad).toEqual([]);
    expect(hours).toBeGreaterThanOrEqual(CI_SEEDS.length * CI_HOURS - 1);
    expect(takeovers).toBeGreaterThan(CI_SEEDS.length); // the faults really moved the record
  });

  it('the checker can fail: clock rates beyond what max_skew tolerates break invariant 1', { timeout: 120_000 }, async () => {
    const found: string[] = [];
    for (let seed = 1; seed <= 6 && found.length === 0; seed++) {
      const r = await simulate({ seed, hours: 2, unsafeDrift: true });
      if (r.violation) found.push(r.violation);
    }
    expect(found[0]).toMatch(/^\(1\) both sites hold a lease they believe valid/);
  });

  it('a seed replays exactly', { timeout: 120_000 }, async () => {
    const a = await simulate({ seed: 7, hours: 1 });
    const b = await simulate({ seed: 7, hours: 1 });
    expect(b.events).toBe(a.events);
    expect(b.trace).toEqual(a.trace);
    expect(a.events).toBeGreaterThan(1000);
  });
});
