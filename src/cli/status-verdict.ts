/**
 * `failoverctl status`'s exit code, so scripts can ask "is this site fine in its role?".
 * One table: the CLI, docs/CONTROL.md and the man page all name these codes.
 */
import type { AgentStatus } from '../control/protocol.js';

/** Exit codes of `failoverctl status` besides the common ones (69 agent down, 77 socket access). */
export const StatusExit = {
  /** Fine in its role: active and healthy where DNS names it, a healthy standby elsewhere. */
  FINE: 0,
  /** The agent cannot read DNS now (no verified read yet, or the last read failed). */
  DNS_UNREADABLE: 2,
  /** DNS names this site but it is not active (lease pending or lost). */
  NOT_ACTIVE: 3,
  /** Otherwise not fine (collector not as it should be, inconsistent witness): /healthz is 503. */
  UNHEALTHY: 4,
} as const;
export type StatusExit = (typeof StatusExit)[keyof typeof StatusExit];

export interface StatusVerdict {
  code: StatusExit;
  why: string;
}

/** DNS first: without a current read the agent cannot know whether this site should be active. */
export function statusVerdict(s: AgentStatus): StatusVerdict {
  if (s.dns.readAgeSeconds === null || s.dns.consecutiveFailures > 0) {
    return { code: StatusExit.DNS_UNREADABLE, why: `DNS unreadable: ${s.dns.lastError ?? 'no verified read yet'}` };
  }
  if (s.sites.some((site) => site.named && site.role === s.role) && !s.active) {
    return { code: StatusExit.NOT_ACTIVE, why: `DNS names this site but it is not active (${s.phase}): ${s.reason}` };
  }
  if (!s.healthy) return { code: StatusExit.UNHEALTHY, why: `not healthy: ${s.unhealthyReason ?? 'unknown'}` };
  return { code: StatusExit.FINE, why: s.active ? 'active and healthy' : `${s.phase}, healthy` };
}
