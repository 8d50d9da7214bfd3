/**
 * The control socket's protocol (docs/CONTROL.md): one JSON object per line each way.
 * Request `{ "cmd": ..., "args": {...} }`, response `{ "ok": true, "result": ... }`
 * or `{ "ok": false, "error": { "code", "message", "exitCode" } }`.
 *
 * The request schema is strict at every level: a field the agent does not know is refused, never
 * ignored, so a misspelt `{"cmd":"switchover","dry_run":true}` cannot run a real switchover.
 */
import { z } from 'zod';

import type { AgentStatus } from '../agent/status.js';
import type { SyncReport, VmSyncStatus } from '../vmsync/sync.js';

const adminArgs = z.strictObject({
  force: z.boolean().optional(),
  dryRun: z.boolean().optional(),
});

/** Every request the agent accepts; the single source of the commands and their arguments. */
export const controlRequestSchema = z.discriminatedUnion('cmd', [
  z.strictObject({ cmd: z.literal('status') }),
  z.strictObject({ cmd: z.literal('sync') }),
  z.strictObject({ cmd: z.literal('reload') }),
  z.strictObject({ cmd: z.literal('failback'), args: adminArgs.optional() }),
  z.strictObject({ cmd: z.literal('switchover'), args: adminArgs.optional() }),
]);

export type ControlRequest = z.infer<typeof controlRequestSchema>;
export type ControlCommand = ControlRequest['cmd'];
export const CONTROL_COMMANDS: readonly ControlCommand[] = controlRequestSchema.options.map((o) => o.shape.cmd.value);

export interface Precondition {
  name: string;
  ok: boolean;
  detail: string;
}

/** The answer to failback / switchover (also what --dry-run prints). */
export interface AdminResult {
  op: 'failback' | 'switchover';
  /** True when the CAS was applied (never with dryRun). */
  done: boolean;
  dryRun: boolean;
  forced: boolean;
  /** Why it was refused (a precondition failed and no --force), else null. */
  refused: string | null;
  plan: string[];
  preconditions: Precondition[];
  /** Who executed it: the running agent, or failoverctl itself with the key file. */
  via: 'agent' | 'direct';
}

/** The answer to `sync`: one VM sync cycle run now, and the gate after it. */
export interface SyncResult {
  /** null when vmsync is disabled. */
  report: SyncReport | null;
  status: VmSyncStatus | null;
  gate: { ready: boolean; detail: string };
}

/** The answer to `reload`: the file re-read and the keys it changed (a refusal is an error response). */
export interface ReloadResult {
  file: string;
  applied: string[];
}

/** The result each command answers with. */
export interface ControlResults {
  status: AgentStatus;
  failback: AdminResult;
  switchover: AdminResult;
  sync: SyncResult;
  reload: ReloadResult;
}

export type ControlResponse =
  | { ok: true; result: ControlResults[ControlCommand] }
  | { ok: false; error: { code: string; message: string; exitCode: number } };

/** What the engine exposes to the control socket. */
export interface ControlHandler {
  status(): AgentStatus;
  admin(op: 'failback' | 'switchover', opts: { force: boolean; dryRun: boolean }): Promise<AdminResult>;
  sync(): Promise<SyncResult>;
}

/** The engine's commands plus the process-level `reload` (agent/main.ts owns the config file). */
export interface ControlService extends ControlHandler {
  /** Re-reads the configuration file; throws (CONFIG_* 78, RELOAD_REFUSED 78) keeping the running one. */
  reload(): Promise<ReloadResult>;
}
