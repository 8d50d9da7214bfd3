/**
 * The HTTP listener of SPEC §7: `GET /healthz` (JSON; 200 healthy, 503 not) and `GET /metrics`
 * (Prometheus text). The DR's health check of the primary reads the primary's /healthz.
 *
 * Nothing here decides anything: both routes render the one `AgentStatus`. A request can never take
 * the server down; a status provider that throws gives a 500 and a log line.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import type { AgentStatus } from '../control/protocol.js';
import { AgentError, ExitCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from './metrics.js';

export interface HttpServerOptions {
  listen: { host: string; port: number };
  status: () => AgentStatus;
  metrics: Metrics;
  logger: Logger;
  /** How long stop() lets in-flight requests finish before cutting connections (default 2000 ms). */
  stopGraceMs?: number;
}

/** The /healthz body (snake_case: it is read by people, curl and the other site's health check). */
export interface HealthzBody {
  healthy: boolean;
  /** Why not healthy (null when healthy). */
  reason: string | null;
  instance: string;
  role: AgentStatus['role'];
  phase: AgentStatus['phase'];
  active: boolean;
  decision: string;
  /** The core's own words for its last decision. */
  reason_detail: string;
  pid: number;
  started_at: string;
  /** Version, the running Node and the sd_notify path (addon, systemd-notify or none). */
  build: AgentStatus['build'];
  lease: {
    holder: AgentStatus['lease']['holder'];
    epoch: number | null;
    seq: number | null;
    unchanged_seconds: number | null;
    own_age_seconds: number | null;
    error: string | null;
  };
  dns: {
    server: string;
    record: string;
    addresses: string[];
    read_age_seconds: number | null;
    consecutive_failures: number;
    offset_seconds: number | null;
    last_error: string | null;
  };
  health: { consecutive_failures: number | null; threshold: number; last: string | null };
  collector: {
    control: AgentStatus['collector']['control'];
    unit: string;
    desired: AgentStatus['collector']['desired'];
    state: AgentStatus['collector']['state'];
    last_error: string | null;
  };
  takeovers: number;
  /** What the other site's holder asks before it hands the job over (health/peer.ts reads it). */
  job: {
    ready: boolean;
    ready_detail: string;
    collector_broken: string | null;
    paused: boolean;
  };
}

export function healthzBody(s: AgentStatus): HealthzBody {
  return {
    healthy: s.healthy,
    reason: s.unhealthyReason,
    instance: s.instance,
    role: s.role,
    phase: s.phase,
    active: s.active,
    decision: s.decision,
    reason_detail: s.reason,
    pid: s.pid,
    started_at: s.startedAt,
    build: s.build,
    lease: {
      holder: s.lease.holder,
      epoch: s.lease.epoch,
      seq: s.lease.seq,
      unchanged_seconds: s.lease.unchangedSeconds,
      own_age_seconds: s.lease.ownAgeSeconds,
      error: s.lease.error,
    },
    dns: {
      server: s.dns.server,
      record: s.dns.record,
      addresses: s.dns.addresses,
      read_age_seconds: s.dns.readAgeSeconds,
      consecutive_failures: s.dns.consecutiveFailures,
      offset_seconds: s.dns.offsetSeconds,
      last_error: s.dns.lastError,
    },
    health: {
      consecutive_failures: s.health.consecutiveFailures,
      threshold: s.health.threshold,
      last: s.health.last,
    },
    collector: {
      control: s.collector.control,
      unit: s.collector.unit,
      desired: s.collector.desired,
      state: s.collector.state,
      last_error: s.collector.lastError,
    },
    takeovers: s.takeovers,
    job: { ready: s.job.ready, ready_detail: s.job.readyDetail, collector_broken: s.job.collectorBroken, paused: s.job.pause !== null },
  };
}

/** JSON.stringify that survives a bigint (a number when exact, else a string). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v !== 'bigint') return v;
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  });
}

const ALLOW = 'GET, HEAD';

export class HttpServer {
  private readonly opts: HttpServerOptions;
  private readonly log: Logger;
  private server: http.Server | undefined;
  private stopping: Promise<void> | undefined;

  constructor(opts: HttpServerOptions) {
    this.opts = opts;
    this.log = opts.logger;
  }

  /** Listens; rejects with AgentError HTTP_LISTEN (exit 69, or 77 when not permitted). */
  async start(): Promise<void> {
    if (this.server) throw new Error('HttpServer already started');
    const { host, port } = this.opts.listen;
    const server = http.createServer((req, res) => this.handle(req, res));
    // Bounded request reading: this is a tiny API, not a place for slow clients to sit.
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    // The DR checks /healthz every health.interval on a kept-alive connection: keep it open between checks.
    server.keepAliveTimeout = 65_000;
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      this.log.debug('http client error', { error: err.message });
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
    });
    this.server = server;

    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.removeListener('listening', onListening);
        reject(listenError(err, host, port));
      };
      const onListening = () => {
        server.removeListener('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host, port });
    }).catch((err: unknown) => {
      this.server = undefined;
      throw err;
    });

    server.on('error', (err) => this.log.error('http server error', { error: err }));
    const addr = this.address();
    this.log.info('http listening', { event: 'http-listen', address: addr ? hostPort(addr.host, addr.port) : undefined });
  }

  /**
   * Stops listening and closes every connection: idle keep-alive ones at once, busy ones after
   * their response or at the latest after `stopGraceMs`. Safe to call twice or before start().
   */
  stop(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    if (this.stopping) return this.stopping;
    const grace = this.opts.stopGraceMs ?? 2_000;
    this.stopping = new Promise<void>((resolve) => {
      const timer = setTimeout(() => server.closeAllConnections(), grace);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        this.server = undefined;
        this.stopping = undefined;
        resolve();
      });
      server.closeIdleConnections();
    });
    return this.stopping;
  }

  /** The bound address (port resolved when 0 was asked), or null when not listening. */
  address(): { host: string; port: number } | null {
    const a = this.server?.address();
    if (!a || typeof a === 'string') return null;
    return { host: (a as AddressInfo).address, port: (a as AddressInfo).port };
  }

  // ---------------------------------------------------------------------------------------------

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.on('error', (err) => this.log.debug('http response error', { error: err }));
    try {
      const path = (req.url ?? '/').split('?')[0];
      const method = req.method ?? 'GET';
      const route = path === '/healthz' ? 'healthz' : path === '/metrics' ? 'metrics' : undefined;
      if (!route) return send(res, method, 404, 'text/plain; charset=utf-8', 'not found\n');
      if (method !== 'GET' && method !== 'HEAD') {
        res.setHeader('Allow', ALLOW);
        return send(res, method, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      }
      if (route === 'healthz') return this.healthz(res, method);
      this.metrics(res, method);
    } catch (err) {
      this.fail(res, req, err);
    }
  }

  private healthz(res: http.ServerResponse, method: string): void {
    let status: AgentStatus;
    try {
      status = this.opts.status();
    } catch (err) {
      this.log.error('status unavailable for /healthz', { error: err });
      const body = toJson({ healthy: false, reason: `status unavailable: ${messageOf(err)}` });
      return send(res, method, 500, 'application/json', body + '\n');
    }
    const body = toJson(healthzBody(status));
    send(res, method, status.healthy ? 200 : 503, 'application/json', body + '\n');
  }

  private metrics(res: http.ServerResponse, method: string): void {
    let rendering: Promise<{ contentType: string; body: string }>;
    try {
      rendering = this.opts.metrics.render();
    } catch (err) {
      rendering = Promise.reject(err);
    }
    rendering.then(
      ({ contentType, body }) => send(res, method, 200, contentType, body),
      (err: unknown) => {
        this.log.error('metrics unavailable', { error: err });
        if (res.headersSent) return void res.destroy();
        send(res, method, 500, 'text/plain; charset=utf-8', `metrics unavailable: ${messageOf(err)}\n`);
      },
    );
  }

  private fail(res: http.ServerResponse, req: http.IncomingMessage, err: unknown): void {
    this.log.error('http request failed', { method: req.method, url: req.url, error: err });
    if (res.headersSent) return void res.destroy();
    try {
      send(res, req.method ?? 'GET', 500, 'text/plain; charset=utf-8', `internal error: ${messageOf(err)}\n`);
    } catch {
      res.destroy();
    }
  }
}

function send(res: http.ServerResponse, method: string, code: number, contentType: string, body: string): void {
  if (res.writableEnded || res.destroyed) return;
  const buf = Buffer.from(body, 'utf8');
  res.statusCode = code;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', buf.length);
  res.setHeader('Cache-Control', 'no-store');
  if (method === 'HEAD') res.end();
  else res.end(buf);
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): AgentError {
  const where = hostPort(host, port);
  let why: string;
  let exit: ExitCode = ExitCode.UNAVAILABLE;
  switch (err.code) {
    case 'EADDRINUSE':
      why = `${where} is already in use (another agent instance, or another program, listens there)`;
      break;
    case 'EADDRNOTAVAIL':
      why = `${host} is not an address of this host`;
      break;
    case 'EACCES':
    case 'EPERM':
      why = `not permitted to listen on ${where}`;
      exit = ExitCode.NOPERM;
      break;
    default:
      why = err.message;
  }
  return new AgentError(
    'HTTP_LISTEN',
    `cannot listen on ${where} for /healthz and /metrics: ${why}; change http.listen (or set it to "" to disable)`,
    exit,
    { cause: err },
  );
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
