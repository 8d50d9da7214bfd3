/**
 * `npm run sim -- [--seed S | --seeds N] [--hours H] [--unsafe-drift] [--first F]`: runs the simulator
 * (test/sim/world.ts) for one seed or N seeds, H simulated hours each; prints a line per violation
 * with its seed and trace, and last `sim: N seeds, H simulated hours, V violations`. Exit 1 on any.
 */
import { parseArgs } from 'node:util';
import { simulate } from './world.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    seeds: { type: 'string', default: '20' },
    first: { type: 'string', default: '1' },
    hours: { type: 'string', default: '24' },
    'unsafe-drift': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});

const hours = Number(values.hours);
const seeds = values.seed !== undefined ? [Number(values.seed)] : Array.from({ length: Number(values.seeds) }, (_, i) => Number(values.first) + i);
let violations = 0;
let simulatedMs = 0;
const t0 = performance.now();
for (const seed of seeds) {
  const r = await simulate({ seed, hours, unsafeDrift: values['unsafe-drift'] });
  simulatedMs += r.simulatedMs;
  if (r.violation) {
    violations++;
    console.log(`seed ${seed}: VIOLATION ${r.violation}\n  setup: ${r.setup}\n  replay: npm run sim -- --seed ${seed} --hours ${hours}${values['unsafe-drift'] ? ' --unsafe-drift' : ''}\n  last events:\n${r.trace.slice(-60).map((l) => `    ${l}`).join('\n')}`);
  } else if (!values.quiet) {
    console.log(`seed ${seed}: ok, ${(r.simulatedMs / 3.6e6).toFixed(1)} h, ${r.events} events, ${JSON.stringify(r.stats)}`);
  }
}
const wall = (performance.now() - t0) / 1000;
console.log(`simulated hours per wall second: ${(simulatedMs / 3.6e6 / wall).toFixed(1)}`);
console.log(`sim: ${seeds.length} seeds, ${Math.round(simulatedMs / 3.6e6)} simulated hours, ${violations} violations`);
process.exitCode = violations ? 1 : 0;
