/**
 * The in-memory authoritative server (./dns-model.ts) that the simulator (test/sim/) serves the real
 * Witness from must be the witness the agent talks to: the same reads, RFC 2136 prerequisites by
 * value, the CAS answers Witness expects.
 */
import { describe, expect, it } from 'vitest';
import type { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import { change, prereq } from '../../src/dns/update.js';
import { formatLease, renewed, transferred, type Lease } from '../../src/lease/lease.js';
import { Witness } from '../../src/lease/witness.js';
import { DEFAULT_NAMES, DnsModel } from './dns-model.js';

const SITES = { primary: '10.10.10.10', dr: '10.20.20.20' };
const WALL0 = 1_790_000_000;

describe('the DNS model is the witness the agent talks to', () => {
  const names = DEFAULT_NAMES;
  const lease1: Lease = { holder: 'primary', epoch: 1, seq: 0, at: WALL0 };
  const witnessOn = (m: DnsModel, who = 'agent') => {
    const client = m.client(who);
    return { witness: new Witness(client as unknown as DnsClient, names, 'A'), client };
  };

  it('reads exactly what Witness.read() reads, whatever the zone holds', async () => {
    const m = new DnsModel('A', names);
    const { witness } = witnessOn(m);
    expect(await witness.read()).toEqual(m.read()); // empty zone
    m.load([SITES.primary], lease1);
    expect(await witness.read()).toEqual(m.read());
    expect(m.read()).toEqual({ addresses: [SITES.primary], addressType: 'A', leaseText: [formatLease(lease1)], lease: lease1, controlText: null, control: { pause: null, handover: null } });
    // two TXT records, a malformed one, two addresses: leaseError / addresses as Witness reports them
    const t = { name: names.leaseName, type: 'TXT' as const };
    m.process(names.zone, [], [change.add({ ...t, data: ['v=1 holder=dr epoch=2 seq=1 at=5'] }, 30)]);
    expect(await witness.read()).toEqual(m.read());
    expect(m.read().leaseError).toMatch(/2 TXT records/);
    m.process(names.zone, [], [change.deleteRrset(t), change.add({ ...t, data: ['v=1 holder=', 'dr'] }, 30)]);
    expect(await witness.read()).toEqual(m.read());
    expect(m.read().leaseError).toMatch(/expected 5 fields/);
    m.process(names.zone, [], [change.add({ name: names.record, type: 'A', data: SITES.dr }, 30)]);
    expect(await witness.read()).toEqual(m.read());
    expect(m.read().addresses.sort()).toEqual([SITES.primary, SITES.dr].sort());
  });

  it('applies RFC 2136 prerequisites by value, as whole RRsets, all or nothing', () => {
    const m = new DnsModel('A', names);
    const a = { name: names.record, type: 'A' as const };
    const t = { name: names.leaseName, type: 'TXT' as const };
    m.process(names.zone, [], [change.add({ ...a, data: '10.0.0.1' }, 30), change.add({ ...a, data: '10.0.0.2' }, 30), change.add({ ...t, data: ['ab'] }, 30)]);
    const before = m.peek();
    const touch = [change.add({ ...a, data: '10.0.0.9' }, 30)];
    expect(m.process(names.zone, prereq.rrsetEquals(a, ['10.0.0.1']), touch)).toBe('NXRRSET'); // subset
    expect(m.process(names.zone, prereq.rrsetEquals(a, ['10.0.0.1', '10.0.0.2', '10.0.0.3']), touch)).toBe('NXRRSET'); // superset
    expect(m.process(names.zone, prereq.rrsetEquals(t, [['a', 'b']]), touch)).toBe('NXRRSET'); // other string split
    expect(m.process(names.zone, [prereq.rrsetAbsent(a)], touch)).toBe('YXRRSET');
    expect(m.process(names.zone, [prereq.rrsetExists({ name: names.record, type: 'AAAA' })], touch)).toBe('NXRRSET');
    expect(m.process(names.zone, [...prereq.rrsetEquals(t, [['ab']]), ...prereq.rrsetEquals(a, ['10.0.0.3'])], touch)).toBe('NXRRSET'); // one of two fails: nothing applied
    expect(m.process('other.org', [], touch)).toBe('NOTZONE');
    expect(m.peek()).toEqual(before);
    expect(m.process(names.zone, [...prereq.rrsetEquals(a, ['10.0.0.2', '10.0.0.1']), ...prereq.rrsetEquals(t, [['ab']])], touch)).toBe('NOERROR'); // any order
    expect(m.peek().addresses.sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.9']);
  });

  it('answers CAS like Witness.renew/transfer over the same server (ok, conflict, lost answer, recovery)', async () => {
    const viaWitness = new DnsModel('A', names);
    const viaCas = new DnsModel('A', names);
    for (const m of [viaWitness, viaCas]) m.load([SITES.primary], lease1);
    const { witness, client } = witnessOn(viaWitness);
    const seen0 = viaCas.read();
    // renew
    const r1 = await witness.renew(seen0, WALL0 + 10);
    expect(viaCas.cas(seen0, SITES.primary, renewed(lease1, WALL0 + 10))).toBe('ok');
    expect(viaWitness.peek()).toEqual(viaCas.peek());
    expect(r1.snapshot).toEqual(viaCas.read());
    // a stale snapshot: conflict both ways, nothing changes
    await expect(witness.transfer(seen0, 'dr', SITES, WALL0 + 20)).rejects.toMatchObject({ code: 'DNS_PREREQ_FAILED' });
    expect(viaCas.cas(seen0, SITES.dr, transferred(lease1, 'dr', WALL0 + 20))).toBe('conflict');
    expect(viaWitness.peek()).toEqual(viaCas.peek());
    // takeover from the fresh snapshot
    const seen1 = viaCas.read();
    await witness.transfer(seen1, 'dr', SITES, WALL0 + 30);
    expect(viaCas.cas(seen1, SITES.dr, transferred(seen1.lease!, 'dr', WALL0 + 30))).toBe('ok');
    expect(viaWitness.peek()).toEqual(viaCas.peek());
    expect(viaCas.peek().lease).toEqual({ holder: 'dr', epoch: 2, seq: 2, at: WALL0 + 30 });
    // lost answer: applied, the writer times out; its retry gets NXRRSET and Witness recovers (sentAt of the retry call)
    const seen2 = viaCas.read();
    client.loseNextAnswer();
    await expect(witness.renew(seen2, WALL0 + 40)).rejects.toMatchObject({ code: 'DNS_TIMEOUT' });
    expect(() => viaCas.cas(seen2, SITES.dr, renewed(seen2.lease!, WALL0 + 40), { loseAnswer: true })).toThrow(DnsError);
    expect(viaWitness.peek()).toEqual(viaCas.peek());
    const again = await witness.renew(seen2, WALL0 + 40);
    expect(again.recovered).toBe(true);
    expect(again.snapshot).toEqual(viaCas.read());
    expect(viaCas.holds(SITES.dr, renewed(seen2.lease!, WALL0 + 40))).toBe(true);
    // cut off: reads and writes time out
    viaWitness.setReachable('agent', false);
    await expect(witness.read()).rejects.toMatchObject({ code: 'DNS_TIMEOUT' });
    viaCas.setReachable('dr', false);
    expect(() => viaCas.read('dr')).toThrow(/cut off/);
    expect(() => viaCas.cas(seen2, SITES.dr, lease1, { client: 'dr' })).toThrow(/cut off/);
  });
});
