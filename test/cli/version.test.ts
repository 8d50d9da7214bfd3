/** `--version` of both shipped programs, run as the bundles the packages install. */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pkg from '../../package.json' with { type: 'json' };

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const run = (file: string, args: string[]): Promise<{ code: number; stdout: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], { cwd: REPO, timeout: 20_000 }, (err, stdout) =>
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
