/**
 * sd_notify, isolated here: READY, STATUS, WATCHDOG, RELOADING, STOPPING.
 * Without NOTIFY_SOCKET every call is a no-op. Two paths to the manager:
 * - the `sd-notify` addon (native, built for ONE Node ABI, kept outside the
 *   bundle), when it loads into the running Node; we use only its raw
 *   sendState (never its log/journalPrint, which pass text as a printf format);
 * - otherwise `systemd-notify`, one child per message, in order. It waits
 *   until the manager has processed the message (a barrier, systemd >= 246),
 *   so the manager still sees the sender in our cgroup; the unit sets
 *   NotifyAccess=all because the sender is a child, not the main PID.
 * A package built for one Node therefore keeps working on another (a
 * distribution upgrade): the addon fails to load, the agent says so once and
 * falls back. A failed load is never fatal.
 */
import { createRequire } from 'node:module';

/** Which way messages go: `none` when not started by systemd (no NOTIFY_SOCKET). */
export type NotifyPath = 'addon' | 'systemd-notify' | 'none';

export interface Notifier {
  readonly enabled: boolean;
  readonly path: NotifyPath;
  /** Why the addon is not used (null when it is, or without NOTIFY_SOCKET). */
  readonly fallbackReason: string | null;
  ready(status: string): void;
  status(line: string): void;
  reloading(): void;
  stopping(): void;
  watchdog(): void;
  /** Resolves once every message sent so far has been handed over (the fallback queues them). */
  flush(): Promise<void>;
}

type Send = (state: string) => void;

/** The addon's raw sender; throws when it does not load into this Node. `require` is injectable for tests. */
export function loadAddon(req: (id: string) => unknown = createRequire(__filename)): Send {
  const mod = req('sd-notify') as { sendState?: (s: string) => void };
  if (typeof mod.sendState !== 'function') throw new Error('sd-notify has no sendState');
  return mod.sendState.bind(mod);
}

export interface SystemdNotifyOptions {
  /** The systemd-notify binary (default: found in PATH). */
  bin?: string;
  env?: NodeJS.ProcessEnv;
  /** A message could not be delivered (reported once until one succeeds again). */
  onError?: (err: Error) => void;
}

/** How long one systemd-notify may take (its barrier wait is 5 s). */
const CHILD_TIMEOUT_MS = 10_000;

/**
 * The fallback sender: `systemd-notify K=V ...` per message, strictly one after the other so
 * READY precedes STATUS and STOPPING; never blocks the event loop.
 */
export function systemdNotifySender(opts: SystemdNotifyOptions = {}): { send: Send; flush(): Promise<void> } {
  let queue: Promise<void> = Promise.resolve();
  let failing = false;
  // child_process only here: with the addon (the usual case) it is never loaded.
  const run = async (args: string[]): Promise<void> => {
    const { execFile } = await import('./child-process.js');
    return new Promise((resolve) => {
      execFile(opts.bin ?? 'systemd-notify', args, { env: opts.env ?? process.env, timeout: CHILD_TIMEOUT_MS }, (err, _out, stderr) => {
        if (err && !failing) opts.onError?.(new Error(`systemd-notify ${args[0] ?? ''}: ${stderr.trim() || err.message}`));
        failing = Boolean(err);
        resolve();
      });
    });
  };
  return {
    send: (state) => {
      const args = state.split('\n').filter((l) => l.includes('='));
      queue = queue.then(() => run(args));
    },
    flush: () => queue,
  };
}

/** One line, no newlines: STATUS= ends at the first newline. */
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ').slice(0, 500);

export interface NotifierOptions {
  /** A sender to use instead of either real path (tests). */
  send?: Send;
  /** Loads the addon (default: `loadAddon()`); throwing selects the fallback. */
  addon?: () => Send;
  /** Options of the fallback (the binary, error reports). */
  fallback?: SystemdNotifyOptions;
}

export function createNotifier(env: NodeJS.ProcessEnv = process.env, opts: NotifierOptions = {}): Notifier {
  if (!env.NOTIFY_SOCKET) {
    const noop = (): void => {};
    return {
      enabled: false,
      path: 'none',
      fallbackReason: null,
      ready: noop,
      status: noop,
      reloading: noop,
      stopping: noop,
      watchdog: noop,
      flush: () => Promise.resolve(),
    };
  }
  let path: NotifyPath = 'addon';
  let fallbackReason: string | null = null;
  let send: Send;
  let flush = (): Promise<void> => Promise.resolve();
  if (opts.send) {
    send = opts.send;
  } else {
    try {
      send = (opts.addon ?? loadAddon)();
    } catch (err) {
      path = 'systemd-notify';
      fallbackReason = (err as Error).message.split('\n')[0];
      const fb = systemdNotifySender({ env, ...opts.fallback });
      send = fb.send;
      flush = fb.flush;
    }
  }
  const s = send;
  return {
    enabled: true,
    path,
    fallbackReason,
    ready: (status) => s(`READY=1\nSTATUS=${oneLine(status)}\nMAINPID=${process.pid}\n`),
    status: (line) => s(`STATUS=${oneLine(line)}\n`),
    // systemd 253+ wants MONOTONIC_USEC with RELOADING=1; older ones ignore it.
    reloading: () => s(`RELOADING=1\nMONOTONIC_USEC=${(process.hrtime.bigint() / 1000n).toString()}\n`),
    stopping: () => s('STOPPING=1\n'),
    watchdog: () => s('WATCHDOG=1\n'),
    flush: () => flush(),
  };
}

/** The watchdog period systemd asked for (WATCHDOG_USEC, for this PID), or null. */
export function watchdogUsec(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | null {
  if (!env.NOTIFY_SOCKET || !env.WATCHDOG_USEC) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  const usec = Number(env.WATCHDOG_USEC);
  return Number.isFinite(usec) && usec > 0 ? usec : null;
}
