import { describe, expect, it } from 'vitest';
import { emptyState } from '../../src/vmsync/state.js';
import { gateVerdict } from '../../src/core/failback-gate.js';

describe('failback gate (the verdict from vmsync.json)', () => {
  const ready = { ...emptyState(), failover: { epoch: 1, since: '2026-01-01T00:00:00.000Z' }, consecutive_clean: 3, failback_ready: true };

  it('READY for the current failover opens the gate', () => {
    expect(gateVerdict(ready, 3, 1)).toMatchObject({ ready: true });
  });

  it('a READY saved for an earlier failover does not (the drill caught this)', () => {
    const g = gateVerdict(ready, 3, 2);
    expect(g.ready).toBe(false);
    expect(g.detail).toMatch(/no sync check yet for the current failover \(epoch 2; state holds failover epoch 1\)/);
  });

  it('not ready until clean_checks', () => {
    expect(gateVerdict({ ...ready, failback_ready: false, consecutive_clean: 1 }, 3, 1)).toMatchObject({ ready: false });
  });
});
