/**
 * The control socket's protocol (docs/CONTROL.md): one JSON object per line each way.
 * Request `{ "cmd": ..., "args": {...} }`, response `{ "ok": true, "result": ... }`
 * or `{ "ok": false, "error": { "code", "message", "exitCode" } }`.
 *
 * The request schema is strict at every level: a field the agent does not know is refused, never
 * ignored, so a misspelt `{"cmd":"switchover","dry_run":true}` cannot run a real switchover.
 */
import { z } from 'zod';

import type { BuildInfo } from '../build-info.js';
import type { AdminOp, Precondition } from '../core/admin.js';
import type { CollectorState, Phase } from '../core/decide.js';
import type { GssContextStatus } from '../dns/gss/context.js';
import type { Role } from '../lease/lease.js';
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

/** The answer to failback / switchover (also what --dry-run prints). */
export interface AdminResult {
  op: AdminOp;
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

// ---- status: what `status` answers ----------------------------------------------------------

/**
 * The agent's status as one plain, JSON-safe object: what /healthz, /metrics, sd_notify STATUS=
 * and `failoverctl status` all render. The engine builds it; nobody else computes status.
 */
export interface SiteView {
  role: Role;
  address: string;
  /** True when the record names this site. */
  named: boolean;
}

export interface RecentEvent {
  /** ISO time. */
  at: string;
  event: string;
  text: string;
}

/** What `failoverctl status`, /healthz and /metrics show of the collector handover and the pause. */
export interface JobStatus {
  /** Why this site's collector counts as broken; null: it does not. */
  collectorBroken: string | null;
  /** Ours broken and the other site's too: nothing moves (alert FailoverNoSiteCanCollect). */
  noSiteCanCollect: boolean;
  /** Could this site take the job now (what the other site's holder asks before a handover). */
  ready: boolean;
  readyDetail: string;
  /** The other site's agent as last asked (health.peer_targets); null: no fresh answer. */
  peer: { ready: boolean; detail: string; collectorBroken: string | null; ageSeconds: number } | null;
  /** The pause in force at the witness (times ISO, UTC). */
  pause: { by: string; since: string; until: string | null; reason: string } | null;
  /** The last automatic handover recorded at the witness. */
  lastHandover: { from: Role; to: Role; epoch: number; at: string; reason: string; detail: string } | null;
  /** Handovers this agent made since it started. */
  handovers: number;
}

export interface AgentStatus {
  instance: string;
  role: Role;
  pid: number;
  startedAt: string;
  /** Version, the running Node and the sd_notify path. */
  build: BuildInfo;
  phase: Phase;
  /** True when the record names us and we hold a valid lease. */
  active: boolean;
  /** The last decision and WHY, in words an operator reads. */
  decision: string;
  reason: string;
  sites: SiteView[];
  dns: {
    server: string;
    zone: string;
    record: string;
    addresses: string[];
    /** Seconds since the last verified read, null before the first. */
    readAgeSeconds: number | null;
    consecutiveFailures: number;
    lastError: string | null;
    /** Server clock minus ours (s), from TSIG; null when unknown. */
    offsetSeconds: number | null;
  };
  /**
   * dns.auth = "gss-tsig": the GSS-TSIG context every message is signed with (negotiated and
   * expiry times, the last failed renewal); null with HMAC TSIG.
   */
  gss: GssContextStatus | null;
  lease: {
    holder: Role | null;
    epoch: number | null;
    seq: number | null;
    /** Seconds this epoch/seq has been seen unchanged on our clock. */
    unchangedSeconds: number | null;
    /** Seconds since the send of our last confirmed write, while we hold it. */
    ownAgeSeconds: number | null;
    error: string | null;
  };
  health: {
    /** DR only; null on the primary. */
    consecutiveFailures: number | null;
    threshold: number;
    last: string | null;
  };
  collector: {
    control: 'systemd' | 'none';
    unit: string;
    desired: 'running' | 'stopped' | null;
    state: CollectorState | null;
    lastError: string | null;
  };
  /** VM sync state and the failback gate; null when vmsync is disabled. */
  vmsync: VmSyncStatus | null;
  /** Whether every authoritative server serves the record's value (informational only); null before the first check. */
  propagation: PropagationStatus | null;
  lastWrite: { op: string; ok: boolean; at: string; detail: string } | null;
  takeovers: number;
  /** The job, not only the host: this site's collector judged, the other site's readiness, the pause, the last handover. */
  job: JobStatus;
  events: RecentEvent[];
  /** Whether /healthz answers 200, and why not. */
  healthy: boolean;
  unhealthyReason: string | null;
}

/**
 * One authoritative server as the propagation check last saw it (`failoverctl dns --json` prints
 * the same objects). Nothing here is an input to a decision: secondaries do not sign with our key.
 */
export interface ServerSync {
  /** "address:port" ("[v6]:port") asked. */
  server: string;
  /** The NS (or configured) name it was found under; null for a configured address. */
  name: string | null;
  /** SOA serial of its last answer; null before one. */
  serial: number | null;
  /** The record's values in its last answer (empty: it has none); null before an answer. */
  value: string[] | null;
  /** Its last answer serves exactly the value written. */
  in_sync: boolean;
  /** From the write (or, for a change this agent did not make, from when it first read it) to this server's first answer serving it; null until then. */
  lag_ms: number | null;
  /** ISO time of that first answer. */
  since: string | null;
  /** Out of sync for longer than dns.propagation_timeout. */
  late: boolean;
  /** Why its last answer did not count (timeout, no AA, name unresolved...). */
  error: string | null;
}

export interface PropagationStatus {
  record: string;
  /** The value every server should serve: the witness's, as written or read. */
  value: string[];
  /** Which site that value names, if either. */
  site: Role | null;
  /** The write it follows (takeover, failback, switchover), or "read": a change this agent saw but did not make. */
  op: string;
  /** ISO time of that write's send (or of the read). */
  written_at: string;
  servers: ServerSync[];
  in_sync: number;
  total: number;
  /** ISO time the last server caught up; null while one has not. */
  all_in_sync_at: string | null;
  /** all_in_sync_at + the record's TTL: by then no cache holds the old value. */
  clients_follow_by: string | null;
  /** Seconds from the write to all servers serving it (failover_dns_propagation_seconds). */
  propagation_seconds: number | null;
  /** Servers found late (past dns.propagation_timeout) since the agent started. */
  late_total: number;
  /** In words: "the DR's address is served by 3/3 servers since ...; clients follow by ... (record TTL 30 s)". */
  summary: string;
  /** The server list could not be had (NS read failed); null normally. */
  error: string | null;
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
  admin(op: AdminOp, opts: { force: boolean; dryRun: boolean }): Promise<AdminResult>;
  sync(): Promise<SyncResult>;
}

/** The engine's commands plus the process-level `reload` (agent/main.ts owns the config file). */
export interface ControlService extends ControlHandler {
  /** Re-reads the configuration file; throws (CONFIG_* 78, RELOAD_REFUSED 78) keeping the running one. */
  reload(): Promise<ReloadResult>;
}
