// Bundles the agent and failoverctl with esbuild (SPEC §9): one file each,
// CommonJS so they run from /usr/lib/failover-agent without a package.json,
// target node18 (Debian bookworm's nodejs).
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

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

// zod's indexes (classic/external.js, core/index.js) re-export every locale (`z.locales`, 60-odd modules, each
// initialised at load) and the JSON Schema importer. Neither program uses them (English messages
// come from classic/schemas.js itself); initialising them was a quarter of zod's 90 ms at start.
const unusedZodParts = {
  name: 'unused-zod-parts',
  setup(b) {
    b.onResolve({ filter: /^(\.\.\/locales\/index|\.\/from-json-schema)\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic[\\/]external|core[\\/]index)\.js$/.test(args.importer) ? { path: args.path, namespace: 'unused-esm' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'unused-esm' }, () => ({ contents: 'export const fromJSONSchema = undefined;', loader: 'js' }));
  },
};

const common = {
  plugins: [unusedPromClientParts, unusedZodParts],
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  sourcemap: false,
  // Without comments and whitespace (names are kept: stack traces stay readable). V8 keeps a
  // script's whole source in the heap, and as two bytes a character if one of them is not ASCII:
  // the 2.9 MB bundle with comments cost 5.9 MB of heap, this one 2 MB (docs/PERFORMANCE.md).
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  // dbus-next's optional X11 transport and the native sd-notify addon stay outside the bundle.
  external: ['x11', 'sd-notify'],
};

// Usage: node scripts/build.mjs [OUTDIR]   (default dist; tests build into a temp dir)
const out = process.argv[2] ?? 'dist';
mkdirSync(out, { recursive: true });
// The repo is "type": "module"; the bundles are CommonJS.
writeFileSync(`${out}/package.json`, '{ "type": "commonjs" }\n');
const results = await Promise.all([
  // agent.js runs agent-main.js (the agent) with a V8 code cache (src/agent/boot.ts)
  build({ ...common, entryPoints: ['src/agent/main.ts'], outfile: `${out}/agent-main.js` }),
  // (a page of code: left readable, and short-lined for lintian)
  build({ ...common, entryPoints: ['src/agent/boot.ts'], outfile: `${out}/agent.js`, minifyWhitespace: false }),
  build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: `${out}/failoverctl.js`, banner: { js: '#!/usr/bin/env node' } }),
]);
// Which files went into the bundles (the bundles carry no path comments): for
// packaging/bundled-modules.mjs, the npm modules and their licenses.
const inputs = [...new Set(results.flatMap((r) => Object.keys(r.metafile.inputs)))].sort();
writeFileSync(`${out}/bundle-inputs.txt`, `${inputs.join('\n')}\n`);
// charset 'ascii' escapes strings and identifiers, not regular expression literals: say where.
for (const f of ['agent.js', 'agent-main.js', 'failoverctl.js']) {
  const text = readFileSync(`${out}/${f}`, 'latin1');
  const at = text.search(/[^\x00-\x7f]/);
  if (at >= 0) {
    console.error(`build: ${out}/${f} is not all ASCII (V8 would keep it as two bytes a character): ...${text.slice(Math.max(0, at - 60), at + 20)}...`);
    process.exit(1);
  }
}
