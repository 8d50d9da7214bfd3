/**
 * failoverctl status / failback / switchover: through the running agent's
 * control socket; failback and switchover fall back to a direct CAS with the
 * key file when the agent is down (and say so).
 */
import { loadConfig } from '../config/load.js';
import { loadSigning } from '../dns/signing.js';
import { instanceFromPath, type Config } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import type { GssContextStatus } from '../dns/gss/context.js';
import { callAgent, socketPath } from '../control/client.js';
import type { AdminResult, AgentStatus, ControlRequest, ControlResults, ReloadResult, ServerSync, SyncResult } from '../control/protocol.js';
import { runAdmin } from '../admin/run.js';
import type { AdminOp, FailbackGate } from '../core/admin.js';
import { AgentError, ExitCode } from '../errors.js';
import { openWitness } from '../lease/open.js';
import { stateDir } from '../state/atomic.js';
import { loadState } from '../vmsync/state.js';
import { chooseFailbackGate, gateVerdict } from '../core/failback-gate.js';
import type { Output } from './output.js';
import { statusVerdict } from './status-verdict.js';
import { selectConfigFile, type ConfigSelector } from './select-config.js';

export interface AgentArgs extends ConfigSelector {
  socket?: string;
}

function isNotRunning(err: unknown): boolean {
  return err instanceof AgentError && err.code === 'AGENT_NOT_RUNNING';
}

/** Talks to the agent; needs only the instance name, so it works while the file on disk is being edited. */
async function ask<R extends ControlRequest>(file: string, args: AgentArgs, req: R): Promise<ControlResults[R['cmd']]> {
  const r = await callAgent(args.socket ?? socketPath(instanceFromPath(file)), req);
  if (!r.ok) throw new AgentError(r.error.code, r.error.message, r.error.exitCode as ExitCode);
  // The agent answers each command with its own result type (control/server.ts).
  return r.result as ControlResults[R['cmd']];
}

const yes = (b: boolean): string => (b ? 'ok ' : 'NO ');

/** One line per authoritative server: what it serves, and since when (status and `dns` print it). */
export function renderServers(servers: readonly ServerSync[]): string[] {
  return servers.map(
    (s) =>
      `  ${s.server.padEnd(22)} ${s.in_sync ? 'in sync' : s.late ? 'LATE   ' : 'behind '} serial ${s.serial ?? '-'} value ${s.value === null ? '-' : s.value.join(',') || '(none)'}` +
      (s.lag_ms !== null ? `, lag ${(s.lag_ms / 1000).toFixed(1)} s` : '') +
      (s.name ? ` (${s.name})` : '') +
      (s.error ? `: ${s.error}` : ''),
  );
}

/**
 * The GSS-TSIG context in one line (dns.auth = "gss-tsig"): for whom, until when, and the failed
 * renewals, so a KDC outage shows while the live context still works. `nowMs`: the wall clock.
 */
export function renderGss(g: GssContextStatus, nowMs: number = Date.now()): string {
  const who = `${g.principal}${g.target ? ` with ${g.target}` : ''}`;
  const left = g.expiresAt === null ? NaN : Date.parse(g.expiresAt) - nowMs;
  const state =
    g.negotiatedAt === null
      ? `no context yet for ${who}`
      : g.live && left > 0
        ? `context for ${who}, expires in ${roughDuration(left)} (${g.expiresAt})`
        : `NO live context for ${who}: the last one ${g.expiresAt !== null && left <= 0 ? `ended ${roughDuration(-left)} ago (${g.expiresAt})` : 'was refused'}`;
  const failures = `${g.renewalFailures} renewal failure${g.renewalFailures === 1 ? '' : 's'}`;
  const last = g.lastRenewalError ? `; last error (${g.lastRenewalError.why}, ${g.lastRenewalError.at}): ${g.lastRenewalError.text}` : '';
  return `gss      ${state}, ${failures}${last}`;
}

/** Whole minutes from one minute on ("9h58m"), seconds below. */
function roughDuration(ms: number): string {
  return formatDuration(ms >= 60_000 ? Math.floor(ms / 60_000) * 60_000 : Math.max(0, Math.floor(ms / 1000) * 1000));
}

export function renderStatus(s: AgentStatus, nowMs: number = Date.now()): string {
  const lines = [
    `${s.instance}: role ${s.role}, ${s.phase}${s.active ? ' (ACTIVE)' : ''}, pid ${s.pid}, up since ${s.startedAt}`,
    // (an agent older than this failoverctl, mid-upgrade, reports no build)
    `agent    ${s.build ? `${s.build.version} on node ${s.build.node}, sd_notify via ${s.build.notify}` : 'version unknown'}`,
    `why      ${s.reason}`,
    ...s.sites.map((site) => `site     ${site.role.padEnd(8)}${site.address}${site.named ? '   <- named by DNS' : ''}`),
    `dns      ${s.dns.record} = ${s.dns.addresses.join(', ') || '(none)'} at ${s.dns.server} (zone ${s.dns.zone}), read ${s.dns.readAgeSeconds ?? '-'} s ago` +
      (s.dns.consecutiveFailures ? `, ${s.dns.consecutiveFailures} failures: ${s.dns.lastError}` : '') +
      (s.dns.offsetSeconds !== null ? `, server clock ${s.dns.offsetSeconds >= 0 ? '+' : ''}${s.dns.offsetSeconds} s` : ''),
    // (null with HMAC TSIG; absent from an agent older than this failoverctl)
    ...(s.gss ? [renderGss(s.gss, nowMs)] : []),
    `lease    ${s.lease.holder ? `holder=${s.lease.holder} epoch=${s.lease.epoch} seq=${s.lease.seq}, unchanged for ${s.lease.unchangedSeconds} s` : (s.lease.error ?? '(none)')}` +
      (s.lease.ownAgeSeconds !== null ? `, our last confirmed renewal sent ${s.lease.ownAgeSeconds} s ago` : ''),
  ];
  // (an agent older than this failoverctl reports no propagation)
  if (s.propagation) lines.push(`servers  ${s.propagation.summary}`, ...renderServers(s.propagation.servers));
  if (s.health.consecutiveFailures !== null) {
    lines.push(`health   ${s.health.consecutiveFailures}/${s.health.threshold} consecutive failures; last: ${s.health.last ?? '-'}`);
  }
  lines.push(
    `collector ${s.collector.control === 'none' ? 'not controlled (collector.control = none)' : `${s.collector.unit}: ${s.collector.state ?? 'unknown'}, should be ${s.collector.desired}`}` +
      (s.collector.lastError ? ` (error: ${s.collector.lastError})` : ''),
    `vmsync   ${s.vmsync ? `${s.vmsync.failback_ready ? 'FAILBACK READY' : 'not ready'}, ${s.vmsync.consecutive_clean}/${s.vmsync.clean_checks_needed} clean checks, last check ${s.vmsync.last_check ?? 'never'}${s.vmsync.ranges_found.length ? `, ${s.vmsync.ranges_found.length} gap range(s)` : ''}` : 'disabled'}`,
    ...renderJob(s),
    `last CAS ${s.lastWrite ? `${s.lastWrite.op} ${s.lastWrite.ok ? 'ok' : 'FAILED'} at ${s.lastWrite.at}: ${s.lastWrite.detail}` : '-'}`,
    `healthz  ${s.healthy ? '200 healthy' : `503: ${s.unhealthyReason}`}; takeovers ${s.takeovers}`,
  );
  if (s.events.length) lines.push('events', ...s.events.slice(-10).map((e) => `  ${e.at} ${e.event}: ${e.text}`));
  return lines.join('\n');
}

/** The job, not only the host: the pause, this collector's verdict, the other site's readiness, the last handover. */
function renderJob(s: AgentStatus): string[] {
  const j = s.job;
  // (an agent older than this failoverctl reports no job)
  if (!j) return [];
  const out: string[] = [];
  if (j.pause) out.push(`PAUSED   by ${j.pause.by} since ${j.pause.since}${j.pause.until ? ` until ${j.pause.until}` : ' until failoverctl resume'}${j.pause.reason ? `: ${j.pause.reason}` : ''} (no automatic takeover or handover)`);
  if (j.noSiteCanCollect) out.push(`NO SITE CAN COLLECT: ours ${j.collectorBroken}; the other site's: ${j.peer?.collectorBroken ?? 'broken'}`);
  else if (j.collectorBroken) out.push(`job      our collector is BROKEN: ${j.collectorBroken}`);
  out.push(
    `job      this site ${j.ready ? 'could take the job' : 'could NOT take the job'} (${j.readyDetail}); other site: ${j.peer ? `${j.peer.ready ? 'ready' : 'NOT ready'} (${j.peer.detail}), asked ${j.peer.ageSeconds} s ago` : 'no fresh answer'}`,
  );
  if (j.lastHandover) {
    const h = j.lastHandover;
    out.push(`handover last: ${h.from} -> ${h.to} at ${h.at} (epoch ${h.epoch}, ${h.reason}): ${h.detail}; by this agent since start: ${j.handovers}`);
  }
  return out;
}

/** Prints the status; the exit code says whether this site is fine in its role (status-verdict.ts). */
export async function statusCommand(args: AgentArgs, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const status = await ask(selectConfigFile(args, env), args, { cmd: 'status' });
  const verdict = statusVerdict(status);
  out.result(`${renderStatus(status)}\nverdict  ${verdict.why} (exit ${verdict.code})`, status);
  return verdict.code;
}

/** Asks the running agent to re-read its file, and waits for its verdict (ExecReload runs this). */
export async function reloadCommand(args: AgentArgs, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const r: ReloadResult = await ask(selectConfigFile(args, env), args, { cmd: 'reload' });
  out.result(`${r.file} reloaded: ${r.applied.length ? `${r.applied.join(', ')} applied` : 'no change'}`, r);
  return ExitCode.OK;
}

export function renderAdmin(r: AdminResult): string {
  const head = r.dryRun
    ? `${r.op} (dry run): ${r.refused ? `would be REFUSED: ${r.refused}` : 'would proceed'}`
    : r.done
      ? `${r.op} done${r.forced ? ' (forced)' : ''}`
      : `${r.op} REFUSED: ${r.refused}`;
  return [
    head + (r.via === 'direct' ? '\n(the agent is not running: executed directly against DNS with the key file)' : ''),
    'preconditions:',
    ...r.preconditions.map((p) => `  ${yes(p.ok)} ${p.name}: ${p.detail}`),
    'plan:',
    ...r.plan.map((p, i) => `  ${i + 1}. ${p}`),
  ].join('\n');
}

/** Without the agent: the same procedure (admin/run.ts), the CAS with the key file. */
async function adminDirect(config: Config, op: AdminOp, opts: { force: boolean; dryRun: boolean }): Promise<AdminResult> {
  const w = await openWitness(config, loadSigning(config));
  return runAdmin(op, config, opts, 'direct', {
    read: () => w.witness.read(),
    // The gate as the agent last persisted it (vmsync.json in its state directory).
    gate: async (epoch): Promise<FailbackGate> =>
      chooseFailbackGate(config.vmsync.enabled, config.vmsync.enabled ? gateVerdict(await loadState(stateDir(config.instance)), config.vmsync.clean_checks, epoch) : null),
    collector: () => null,
    wallSeconds: () => Date.now() / 1000,
    write: async (seen, next) => {
      try {
        await w.witness.write(seen, next);
        return { ok: true };
      } catch (err) {
        return err instanceof AgentError && err.code === 'DNS_PREREQ_FAILED' ? { ok: false, conflict: true } : { ok: false, conflict: false, error: err };
      }
    },
  });
}

export async function adminCommand(op: AdminOp, args: AgentArgs & { force: boolean; dryRun: boolean }, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const file = selectConfigFile(args, env);
  const opts = { force: args.force, dryRun: args.dryRun };
  let result: AdminResult;
  try {
    result = await ask(file, args, { cmd: op, args: opts });
  } catch (err) {
    if (!isNotRunning(err)) throw err;
    result = await adminDirect(loadConfig(file), op, opts);
  }
  out.result(renderAdmin(result), result);
  // A refusal exits 1, in a dry run too, so scripts can ask "would failback go?".
  return result.refused ? ExitCode.REFUSED : ExitCode.OK;
}

export function renderSync(r: SyncResult): string {
  if (!r.report) return `VM sync is disabled (vmsync.enabled = false)\ngate: ${r.gate.detail}`;
  const rep = r.report;
  const range = (x: { start: string; end: string; missing: number; instances?: string[] }): string =>
    `  ${x.start} .. ${x.end}  ${x.missing} samples missing${x.instances?.length ? ` (${x.instances.join(', ')})` : ''}`;
  return [
    `VM sync check (${rep.role}): ${rep.error ? `FAILED: ${rep.error.code}: ${rep.error.message}` : rep.clean ? 'clean' : 'gaps found'} in ${rep.duration_ms} ms` +
      (rep.window ? `, window ${rep.window.start} .. ${rep.window.end}` : ''),
    `ranges found: ${rep.ranges_found.length}`,
    ...rep.ranges_found.map(range),
    `ranges repaired: ${rep.ranges_repaired.length}, samples copied: ${rep.samples_copied}` + (rep.confirmed === null ? '' : `, confirmed: ${rep.confirmed}`),
    ...(rep.remaining.length ? ['still short after repair:', ...rep.remaining.map(range)] : []),
    ...(rep.exports.length
      ? [
          `exported: ${rep.samples_exported} samples (${rep.ranges_backfilled.length ? 'backfill' : 'repair'})`,
          ...rep.exports.map(
            (x) =>
              `  ${x.start} .. ${x.end}  ${x.match === 'devices' ? `${x.device_count} device(s) only: ${x.devices!.join(', ')}${x.device_count > x.devices!.length ? ', …' : ''}` : `every series (${x.reason.replace(/_/g, ' ')})`}, ${x.samples} samples`,
          ),
        ]
      : []),
    `gate: ${r.gate.ready ? 'FAILBACK READY' : 'not ready'}: ${r.gate.detail}`,
  ].join('\n');
}

export async function syncCommand(args: AgentArgs, out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const r = await ask(selectConfigFile(args, env), args, { cmd: 'sync' });
  out.result(renderSync(r), r);
  return r.report?.error ? ExitCode.UNAVAILABLE : ExitCode.OK;
}
