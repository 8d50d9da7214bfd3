/**
 * The Witness against a server that answers its errors UNSIGNED (Samba's AD DNS: DNS_UNSIGNED_ERROR
 * from the transport), over the in-memory RFC 2136 server: one signed re-read decides what a CAS
 * did. The witness holds what we wrote → applied (our earlier copy); it moved from what we read →
 * lost (a conflict, authenticated by the read); unchanged → the unsigned error stands (an unknown
 * outcome for the engine). And the no-op update that asks whether we may change each name.
 */
import { describe, expect, it } from 'vitest';
import { runPause, witnessPauseIo } from '../../src/admin/pause.js';
import type { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import type { ResourceRecord } from '../../src/dns/wire.js';
import { renewalOf, transferOf, Witness } from '../../src/lease/witness.js';
import { DEFAULT_NAMES, DnsModel, LEASE1, primaryModel, SITES, WALL } from '../core/dns-model.js';

const CONTROL = `_control.${DEFAULT_NAMES.record}`;

/** Every failed prerequisite answered as Samba does: the rcode, unsigned. `refuse` answers some updates without applying them. */
function sambaLike(m: DnsModel, refuse: (updates: ResourceRecord[]) => DnsError | null = () => null): DnsClient {
  const c = m.client('agent');
  return {
    read: c.read.bind(c),
    update: async (zone: string, pre: ResourceRecord[], upd: ResourceRecord[]) => {
      const no = refuse(upd);
      if (no) throw no;
      try {
        return await c.update(zone, pre, upd);
      } catch (err) {
        if (err instanceof DnsError && err.code === 'DNS_PREREQ_FAILED') throw new DnsError('DNS_UNSIGNED_ERROR', `${err.rcode} without a signature of its own`, { rcode: err.rcode });
        throw err;
      }
    },
  } as unknown as DnsClient;
}

function world(refuse?: (updates: ResourceRecord[]) => DnsError | null) {
  const m = primaryModel();
  const w = new Witness(sambaLike(m, refuse), DEFAULT_NAMES, 'A');
  return { m, w };
}

const servfail = (): DnsError => new DnsError('DNS_UNSIGNED_ERROR', 'SERVFAIL without a signature of its own', { rcode: 'SERVFAIL' });

describe('a CAS answered with an unsigned error: one signed re-read decides', () => {
  it('the witness moved since our read: the CAS is lost (DNS_PREREQ_FAILED, authenticated by the read)', async () => {
    const { w } = world();
    const first = await w.read();
    const renewed = (await w.renew(first, WALL + 1)).snapshot;
    const err = await w.transfer(first, 'dr', SITES, WALL + 2).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DNS_PREREQ_FAILED', rcode: 'NXRRSET', authenticated: true });
    expect((err as Error).message).toMatch(/lost: the server answered NXRRSET unsigned, and a signed re-read shows the witness changed since we read it/);
    expect((err as DnsError).cause).toMatchObject({ code: 'DNS_UNSIGNED_ERROR' });
    expect((await w.read()).lease).toEqual(renewed.lease);
  });

  it('the witness holds what we wrote (a second copy of our own CAS): applied, recovered', async () => {
    const { w } = world();
    const seen = await w.read();
    const next = renewalOf(seen, WALL + 1);
    await w.write(seen, next);
    const again = await w.write(seen, next);
    expect(again.recovered).toBe(true);
    expect(again.snapshot.lease).toEqual(next.lease);
  });

  it('the witness unchanged (SERVFAIL: AD\'s answer to a non-owner): the unsigned error stands, with the words', async () => {
    const { w } = world(servfail);
    const seen = await w.read();
    const err = await w.renew(seen, WALL + 1).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DNS_UNSIGNED_ERROR', rcode: 'SERVFAIL', authenticated: false });
    expect((err as Error).message).toMatch(
      /a signed re-read shows the witness unchanged since we read it: not applied so far; Active Directory answers SERVFAIL to an account that does not own the record \(`failoverctl check-config` checks\)/,
    );
  });

  it('a takeover planned before a pause: the record and the lease unchanged, the control record moved: lost', async () => {
    const { w } = world();
    const before = await w.read();
    await runPause('pause', { by: 'ops', reason: '', forSeconds: null }, witnessPauseIo(w, () => WALL));
    const err = await w.write(before, { ...transferOf(before, 'dr', SITES, WALL + 1), guardControl: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DNS_PREREQ_FAILED', authenticated: true });
    expect((await w.read()).lease).toEqual(LEASE1);
  });

  it('the control record alone: a stale pause is lost (pause retries and applies once), a repeated one is recovered', async () => {
    const { w } = world();
    const seen = await w.read();
    const paused = await w.writeControl(seen, ['v=1 pause by=a since=1 until=0 reason=']);
    expect(paused.snapshot.controlText).toEqual(['v=1 pause by=a since=1 until=0 reason=', 'v=1 rev n=1']);
    expect((await w.writeControl(seen, ['v=1 pause by=a since=1 until=0 reason='])).recovered).toBe(true);
    await expect(w.writeControl(seen, ['v=1 pause by=b since=2 until=0 reason='])).rejects.toMatchObject({ code: 'DNS_PREREQ_FAILED', authenticated: true });
    const r = await runPause('pause', { by: 'c', reason: 'x', forSeconds: null }, witnessPauseIo(w, () => WALL));
    expect(r.changed).toBe(true);
    expect((await w.read()).control!.pause!.by).toBe('c');
  });

  it('the probe: an unsigned NXRRSET is what a server that enforces prerequisites says (enforced-unsigned)', async () => {
    const { w } = world();
    expect(await w.probe()).toBe('enforced-unsigned');
  });
});

describe('writeAccess: may we change each name that exists? (an update that changes nothing)', () => {
  it('asks only the names that exist, and changes nothing', async () => {
    const { m, w } = world();
    const seen = await w.read();
    expect(await w.writeAccess(seen)).toEqual([
      { name: DEFAULT_NAMES.record, type: 'A', ok: true },
      { name: DEFAULT_NAMES.leaseName, type: 'TXT', ok: true },
    ]);
    expect(m.read()).toMatchObject({ addresses: [SITES.primary], lease: LEASE1 });
  });

  it('SERVFAIL unsigned (AD: another account owns it) and REFUSED (a policy) are refusals; anything else is thrown', async () => {
    const refuse = (upd: ResourceRecord[]): DnsError | null =>
      upd[0]!.name === DEFAULT_NAMES.leaseName ? servfail() : upd[0]!.name === CONTROL ? new DnsError('DNS_REFUSED', 'REFUSED', { rcode: 'REFUSED', authenticated: true }) : null;
    const { w } = world(refuse);
    const m2 = world();
    await runPause('pause', { by: 'ops', reason: '', forSeconds: null }, witnessPauseIo(m2.w, () => WALL));
    const seen = { ...(await m2.w.read()) };
    const verdicts = await w.writeAccess(seen);
    expect(verdicts.map((v) => [v.name, v.ok, v.ok ? null : v.error.code])).toEqual([
      [DEFAULT_NAMES.record, true, null],
      [DEFAULT_NAMES.leaseName, false, 'DNS_UNSIGNED_ERROR'],
      [CONTROL, false, 'DNS_REFUSED'],
    ]);
    const down = world(() => new DnsError('DNS_TIMEOUT', 'no answer'));
    await expect(down.w.writeAccess(seen)).rejects.toMatchObject({ code: 'DNS_TIMEOUT' });
  });
});
