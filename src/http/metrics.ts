/**
 * Prometheus metrics (SPEC §7) on a registry of our own: no prom-client default registry and no
 * module singletons, so two agents (or two tests) in one process never share a series.
 *
 * Two kinds of metric live here:
 * - state, read from the one `AgentStatus` at scrape time (`collect()` callbacks); a value that is
 *   null in the status is ABSENT from the scrape (never NaN, never a made-up 0);
 * - events the engine reports as they happen (`dnsRequest`, `dnsError`, `write`, `healthCheck`).
 *
 * The names are a public interface (dashboards and alerts rely on them): docs/METRICS.md lists them.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { AgentStatus } from '../control/protocol.js';
import type { CollectorState, Phase, WriteOp } from '../core/decide.js';
import { DNS_ERROR_CODES } from '../dns/errors.js';
import type { Role } from '../lease/lease.js';
import type { WebhookStats } from '../vmsync/notify.js';

/** Every phase, so `failover_phase` is one-hot over a fixed set (a missing element fails to compile). */
export const PHASES = ['starting', 'active', 'pending', 'standby', 'monitoring', 'fenced', 'holding'] as const satisfies readonly Phase[];
type MissingPhase = Exclude<Phase, (typeof PHASES)[number]>;
const _allPhases: [MissingPhase] extends [never] ? true : MissingPhase = true;

export const COLLECTOR_STATES = [
  'active',
  'inactive',
  'activating',
  'deactivating',
  'failed',
  'missing',
  'unknown',
] as const satisfies readonly CollectorState[];
type MissingState = Exclude<CollectorState, (typeof COLLECTOR_STATES)[number]>;
const _allStates: [MissingState] extends [never] ? true : MissingState = true;

const WRITE_OPS = ['renew', 'takeover', 'failback', 'switchover', 'init'] as const satisfies readonly WriteOp[];
const WRITE_RESULTS = ['ok', 'conflict', 'error'] as const;
export type WriteResult = (typeof WRITE_RESULTS)[number];
export type DnsRequestKind = 'read' | 'update';

/** 1 ms … 5 s: a LAN DNS answer is a few ms, a retried attempt ends at `dns.timeout` × attempts. */
export const DNS_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface MetricsLabels {
  instance: string;
  role: Role;
}

export interface MetricsOptions {
  /** Register prom-client's `process_*` / `nodejs_*` metrics on our registry (default true). */
  defaultMetrics?: boolean;
  /** The webhook's delivery counts (absent without `notify.webhook`). */
  webhook?: () => WebhookStats;
  /** The loops' liveness as the watchdog judges it (absent: not exported). */
  liveness?: () => { stale: unknown[] };
}

/**
 * prom-client's gauges named like counters (`promtool check metrics` flags them); each is the sum
 * of the same name without `_total` (by type), which stays.
 */
export const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

const WEBHOOK_RESULTS = ['sent', 'failed', 'dropped'] as const;

export class Metrics {
  /** The registry everything here is registered on (exposed for tests and extra collectors). */
  readonly registry: Registry;

  private readonly labels: MetricsLabels;
  private readonly provider: () => AgentStatus;
  /** The status for the scrape in progress: read once per render, shared by every collect(). */
  private scrapeStatus: AgentStatus | undefined;

  private readonly dnsDuration: Histogram<'kind'>;
  private readonly dnsErrors: Counter<'code'>;
  private readonly writes: Counter<'op' | 'result'>;
  private readonly healthChecks: Counter<'result'>;

  constructor(labels: MetricsLabels, status: () => AgentStatus, opts: MetricsOptions = {}) {
    this.labels = { instance: labels.instance, role: labels.role };
    this.provider = status;
    const registry = (this.registry = new Registry());
    const registers = [registry];

    // ---- events -------------------------------------------------------------------------------
    this.dnsDuration = new Histogram({
      name: 'failover_dns_request_duration_seconds',
      help: 'Duration of DNS requests to the witness server (all attempts of one request), by kind.',
      labelNames: ['kind'],
      buckets: DNS_DURATION_BUCKETS,
      registers,
    });
    this.dnsErrors = new Counter({
      name: 'failover_dns_errors_total',
      help: 'DNS requests that failed, by error code (DNS_TIMEOUT, DNS_REFUSED, ...).',
      labelNames: ['code'],
      registers,
    });
    this.writes = new Counter({
      name: 'failover_dns_writes_total',
      help: 'Lease/record writes (CAS updates) by operation and result (ok, conflict, error).',
      labelNames: ['op', 'result'],
      registers,
    });
    this.healthChecks = new Counter({
      name: 'failover_health_checks_total',
      help: 'Health checks of the other site by result (ok, failed).',
      labelNames: ['result'],
      registers,
    });
    // Known series start at 0 so rate() and increase() see the first event.
    for (const kind of ['read', 'update'] as const) this.dnsDuration.zero({ kind });
    for (const op of WRITE_OPS) for (const result of WRITE_RESULTS) this.writes.inc({ op, result }, 0);
    for (const result of ['ok', 'failed']) this.healthChecks.inc({ result }, 0);
    for (const code of DNS_ERROR_CODES) this.dnsErrors.inc({ code }, 0);

    // ---- state, from the status at scrape time --------------------------------------------------
    const self = this;
    const info = this.labels;
    new Gauge({
      name: 'failover_info',
      help: 'Always 1; labels name the agent instance and its configured role.',
      labelNames: ['instance', 'role'],
      registers,
      collect() {
        this.reset();
        this.set(info, 1);
      },
    });
    new Gauge({
      name: 'failover_build_info',
      help: 'Always 1; labels name the agent version, the running Node and how sd_notify reaches systemd (addon, systemd-notify, none).',
      labelNames: ['version', 'node', 'notify'],
      registers,
      collect() {
        const { version, node, notify } = self.status().build;
        this.reset();
        this.set({ version, node, notify }, 1);
      },
    });
    const liveness = opts.liveness;
    if (liveness) {
      new Gauge({
        name: 'failover_watchdog_stale_loops',
        help: 'Agent loops past their deadline (0: every loop met it and WATCHDOG=1 pings go out; above 0 systemd restarts the agent after WatchdogSec).',
        registers,
        collect() {
          this.set(liveness().stale.length);
        },
      });
    }
    this.value('failover_active', 'Whether this site is active: the record names it and it holds a valid lease (0/1).', (s) =>
      bool(s.active),
    );
    new Gauge({
      name: 'failover_phase',
      help: 'The agent phase, one-hot: 1 for the current phase, 0 for the others.',
      labelNames: ['phase'],
      registers,
      collect() {
        const phase = self.status().phase;
        this.reset();
        for (const p of PHASES) this.set({ phase: p }, p === phase ? 1 : 0);
        if (!(PHASES as readonly string[]).includes(phase)) this.set({ phase }, 1);
      },
    });
    new Gauge({
      name: 'failover_lease_holder_info',
      help: 'Always 1; the holder label is the lease holder (primary, dr) as last read from the witness (absent without a valid lease).',
      labelNames: ['holder'],
      registers,
      collect() {
        const holder = self.status().lease.holder;
        this.reset();
        if (holder) this.set({ holder }, 1);
      },
    });
    this.value('failover_lease_epoch', 'Epoch of the lease as last read from the witness.', (s) => s.lease.epoch);
    this.value('failover_lease_seq', 'Sequence number of the lease as last read from the witness.', (s) => s.lease.seq);
    this.value(
      'failover_lease_unchanged_seconds',
      'Seconds the lease epoch/seq has been seen unchanged (on our clock).',
      (s) => s.lease.unchangedSeconds,
    );
    this.value(
      'failover_lease_own_age_seconds',
      'Seconds since the send of our last confirmed lease write, while we hold the lease.',
      (s) => s.lease.ownAgeSeconds,
    );
    this.value('failover_dns_read_age_seconds', 'Seconds since the last verified read of the witness.', (s) => s.dns.readAgeSeconds);
    this.value(
      'failover_dns_consecutive_failures',
      'DNS reads/writes that failed in a row (0 after a success).',
      (s) => s.dns.consecutiveFailures,
    );
    this.value(
      'failover_dns_clock_offset_seconds',
      'Clock offset of the DNS server relative to ours (server minus local), from TSIG.',
      (s) => s.dns.offsetSeconds,
    );
    this.value(
      'failover_health_consecutive_failures',
      'Failed health checks of the primary in a row (DR role only).',
      (s) => s.health.consecutiveFailures,
    );
    this.value(
      'failover_health_failure_threshold',
      'Consecutive health-check failures that allow a takeover (health.failures).',
      (s) => s.health.threshold,
    );
    this.total('failover_takeovers_total', 'Takeovers performed by this agent since it started.', (s) => s.takeovers);
    this.value(
      'failover_collector_desired_running',
      'Whether the agent wants the collector unit running (0/1; absent with collector.control = none).',
      (s) => (s.collector.desired === null ? null : bool(s.collector.desired === 'running')),
    );
    new Gauge({
      name: 'failover_collector_state',
      help: 'The collector unit state as last seen, one-hot (absent with collector.control = none).',
      labelNames: ['state'],
      registers,
      collect() {
        const state = self.status().collector.state;
        this.reset();
        if (state === null) return;
        for (const st of COLLECTOR_STATES) this.set({ state: st }, st === state ? 1 : 0);
        if (!(COLLECTOR_STATES as readonly string[]).includes(state)) this.set({ state }, 1);
      },
    });
    new Gauge({
      name: 'failover_last_decision_info',
      help: 'Always 1; the decision label is the last decision of the core (renew, monitor, takeover, ...).',
      labelNames: ['decision'],
      registers,
      collect() {
        const decision = self.status().decision;
        this.reset();
        this.set({ decision }, 1);
      },
    });
    this.value('failover_healthy', 'Whether /healthz answers 200 (0/1).', (s) => bool(s.healthy));

    // The job, not only the host: the collector judged, the pause, handovers.
    this.value('failover_paused', 'Whether a pause is in force at the witness (0/1): no automatic takeover or handover.', (s) => bool(s.job.pause !== null));
    this.value(
      'failover_paused_since_timestamp_seconds',
      'Unix time the pause in force began (absent while not paused).',
      (s) => (s.job.pause ? Date.parse(s.job.pause.since) / 1000 : null),
    );
    this.value('failover_collector_broken', "Whether this site's collector counts as broken (0/1): failed, restarting past collector.restart_limit, or its probe failing.", (s) =>
      bool(s.job.collectorBroken !== null),
    );
    this.value('failover_no_site_can_collect', "Whether this site's collector and the other site's are both broken (0/1): nothing moves.", (s) => bool(s.job.noSiteCanCollect));
    this.value('failover_peer_ready', 'Whether the other site answered that it could take the job (0/1; absent without a fresh answer).', (s) =>
      s.job.peer ? bool(s.job.peer.ready) : null,
    );
    new Counter({
      name: 'failover_handovers_total',
      help: 'Automatic handovers of the job to the other site made by this agent since it started, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        this.inc({ reason: 'collector-failed' }, self.status().job.handovers);
      },
    });

    // GSS-TSIG (absent with HMAC TSIG): a KDC outage shows before the context runs out.
    this.value(
      'failover_gss_context_expiry_timestamp_seconds',
      'Unix time the GSS-TSIG context stops being usable: its expiry, or when the server refused it (absent before the first context and with HMAC TSIG).',
      (s) => (s.gss?.expiresAt ? Date.parse(s.gss.expiresAt) / 1000 : null),
    );
    this.total(
      'failover_gss_renewal_failures_total',
      'GSS-TSIG context negotiations that failed (renewal with the KDC down, after expiry, after a refusal, the first) since the agent started.',
      (s) => s.gss?.renewalFailures ?? null,
    );

    // Propagation to the authoritative servers (absent before the first check): informational only.
    new Gauge({
      name: 'failover_dns_server_in_sync',
      help: 'Whether this authoritative server serves the record value written (0/1), by server (address:port).',
      labelNames: ['server'],
      registers,
      collect() {
        const p = self.status().propagation;
        this.reset();
        for (const s of p?.servers ?? []) this.set({ server: s.server }, bool(s.in_sync));
      },
    });
    this.value(
      'failover_dns_propagation_seconds',
      'Seconds from the last write of the record (or the read that saw a change) until every authoritative server served it (absent while one does not).',
      (s) => s.propagation?.propagation_seconds ?? null,
    );
    this.total(
      'failover_dns_propagation_late_total',
      'Authoritative servers found not serving the record value after dns.propagation_timeout, since the agent started.',
      (s) => s.propagation?.late_total ?? null,
    );

    // VM sync (absent when vmsync is disabled).
    const vm = <T>(read: (v: NonNullable<AgentStatus['vmsync']>) => T | null) => (s: AgentStatus) => (s.vmsync ? read(s.vmsync) : null);
    this.value('failover_vmsync_ranges_found', 'Gap ranges found by the last VM sync check.', vm((v) => v.ranges_found.length));
    this.total('failover_vmsync_samples_copied_total', 'Samples repaired into the local VM since the state file began.', vm((v) => v.samples_copied_total));
    this.total('failover_vmsync_samples_backfilled_total', 'Samples the active site pulled into its own VM from the passive one (backfill) since the agent started.', vm((v) => v.samples_backfilled_total));
    this.total('failover_vmsync_samples_exported_total', 'Samples the repairs and backfills exported since the agent started (a targeted export carries only the devices short).', vm((v) => v.samples_exported_total));
    this.total('failover_vmsync_errors_total', 'VM sync checks that failed since the state file began.', vm((v) => v.errors));
    this.value('failover_vmsync_consecutive_errors', 'VM sync checks that failed in a row (0 after a good one).', vm((v) => v.consecutive_errors));
    this.value('failover_vmsync_repair_duration_seconds', 'Duration of the last repair (export → import of every chunk, then force_flush).', vm((v) => (v.repair_duration_ms === null ? null : v.repair_duration_ms / 1000)));
    this.value('failover_vmsync_last_clean_check_timestamp_seconds', 'Unix time of the last clean check.', vm((v) => (v.last_clean_check ? Date.parse(v.last_clean_check) / 1000 : null)));
    this.value('failover_vmsync_consecutive_clean', 'Consecutive clean checks since the current failover.', vm((v) => v.consecutive_clean));
    this.value('failover_vmsync_failback_ready', 'FAILBACK READY (0/1).', vm((v) => bool(v.failback_ready)));
    this.value('failover_vmsync_detection_seconds', 'Wall time of the last detection (both sides).', vm((v) => (v.detection_ms === null ? null : v.detection_ms / 1000)));

    // Webhook deliveries (absent without notify.webhook): a broken alert channel must be visible.
    const webhook = opts.webhook;
    if (webhook) {
      new Counter({
        name: 'failover_webhook_notifications_total',
        help: 'Webhook notifications by outcome: sent, failed (after every attempt), dropped (queue full or closed).',
        labelNames: ['result'],
        registers,
        collect() {
          const st = webhook();
          this.reset();
          for (const result of WEBHOOK_RESULTS) this.inc({ result }, st[result]);
        },
      });
      new Gauge({
        name: 'failover_webhook_queued',
        help: 'Webhook notifications waiting to be delivered.',
        registers,
        collect() {
          this.set(webhook().queued);
        },
      });
    }

    if (opts.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
      for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
    }
  }

  // ---- events the engine reports ----------------------------------------------------------------

  /** One DNS request (read or update) took `seconds`, all attempts included. */
  dnsRequest(kind: DnsRequestKind, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.dnsDuration.observe({ kind }, seconds);
  }

  /** A DNS request failed with `code` (a DnsError code). */
  dnsError(code: string): void {
    this.dnsErrors.inc({ code: code || 'UNKNOWN' });
  }

  /** A CAS write finished: applied (ok), lost to a concurrent writer (conflict), or failed/unknown (error). */
  write(op: string, result: WriteResult): void {
    this.writes.inc({ op, result });
  }

  /** One health check of the other site finished. */
  healthCheck(ok: boolean): void {
    this.healthChecks.inc({ result: ok ? 'ok' : 'failed' });
  }

  // ---- rendering ---------------------------------------------------------------------------------

  /**
   * The Prometheus text exposition. Reads the status once for the whole scrape; rejects when the
   * status provider throws (the HTTP server answers 500).
   */
  async render(): Promise<{ contentType: string; body: string }> {
    const status = this.provider();
    let body: string;
    // Every collect() runs synchronously inside registry.metrics() before its first await, so the
    // snapshot is only ever seen by this scrape.
    this.scrapeStatus = status;
    try {
      const pending = this.registry.metrics();
      this.scrapeStatus = undefined;
      body = await pending;
    } finally {
      this.scrapeStatus = undefined;
    }
    return { contentType: this.registry.contentType, body };
  }

  private status(): AgentStatus {
    return this.scrapeStatus ?? this.provider();
  }

  /** An unlabelled counter whose running total the status holds; null leaves it absent. */
  private total(name: string, help: string, read: (s: AgentStatus) => number | null): void {
    this.fromStatus<Counter>(Counter, name, help, read, (c, v) => {
      c.reset();
      if (v > 0) c.inc(v);
    });
  }

  /** An unlabelled gauge read from the status; null (or a non-finite number) leaves it absent. */
  private value(name: string, help: string, read: (s: AgentStatus) => number | null): void {
    this.fromStatus<Gauge>(Gauge, name, help, read, (g, v) => g.set(v));
  }

  private fromStatus<M extends Counter | Gauge>(
    Kind: new (c: { name: string; help: string; registers: Registry[]; collect: (this: M) => void }) => M,
    name: string,
    help: string,
    read: (s: AgentStatus) => number | null,
    put: (m: M, v: number) => void,
  ): void {
    const self = this;
    new Kind({
      name,
      help,
      registers: [this.registry],
      collect() {
        const v = read(self.status());
        if (v === null || !Number.isFinite(v)) this.remove();
        else put(this, v);
      },
    });
  }
}

function bool(b: boolean): number {
  return b ? 1 : 0;
}

void _allPhases;
void _allStates;
