/**
 * TSIG (RFC 8945): our requests, and responses built the way a server builds
 * them, with an independent implementation of the server side written here:
 * MAC = HMAC(u16 len(request MAC) | request MAC | response without TSIG | TSIG variables).
 * Anything but an intact response to OUR request signed with OUR key must
 * never come out 'ok'.
 */
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TsigAlgorithm, TsigKey } from '../../src/config/keyfile.js';
import { DnsError } from '../../src/dns/errors.js';
import { signRequest, verifyRequest, verifyResponse, type TsigVerdict } from '../../src/dns/tsig.js';
import { change, prereq } from '../../src/dns/update.js';
import { decodeMessage, encodeMessage, NO_FLAGS, RCODE, type Message, type TsigData } from '../../src/dns/wire.js';

const T = 1_700_000_000;
const ALGORITHMS: TsigAlgorithm[] = ['hmac-sha256', 'hmac-sha512'];
const macLength = (a: TsigAlgorithm): number => (a === 'hmac-sha256' ? 32 : 64);

function makeKey(algorithm: TsigAlgorithm, name = 'failover-agent.example.test'): TsigKey {
  return { name, algorithm, secret: randomBytes(macLength(algorithm)) };
}

function updateRequest(): Message {
  const a = { name: 'syslog.example.test', type: 'A' as const };
  return {
    id: 0xbeef,
    opcode: 'UPDATE',
    flags: NO_FLAGS,
    rcode: 0,
    questions: [{ name: 'example.test', type: 'SOA', class: 'IN' }],
    answers: prereq.rrsetEquals(a, ['10.10.10.10']),
    authorities: [change.deleteRrset(a), change.add({ ...a, data: '10.20.20.20' }, 30)],
    additionals: [],
  };
}

// ------------------------------------------------- the server side, by hand

/** Uncompressed lowercase wire name. */
function wireName(name: string): Buffer {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
}

const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u48 = (n: number): Buffer => {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
};

interface ReplyOptions {
  /** Key the server signs with (default: the client's). */
  key?: TsigKey;
  /** Request MAC chained in (default: the real one). */
  requestMac?: Buffer;
  rcode?: number;
  /** TSIG error field. */
  error?: number;
  other?: Buffer;
  /** Time Signed (default T). */
  time?: number;
  fudge?: number;
  /** Send only the first n bytes of the MAC (RFC 8945 §5.2.2.1 truncation). */
  truncateMac?: number;
  /** BADSIG/BADKEY style: no MAC at all. */
  noMac?: boolean;
  /** Algorithm name written in the TSIG (default: the signing key's). */
  algorithmName?: string;
}

/** A response to `request` (a signed wire message), signed as a server does. */
function serverReply(request: { wire: Buffer; mac: Buffer }, clientKey: TsigKey, o: ReplyOptions = {}): Buffer {
  const req = decodeMessage(request.wire).message;
  const key = o.key ?? clientKey;
  const algorithmName = o.algorithmName ?? key.algorithm;
  const body = encodeMessage({
    id: req.id,
    opcode: req.opcode,
    flags: { ...NO_FLAGS, qr: true },
    rcode: o.rcode ?? RCODE.NOERROR,
    questions: req.questions,
    answers: [],
    authorities: [],
    additionals: [],
  });
  const time = o.time ?? T;
  const fudge = o.fudge ?? 300;
  const error = o.error ?? 0;
  const other = o.other ?? Buffer.alloc(0);
  const variables = Buffer.concat([
    wireName(key.name),
    u16(255), // class ANY
    Buffer.alloc(4), // TTL 0
    wireName(algorithmName),
    u48(time),
    u16(fudge),
    u16(error),
    u16(other.length),
    other,
  ]);
  const requestMac = o.requestMac ?? request.mac;
  const hash = key.algorithm === 'hmac-sha256' ? 'sha256' : 'sha512';
  let mac = createHmac(hash, key.secret).update(u16(requestMac.length)).update(requestMac).update(body).update(variables).digest();
  if (o.noMac) mac = Buffer.alloc(0);
  if (o.truncateMac !== undefined) mac = mac.subarray(0, o.truncateMac);
  const rdata = Buffer.concat([wireName(algorithmName), u48(time), u16(fudge), u16(mac.length), mac, u16(req.id), u16(error), u16(other.length), other]);
  const out = Buffer.concat([body, wireName(key.name), u16(250), u16(255), Buffer.alloc(4), u16(rdata.length), rdata]);
  out.writeUInt16BE(1, 10); // ARCOUNT
  return out;
}

/** Decodes and verifies; a message that does not decode is a DNS_MALFORMED verdict (the transport drops it). */
function verdict(buf: Buffer, key: TsigKey, requestMac: Buffer, now = T): TsigVerdict | 'malformed' {
  let decoded;
  try {
    decoded = decodeMessage(buf);
  } catch (err) {
    expect(err).toBeInstanceOf(DnsError);
    expect((err as DnsError).code).toBe('DNS_MALFORMED');
    return 'malformed';
  }
  return verifyResponse(buf, decoded, key, requestMac, now);
}

const kindOf = (v: TsigVerdict | 'malformed'): string => (typeof v === 'string' ? v : v.kind);

// -------------------------------------------------------------------- tests

describe.each(ALGORITHMS)('%s', (algorithm) => {
  const key = makeKey(algorithm);
  const request = signRequest(updateRequest(), key, T);

  it('signs requests that verify on the server side, with a full-length MAC', () => {
    expect(request.mac.length).toBe(macLength(algorithm));
    expect(request.timeSigned).toBe(T);
    const d = decodeMessage(request.wire);
    expect(verifyRequest(request.wire, d, key)).toBe(true);
    const t = d.message.additionals.at(-1)!.data as TsigData;
    expect(t).toMatchObject({ algorithm, timeSigned: T, fudge: 300, originalId: 0xbeef, error: 0 });
    expect(t.mac.equals(request.mac)).toBe(true);
    expect(verifyRequest(request.wire, d, makeKey(algorithm))).toBe(false);
  });

  it('sign -> server reply -> verify: ok, with the clock offset from the server time', () => {
    const reply = serverReply(request, key, { time: T + 3 });
    const v = verdict(reply, key, request.mac);
    expect(v).toMatchObject({ kind: 'ok', offsetSeconds: 3, serverTime: T + 3, timeOk: true });
    expect((v as { tsig: TsigData }).tsig.error).toBe(0);
    // Our clock behind the server's by more than the fudge: still authentic, but not in time.
    expect(verdict(reply, key, request.mac, T - 400)).toMatchObject({ kind: 'ok', offsetSeconds: 403, timeOk: false });
    expect(verdict(serverReply(request, key, { time: T - 7 }), key, request.mac)).toMatchObject({ kind: 'ok', offsetSeconds: -7 });
    // The rcode is covered too: a signed NXRRSET verifies just the same.
    expect(kindOf(verdict(serverReply(request, key, { rcode: RCODE.NXRRSET }), key, request.mac))).toBe('ok');
  });

  it('a reply signed with another secret, another key name or another algorithm is bad', () => {
    expect(kindOf(verdict(serverReply(request, key, { key: { ...key, secret: randomBytes(32) } }), key, request.mac))).toBe('bad');
    expect(kindOf(verdict(serverReply(request, key, { key: { ...key, name: 'other.example.test' } }), key, request.mac))).toBe('bad');
    const other: TsigAlgorithm = algorithm === 'hmac-sha256' ? 'hmac-sha512' : 'hmac-sha256';
    expect(kindOf(verdict(serverReply(request, key, { key: { ...key, algorithm: other } }), key, request.mac))).toBe('bad');
    // Right MAC computation, wrong algorithm name in the record.
    expect(kindOf(verdict(serverReply(request, key, { algorithmName: 'hmac-md5.sig-alg.reg.int' }), key, request.mac))).toBe('bad');
  });

  it('a flipped bit anywhere in the reply is never ok (the message ID aside, by RFC design)', () => {
    const reply = serverReply(request, key);
    expect(kindOf(verdict(reply, key, request.mac))).toBe('ok');
    const owner = decodeMessage(reply).tsigOffset!;
    const algorithmAt = owner + wireName(key.name).length + 10;
    const inTsigNames = (i: number): boolean =>
      (i >= owner && i < algorithmAt - 10) || (i >= algorithmAt && i < algorithmAt + wireName(algorithm).length);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < reply.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const bent = Buffer.from(reply);
        bent[i]! ^= 1 << bit;
        const kind = kindOf(verdict(bent, key, request.mac));
        if (i < 2) {
          // RFC 8945 §4.3.2: the MAC covers the Original ID, not the header ID
          // (forwarders may change it). The transport matches the header ID to
          // the attempt whose request MAC must then verify: a changed ID makes
          // the reply match no attempt, or the wrong attempt's MAC.
          expect(kind, `byte ${i} bit ${bit}`).toBe('ok');
          continue;
        }
        const letter = /[a-z]/i.test(String.fromCharCode(reply[i]!));
        if (bit === 5 && letter && inTsigNames(i)) {
          // Upper/lower case of the key and algorithm names: names compare
          // case-insensitively and the MAC covers their canonical (lowercase)
          // form (RFC 8945 §4.3.3), as BIND does.
          expect(['ok', 'bad']).toContain(kind);
          continue;
        }
        expect(kind, `byte ${i} bit ${bit}`).not.toBe('ok');
        outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
      }
    }
    expect(outcomes.get('bad')).toBeGreaterThan(0);
    expect(outcomes.get('malformed')).toBeGreaterThan(0);
  });

  it('a TSIG record whose class is not ANY or whose TTL is not 0 is bad (RFC 8945 §4.2)', () => {
    // The MAC covers the constants ANY/0, not the fields: without this check
    // both could be changed in flight unnoticed.
    const reply = serverReply(request, key);
    const classAt = decodeMessage(reply).tsigOffset! + wireName(key.name).length + 2;
    const inClass = Buffer.from(reply);
    inClass.writeUInt16BE(1, classAt);
    expect(verdict(inClass, key, request.mac)).toEqual({ kind: 'bad', why: 'TSIG with class IN TTL 0' });
    const withTtl = Buffer.from(reply);
    withTtl.writeUInt32BE(300, classAt + 2);
    expect(verdict(withTtl, key, request.mac)).toEqual({ kind: 'bad', why: 'TSIG with class ANY TTL 300' });
    expect(verifyRequest(withTtl, decodeMessage(withTtl), key)).toBe(false);
  });

  it('a reply chained to another request MAC, or to none, is bad', () => {
    const reply = serverReply(request, key);
    const otherRequest = signRequest(updateRequest(), key, T + 1);
    expect(kindOf(verdict(reply, key, otherRequest.mac))).toBe('bad');
    expect(kindOf(verdict(reply, key, Buffer.alloc(0)))).toBe('bad');
    expect(kindOf(verdict(serverReply(request, key, { requestMac: Buffer.alloc(0) }), key, request.mac))).toBe('bad');
    expect(kindOf(verdict(serverReply(request, key, { requestMac: otherRequest.mac }), key, request.mac))).toBe('bad');
    // A replay of the reply to another request (same ID) does not verify for that request.
    const again = signRequest(updateRequest(), key, T);
    expect(again.mac.equals(request.mac)).toBe(true); // same message, same time: same MAC...
    const later = signRequest(updateRequest(), key, T + 10);
    expect(kindOf(verdict(reply, key, later.mac))).toBe('bad'); // ...a fresh signature is not
  });

  it('a truncated MAC is bad (we require the full length)', () => {
    for (const n of [1, 10, 16, macLength(algorithm) - 1]) {
      expect(kindOf(verdict(serverReply(request, key, { truncateMac: n }), key, request.mac)), `${n} bytes`).toBe('bad');
    }
    // An empty MAC without a TSIG error is not an error reply either.
    expect(verdict(serverReply(request, key, { noMac: true }), key, request.mac)).toEqual({ kind: 'bad', why: 'empty MAC' });
  });

  it('a TSIG that is not the last record never verifies (FORMERR, RFC 8945 §5.2)', () => {
    const reply = serverReply(request, key);
    const trailing = Buffer.concat([reply, wireName('x.example.test'), u16(1), u16(1), Buffer.alloc(4), u16(4), Buffer.from([192, 0, 2, 1])]);
    trailing.writeUInt16BE(2, 10);
    expect(verdict(trailing, key, request.mac)).toBe('malformed');
    // A TSIG moved to the answer section is no TSIG at all.
    const moved = Buffer.from(reply);
    moved.writeUInt16BE(1, 6);
    moved.writeUInt16BE(0, 10);
    expect(kindOf(verdict(moved, key, request.mac))).toBe('unsigned');
  });

  it('an unsigned reply is unsigned', () => {
    const plain = encodeMessage({ ...updateRequest(), flags: { ...NO_FLAGS, qr: true }, answers: [], authorities: [] });
    expect(verdict(plain, key, request.mac)).toEqual({ kind: 'unsigned' });
  });

  it.each([
    ['BADSIG', RCODE.BADSIG],
    ['BADKEY', RCODE.BADKEY],
  ])('a %s reply with an empty MAC is unsigned-error, never ok', (_name, error) => {
    const reply = serverReply(request, key, { rcode: RCODE.NOTAUTH, error, noMac: true });
    expect(verdict(reply, key, request.mac)).toEqual({ kind: 'unsigned-error', error });
    // Whoever sends it, with whatever key name: it proves nothing either way.
    const stranger = serverReply(request, key, { rcode: RCODE.NOTAUTH, error, noMac: true, key: makeKey(algorithm, 'unknown.key') });
    expect(verdict(stranger, key, request.mac)).toEqual({ kind: 'unsigned-error', error });
  });

  it('BADTIME: signed, with the server clock in 6-byte Other Data giving the offset', () => {
    // RFC 8945 §5.2.3: Time Signed echoes the request, Other Data is the server's time.
    const server = T + 1000;
    const reply = serverReply(request, key, { rcode: RCODE.NOTAUTH, error: RCODE.BADTIME, time: T, other: u48(server) });
    const v = verdict(reply, key, request.mac);
    expect(v).toMatchObject({ kind: 'ok', serverTime: server, offsetSeconds: 1000 });
    expect((v as { tsig: TsigData }).tsig.error).toBe(RCODE.BADTIME);
    // A server whose clock is behind ours.
    const behind = serverReply(request, key, { rcode: RCODE.NOTAUTH, error: RCODE.BADTIME, other: u48(T - 3600) });
    expect(verdict(behind, key, request.mac)).toMatchObject({ kind: 'ok', serverTime: T - 3600, offsetSeconds: -3600 });
    // Other Data of another length is not a time: fall back to Time Signed.
    const odd = serverReply(request, key, { rcode: RCODE.NOTAUTH, error: RCODE.BADTIME, time: T + 5, other: Buffer.from([1, 2, 3, 4]) });
    expect(verdict(odd, key, request.mac)).toMatchObject({ kind: 'ok', serverTime: T + 5, offsetSeconds: 5 });
    // A forged BADTIME (no valid MAC) is never ok.
    const forged = serverReply(request, key, { rcode: RCODE.NOTAUTH, error: RCODE.BADTIME, other: u48(server), key: makeKey(algorithm) });
    expect(kindOf(verdict(forged, key, request.mac))).toBe('bad');
  });
});

// --------------------------------------------------- interop with BIND (nsupdate)

interface Fixture {
  keys: { name: string; algorithm: TsigAlgorithm; secret: string }[];
  packets: { kind: string; key: string; hex: string; response: string }[];
}
const fixture = JSON.parse(fs.readFileSync(new URL('./fixtures/nsupdate-capture.json', import.meta.url), 'utf8')) as Fixture;

describe('responses nsupdate accepted', () => {
  // scripts/capture-nsupdate-fixture.mjs answered each request with a signed
  // response and required nsupdate to exit 0, i.e. BIND verified them. Ours
  // must verify them too, chained to the MAC of nsupdate's request.
  it.each(fixture.packets.map((p) => [p.kind, p] as const))('%s', (_kind, p) => {
    const k = fixture.keys.find((x) => x.name === p.key)!;
    const key: TsigKey = { name: k.name, algorithm: k.algorithm, secret: Buffer.from(k.secret, 'base64') };
    const req = decodeMessage(Buffer.from(p.hex, 'hex'));
    const reqTsig = req.message.additionals.at(-1)!.data as TsigData;
    const resp = Buffer.from(p.response, 'hex');
    const respTsig = decodeMessage(resp).message.additionals.at(-1)!.data as TsigData;
    expect(verdict(resp, key, reqTsig.mac, respTsig.timeSigned)).toMatchObject({ kind: 'ok', offsetSeconds: 0, timeOk: true });
    expect(kindOf(verdict(resp, key, Buffer.alloc(reqTsig.mac.length), respTsig.timeSigned))).toBe('bad');
    // And the server side written above computes the same MAC as the capture script did.
    const ours = serverReply({ wire: Buffer.from(p.hex, 'hex'), mac: reqTsig.mac }, key, { time: respTsig.timeSigned });
    expect(ours.equals(resp)).toBe(true);
  });
});
