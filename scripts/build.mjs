// Bundles the agent and failoverctl with esbuild (SPEC §9): one file each,
// CommonJS so they run from /usr/lib/failover-agent without a package.json,
// target node18 (Debian bookworm's nodejs).
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';

// prom-client's index requires its Pushgateway (http, https, zlib: Node's whole TLS stack) and its
// cluster aggregator (cluster) at load time. The agent uses neither, and on a Node without a code
// cache for its own modules (Debian's) compiling those costs start-up time and memory: they are
// replaced by empty modules in the bundles.
const unusedPromClientParts = {
  name: 'unused-prom-client-parts',
  setup(b) {
    b.onResolve({ filter: /^\.\/lib\/(pushgateway|cluster)$/ }, (args) =>
      /[\\/]prom-client[\\/]index\.js$/.test(args.importer) ? { path: args.path, namespace: 'unused' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'unused' }, () => ({ contents: 'module.exports = undefined;', loader: 'js' }));
  },
};

const common = {
  plugins: [unusedPromClientParts],
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

// Usage: node scripts/build.mjs [OUTDIR]   (default dist; tests build into a temp dir)
const out = process.argv[2] ?? 'dist';
mkdirSync(out, { recursive: true });
// The repo is "type": "module"; the bundles are CommonJS.
writeFileSync(`${out}/package.json`, '{ "type": "commonjs" }\n');
await Promise.all([
  build({ ...common, entryPoints: ['src/agent/main.ts'], outfile: `${out}/agent.js` }),
  build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: `${out}/failoverctl.js`, banner: { js: '#!/usr/bin/env node' } }),
]);
