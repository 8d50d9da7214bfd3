/**
 * The one time source. Every read of time and every wait of the agent's loops goes through an
 * injected Clock, so the simulator (test/sim/) runs the shipping code on simulated time, with each
 * site's clock at its own rate. Names say which clock a value is on: `monotonicMs` (lease timing,
 * deadlines, durations: never jumps) and `wallMs` (only what is shown or written: the lease's
 * informational `at`, event stamps).
 */
import { randomInt } from 'node:crypto';

export interface TimerHandle {
  readonly __timer: true;
}

export interface Clock {
  /** Monotonic milliseconds (arbitrary origin). */
  monotonicMs(): number;
  /** Wall-clock milliseconds since the Unix epoch. */
  wallMs(): number;
  /** Runs `fn` after `ms` of monotonic time. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  cancel(timer: TimerHandle | undefined): void;
}

export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
  cancel: (timer) => clearTimeout(timer as unknown as NodeJS.Timeout | undefined),
};

/** Resolves after `ms` of `clock` time. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.setTimer(resolve, ms);
  });
}

/**
 * The one source of randomness, injectable as the clock is (the simulator and tests replay it):
 * `below(n)` an integer in [0, n) (DNS message ids: unpredictable, from the CSPRNG by default),
 * `fraction()` in [0, 1) (backoff jitter).
 */
export interface Random {
  below(n: number): number;
  fraction(): number;
}

export const systemRandom: Random = {
  below: (n) => randomInt(0, n),
  fraction: () => Math.random(),
};
