/**
 * The wire codec (src/dns/wire.ts) against a reference implementation: the
 * UPDATE messages BIND's nsupdate sends (captured by
 * scripts/capture-nsupdate-fixture.mjs, one per RFC 2136 prerequisite and
 * update kind, plus the lease CAS) must decode, including nsupdate's name
 * compression, and must equal, section by section and record by record, what
 * our builders produce for the same intent. nsupdate's TSIG MACs must verify
 * with our TSIG code. Then round trips for every rdata type we handle.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TsigAlgorithm, TsigKey } from '../../src/config/keyfile.js';
import type { DnsClient } from '../../src/dns/client.js';
import { DnsError } from '../../src/dns/errors.js';
import { signRequest, verifyRequest } from '../../src/dns/tsig.js';
import { change, prereq } from '../../src/dns/update.js';
import {
  decodeMessage,
  encodeMessage,
  encodeName,
  NO_FLAGS,
  RCODE,
  type Message,
  type ResourceRecord,
  type SoaData,
  type TsigData,
} from '../../src/dns/wire.js';
import { parseLease } from '../../src/lease/lease.js';
import { Witness, type Snapshot } from '../../src/lease/witness.js';

// ------------------------------------------------------------------ fixture

interface Capture {
  kind: string;
  key: string;
  script: string;
  hex: string;
  response: string;
}
interface Fixture {
  nsupdate: string;
  zone: string;
  keys: { name: string; algorithm: TsigAlgorithm; secret: string }[];
  packets: Capture[];
}

const fixture = JSON.parse(
  fs.readFileSync(new URL('./fixtures/nsupdate-capture.json', import.meta.url), 'utf8'),
) as Fixture;

function keyOf(name: string): TsigKey {
  const k = fixture.keys.find((x) => x.name === name);
  if (!k) throw new Error(`fixture has no key ${name}`);
  return { name: k.name, algorithm: k.algorithm, secret: Buffer.from(k.secret, 'base64') };
}

// The names and values scripts/capture-nsupdate-fixture.mjs uses.
const ZONE = 'example.test';
const NAME = 'syslog.example.test';
const LEASE = '_lease.syslog.example.test';
const IP = '10.10.10.10';
const TXT = 'v=1 holder=primary epoch=1 seq=0 at=0';
const A = { name: NAME, type: 'A' as const };

interface Intent {
  prereqs: ResourceRecord[];
  updates: ResourceRecord[];
}

/** The lease CAS exactly as src/lease/witness.ts builds it: a renewal of `TXT` at 1700000000. */
async function witnessRenewal(): Promise<Intent> {
  let sent: Intent | undefined;
  const client = {
    update: async (_zone: string, prereqs: ResourceRecord[], updates: ResourceRecord[]) => {
      sent = { prereqs, updates };
      return { authenticated: true, rttMs: 0, attempts: 1, transport: 'udp' };
    },
  } as unknown as DnsClient;
  const witness = new Witness(client, { zone: ZONE, record: NAME, leaseName: LEASE, ttlSeconds: 30 });
  const seen: Snapshot = { addresses: [IP], addressType: 'A', leaseText: [TXT], lease: parseLease(TXT) };
  await witness.renew(seen, 1_700_000_000);
  if (!sent) throw new Error('the witness sent nothing');
  return sent;
}

/** What our builders produce for each captured kind. */
const INTENTS: Record<string, () => Intent | Promise<Intent>> = {
  'prereq-yxrrset': () => ({ prereqs: [prereq.rrsetExists(A)], updates: [] }),
  'prereq-yxrrset-value': () => ({ prereqs: prereq.rrsetEquals(A, [IP]), updates: [] }),
  'prereq-nxrrset': () => ({ prereqs: [prereq.rrsetAbsent(A)], updates: [] }),
  'prereq-yxdomain': () => ({ prereqs: [prereq.nameInUse(NAME)], updates: [] }),
  'prereq-nxdomain': () => ({ prereqs: [prereq.nameNotInUse(NAME)], updates: [] }),
  'update-add-a': () => ({ prereqs: [], updates: [change.add({ ...A, data: IP }, 30)] }),
  'update-add-txt': () => ({ prereqs: [], updates: [change.add({ name: LEASE, type: 'TXT', data: [TXT] }, 30)] }),
  'update-delete-rrset': () => ({ prereqs: [], updates: [change.deleteRrset(A)] }),
  'update-delete-name': () => ({ prereqs: [], updates: [change.deleteName(NAME)] }),
  'update-delete-rr': () => ({ prereqs: [], updates: [change.deleteRr({ ...A, data: IP })] }),
  cas: witnessRenewal,
  'cas-sha512': witnessRenewal,
};

/** Our UPDATE message, framed as src/dns/client.ts frames it. */
function ourUpdate(id: number, intent: Intent): Message {
  return {
    id,
    opcode: 'UPDATE',
    flags: NO_FLAGS,
    rcode: 0,
    questions: [{ name: ZONE, type: 'SOA', class: 'IN' }],
    answers: intent.prereqs,
    authorities: intent.updates,
    additionals: [],
  };
}

/** A record as compared: exactly the five RR fields. */
const fields = (rr: ResourceRecord) => ({ name: rr.name, type: rr.type, class: rr.class, ttl: rr.ttl, data: rr.data });

describe('nsupdate capture fixture', () => {
  it('holds one packet for every kind we build, each signed', () => {
    expect(fixture.packets.map((p) => p.kind).sort()).toEqual(Object.keys(INTENTS).sort());
    expect(fixture.nsupdate).toMatch(/^nsupdate 9\./);
    expect(fixture.keys.map((k) => k.algorithm).sort()).toEqual(['hmac-sha256', 'hmac-sha512']);
  });
});

describe.each(fixture.packets)('nsupdate packet $kind', (capture) => {
  const buf = Buffer.from(capture.hex, 'hex');
  const key = keyOf(capture.key);

  it('decodes, and equals our builders section by section, record by record', async () => {
    const theirs = decodeMessage(buf);
    expect(theirs.tsigOffset).toBeDefined();
    const t = theirs.message;

    const intent = await INTENTS[capture.kind]!();
    const ourWire = encodeMessage(ourUpdate(t.id, intent));
    const ours = decodeMessage(ourWire).message;

    // Header.
    expect({ id: t.id, opcode: t.opcode, flags: t.flags, rcode: t.rcode }).toEqual({
      id: ours.id,
      opcode: 'UPDATE',
      flags: NO_FLAGS,
      rcode: RCODE.NOERROR,
    });
    // Zone section.
    expect(t.questions).toEqual(ours.questions);
    expect(t.questions).toEqual([{ name: ZONE, type: 'SOA', class: 'IN' }]);
    // Prerequisite and update sections, record by record (order matters: it is what we send).
    expect(t.answers.length).toBe(ours.answers.length);
    t.answers.forEach((rr, i) => expect(fields(rr), `prerequisite ${i}`).toEqual(fields(ours.answers[i]!)));
    expect(t.authorities.length).toBe(ours.authorities.length);
    t.authorities.forEach((rr, i) => expect(fields(rr), `update ${i}`).toEqual(fields(ours.authorities[i]!)));
    // Additional section: only nsupdate's TSIG.
    expect(t.additionals.map((rr) => rr.type)).toEqual(['TSIG']);
    expect(ours.additionals).toEqual([]);
    // And our decoding of our own encoding is what the builders said.
    expect(ours.answers).toEqual(intent.prereqs.map(fields));
    expect(ours.authorities).toEqual(intent.updates.map(fields));
  });

  it("carries a TSIG whose MAC verifies with our TSIG code (BIND's variables encoding = ours)", () => {
    const d = decodeMessage(buf);
    const rr = d.message.additionals.at(-1)!;
    const tsig = rr.data as TsigData;
    expect(fields({ ...rr, data: null })).toEqual({ name: key.name, type: 'TSIG', class: 'ANY', ttl: 0, data: null });
    expect(tsig.algorithm).toBe(key.algorithm);
    expect(tsig.mac.length).toBe(key.algorithm === 'hmac-sha256' ? 32 : 64);
    expect(tsig.originalId).toBe(d.message.id);
    expect(tsig.error).toBe(0);
    expect(tsig.other.length).toBe(0);
    expect(tsig.fudge).toBe(300);

    expect(verifyRequest(buf, d, key)).toBe(true);
    // The check is not vacuous: another secret, or any changed byte before the MAC, fails.
    expect(verifyRequest(buf, d, { ...key, secret: Buffer.alloc(32, 1) })).toBe(false);
    for (const at of [3, 13, d.tsigOffset! - 1]) {
      const bent = Buffer.from(buf);
      bent[at]! ^= 0x01;
      let ok = false;
      try {
        ok = verifyRequest(bent, decodeMessage(bent), key);
      } catch (err) {
        expect((err as DnsError).code).toBe('DNS_MALFORMED');
      }
      expect(ok, `byte ${at} flipped`).toBe(false);
    }
  });
});

describe('name compression', () => {
  it("nsupdate compresses (so decoding above exercised pointers) and we do not", async () => {
    const cas = fixture.packets.find((p) => p.kind === 'cas')!;
    const buf = Buffer.from(cas.hex, 'hex');
    const d = decodeMessage(buf);
    const body = d.tsigOffset!;
    const ours = encodeMessage(ourUpdate(d.message.id, await witnessRenewal()));
    expect(body).toBeLessThan(ours.length);
    // The zone name in full: once in nsupdate's message (the zone section; every
    // later name points back into it), seven times in ours (zone + 2 prerequisites + 4 updates).
    const occurrences = (b: Buffer, what: Buffer): number => {
      let n = 0;
      for (let at = b.indexOf(what); at >= 0; at = b.indexOf(what, at + 1)) n++;
      return n;
    };
    expect(occurrences(buf.subarray(0, body), encodeName(ZONE))).toBe(1);
    expect(occurrences(ours, encodeName(ZONE))).toBe(7);
  });

  it('decodes a pointer chain (pointer to a name that itself ends in a pointer)', () => {
    // question "example.test" at 12; answer owner "www" + ptr(12); rdata CNAME "a" + ptr(owner at 30)
    const q = Buffer.concat([encodeName('example.test'), Buffer.from([0, 1, 0, 1])]);
    const owner = Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 12]);
    const rdata = Buffer.from([1, 0x61, 0xc0, 12 + q.length]);
    const fixed = Buffer.from([0, 5, 0, 1, 0, 0, 0, 60, 0, rdata.length]);
    const header = Buffer.from([0, 1, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
    const m = decodeMessage(Buffer.concat([header, q, owner, fixed, rdata])).message;
    expect(m.answers).toEqual([{ name: 'www.example.test', type: 'CNAME', class: 'IN', ttl: 60, data: 'a.www.example.test' }]);
  });
});

// --------------------------------------------------------------- round trips

function roundTrip(records: ResourceRecord[], section: 'answers' | 'authorities' | 'additionals' = 'answers'): ResourceRecord[] {
  const m: Message = {
    id: 0x1234,
    opcode: 'QUERY',
    flags: { qr: true, aa: true, tc: false, rd: false, ra: false },
    rcode: 0,
    questions: [{ name: 'example.test', type: 'ANY', class: 'IN' }],
    answers: [],
    authorities: [],
    additionals: [],
  };
  m[section] = records;
  const d = decodeMessage(encodeMessage(m)).message;
  expect({ ...d, [section]: [] }).toEqual({ ...m, [section]: [] });
  return d[section];
}

function encodeError(f: () => unknown): DnsError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(DnsError);
    return err as DnsError;
  }
  throw new Error('expected a DnsError');
}

const rr = (type: ResourceRecord['type'], data: ResourceRecord['data'], more: Partial<ResourceRecord> = {}): ResourceRecord => ({
  name: 'host.example.test',
  type,
  class: 'IN',
  ttl: 30,
  data,
  ...more,
});

describe('round trips', () => {
  it('A and AAAA', () => {
    const records = [rr('A', '10.10.10.10'), rr('A', '0.0.0.0'), rr('A', '255.255.255.255'), rr('AAAA', '2001:db8::1'), rr('AAAA', 'fe80::1:2:3:4')];
    expect(roundTrip(records)).toEqual(records);
  });

  it('the header bits and every section', () => {
    for (const section of ['answers', 'authorities', 'additionals'] as const) {
      expect(roundTrip([rr('A', '192.0.2.1')], section)).toEqual([rr('A', '192.0.2.1')]);
    }
    const m: Message = {
      id: 0xffff,
      opcode: 'UPDATE',
      flags: { qr: true, aa: false, tc: true, rd: true, ra: true },
      rcode: RCODE.NOTZONE,
      questions: [],
      answers: [],
      authorities: [],
      additionals: [],
    };
    expect(decodeMessage(encodeMessage(m)).message).toEqual(m);
  });

  it('names: case and a trailing dot are normalized, 63-byte labels and 255-byte names accepted', () => {
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`; // 255 bytes on the wire
    expect(encodeName(long).length).toBe(255);
    const [a, b] = roundTrip([rr('A', '192.0.2.1', { name: 'Host.EXAMPLE.test.' }), rr('CNAME', `${long}.`, { name: long })]);
    expect(a!.name).toBe('host.example.test');
    expect(b).toEqual({ name: long, type: 'CNAME', class: 'IN', ttl: 30, data: long });
    expect(roundTrip([rr('NS', 'NS1.Example.Test')])[0]!.data).toBe('ns1.example.test');
  });

  it('rejects labels over 63 bytes, empty labels and names over 255 bytes (DNS_ENCODE)', () => {
    expect(encodeError(() => encodeName(`${'a'.repeat(64)}.test`)).code).toBe('DNS_ENCODE');
    expect(encodeError(() => encodeName('a..test')).code).toBe('DNS_ENCODE');
    const tooLong = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`; // 256 bytes
    expect(encodeError(() => encodeName(tooLong)).code).toBe('DNS_ENCODE');
    expect(encodeError(() => encodeMessage({ ...emptyQuery(), answers: [rr('A', '192.0.2.1', { name: tooLong })] })).code).toBe('DNS_ENCODE');
  });

  it('TXT: several strings, empty strings, UTF-8, and exactly 255 bytes', () => {
    const records = [
      rr('TXT', ['v=1 holder=primary epoch=1 seq=0 at=0']),
      rr('TXT', ['one', '', 'three']),
      rr('TXT', ['grüße ☃']),
      rr('TXT', ['x'.repeat(255), 'y'.repeat(255)]),
    ];
    expect(roundTrip(records)).toEqual(records);
  });

  it('TXT: a 256-byte string is refused with DNS_ENCODE (dns-packet would corrupt it)', () => {
    const err = encodeError(() => encodeMessage({ ...emptyQuery(), answers: [rr('TXT', ['x'.repeat(256)])] }));
    expect(err.code).toBe('DNS_ENCODE');
    expect(err.message).toMatch(/256 bytes exceeds 255/);
    // The limit is in bytes, not characters: 128 two-byte characters are 256 bytes.
    expect(encodeError(() => encodeMessage({ ...emptyQuery(), answers: [rr('TXT', ['é'.repeat(128)])] })).code).toBe('DNS_ENCODE');
    expect(roundTrip([rr('TXT', ['é'.repeat(127) + 'x'])])[0]!.data).toEqual(['é'.repeat(127) + 'x']);
  });

  it('SOA', () => {
    const soa: SoaData = {
      mname: 'ns1.example.test',
      rname: 'hostmaster.example.test',
      serial: 4_294_967_295,
      refresh: 3600,
      retry: 600,
      expire: 1_209_600,
      minimum: 30,
    };
    expect(roundTrip([rr('SOA', soa, { name: 'example.test' })], 'authorities')).toEqual([rr('SOA', soa, { name: 'example.test' })]);
  });

  it('class NONE and ANY with empty rdata (RFC 2136 deletes and prerequisites)', () => {
    const records = [
      rr('A', null, { class: 'ANY', ttl: 0 }),
      rr('A', null, { class: 'NONE', ttl: 0 }),
      rr('ANY', null, { class: 'ANY', ttl: 0 }),
      rr('ANY', null, { class: 'NONE', ttl: 0 }),
      rr('TXT', null, { class: 'ANY', ttl: 0 }),
      rr('A', '10.10.10.10', { class: 'NONE', ttl: 0 }),
    ];
    const back = roundTrip(records);
    expect(back).toEqual(records);
    // On the wire: class 254 / 255, rdlength 0.
    const wire = encodeMessage({ ...emptyQuery(), answers: [records[1]!] });
    expect(wire.subarray(-10).toString('hex')).toBe('0001' + '00fe' + '00000000' + '0000');
  });

  it('unknown types and classes travel as numbers with raw rdata', () => {
    const records = [
      rr(65280, Buffer.from([1, 2, 3, 0, 0xff])),
      rr(99, Buffer.from('v=spf1 -all')),
      rr('A', '192.0.2.1', { class: 3 }), // CHAOS
      rr(65281, null),
    ];
    expect(roundTrip(records)).toEqual(records);
    // Without a Buffer there is no way to encode an unknown type.
    expect(encodeError(() => encodeMessage({ ...emptyQuery(), answers: [rr(65280, 'text')] })).code).toBe('DNS_ENCODE');
    expect(encodeError(() => encodeMessage({ ...emptyQuery(), answers: [rr('BOGUS' as 'A', '1.2.3.4')] })).code).toBe('DNS_ENCODE');
  });

  it('TSIG records round-trip and are located', () => {
    const key: TsigKey = { name: 'k.example', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 7) };
    const signed = signRequest({ ...emptyQuery(), answers: [rr('A', '192.0.2.1')] }, key, 1_700_000_000);
    const d = decodeMessage(signed.wire);
    const tsigLength = encodeName('k.example').length + 10 + encodeName('hmac-sha256').length + 10 + 32 + 6;
    expect(d.tsigOffset).toBe(signed.wire.length - tsigLength);
    expect(d.message.additionals).toEqual([
      {
        name: 'k.example',
        type: 'TSIG',
        class: 'ANY',
        ttl: 0,
        data: { algorithm: 'hmac-sha256', timeSigned: 1_700_000_000, fudge: 300, mac: signed.mac, originalId: 0x1234, error: 0, other: Buffer.alloc(0) },
      },
    ]);
    expect(verifyRequest(signed.wire, d, key)).toBe(true);
    // 48-bit time beyond 2^32 survives.
    const far = signRequest(emptyQuery(), key, 2 ** 40 + 5);
    expect((decodeMessage(far.wire).message.additionals[0]!.data as TsigData).timeSigned).toBe(2 ** 40 + 5);
  });

  it('extended RCODE via OPT: upper 8 bits from the OPT TTL', () => {
    // BADCOOKIE (23) = 0x017: header RCODE 7, OPT extended RCODE 1.
    const opt = (extended: number): ResourceRecord => ({ name: '.', type: 'OPT', class: 1232, ttl: (extended << 24) >>> 0, data: null });
    const m: Message = { ...emptyQuery(), flags: { ...NO_FLAGS, qr: true }, rcode: 7, additionals: [opt(1)] };
    const d = decodeMessage(encodeMessage(m)).message;
    expect(d.rcode).toBe(23);
    expect(d.additionals).toEqual([opt(1)]);
    // BADVERS (16) via OPT, and the full 12 bits.
    expect(decodeMessage(encodeMessage({ ...m, rcode: 0, additionals: [opt(1)] })).message.rcode).toBe(16);
    expect(decodeMessage(encodeMessage({ ...m, rcode: 0xf, additionals: [opt(0xff)] })).message.rcode).toBe(0xfff);
    // Without OPT the RCODE is the header's 4 bits.
    expect(decodeMessage(encodeMessage({ ...m, additionals: [] })).message.rcode).toBe(7);
  });
});

function emptyQuery(): Message {
  return {
    id: 0x1234,
    opcode: 'QUERY',
    flags: NO_FLAGS,
    rcode: 0,
    questions: [{ name: 'example.test', type: 'SOA', class: 'IN' }],
    answers: [],
    authorities: [],
    additionals: [],
  };
}

describe('malformed input is DNS_MALFORMED', () => {
  const valid = (): Buffer => encodeMessage({ ...emptyQuery(), answers: [rr('A', '192.0.2.1')] });
  const malformed = (buf: Buffer): string => {
    try {
      decodeMessage(buf);
    } catch (err) {
      expect(err).toBeInstanceOf(DnsError);
      expect((err as DnsError).code).toBe('DNS_MALFORMED');
      return (err as DnsError).message;
    }
    throw new Error(`decoded ${buf.toString('hex')}`);
  };

  it('short header, truncation, trailing bytes, absurd counts', () => {
    malformed(Buffer.alloc(0));
    malformed(Buffer.alloc(11));
    malformed(valid().subarray(0, -1));
    expect(malformed(Buffer.concat([valid(), Buffer.from([0])]))).toMatch(/trailing/);
    const counts = valid();
    counts.writeUInt16BE(0xffff, 6);
    expect(malformed(counts)).toMatch(/counts/);
  });

  it('rdata that does not fill its length', () => {
    const w = valid();
    w.writeUInt16BE(5, w.length - 6); // A with rdlength 5
    malformed(Buffer.concat([w, Buffer.from([0])]));
  });

  it('a compression pointer to itself or forward', () => {
    const header = Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(malformed(Buffer.concat([header, Buffer.from([0xc0, 12, 0, 1, 0, 1])]))).toMatch(/pointer/);
    expect(malformed(Buffer.concat([header, Buffer.from([0xc0, 14, 0, 0, 1, 0, 1])]))).toMatch(/pointer/);
  });

  it('a TSIG record with empty rdata (found by the fuzz: verifyResponse read .mac of null)', () => {
    const header = Buffer.from([0x37, 0x56, 0xa8, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    const tsig = Buffer.concat([encodeName('k.example'), Buffer.from([0, 250, 0, 255, 0, 0, 0, 0, 0, 0])]);
    expect(malformed(Buffer.concat([header, tsig]))).toMatch(/TSIG record without rdata/);
  });

  it('a TSIG that is not the last record', () => {
    const key: TsigKey = { name: 'k.example', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 7) };
    const signed = decodeMessage(signRequest(emptyQuery(), key, 1_700_000_000).wire).message;
    const wire = encodeMessage({ ...signed, additionals: [...signed.additionals, rr('A', '192.0.2.1')] });
    expect(malformed(wire)).toMatch(/TSIG record is not the last/);
  });
});
