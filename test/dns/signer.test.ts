/**
 * The signer port's HMAC side changes nothing: its requests are byte for byte
 * what signRequest produced before the port existed (a golden file written by
 * the old src/dns/tsig.ts), and its verdicts on answers are verifyResponse's.
 */
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TsigAlgorithm, TsigKey } from '../../src/config/keyfile.js';
import { hmacSigner } from '../../src/dns/signer.js';
import { signRequest, verifyResponse } from '../../src/dns/tsig.js';
import { decodeMessage, encodeMessage, encodeName, encodeRecord, type TsigData } from '../../src/dns/wire.js';

interface GoldenCase {
  key: string;
  algorithm: TsigAlgorithm;
  secret: string;
  label: string;
  now: number;
  fudge: number;
  wire: string;
  mac: string;
  timeSigned: number;
}
const golden = JSON.parse(fs.readFileSync(new URL('./fixtures/hmac-signer-golden.json', import.meta.url), 'utf8')) as { cases: GoldenCase[] };
const keyOf = (c: GoldenCase): TsigKey => ({ name: c.key, algorithm: c.algorithm, secret: Buffer.from(c.secret, 'hex') });

/** A server's answer to `request`, signed by hand per RFC 8945 §4.3 (or with a wrong secret). */
function answer(request: Buffer, requestMac: Buffer, key: TsigKey, secret: Buffer = key.secret): Buffer {
  const m = decodeMessage(request).message;
  const unsigned = encodeMessage({ ...m, flags: { ...m.flags, qr: true, aa: true }, additionals: [] });
  const t: TsigData = { algorithm: key.algorithm, timeSigned: 1_700_000_001, fudge: 300, mac: Buffer.alloc(0), originalId: m.id, error: 0, other: Buffer.alloc(0) };
  const fixed = Buffer.alloc(6 + 8 + 4);
  fixed.writeUInt16BE(255, 0); // class ANY, TTL 0
  fixed.writeUIntBE(t.timeSigned, 6, 6);
  fixed.writeUInt16BE(t.fudge, 12);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(requestMac.length);
  const h = createHmac(key.algorithm === 'hmac-sha256' ? 'sha256' : 'sha512', secret);
  for (const p of [len, requestMac, unsigned, encodeName(key.name), fixed.subarray(0, 6), encodeName(key.algorithm), fixed.subarray(6)]) h.update(p);
  const wire = Buffer.concat([unsigned, encodeRecord({ name: key.name, type: 'TSIG', class: 'ANY', ttl: 0, data: { ...t, mac: h.digest() } })]);
  wire.writeUInt16BE(1, 10);
  return wire;
}

describe('HMAC behind the signer port', () => {
  it('has golden cases for both algorithms', () => {
    expect(golden.cases.length).toBe(8);
    expect(new Set(golden.cases.map((c) => c.algorithm))).toEqual(new Set(['hmac-sha256', 'hmac-sha512']));
  });

  it.each(golden.cases.map((c) => [`${c.algorithm} ${c.label} at ${c.now}`, c] as const))('signs %s byte for byte as before', (_, c) => {
    const { message } = decodeMessage(Buffer.from(c.wire, 'hex'));
    const unsignedMessage = { ...message, additionals: message.additionals.slice(0, -1) };
    const key = keyOf(c);
    const viaPort = hmacSigner(key, c.fudge).sign(unsignedMessage, c.now);
    expect(viaPort.wire.toString('hex')).toBe(c.wire);
    expect(viaPort.mac.toString('hex')).toBe(c.mac);
    expect(viaPort.timeSigned).toBe(c.timeSigned);
    expect(signRequest(unsignedMessage, key, c.now, c.fudge).wire.toString('hex')).toBe(c.wire);
    expect(hmacSigner(key, c.fudge)).toMatchObject({ keyName: c.key, algorithm: c.algorithm });
  });

  it.each(golden.cases.map((c) => [`${c.algorithm} ${c.label} at ${c.now}`, c] as const))('verifies answers to %s as verifyResponse does', (_, c) => {
    const key = keyOf(c);
    const request = Buffer.from(c.wire, 'hex');
    const mac = Buffer.from(c.mac, 'hex');
    const signer = hmacSigner(key);
    const good = answer(request, mac, key);
    const forged = answer(request, mac, key, Buffer.alloc(key.secret.length, 1));
    const toOther = answer(request, Buffer.alloc(mac.length), key);
    const unsigned = Buffer.from(good.subarray(0, good.length - encodeRecord(decodeMessage(good).message.additionals[0]!).length));
    unsigned.writeUInt16BE(0, 10);
    for (const [buf, kind] of [[good, 'ok'], [forged, 'bad'], [toOther, 'bad'], [unsigned, 'unsigned']] as const) {
      const d = decodeMessage(buf);
      const v = signer.verify(buf, d, mac, 1_700_000_000);
      expect(v.kind).toBe(kind);
      expect(v).toEqual(verifyResponse(buf, d, key, mac, 1_700_000_000));
    }
  });
});
