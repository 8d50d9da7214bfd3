/**
 * failback / switchover as ONE procedure, run by the agent (through its engine, so the core hears
 * the outcome) and by failoverctl when the agent is down (directly with the key file): read the
 * witness, plan (core/admin.ts: preconditions, the gate, refusal), CAS exactly what was read. A
 * conflict means the active site renewed between the read and the CAS: read and plan again, at most
 * ADMIN_ATTEMPTS times. The callers differ only in their `AdminIo`.
 */
import type { Config } from '../config/schema.js';
import type { AdminResult } from '../control/protocol.js';
import { ADMIN_ATTEMPTS, planAdmin, type AdminOp, type FailbackGate } from '../core/admin.js';
import type { CollectorState } from '../core/decide.js';
import { AgentError, ExitCode } from '../errors.js';
import { transferOf, type Intended, type Snapshot } from '../lease/witness.js';
import type { Logger } from '../log/logger.js';

export type AdminWrite = { ok: true } | { ok: false; conflict: true } | { ok: false; conflict: false; error: unknown };

export interface AdminIo {
  read(): Promise<Snapshot>;
  gate(epoch: number | null): FailbackGate | Promise<FailbackGate>;
  collector(): CollectorState | null;
  wallSeconds(): number;
  /** The CAS of `next` over `seen`; a conflict is an outcome, any other failure carries its error. */
  write(seen: Snapshot, next: Intended): Promise<AdminWrite>;
  /** Where a refusal and a forced move are logged (the agent's journal); none for failoverctl. */
  logger?: Logger;
}

export async function runAdmin(op: AdminOp, config: Config, opts: { force: boolean; dryRun: boolean }, via: AdminResult['via'], io: AdminIo): Promise<AdminResult> {
  for (let attempt = 1; ; attempt++) {
    const seen = await io.read();
    const plan = planAdmin(op, config, seen, await io.gate(seen.lease?.epoch ?? null), io.collector(), io.wallSeconds(), opts.force);
    const result: AdminResult = { op, done: false, dryRun: opts.dryRun, forced: opts.force, refused: plan.refused, plan: plan.plan, preconditions: plan.preconditions, via };
    // The journal keeps the operator's attempt and why it was refused, not only the request.
    if (plan.refused && !opts.dryRun) io.logger?.notice(`${op} refused: ${plan.refused}`, { event: `${op}_refused` });
    if (opts.dryRun || plan.refused) return result;
    const failed = plan.preconditions.filter((p) => !p.ok);
    if (opts.force && failed.length) io.logger?.warning(`${op} forced past failed preconditions`, { event: `${op}_forced`, failed: failed.map((p) => p.name).join(',') });
    const w = await io.write(seen, transferOf(seen, plan.to, config.sites, io.wallSeconds()));
    if (w.ok) return { ...result, done: true };
    if (!w.conflict) throw w.error;
    if (attempt >= ADMIN_ATTEMPTS) throw new AgentError('DNS_PREREQ_FAILED', `${op} not applied: the witness changed under ${ADMIN_ATTEMPTS} attempts in a row`, ExitCode.REFUSED);
  }
}
