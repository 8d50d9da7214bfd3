/**
 * `--version` of both shipped programs, run as the bundles the packages install; and what the
 * agent bundle loads at start (before it reads any configuration).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pkg from '../../package.json' with { type: 'json' };

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const run = (file: string, args: string[], nodeArgs: string[] = []): Promise<{ code: number; stdout: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [...nodeArgs, file, ...args], { cwd: REPO, timeout: 20_000 }, (err, stdout) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout }),
    );
  });

// Bundled into a temp dir: other tests may be running dist/ meanwhile.
const OUT = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-version-'));
beforeAll(async () => {
  const r = await run('scripts/build.mjs', [OUT]);
  expect(r.code).toBe(0);
}, 60_000);
afterAll(() => fs.rmSync(OUT, { recursive: true, force: true }));

describe('--version', () => {
  it.each([
    ['failover-agent', 'agent.js'],
    ['failoverctl', 'failoverctl.js'],
  ])('%s --version prints the package version and the running Node, exit 0, no config read', async (name, file) => {
    const r = await run(path.join(OUT, file), ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${name} ${pkg.version} (node ${process.version})\n`);
  });
});

describe('what the agent bundle loads at start', () => {
  it("not Node's TLS stack, zlib, cluster, child_process, nor undici (only a site that uses them loads them)", async () => {
    // A preload that prints the Node built-ins and bundled npm modules loaded by the time the
    // process exits (--version: after every module the bundle evaluates at start).
    const pre = path.join(OUT, 'loaded.cjs');
    fs.writeFileSync(
      pre,
      `process.on('exit', () => process.stdout.write(JSON.stringify(process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)))));`,
    );
    const r = await run(path.join(OUT, 'agent.js'), ['--version'], ['-r', pre]);
    expect(r.code).toBe(0);
    const loaded = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as string[];
    expect(loaded).toContain('dgram'); // the check itself works: the DNS transport is loaded
    // tls/https/zlib: prom-client's Pushgateway, cluster: its aggregator, child_process: the
    // systemd-notify fallback; http2 and worker_threads are what undici (health checks, VM sync,
    // webhook) loads with it.
    for (const m of ['tls', 'https', 'zlib', 'cluster', 'child_process', 'http2', 'worker_threads']) expect(loaded, m).not.toContain(m);
  });
});
