/**
 * The agent's status as one plain, JSON-safe object: what /healthz, /metrics,
 * sd_notify STATUS= and `failoverctl status` all render. The engine builds it;
 * nobody else computes status.
 */
import type { BuildInfo } from '../build-info.js';
import type { CollectorState, Phase } from '../core/decide.js';
import type { Role } from '../lease/lease.js';
import type { VmSyncStatus } from '../vmsync/sync.js';

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
  lastWrite: { op: string; ok: boolean; at: string; detail: string } | null;
  takeovers: number;
  events: RecentEvent[];
  /** Whether /healthz answers 200, and why not. */
  healthy: boolean;
  unhealthyReason: string | null;
}
