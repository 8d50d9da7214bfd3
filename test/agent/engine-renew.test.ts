/**
 * The holder renews by CAS on what its own last write left (issue 21: on a lossy path a renewal
 * round is ONE exchange, not a read and a write): it reads only every few renewals and after a
 * conflict or a renewal whose answer never came (the read confirms one that was applied).
 */
import { describe, expect, test } from 'vitest';

import { Engine, type WitnessPort } from '../../src/agent/engine.js';
import { NoCollector } from '../../src/collector/port.js';
import { loadConfig } from '../../src/config/load.js';
import { DnsError } from '../../src/dns/errors.js';
import { formatLease, type Lease } from '../../src/lease/lease.js';
import type { Intended, Snapshot, WriteResult } from '../../src/lease/witness.js';
import { nullLogger } from '../../src/log/logger.js';
import { minimalToml } from '../fixtures/minimal-config.js';

const config = loadConfig('/etc/failover-agent/primary.toml', { text: minimalToml('primary') });
const snap = (lease: Lease): Snapshot => ({ addresses: [config.sites.primary], addressType: 'A', leaseText: [formatLease(lease)], lease, controlText: null, control: { pause: null, handover: null } });

/** An in-memory witness holding one snapshot; `fail` decides each write's fate. */
function world() {
  let current = snap({ holder: 'primary', epoch: 1, seq: 1, at: 1 });
  const events: string[] = [];
  let fail: (n: number) => 'ok' | 'timeout' | 'conflict' | 'unsigned' = () => 'ok';
  let writes = 0;
  const witness: WitnessPort = {
    read: async () => {
      events.push('read');
      return current;
    },
    // Each copy meets its fate in turn (Witness.write sends them at once); once one is applied, the
    // other finds its prerequisite gone and is ignored (`cas:dup`); with none applied, a conflict wins.
    write: async (seen: Snapshot, next: Intended, copies = 1) => {
      let result: WriteResult | null = null;
      const errors: unknown[] = [];
      for (let i = 0; i < copies; i++) {
        const fate = fail(++writes);
        if (result) {
          events.push('cas:dup');
          continue;
        }
        events.push(`cas:${fate}`);
        try {
          if (fate === 'conflict' || seen.leaseText![0] !== current.leaseText![0]) throw new DnsError('DNS_PREREQ_FAILED', 'NXRRSET');
          if (fate === 'timeout') throw new DnsError('DNS_TIMEOUT', 'no answer');
          // Samba: an error answered with our own signature copied back, the witness unchanged (Witness.write re-read it).
          if (fate === 'unsigned') throw new DnsError('DNS_UNSIGNED_ERROR', 'SERVFAIL without a signature of its own', { rcode: 'SERVFAIL' });
          current = snap(next.lease);
          result = { snapshot: current, rttMs: 1 };
        } catch (err) {
          errors.push(err);
        }
      }
      if (result) return result;
      throw errors.find((e) => e instanceof DnsError && e.code === 'DNS_PREREQ_FAILED') ?? errors[0];
    },
  };
  const dnsErrors: string[] = [];
  const engine = new Engine({ config, witness, server: 'test', zone: 'example.com', health: null, collector: new NoCollector(), logger: nullLogger(), observer: { dnsError: (code) => dnsErrors.push(code) } });
  return { engine, events, dnsErrors, setFail: (f: typeof fail) => (fail = f), current: () => current };
}

describe('the holder renews by CAS on its own last write', () => {
  test('one read every five renewals, not one per renewal', async () => {
    const w = world();
    for (let i = 0; i < 10; i++) await w.engine.tick();
    const five = ['read', 'cas:ok', 'cas:ok', 'cas:ok', 'cas:ok', 'cas:ok'];
    expect(w.events).toEqual([...five, ...five]);
    expect(w.current().lease!.seq).toBe(11);
  });

  test('after a renewal whose answer never came, and after a conflict, the next tick reads first', async () => {
    const w = world();
    await w.engine.tick(); // read + cas ok
    w.setFail((n) => (n === 2 ? 'timeout' : n === 5 || n === 6 ? 'conflict' : 'ok'));
    await w.engine.tick(); // cas timeout
    expect(w.engine.status().decision).toBe('write-failed');
    await w.engine.tick(); // read, then the renewal (two copies now: the second finds the first applied)
    expect(w.events).toEqual(['read', 'cas:ok', 'cas:timeout', 'read', 'cas:ok', 'cas:dup']);
    await w.engine.tick(); // conflict (both copies)
    await w.engine.tick(); // read first
    expect(w.events.slice(6, 9)).toEqual(['cas:conflict', 'cas:conflict', 'read']);
    expect(w.engine.status().decision).not.toBe('write-failed');
  });

  test('after DNS trouble, renewals go out as two copies: one lost copy does not lose the round', async () => {
    const w = world();
    await w.engine.tick(); // read + cas ok (no trouble yet: one copy)
    expect(w.events).toEqual(['read', 'cas:ok']);
    w.setFail((n) => (n === 2 || n === 3 ? 'timeout' : 'ok'));
    await w.engine.tick(); // one copy, lost: trouble
    await w.engine.tick(); // read, then two copies: #3 lost, #4 applied
    expect(w.events.slice(2)).toEqual(['cas:timeout', 'read', 'cas:timeout', 'cas:ok']);
    // the next renewal: two copies again, the second finds the first applied
    await w.engine.tick();
    expect(w.events.slice(6)).toEqual(['cas:ok', 'cas:dup']);
    expect(w.engine.status().decision).not.toBe('write-failed');
    expect(w.current().lease!.seq).toBe(4);
  });

  test('an error answered unsigned (DNS_UNSIGNED_ERROR, Samba) is an unknown outcome: counted by its code, not resent blindly, the next tick reads first', async () => {
    const w = world();
    await w.engine.tick(); // read + cas ok
    w.setFail((n) => (n === 2 ? 'unsigned' : 'ok'));
    await w.engine.tick(); // one copy, answered unsigned: the round ends there
    expect(w.events).toEqual(['read', 'cas:ok', 'cas:unsigned']);
    expect(w.dnsErrors).toEqual(['DNS_UNSIGNED_ERROR']);
    const s = w.engine.status();
    expect(s.decision).toBe('write-failed');
    expect(s.reason).toMatch(/outcome unknown \(DNS_UNSIGNED_ERROR: SERVFAIL without a signature of its own\); re-reading/);
    expect(s.lastWrite).toMatchObject({ op: 'renew', ok: false, detail: expect.stringMatching(/^DNS_UNSIGNED_ERROR: /) });
    await w.engine.tick(); // read first, then the renewal
    expect(w.events.slice(3, 5)).toEqual(['read', 'cas:ok']);
    expect(w.current().lease!.seq).toBe(3);
  });
});
