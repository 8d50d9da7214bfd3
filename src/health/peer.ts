/**
 * The other site's agent, asked whether it could take the job (`health.peer_targets`, by default
 * its /healthz on the port this agent listens on). A holder hands its job over only to a peer
 * whose agent answered, within `health.timeout`, that it is ready: it reads the witness, its
 * collector unit is loadable and not failed, and nothing is paused (`job.ready` in the body,
 * which that agent computes about itself: http/server.ts). Any other answer (no answer, a body
 * without `job`, from an agent of an earlier version) is "not confirmed", and nothing moves.
 *
 * Never throws; checks never overlap (a call during a check gets that check's promise).
 */
import { Agent, request, type Dispatcher } from 'undici';

import { systemClock, type Clock } from '../clock.js';
import type { PeerReport } from '../core/decide.js';

export interface PeerPort {
  check(): Promise<PeerReport>;
  close(): Promise<void>;
}

/** The most of a /healthz body read. */
const MAX_BODY_BYTES = 64 * 1024;

/** What a /healthz body must carry for a verdict (http/server.ts `HealthzBody.job`). */
function reportOf(body: unknown, target: string): PeerReport {
  const job = (body as { job?: unknown } | null)?.job as { ready?: unknown; ready_detail?: unknown; collector_broken?: unknown } | undefined;
  if (!job || typeof job.ready !== 'boolean') {
    const version = (body as { build?: { version?: unknown } } | null)?.build?.version;
    return { ready: false, detail: `${target} does not report readiness (agent ${typeof version === 'string' ? version : 'of an unknown version'}: upgrade it)`, collectorBroken: null };
  }
  return {
    ready: job.ready,
    detail: typeof job.ready_detail === 'string' ? job.ready_detail : job.ready ? 'ready' : 'not ready',
    collectorBroken: typeof job.collector_broken === 'string' ? job.collector_broken : null,
  };
}

export function createPeerChecker(targets: string[], timeoutMs: number, deps: { clock?: Clock; dispatcher?: Dispatcher } = {}): PeerPort {
  const clock = deps.clock ?? systemClock;
  const own = deps.dispatcher ? null : new Agent({ keepAliveTimeout: 60_000, connect: { timeout: timeoutMs } });
  const dispatcher = deps.dispatcher ?? own!;
  let running: Promise<PeerReport> | null = null;
  let closed = false;

  async function one(target: string): Promise<PeerReport> {
    if (!/^https?:\/\//.test(target)) return { ready: false, detail: `${target}: only http(s) targets report readiness`, collectorBroken: null };
    const ac = new AbortController();
    const timer = clock.setTimer(() => ac.abort(), timeoutMs);
    try {
      const res = await request(target, { dispatcher, signal: ac.signal, headers: { accept: 'application/json' } });
      let size = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          res.body.destroy();
          return { ready: false, detail: `${target}: body longer than ${MAX_BODY_BYTES} bytes`, collectorBroken: null };
        }
        chunks.push(chunk);
      }
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return { ready: false, detail: `${target}: ${res.statusCode} with a body that is not JSON`, collectorBroken: null };
      }
      return reportOf(body, target);
    } catch (err) {
      const why = ac.signal.aborted ? `no answer within ${timeoutMs} ms` : `${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`;
      return { ready: false, detail: `${target}: ${why}`, collectorBroken: null };
    } finally {
      clock.cancel(timer);
    }
  }

  return {
    check(): Promise<PeerReport> {
      if (closed) return Promise.resolve({ ready: false, detail: 'peer checker closed', collectorBroken: null });
      running ??= (async () => {
        const reports = await Promise.all(targets.map(one));
        // Ready when one target says so; otherwise the first answer that says why not.
        return reports.find((r) => r.ready) ?? reports.find((r) => r.collectorBroken !== null) ?? reports[0]!;
      })().finally(() => {
        running = null;
      });
      return running;
    },
    async close(): Promise<void> {
      closed = true;
      await own?.close().catch(() => undefined);
    },
  };
}
