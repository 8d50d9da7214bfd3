// Bundles the agent and failoverctl with esbuild (SPEC §9): one file each,
// CommonJS so they run from /usr/lib/failover-agent without a package.json,
// target node18 (Debian bookworm's nodejs).
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  // dbus-next's optional X11 transport and the native sd-notify addon stay outside the bundle.
  external: ['x11', 'sd-notify'],
};

mkdirSync('dist', { recursive: true });
// The repo is "type": "module"; the bundles are CommonJS.
writeFileSync('dist/package.json', '{ "type": "commonjs" }\n');
await Promise.all([
  build({ ...common, entryPoints: ['src/agent/main.ts'], outfile: 'dist/agent.js' }),
  build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/failoverctl.js', banner: { js: '#!/usr/bin/env node' } }),
]);
