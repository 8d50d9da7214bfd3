/**
 * failoverctl pause / resume over the in-memory RFC 2136 server the simulator uses, through the
 * real Witness: the pause is a CAS on the control record only, renewals go on under it, and an
 * automatic move read before the pause fails at the witness (its prerequisites carry the control
 * record as read). The codec of the control record round-trips and refuses what it does not know.
 */
import { describe, expect, it } from 'vitest';
import { runPause, witnessPauseIo, type PauseIo } from '../../src/admin/pause.js';
import type { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import { formatControl, formatHandover, formatPause, parseControl, pauseInForce } from '../../src/lease/control.js';
import { Witness } from '../../src/lease/witness.js';
import { DEFAULT_NAMES, LEASE1, primaryModel, SITES, WALL } from '../core/dns-model.js';


function world() {
  const m = primaryModel();
  const w = new Witness(m.client('agent') as unknown as DnsClient, DEFAULT_NAMES, 'A');
  const io = (now = WALL): PauseIo => witnessPauseIo(w, () => now);
  return { m, w, io };
}

describe('the control record', () => {
  it('round-trips a pause and a handover, with any reason text, within one TXT string', () => {
    const c = {
      pause: { by: 'ops@host/primary', since: WALL, until: WALL + 7_200, reason: 'core switch upgrade; ticket #42 (100% planned) ' + 'x'.repeat(400) },
      handover: { from: 'primary' as const, to: 'dr' as const, epoch: 7, at: WALL, reason: 'collector-failed', detail: 'the collector restarted 4 times within 30.0 s' },
    };
    const texts = formatControl(c)!;
    for (const t of texts) expect(Buffer.byteLength(t)).toBeLessThanOrEqual(255);
    const back = parseControl(texts);
    expect(back.handover).toEqual(c.handover);
    expect(back.pause).toMatchObject({ by: c.pause.by, since: WALL, until: WALL + 7_200 });
    expect(c.pause.reason.startsWith(back.pause!.reason)).toBe(true);
    expect(back.pause!.reason.length).toBeGreaterThan(40);
    expect(parseControl([formatPause({ ...c.pause, until: null })]).pause!.until).toBeNull();
    expect(formatControl({ pause: null, handover: null })).toBeNull();
  });

  it('refuses entries it does not know, duplicates, and missing fields', () => {
    expect(() => parseControl(['v=2 pause by=x'])).toThrow(/unknown entry/);
    const p = formatPause({ by: 'a', since: 1, until: null, reason: '' });
    expect(() => parseControl([p, p])).toThrow(/two pause entries/);
    expect(() => parseControl(['v=1 pause by=a since=1 until=0'])).toThrow(/missing reason=/);
    expect(() => parseControl(['v=1 handover from=primary to=nowhere epoch=1 at=1 reason=x detail=y'])).toThrow(/to must be primary or dr/);
    expect(() => parseControl([formatHandover({ from: 'dr', to: 'primary', epoch: 1, at: 1, reason: 'r', detail: 'd' }) + ' extra=1'])).toThrow(/unexpected field/);
  });

  it('a --for pause is in force until its end, then not', () => {
    const c = { pause: { by: 'a', since: WALL, until: WALL + 60, reason: '' }, handover: null };
    expect(pauseInForce(c, WALL + 59)).not.toBeNull();
    expect(pauseInForce(c, WALL + 60)).toBeNull();
  });
});

describe('pause and resume at the witness', () => {
  it('a --for pause lasts at least that long: its end counts from the latest the server clock can be (the read round trip added)', async () => {
    const { w, io } = world();
    // The read's answer took 1.6 s: the server's clock is WALL .. WALL + 1.6 now.
    const slow: PauseIo = { ...io(WALL + 0.3), read: async () => ({ ...(await w.read()), offsetSpanSeconds: 1.6 }) };
    await runPause('pause', { by: 'ops', reason: '', forSeconds: 600 }, slow);
    expect((await w.read()).control!.pause).toMatchObject({ since: WALL, until: WALL + 2 + 600 });
  });

  it('pause writes the control record; both sites read it; resume removes it and keeps the handover hold', async () => {
    const { w, io } = world();
    const r = await runPause('pause', { by: 'ops/primary', reason: 'maintenance', forSeconds: 3_600 }, io());
    expect(r.changed).toBe(true);
    expect(r.text).toMatch(/paused by ops\/primary .* \(maintenance\): no automatic takeover or handover on either site/);
    const seen = await w.read();
    expect(seen.control!.pause).toEqual({ by: 'ops/primary', since: WALL, until: WALL + 3_600, reason: 'maintenance' });
    // the lease and the record are untouched, and renewals go on under a pause
    expect(seen.lease).toEqual(LEASE1);
    await w.renew(seen, WALL + 10);
    expect((await w.read()).lease!.seq).toBe(4);
    // resume: gone (the revision alone stays); a second resume says there was nothing to resume
    expect((await runPause('resume', { by: 'ops/dr', reason: '', forSeconds: null }, io())).text).toMatch(/^resumed \(was paused by ops\/primary/);
    const resumed = await w.read();
    expect(resumed.controlText).toEqual(['v=1 rev n=2']);
    expect(resumed.control).toEqual({ pause: null, handover: null });
    expect(await runPause('resume', { by: 'ops/dr', reason: '', forSeconds: null }, io())).toMatchObject({ changed: false, text: 'not paused: nothing to resume' });
  });

  it('an automatic move read before the pause fails at the witness; an admin move does not look at it', async () => {
    const { w, io } = world();
    const before = await w.read();
    await runPause('pause', { by: 'ops', reason: '', forSeconds: null }, io());
    // the DR's takeover planned on the read before the pause: NXRRSET, nothing changes
    await expect(w.write(before, { address: SITES.dr, lease: { holder: 'dr', epoch: 2, seq: 4, at: WALL }, guardControl: true })).rejects.toMatchObject({ code: 'DNS_PREREQ_FAILED' });
    expect((await w.read()).lease).toEqual(LEASE1);
    // a takeover planned on a read showing the pause would pass the witness: the core refuses it (test/core/handover.test.ts)
    // a switchover (admin) still works while paused
    const now = await w.read();
    await w.transfer(now, 'dr', SITES, WALL + 5);
    const after = await w.read();
    expect(after.lease!.holder).toBe('dr');
    expect(after.control!.pause).not.toBeNull();
  });

  it('a lost control read does not fail the read the lease rests on: the last control read stands in', async () => {
    const { m, io } = world();
    await runPause('pause', { by: 'ops', reason: 'x', forSeconds: null }, io());
    const client = m.client('flaky') as unknown as DnsClient;
    let failControl = false;
    const flaky = {
      read: (name: string, type: Parameters<DnsClient['read']>[1]) =>
        failControl && name.startsWith('_control.') ? Promise.reject(new DnsError('DNS_TIMEOUT', 'no answer')) : client.read(name, type),
      update: client.update.bind(client),
    } as unknown as DnsClient;
    const w = new Witness(flaky, DEFAULT_NAMES, 'A');
    expect((await w.read()).control!.pause!.by).toBe('ops');
    failControl = true;
    const r = await w.read();
    expect(r.lease).toEqual(LEASE1);
    expect(r.control!.pause!.by).toBe('ops');
    // never read: no control at all (an automatic move then requires it absent, and fails at the witness if not)
    const fresh = new Witness(flaky, DEFAULT_NAMES, 'A');
    const none = await fresh.read();
    expect(none.controlText).toBeUndefined();
    await expect(fresh.write(none, { address: SITES.dr, lease: { holder: 'dr', epoch: 2, seq: 4, at: WALL }, guardControl: true })).rejects.toMatchObject({ code: 'DNS_PREREQ_FAILED' });
  });

  it('every write raises the revision: a captured pause replayed after resume fails its prerequisite (no ABA)', async () => {
    const m = primaryModel();
    const client = m.client('agent') as unknown as DnsClient;
    const sent: Parameters<DnsClient['update']>[] = [];
    const capturing = { read: client.read.bind(client), update: (...a: Parameters<DnsClient['update']>) => (sent.push(a), client.update(...a)) } as unknown as DnsClient;
    const w = new Witness(capturing, DEFAULT_NAMES, 'A');
    const io = witnessPauseIo(w, () => WALL);
    await runPause('pause', { by: 'ops', reason: 'x', forSeconds: null }, io);
    const pause = sent.at(-1)!;
    expect((await w.read()).controlText).toEqual([expect.stringMatching(/^v=1 pause by=ops /), 'v=1 rev n=1']);
    await runPause('resume', { by: 'ops', reason: '', forSeconds: null }, io);
    // The same update again (a server without replay protection applies what it is sent)
    await expect(client.update(...pause)).rejects.toMatchObject({ code: 'DNS_PREREQ_FAILED' });
    const after = await w.read();
    expect(after.controlText).toEqual(['v=1 rev n=2']);
    expect(after.control!.pause).toBeNull();
    // and the revision parses (one at most), whatever else the record holds
    expect(parseControl(['v=1 rev n=7', formatPause({ by: 'a', since: 1, until: null, reason: '' })]).pause).not.toBeNull();
    expect(() => parseControl(['v=1 rev n=1', 'v=1 rev n=2'])).toThrow(/two rev entries/);
    expect(() => parseControl(['v=1 rev n=x'])).toThrow(/rev n must be a non-negative integer/);
  });

  it('a pause racing another writer of the control record re-reads and applies once', async () => {
    const { w, io } = world();
    const base = io();
    let raced = false;
    const racing: PauseIo = {
      ...base,
      writeControl: async (seen, next) => {
        if (!raced) {
          raced = true;
          // the other site pauses between our read and our CAS
          await w.writeControl(seen, formatControl({ pause: { by: 'other', since: WALL, until: null, reason: 'theirs' }, handover: null }));
        }
        return base.writeControl(seen, next);
      },
    };
    const r = await runPause('pause', { by: 'ours', reason: 'ours', forSeconds: null }, racing);
    expect(r.changed).toBe(true);
    expect((await w.read()).control!.pause!.by).toBe('ours');
  });
});
