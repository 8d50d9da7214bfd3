/**
 * The agent's control socket (SPEC §7): a unix socket, mode 0660 and group failover-agent, that
 * speaks the newline-delimited JSON protocol of ./protocol.ts to failoverctl.
 *
 * Per connection: one request per line, answered in order (a request waits for the one before
 * it); a line is at most 64 KiB; a connection idle for 30 s is closed (never while a request is
 * being answered: a failback may wait on DNS).
 */
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import type { z } from 'zod';

import { AgentError, ExitCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { CONTROL_COMMANDS, controlRequestSchema, type ControlRequest, type ControlResponse, type ControlService } from './protocol.js';

export const MAX_REQUEST_BYTES = 64 * 1024;
export const IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_SOCKET_MODE = 0o660;

export interface ControlServerOptions {
  path: string;
  handler: ControlService;
  logger: Logger;
  /** File mode of the socket (default 0o660: owner and group may connect). */
  mode?: number;
  /** Group (name or numeric id) to give the socket; skipped when unknown or not permitted. */
  group?: string;
  /** Idle connection timeout (default 30 s; for tests). */
  idleTimeoutMs?: number;
}

export class ControlServer {
  private readonly opts: ControlServerOptions;
  private readonly log: Logger;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(opts: ControlServerOptions) {
    this.opts = opts;
    this.log = opts.logger;
  }

  get path(): string {
    return this.opts.path;
  }

  /**
   * Listens on the socket path. A socket file nobody answers on (left by a crashed agent) is
   * removed first; a live one means another agent runs there: AgentError CONTROL_IN_USE (69).
   */
  async start(): Promise<void> {
    if (this.server) throw new Error('ControlServer already started');
    const { path } = this.opts;
    await this.clearStale(path);

    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.connection(socket));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.removeListener('listening', onListening);
        reject(listenError(err, path));
      };
      const onListening = () => {
        server.removeListener('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      // Until the chmod below the socket has the umask's mode; connecting needs write permission,
      // which the usual umask (022/027) does not give the group or others, so the window is closed.
      server.listen(path);
    });
    this.server = server;
    server.on('error', (err) => this.log.error('control socket error', { error: err }));

    try {
      await fs.chmod(path, this.opts.mode ?? DEFAULT_SOCKET_MODE);
      if (this.opts.group !== undefined) await this.chgrp(path, this.opts.group);
    } catch (err) {
      await this.stop();
      throw new AgentError('CONTROL_LISTEN', `cannot set the mode of the control socket ${path}: ${messageOf(err)}`, ExitCode.NOPERM, {
        cause: err,
      });
    }
    this.log.info('control socket listening', { event: 'control-listen', path });
  }

  /** Stops listening, drops every connection and removes the socket file. Safe to call twice. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed; // net.Server unlinks its unix socket path on close
  }

  // ---------------------------------------------------------------------------------------------

  private async clearStale(path: string): Promise<void> {
    let st;
    try {
      st = await fs.lstat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new AgentError('CONTROL_LISTEN', `cannot use ${path} for the control socket: ${messageOf(err)}`, ExitCode.UNAVAILABLE, {
        cause: err,
      });
    }
    if (!st.isSocket()) {
      throw new AgentError(
        'CONTROL_LISTEN',
        `${path} exists and is not a socket; it is not removed automatically (move it away)`,
        ExitCode.UNAVAILABLE,
      );
    }
    const probe = await probeSocket(path);
    if (probe === 'live') {
      throw new AgentError(
        'CONTROL_IN_USE',
        `another agent is already running on the control socket ${path} (same instance started twice?)`,
        ExitCode.UNAVAILABLE,
      );
    }
    if (probe === 'gone') return;
    if (probe !== 'stale') {
      throw new AgentError('CONTROL_LISTEN', `cannot check the existing control socket ${path}: ${probe.message}`, exitOf(probe), {
        cause: probe,
      });
    }
    this.log.notice('removing stale control socket', { event: 'control-stale', path });
    try {
      await fs.unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new AgentError('CONTROL_LISTEN', `cannot remove the stale control socket ${path}: ${messageOf(err)}`, exitOf(err), {
          cause: err,
        });
      }
    }
  }

  private async chgrp(path: string, group: string): Promise<void> {
    const gid = /^\d+$/.test(group) ? Number(group) : lookupGroup(group);
    if (gid === undefined) {
      this.log.debug('control socket group not found; leaving the group as is', { group });
      return;
    }
    try {
      await fs.chown(path, -1, gid);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EACCES') throw err;
      // Not root and not a member: under systemd the service's own group is already right.
      this.log.debug('cannot chown the control socket; leaving the group as is', { group, error: err });
    }
  }

  private connection(socket: net.Socket): void {
    this.sockets.add(socket);
    const idleMs = this.opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    let buf: Buffer = Buffer.alloc(0);
    let pending = 0;
    let ended = false;
    let queue: Promise<void> = Promise.resolve();

    const write = (res: ControlResponse): void => {
      if (!socket.destroyed && socket.writable) socket.write(responseJson(res) + '\n');
    };
    const settle = (): void => {
      if (pending > 0) return;
      if (ended) socket.end();
      else socket.setTimeout(idleMs);
    };
    const enqueue = (line: string): void => {
      pending++;
      socket.setTimeout(0); // never idle while we owe an answer
      queue = queue
        .then(() => this.answer(line))
        .then(write, (err: unknown) => write(errorResponse(err)))
        .finally(() => {
          pending--;
          settle();
        });
    };

    const tooLong = (): void => {
      this.log.warning('control request too long; closing the connection', { limit: MAX_REQUEST_BYTES });
      socket.removeAllListeners('data');
      socket.pause();
      buf = Buffer.alloc(0);
      // Answers already owed go first, then the refusal, then the connection closes.
      queue = queue.then(() => {
        write(badRequest(`request line longer than ${MAX_REQUEST_BYTES} bytes`));
        socket.end();
        setTimeout(() => socket.destroy(), 1_000).unref();
      });
    };

    socket.setTimeout(idleMs);
    socket.on('timeout', () => {
      if (pending > 0) return;
      this.log.debug('control connection idle; closing');
      socket.destroy();
    });
    socket.on('error', (err) => this.log.debug('control connection error', { error: err }));
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let nl: number;
      while ((nl = buf.indexOf(0x0a)) !== -1) {
        const line = buf.subarray(0, nl);
        buf = buf.subarray(nl + 1);
        if (line.length > MAX_REQUEST_BYTES) return tooLong();
        const text = line.toString('utf8').replace(/\r$/, '');
        if (text.trim() !== '') enqueue(text);
      }
      if (buf.length > MAX_REQUEST_BYTES) tooLong();
    });
    socket.on('end', () => {
      ended = true;
      // A last request without its newline (`printf '{"cmd":"status"}' | nc -U ...`) still counts.
      const text = buf.toString('utf8').trim();
      buf = Buffer.alloc(0);
      if (text !== '') enqueue(text);
      settle();
    });
  }

  /** One request line → its response (never rejects). */
  private async answer(line: string): Promise<ControlResponse> {
    let req: ControlRequest;
    try {
      req = parseRequest(line);
    } catch (err) {
      return errorResponse(err);
    }
    try {
      if (req.cmd === 'status') return { ok: true, result: this.opts.handler.status() };
      if (req.cmd === 'sync' || req.cmd === 'reload') {
        this.log.notice('control request', { event: 'control', cmd: req.cmd });
        return { ok: true, result: await this.opts.handler[req.cmd]() };
      }
      const force = req.args?.force ?? false;
      const dryRun = req.args?.dryRun ?? false;
      this.log.notice('control request', { event: 'control', cmd: req.cmd, force, dry_run: dryRun });
      return { ok: true, result: await this.opts.handler.admin(req.cmd, { force, dryRun }) };
    } catch (err) {
      this.log.warning('control request failed', { cmd: req.cmd, error: err });
      return errorResponse(err);
    }
  }
}

/**
 * Validates one request line against the strict schema; throws AgentError CONTROL_BAD_REQUEST
 * naming every field it refuses, so nothing is done on a request only partly understood.
 */
export function parseRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw badRequestError(`not JSON: ${messageOf(err)}`);
  }
  const r = controlRequestSchema.safeParse(v);
  if (r.success) return r.data;
  throw badRequestError(r.error.issues.map((i) => describeIssue(i, v)).join('; '));
}

/** One schema issue in an operator's words, with where it is in the request. */
function describeIssue(issue: z.core.$ZodIssue, request: unknown): string {
  const at = issue.path.length ? issue.path.join('.') : 'request';
  switch (issue.code) {
    case 'unrecognized_keys':
      return `${at}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    case 'invalid_union':
      // Only the discriminator fails this way: the command itself is unknown or missing.
      return `unknown command ${JSON.stringify((request as { cmd?: unknown }).cmd) ?? 'undefined'} (expected one of: ${CONTROL_COMMANDS.join(', ')})`;
    case 'invalid_type':
      if (!issue.path.length) return 'a request is a JSON object';
      return `${at} must be ${issue.expected === 'boolean' ? 'true or false' : issue.expected === 'object' ? 'an object' : `a ${issue.expected}`}`;
    default:
      return `${at}: ${issue.message}`;
  }
}

/** Any thrown value → the protocol's error response (AgentError code/exitCode kept). */
export function errorResponse(err: unknown): ControlResponse {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; exitCode?: unknown; message?: unknown };
  const code = typeof e.code === 'string' && e.code !== '' ? e.code : 'INTERNAL';
  const exitCode = typeof e.exitCode === 'number' && Number.isInteger(e.exitCode) ? e.exitCode : ExitCode.REFUSED;
  const message = typeof e.message === 'string' ? e.message : String(err);
  return { ok: false, error: { code, message, exitCode } };
}

function badRequestError(message: string): AgentError {
  return new AgentError('CONTROL_BAD_REQUEST', `bad control request: ${message}`, ExitCode.REFUSED);
}

function badRequest(message: string): ControlResponse {
  return errorResponse(badRequestError(message));
}

/** JSON for the wire: a bigint becomes a number when exact, else a string; never a raw newline. */
function responseJson(res: ControlResponse): string {
  try {
    return JSON.stringify(res, (_k, v: unknown) => {
      if (typeof v !== 'bigint') return v;
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
    });
  } catch (err) {
    return JSON.stringify(errorResponse(new AgentError('INTERNAL', `cannot encode the response: ${messageOf(err)}`, ExitCode.REFUSED)));
  }
}

/** Is someone answering on this socket path? */
function probeSocket(path: string): Promise<'live' | 'stale' | 'gone' | NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path });
    const timer = setTimeout(() => {
      // Connected-but-silent cannot happen on a unix socket; a hung connect means someone is there.
      s.destroy();
      resolve('live');
    }, 2_000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('live');
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      s.destroy();
      if (err.code === 'ECONNREFUSED') resolve('stale');
      else if (err.code === 'ENOENT') resolve('gone');
      else resolve(err);
    });
  });
}

/** The gid of a group name from /etc/group (Node has no getgrnam), or undefined. */
export function lookupGroup(name: string): number | undefined {
  let text: string;
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

function listenError(err: NodeJS.ErrnoException, path: string): AgentError {
  switch (err.code) {
    case 'EADDRINUSE':
      return new AgentError('CONTROL_IN_USE', `another agent is already listening on the control socket ${path}`, ExitCode.UNAVAILABLE, {
        cause: err,
      });
    case 'ENOENT':
      return new AgentError(
        'CONTROL_LISTEN',
        `cannot create the control socket ${path}: its directory does not exist (systemd creates it with RuntimeDirectory=)`,
        ExitCode.UNAVAILABLE,
        { cause: err },
      );
    default:
      return new AgentError('CONTROL_LISTEN', `cannot create the control socket ${path}: ${err.message}`, exitOf(err), { cause: err });
  }
}

function exitOf(err: unknown): ExitCode {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM' ? ExitCode.NOPERM : ExitCode.UNAVAILABLE;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
