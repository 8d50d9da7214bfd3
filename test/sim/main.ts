/**
 * `npm run sim -- [--seed S | --seeds N [--first F]] [--hours H] [--unsafe-drift] [--plant NAME] [--jobs J] [--quiet]`:
 * runs the simulator (test/sim/world.ts) for one seed or N seeds, H simulated hours each, on J worker
 * threads (default: one per core; seeds are independent, each replays alone); prints a line per
 * seed in seed order (with --quiet only violations, each with its setup, replay command and trace),
 * then the totals, the speed, and last `sim: N seeds, H simulated hours, V violations`. Exit 1 on any.
 * `--first commit`: the first seed derived from the checked-out commit (test/sim/seeds.ts).
 * `--plant NAME`: a fault planted in the agents' ports (world.ts PLANTS) the checker must report.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { commitSeed } from './seeds.js';
import { PLANTS, simulate, type Plant, type SimResult } from './world.js';

interface Job {
  seed: number;
  hours: number;
  unsafeDrift: boolean;
  plant?: Plant;
}

if (isMainThread) await main();
else {
  parentPort!.on('message', (job: Job | null) => {
    if (job === null) return parentPort!.close();
    void simulate(job).then((r) => parentPort!.postMessage(r));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      seeds: { type: 'string', default: '20' },
      first: { type: 'string', default: '1' },
      hours: { type: 'string', default: '24' },
      'unsafe-drift': { type: 'boolean', default: false },
      plant: { type: 'string' },
      jobs: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  });
  const number = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) {
      console.error(`sim: --${name} must be a number >= ${min}, got ${JSON.stringify(v)}`);
      process.exit(64);
    }
    return n;
  };
  const hours = number('hours', values.hours, 0);
  const unsafeDrift = values['unsafe-drift'];
  const plant = values.plant as Plant | undefined;
  if (plant !== undefined && !Object.hasOwn(PLANTS, plant)) {
    console.error(`sim: --plant must be one of ${Object.keys(PLANTS).join(', ')}, got ${JSON.stringify(plant)}`);
    process.exit(64);
  }
  let first = 0;
  if (values.seed === undefined) {
    if (values.first === 'commit') {
      const c = commitSeed();
      first = c.first;
      console.log(`seeds from ${c.from}: first ${first}`);
    } else first = number('first', values.first, 0);
  }
  const seeds = values.seed !== undefined ? [number('seed', values.seed, 0)] : Array.from({ length: number('seeds', values.seeds, 1) }, (_, i) => first + i);
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const jobs = Math.min(seeds.length, values.jobs !== undefined ? number('jobs', values.jobs, 1) : cores);

  let violations = 0;
  let simulatedMs = 0;
  const totals: Record<string, number> = {};
  const report = (r: SimResult): void => {
    simulatedMs += r.simulatedMs;
    for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
    if (r.violation) {
      violations++;
      console.log(
        `seed ${r.seed}: VIOLATION ${r.violation}\n  setup: ${r.setup}\n  replay: npm run sim -- --seed ${r.seed} --hours ${hours}${unsafeDrift ? ' --unsafe-drift' : ''}${plant ? ` --plant ${plant}` : ''}\n  last events:\n${r.trace
          .slice(-(Number(process.env.SIM_TRACE_LINES) || 60))
          .map((l) => `    ${l}`)
          .join('\n')}`,
      );
    } else if (!values.quiet) {
      console.log(`seed ${r.seed}: ok, ${(r.simulatedMs / 3.6e6).toFixed(1)} h, ${r.events} events, ${JSON.stringify(r.stats)}`);
    }
  };

  const t0 = performance.now();
  if (jobs <= 1) {
    for (const seed of seeds) report(await simulate({ seed, hours, unsafeDrift, plant }));
  } else {
    // Each worker asks for the next seed when it is done; results are reported in seed order.
    const results = new Map<number, SimResult>();
    let next = 0;
    let reported = 0;
    await Promise.all(
      Array.from({ length: jobs }, () => {
        const w = new Worker(new URL(import.meta.url));
        const give = (): void => {
          w.postMessage(next < seeds.length ? ({ seed: seeds[next++]!, hours, unsafeDrift, plant } satisfies Job) : null);
        };
        return new Promise<void>((resolve, reject) => {
          w.on('message', (r: SimResult) => {
            results.set(r.seed, r);
            while (reported < seeds.length && results.has(seeds[reported]!)) {
              report(results.get(seeds[reported]!)!);
              results.delete(seeds[reported++]!);
            }
            give();
          });
          w.on('error', reject);
          w.on('exit', () => resolve());
          give();
        });
      }),
    );
    if (reported !== seeds.length) throw new Error(`sim: ${seeds.length - reported} seeds without a result`);
  }
  const wall = (performance.now() - t0) / 1000;
  console.log(`totals: ${JSON.stringify(totals)}`);
  console.log(`simulated hours per wall second: ${(simulatedMs / 3.6e6 / wall).toFixed(1)} (${jobs} job${jobs === 1 ? '' : 's'}, ${wall.toFixed(1)} s, node ${process.version})`);
  console.log(`sim: ${seeds.length} seeds, ${Math.round(simulatedMs / 3.6e6)} simulated hours, ${violations} violations`);
  process.exitCode = violations ? 1 : 0;
}
