/**
 * The agent's code-cache loader (src/agent/code-cache.ts), in fresh Node processes (V8's own
 * in-process compilation cache would hide whether the file cache is used): a cache is written
 * after the start and accepted by V8 on the next; a damaged or stale one is rejected, the bundle
 * still runs, and the cache is replaced; no or an unwritable cache directory changes nothing.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { cacheFileOf } from '../../src/agent/code-cache.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
let runner: string;
let main: string;
const BUNDLE = `const parts = [];\nfor (let i = 0; i < 50; i++) parts.push((x) => x * i);\nprocess.stdout.write(require('node:path').basename(__filename) + ':' + parts.reduce((a, f) => a + f(1), 0) + '\\n');\n`;

/** One start: what the loader reported, and what the bundle printed. */
function start(cacheDir?: string): Promise<{ out: string[]; cache: string; written: boolean }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [runner, main, cacheDir ?? ''], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr}`));
      const lines = stdout.trim().split('\n');
      const r = JSON.parse(lines.pop()!) as { cache: string; written: boolean };
      resolve({ out: lines, ...r });
    });
  });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'code-cache-'));
  runner = path.join(dir, 'runner.cjs');
  main = path.join(dir, 'bundle.js');
  fs.writeFileSync(path.join(dir, 'runner.ts'), `import { runWithCodeCache } from ${JSON.stringify(path.join(REPO, 'src/agent/code-cache.ts'))};\nconst r = runWithCodeCache(process.argv[2], process.argv[3] || undefined, 0);\nr.written.then((written) => process.stdout.write(JSON.stringify({ cache: r.cache, written }) + '\\n'));\n`);
  await build({ entryPoints: [path.join(dir, 'runner.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: runner, logLevel: 'warning' });
}, 30_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('runWithCodeCache', () => {
  test('no cache directory: the bundle runs as require would', async () => {
    fs.writeFileSync(main, BUNDLE);
    expect(await start()).toEqual({ out: ['bundle.js:1225'], cache: 'off', written: false });
  });

  test('written at the first start, used at the next; a damaged or stale cache is rejected and replaced', async () => {
    fs.writeFileSync(main, BUNDLE);
    const cacheDir = path.join(dir, 'cache');
    fs.mkdirSync(cacheDir);
    expect(await start(cacheDir)).toEqual({ out: ['bundle.js:1225'], cache: 'compiled', written: true });
    const file = cacheFileOf(main, BUNDLE, cacheDir);
    expect(fs.statSync(file).size).toBeGreaterThan(0);
    expect(await start(cacheDir)).toEqual({ out: ['bundle.js:1225'], cache: 'used', written: false });

    fs.writeFileSync(file, Buffer.from('not a V8 code cache'));
    expect(await start(cacheDir)).toEqual({ out: ['bundle.js:1225'], cache: 'rejected', written: true });
    expect(await start(cacheDir)).toEqual({ out: ['bundle.js:1225'], cache: 'used', written: false });

    // an upgraded bundle (another source) with the old cache
    fs.writeFileSync(main, BUNDLE.replace('i < 50', 'i < 60'));
    // an upgraded bundle of the same length (V8's own check would take the old cache and run the
    // old code): compiled anew, its cache written, the old one removed
    const upgraded = BUNDLE.replace('i < 50', 'i < 60');
    fs.writeFileSync(main, upgraded);
    expect(await start(cacheDir)).toEqual({ out: ['bundle.js:1770'], cache: 'compiled', written: true });
    expect(await start(cacheDir)).toEqual({ out: ['bundle.js:1770'], cache: 'used', written: false });
    expect(fs.readdirSync(cacheDir)).toEqual([path.basename(cacheFileOf(main, upgraded, cacheDir))]);
  });

  test('an unwritable cache directory: the bundle runs, nothing is written', async () => {
    fs.writeFileSync(main, BUNDLE);
    expect(await start(path.join(dir, 'missing'))).toEqual({ out: ['bundle.js:1225'], cache: 'compiled', written: false });
  });
});
