// `npm run sim -- ...`: bundles the simulator (test/sim/main.ts, which runs the real src/ Engine) with
// esbuild into a temp file and runs it with this Node, or the one SIM_NODE names (CI: scripts/sim-node,
// a faster V8 for the same deterministic run).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

// Inside the project, so the bundle resolves the dependencies from node_modules.
const dir = fs.mkdtempSync(path.join('node_modules', '.cache-fa-sim-'));
const out = path.join(dir, 'sim.mjs');
try {
  await build({ entryPoints: ['test/sim/main.ts'], bundle: true, platform: 'node', format: 'esm', target: 'node18', outfile: out, packages: 'external', logLevel: 'error' });
  // A larger young generation: the simulation allocates many short-lived objects per event, and
  // fewer scavenges make it about a tenth faster (the flags hold for the worker threads too);
  // starting it at 16 MB rather than growing it another 8 % (docs/PERFORMANCE.md).
  const flags = ['--max-semi-space-size=32', '--min-semi-space-size=16'];
  const r = spawnSync(process.env.SIM_NODE || process.execPath, [...flags, out, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
