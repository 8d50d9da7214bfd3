/**
 * Witness.write. Its snapshot carries the server clock's offset as the answer gave it and, as a
 * read's does, the exchange's round trip (how much later the server's clock may be: a handover's
 * stamp rests on it). Two copies of one CAS (the engine's hedge on a lossy path: Witness.write(seen, next, 2)) over the
 * in-memory RFC 2136 server, each answer held until the test releases it, so every order of the
 * answers is played: the first applied counts; the other copy's conflict is settled by a re-read
 * only while no copy is known applied (once one is, a re-read would say only what we know).
 */
import { describe, expect, it } from 'vitest';
import type { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import type { ResourceRecord } from '../../src/dns/wire.js';
import { renewalOf, transferOf, Witness } from '../../src/lease/witness.js';
import { DEFAULT_NAMES, primaryModel, SITES, WALL } from '../core/dns-model.js';


/** Updates reach the server at once; each answer waits for `release(i)` (`lose`: it never comes, a timeout instead). */
function world() {
  const m = primaryModel();
  const c = m.client('agent');
  const held: { release: () => void; lose: () => void }[] = [];
  let reads = 0;
  const client = {
    read: (name: string, type: 'A' | 'TXT') => {
      reads++;
      return c.read(name, type);
    },
    update: (zone: string, pre: ResourceRecord[], upd: ResourceRecord[]) => {
      const answer = c.update(zone, pre, upd);
      answer.catch(() => undefined);
      return new Promise((resolve, reject) =>
        held.push({ release: () => void answer.then(resolve, reject), lose: () => reject(new DnsError('DNS_TIMEOUT', 'no answer in 3 attempts')) }),
      );
    },
  } as unknown as DnsClient;
  return { m, w: new Witness(client, DEFAULT_NAMES, 'A'), held, reads: () => reads };
}

/** Lets every continuation queued so far run. */
const drain = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Witness.write with two copies', () => {
  it('the applied copy answers first: that is the result, and the other copy\'s conflict costs no re-read', async () => {
    const { w, held, reads } = world();
    const seen = await w.read();
    const before = reads();
    const next = renewalOf(seen, WALL + 1);
    const written = w.write(seen, next, 2);
    expect(held).toHaveLength(2); // both copies sent at once
    held[0]!.release();
    await drain();
    held[1]!.release(); // NXRRSET: the first copy is applied
    const r = await written;
    await drain();
    expect(r.snapshot.lease).toEqual(next.lease);
    expect(r.recovered).toBeUndefined();
    expect(reads() - before).toBe(0);
  });

  it('the conflict answers first: one re-read finds our own lease, applied (recovered)', async () => {
    const { w, held, reads } = world();
    const seen = await w.read();
    const before = reads();
    const next = renewalOf(seen, WALL + 1);
    const written = w.write(seen, next, 2);
    held[1]!.release();
    const r = await written;
    expect(r.recovered).toBe(true);
    expect(r.snapshot.lease).toEqual(next.lease);
    expect(reads() - before).toBe(3); // one read: the record, the lease, the control record
    held[0]!.release(); // the applied copy's answer, late: nothing more to do
    await drain();
    expect(reads() - before).toBe(3);
  });

  it('the applied copy\'s answer is lost and the other conflicts: the re-read confirms it', async () => {
    const { w, held } = world();
    const seen = await w.read();
    const next = renewalOf(seen, WALL + 1);
    const written = w.write(seen, next, 2);
    held[0]!.lose();
    await drain();
    held[1]!.release();
    const r = await written;
    expect(r.recovered).toBe(true);
    expect(r.snapshot.lease).toEqual(next.lease);
  });

  it('someone else moved first: both copies conflict and the write fails as a conflict (not applied)', async () => {
    const { m, w, held } = world();
    const seen = await w.read();
    const other = new Witness(m.client('dr') as unknown as DnsClient, DEFAULT_NAMES, 'A');
    await other.write(seen, transferOf(seen, 'dr', SITES, WALL + 1));
    const written = w.write(seen, renewalOf(seen, WALL + 2), 2).catch((e: unknown) => e);
    held[0]!.release();
    held[1]!.release();
    expect(await written).toMatchObject({ code: 'DNS_PREREQ_FAILED' });
    expect((await w.read()).lease).toMatchObject({ holder: 'dr', epoch: 2 });
  });

  it('both copies lost: the timeout stands (an unknown outcome for the engine)', async () => {
    const { w, held } = world();
    const seen = await w.read();
    const written = w.write(seen, renewalOf(seen, WALL + 1), 2).catch((e: unknown) => e);
    held[0]!.lose();
    held[1]!.lose();
    expect(await written).toMatchObject({ code: 'DNS_TIMEOUT' });
  });
});

describe('Witness.write: the server clock as its answer gave it', () => {
  it('the offset taken at receipt, and the round trip it may fall short by (an answer held in a stopped process)', async () => {
    const m = primaryModel();
    const c = m.client('agent');
    const client = {
      read: c.read.bind(c),
      update: async (zone: string, pre: ResourceRecord[], upd: ResourceRecord[]) => ({ ...(await c.update(zone, pre, upd)), offsetSeconds: -19, rttMs: 19_400 }),
    } as unknown as DnsClient;
    const w = new Witness(client, DEFAULT_NAMES, 'A');
    const seen = await w.read();
    const r = await w.write(seen, renewalOf(seen, WALL + 1));
    expect(r.snapshot.offsetSeconds).toBe(-19);
    expect(r.snapshot.offsetSpanSeconds).toBe(19.4);
  });
});
