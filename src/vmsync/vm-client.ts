/**
 * A small VictoriaMetrics HTTP client for VM sync (SPEC §6): range queries, streaming export and
 * import (JSON lines or native), force_flush. undici, one connection pool per client.
 *
 * URLs may carry a path prefix: every API path is appended to the base URL as is, so a VM cluster
 * works with `http://vmselect:8481/select/0/prometheus` for reads and
 * `http://vminsert:8480/insert/0/prometheus` as `writeUrl` (imports and force_flush).
 *
 * Errors are AgentErrors with exit code 69 (a server unreachable):
 *   VM_HTTP         non-2xx answer (status and the start of the body in the message)
 *   VM_TIMEOUT      no answer / body stalled for timeoutMs
 *   VM_UNREACHABLE  connection refused, reset, DNS failure, …
 *   VM_BAD_RESPONSE 2xx but not the JSON shape we asked for
 * Range queries are retried (they are idempotent reads) with exponential backoff; an export or an
 * import is not retried here: the caller retries the whole export→import of a chunk (idempotent
 * when both VMs deduplicate alike).
 */
import type { Readable } from 'node:stream';
import { Agent, errors as undiciErrors, request, type Dispatcher } from 'undici';

import { sleep, systemClock, systemRandom, type Clock, type Random } from '../clock.js';
import { AgentError, ExitCode } from '../errors.js';
import type { Logger } from '../log/logger.js';

export type VmFormat = 'json' | 'native';

export type VmErrorCode = 'VM_HTTP' | 'VM_TIMEOUT' | 'VM_UNREACHABLE' | 'VM_BAD_RESPONSE';

export class VmError extends AgentError {
  constructor(
    code: VmErrorCode,
    message: string,
    /** HTTP status for VM_HTTP */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, ExitCode.UNAVAILABLE, options);
  }

  /** Worth another attempt: timeouts, connection trouble, 5xx/429, garbage (a proxy in the way). */
  get retryable(): boolean {
    if (this.code !== 'VM_HTTP') return true;
    return this.status === undefined || this.status >= 500 || this.status === 429 || this.status === 408;
  }
}

/** One series of a range query: [unix ms, value][]. */
export interface VmSeries {
  metric: Record<string, string>;
  values: [number, number][];
}

/** An export in flight: the raw body (still compressed when `gzip`). */
export interface ExportStream extends Readable {
  /** The body is gzip-compressed (VM answered Content-Encoding: gzip). */
  readonly gzip?: boolean;
}

export interface VmClientOptions {
  /** Base URL for writes (import, force_flush); default: the base URL. */
  writeUrl?: string;
  /** Per request: connect, time to the answer's headers, and any stall of a body. */
  timeoutMs: number;
  /** Extra attempts of a range query after a retryable failure. */
  retries: number;
  logger: Logger;
  /** First backoff between query attempts (doubles, capped at 5 s). Default 250 ms. */
  backoffMs?: number;
  /** Largest JSON answer read into memory. Default 64 MiB. */
  maxResponseBytes?: number;
  /**
   * The HTTP port (an undici Dispatcher: a MockAgent, a recording wrapper) instead of the client's
   * own connection pool; the caller's to close.
   */
  dispatcher?: Dispatcher;
  /** Backoff waits; default the system clock. */
  clock?: Clock;
  /** Backoff jitter; default the system randomness. */
  random?: Random;
}

/** What VM sync needs of a VictoriaMetrics (VmClient implements it; a benchmark or a fake may wrap or replace it). */
export type VmPort = Pick<VmClient, 'baseUrl' | 'writeUrl' | 'queryRange' | 'exportStream' | 'import' | 'forceFlush' | 'close'>;

const PATHS: Record<VmFormat, { export: string; import: string; type: string }> = {
  json: { export: '/api/v1/export', import: '/api/v1/import', type: 'application/stream+json' },
  native: { export: '/api/v1/export/native', import: '/api/v1/import/native', type: 'application/octet-stream' },
};

const EXCERPT = 300;

export class VmClient {
  readonly baseUrl: string;
  readonly writeUrl: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly logger: Logger;
  private readonly backoffMs: number;
  private readonly maxResponseBytes: number;
  private readonly dispatcher: Dispatcher;
  /** Our own pool (closed by close()), or null when the dispatcher was given. */
  private readonly ownPool: Agent | null;
  private readonly clock: Clock;
  private readonly random: Random;

  constructor(baseUrl: string, opts: VmClientOptions) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? systemRandom;
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.writeUrl = (opts.writeUrl || baseUrl).replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs;
    this.retries = opts.retries;
    this.logger = opts.logger;
    this.backoffMs = opts.backoffMs ?? 250;
    this.maxResponseBytes = opts.maxResponseBytes ?? 64 * 1024 * 1024;
    this.ownPool = opts.dispatcher
      ? null
      : new Agent({
          connect: { timeout: opts.timeoutMs },
          headersTimeout: opts.timeoutMs,
          bodyTimeout: opts.timeoutMs,
          keepAliveTimeout: 4_000,
        });
    this.dispatcher = opts.dispatcher ?? this.ownPool!;
  }

  /** Closes idle connections of our own pool; requests in flight are destroyed. */
  async close(): Promise<void> {
    await this.ownPool?.destroy().catch(() => {});
  }

  /**
   * `/api/v1/query_range` with nocache=1; start/end/step in ms (sent as seconds). Retried on
   * retryable failures with backoff.
   */
  async queryRange(query: string, start: number, end: number, step: number): Promise<VmSeries[]> {
    const url = this.url(this.baseUrl, '/api/v1/query_range', {
      query,
      start: seconds(start),
      end: seconds(end),
      step: `${step / 1000}s`,
      nocache: '1',
    });
    let attempt = 0;
    for (;;) {
      try {
        return parseMatrix(await this.getJson(url), url);
      } catch (err) {
        const e = toVmError(err, url);
        if (!e.retryable || attempt >= this.retries) throw e;
        const wait = Math.min(5_000, this.backoffMs * 2 ** attempt) * (0.75 + this.random.fraction() * 0.5);
        this.logger.debug('vm query failed, retrying', { url: redact(url), attempt: attempt + 1, error: e, wait_ms: Math.round(wait) });
        attempt++;
        await sleep(this.clock, wait);
      }
    }
  }

  /**
   * Starts `/api/v1/export` (or `/export/native`) of the series matching `match` with samples in
   * (start, end] (ms; VM's own bounds are inclusive, so start+1 ms is sent) and resolves, once the
   * answer's headers are in, to the body as it streams: asks for gzip and does NOT decompress
   * (`gzip` tells whether VM compressed it). Nothing is buffered.
   */
  async exportStream(match: string, start: number, end: number, format: VmFormat): Promise<ExportStream> {
    const url = this.url(this.baseUrl, PATHS[format].export, { 'match[]': match, start: seconds(start + 1), end: seconds(end) });
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', headers: { 'accept-encoding': 'gzip' }, dispatcher: this.dispatcher });
    } catch (err) {
      throw toVmError(err, url);
    }
    if (res.statusCode < 200 || res.statusCode > 299) throw await httpError(res, url);
    const encoding = String(res.headers['content-encoding'] ?? '').toLowerCase();
    if (encoding !== '' && encoding !== 'gzip' && encoding !== 'identity') {
      res.body.destroy();
      throw new VmError('VM_BAD_RESPONSE', `${redact(url)}: unexpected Content-Encoding "${encoding}"`);
    }
    const body = res.body as unknown as ExportStream;
    Object.defineProperty(body, 'gzip', { value: encoding === 'gzip', enumerable: true });
    // Surface the body's failures (VM died mid-export, stall) as VmErrors.
    return body;
  }

  /**
   * POSTs `stream` to `/api/v1/import` (or `/import/native`) of the write URL, streaming it
   * (chunked; never buffered). `gzip` (default: the stream's own `gzip` flag, as exportStream sets
   * it) sends Content-Encoding: gzip so VM decompresses. Resolves to the bytes sent.
   */
  async import(stream: Readable, format: VmFormat, opts: { gzip?: boolean } = {}): Promise<{ bytes: number }> {
    const url = this.url(this.writeUrl, PATHS[format].import, {});
    const gzip = opts.gzip ?? (stream as ExportStream).gzip === true;
    let bytes = 0;
    let sourceError: unknown;
    stream.on('error', (err) => {
      sourceError ??= err;
    });
    // The import pulls from this generator. Reading a Readable by async iteration takes everything
    // it has buffered at once (read() without a size), so VM's many small export writes (gzip
    // flushed per block, a few hundred bytes each) go out as a few large writes while the import
    // socket is busy, and as they come when it is not. Backpressure is the pull itself: nothing is
    // read from the export faster than the import takes it.
    const body = (async function* () {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        yield chunk;
      }
    })();
    const headers: Record<string, string> = { 'content-type': PATHS[format].type };
    if (gzip) headers['content-encoding'] = 'gzip';
    let res: Dispatcher.ResponseData;
    try {
      // undici takes an AsyncIterable body (docs/api/Dispatcher.md); its 6.x types do not list it.
      res = await request(url, { method: 'POST', headers, body: body as unknown as Readable, dispatcher: this.dispatcher });
    } catch (err) {
      stream.destroy();
      // The export failing mid-stream is the source's fault: say so.
      if (sourceError !== undefined) throw toVmError(sourceError, `export feeding ${redact(url)}`);
      throw toVmError(err, url);
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      stream.destroy();
      throw await httpError(res, url);
    }
    await res.body.dump().catch(() => {});
    if (sourceError !== undefined) throw toVmError(sourceError, `export feeding ${redact(url)}`);
    return { bytes };
  }

  /**
   * `/internal/force_flush` on the write URL: makes just-imported data searchable at once.
   * Resolves false when the server does not have it (VM cluster's vminsert answers 400/404:
   * vmstorage flushes by itself within a second or so).
   */
  async forceFlush(): Promise<boolean> {
    const url = this.url(this.writeUrl, '/internal/force_flush', {});
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', dispatcher: this.dispatcher });
    } catch (err) {
      throw toVmError(err, url);
    }
    if (res.statusCode === 400 || res.statusCode === 404) {
      await res.body.dump().catch(() => {});
      return false;
    }
    if (res.statusCode < 200 || res.statusCode > 299) throw await httpError(res, url);
    await res.body.dump().catch(() => {});
    return true;
  }

  private url(base: string, path: string, params: Record<string, string>): string {
    const qs = new URLSearchParams(params).toString();
    return `${base}${path}${qs ? `?${qs}` : ''}`;
  }

  private async getJson(url: string): Promise<unknown> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', dispatcher: this.dispatcher, headers: { accept: 'application/json' } });
    } catch (err) {
      throw toVmError(err, url);
    }
    if (res.statusCode < 200 || res.statusCode > 299) throw await httpError(res, url);
    let text: string;
    try {
      text = await readLimited(res.body, this.maxResponseBytes);
    } catch (err) {
      throw toVmError(err, url);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new VmError('VM_BAD_RESPONSE', `${redact(url)}: answer is not JSON: ${excerpt(text)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** unix ms → the seconds VM takes ("1700000000.001"). */
function seconds(ms: number): string {
  return ms % 1000 === 0 ? String(ms / 1000) : (ms / 1000).toFixed(3);
}

/** URL without credentials, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '***';
      u.password = '';
    }
    return u.toString();
  } catch {
    return url;
  }
}

function excerpt(s: string): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return JSON.stringify(one.length > EXCERPT ? `${one.slice(0, EXCERPT)}…` : one);
}

async function readLimited(body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new VmError('VM_BAD_RESPONSE', `answer larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function httpError(res: Dispatcher.ResponseData, url: string): Promise<VmError> {
  let text = '';
  try {
    text = await readLimited(res.body, 64 * 1024);
  } catch {
    /* the status says enough */
  }
  return new VmError('VM_HTTP', `${redact(url)}: HTTP ${res.statusCode}${text ? `: ${excerpt(text)}` : ''}`, res.statusCode);
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT', 'ABORT_ERR']);

/** Any failure → VmError (VmErrors pass through). */
export function toVmError(err: unknown, where: string): VmError {
  if (err instanceof VmError) return err;
  const code = (err as { code?: unknown })?.code;
  const msg = err instanceof Error ? err.message : String(err);
  const w = redact(where);
  if (
    (typeof code === 'string' && TIMEOUT_CODES.has(code)) ||
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError ||
    err instanceof undiciErrors.ConnectTimeoutError
  ) {
    return new VmError('VM_TIMEOUT', `${w}: timed out (${msg})`, undefined, { cause: err });
  }
  if (err instanceof SyntaxError) return new VmError('VM_BAD_RESPONSE', `${w}: ${msg}`, undefined, { cause: err });
  return new VmError('VM_UNREACHABLE', `${w}: ${typeof code === 'string' ? `${code}: ` : ''}${msg}`, undefined, { cause: err });
}

/** A query_range answer → series; anything else → VM_BAD_RESPONSE. */
export function parseMatrix(json: unknown, url: string): VmSeries[] {
  const bad = (why: string) => new VmError('VM_BAD_RESPONSE', `${redact(url)}: ${why}`);
  if (typeof json !== 'object' || json === null) throw bad('answer is not a JSON object');
  const j = json as { status?: unknown; data?: { resultType?: unknown; result?: unknown }; error?: unknown };
  if (j.status !== 'success') throw bad(`status ${JSON.stringify(j.status)}${j.error ? `: ${String(j.error).slice(0, EXCERPT)}` : ''}`);
  if (typeof j.data !== 'object' || j.data === null || j.data.resultType !== 'matrix' || !Array.isArray(j.data.result)) {
    throw bad('expected data.resultType "matrix" with a result array');
  }
  return j.data.result.map((s: unknown, i: number): VmSeries => {
    const r = s as { metric?: unknown; values?: unknown };
    if (typeof r !== 'object' || r === null || typeof r.metric !== 'object' || r.metric === null || !Array.isArray(r.values)) {
      throw bad(`result[${i}] is not {metric, values}`);
    }
    const values = r.values.map((p: unknown): [number, number] => {
      if (!Array.isArray(p) || p.length !== 2) throw bad(`result[${i}] has a point that is not [time, "value"]`);
      const t = Number(p[0]);
      const v = Number(p[1]);
      if (!Number.isFinite(t) || typeof p[1] !== 'string' || !Number.isFinite(v)) throw bad(`result[${i}] has a bad point ${JSON.stringify(p).slice(0, 80)}`);
      return [Math.round(t * 1000), v];
    });
    return { metric: r.metric as Record<string, string>, values };
  });
}
