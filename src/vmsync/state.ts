/**
 * The VM sync state file, `<stateDir>/vmsync.json` (SPEC §6).
 *
 * Written atomically: the new content goes to `.vmsync.json.tmp` in the same directory, is
 * fsynced, renamed over vmsync.json, and the directory is fsynced, so a reader (failoverctl, the
 * next agent start) sees the old file or the new one, never a mix, even if the agent is killed
 * or the machine loses power mid-write. One writer per instance (the agent's sync loop); the tmp
 * name is fixed so a killed write leaves no litter beyond that one file.
 *
 * Reading never throws for a bad file: a missing file is the empty state, an unreadable or corrupt
 * one is logged and treated as empty (the sync then starts over: at worst one extra scan and a
 * gate that has to count its clean checks again).
 *
 * Points in time are ISO-8601 strings (UTC), durations are ms, ranges are (start, end] as ISO.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../state/atomic.js';

import type { GateCount } from '../core/failback-gate.js';
import type { Logger } from '../log/logger.js';

export const STATE_FILE = 'vmsync.json';
export const STATE_VERSION = 1;

/** A gap range as stored and reported: samples of (start, end] (ISO), `missing` = src - dst. */
export interface RangeRecord {
  start: string;
  end: string;
  missing: number;
  /** For a partial gap: the `instance` label values (devices) the destination lacks data of. */
  instances?: string[];
}

export interface ErrorRecord {
  at: string;
  code: string;
  message: string;
}

/** The gate's count (failover, consecutive_clean, failback_ready, ..., core/failback-gate.ts) and the rest. */
export interface VmSyncState extends GateCount {
  version: number;
  /** When the last check ended (ISO), and whether it completed without error. */
  last_check: string | null;
  last_check_ok: boolean;
  /** "passive" (repairs the local VM) or "active" (measures only) at the last check. */
  last_role: 'passive' | 'active' | null;
  /** Ranges the last completed detection found (destination < source). */
  ranges_found: RangeRecord[];
  /** Ranges the last check copied (export → import finished). */
  ranges_repaired: RangeRecord[];
  /** Samples copied: sum of (source - destination) over the repaired buckets, as detection measured. */
  samples_copied_total: number;
  samples_copied_last: number;
  checks: number;
  errors: number;
  consecutive_errors: number;
  last_error: ErrorRecord | null;
}

export function emptyState(): VmSyncState {
  return {
    version: STATE_VERSION,
    failover: null,
    last_check: null,
    last_check_ok: false,
    last_role: null,
    last_clean_check: null,
    ranges_found: [],
    ranges_repaired: [],
    samples_copied_total: 0,
    samples_copied_last: 0,
    consecutive_clean: 0,
    failback_ready: false,
    failback_ready_since: null,
    checks: 0,
    errors: 0,
    consecutive_errors: 0,
    last_error: null,
  };
}

export function statePath(dir: string): string {
  return path.join(dir, STATE_FILE);
}

/** The state in `dir`; empty when missing; empty (and logged) when unreadable or corrupt. */
export async function loadState(dir: string, logger?: Logger): Promise<VmSyncState> {
  const file = statePath(dir);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger?.warning('vmsync state unreadable, starting from an empty state', { file, error: err as Error });
    }
    return emptyState();
  }
  try {
    return normalise(JSON.parse(text));
  } catch (err) {
    logger?.warning('vmsync state file is corrupt, starting from an empty state', { file, error: err as Error });
    return emptyState();
  }
}

/** Where VM sync keeps its state: the file (`fileStateStore`), or memory (the simulator). */
export interface VmSyncStateStore {
  /** The state; empty when there is none or it cannot be read (logged). Never rejects. */
  load(logger?: Logger): Promise<VmSyncState>;
  /** Replaces it atomically. */
  save(state: VmSyncState): Promise<void>;
}

/** `<dir>/vmsync.json`. */
export function fileStateStore(dir: string): VmSyncStateStore {
  return { load: (logger) => loadState(dir, logger), save: (state) => saveState(dir, state) };
}

/** Atomically replace `<dir>/vmsync.json` (tmp, write, fsync, rename, fsync dir); creates `dir`. */
export async function saveState(dir: string, state: VmSyncState): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(statePath(dir), `${JSON.stringify(state, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------

class BadState extends Error {}

/** Parsed JSON → a full state: wrong types are refused, absent fields take their defaults. */
function normalise(raw: unknown): VmSyncState {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadState('not a JSON object');
  const r = raw as Record<string, unknown>;
  const s = emptyState();
  const take = <K extends keyof VmSyncState>(key: K, check: (v: unknown) => boolean): void => {
    const v = r[key];
    if (v === undefined) return;
    if (!check(v)) throw new BadState(`field ${key} has the wrong type`);
    (s as unknown as Record<string, unknown>)[key] = v;
  };
  const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const isTime = (v: unknown) => v === null || (typeof v === 'string' && !Number.isNaN(Date.parse(v)));
  const isBool = (v: unknown) => typeof v === 'boolean';
  const isRanges = (v: unknown) =>
    Array.isArray(v) &&
    v.every(
      (x) =>
        typeof x === 'object' && x !== null && typeof x.start === 'string' && typeof x.end === 'string' && typeof x.missing === 'number' &&
        (x.instances === undefined || (Array.isArray(x.instances) && x.instances.every((i: unknown) => typeof i === 'string'))),
    );
  take('version', (v) => v === STATE_VERSION);
  take('failover', (v) => v === null || (typeof v === 'object' && isCount((v as { epoch?: unknown }).epoch) && isTime((v as { since?: unknown }).since) && (v as { since?: unknown }).since !== null));
  take('last_check', isTime);
  take('last_check_ok', isBool);
  take('last_role', (v) => v === null || v === 'passive' || v === 'active');
  take('last_clean_check', isTime);
  take('ranges_found', isRanges);
  take('ranges_repaired', isRanges);
  take('samples_copied_total', isCount);
  take('samples_copied_last', isCount);
  take('consecutive_clean', isCount);
  take('failback_ready', isBool);
  take('failback_ready_since', isTime);
  take('checks', isCount);
  take('errors', isCount);
  take('consecutive_errors', isCount);
  take('last_error', (v) => v === null || (typeof v === 'object' && typeof (v as ErrorRecord).code === 'string' && typeof (v as ErrorRecord).message === 'string'));
  return s;
}
