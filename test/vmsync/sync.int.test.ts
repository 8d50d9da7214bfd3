/**
 * VM sync against REAL VictoriaMetrics (1.79, Debian) on loopback: test/fixtures/vm.ts.
 *
 * Data: 2,000 series (100 devices × 20 metrics) at 15 s. "A" (the active site) holds 4 h of it;
 * "P" (passive) the same minus four holes:
 *   G40  (T-200m, T-160m]  a 40-minute full gap
 *   OLD  (T-100m, T-90m]   a 10-minute full gap that ended 90 minutes ago
 *   DEV7 (T-50m, T-45m]    device dev-7's 20 series missing for 5 minutes (a partial gap)
 *   G3   (T-30m, T-27m]    a 3-minute full gap
 * Q, R and U hold the last 65 minutes minus three holes (DEV7, G3 and a 10-minute G10
 * (T-20m, T-10m]) for the native-format, crash-mid-repair and path-prefix scenarios, which scan
 * the last hour only. T is a minute boundary just before the suite started; the VmSync clocks are
 * pinned to T + settle so the last bucket scanned is exactly T.
 *
 * The tests of the first describe block share P and one VmSync and run in order.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createLogger, nullLogger, type Logger } from '../../src/log/logger.js';
import { Webhook } from '../../src/vmsync/notify.js';
import type { RangeRecord, VmSyncState } from '../../src/vmsync/state.js';
import { VmSync, type VmSyncConfig } from '../../src/vmsync/sync.js';
import { VmClient } from '../../src/vmsync/vm-client.js';
import { generate, rowsInserted, startVm, waitQuiet, type Hole, type VmFixture } from '../fixtures/vm.js';
import { systemClock } from '../../src/clock.js';

const S = 60_000;
const MIN = 60_000;
const H = 3_600_000;
const SERIES = 2_000;
const PER_MIN = SERIES * 4; // samples per minute over all series at 15 s
const SETTLE = 60_000;

const logger: Logger = process.env.VMSYNC_TEST_LOG ? createLogger({ level: 'debug' }) : nullLogger();

let T: number;
let A: VmFixture, P: VmFixture, Q: VmFixture, R: VmFixture, U: VmFixture, V: VmFixture;
let tmp: string;
const closers: (() => Promise<void>)[] = [];

const at = (minutesBeforeT: number) => T - minutesBeforeT * MIN;
const iso = (ms: number) => new Date(ms).toISOString();
const rec = (from: number, to: number, missing: number, instances?: string[]): RangeRecord => ({
  start: iso(at(from)),
  end: iso(at(to)),
  missing,
  ...(instances ? { instances } : {}),
});

// The holes, and the ranges detection must report for them.
const mainHoles = (): Hole[] => [
  { from: at(200), to: at(160) },
  { from: at(100), to: at(90) },
  { from: at(50), to: at(45), instances: ['dev-7'] },
  { from: at(30), to: at(27) },
];
const MAIN_RANGES = (): RangeRecord[] => [
  rec(200, 160, 40 * PER_MIN),
  rec(100, 90, 10 * PER_MIN),
  rec(50, 45, 5 * 20 * 4, ['dev-7']),
  rec(30, 27, 3 * PER_MIN),
];
const hourHoles = (): Hole[] => [
  { from: at(50), to: at(45), instances: ['dev-7'] },
  { from: at(30), to: at(27) },
  { from: at(20), to: at(10) },
];
const HOUR_RANGES = (): RangeRecord[] => [rec(50, 45, 400, ['dev-7']), rec(30, 27, 3 * PER_MIN), rec(20, 10, 10 * PER_MIN)];
const sumMissing = (rs: RangeRecord[]) => rs.reduce((n, r) => n + r.missing, 0);

function config(over: Partial<VmSyncConfig>): VmSyncConfig {
  return {
    enabled: true,
    local_url: 'http://127.0.0.1:1',
    local_write_url: '',
    remote_url: 'http://127.0.0.1:1',
    interval: 120_000,
    bucket: S,
    settle: SETTLE,
    lookback: 4 * H,
    max_chunk: 6 * H,
    concurrency: 2,
    clean_checks: 3,
    format: 'json',
    device_label: 'instance',
    ...over,
  };
}

function newDir(name: string): string {
  return fs.mkdtempSync(path.join(tmp, `${name}-`));
}

function makeSync(over: Partial<VmSyncConfig>, opts: { dir?: string; webhook?: Webhook; wallMs?: () => number; retries?: number } = {}): VmSync {
  const s = new VmSync({
    config: config(over),
    stateDir: opts.dir ?? newDir('state'),
    logger,
    webhook: opts.webhook,
    clock: { ...systemClock, wallMs: opts.wallMs ?? (() => T + SETTLE) },
    site: 'test',
    timeoutMs: 10_000,
    retries: opts.retries ?? 2,
    backoffMs: 50,
    // VM 1.79 sometimes shows imported samples to queries only seconds after force_flush (see
    // confirm() in src/vmsync/sync.ts); wait up to ~15 s for it before calling a repair unconfirmed.
    confirmDelaysMs: [500, 1_000, 2_000, 4_000, 8_000],
  });
  closers.push(() => s.close());
  return s;
}

function readState(dir: string): VmSyncState {
  return JSON.parse(fs.readFileSync(path.join(dir, 'vmsync.json'), 'utf8')) as VmSyncState;
}

/** count_over_time per (instance, bucket) on a VM over buckets (from, to]. */
async function bucketCounts(url: string, from: number, to: number): Promise<Map<string, number>> {
  const c = new VmClient(url, { timeoutMs: 10_000, retries: 1, logger });
  try {
    const series = await c.queryRange('sum by (instance) (count_over_time({__name__!=""}[60s]))', from + S, to, S);
    const out = new Map<string, number>();
    for (const s of series) for (const [t, v] of s.values) out.set(`${s.metric.instance}@${t}`, v);
    return out;
  } finally {
    await c.close();
  }
}

/** Every (instance, bucket) count equal on both VMs over (from, to]: repaired, and not doubled. */
async function expectSameCounts(a: VmFixture, b: VmFixture, from: number, to: number): Promise<void> {
  const [ca, cb] = await Promise.all([bucketCounts(a.url, from, to), bucketCounts(b.url, from, to)]);
  expect(ca.size).toBeGreaterThan(0);
  const diff = [...new Set([...ca.keys(), ...cb.keys()])].filter((k) => ca.get(k) !== cb.get(k)).slice(0, 5);
  expect(diff.map((k) => `${k}: ${ca.get(k)} vs ${cb.get(k)}`)).toEqual([]);
}

/** The ORIGINAL vm_sync.py check (seeds/002): 1 h window, total samples, gap when dst < 90 % of src. */
async function originalCheck(srcUrl: string, dstUrl: string, time: number): Promise<{ ratio: number; gap: boolean }> {
  const total = async (url: string): Promise<number> => {
    const q = new URLSearchParams({ query: 'sum(count_over_time({__name__!=""}[1h]))', time: String(time / 1000), nocache: '1' });
    const res = await fetch(`${url}/api/v1/query?${q}`);
    const j = (await res.json()) as { data: { result: { value: [number, string] }[] } };
    return Number(j.data.result[0]?.value[1] ?? 0);
  };
  const [src, dst] = await Promise.all([total(srcUrl), total(dstUrl)]);
  const ratio = dst / src;
  return { ratio, gap: ratio < 0.9 };
}

// --- small HTTP helpers ----------------------------------------------------------------------

interface Hit {
  event: string;
  text: string;
}

async function listen(srv: http.Server): Promise<string> {
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

async function webhookReceiver(hang = false): Promise<{ url: string; hits: Hit[] }> {
  const hits: Hit[] = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hits.push({ event: String(req.headers['x-failover-agent-event']), text: (JSON.parse(body) as { text: string }).text });
      if (!hang) res.end('ok');
    });
  });
  return { url: `${await listen(srv)}/hook`, hits };
}

/**
 * A reverse proxy: requests under a route's prefix go to its target with the prefix stripped.
 * `onExport` runs once, after the first chunk of the first export answer was passed on.
 * `override` may answer a request itself (return true); `hold` delays forwarding.
 */
async function startProxy(
  routes: [prefix: string, target: string][],
  opts: {
    onExport?: () => Promise<void>;
    override?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
    /** Runs before a request is forwarded; the request waits for it. */
    hold?: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;
  } = {},
): Promise<{ url: string; seen: string[] }> {
  const seen: string[] = [];
  let exportHook = opts.onExport;
  const srv = http.createServer((req, res) => {
    const url = req.url ?? '/';
    seen.push(`${req.method} ${url.split('?')[0]}`);
    if (opts.override?.(req, res)) return;
    const route = routes.find(([p]) => url.startsWith(`${p}/`));
    if (!route) {
      res.statusCode = 400;
      res.end(`unsupported path requested: ${url}`);
      return;
    }
    const target = new URL(route[1]);
    const prefix = route[0];
    const forward = (): void => {
      const up = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: url.slice(prefix.length), headers: { ...req.headers, host: target.host } },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          const hook = url.includes('/api/v1/export') ? exportHook : undefined;
          if (!hook) {
            ur.pipe(res);
            return;
          }
          exportHook = undefined;
          void (async () => {
            let first = true;
            try {
              for await (const chunk of ur) {
                res.write(chunk);
                if (first) {
                  first = false;
                  await new Promise((r) => setTimeout(r, 100)); // let the importer start sending
                  await hook();
                }
              }
              res.end();
            } catch {
              res.destroy();
            }
          })();
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (opts.hold) void opts.hold(req, res).then(forward);
    else forward();
  });
  return { url: await listen(srv), seen };
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-vmsync-'));
  T = Math.floor(Date.now() / S) * S - S;
  const t0 = Date.now();
  [A, P, Q, R, U, V] = await Promise.all([startVm(), startVm(), startVm(), startVm(), startVm(), startVm()]);
  const full = { series: SERIES, from: T - 4 * H, to: T };
  const hour = { series: SERIES, from: T - 65 * MIN, to: T };
  const [a, p, ...rest] = await Promise.all([
    generate(A.url, full),
    generate(P.url, { ...full, holes: mainHoles() }),
    generate(Q.url, { ...hour, holes: hourHoles() }),
    generate(R.url, { ...hour, holes: hourHoles() }),
    generate(U.url, { ...hour, holes: hourHoles() }),
    generate(V.url, { ...hour, holes: hourHoles() }),
  ]);
  const loaded = Date.now() - t0;
  // Let the bulk load's merges finish first (see waitQuiet).
  await Promise.all([A, P, Q, R, U, V].map((v) => waitQuiet(v.url)));
  // eslint-disable-next-line no-console
  console.log(
    `vmsync int: 6 VMs loaded in ${loaded} ms (+${Date.now() - t0 - loaded} ms until idle): A ${a.samples} samples, P ${p.samples}, Q/R/U/V ${rest.map((r) => r.samples).join('/')}`,
  );
  expect(a.samples).toBe(SERIES * 4 * 60 * 4);
  expect(a.samples - p.samples).toBe(sumMissing(MAIN_RANGES()));
}, 120_000);

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await Promise.all([A, P, Q, R, U, V].filter(Boolean).map((v) => v.stop()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('passive site: detection, repair, gate (json format)', { timeout: 60_000 }, () => {
  let sync: VmSync;
  let dir: string;
  let hook: Webhook;
  let hits: Hit[];
  const fo = () => ({ epoch: 7, since: (T - 4 * H) / 1000 });

  test('the ORIGINAL check (1 h window, 90 % threshold) misses the 3-minute gap, the partial gap and the old gap', async () => {
    const now = await originalCheck(A.url, P.url, T);
    expect(now.gap).toBe(false); // 3 min + 1 % of 5 min missing out of 60: ratio ≈ 0.95
    expect(now.ratio).toBeGreaterThan(0.94);
    // The old gap was visible to it only while it lay inside its window …
    expect((await originalCheck(A.url, P.url, at(85))).gap).toBe(true);
    // … and is forgotten once it slid out (here 90 min after its end; from 54 min after it for a 6-min gap).
    expect((await originalCheck(A.url, P.url, at(0))).gap).toBe(false);
  });

  test('finds every gap as the exact bucket range, names the partial one, repairs them all', async () => {
    const r = await webhookReceiver();
    hits = r.hits;
    hook = new Webhook(r.url, { logger, timeoutMs: 2_000 });
    closers.push(() => hook.close(1_000));
    dir = newDir('main');
    sync = makeSync({ local_url: P.url, remote_url: A.url }, { dir, webhook: hook });

    const rep = await sync.check({ passive: true, failover: fo() });
    expect(rep.error).toBeNull();
    expect(rep.ok).toBe(true);
    expect(rep.role).toBe('passive');
    expect(rep.window).toEqual({ start: iso(T - 4 * H - S), end: iso(T) });
    expect(rep.ranges_found).toEqual(MAIN_RANGES());
    expect(rep.ranges_repaired).toEqual(MAIN_RANGES());
    expect(rep.samples_copied).toBe(sumMissing(MAIN_RANGES()));
    expect(rep.confirmed).toBe(true);
    expect(rep.clean).toBe(false);
    expect(rep.consecutive_clean).toBe(0);

    await expectSameCounts(A, P, T - 4 * H, T);

    const st = sync.status();
    expect(st).toMatchObject({
      last_check_ok: true,
      last_role: 'passive',
      ranges_found: MAIN_RANGES(),
      ranges_repaired: MAIN_RANGES(),
      samples_copied_last: sumMissing(MAIN_RANGES()),
      samples_copied_total: sumMissing(MAIN_RANGES()),
      failback_ready: false,
      last_repair_confirmed: true,
      remaining_after_repair: [],
      source_url: A.url,
      destination_url: P.url,
    });
    // one count query per side, plus one naming query per side for the one PARTIAL range (a full
    // gap names no device, so it costs no query); the confirmation's queries are its own figure
    expect(st.detection_queries).toBe(4);
    expect(st.confirm_checks).toBeGreaterThanOrEqual(1);
    expect(st.confirm_queries).toBe(2 * st.confirm_checks);
    expect(st.repair_duration_ms).toBeGreaterThan(0);
    expect(st.confirm_duration_ms).toBeGreaterThanOrEqual(0);
    expect(st.bytes_copied_last).toBeGreaterThan(0);
    expect(readState(dir)).toMatchObject({ ranges_repaired: MAIN_RANGES(), failover: { epoch: 7, since: iso(T - 4 * H) } });
  });

  test('a second run changes nothing', async () => {
    const before = await bucketCounts(P.url, T - 4 * H, T);
    const rep = await sync.check({ passive: true, failover: fo() });
    expect(rep).toMatchObject({ ok: true, clean: true, ranges_found: [], ranges_repaired: [], samples_copied: 0, confirmed: null, consecutive_clean: 1 });
    expect(await bucketCounts(P.url, T - 4 * H, T)).toEqual(before);
    expect(sync.status().samples_copied_total).toBe(sumMissing(MAIN_RANGES()));
  });

  test('failback gate: ready after clean_checks consecutive clean checks, reset by a new failover epoch', async () => {
    expect(sync.status().failback_ready).toBe(false); // 1 of 3
    expect((await sync.check({ passive: true, failover: fo() })).failback_ready).toBe(false); // 2 of 3
    expect(sync.failbackGate().ready).toBe(false);
    const third = await sync.check({ passive: true, failover: fo() });
    expect(third).toMatchObject({ clean: true, consecutive_clean: 3, failback_ready: true });
    expect(sync.failbackGate()).toMatchObject({ ready: true });
    expect(readState(dir)).toMatchObject({ failback_ready: true, consecutive_clean: 3, failover: { epoch: 7 } });

    // state survives a restart of the agent
    const again = makeSync({ local_url: P.url, remote_url: A.url }, { dir });
    await again.load();
    expect(again.status()).toMatchObject({ failback_ready: true, consecutive_clean: 3 });

    // a new failover resets the count
    const next = await sync.check({ passive: true, failover: { epoch: 8, since: (T - 2 * H) / 1000 } });
    expect(next).toMatchObject({ clean: true, consecutive_clean: 1, failback_ready: false });
    expect(readState(dir)).toMatchObject({ failback_ready: false, consecutive_clean: 1, failover: { epoch: 8, since: iso(T - 2 * H) } });
  });

  test('webhook got gap found, repair done and FAILBACK READY', async () => {
    await hook.close(5_000);
    expect(hits.map((h) => h.event)).toEqual(['gap_found', 'repair_done', 'failback_ready']);
    expect(hits[0].text).toContain('4 gap(s)');
    expect(hits[0].text).toContain('dev-7');
    expect(hits[1].text).toContain(`${sumMissing(MAIN_RANGES())} samples copied`);
    expect(hits[2].text).toContain('FAILBACK READY');
  });

  test('a source without any sample is an error, never clean', async () => {
    const s = makeSync({ local_url: P.url, remote_url: A.url }, { wallMs: () => T - 24 * H });
    const rep = await s.check({ passive: true, failover: null });
    expect(rep).toMatchObject({ ok: false, clean: false });
    expect(rep.error?.code).toBe('VM_SOURCE_EMPTY');
  });
});

describe('active site measures only; a hung webhook does not delay the check', { timeout: 60_000 }, () => {
  test('active: finds the passive VM\'s gaps, copies nothing', async () => {
    const s = makeSync({ local_url: A.url, remote_url: Q.url, lookback: H });
    const before = await bucketCounts(Q.url, T - H, T);
    const rep = await s.check({ passive: false, failover: null });
    expect(rep).toMatchObject({ ok: true, role: 'active', clean: false, ranges_repaired: [], samples_copied: 0 });
    expect(rep.ranges_found).toEqual(HOUR_RANGES());
    expect(await bucketCounts(Q.url, T - H, T)).toEqual(before);
  });

  test('check() with a webhook that never answers takes as long as without one', async () => {
    const hung = await webhookReceiver(true);
    const time = async (webhook?: Webhook): Promise<number> => {
      const s = makeSync({ local_url: A.url, remote_url: Q.url, lookback: H }, { webhook });
      const t0 = performance.now();
      const rep = await s.check({ passive: false, failover: null });
      expect(rep.ranges_found).toHaveLength(3); // gap_found is sent on each fresh instance
      return performance.now() - t0;
    };
    const hook = new Webhook(hung.url, { logger, timeoutMs: 30_000, retries: 3 });
    const without = Math.min(await time(), await time());
    const withHung = Math.min(await time(hook), await time(hook));
    expect(hung.hits.length).toBeGreaterThanOrEqual(1); // the receiver got it and hangs
    expect(withHung).toBeLessThan(without * 2 + 250); // a hung attempt lasts 30 s: it would show
    const c0 = performance.now();
    await hook.close(300);
    expect(performance.now() - c0).toBeLessThan(2_000);
  });
});

describe('active site: backfill of its own VM from the passive one', { timeout: 90_000 }, () => {
  // What a deposed primary scraped while cut off is in its VM only (its collector, stopped on
  // demotion, never delivered it): the active site pulls what the passive VM has and its own lacks.
  test('active: pulls exactly the missing buckets into its own VM, touches the passive VM not at all, then finds nothing', async () => {
    const W = await startVm();
    closers.push(() => W.stop());
    await generate(W.url, { series: SERIES, from: T - 65 * MIN, to: T, holes: hourHoles() });
    await waitQuiet(W.url);
    const s = makeSync({ local_url: W.url, remote_url: A.url, lookback: H });
    const remoteBefore = await bucketCounts(A.url, T - H, T);
    const inserted = await rowsInserted(W.url);
    const rep = await s.check({ passive: false, failover: null });
    expect(rep).toMatchObject({ ok: true, role: 'active', clean: true, ranges_found: [], ranges_repaired: [], samples_copied: 0 });
    expect(rep.ranges_backfilled.map((r) => [r.start, r.end, r.missing])).toEqual(HOUR_RANGES().map((r) => [r.start, r.end, r.missing]));
    // the backfill targets the named device as the repair does: dev-7's series only for its range
    expect(rep.exports.map((x) => [x.start, x.match, x.devices ?? null, x.samples])).toEqual([
      [iso(at(50)), 'devices', ['dev-7'], 20 * 4 * 5],
      [iso(at(30)), 'all', null, 3 * PER_MIN],
      [iso(at(20)), 'all', null, 10 * PER_MIN],
    ]);
    expect((await rowsInserted(W.url)) - inserted).toBe(rep.samples_exported);
    expect(rep.samples_backfilled).toBe(sumMissing(HOUR_RANGES()));
    expect(s.status().samples_backfilled_total).toBe(sumMissing(HOUR_RANGES()));
    // VM 1.79 may show imported samples to queries seconds after force_flush: bounded wait.
    for (let i = 0; i < 30; i++) {
      const [a, w] = await Promise.all([bucketCounts(A.url, T - H, T), bucketCounts(W.url, T - H, T)]);
      if ([...a].every(([k, v]) => w.get(k) === v)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await expectSameCounts(A, W, T - H, T);
    expect(await bucketCounts(A.url, T - H, T)).toEqual(remoteBefore);
    expect(await s.check({ passive: false, failover: null })).toMatchObject({ ok: true, clean: true, samples_backfilled: 0, ranges_backfilled: [], exports: [], samples_exported: 0 });
  });
});

describe('targeted repair: only the series of the devices missing', { timeout: 90_000 }, () => {
  // X: the last 65 minutes of 2,000 device series plus 20 series WITHOUT an instance label.
  // Y: the same minus three holes:
  //   DEVS (T-50m, T-40m]  dev-7 and dev-12 missing: named, exported alone
  //   BARE (T-30m, T-27m]  only the label-less series missing: no device names them → every series
  //   FULL (T-20m, T-15m]  everything missing: a full gap → every series
  const BARE = 20;
  const ALL = SERIES + BARE;
  let X: VmFixture, Y: VmFixture;
  beforeAll(async () => {
    [X, Y] = await Promise.all([startVm(), startVm()]);
    closers.push(() => X.stop(), () => Y.stop());
    const data = { series: SERIES, bare: BARE, from: T - 65 * MIN, to: T };
    await Promise.all([
      generate(X.url, data),
      generate(Y.url, {
        ...data,
        holes: [
          { from: at(50), to: at(40), instances: ['dev-7', 'dev-12'] },
          { from: at(30), to: at(27), instances: [''] },
          { from: at(20), to: at(15) },
        ],
      }),
    ]);
    await Promise.all([waitQuiet(X.url), waitQuiet(Y.url)]);
  }, 60_000);

  test('exports only dev-7 and dev-12 for their gap, every series where the gap is not theirs; counts per device equal afterwards; a second run moves nothing', async () => {
    const s = makeSync({ local_url: Y.url, remote_url: X.url, lookback: H });
    const before = await rowsInserted(Y.url);
    const rep = await s.check({ passive: true, failover: null });
    expect(rep.error).toBeNull();
    expect(rep.ranges_found).toEqual([rec(50, 40, 2 * 20 * 4 * 10, ['dev-7', 'dev-12']), rec(30, 27, BARE * 4 * 3), rec(20, 15, ALL * 4 * 5)]);
    expect(rep.confirmed).toBe(true);
    const targeted = 2 * 20 * 4 * 10; // the two devices' source samples over the range
    expect(rep.exports).toEqual([
      { start: iso(at(50)), end: iso(at(40)), match: 'devices', reason: 'devices', devices: ['dev-7', 'dev-12'], device_count: 2, batches: 1, samples: targeted },
      { start: iso(at(30)), end: iso(at(27)), match: 'all', reason: 'unexplained', device_count: 0, batches: 1, samples: ALL * 4 * 3 },
      { start: iso(at(20)), end: iso(at(15)), match: 'all', reason: 'full_gap', device_count: 0, batches: 1, samples: ALL * 4 * 5 },
    ]);
    expect(rep.samples_exported).toBe(targeted + ALL * 4 * 3 + ALL * 4 * 5);
    // What VM itself counts as taken in: exactly what the plan exported (every series of the
    // devices' range would be 20 times more).
    expect((await rowsInserted(Y.url)) - before).toBe(rep.samples_exported);
    expect(s.status()).toMatchObject({ samples_exported_last: rep.samples_exported, exports_last: rep.exports });
    // per bucket and device (the label-less series under "undefined") on both sides
    await expectSameCounts(X, Y, T - H, T);

    const mid = await rowsInserted(Y.url);
    const again = await s.check({ passive: true, failover: null });
    expect(again).toMatchObject({ ok: true, clean: true, ranges_found: [], exports: [], samples_exported: 0, samples_copied: 0 });
    expect(await rowsInserted(Y.url)).toBe(mid);
    expect(s.status()).toMatchObject({ exports_last: [], samples_exported_last: 0 });
  });

  test('device_label "" (naming off): the same gaps, every series exported, no naming query', async () => {
    const Z = await startVm();
    closers.push(() => Z.stop());
    await generate(Z.url, { series: SERIES, bare: BARE, from: T - 65 * MIN, to: T, holes: [{ from: at(50), to: at(40), instances: ['dev-7'] }] });
    await waitQuiet(Z.url);
    const s = makeSync({ local_url: Z.url, remote_url: X.url, lookback: H, device_label: '' });
    const rep = await s.check({ passive: true, failover: null });
    expect(rep.ranges_found).toEqual([rec(50, 40, 20 * 4 * 10)]);
    expect(rep.exports).toMatchObject([{ match: 'all', reason: 'naming_off', samples: ALL * 4 * 10 }]);
    expect(s.status().detection_queries).toBe(2);
    await expectSameCounts(X, Z, T - H, T);
  });
});

describe('repair variants', { timeout: 60_000 }, () => {
  test('format "native" repairs exactly as well', async () => {
    const s = makeSync({ local_url: Q.url, remote_url: A.url, lookback: H, format: 'native' });
    const rep = await s.check({ passive: true, failover: null });
    expect(rep.error).toBeNull();
    expect(rep.ranges_found).toEqual(HOUR_RANGES());
    expect(rep.ranges_repaired).toEqual(HOUR_RANGES());
    expect(rep.confirmed).toBe(true);
    await expectSameCounts(A, Q, T - H, T);
    expect(await s.check({ passive: true, failover: null })).toMatchObject({ clean: true, samples_copied: 0 });
  });

  test('URLs with path prefixes (VM cluster layout: select / insert / other site), no force_flush on the insert side', async () => {
    const proxy = await startProxy(
      [
        ['/select/0/prometheus', U.url],
        ['/insert/0/prometheus', U.url],
        ['/site-a/prometheus', A.url],
      ],
      {
        // vminsert has no /internal/force_flush: VM answers unknown paths with 400
        override: (req, res) => {
          if (!req.url?.startsWith('/insert/0/prometheus/internal/force_flush')) return false;
          res.statusCode = 400;
          res.end('unsupported path requested');
          return true;
        },
      },
    );
    const s = makeSync({
      local_url: `${proxy.url}/select/0/prometheus`,
      local_write_url: `${proxy.url}/insert/0/prometheus`,
      remote_url: `${proxy.url}/site-a/prometheus`,
      lookback: H,
    });
    const rep = await s.check({ passive: true, failover: null });
    expect(rep.error).toBeNull();
    expect(rep.ranges_found).toEqual(HOUR_RANGES());
    expect(rep.confirmed).toBe(true);
    await expectSameCounts(A, U, T - H, T);
    const paths = new Set(proxy.seen);
    expect(paths).toContain('GET /select/0/prometheus/api/v1/query_range');
    expect(paths).toContain('GET /site-a/prometheus/api/v1/query_range');
    expect(paths).toContain('GET /site-a/prometheus/api/v1/export');
    expect(paths).toContain('POST /insert/0/prometheus/api/v1/import');
    expect(paths).toContain('GET /insert/0/prometheus/internal/force_flush');
    expect([...paths].every((p) => /^(GET|POST) \/(select\/0|insert\/0|site-a)\/prometheus\//.test(p))).toBe(true);
    expect(s.status().destination_url).toBe(`${proxy.url}/insert/0/prometheus`);
  });

  test('destination VM killed mid-repair: error in status and state, next cycle completes, nothing doubled', async () => {
    const proxy = await startProxy([['', A.url]], { onExport: () => R.kill() });
    const dir = newDir('crash');
    const s = makeSync({ local_url: R.url, remote_url: proxy.url, lookback: H, max_chunk: 5 * MIN }, { dir, retries: 1 });

    const first = await s.check({ passive: true, failover: { epoch: 3, since: (T - H) / 1000 } });
    expect(first.ok).toBe(false);
    expect(first.ranges_found).toEqual(HOUR_RANGES());
    expect(['VM_UNREACHABLE', 'VM_TIMEOUT', 'VM_HTTP']).toContain(first.error?.code);
    expect(s.status()).toMatchObject({ last_check_ok: false, consecutive_errors: 1, consecutive_clean: 0, failback_ready: false });
    expect(s.status().last_error?.code).toBe(first.error?.code);
    expect(readState(dir)).toMatchObject({ last_check_ok: false, errors: 1, last_error: { code: first.error?.code } });

    await R.restart();
    const second = await s.check({ passive: true, failover: { epoch: 3, since: (T - H) / 1000 } });
    expect(second.error).toBeNull();
    expect(second.ok).toBe(true);
    expect(second.confirmed).toBe(true);
    expect(s.status().consecutive_errors).toBe(0);
    const third = await s.check({ passive: true, failover: { epoch: 3, since: (T - H) / 1000 } });
    expect(third).toMatchObject({ ok: true, clean: true, ranges_found: [] });
    await expectSameCounts(A, R, T - H, T);
  });
});

describe('parallel repair streams', { timeout: 60_000 }, () => {
  test('chunks are copied by `concurrency` streams at once; a chunk that keeps failing stops the repair, ranges fully copied count, the next cycle completes', async () => {
    // Exports wait (up to 3 s) until a second one is in flight: with 2 streams both chunks of the
    // first two ranges are asked for together. The last range's export answers 500 until `broken` is cleared.
    let inFlight = 0;
    let maxInFlight = 0;
    let broken = true;
    const peers: (() => void)[] = [];
    const exportStart = (req: http.IncomingMessage) => Number(new URL(req.url ?? '/', 'http://x').searchParams.get('start')) * 1000;
    const isExport = (req: http.IncomingMessage) => (req.url ?? '').includes('/api/v1/export');
    const lastRange = (req: http.IncomingMessage) => exportStart(req) > at(20) && exportStart(req) <= at(10);
    const proxy = await startProxy([['', A.url]], {
      override: (req, res) => {
        if (!(broken && isExport(req) && lastRange(req))) return false;
        res.statusCode = 500;
        res.end('internal error: storage unavailable');
        return true;
      },
      hold: async (req, res) => {
        if (!broken || !isExport(req)) return;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        res.on('close', () => inFlight--);
        if (inFlight >= 2) {
          for (const wake of peers.splice(0)) wake();
          return;
        }
        await new Promise<void>((r) => {
          const timer = setTimeout(r, 3_000);
          peers.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      },
    });
    const dir = newDir('streams');
    const s = makeSync({ local_url: V.url, remote_url: proxy.url, lookback: H, concurrency: 2 }, { dir, retries: 1 });
    const [r1, r2, r3] = HOUR_RANGES();

    const first = await s.check({ passive: true, failover: { epoch: 4, since: (T - H) / 1000 } });
    expect(first.ranges_found).toEqual(HOUR_RANGES());
    expect(maxInFlight).toBe(2);
    expect(first.ok).toBe(false);
    expect(first.error?.code).toBe('VM_HTTP');
    expect(first.ranges_repaired).toEqual([r1, r2]);
    expect(first.samples_copied).toBe(r1.missing + r2.missing);
    expect(readState(dir)).toMatchObject({ ranges_repaired: [r1, r2], samples_copied_last: r1.missing + r2.missing, last_error: { code: 'VM_HTTP' } });
    // the first two ranges are in the destination, the last one is not
    await expectSameCounts(A, V, at(55), at(25));
    const [src3, dst3] = await Promise.all([bucketCounts(A.url, at(20), at(10)), bucketCounts(V.url, at(20), at(10))]);
    const total = (m: Map<string, number>) => [...m.values()].reduce((n, v) => n + v, 0);
    expect(total(src3) - total(dst3)).toBe(r3.missing);

    broken = false;
    const second = await s.check({ passive: true, failover: { epoch: 4, since: (T - H) / 1000 } });
    expect(second).toMatchObject({ ok: true, ranges_found: [r3], ranges_repaired: [r3], samples_copied: r3.missing, confirmed: true });
    await expectSameCounts(A, V, T - H, T);
  });
});

describe('a VM that answers 500 or garbage', { timeout: 60_000 }, () => {
  async function stubVm(answer: (url: string) => { status: number; body: string }): Promise<{ url: string; count: () => number }> {
    let n = 0;
    const srv = http.createServer((req, res) => {
      n++;
      const a = answer(req.url ?? '');
      res.statusCode = a.status;
      res.end(a.body);
    });
    return { url: await listen(srv), count: () => n };
  }

  test('bounded retries, error in status and state, check() resolves; repeated errors notified once', async () => {
    const r = await webhookReceiver();
    const hook = new Webhook(r.url, { logger });
    const s500 = await stubVm(() => ({ status: 500, body: 'internal error: storage unavailable' }));
    const dir = newDir('stub');
    const s = makeSync({ local_url: P.url, remote_url: s500.url }, { dir, webhook: hook, retries: 2 });
    const t0 = performance.now();
    const rep = await s.check({ passive: true, failover: null });
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(rep).toMatchObject({ ok: false, clean: false });
    expect(rep.error?.code).toBe('VM_HTTP');
    expect(rep.error?.message).toContain('HTTP 500');
    expect(rep.error?.message).toContain('storage unavailable');
    expect(s500.count()).toBe(3); // 1 + retries
    expect(readState(dir)).toMatchObject({ last_check_ok: false, consecutive_errors: 1, last_error: { code: 'VM_HTTP' } });

    const garbage = await stubVm(() => ({ status: 200, body: '<html>not json' }));
    const g = makeSync({ local_url: garbage.url, remote_url: A.url }, { dir, webhook: hook, retries: 1 });
    const rg = await g.check({ passive: true, failover: null });
    expect(rg.error?.code).toBe('VM_BAD_RESPONSE');
    expect(garbage.count()).toBe(2);
    const rg2 = await g.check({ passive: true, failover: null });
    expect(rg2.error?.code).toBe('VM_BAD_RESPONSE');
    expect(readState(dir)).toMatchObject({ consecutive_errors: 3, errors: 3, consecutive_clean: 0, last_error: { code: 'VM_BAD_RESPONSE' } });

    // overlapping calls share one cycle
    const [x, y] = [g.check({ passive: true, failover: null }), g.check({ passive: true, failover: null })];
    expect(x).toBe(y);
    await x;
    await hook.close(5_000);
    expect(r.hits.map((h) => h.event)).toEqual(['repeated_errors']);
    expect(r.hits[0].text).toContain('3 consecutive VM sync checks failed');
  });
});
