/**
 * TKEY (RFC 2930) in the codec: the GSS-API negotiation of RFC 3645 carries
 * the context tokens in its key data. Bytes laid out by hand from RFC 2930 §2,
 * then round trips and the decoder's bounds.
 */
import { describe, expect, it } from 'vitest';
import { DnsError } from '../../src/dns/errors.js';
import { decodeMessage, encodeMessage, encodeName, encodeRecord, NO_FLAGS, TKEY_MODE, type Message, type TkeyData } from '../../src/dns/wire.js';

const token = Buffer.from('60820123a0030201', 'hex');

const tkey: TkeyData = {
  algorithm: 'gss-tsig',
  inception: 1_765_000_000,
  expiration: 1_765_086_400,
  mode: TKEY_MODE.GSSAPI,
  error: 0,
  key: token,
  other: Buffer.alloc(0),
};

/** RFC 2930 §2 by hand: algorithm, inception, expiration, mode, error, key size, key, other size, other. */
function handRdata(t: TkeyData): Buffer {
  const b = Buffer.alloc(16 + t.key.length + t.other.length);
  let o = 0;
  o = b.writeUInt32BE(t.inception, o);
  o = b.writeUInt32BE(t.expiration, o);
  o = b.writeUInt16BE(t.mode, o);
  o = b.writeUInt16BE(t.error, o);
  o = b.writeUInt16BE(t.key.length, o);
  o += t.key.copy(b, o);
  o = b.writeUInt16BE(t.other.length, o);
  t.other.copy(b, o);
  return Buffer.concat([encodeName(t.algorithm), b.subarray(0, o + t.other.length)]);
}

/** The query nsupdate -g sends: question <key name> TKEY ANY, the TKEY in the additional section. */
function query(data: TkeyData): Message {
  const name = '2814716187.sig-ns1.example.test';
  return {
    id: 0x1234,
    opcode: 'QUERY',
    flags: NO_FLAGS,
    rcode: 0,
    questions: [{ name, type: 'TKEY', class: 'ANY' }],
    answers: [],
    authorities: [],
    additionals: [{ name, type: 'TKEY', class: 'ANY', ttl: 0, data }],
  };
}

describe('TKEY rdata', () => {
  it('encodes the RFC 2930 layout', () => {
    const rr = encodeRecord({ name: 'k.example.test', type: 'TKEY', class: 'ANY', ttl: 0, data: tkey });
    const rdata = handRdata(tkey);
    // name, type 249, class 255, ttl 0, rdlength, rdata
    const head = Buffer.alloc(10);
    head.writeUInt16BE(249, 0);
    head.writeUInt16BE(255, 2);
    head.writeUInt16BE(rdata.length, 8);
    expect(rr.toString('hex')).toBe(Buffer.concat([encodeName('k.example.test'), head, rdata]).toString('hex'));
    // gss-tsig as an uncompressed name: 8 "gss-tsig" 0
    expect(rdata.subarray(0, 10).toString('hex')).toBe('086773732d7473696700');
  });

  it('decodes what it encodes, in a question and an answer', () => {
    const withOther: TkeyData = { ...tkey, error: 18, other: Buffer.from('000069420000', 'hex'), expiration: 0xffffffff };
    for (const data of [tkey, withOther, { ...tkey, key: Buffer.alloc(0) }]) {
      const wire = encodeMessage(query(data));
      const { message } = decodeMessage(wire);
      expect(message.questions[0]).toEqual({ name: '2814716187.sig-ns1.example.test', type: 'TKEY', class: 'ANY' });
      expect(message.additionals[0]).toEqual({ name: '2814716187.sig-ns1.example.test', type: 'TKEY', class: 'ANY', ttl: 0, data });
      const answer = encodeMessage({ ...query(data), flags: { ...NO_FLAGS, qr: true }, answers: query(data).additionals, additionals: [] });
      expect(decodeMessage(answer).message.answers[0]!.data).toEqual(data);
    }
  });

  it('carries a context token of any size up to 65535 bytes', () => {
    const big = { ...tkey, key: Buffer.alloc(6000, 7) };
    expect((decodeMessage(encodeMessage(query(big))).message.additionals[0]!.data as TkeyData).key).toEqual(big.key);
    expect(() => encodeRecord({ name: 'k', type: 'TKEY', class: 'ANY', ttl: 0, data: { ...tkey, key: Buffer.alloc(65536) } })).toThrow(DnsError);
  });

  it('refuses a key size or other size beyond the rdata, and an empty rdata', () => {
    const wire = encodeMessage(query(tkey));
    const rdataStart = wire.length - handRdata(tkey).length;
    const keySizeAt = rdataStart + 10 + 12; // after "gss-tsig" and inception, expiration, mode, error
    expect(wire.readUInt16BE(keySizeAt)).toBe(token.length);

    const longKey = Buffer.from(wire);
    longKey.writeUInt16BE(token.length + 1, keySizeAt);
    expect(() => decodeMessage(longKey)).toThrow(/malformed DNS message/);

    const longOther = Buffer.from(wire);
    longOther.writeUInt16BE(1, keySizeAt + 2 + token.length);
    expect(() => decodeMessage(longOther)).toThrow(/malformed DNS message/);

    // rdlength one byte short of the rdata: the rdata overruns its record
    const short = Buffer.concat([wire, Buffer.alloc(0)]);
    short.writeUInt16BE(handRdata(tkey).length - 1, rdataStart - 2);
    expect(() => decodeMessage(short)).toThrow(DnsError);

    const empty = Buffer.from(wire.subarray(0, rdataStart));
    empty.writeUInt16BE(0, rdataStart - 2);
    expect(() => decodeMessage(empty)).toThrow(/TKEY record without rdata/);
  });
});
