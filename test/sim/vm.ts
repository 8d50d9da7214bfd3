/**
 * VictoriaMetrics in the simulator (issue 21): an in-memory model of each site's VM, the devices'
 * samples the collectors write into them, and the VmPort the REAL VmSync (src/vmsync/sync.ts) talks
 * to instead of VmClient. So the failback gate's inputs are simulated, not drawn.
 *
 * The model, at the resolution VM sync cares about:
 * - Every SAMPLE_MS each running collector scrapes every device and writes the sample to both VMs
 *   (its own, and the other site's over the WAN). A write is lost when that VM is down, the WAN
 *   between the collector and it is cut, or a `drop` fault drops that device at that VM (a
 *   per-series limit, a relabel gone wrong: the partial, per-device gaps targeted repair is for).
 *   Samples carry the collector's NTP time; within one SAMPLE_MS slot a VM keeps one (dedup), so
 *   two collectors running at once write the same samples.
 * - A VM is up, down (connection refused), slow (answers after up to 1.6× the request timeout) or
 *   failing (every API call answers 500; ingestion still works: vminsert up, vmselect broken).
 * - The port answers `query_range` of VmSync's two count queries (summed, or `sum by (<label>)`),
 *   exports (start, end] of the matched devices, imports, and force_flush, each after a simulated
 *   round trip: local, or over the P<->DR link (a cut link is a black hole: the request times out).
 *   Queries are retried as VmClient retries them (its contract: the port's caller retries chunks).
 */
import type { Clock, TimerHandle } from '../../src/clock.js';
import type { Role } from '../../src/lease/lease.js';
import { VmError } from '../../src/vmsync/vm-client.js';
import type { ExportStream, VmClientOptions, VmFormat, VmPort, VmSeries } from '../../src/vmsync/vm-client.js';

/** One sample per device per this (ms): VM's dedup interval in the model. */
export const SAMPLE_MS = 10_000;
export const DEVICES = ['bigip-a', 'bigip-b', 'bigip-c'] as const;
/** The devices' sample times start this long before real time 0 (wall ms) and reach this far after the run. */
const MARGIN_SLOTS = (48 * 3_600_000) / SAMPLE_MS;

export type VmMode = 'up' | 'down' | 'slow' | 'failing';

/** One site's VictoriaMetrics: per device, a presence flag per SAMPLE_MS slot of wall time. */
export class SimVm {
  mode: VmMode = 'up';
  /** Plant `vm-import-loses`: an import keeps none of the first device's samples it is sent. */
  importLoses = false;
  /** The device whose writes this VM drops now (a `drop` fault), if any. */
  dropping: string | null = null;
  private readonly slots: Uint8Array[];
  constructor(
    readonly site: Role,
    /** Wall ms of slot 0. */
    private readonly base: number,
    hours: number,
  ) {
    const n = Math.ceil((hours * 3_600_000) / SAMPLE_MS) + 2 * MARGIN_SLOTS;
    this.slots = DEVICES.map(() => new Uint8Array(n));
  }

  slotOf(wallMs: number): number {
    return Math.floor((wallMs - this.base) / SAMPLE_MS);
  }
  /** Wall ms at which a slot's samples are stamped (its start: slots never straddle a bucket). */
  wallOf(slot: number): number {
    return this.base + slot * SAMPLE_MS;
  }
  get slotCount(): number {
    return this.slots[0]!.length;
  }

  has(device: number, slot: number): boolean {
    return this.slots[device]![slot] === 1;
  }
  put(device: number, slot: number): void {
    const a = this.slots[device]!;
    if (slot >= 0 && slot < a.length) a[slot] = 1;
  }

  /** Samples of `device` in (fromMs, toMs] (wall). */
  count(device: number, fromMs: number, toMs: number): number {
    const a = this.slots[device]!;
    let n = 0;
    const lo = Math.max(0, Math.floor((fromMs - this.base) / SAMPLE_MS) + 1);
    const hi = Math.min(a.length - 1, Math.floor((toMs - this.base) / SAMPLE_MS));
    for (let s = lo; s <= hi; s++) n += a[s]!;
    return n;
  }

  /** `query_range` of sum(count_over_time(...[S])) (by device with `byDevice`): a point per step where there is data. */
  query(byDevice: boolean, start: number, end: number, step: number, label: string): VmSeries[] {
    const per = DEVICES.map((name, d) => {
      const values: [number, number][] = [];
      for (let t = start; t <= end; t += step) {
        const n = this.count(d, t - step, t);
        if (n > 0) values.push([t, n]);
      }
      return { metric: { [label]: name }, values };
    });
    if (byDevice) return per.filter((s) => s.values.length > 0);
    const sum = new Map<number, number>();
    for (const s of per) for (const [t, n] of s.values) sum.set(t, (sum.get(t) ?? 0) + n);
    if (sum.size === 0) return [];
    return [{ metric: {}, values: [...sum].sort((a, b) => a[0] - b[0]) }];
  }
}

/** What an export carries in the model: the matched devices' slots (no bytes, no stream machinery: nothing asynchronous but the simulated round trips). */
interface SimExport {
  sim: true;
  samples: [number, number][];
  gzip: boolean;
}

/** The devices a `match[]` selector of plan.ts names: every one for MATCH_ALL, else its `<label>=~"a|b"` alternatives. */
export function matchedDevices(match: string): number[] {
  const m = /=~("(?:[^"\\]|\\.)*")/.exec(match);
  if (!m) return DEVICES.map((_, i) => i);
  const alts = (JSON.parse(m[1]!) as string).split('|').map((a) => a.replace(/\\(.)/g, '$1'));
  return DEVICES.flatMap((d, i) => (alts.includes(d) ? [i] : []));
}

/** What the port needs from the simulated world. */
export interface VmNet {
  /** Real ms now, and a real-time event (`settles`: it may run agent promise work). */
  now(): number;
  at(t: number, fn: () => void, settles: boolean): void;
  /** One-way delay (ms) from site `from` to site `to` (the same: local), or null when that direction is cut (a black hole). */
  path(from: Role, to: Role): number | null;
  /** The world's seeded generator: [0, 1). */
  random(): number;
}

/** A site's agent process as the port delivers into it (SiteProcess): crash drops, pause holds. */
export interface VmProcess extends Clock {
  readonly generation: number;
  deliver(gen: number, fn: () => void): void;
}

/**
 * The VmPort of one agent to one VM: every call is one exchange over `net`, answered by the model
 * when the request arrives, delivered into the agent's process after the way back.
 */
export class SimVmPort implements VmPort {
  readonly baseUrl: string;
  readonly writeUrl: string;
  constructor(
    private readonly net: VmNet,
    private readonly proc: VmProcess,
    private readonly from: Role,
    private readonly vm: SimVm,
    private readonly opts: VmClientOptions,
  ) {
    this.baseUrl = `http://vm.${vm.site}.sim:8428`;
    this.writeUrl = this.baseUrl;
  }

  private exchange<T>(what: string, serve: () => T): Promise<T> {
    const gen = this.proc.generation;
    const timeoutMs = this.opts.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      let timer: TimerHandle | undefined;
      const finish = (fn: () => void): void => {
        if (done) return;
        done = true;
        this.proc.cancel(timer);
        fn();
      };
      timer = this.proc.setTimer(() => finish(() => reject(new VmError('VM_TIMEOUT', `${this.baseUrl}${what}: no answer in ${timeoutMs} ms`))), timeoutMs);
      const there = this.net.path(this.from, this.vm.site);
      if (there === null) return; // a black hole: the timer answers
      this.net.at(
        this.net.now() + there,
        () => {
          const vm = this.vm;
          let answer: () => void;
          let extra = 0;
          if (vm.mode === 'down') {
            answer = () => finish(() => reject(new VmError('VM_UNREACHABLE', `${this.baseUrl}${what}: connect ECONNREFUSED`)));
          } else if (vm.mode === 'failing') {
            answer = () => finish(() => reject(new VmError('VM_HTTP', `${this.baseUrl}${what}: HTTP 500: internal error`, 500)));
          } else {
            if (vm.mode === 'slow') extra = timeoutMs * (0.2 + 1.4 * this.net.random());
            let value: T;
            try {
              value = serve();
            } catch (err) {
              answer = () => finish(() => reject(err));
              this.back(gen, extra, answer);
              return;
            }
            answer = () => finish(() => resolve(value));
          }
          this.back(gen, extra, answer);
        },
        false,
      );
    });
  }

  /** The way back: delivered into the process (crash drops it, pause holds it); a cut on the way back is a black hole too. */
  private back(gen: number, extra: number, answer: () => void): void {
    const back = this.net.path(this.vm.site, this.from);
    if (back === null) return;
    this.net.at(this.net.now() + extra + back, () => this.proc.deliver(gen, answer), true);
  }

  async close(): Promise<void> {}

  async queryRange(query: string, start: number, end: number, step: number): Promise<VmSeries[]> {
    const by = /^sum by \(([^)]+)\)/.exec(query);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.exchange('/api/v1/query_range', () => this.vm.query(by !== null, start, end, step, by?.[1] ?? 'instance'));
      } catch (err) {
        if (!(err as VmError).retryable || attempt >= this.opts.retries) throw err;
        await sleepOn(this.proc, Math.min(5_000, (this.opts.backoffMs ?? 250) * 2 ** attempt));
      }
    }
  }

  async exportStream(match: string, start: number, end: number, _format: VmFormat): Promise<ExportStream> {
    const devices = matchedDevices(match);
    const body = await this.exchange('/api/v1/export', (): SimExport => {
      const samples: [number, number][] = [];
      const lo = Math.max(0, this.vm.slotOf(start) + 1);
      const hi = Math.min(this.vm.slotCount - 1, this.vm.slotOf(end));
      for (const d of devices) for (let s = lo; s <= hi; s++) if (this.vm.has(d, s)) samples.push([d, s]);
      return { sim: true, samples, gzip: true };
    });
    return body as unknown as ExportStream;
  }

  async import(stream: unknown, _format: VmFormat): Promise<{ bytes: number }> {
    const body = stream as SimExport;
    if (body?.sim !== true) throw new Error('sim VM: import of something not exported by the sim VM');
    return this.exchange('/api/v1/import', () => {
      for (const [d, s] of body.samples) if (!this.vm.importLoses || d !== 0) this.vm.put(d, s);
      return { bytes: body.samples.length * 40 };
    });
  }

  async forceFlush(): Promise<boolean> {
    return this.exchange('/internal/force_flush', () => true);
  }
}

function sleepOn(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms));
}

/** The clock VmSync reads wall time from: the process's monotonic time and timers, and NTP's wall time (`wallMs`). */
export function ntpClock(proc: Clock, wallMs: () => number): Clock {
  return {
    monotonicMs: () => proc.monotonicMs(),
    wallMs,
    setTimer: (fn, ms) => proc.setTimer(fn, ms),
    cancel: (t) => proc.cancel(t),
  };
}
