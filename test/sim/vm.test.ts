/**
 * The simulator's VictoriaMetrics model (test/sim/vm.ts) answers as VM does where VmSync relies on
 * it: count_over_time over (t - S, t], exports of (start, end], the selectors plan.ts writes; and
 * the real VmSync, on it, finds a per-device gap, repairs only that device and reaches the gate.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { MATCH_ALL, deviceMatchers } from '../../src/vmsync/plan.js';
import { emptyState, type VmSyncState } from '../../src/vmsync/state.js';
import { VmSync } from '../../src/vmsync/sync.js';
import type { Clock, TimerHandle } from '../../src/clock.js';
import type { Logger } from '../../src/log/logger.js';
import { DEVICES, matchedDevices, SAMPLE_MS, SimVm, SimVmPort, type VmNet, type VmProcess } from './vm.js';
import { Scheduler } from './world.js';

const BASE = 1.8e12;

describe('SimVm', () => {
  it('counts a bucket over (t - S, t] and omits empty points, summed or by device', () => {
    const vm = new SimVm('primary', BASE, 1);
    for (let s = 0; s < 12; s++) vm.put(0, s); // device a: slots 0..11 (two minutes)
    vm.put(1, 6); // device b: one sample in the second minute
    // The bucket ending at BASE + 60 s holds slots 1..6 (slot 0 is at its open start).
    expect(vm.query(false, BASE + 60_000, BASE + 120_000, 60_000, 'instance')).toEqual([
      { metric: {}, values: [[BASE + 60_000, 6 + 1], [BASE + 120_000, 5]] },
    ]);
    expect(vm.query(true, BASE + 60_000, BASE + 180_000, 60_000, 'instance')).toEqual([
      { metric: { instance: DEVICES[0] }, values: [[BASE + 60_000, 6], [BASE + 120_000, 5]] },
      { metric: { instance: DEVICES[1] }, values: [[BASE + 60_000, 1]] },
    ]);
  });

  it('reads the selectors plan.ts writes', () => {
    expect(matchedDevices(MATCH_ALL)).toEqual([0, 1, 2]);
    expect(deviceMatchers('instance', [DEVICES[2], DEVICES[0]]).flatMap(matchedDevices).sort()).toEqual([0, 2]);
    expect(matchedDevices(deviceMatchers('instance', ['not-a-device'])[0]!)).toEqual([]);
  });
});

describe('the real VmSync on the model', () => {
  it('finds one device short at the passive VM, exports that device only, and counts clean checks to READY', async () => {
    const sched = new Scheduler();
    const proc: VmProcess = {
      generation: 0,
      deliver: (_gen, fn) => fn(),
      monotonicMs: () => sched.t,
      wallMs: () => BASE + 3 * 3_600_000 + sched.t,
      setTimer: (fn, ms) => sched.at(sched.t + ms, fn) as unknown as TimerHandle,
      cancel: (t) => {
        if (t) (t as unknown as { cancelled: boolean }).cancelled = true;
      },
    };
    const net: VmNet = { now: () => sched.t, at: (t, fn, settles) => void sched.at(t, fn, settles), path: () => 2, random: () => 0.5 };
    const local = new SimVm('dr', BASE, 4);
    const remote = new SimVm('primary', BASE, 4);
    // Two hours of all three devices on the active site's VM; the passive VM misses device c for 10 minutes.
    const slots = (2 * 3_600_000) / SAMPLE_MS;
    for (let d = 0; d < DEVICES.length; d++)
      for (let s = 0; s < slots; s++) {
        remote.put(d, s);
        if (!(d === 2 && s >= 300 && s < 360)) local.put(d, s);
      }
    const cfg = validateConfig('role = "dr"\n[sites]\nprimary = "10.10.10.10"\ndr = "10.20.20.20"\n[dns]\nrecord = "syslog.example.com"\nzone = "example.com"\nserver = "127.0.0.1:53"\nkey_file = "/nonexistent/k"\n[vmsync]\nenabled = true\nremote_url = "http://10.10.10.10:8428"\nlookback = "4h"\nclean_checks = 2\n', 'sim.toml');
    expect(cfg.issues).toEqual([]);
    const config = cfg.config!.vmsync;
    let saved: VmSyncState = emptyState();
    const exports: string[] = [];
    const sync = new VmSync({
      config,
      stateDir: '/nonexistent',
      store: { load: async () => saved, save: async (s) => void (saved = s) },
      logger: new Proxy({} as Logger, { get: () => () => {} }),
      clock: proc satisfies Clock,
      vmClient: (url, o) => {
        const port = new SimVmPort(net, proc, 'dr', url === config.remote_url ? remote : local, o);
        const exportStream = port.exportStream.bind(port);
        port.exportStream = (match, ...rest) => (exports.push(match), exportStream(match, ...rest));
        return port;
      },
    });
    const run = async <T>(p: Promise<T>): Promise<T> => {
      let out: T | undefined;
      let done = false;
      void p.then((v) => ((out = v), (done = true)));
      for (let i = 0; i < 10_000 && !done; i++) {
        await new Promise((r) => setImmediate(r));
        const ev = sched.pop();
        if (ev && !ev.cancelled) {
          sched.t = ev.at;
          ev.fn();
        }
      }
      expect(done).toBe(true);
      return out as T;
    };
    const ctx = { passive: true, failover: null };
    const first = await run(sync.check(ctx));
    expect(first.error).toBeNull();
    expect(first.ranges_found.map((r) => r.missing)).toEqual([60]);
    expect(first.confirmed).toBe(true);
    expect(exports).toEqual(deviceMatchers(config.device_label, [DEVICES[2]]));
    for (let s = 300; s < 360; s++) expect(local.has(2, s)).toBe(true);
    expect(sync.failbackGate().ready).toBe(false);
    // A check that repaired is not clean; the next two are, and two are what clean_checks asks.
    expect((await run(sync.check(ctx))).clean).toBe(true);
    expect(sync.failbackGate().ready).toBe(false);
    expect((await run(sync.check(ctx))).clean).toBe(true);
    expect(sync.failbackGate().ready).toBe(true);
  });
});
