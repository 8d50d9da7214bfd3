/**
 * failoverctl pause / resume: one read → plan → CAS procedure on the control record alone
 * (lease/control.ts). It is written at the witness, so both sites (and a restarted agent) see it
 * at their next read, and every automatic takeover or handover carries the control record as read
 * among its prerequisites: a pause written after a site's read fails its move at the witness.
 * Renewals, failback and switchover never look at it. A conflict (someone paused, resumed or
 * handed over meanwhile) reads and plans again, at most ADMIN_ATTEMPTS times.
 */
import { ADMIN_ATTEMPTS } from '../core/admin.js';
import { pauseWords } from '../core/decide.js';
import { AgentError, ExitCode } from '../errors.js';
import { formatControl, NO_CONTROL, pauseInForce, type Pause } from '../lease/control.js';
import type { Snapshot, Witness } from '../lease/witness.js';

export type PauseOp = 'pause' | 'resume';

export interface PauseIo {
  read(): Promise<Snapshot>;
  /** CAS of the control RRset over `seen`'s; a conflict is an outcome. */
  writeControl(seen: Snapshot, next: string[] | null): Promise<{ ok: true } | { ok: false; conflict: true }>;
  /** The writer's estimate of the server's clock (unix s). */
  serverSeconds(seen: Snapshot): number;
}

export interface PauseResult {
  op: PauseOp;
  /** Whether the witness was changed (false: it already was as asked). */
  changed: boolean;
  /** The pause in force afterwards (null: none). */
  pause: Pause | null;
  text: string;
}

export async function runPause(op: PauseOp, opts: { by: string; reason: string; forSeconds: number | null }, io: PauseIo): Promise<PauseResult> {
  for (let attempt = 1; ; attempt++) {
    const seen = await io.read();
    const now = Math.floor(io.serverSeconds(seen));
    // A control record we cannot parse is replaced (its handover hold with it): say so.
    const control = seen.control ?? NO_CONTROL;
    const lost = seen.controlError ? ` (the control record was not understood and is replaced: ${seen.controlError})` : '';
    const current = seen.controlError ? null : pauseInForce(control, now);
    if (op === 'resume' && current === null && !control.pause && !seen.controlError) return { op, changed: false, pause: null, text: 'not paused: nothing to resume' };
    // A --for pause lasts at least that long: it counts from the LATEST the server's clock can be
    // (the read's round trip added, as a handover hold's stamp is), not from the earliest.
    const until = opts.forSeconds === null ? null : Math.ceil(io.serverSeconds(seen) + (seen.offsetSpanSeconds ?? 0)) + opts.forSeconds;
    const pause: Pause | null = op === 'pause' ? { by: opts.by, since: now, until, reason: opts.reason } : null;
    const w = await io.writeControl(seen, formatControl({ pause, handover: control.handover }));
    if (w.ok) {
      const text = pause ? `${pauseWords(pause)}: no automatic takeover or handover on either site${lost}` : `resumed${current ? ` (was ${pauseWords(current)})` : ''}: automatic moves allowed again${lost}`;
      return { op, changed: true, pause, text };
    }
    if (attempt >= ADMIN_ATTEMPTS) throw new AgentError('DNS_PREREQ_FAILED', `${op} not applied: the control record changed under ${ADMIN_ATTEMPTS} attempts in a row`, ExitCode.REFUSED);
  }
}

/** The PauseIo of a Witness: its reads, its control CAS (a failed prerequisite is a conflict). */
export function witnessPauseIo(w: Pick<Witness, 'read' | 'writeControl'>, serverSeconds: (seen: Snapshot) => number): PauseIo {
  return {
    read: () => w.read(),
    serverSeconds,
    writeControl: async (seen, next) => {
      try {
        await w.writeControl(seen, next);
        return { ok: true };
      } catch (err) {
        if (err instanceof AgentError && err.code === 'DNS_PREREQ_FAILED') return { ok: false, conflict: true };
        throw err;
      }
    },
  };
}
