/**
 * The one piece of decision state that must survive a restart: the epoch in
 * which this agent's holding is established (see CoreState.heldEpoch). Without
 * it a restarted holder waits ttl + max_skew before its lease counts again.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import type { LeaseStore } from './engine.js';
import { writeFileAtomic } from '../state/atomic.js';

export const LEASE_STATE_FILE = 'lease.json';

export async function loadHeldEpoch(dir: string, logger: Logger): Promise<number | null> {
  try {
    const j = JSON.parse(await fs.readFile(path.join(dir, LEASE_STATE_FILE), 'utf8')) as { heldEpoch?: unknown };
    return typeof j.heldEpoch === 'number' && Number.isSafeInteger(j.heldEpoch) ? j.heldEpoch : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger.warning(`ignoring unreadable ${LEASE_STATE_FILE}: ${(err as Error).message}`, { event: 'state_unreadable', dir });
    }
    return null;
  }
}

export async function saveHeldEpoch(dir: string, heldEpoch: number | null): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, LEASE_STATE_FILE), `${JSON.stringify({ heldEpoch })}\n`);
}

/** The engine's LeaseStore on `lease.json` in the state directory. */
export function fileLeaseStore(dir: string, logger: Logger): LeaseStore {
  return { load: () => loadHeldEpoch(dir, logger), save: (heldEpoch) => saveHeldEpoch(dir, heldEpoch) };
}
