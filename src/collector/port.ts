/**
 * The collector port: how the engine makes the collector unit match what the
 * core wants. Two implementations: `NoCollector` (collector.control = "none":
 * DNS failover only) here, and the systemd D-Bus one in its own module.
 */
import type { CollectorState } from '../core/decide.js';

export interface CollectorPort {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Last known unit state; null when there is no collector to control. */
  state(): CollectorState | null;
  /** Last error talking to the unit manager, or null. */
  lastError(): string | null;
  /** Make the unit running or stopped; idempotent, never throws. */
  reconcile(want: 'running' | 'stopped'): Promise<void>;
  /** Monotonic ms of the unit's recent crashes (left running not by our stop, or restarted by systemd), oldest first. */
  crashes(): number[];
  /** Called on every change of the unit's state that the manager signals (the engine looks again at once). */
  onChange(listener: () => void): void;
}

export class NoCollector implements CollectorPort {
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  state(): CollectorState | null {
    return null;
  }
  lastError(): string | null {
    return null;
  }
  async reconcile(): Promise<void> {}
  crashes(): number[] {
    return [];
  }
  onChange(): void {}
}
