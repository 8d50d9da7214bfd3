/**
 * sd_notify, isolated here: READY, STATUS, WATCHDOG, RELOADING, STOPPING.
 * Without NOTIFY_SOCKET every call is a no-op. The `sd-notify` addon is
 * native (ABI-specific), kept outside the bundle and loaded only when
 * NOTIFY_SOCKET is set; we use only its raw sendState (never its
 * log/journalPrint, which pass text as a printf format).
 */
import { createRequire } from 'node:module';
import { AgentError, ExitCode } from '../errors.js';

export interface Notifier {
  readonly enabled: boolean;
  ready(status: string): void;
  status(line: string): void;
  reloading(): void;
  stopping(): void;
  watchdog(): void;
}

type Send = (state: string) => void;

/** The addon's raw sender; `require` is injectable for tests. */
export function loadSender(req: (id: string) => unknown = createRequire(__filename)): Send {
  try {
    const mod = req('sd-notify') as { sendState?: (s: string) => void };
    if (typeof mod.sendState !== 'function') throw new Error('sd-notify has no sendState');
    return mod.sendState.bind(mod);
  } catch (err) {
    throw new AgentError(
      'NOTIFY_UNAVAILABLE',
      `NOTIFY_SOCKET is set but the sd-notify addon cannot be loaded: ${(err as Error).message}`,
      ExitCode.UNAVAILABLE,
      { cause: err },
    );
  }
}

/** One line, no newlines: STATUS= ends at the first newline. */
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ').slice(0, 500);

export function createNotifier(env: NodeJS.ProcessEnv = process.env, send?: Send): Notifier {
  if (!env.NOTIFY_SOCKET) {
    const noop = (): void => {};
    return { enabled: false, ready: noop, status: noop, reloading: noop, stopping: noop, watchdog: noop };
  }
  const s = send ?? loadSender();
  return {
    enabled: true,
    ready: (status) => s(`READY=1\nSTATUS=${oneLine(status)}\nMAINPID=${process.pid}\n`),
    status: (line) => s(`STATUS=${oneLine(line)}\n`),
    // systemd 253+ wants MONOTONIC_USEC with RELOADING=1; older ones ignore it.
    reloading: () => s(`RELOADING=1\nMONOTONIC_USEC=${(process.hrtime.bigint() / 1000n).toString()}\n`),
    stopping: () => s('STOPPING=1\n'),
    watchdog: () => s('WATCHDOG=1\n'),
  };
}

/** The watchdog period systemd asked for (WATCHDOG_USEC, for this PID), or null. */
export function watchdogUsec(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | null {
  if (!env.NOTIFY_SOCKET || !env.WATCHDOG_USEC) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  const usec = Number(env.WATCHDOG_USEC);
  return Number.isFinite(usec) && usec > 0 ? usec : null;
}
