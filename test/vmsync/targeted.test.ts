/**
 * The runner's side of the targeted repair, through injected VM ports (no VictoriaMetrics): what
 * VmSync asks the source to export once detection has (or has not) named the devices. The data
 * itself is tested on real VMs in sync.int.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, test } from 'vitest';

import { systemClock } from '../../src/clock.js';
import { nullLogger } from '../../src/log/logger.js';
import { MATCH_ALL } from '../../src/vmsync/plan.js';
import { VmSync, type VmSyncConfig } from '../../src/vmsync/sync.js';
import { VmError, type VmPort, type VmSeries } from '../../src/vmsync/vm-client.js';

const S = 60_000;
const T = 1_800_000_000_000 - (1_800_000_000_000 % S);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-targeted-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Per device, per bucket: the samples a side holds (a device missing where a bucket is listed in `holes`). */
interface Side {
  devices: Record<string, number>;
  holes?: { device: string; buckets: number[] }[];
}

/** A VM port answering detection's two queries from `side`, recording the exports asked of it. */
function fakeVm(url: string, side: Side, opts: { failNaming?: boolean } = {}): VmPort & { exports: string[] } {
  const count = (device: string, t: number) => (side.holes?.some((h) => h.device === device && h.buckets.includes(t)) ? 0 : side.devices[device]);
  const exports: string[] = [];
  return {
    baseUrl: url,
    writeUrl: url,
    exports,
    async queryRange(query: string, start: number, end: number, step: number): Promise<VmSeries[]> {
      const stamps: number[] = [];
      for (let t = start; t <= end; t += step) stamps.push(t);
      if (query.startsWith('sum by')) {
        if (opts.failNaming) throw new VmError('VM_HTTP', `${url}: HTTP 503`, 503);
        return Object.keys(side.devices).map((d) => ({ metric: { instance: d }, values: stamps.map((t): [number, number] => [t, count(d, t)]) }));
      }
      return [{ metric: {}, values: stamps.map((t): [number, number] => [t, Object.keys(side.devices).reduce((n, d) => n + count(d, t), 0)]) }];
    },
    async exportStream(match: string) {
      exports.push(match);
      return Readable.from([]);
    },
    async import(stream: Readable) {
      for await (const _ of stream) void _;
      return { bytes: 0 };
    },
    async forceFlush() {
      return true;
    },
    async close() {},
  };
}

function run(src: VmPort, dst: VmPort, over: Partial<VmSyncConfig> = {}): VmSync {
  const config: VmSyncConfig = {
    enabled: true,
    local_url: dst.baseUrl,
    local_write_url: dst.baseUrl,
    remote_url: src.baseUrl,
    interval: 120_000,
    bucket: S,
    settle: S,
    lookback: 10 * S,
    max_chunk: 6 * 3_600_000,
    concurrency: 2,
    clean_checks: 3,
    format: 'json',
    device_label: 'instance',
    ...over,
  };
  return new VmSync({
    config,
    stateDir: fs.mkdtempSync(path.join(tmp, 'state-')),
    logger: nullLogger(),
    clock: { ...systemClock, wallMs: () => T + S },
    retries: 0,
    confirmDelaysMs: [],
    vmClient: (url) => (url === src.baseUrl ? src : dst),
  });
}

const DEVICES = { 'dev-1': 4, 'dev-7': 4, 'dev-12': 4 };
const HOLE = [{ device: 'dev-7', buckets: [T - 3 * S, T - 2 * S] }];

describe('what the repair asks the source to export', () => {
  test('named devices: their selector, not every series', async () => {
    const src = fakeVm('http://src.invalid', { devices: DEVICES });
    const dst = fakeVm('http://dst.invalid', { devices: DEVICES, holes: HOLE });
    const rep = await run(src, dst).check({ passive: true, failover: null });
    expect(rep.error).toBeNull();
    expect(src.exports).toEqual(['{__name__!="", instance=~"dev-7"}']);
    expect(rep.exports).toMatchObject([{ match: 'devices', reason: 'devices', devices: ['dev-7'], samples: 8 }]);
  });

  test('the naming query failing: every series, reason naming_failed, and the check still repairs', async () => {
    const src = fakeVm('http://src.invalid', { devices: DEVICES }, { failNaming: true });
    const dst = fakeVm('http://dst.invalid', { devices: DEVICES, holes: HOLE });
    const rep = await run(src, dst).check({ passive: true, failover: null });
    expect(rep.error).toBeNull();
    expect(src.exports).toEqual([MATCH_ALL]);
    expect(rep.exports).toMatchObject([{ match: 'all', reason: 'naming_failed', samples: 24 }]);
    expect(rep.ranges_repaired).toHaveLength(1);
  });

  test('active site: the backfill targets the device its own VM lacks, from the passive VM', async () => {
    const local = fakeVm('http://local.invalid', { devices: DEVICES, holes: HOLE });
    const remote = fakeVm('http://remote.invalid', { devices: DEVICES });
    const rep = await run(remote, local).check({ passive: false, failover: null });
    expect(rep.error).toBeNull();
    expect(remote.exports).toEqual(['{__name__!="", instance=~"dev-7"}']);
    expect(local.exports).toEqual([]);
    expect(rep.exports).toMatchObject([{ match: 'devices', devices: ['dev-7'] }]);
  });
});
