/**
 * vmsync.json: round trip, a bad file never crashes (empty state, logged), and atomicity under
 * SIGKILL: a child process writes states in a loop with the real saveState and is killed at
 * random moments; every time the file parses and is one complete state.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import type { Logger } from '../../src/log/logger.js';
import { nullLogger } from '../../src/log/logger.js';
import { emptyState, loadState, saveState, statePath, type VmSyncState } from '../../src/vmsync/state.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-vmstate-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const base = nullLogger();
  const logger: Logger = { ...base, warning: (msg) => lines.push(msg), child: () => logger };
  return { logger, lines };
}

function sample(): VmSyncState {
  return {
    ...emptyState(),
    failover: { epoch: 4, since: '2024-01-15T10:00:00.000Z' },
    last_check: '2024-01-15T12:00:00.000Z',
    last_check_ok: true,
    last_role: 'passive',
    ranges_found: [{ start: '2024-01-15T11:00:00.000Z', end: '2024-01-15T11:03:00.000Z', missing: 24000 }],
    ranges_repaired: [{ start: '2024-01-15T11:00:00.000Z', end: '2024-01-15T11:03:00.000Z', missing: 24000, instances: ['dev-7'] }],
    samples_copied_total: 24000,
    samples_copied_last: 24000,
    checks: 9,
    last_error: { at: '2024-01-15T11:58:00.000Z', code: 'VM_TIMEOUT', message: 'slow' },
  };
}

describe('state file', () => {
  test('round trip; no tmp file left behind', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'rt-'));
    await saveState(d, sample());
    expect(await loadState(d)).toEqual(sample());
    expect(fs.readdirSync(d)).toEqual(['vmsync.json']);
    expect(JSON.parse(fs.readFileSync(statePath(d), 'utf8'))).toEqual(sample());
  });

  test('missing file → empty state, silently', async () => {
    const { logger, lines } = recordingLogger();
    expect(await loadState(fs.mkdtempSync(path.join(dir, 'none-')), logger)).toEqual(emptyState());
    expect(lines).toEqual([]);
  });

  test.each([
    ['garbage', 'not json at all {'],
    ['truncated', JSON.stringify(sample()).slice(0, 100)],
    ['an array', '[]'],
    ['wrong types', JSON.stringify({ ...sample(), consecutive_clean: 'three' })],
    ['bad ranges', JSON.stringify({ ...sample(), ranges_found: [{ start: 1 }] })],
    ['another version', JSON.stringify({ ...sample(), version: 99 })],
  ])('corrupt (%s) → empty state, logged, never a throw', async (_n, text) => {
    const d = fs.mkdtempSync(path.join(dir, 'bad-'));
    fs.writeFileSync(statePath(d), text);
    const { logger, lines } = recordingLogger();
    expect(await loadState(d, logger)).toEqual(emptyState());
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/corrupt/);
  });

  test('fields absent from an older file take their defaults', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'old-'));
    fs.writeFileSync(statePath(d), JSON.stringify({ consecutive_clean: 2, failback_ready: false }));
    expect(await loadState(d)).toEqual({ ...emptyState(), consecutive_clean: 2 });
  });

  test('SIGKILL at ~50 random moments of a write loop: the file is always one complete state', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'kill-'));
    const script = path.join(dir, 'writer.mjs');
    // The real saveState, bundled for a plain node child.
    await build({
      stdin: {
        contents: `
          import { saveState, emptyState } from ${JSON.stringify(path.join(ROOT, 'src/vmsync/state.ts'))};
          const dir = process.argv[2];
          let seq = Number(process.argv[3]);
          const mk = (n) => {
            const k = n % 400; // sizes vary from ~0.5 KB to ~50 KB
            const ranges = Array.from({ length: k }, (_, i) => ({ start: new Date(i * 60000).toISOString(), end: new Date(i * 60000 + 60000).toISOString(), missing: n }));
            return { ...emptyState(), checks: n, samples_copied_last: k, ranges_found: ranges };
          };
          await saveState(dir, mk(seq++));
          process.stdout.write('saved\\n'); // one complete write of its own: the kill lands after it
          for (;;) await saveState(dir, mk(seq++));
        `,
        resolveDir: ROOT,
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node18',
      outfile: script,
      logLevel: 'silent',
    });
    await saveState(d, { ...emptyState(), checks: 0 });
    let seq = 1;
    let tmpLeft = 0;
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const first = seq;
      const child = spawn(process.execPath, [script, d, String(seq)], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
      });
      // the kill moment, at random within the writes that follow
      await new Promise((r) => setTimeout(r, Math.random() * 40));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      const text = fs.readFileSync(statePath(d), 'utf8');
      let parsed: VmSyncState;
      try {
        parsed = JSON.parse(text) as VmSyncState;
      } catch {
        throw new Error(`kill ${i}: vmsync.json is not complete JSON (${text.length} bytes)`);
      }
      // self-consistent: the ranges list belongs to the same write as the counters
      expect(parsed.ranges_found).toHaveLength(parsed.samples_copied_last);
      expect(parsed.ranges_found.every((r) => r.missing === parsed.checks)).toBe(true);
      expect(await loadState(d)).toEqual(parsed);
      // this child's own first write or a later one, never an older file
      expect(parsed.checks).toBeGreaterThanOrEqual(first);
      seen.add(parsed.checks);
      if (fs.existsSync(path.join(d, '.vmsync.json.tmp'))) tmpLeft++;
      seq = parsed.checks + 1_000; // next child starts above anything seen
    }
    // every kill hit a writer that had written: 50 different states
    expect(seen.size).toBe(50);
    // eslint-disable-next-line no-console
    console.log(`state kill test: 50 kills, ${tmpLeft} left a tmp file behind (the real file was complete every time)`);
  }, 60_000);
});
