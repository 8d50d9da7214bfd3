/**
 * Watchdog keep-alive that means something: WATCHDOG=1 is sent (at half of
 * WATCHDOG_USEC) only while every loop has completed an iteration within its
 * deadline. A wedged loop stops the pings, systemd kills and restarts us.
 * Pure bookkeeping plus one timer; the clock is injected.
 */
export interface LoopDeadlines {
  [loop: string]: number; // ms
}

export interface Liveness {
  ok: boolean;
  /** Loops past their deadline, with how long since their last progress (ms). */
  stale: { loop: string; sinceMs: number; deadlineMs: number }[];
}

export class LivenessTracker {
  private readonly last = new Map<string, number>();

  constructor(
    private deadlines: LoopDeadlines,
    private readonly monotonicMs: () => number,
  ) {
    const t = monotonicMs();
    for (const loop of Object.keys(deadlines)) this.last.set(loop, t);
  }

  setDeadlines(deadlines: LoopDeadlines): void {
    this.deadlines = deadlines;
    for (const loop of Object.keys(deadlines)) if (!this.last.has(loop)) this.last.set(loop, this.monotonicMs());
  }

  progress(loop: string, at = this.monotonicMs()): void {
    this.last.set(loop, at);
  }

  check(at = this.monotonicMs()): Liveness {
    const stale = Object.entries(this.deadlines)
      .map(([loop, deadlineMs]) => ({ loop, sinceMs: at - (this.last.get(loop) ?? at), deadlineMs }))
      .filter((l) => l.sinceMs > l.deadlineMs);
    return { ok: stale.length === 0, stale };
  }
}

export interface WatchdogTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** Pings at half the systemd period while the tracker says every loop is alive. */
export class WatchdogPinger {
  private handle: unknown;
  private wasStale = false;

  constructor(
    private readonly periodUsec: number,
    private readonly tracker: LivenessTracker,
    private readonly ping: () => void,
    private readonly onStale: (l: Liveness) => void,
    private readonly timers: WatchdogTimers = { setInterval: (f, ms) => setInterval(f, ms), clearInterval: (h) => clearInterval(h as NodeJS.Timeout) },
  ) {}

  get intervalMs(): number {
    return Math.max(1, Math.floor(this.periodUsec / 2000));
  }

  /** One beat: ping if alive; report staleness once per episode. */
  beat(): boolean {
    const l = this.tracker.check();
    if (l.ok) {
      this.wasStale = false;
      this.ping();
      return true;
    }
    if (!this.wasStale) this.onStale(l);
    this.wasStale = true;
    return false;
  }

  start(): void {
    this.beat();
    this.handle = this.timers.setInterval(() => this.beat(), this.intervalMs);
  }

  stop(): void {
    if (this.handle !== undefined) this.timers.clearInterval(this.handle);
    this.handle = undefined;
  }
}
