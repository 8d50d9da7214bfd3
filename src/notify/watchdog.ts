/**
 * Watchdog keep-alive that means something: WATCHDOG=1 is sent (at half of
 * WATCHDOG_USEC) only while every loop has completed an iteration within its
 * deadline. A wedged loop stops the pings, systemd kills and restarts us.
 * Pure bookkeeping plus one timer; the clock is injected.
 */
import { systemClock, type Clock, type TimerHandle } from '../clock.js';

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
    private readonly clock: Pick<Clock, 'monotonicMs'>,
  ) {
    const t = clock.monotonicMs();
    for (const loop of Object.keys(deadlines)) this.last.set(loop, t);
  }

  setDeadlines(deadlines: LoopDeadlines): void {
    this.deadlines = deadlines;
    for (const loop of Object.keys(deadlines)) if (!this.last.has(loop)) this.last.set(loop, this.clock.monotonicMs());
  }

  progress(loop: string, at = this.clock.monotonicMs()): void {
    this.last.set(loop, at);
  }

  check(at = this.clock.monotonicMs()): Liveness {
    const stale = Object.entries(this.deadlines)
      .map(([loop, deadlineMs]) => ({ loop, sinceMs: at - (this.last.get(loop) ?? at), deadlineMs }))
      .filter((l) => l.sinceMs > l.deadlineMs);
    return { ok: stale.length === 0, stale };
  }
}

/** Pings at half the systemd period while the tracker says every loop is alive. */
export class WatchdogPinger {
  private handle: TimerHandle | undefined;
  private running = false;
  private wasStale = false;

  constructor(
    private readonly periodUsec: number,
    private readonly tracker: LivenessTracker,
    private readonly ping: () => void,
    private readonly onStale: (l: Liveness) => void,
    private readonly clock: Clock = systemClock,
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
    this.running = true;
    this.beat();
    this.arm();
  }

  stop(): void {
    this.running = false;
    this.clock.cancel(this.handle);
    this.handle = undefined;
  }

  /** The next beat, one interval on (a timer re-armed each beat: the Clock has one-shot timers). */
  private arm(): void {
    if (!this.running) return;
    this.handle = this.clock.setTimer(() => {
      this.beat();
      this.arm();
    }, this.intervalMs);
  }
}
