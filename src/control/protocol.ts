/**
 * The control socket's protocol: one JSON object per line each way.
 * Request `{ "cmd": ..., "args": {...} }`, response `{ "ok": true, "result": ... }`
 * or `{ "ok": false, "error": { "code", "message", "exitCode" } }`.
 */
import type { AgentStatus } from '../agent/status.js';
import type { SyncReport, VmSyncStatus } from '../vmsync/sync.js';

export type ControlCommand = 'status' | 'failback' | 'switchover' | 'sync';

export interface ControlRequest {
  cmd: ControlCommand;
  args?: { force?: boolean; dryRun?: boolean };
}

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

export type ControlResponse =
  | { ok: true; result: AgentStatus | AdminResult | SyncResult }
  | { ok: false; error: { code: string; message: string; exitCode: number } };

/** What the agent exposes to the control socket. */
export interface ControlHandler {
  status(): AgentStatus;
  admin(op: 'failback' | 'switchover', opts: { force: boolean; dryRun: boolean }): Promise<AdminResult>;
  sync(): Promise<SyncResult>;
}
