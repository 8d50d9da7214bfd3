/**
 * failoverctl's side of the control socket: where it is (SPEC §8) and one request/response.
 */
import net from 'node:net';
import nodePath from 'node:path';

import { AgentError, ExitCode } from '../errors.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

export const DEFAULT_RUNTIME_DIR = '/run/failover-agent';
/** Default wait for an answer: a failback may wait on DNS writes and re-reads. */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;
/** A status is a few KiB; anything near this is not our agent talking. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/**
 * The control socket of `instance`: `$RUNTIME_DIRECTORY/<instance>.sock` when RUNTIME_DIRECTORY is
 * set (systemd may set a colon-separated list: the first entry counts), else
 * `/run/failover-agent/<instance>.sock`.
 */
export function socketPath(instance: string, env: NodeJS.ProcessEnv = process.env): string {
  const first = (env.RUNTIME_DIRECTORY ?? '').split(':')[0] ?? '';
  const dir = first.trim() !== '' ? first : DEFAULT_RUNTIME_DIR;
  return nodePath.join(dir, `${instance}.sock`);
}

export interface CallOptions {
  /** How long to wait for the answer (default 30000 ms). */
  timeoutMs?: number;
}

/**
 * Sends one request to the agent and returns its response (an `{ ok: false }` answer is returned,
 * not thrown). Throws AgentError when the agent cannot be asked: AGENT_NOT_RUNNING (69),
 * CONTROL_DENIED (77), CONTROL_TIMEOUT / CONTROL_CLOSED / CONTROL_BAD_RESPONSE / CONTROL_UNREACHABLE (69).
 */
export function callAgent(path: string, req: ControlRequest, opts: CallOptions = {}): Promise<ControlResponse> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  return new Promise<ControlResponse>((resolve, reject) => {
    const socket = net.createConnection({ path });
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;

    const finish = (err: AgentError | null, res?: ControlResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(res!);
    };

    const timer = setTimeout(() => {
      finish(
        new AgentError(
          'CONTROL_TIMEOUT',
          `the agent did not answer within ${formatMs(timeoutMs)} on ${path} (it may still be working on the request)`,
          ExitCode.UNAVAILABLE,
        ),
      );
    }, timeoutMs);

    socket.once('connect', () => {
      socket.write(JSON.stringify(req) + '\n');
    });
    socket.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      chunks.push(nl === -1 ? chunk : chunk.subarray(0, nl));
      size += chunk.length;
      if (nl !== -1) {
        const r = parseResponse(Buffer.concat(chunks), path);
        return r instanceof AgentError ? finish(r) : finish(null, r);
      }
      if (size > MAX_RESPONSE_BYTES) {
        finish(new AgentError('CONTROL_BAD_RESPONSE', `the answer on ${path} is too long`, ExitCode.UNAVAILABLE));
      }
    });
    socket.on('end', () => {
      finish(new AgentError('CONTROL_CLOSED', `the agent closed the connection on ${path} without answering`, ExitCode.UNAVAILABLE));
    });
    socket.on('close', () => {
      finish(new AgentError('CONTROL_CLOSED', `the agent closed the connection on ${path} without answering`, ExitCode.UNAVAILABLE));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(connectError(err, path)));
  });
}

/** Parses the response line (an AgentError for anything that is not a control response). */
function parseResponse(line: Buffer, path: string): ControlResponse | AgentError {
  let v: unknown;
  try {
    v = JSON.parse(line.toString('utf8'));
  } catch {
    return new AgentError(
      'CONTROL_BAD_RESPONSE',
      `the answer on ${path} is not JSON (is this the failover agent's socket?)`,
      ExitCode.UNAVAILABLE,
    );
  }
  const r = v as { ok?: unknown; error?: { code?: unknown; message?: unknown; exitCode?: unknown } };
  const wellFormed =
    typeof v === 'object' &&
    v !== null &&
    (r.ok === true ||
      (r.ok === false &&
        typeof r.error === 'object' &&
        r.error !== null &&
        typeof r.error.code === 'string' &&
        typeof r.error.message === 'string' &&
        typeof r.error.exitCode === 'number'));
  if (!wellFormed) {
    return new AgentError('CONTROL_BAD_RESPONSE', `the answer on ${path} is not a control response`, ExitCode.UNAVAILABLE);
  }
  return v as ControlResponse;
}

function connectError(err: NodeJS.ErrnoException, path: string): AgentError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new AgentError('AGENT_NOT_RUNNING', `the agent is not running (no socket at ${path})`, ExitCode.UNAVAILABLE, {
        cause: err,
      });
    case 'EACCES':
    case 'EPERM':
      return new AgentError(
        'CONTROL_DENIED',
        `permission denied on the agent's control socket ${path}: run as root or as a member of the failover-agent group`,
        ExitCode.NOPERM,
        { cause: err },
      );
    default:
      return new AgentError('CONTROL_UNREACHABLE', `cannot reach the agent on ${path}: ${err.message}`, ExitCode.UNAVAILABLE, {
        cause: err,
      });
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
