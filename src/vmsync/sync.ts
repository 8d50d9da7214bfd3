/**
 * VM sync (SPEC §6): find where one site's VictoriaMetrics has fewer samples than the other's,
 * repair it on the passive site, and gate failback on consecutive clean checks.
 *
 * The engine owns the timer: every `vmsync.interval` it calls `check(ctx)`, which runs ONE cycle
 * and never throws (failures land in the status and the state file), and reads `status()` for
 * /metrics, /healthz and failoverctl. Overlapping calls share the cycle in flight.
 *
 * One cycle:
 * 1. Direction. Passive site (DNS names the other site): source = remote VM, destination = the
 *    local VM, and it repairs. Active site: source = local, destination = remote, and it
 *    measures (the passive site's own agent does that repair); from the same counts it then
 *    backfills its OWN VM where the passive VM holds more (step 3b).
 * 2. Detection: per side ONE `query_range` of `sum(count_over_time({__name__!=""}[S]))`, step S,
 *    nocache=1, over the scan window (ranges.ts: from the earlier of the failover start and
 *    now - lookback, to the last settled bucket; windows over 24 h are split into several
 *    queries). A source with no sample at all in the window is an error (VM_SOURCE_EMPTY), never
 *    a clean check. Deficient buckets (destination < source) merge into ranges (start, end].
 *    For partial gaps a second query per side (`sum by (<device_label>)` per bucket, only over
 *    the ranges found where the destination has some samples: a full gap is every device) names
 *    the devices, and plan.ts decides each range's export: the short devices' series only when
 *    they explain the gap, else every series (full gap, label-less series short, too many
 *    devices, naming off or failed).
 * 3. Repair (passive only): every range's selectors, split at `max_chunk` and shared out among
 *    `concurrency` streams (plan.ts planCopies), are exported from the source
 *    (`/api/v1/export`, gzip passed through compressed; `/export/native` with format "native")
 *    and streamed straight into the destination's import: nothing is buffered, memory is flat in
 *    the size of the gap. A chunk that fails is retried as a whole (the import is idempotent when
 *    both VMs deduplicate alike: same -dedup.minScrapeInterval, which the bucket is a multiple of).
 *    The first chunk that still fails stops the repair; the next cycle finds what is left.
 *    Then `/internal/force_flush` on the destination (that is the repair, `repair_duration_ms`),
 *    and a re-detection of the repaired ranges, whose result is recorded
 *    (`last_repair_confirmed`, `remaining_after_repair`, `confirm_duration_ms`).
 * 3b. Backfill (active only): the buckets where the passive VM holds more than ours are copied
 *    remote → local the same way (no confirmation; the next check sees what is left). That is
 *    what a deposed primary scraped while cut off, which no collector will deliver here.
 * 4. Gate (pure: core/failback-gate.ts): a check is clean when it completed and found no range.
 *    FAILBACK READY after `clean_checks` consecutive clean checks since the failover began (a new
 *    lease epoch resets the count). The gate is live: a later gap or error withdraws it until the
 *    count is reached again.
 *
 * "Samples copied" is what detection measured, not what went over the wire: the sum of
 * (source - destination) over the buckets of the ranges whose copy completed. "Samples exported"
 * is what went: the source samples of the matched series over those ranges (an export carries
 * samples the destination already had too, which VM's deduplication then drops).
 *
 * Notifications (when a Webhook is given): gap_found (when a range starts that the previous
 * check did not report: a gap that merely grows is not re-announced),
 * repair_done, failback_ready (on the transition), repeated_errors (at the 3rd consecutive failed
 * check, then every 30th). failover/failback are the engine's to send on the same Webhook.
 */
import { sleep, systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { FailbackGate } from '../core/admin.js';
import { gateAfterCheck, gateForFailover, gateVerdict } from '../core/failback-gate.js';
import { AgentError, ExitCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Webhook } from './notify.js';
import { planCopies, planExports, type Copy, type GroupCounts, type Naming, type PlanReason, type RangePlan } from './plan.js';
import {
  gapRanges,
  inRanges,
  queryWindows,
  scanWindow,
  type BucketWindow,
  type GapRange,
} from './ranges.js';
import { emptyState, fileStateStore, type ErrorRecord, type RangeRecord, type VmSyncState, type VmSyncStateStore } from './state.js';
import { VmClient, VmError, type VmClientOptions, type VmFormat, type VmPort } from './vm-client.js';

export type VmSyncConfig = Config['vmsync'];

export interface VmSyncOptions {
  config: VmSyncConfig;
  /** The state file's directory (`<stateDir>/vmsync.json`), unless `store` is given. */
  stateDir: string;
  /** Where the state lives instead of the file (the simulator: memory that outlives a crash). */
  store?: VmSyncStateStore;
  logger: Logger;
  webhook?: Webhook | null;
  /** The clock: the scan window and stamps (wallMs: tests pin it), durations (monotonicMs), waits; default the system clock. */
  clock?: Clock;
  /** Shown in notifications ("VM sync (dr): ..."), e.g. the instance name. */
  site?: string;
  /** Per HTTP request to a VM (connect, answer headers, body stalls). Default 60 s. */
  timeoutMs?: number;
  /** Extra attempts of a query, and of a chunk's export→import. Default 2. */
  retries?: number;
  /** First backoff between attempts (doubles). Default 500 ms. */
  backoffMs?: number;
  /** Pauses before re-detecting a repair that still looks short. Default [1000, 2000, 4000, 8000] (≤ 15 s in all). */
  confirmDelaysMs?: number[];
  /** Makes the client of one VM (default a VmClient): a benchmark's timing wrapper, a fake. */
  vmClient?: (baseUrl: string, opts: VmClientOptions) => VmPort;
}

export interface CheckContext {
  /** DNS names the other site: this site repairs its local VM from the remote one. */
  passive: boolean;
  /** The current failover (lease epoch and its start, unix SECONDS), or null when none is known. */
  failover: { epoch: number; since: number } | null;
}

/** What detection found: the gaps (and their records), both sides' counts per bucket, and each gap's export plan. */
interface Detection {
  ranges: GapRange[];
  records: RangeRecord[];
  srcBuckets: Map<number, number>;
  dstBuckets: Map<number, number>;
  plans: RangePlan[];
}

/** What one range's export carried (report and status): which series, why, and how many samples. */
export interface ExportRecord {
  start: string;
  end: string;
  /** "devices": only the series of `devices`; "all": every series (see `reason`). */
  match: 'devices' | 'all';
  reason: PlanReason;
  /** The devices exported (at most 20 listed; `device_count` has them all); absent for "all". */
  devices?: string[];
  device_count: number;
  /** Export requests per chunk (device batches; 1 for "all"). */
  batches: number;
  /** Source samples the export carried (detection's counts), whether or not the destination had them. */
  samples: number;
}

export interface SyncReport {
  /** The cycle completed (detection, and repair when passive) without error. */
  ok: boolean;
  /** Set when the cycle did nothing (e.g. "disabled"). */
  skipped?: string;
  role: 'passive' | 'active';
  /** Completed and found nothing. */
  clean: boolean;
  /** Scanned buckets: data in (start - bucket, end], ISO. */
  window: { start: string; end: string } | null;
  ranges_found: RangeRecord[];
  ranges_repaired: RangeRecord[];
  samples_copied: number;
  /** Active site: what it pulled into its own VM because the passive site's VM had it and its own did not (backfill). */
  ranges_backfilled: RangeRecord[];
  samples_backfilled: number;
  /**
   * What the copy of this check (repair, or the active site's backfill) exported per range: the
   * named devices' series only, or every series and why. Empty when nothing was copied.
   */
  exports: ExportRecord[];
  /** Source samples those exports carried (the matched series over the ranges copied). */
  samples_exported: number;
  /** After a repair: whether re-detection found the repaired ranges complete; null without repair. */
  confirmed: boolean | null;
  remaining: RangeRecord[];
  consecutive_clean: number;
  failback_ready: boolean;
  error: ErrorRecord | null;
  duration_ms: number;
}

/** Everything the engine shows: the persisted state plus figures of the last cycle. JSON-safe. */
export interface VmSyncStatus extends VmSyncState {
  enabled: boolean;
  /** A cycle is running now. */
  running: boolean;
  clean_checks_needed: number;
  source_url: string | null;
  destination_url: string | null;
  last_check_duration_ms: number | null;
  /** Range queries the last detection made (both sides, naming included) and their wall time. */
  detection_queries: number;
  detection_ms: number | null;
  /** Wall time of the last repair: export → import of every chunk, then force_flush; null if none yet. */
  repair_duration_ms: number | null;
  /** Wall time of the re-detection that confirmed (or not) the last repair; null if none yet. */
  confirm_duration_ms: number | null;
  /** Range queries the last repair's confirmation made (both sides, every re-detection). */
  confirm_queries: number;
  /** Bytes streamed by the last repair (compressed when gzip). */
  bytes_copied_last: number;
  last_repair_confirmed: boolean | null;
  remaining_after_repair: RangeRecord[];
  /** Re-detections the last confirmation took (more than 1 when VM was slow to show the data). */
  confirm_checks: number;
  /** Active site: samples its last check pulled in from the passive site's VM, and since start (backfill). */
  samples_backfilled_last: number;
  samples_backfilled_total: number;
  /** The last copy's exports per range (devices targeted or every series, and why) and the samples they carried. */
  exports_last: ExportRecord[];
  samples_exported_last: number;
  samples_exported_total: number;
}

const QUERY = (bucketMs: number) => `sum(count_over_time({__name__!=""}[${bucketMs / 1000}s]))`;
const BY_QUERY = (label: string, bucketMs: number) => `sum by (${label}) (count_over_time({__name__!=""}[${bucketMs / 1000}s]))`;
const MAX_NAMED_RANGES = 10;
const MAX_NAMES = 20;
const REPEATED_ERRORS_AT = 3;
const REPEATED_ERRORS_EVERY = 30;

export class VmSync {
  private readonly config: VmSyncConfig;
  private readonly stateDir: string;
  private readonly store: VmSyncStateStore;
  private readonly logger: Logger;
  private readonly webhook: Webhook | null;
  private readonly clock: Clock;
  private readonly site: string;
  private readonly nameLabel: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly confirmDelaysMs: number[];

  private state: VmSyncState = emptyState();
  private loaded: Promise<void> | null = null;
  private running: Promise<SyncReport> | null = null;
  private clients: { local: VmPort; remote: VmPort } | null = null;
  private readonly vmClient: (baseUrl: string, opts: VmClientOptions) => VmPort;
  /** Whole ms since `t0` (monotonicMs). */
  private readonly elapsed: (t0: number) => number;
  private lastGapStarts = new Set<string>();
  private figures = {
    source_url: null as string | null,
    destination_url: null as string | null,
    last_check_duration_ms: null as number | null,
    detection_queries: 0,
    confirm_queries: 0,
    detection_ms: null as number | null,
    repair_duration_ms: null as number | null,
    confirm_duration_ms: null as number | null,
    bytes_copied_last: 0,
    last_repair_confirmed: null as boolean | null,
    remaining_after_repair: [] as RangeRecord[],
    confirm_checks: 0,
    samples_backfilled_last: 0,
    samples_backfilled_total: 0,
    exports_last: [] as ExportRecord[],
    samples_exported_last: 0,
    samples_exported_total: 0,
  };

  constructor(opts: VmSyncOptions) {
    this.config = opts.config;
    this.stateDir = opts.stateDir;
    this.store = opts.store ?? fileStateStore(opts.stateDir);
    this.logger = opts.logger;
    this.webhook = opts.webhook ?? null;
    this.clock = opts.clock ?? systemClock;
    this.site = opts.site ?? '';
    this.nameLabel = opts.config.device_label;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.retries = opts.retries ?? 2;
    this.backoffMs = opts.backoffMs ?? 500;
    this.confirmDelaysMs = opts.confirmDelaysMs ?? [1_000, 2_000, 4_000, 8_000];
    this.vmClient = opts.vmClient ?? ((url, o) => new VmClient(url, o));
    this.elapsed = (t0) => Math.round(this.clock.monotonicMs() - t0);
  }

  /** Reads the state file once (check() does it too); call it at startup so status() shows the file. Never throws. */
  load(): Promise<void> {
    this.loaded ??= this.store.load(this.logger).then((s) => {
      this.state = s;
    });
    return this.loaded;
  }

  /** Closes the HTTP connection pools (the Webhook is the caller's to close). */
  async close(): Promise<void> {
    await this.running?.catch(() => {});
    const c = this.clients;
    this.clients = null;
    await Promise.all([c?.local.close(), c?.remote.close()]);
  }

  /**
   * A snapshot for /healthz, /metrics and failoverctl (asked on every peer probe). Shallow: the
   * cycle never changes a nested value in place, it assigns new ones, so the snapshot's arrays
   * stay as they were; readers must not change them either.
   */
  status(): VmSyncStatus {
    return {
      ...this.state,
      enabled: this.config.enabled,
      running: this.running !== null,
      clean_checks_needed: this.config.clean_checks,
      ...this.figures,
    };
  }

  /** The gate for the failover whose lease epoch is `currentEpoch` (the witness's, as last read). */
  failbackGate(currentEpoch?: number | null): FailbackGate {
    return gateVerdict(this.state, this.config.clean_checks, currentEpoch);
  }

  /** Runs one cycle (see the file comment). Never rejects. */
  check(ctx: CheckContext): Promise<SyncReport> {
    if (this.running) return this.running;
    const run = this.cycle(ctx)
      .catch((err: unknown): SyncReport => {
        // cycle() handles its own failures; this is a last resort against bugs.
        this.logger.error('vmsync cycle crashed', { error: err as Error });
        return { ...this.blankReport(ctx.passive ? 'passive' : 'active'), error: errorRecord(err, this.nowIso()) };
      })
      .finally(() => {
        this.running = null;
      });
    this.running = run;
    return run;
  }

  // -------------------------------------------------------------------------------------------

  /**
   * One cycle, in its steps: the failover it counts for, detection, repair and its confirmation
   * (passive only), then the check recorded (the gate: core/failback-gate.ts), announced and persisted.
   */
  private async cycle(ctx: CheckContext): Promise<SyncReport> {
    const role = ctx.passive ? 'passive' : 'active';
    if (!this.config.enabled) return { ...this.blankReport(role), skipped: 'disabled' };
    await this.load();
    const t0 = this.clock.monotonicMs();
    this.applyFailover(ctx.failover);

    const { local, remote } = this.vmClients();
    const src = ctx.passive ? remote : local;
    const dst = ctx.passive ? local : remote;
    this.figures.source_url = src.baseUrl;
    this.figures.destination_url = ctx.passive ? dst.writeUrl : dst.baseUrl;

    const report = this.blankReport(role);
    let failure: unknown;
    try {
      const found = await this.detection(ctx, role, src, dst, report);
      if (!found) return { ...report, skipped: 'nothing has settled in the scan window yet' };
      if (ctx.passive && found.ranges.length > 0) {
        await this.repairAndConfirm(src, dst, found, report);
      } else {
        this.state.ranges_repaired = [];
        this.state.samples_copied_last = 0;
        if (ctx.passive) this.recordExports(report, [], []);
      }
      if (!ctx.passive) await this.backfill(remote, local, found, report);
      report.clean = found.ranges.length === 0;
      report.ok = true;
    } catch (err) {
      failure = err;
    }

    const change = this.recordCheck(report, role, failure);
    this.announce(report, role, failure, change);
    report.duration_ms = this.elapsed(t0);
    this.figures.last_check_duration_ms = report.duration_ms;
    await this.persist();
    this.logger.info('vmsync check', {
      event: 'vmsync_check',
      role,
      ok: report.ok,
      clean: report.clean,
      ranges: report.ranges_found.length,
      copied: report.samples_copied,
      consecutive_clean: this.state.consecutive_clean,
      failback_ready: this.state.failback_ready,
      ms: report.duration_ms,
    });
    return report;
  }

  /** A new failover (another lease epoch) resets the gate; the same one keeps its earliest start. */
  private applyFailover(fo: CheckContext['failover']): void {
    const { gate, reset } = gateForFailover(this.state, fo);
    this.state = gate;
    if (!reset) return;
    if (reset.previous !== null) this.logger.info('vmsync: new failover, failback gate reset', { event: 'vmsync_gate_reset', epoch: fo?.epoch, previous: reset.previous });
    this.lastGapStarts = new Set();
  }

  /**
   * Detection: the scan window, both sides' counts per bucket, the gaps (devices named for a
   * partial one), recorded and announced; null when nothing has settled in the window yet.
   */
  private async detection(ctx: CheckContext, role: 'passive' | 'active', src: VmPort, dst: VmPort, report: SyncReport): Promise<Detection | null> {
    const st = this.state;
    const bucket = this.config.bucket;
    const win = scanWindow(this.clock.wallMs(), this.config.settle, bucket, {
      since: ctx.failover && st.failover ? Date.parse(st.failover.since) : null,
      lookback: this.config.lookback,
    });
    if (!win) return null;
    report.window = { start: iso(win.start - bucket), end: iso(win.end) };
    const d0 = this.clock.monotonicMs();
    this.figures.detection_queries = 0;
    const { srcBuckets, dstBuckets, srcTotal } = await this.detect(src, dst, win, () => this.figures.detection_queries++);
    if (srcTotal === 0) {
      throw new AgentError(
        'VM_SOURCE_EMPTY',
        `the source VM (${src.baseUrl}) has no samples at all from ${report.window.start} to ${report.window.end}: refusing to call that clean (wrong URL, wiped or empty VM?)`,
        ExitCode.UNAVAILABLE,
      );
    }
    const ranges = gapRanges(srcBuckets, dstBuckets, bucket);
    const plans = await this.planFor(src, dst, ranges, srcBuckets, dstBuckets);
    const records = ranges.map((r, i) => withDevices(toRecord(r), plans[i]));
    this.figures.detection_ms = this.elapsed(d0);
    report.ranges_found = records;
    st.ranges_found = records;
    if (ranges.length > 0) this.reportGaps(role, records, dst);
    else this.lastGapStarts = new Set();
    return { ranges, records, srcBuckets, dstBuckets, plans };
  }

  /** Names the devices of the ranges (src → dst) and plans each range's export (plan.ts). */
  private async planFor(src: VmPort, dst: VmPort, ranges: GapRange[], srcBuckets: Map<number, number>, dstBuckets: Map<number, number>): Promise<RangePlan[]> {
    if (ranges.length === 0) return [];
    const namings = await this.nameDevices(src, dst, ranges, dstBuckets);
    return planExports(
      ranges.map((range, i) => ({ range, naming: namings[i], srcTotals: srcBuckets, dstTotals: dstBuckets })),
      this.nameLabel,
      this.config.bucket,
    );
  }

  /**
   * Repair (passive, gaps found): copy every range, then re-detect what was copied. What the copy
   * did is recorded even when it failed part way; that failure is then thrown (the check failed).
   */
  private async repairAndConfirm(src: VmPort, dst: VmPort, found: Detection, report: SyncReport): Promise<void> {
    const st = this.state;
    const { ranges, records, srcBuckets, plans } = found;
    let repairedRanges: GapRange[];
    let failure: unknown;
    const r0 = this.clock.monotonicMs();
    try {
      repairedRanges = await this.repair(src, dst, plans);
    } catch (err) {
      repairedRanges = (err as RepairError).repaired ?? [];
      failure = (err as RepairError).cause ?? err;
    }
    this.recordExports(report, plans, repairedRanges);
    const repairedRecords = records.filter((_, i) => repairedRanges.includes(ranges[i]));
    this.figures.repair_duration_ms = this.elapsed(r0);
    const copied = repairedRanges.reduce((n, r) => n + r.missing, 0);
    report.ranges_repaired = repairedRecords;
    report.samples_copied = copied;
    st.ranges_repaired = repairedRecords;
    st.samples_copied_last = copied;
    st.samples_copied_total += copied;
    if (repairedRanges.length > 0) {
      const bucket = this.config.bucket;
      let expected = 0;
      for (const [t, v] of srcBuckets) if (inRanges(t, repairedRanges, bucket)) expected += v;
      const c0 = this.clock.monotonicMs();
      const confirm = await this.confirm(src, dst, repairedRanges, expected, failure === undefined);
      this.figures.confirm_duration_ms = this.elapsed(c0);
      report.confirmed = confirm.remaining.length === 0;
      report.remaining = confirm.remaining;
      this.figures.last_repair_confirmed = report.confirmed;
      this.figures.remaining_after_repair = confirm.remaining;
      this.reportRepair(report, this.figures.repair_duration_ms);
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Backfill (active site): the buckets where the passive site's VM holds MORE than ours are
   * pulled into ours, from the same counts detection read. Without it, what a deposed primary
   * scraped while cut off (in its own VM; its collector, stopped on demotion, never delivered it
   * here) would reach the active site only after a failback (the fault matrix found this). The
   * gate stays about the passive side; a failed backfill fails the check like a failed repair.
   */
  private async backfill(remote: VmPort, local: VmPort, found: Detection, report: SyncReport): Promise<void> {
    // active: src = local, dst = remote; the backfill's source is the remote side
    const ranges = gapRanges(found.dstBuckets, found.srcBuckets, this.config.bucket);
    this.figures.samples_backfilled_last = 0;
    this.recordExports(report, [], []);
    if (ranges.length === 0) return;
    // The same device targeting as the repair, with the sides swapped (naming queries count as detection's).
    const plans = await this.planFor(remote, local, ranges, found.dstBuckets, found.srcBuckets);
    const records = ranges.map((r, i) => withDevices(toRecord(r), plans[i]));
    this.logger.notice('vmsync: the passive site holds samples ours lacks; pulling them', { event: 'vmsync_backfill', ranges: records.length, missing: ranges.reduce((n, r) => n + r.missing, 0) });
    let done: GapRange[];
    try {
      done = await this.repair(remote, local, plans);
    } catch (err) {
      this.recordExports(report, plans, (err as RepairError).repaired ?? []);
      throw (err as RepairError).cause ?? err;
    }
    this.recordExports(report, plans, done);
    const copied = done.reduce((n, r) => n + r.missing, 0);
    report.ranges_backfilled = records.filter((_, i) => done.includes(ranges[i]));
    report.samples_backfilled = copied;
    this.figures.samples_backfilled_last = copied;
    this.figures.samples_backfilled_total += copied;
  }

  /** The check's outcome into the state: counters, the last error, and the gate's count (pure). */
  private recordCheck(report: SyncReport, role: 'passive' | 'active', failure: unknown): 'ready' | 'withdrawn' | null {
    const st = this.state;
    const at = this.nowIso();
    st.checks++;
    st.last_check = at;
    st.last_role = role;
    if (failure !== undefined) {
      report.ok = false;
      report.clean = false;
      report.error = errorRecord(failure, at);
      st.last_check_ok = false;
      st.errors++;
      st.consecutive_errors++;
      st.last_error = report.error;
    } else {
      st.last_check_ok = true;
      st.consecutive_errors = 0;
    }
    const { gate, change } = gateAfterCheck(st, failure !== undefined ? 'error' : report.clean ? 'clean' : 'gap', at, this.config.clean_checks);
    this.state = gate;
    report.consecutive_clean = gate.consecutive_clean;
    report.failback_ready = gate.failback_ready;
    return change;
  }

  /** Logs and notifications of a check: its failure (repeated failures notified), the gate reached or withdrawn. */
  private announce(report: SyncReport, role: 'passive' | 'active', failure: unknown, change: 'ready' | 'withdrawn' | null): void {
    const st = this.state;
    if (failure !== undefined) {
      this.logger.warning('vmsync check failed', { event: 'vmsync_error', role, error: failure as Error, consecutive: st.consecutive_errors });
      const n = st.consecutive_errors;
      if (n === REPEATED_ERRORS_AT || (n > REPEATED_ERRORS_AT && (n - REPEATED_ERRORS_AT) % REPEATED_ERRORS_EVERY === 0)) {
        this.notify('repeated_errors', `${n} consecutive VM sync checks failed; last error: ${report.error?.code}: ${report.error?.message}`);
      }
    }
    if (change === 'ready') {
      const fo = st.failover ? ` for failover epoch ${st.failover.epoch} (since ${st.failover.since})` : '';
      this.logger.notice('vmsync FAILBACK READY', { event: 'vmsync_failback_ready', consecutive_clean: st.consecutive_clean, epoch: st.failover?.epoch });
      this.notify('failback_ready', `FAILBACK READY${fo}: ${st.consecutive_clean} consecutive clean checks, both VMs hold the same samples. Run \`failoverctl failback\` when you are ready.`);
    } else if (change === 'withdrawn') {
      this.logger.warning('vmsync failback readiness withdrawn', { event: 'vmsync_failback_unready', reason: failure !== undefined ? 'error' : 'gap' });
    }
  }

  /** The state file, atomically; a failure is logged (the next cycle writes again). */
  private async persist(): Promise<void> {
    try {
      await this.store.save(this.state);
    } catch (err) {
      this.logger.error('vmsync state could not be written', { event: 'vmsync_state_error', dir: this.stateDir, error: err as Error });
    }
  }

  private vmClients(): { local: VmPort; remote: VmPort } {
    if (!this.clients) {
      const common = { timeoutMs: this.timeoutMs, retries: this.retries, logger: this.logger, backoffMs: this.backoffMs, clock: this.clock };
      this.clients = {
        local: this.vmClient(this.config.local_url, { ...common, writeUrl: this.config.local_write_url || this.config.local_url }),
        remote: this.vmClient(this.config.remote_url, common),
      };
    }
    return this.clients;
  }

  /** Bucket counts of both sides over `win` (≤ 24 h per query, both sides in parallel); `tally` is called per query. */
  private async detect(
    src: VmPort,
    dst: VmPort,
    win: BucketWindow,
    tally: () => void,
  ): Promise<{ srcBuckets: Map<number, number>; dstBuckets: Map<number, number>; srcTotal: number }> {
    const bucket = this.config.bucket;
    const srcBuckets = new Map<number, number>();
    const dstBuckets = new Map<number, number>();
    for (const w of queryWindows(win, bucket)) {
      tally();
      tally();
      const [s, d] = await Promise.all([this.counts(src, QUERY(bucket), w), this.counts(dst, QUERY(bucket), w)]);
      for (const [t, v] of s) srcBuckets.set(t, v);
      for (const [t, v] of d) dstBuckets.set(t, v);
    }
    let srcTotal = 0;
    for (const v of srcBuckets.values()) srcTotal += v;
    return { srcBuckets, dstBuckets, srcTotal };
  }

  /** One query → bucket → value (series summed), checking the answer's timestamps are our buckets. */
  private async counts(vm: VmPort, query: string, w: BucketWindow): Promise<Map<number, number>> {
    const series = await vm.queryRange(query, w.start, w.end, this.config.bucket);
    const out = new Map<number, number>();
    for (const s of series) {
      for (const [t, v] of s.values) {
        if (t % this.config.bucket !== 0 || t < w.start || t > w.end) {
          throw new VmError('VM_BAD_RESPONSE', `${vm.baseUrl}: query_range answered a point at ${t} ms, not one of the buckets asked for`);
        }
        out.set(t, (out.get(t) ?? 0) + v);
      }
    }
    return out;
  }

  /**
   * What each range's devices are (plan.ts `Naming`): for a partial gap, `sum by (<label>)` per
   * bucket on both sides (one query per side and ≤ 24 h window, for the first MAX_NAMED_RANGES
   * ranges). A range where the destination has no sample at all is a full gap: no query. A failed
   * query only logs: the ranges not named yet export every series.
   */
  private async nameDevices(src: VmPort, dst: VmPort, ranges: GapRange[], dstBuckets: Map<number, number>): Promise<Naming[]> {
    const bucket = this.config.bucket;
    const out: Naming[] = ranges.map(() => ({ kind: 'unnamed', reason: this.nameLabel === '' ? 'naming_off' : 'not_named' }));
    for (const [i, r] of ranges.entries()) {
      let dstInRange = 0;
      for (const [t, v] of dstBuckets) if (inRanges(t, [r], bucket)) dstInRange += v;
      if (dstInRange === 0) out[i] = { kind: 'full' };
    }
    if (this.nameLabel === '') return out;
    const q = BY_QUERY(this.nameLabel, bucket);
    let named = 0;
    for (const [i, r] of ranges.entries()) {
      if (out[i].kind === 'full' || named >= MAX_NAMED_RANGES) continue;
      named++;
      try {
        const counts = { src: new Map<string, Map<number, number>>(), dst: new Map<string, Map<number, number>>() };
        for (const w of queryWindows({ start: r.start + bucket, end: r.end }, bucket)) {
          this.figures.detection_queries += 2;
          const [s, d] = await Promise.all([src.queryRange(q, w.start, w.end, bucket), dst.queryRange(q, w.start, w.end, bucket)]);
          for (const [side, res] of [['src', s], ['dst', d]] as const) {
            for (const series of res) {
              const name = series.metric[this.nameLabel] ?? '';
              const m = counts[side].get(name) ?? new Map<number, number>();
              for (const [t, v] of series.values) m.set(t, (m.get(t) ?? 0) + v);
              counts[side].set(name, m);
            }
          }
        }
        out[i] = { kind: 'named', src: counts.src as GroupCounts, dst: counts.dst as GroupCounts };
      } catch (err) {
        this.logger.info('vmsync: could not name the devices of a gap; its repair exports every series', { error: err as Error });
        for (let j = i; j < ranges.length; j++) if (out[j].kind !== 'full') out[j] = { kind: 'unnamed', reason: 'naming_failed' };
        break;
      }
    }
    return out;
  }

  /** The exports of the plans whose ranges were copied, into the report and the figures. */
  private recordExports(report: SyncReport, plans: RangePlan[], copied: GapRange[]): void {
    const done = plans.filter((p) => copied.includes(p.range));
    report.exports = done.map(exportRecord);
    report.samples_exported = done.reduce((n, p) => n + p.samples, 0);
    this.figures.exports_last = report.exports;
    this.figures.samples_exported_last = report.samples_exported;
    this.figures.samples_exported_total += report.samples_exported;
  }

  /**
   * Export → import every plan; resolves to the ranges fully copied, or rejects with RepairError.
   * Up to `concurrency` chunk streams run at once (each one export → import of one selector,
   * streamed), and a large range exported whole is cut into `concurrency` pieces (plan.ts
   * planCopies) so that they share it: for long network paths, where one TCP stream is
   * window-bound. After the first chunk that still fails no new chunk starts; the ones in flight
   * finish, and the ranges whose every chunk arrived count as copied.
   */
  private async repair(src: VmPort, dst: VmPort, plans: RangePlan[]): Promise<GapRange[]> {
    const format: VmFormat = this.config.format;
    const ranges = plans.map((p) => p.range);
    const chunks = planCopies(plans, this.config.max_chunk, this.config.concurrency, this.config.bucket);
    const left = new Map(ranges.map((r) => [r, 0]));
    for (const c of chunks) left.set(c.range, left.get(c.range)! + 1);
    const rangeBytes = new Map<GapRange, number>();
    const done: GapRange[] = [];
    let bytes = 0;
    let imported = false;
    let failure: { err: unknown } | undefined;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < chunks.length) {
        const c = chunks[next++];
        try {
          const n = await this.copyChunk(src, dst, c, format);
          imported = true;
          bytes += n;
          rangeBytes.set(c.range, (rangeBytes.get(c.range) ?? 0) + n);
          left.set(c.range, left.get(c.range)! - 1);
          if (left.get(c.range) === 0) {
            done.push(c.range);
            this.logger.info('vmsync: range copied', {
              event: 'vmsync_range_copied',
              start: iso(c.range.start),
              end: iso(c.range.end),
              missing: c.range.missing,
              bytes: rangeBytes.get(c.range),
            });
          }
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.concurrency, chunks.length) }, worker));
    done.sort((a, b) => a.start - b.start);
    this.figures.bytes_copied_last = bytes;
    if (failure !== undefined) {
      if (imported) await dst.forceFlush().catch(() => false);
      throw new RepairError(failure.err, done);
    }
    const flushed = await dst.forceFlush().catch((err: unknown) => {
      this.logger.warning('vmsync: force_flush failed (data becomes searchable within seconds anyway)', { error: err as Error });
      return false;
    });
    if (!flushed) await sleep(this.clock, 2_000); // VM cluster: vmstorage flushes on its own about every second
    return done;
  }

  /** One chunk, retried as a whole. Resolves to the bytes streamed by the attempt that worked. */
  private async copyChunk(src: VmPort, dst: VmPort, chunk: Copy, format: VmFormat): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      try {
        const body = await src.exportStream(chunk.match, chunk.start, chunk.end, format);
        const { bytes } = await dst.import(body, format);
        return bytes;
      } catch (err) {
        const retryable = (err as { retryable?: boolean }).retryable !== false;
        if (!retryable || attempt >= this.retries) throw err;
        const wait = this.backoffMs * 2 ** attempt;
        this.logger.info('vmsync: chunk copy failed, retrying it whole', {
          start: iso(chunk.start),
          end: iso(chunk.end),
          attempt: attempt + 1,
          error: err as Error,
          wait_ms: wait,
        });
        await sleep(this.clock, wait);
      }
    }
  }

  /**
   * Re-detect the repaired ranges to confirm the copy; what is still short is returned (and
   * logged). VictoriaMetrics 1.79 does not always show just-imported samples to queries at once,
   * even after /internal/force_flush: in 1.79.5 force_flush does not wait for rows its own
   * once-a-second background flush has already taken, and in tests here part of a repair stayed
   * invisible for up to ~10 s now and then (then appeared, complete). So a re-detection that still
   * finds the ranges short is repeated after each of `confirmDelaysMs` (default 1, 2, 4, 8 s)
   * before the repair is recorded as unconfirmed. A first look that confirms costs one query per
   * side. An unconfirmed repair is not an error: the next cycle's detection decides.
   */
  private async confirm(
    src: VmPort,
    dst: VmPort,
    repaired: GapRange[],
    /** Source samples detection counted in the repaired ranges: a source showing fewer now cannot confirm anything. */
    expectedSrc: number,
    complete: boolean,
  ): Promise<{ remaining: RangeRecord[] }> {
    const bucket = this.config.bucket;
    const span: BucketWindow = { start: repaired[0].start + bucket, end: repaired[repaired.length - 1].end };
    const inside = (m: Map<number, number>) => new Map([...m].filter(([t]) => inRanges(t, repaired, bucket)));
    let remaining: RangeRecord[] = repaired.map(toRecord);
    this.figures.confirm_checks = 0;
    this.figures.confirm_queries = 0;
    for (let i = 0; ; i++) {
      try {
        this.figures.confirm_checks++;
        const { srcBuckets, dstBuckets } = await this.detect(src, dst, span, () => this.figures.confirm_queries++);
        remaining = gapRanges(inside(srcBuckets), inside(dstBuckets), bucket).map(toRecord);
        const total = (m: Map<number, number>) => [...inside(m).values()].reduce((n, v) => n + v, 0);
        const srcNow = total(srcBuckets);
        this.logger.debug('vmsync: confirmation', { check: i + 1, source: srcNow, expected_source: expectedSrc, destination: total(dstBuckets), short: remaining.length });
        if (srcNow < expectedSrc && remaining.length === 0) {
          // The source shows less than it did a moment ago: no basis for a confirmation yet.
          remaining = repaired.map(toRecord);
        }
      } catch (err) {
        if (complete) this.logger.warning('vmsync: could not re-check the repaired ranges', { error: err as Error });
        return { remaining };
      }
      if (remaining.length === 0 || i >= this.confirmDelaysMs.length) break;
      await sleep(this.clock, this.confirmDelaysMs[i]);
    }
    if (remaining.length > 0) {
      this.logger.warning('vmsync: repaired ranges are still short after the copy', {
        event: 'vmsync_repair_unconfirmed',
        ranges: remaining.length,
        missing: remaining.reduce((n, r) => n + r.missing, 0),
        checks: this.figures.confirm_checks,
      });
    } else if (this.figures.confirm_checks > 1) {
      this.logger.info('vmsync: repair confirmed after VM made the data searchable', { checks: this.figures.confirm_checks });
    }
    return { remaining };
  }

  private reportGaps(role: 'passive' | 'active', records: RangeRecord[], dst: VmPort): void {
    const missing = records.reduce((n, r) => n + r.missing, 0);
    this.logger.notice('vmsync: gaps found', { event: 'vmsync_gap', role, ranges: records.length, missing, first: records[0]?.start });
    // A range that only grows at its end (the other VM still down) is not news: key on the starts.
    const seen = this.lastGapStarts;
    this.lastGapStarts = new Set(records.map((r) => r.start));
    if (records.every((r) => seen.has(r.start))) return;
    const where = role === 'passive' ? 'the local VM' : `the other site's VM (${dst.baseUrl})`;
    const what = role === 'passive' ? 'repairing from the active site' : 'the passive site repairs them';
    this.notify('gap_found', `${records.length} gap(s) in ${where}, ${missing} samples missing; ${what}:\n${describeRanges(records)}`);
  }

  private reportRepair(report: SyncReport, ms: number): void {
    const n = report.ranges_repaired.length;
    const state = report.confirmed ? 'confirmed complete' : `NOT confirmed: ${report.remaining.length} range(s) still short`;
    this.logger.notice('vmsync: repair done', {
      event: 'vmsync_repair',
      ranges: n,
      copied: report.samples_copied,
      ms,
      confirmed: report.confirmed,
    });
    this.notify('repair_done', `repair done: ${n} range(s), ${report.samples_copied} samples copied in ${(ms / 1000).toFixed(1)} s (${state}).`);
  }

  private notify(event: string, text: string): void {
    if (!this.webhook) return;
    this.webhook.send(event, `VM sync${this.site ? ` (${this.site})` : ''}: ${text}`);
  }

  private blankReport(role: 'passive' | 'active'): SyncReport {
    return {
      ok: false,
      role,
      clean: false,
      window: null,
      ranges_found: [],
      ranges_repaired: [],
      ranges_backfilled: [],
      samples_backfilled: 0,
      exports: [],
      samples_exported: 0,
      samples_copied: 0,
      confirmed: null,
      remaining: [],
      consecutive_clean: this.state.consecutive_clean,
      failback_ready: this.state.failback_ready,
      error: null,
      duration_ms: 0,
    };
  }

  private nowIso(): string {
    return iso(this.clock.wallMs());
  }
}

class RepairError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly repaired: GapRange[],
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

function toRecord(r: GapRange): RangeRecord {
  return { start: iso(r.start), end: iso(r.end), missing: r.missing };
}

/** A range's record names its devices when its export targets some of them (not every one the source has). */
function withDevices(rec: RangeRecord, plan: RangePlan): RangeRecord {
  if (plan.devices && plan.devices.length < plan.deviceTotal) rec.instances = plan.devices.slice(0, MAX_NAMES);
  return rec;
}

function exportRecord(p: RangePlan): ExportRecord {
  return {
    start: iso(p.range.start),
    end: iso(p.range.end),
    match: p.devices ? 'devices' : 'all',
    reason: p.reason,
    ...(p.devices ? { devices: p.devices.slice(0, MAX_NAMES) } : {}),
    device_count: p.devices?.length ?? 0,
    batches: p.matchers.length,
    samples: p.samples,
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function errorRecord(err: unknown, at: string): ErrorRecord {
  const code = err instanceof AgentError ? err.code : typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'VMSYNC_ERROR';
  const message = err instanceof Error ? err.message : String(err);
  return { at, code, message: message.length > 500 ? `${message.slice(0, 500)}…` : message };
}

function describeRanges(records: RangeRecord[]): string {
  const lines = records.slice(0, 10).map((r) => {
    const who = r.instances ? ` (${r.instances.join(', ')})` : '';
    return `• ${r.start} → ${r.end}: ${r.missing} samples${who}`;
  });
  if (records.length > 10) lines.push(`• … and ${records.length - 10} more`);
  return lines.join('\n');
}


