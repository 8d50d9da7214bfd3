/**
 * Health checks of the other site (SPEC §5): `http(s)://…` targets (2xx = healthy, optionally the
 * body must contain `health.expect`) and `tcp://host:port` targets (healthy when a connection is
 * made). All targets are checked in parallel; `require` decides whether one healthy target ("any")
 * or every target ("all") makes the check healthy.
 *
 * Guarantees:
 * - Each stage is bounded by `timeout` on our own timer (not only undici's timeouts, which are
 *   coarse above 1 s), which ends it, aborts the request and destroys its socket. An http(s)
 *   request on a kept-alive connection has `timeout` for headers and the body we read; a NEW
 *   connection first has its own `timeout` for DNS lookup, connect and TLS handshake, and the
 *   request's `timeout` starts once it is up. So a check on a long path never fails for paying a
 *   handshake (1 RTT, TLS 1-2 more) inside the request's budget; it takes at most 2 × timeout.
 *   A tcp target's check IS the connect: one `timeout`.
 * - Checks never overlap: `check()` called while a check is running returns the SAME in-flight
 *   promise (no second round of requests is started; the caller gets the running check's result).
 * - `check()` never rejects and nothing here throws: every failure is a `TargetResult` with
 *   `ok: false` and a one-line `detail`.
 *
 * HTTP details:
 * - GET with undici `request` through one `Agent` owned by the checker, keeping its connection
 *   alive between checks (one round trip per check, not a handshake first). A dead or replaced
 *   peer is still noticed by the check itself: a dead one does not answer on the kept connection
 *   (timeout: failed, and the connection is dropped); a replaced one (a restarted process, another
 *   host on the address) resets or closes it, and the check then asks once more on a NEW
 *   connection, within its deadline, so its verdict is the new peer's, never the old socket's.
 *   Any failed or timed-out request drops its connection: the next check connects anew.
 * - Redirects are NOT followed: a 3xx is unhealthy ("301 … redirect to /x not followed").
 * - At most {@link MAX_BODY_BYTES} of a 2xx body are read (the `expect` substring is searched there,
 *   as bytes of its UTF-8 form); a longer body is cut off, not waited for. Every body is consumed or
 *   destroyed.
 * - TLS: Node's default verification (certificate chain against Node's CA bundle and host name);
 *   there is no switch to turn it off. A private CA is added with NODE_EXTRA_CA_CERTS.
 */
import net from 'node:net';
import { Agent, request, type Dispatcher } from 'undici';

import { systemClock, type Clock, type TimerHandle } from '../clock.js';

import { parseHostPort } from '../config/schema.js';

export interface TargetResult {
  /** The target as configured. */
  target: string;
  ok: boolean;
  /** One line: "200 in 12 ms", "timeout after 3000 ms waiting for response", "connect ECONNREFUSED …", … */
  detail: string;
  /** Time spent on this target, in ms (whole, from `deps.monotonicMs`). */
  ms: number;
}

export interface HealthResult {
  ok: boolean;
  /** One line summarising, e.g. "1/1 targets failed: http://… timeout after 3000 ms waiting for response". */
  detail: string;
  /** One per target, in the configured order. */
  results: TargetResult[];
}

export interface HealthChecker {
  /**
   * Check every target once. While a check is running, further calls return that same promise.
   * Never rejects. After `close()` it resolves at once with an unhealthy result.
   */
  check(): Promise<HealthResult>;
  /** Cancel a running check (its targets fail with "cancelled") and release every socket. Idempotent. */
  close(): Promise<void>;
}

export interface HealthCheckConfig {
  targets: string[];
  require: 'any' | 'all';
  /** Per-target timeout in ms. */
  timeout: number;
  /** Substring a 2xx body must contain; "" or undefined: any 2xx. */
  expect?: string;
}

export interface HealthCheckDeps {
  /** The clock of the per-stage deadlines (its timers) and of the reported `ms` and "in N ms" figures; default the system clock. */
  clock?: Clock;
  /**
   * The HTTP port (an undici Dispatcher emitting 'connect' / 'disconnect', as Agent and MockAgent
   * do) instead of the checker's own kept-alive pool; the caller's to close.
   */
  dispatcher?: Dispatcher;
}

/** The most of a 2xx body that is read (and searched for `expect`). */
export const MAX_BODY_BYTES = 64 * 1024;
/** The most of a non-2xx body read for the detail line, and the most of it shown. */
const ERROR_BODY_BYTES = 1024;
const ERROR_SNIPPET_CHARS = 100;
/** undici's own timeouts are only a backstop behind our timer: later by this much, so ours always decides. */
const UNDICI_TIMEOUT_MARGIN_MS = 1000;
/** How long an idle kept-alive connection is kept when the server gives no hint (its Keep-Alive timeout wins). */
const KEEP_ALIVE_MS = 60_000;

interface Outcome {
  ok: boolean;
  detail: string;
}

/** What a target is doing, for the timeout message; `restart()` starts a new stage's `timeout`. */
interface Progress {
  stage: string;
  restart(): void;
}

export function createHealthChecker(cfg: HealthCheckConfig, deps: HealthCheckDeps = {}): HealthChecker {
  const clock = deps.clock ?? systemClock;
  const now = (): number => clock.monotonicMs();
  const targets = [...cfg.targets];
  const timeout = cfg.timeout;
  const expectText = cfg.expect ?? '';
  const expectBytes = Buffer.from(expectText, 'utf8');
  const backstop = timeout + UNDICI_TIMEOUT_MARGIN_MS;

  const ownPool = deps.dispatcher
    ? null
    : new Agent({
        connect: { timeout: backstop },
        headersTimeout: backstop,
        bodyTimeout: backstop,
        // One connection per origin: a check waits for the kept one rather than racing it with a second.
        connections: 1,
        keepAliveTimeout: KEEP_ALIVE_MS,
        keepAliveMaxTimeout: 10 * KEEP_ALIVE_MS,
        maxRedirections: 0,
      });
  const agent: Dispatcher = deps.dispatcher ?? ownPool!;
  /** Open connections per origin (undici's connect/disconnect events): is there one to reuse? */
  const open = new Map<string, number>();
  agent.on('connect', (origin) => open.set(originOf(origin), (open.get(originOf(origin)) ?? 0) + 1));
  agent.on('disconnect', (origin) => open.set(originOf(origin), Math.max(0, (open.get(originOf(origin)) ?? 0) - 1)));

  let inflight: Promise<HealthResult> | undefined;
  let closed = false;
  /** Resolvers that end the running targets at once (close()). */
  const cancels = new Set<() => void>();

  /** One GET; on a NEW connection, the request's own budget starts when the connection is up. */
  async function send(url: URL, signal: AbortSignal, progress: Progress): Promise<Dispatcher.ResponseData> {
    const origin = url.origin;
    if ((open.get(origin) ?? 0) > 0) {
      progress.stage = 'waiting for response (kept-alive connection)';
      return request(url, requestOptions(signal));
    }
    progress.stage = 'connecting';
    const onConnect = (o: unknown): void => {
      if (originOf(o) !== origin) return;
      agent.off('connect', onConnect);
      progress.stage = 'waiting for response (new connection)';
      progress.restart();
    };
    agent.on('connect', onConnect);
    try {
      return await request(url, requestOptions(signal));
    } finally {
      agent.off('connect', onConnect);
    }
  }

  function requestOptions(signal: AbortSignal): Parameters<typeof request>[1] {
    return {
      method: 'GET',
      dispatcher: agent,
      signal,
      headersTimeout: backstop,
      bodyTimeout: backstop,
      maxRedirections: 0,
      headers: { 'user-agent': 'failover-agent health check', accept: '*/*' },
    };
  }

  async function probeHttp(url: URL, signal: AbortSignal, progress: Progress, start: number): Promise<Outcome> {
    const reused = (open.get(url.origin) ?? 0) > 0;
    let res: Dispatcher.ResponseData;
    try {
      res = await send(url, signal, progress);
    } catch (err) {
      // The kept connection was closed or reset under us (the peer restarted or was replaced):
      // that says nothing about the peer now, so ask once more on a new connection.
      if (!reused || !isStaleConnection(err) || signal.aborted) throw err;
      progress.restart();
      res = await send(url, signal, progress);
    }
    const { statusCode: status, body } = res;
    progress.stage = `reading body (HTTP ${status})`;
    try {
      if (status >= 200 && status < 300) {
        const { data, truncated } = await readCapped(body, MAX_BODY_BYTES);
        const head = `${status} in ${elapsed(start)} ms`;
        if (expectBytes.length > 0 && !data.includes(expectBytes)) {
          const where = truncated ? ` in its first ${MAX_BODY_BYTES} bytes` : '';
          return { ok: false, detail: `${head}, body lacks ${JSON.stringify(expectText)}${where}` };
        }
        return { ok: true, detail: head };
      }
      if (status >= 300 && status < 400) {
        const location = headerValue(res.headers.location);
        const to = location ? ` to ${oneLine(location, 200)}` : '';
        return { ok: false, detail: `${status} in ${elapsed(start)} ms: redirect${to} not followed` };
      }
      const { data } = await readCapped(body, ERROR_BODY_BYTES);
      const snippet = oneLine(data.toString('utf8'), ERROR_SNIPPET_CHARS);
      return { ok: false, detail: `${status} in ${elapsed(start)} ms${snippet ? `: ${JSON.stringify(snippet)}` : ''}` };
    } finally {
      body.destroy();
    }
  }

  function probeTcp(host: string, port: number, signal: AbortSignal, progress: Progress, start: number): Promise<Outcome> {
    progress.stage = 'connecting';
    return new Promise<Outcome>((resolve) => {
      const socket = net.connect({ host, port });
      const done = (o: Outcome) => {
        signal.removeEventListener('abort', onAbort);
        socket.destroy();
        resolve(o);
      };
      const onAbort = () => done({ ok: false, detail: 'aborted' });
      socket.once('connect', () => done({ ok: true, detail: `connected in ${elapsed(start)} ms` }));
      socket.once('error', (err) => done({ ok: false, detail: describeError(err) }));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  function elapsed(start: number): number {
    return Math.max(0, Math.round(now() - start));
  }

  /** One target, bounded by `timeout` on a real timer whatever the probe does. */
  async function checkTarget(target: string): Promise<TargetResult> {
    const start = now();
    /** Start of the current stage's budget (a new connection's, then its request's). */
    let t0 = now();
    const ac = new AbortController();
    const progress: Progress = {
      stage: 'starting',
      restart: () => {
        t0 = now();
      },
    };
    let timer: TimerHandle | undefined;
    let cancel: (() => void) | undefined;

    const stop = new Promise<Outcome>((resolve) => {
      // A timer may fire early by a fresh clock (the loop's time is cached), or a stage restarted: re-arm for the rest.
      const arm = (ms: number) => {
        timer = clock.setTimer(() => {
          const left = timeout - (now() - t0);
          if (left > 0) arm(Math.ceil(left));
          else resolve({ ok: false, detail: `timeout after ${timeout} ms ${progress.stage}` });
        }, ms);
      };
      arm(timeout);
      cancel = () => resolve({ ok: false, detail: 'cancelled: health checker closed' });
      cancels.add(cancel);
    });

    const probe = (async (): Promise<Outcome> => {
      try {
        const kind = parseTarget(target);
        if (typeof kind === 'string') return { ok: false, detail: kind };
        if (kind.kind === 'http') return await probeHttp(kind.url, ac.signal, progress, start);
        return await probeTcp(kind.host, kind.port, ac.signal, progress, start);
      } catch (err) {
        return { ok: false, detail: isUndiciTimeout(err) ? `timeout after ${timeout} ms ${progress.stage}` : describeError(err) };
      }
    })();

    const outcome = await Promise.race([probe, stop]);
    clock.cancel(timer);
    if (cancel) cancels.delete(cancel);
    // Ends whatever is still going (a hung request, its body, a connect): sockets are destroyed.
    ac.abort(new Error(`health check of ${target} ended`));
    return { target, ok: outcome.ok, detail: oneLine(outcome.detail, 500), ms: elapsed(start) };
  }

  async function runCheck(): Promise<HealthResult> {
    try {
      const results = await Promise.all(targets.map((t) => checkTarget(t)));
      return summarise(results, cfg.require);
    } catch (err) {
      // Not expected (checkTarget does not reject); keep the never-throws promise anyway.
      return { ok: false, detail: `health check failed: ${describeError(err)}`, results: [] };
    }
  }

  return {
    check(): Promise<HealthResult> {
      if (inflight) return inflight;
      if (closed) {
        return Promise.resolve({
          ok: false,
          detail: 'health checker closed',
          results: targets.map((target) => ({ target, ok: false, detail: 'health checker closed', ms: 0 })),
        });
      }
      const p = runCheck().finally(() => {
        if (inflight === p) inflight = undefined;
      });
      inflight = p;
      return p;
    },

    async close(): Promise<void> {
      if (!closed) {
        closed = true;
        for (const cancel of [...cancels]) cancel();
      }
      if (inflight) await inflight;
      try {
        await ownPool?.destroy();
      } catch {
        // Already destroyed (a second close): nothing left to release.
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

type ParsedTarget = { kind: 'http'; url: URL } | { kind: 'tcp'; host: string; port: number };

/** A target's kind and address, or a string saying why it cannot be checked. */
function parseTarget(target: string): ParsedTarget | string {
  if (/^https?:\/\//i.test(target)) {
    try {
      return { kind: 'http', url: new URL(target) };
    } catch {
      return `invalid URL ${JSON.stringify(target)}`;
    }
  }
  if (/^tcp:\/\//i.test(target)) {
    const r = parseHostPort(target.slice('tcp://'.length).replace(/\/+$/, ''), 0);
    if (typeof r === 'string') return `invalid tcp target: ${r}`;
    if (r.port === 0) return `tcp target ${JSON.stringify(target)} needs a port (tcp://host:port)`;
    return { kind: 'tcp', host: r.host, port: r.port };
  }
  return `unsupported target ${JSON.stringify(target)} (http://, https:// or tcp://host:port)`;
}

function summarise(results: TargetResult[], require: 'any' | 'all'): HealthResult {
  const n = results.length;
  if (n === 0) return { ok: false, detail: 'no health targets configured', results };
  const good = results.filter((r) => r.ok);
  const bad = results.filter((r) => !r.ok);
  const ok = require === 'any' ? good.length > 0 : bad.length === 0;
  const list = (rs: TargetResult[]) => rs.map((r) => `${r.target} ${r.detail}`).join('; ');
  let detail: string;
  if (bad.length === 0) detail = `${n}/${n} targets healthy: ${list(good)}`;
  else if (ok) detail = `${good.length}/${n} targets healthy (require any); failed: ${list(bad)}`;
  else detail = `${bad.length}/${n} targets failed${require === 'all' && good.length > 0 ? ' (require all)' : ''}: ${list(bad)}`;
  return { ok, detail, results };
}

/** Read at most `cap` bytes of a body; stops (and destroys the stream) once `cap` is reached. */
async function readCapped(body: Dispatcher.ResponseData['body'], cap: number): Promise<{ data: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= cap) {
      const data = Buffer.concat(chunks).subarray(0, cap);
      return { data, truncated: true };
    }
  }
  return { data: Buffer.concat(chunks), truncated: false };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

const UNDICI_TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
/** A kept connection that the peer closed or reset: undici's "other side closed", or the socket's own error. */
const STALE_CONNECTION_CODES = new Set(['UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNRESET', 'EPIPE']);

function isStaleConnection(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  return STALE_CONNECTION_CODES.has(String(e?.code)) || STALE_CONNECTION_CODES.has(String(e?.cause?.code));
}

/** undici names an origin by a URL (or its string): compare by `scheme://host:port`. */
function originOf(o: unknown): string {
  try {
    return o instanceof URL ? o.origin : new URL(String(o)).origin;
  } catch {
    return String(o);
  }
}

function isUndiciTimeout(err: unknown): boolean {
  return UNDICI_TIMEOUT_CODES.has(String((err as { code?: unknown } | null)?.code));
}

/** One line naming the error: Node's "connect ECONNREFUSED 127.0.0.1:1" or "CODE: message". */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return `error: ${String(err)}`;
  // fetch-style wrappers keep the socket error as the cause.
  const e = (err.cause instanceof Error && !('code' in err) ? err.cause : err) as NodeJS.ErrnoException;
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (e.name === 'AggregateError' && 'errors' in e && Array.isArray((e as { errors: unknown[] }).errors)) {
    // Node ≥ 20 tries every address of a name (autoSelectFamily): show each attempt.
    const parts = (e as unknown as { errors: unknown[] }).errors.map((x) => describeError(x));
    if (parts.length > 0) return parts.join(', ');
  }
  const message = e.message || code || e.name;
  if (code && !message.includes(code)) return `${code}: ${message}`;
  return message;
}

/** Whitespace (and control characters) collapsed to single spaces, cut to `max` characters. */
function oneLine(s: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}
