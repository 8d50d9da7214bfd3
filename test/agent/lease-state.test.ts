import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LEASE_STATE_FILE, loadHeldEpoch, saveHeldEpoch } from '../../src/agent/lease-state.js';
import { nullLogger } from '../../src/log/logger.js';
import { stateDir } from '../../src/state/atomic.js';

describe('held epoch persistence', () => {
  it('round-trips, creates the directory, and leaves no temp file', async () => {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fa-lease-')), 'state');
    expect(await loadHeldEpoch(dir, nullLogger())).toBeNull();
    await saveHeldEpoch(dir, 7);
    expect(await loadHeldEpoch(dir, nullLogger())).toBe(7);
    expect(fs.readdirSync(dir)).toEqual([LEASE_STATE_FILE]);
  });

  it('a corrupt file counts as unknown (the safe side: wait the lease out)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-lease-'));
    fs.writeFileSync(path.join(dir, LEASE_STATE_FILE), '{"heldEpoch": "x"');
    expect(await loadHeldEpoch(dir, nullLogger())).toBeNull();
  });

  it('uses $STATE_DIRECTORY when systemd sets it', () => {
    expect(stateDir('dr', { STATE_DIRECTORY: '/var/lib/failover-agent/dr' })).toBe('/var/lib/failover-agent/dr');
    expect(stateDir('dr', {})).toBe('/var/lib/failover-agent/dr');
    expect(stateDir('dr', { STATE_DIRECTORY: '/a:/b' })).toBe('/a');
  });
});
