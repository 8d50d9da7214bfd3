/**
 * The GSS-TSIG signer on a fake MIC (HMAC-SHA256 truncated to a 28-byte
 * "token", failing like gss_verify_mic): the digest it hands gss_get_mic is
 * RFC 8945's, laid out by hand here; answers verify in the RFC layout, in
 * Samba's (request MAC without its length), and never otherwise.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GssError } from '../../src/dns/gss/addon.js';
import { gssTsigSigner, type MicPort } from '../../src/dns/gss/signer.js';
import { change, prereq } from '../../src/dns/update.js';
import { decodeMessage, encodeMessage, encodeName, encodeRecord, NO_FLAGS, RCODE, type Message, type TsigData } from '../../src/dns/wire.js';

const T = 1_765_000_000;
const KEY_NAME = '3141592653.sig-ns1.example.test';
const GSS_S_BAD_SIG = 6 << 16;
const GSS_S_DUPLICATE_TOKEN = 1 << 1;

class FakeMic implements MicPort {
  readonly verified: Buffer[] = [];
  /** Set to make the next verifyMic fail as a replay. */
  duplicate = false;
  constructor(readonly secret = Buffer.alloc(32, 0x42)) {}
  mic(message: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(message).digest().subarray(0, 28);
  }
  getMic(message: Buffer): Buffer {
    return this.mic(message);
  }
  verifyMic(message: Buffer, mic: Buffer): void {
    this.verified.push(message);
    if (this.duplicate) throw new GssError('gss_verify_mic: The token was a duplicate of an earlier token', GSS_S_DUPLICATE_TOKEN, 0);
    const want = this.mic(message);
    if (mic.length !== want.length || !timingSafeEqual(mic, want)) throw new GssError('gss_verify_mic: A token had an invalid Message Integrity Check (MIC)', GSS_S_BAD_SIG, 0);
  }
}

function update(): Message {
  const a = { name: 'syslog.example.test', type: 'A' as const };
  return {
    id: 0x4242,
    opcode: 'UPDATE',
    flags: NO_FLAGS,
    rcode: 0,
    questions: [{ name: 'example.test', type: 'SOA', class: 'IN' }],
    answers: prereq.rrsetEquals(a, ['10.10.10.10']),
    authorities: [change.deleteRrset(a), change.add({ ...a, data: '10.20.20.20' }, 30)],
    additionals: [],
  };
}

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u48 = (n: number): Buffer => {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
};

/** RFC 8945 §4.3.3's TSIG variables, by hand. */
function variables(keyName: string, t: { timeSigned: number; fudge: number; error: number; other: Buffer }): Buffer {
  return Buffer.concat([encodeName(keyName), u16(255), Buffer.alloc(4), encodeName('gss-tsig'), u48(t.timeSigned), u16(t.fudge), u16(t.error), u16(t.other.length), t.other]);
}

type Layout = 'rfc' | 'samba' | 'no-request-mac';

/** A server's signed answer to `request` with the MAC laid out as `layout`. */
function answer(request: Message, requestMac: Buffer, mic: FakeMic, layout: Layout, opts: { keyName?: string; rcode?: number; tamper?: boolean } = {}): Buffer {
  const keyName = opts.keyName ?? KEY_NAME;
  const unsigned = encodeMessage({ ...request, flags: { ...request.flags, qr: true }, rcode: opts.rcode ?? 0 });
  const t = { timeSigned: T + 1, fudge: 300, error: 0, other: Buffer.alloc(0) };
  const chained = layout === 'rfc' ? [u16(requestMac.length), requestMac] : layout === 'samba' ? [requestMac] : [];
  const mac = mic.mic(Buffer.concat([...chained, unsigned, variables(keyName, t)]));
  const tsig: TsigData = { algorithm: 'gss-tsig', ...t, mac, originalId: request.id };
  const body = Buffer.from(unsigned);
  if (opts.tamper) body[body.length - 1] ^= 1;
  const wire = Buffer.concat([body, encodeRecord({ name: keyName, type: 'TSIG', class: 'ANY', ttl: 0, data: tsig })]);
  wire.writeUInt16BE(wire.readUInt16BE(10) + 1, 10);
  return wire;
}

describe('GSS-TSIG signer', () => {
  it('signs with gss_get_mic over the RFC 8945 digest, algorithm gss-tsig', () => {
    const mic = new FakeMic();
    const signer = gssTsigSigner(KEY_NAME, mic);
    expect(signer).toMatchObject({ keyName: KEY_NAME, algorithm: 'gss-tsig' });
    const s = signer.sign(update(), T + 0.9);
    const d = decodeMessage(s.wire);
    const rr = d.message.additionals.at(-1)!;
    expect(rr).toMatchObject({ name: KEY_NAME, type: 'TSIG', class: 'ANY', ttl: 0 });
    const t = rr.data as TsigData;
    expect(t).toMatchObject({ algorithm: 'gss-tsig', timeSigned: T, fudge: 300, originalId: 0x4242, error: 0 });
    const digest = Buffer.concat([encodeMessage(update()), variables(KEY_NAME, { timeSigned: T, fudge: 300, error: 0, other: Buffer.alloc(0) })]);
    expect(t.mac).toEqual(mic.mic(digest));
    expect(s.mac).toEqual(t.mac);
    expect(s.timeSigned).toBe(T);
  });

  it('verifies an RFC layout answer with one gss_verify_mic', () => {
    const mic = new FakeMic();
    const signer = gssTsigSigner(KEY_NAME, mic);
    const s = signer.sign(update(), T);
    const buf = answer(update(), s.mac, mic, 'rfc');
    const v = signer.verify(buf, decodeMessage(buf), s.mac, T);
    expect(v).toMatchObject({ kind: 'ok', offsetSeconds: 1, timeOk: true });
    expect(v).not.toHaveProperty('quirk');
    expect(mic.verified).toHaveLength(1);
  });

  it("verifies Samba's layout (request MAC without its length) after the RFC one, and says so", () => {
    const mic = new FakeMic();
    const signer = gssTsigSigner(KEY_NAME, mic);
    const s = signer.sign(update(), T);
    const buf = answer(update(), s.mac, mic, 'samba', { rcode: RCODE.NOERROR });
    const v = signer.verify(buf, decodeMessage(buf), s.mac, T);
    expect(v).toMatchObject({ kind: 'ok', quirk: 'request-mac-without-length' });
    expect(mic.verified).toHaveLength(2);
    expect(mic.verified[0]!.subarray(0, 2)).toEqual(u16(s.mac.length));
    expect(mic.verified[1]!.subarray(0, s.mac.length)).toEqual(s.mac);
  });

  it('never accepts an answer whose MAC chains no request MAC, another request, or a changed body', () => {
    const mic = new FakeMic();
    const signer = gssTsigSigner(KEY_NAME, mic);
    const s = signer.sign(update(), T);
    const other = signer.sign(update(), T + 1);
    const cases = [
      answer(update(), s.mac, mic, 'no-request-mac'),
      answer(update(), other.mac, mic, 'rfc'),
      answer(update(), other.mac, mic, 'samba'),
      answer(update(), s.mac, mic, 'rfc', { tamper: true }),
      answer(update(), s.mac, mic, 'samba', { tamper: true }),
      answer(update(), s.mac, new FakeMic(Buffer.alloc(32, 1)), 'rfc'),
    ];
    for (const buf of cases) expect(signer.verify(buf, decodeMessage(buf), s.mac, T)).toMatchObject({ kind: 'bad', why: expect.stringMatching(/invalid Message Integrity Check/) });
  });

  it('does not retry a MIC refused for another reason than a bad signature (a replay)', () => {
    const mic = new FakeMic();
    const signer = gssTsigSigner(KEY_NAME, mic);
    const s = signer.sign(update(), T);
    const buf = answer(update(), s.mac, mic, 'samba');
    mic.duplicate = true;
    expect(signer.verify(buf, decodeMessage(buf), s.mac, T)).toEqual({ kind: 'bad', why: expect.stringMatching(/duplicate/) });
    expect(mic.verified).toHaveLength(1);
  });

  it("verifies the TKEY answer to an unsigned query: no request MAC at all, and only that layout", () => {
    const mic = new FakeMic();
    const signer = gssTsigSigner(KEY_NAME, mic);
    const q: Message = { ...update(), opcode: 'QUERY', questions: [{ name: KEY_NAME, type: 'TKEY', class: 'ANY' }], answers: [], authorities: [] };
    const buf = answer(q, Buffer.alloc(0), mic, 'no-request-mac');
    expect(signer.verify(buf, decodeMessage(buf), Buffer.alloc(0), T)).toMatchObject({ kind: 'ok' });
    const withPrefix = answer(q, Buffer.alloc(0), mic, 'rfc'); // a 0x0000 length that is not there
    expect(signer.verify(withPrefix, decodeMessage(withPrefix), Buffer.alloc(0), T).kind).toBe('bad');
  });

  it('reports unsigned answers, unsigned TSIG errors, and another key name, without asking GSS-API', () => {
    const mic = new FakeMic();
    const signer = gssTsigSigner(KEY_NAME, mic);
    const s = signer.sign(update(), T);
    const plain = encodeMessage({ ...update(), flags: { ...NO_FLAGS, qr: true }, rcode: RCODE.NXRRSET });
    expect(signer.verify(plain, decodeMessage(plain), s.mac, T)).toEqual({ kind: 'unsigned' });
    const badkey = Buffer.concat([
      plain,
      encodeRecord({ name: KEY_NAME, type: 'TSIG', class: 'ANY', ttl: 0, data: { algorithm: 'gss-tsig', timeSigned: T, fudge: 300, mac: Buffer.alloc(0), originalId: 0x4242, error: RCODE.BADKEY, other: Buffer.alloc(0) } }),
    ]);
    badkey.writeUInt16BE(1, 10);
    expect(signer.verify(badkey, decodeMessage(badkey), s.mac, T)).toEqual({ kind: 'unsigned-error', error: RCODE.BADKEY });
    const otherKey = answer(update(), s.mac, mic, 'rfc', { keyName: 'other.sig-ns1.example.test' });
    expect(signer.verify(otherKey, decodeMessage(otherKey), s.mac, T)).toMatchObject({ kind: 'bad', why: expect.stringMatching(/signed with key/) });
    expect(mic.verified).toHaveLength(0);
  });

  it('turns anything verifyMic throws into a bad verdict (verify never throws)', () => {
    const signer = gssTsigSigner(KEY_NAME, { getMic: () => Buffer.alloc(28), verifyMic: () => { throw new TypeError('context is not established'); } });
    const s = signer.sign(update(), T);
    const buf = answer(update(), s.mac, new FakeMic(), 'rfc');
    expect(signer.verify(buf, decodeMessage(buf), s.mac, T)).toEqual({ kind: 'bad', why: 'context is not established' });
  });
});
