/**
 * TSIG (RFC 8945) signing of requests and verification of responses.
 *
 * A response is authenticated only if its MAC, computed over the request MAC
 * followed by the response, verifies with our key (§5.3, §4.3.1). Error
 * replies for BADSIG/BADKEY are unsigned by design (§5.3.2) and therefore are
 * never authenticated: the caller learns "the server said so, maybe", nothing
 * more.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { TsigKey } from '../config/keyfile.js';
import { CLASS, RCODE, encodeMessage, encodeName, encodeRecord, normalizeName, type Decoded, type Message, type ResourceRecord, type TsigData } from './wire.js';

export const DEFAULT_FUDGE = 300;

const HASH: Record<TsigKey['algorithm'], 'sha256' | 'sha512'> = {
  'hmac-sha256': 'sha256',
  'hmac-sha512': 'sha512',
};

/** The TSIG variables of RFC 8945 §4.3.3, in wire form. */
export function tsigVariables(keyName: string, t: TsigData): Buffer {
  const cls = Buffer.alloc(6);
  cls.writeUInt16BE(CLASS.ANY, 0); // class ANY, TTL 0
  const time = Buffer.alloc(8);
  time.writeUIntBE(t.timeSigned, 0, 6);
  time.writeUInt16BE(t.fudge, 6);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(t.error, 0);
  tail.writeUInt16BE(t.other.length, 2);
  return Buffer.concat([encodeName(keyName), cls, encodeName(t.algorithm), time, tail, t.other]);
}

function hmac(key: TsigKey, parts: Buffer[]): Buffer {
  const h = createHmac(HASH[key.algorithm], key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Computes a MAC over the digest's parts, in order (HMAC, or gss_get_mic over their concatenation). */
export type MacFn = (parts: Buffer[]) => Buffer;

export interface SignedRequest {
  wire: Buffer;
  /** The request MAC, chained into the response's MAC. */
  mac: Buffer;
  timeSigned: number;
}

/**
 * Signs `message` (which must not already carry a TSIG) at `nowSeconds`.
 * The caller passes the wall clock in, so tests can sign in the past.
 */
export function signRequest(message: Message, key: TsigKey, nowSeconds: number, fudge = DEFAULT_FUDGE): SignedRequest {
  return signWith(message, key.name, key.algorithm, nowSeconds, fudge, (parts) => hmac(key, parts));
}

/** Signs with any MAC (RFC 8945 §4.3: the message without TSIG, then the TSIG variables). */
export function signWith(message: Message, keyName: string, algorithm: string, nowSeconds: number, fudge: number, macOf: MacFn): SignedRequest {
  const unsigned = encodeMessage(message);
  const timeSigned = Math.floor(nowSeconds);
  const vars: TsigData = {
    algorithm,
    timeSigned,
    fudge,
    mac: Buffer.alloc(0),
    originalId: message.id,
    error: 0,
    other: Buffer.alloc(0),
  };
  const mac = macOf([unsigned, tsigVariables(keyName, vars)]);
  const tsig: ResourceRecord = { name: keyName, type: 'TSIG', class: 'ANY', ttl: 0, data: { ...vars, mac } };
  // Append the TSIG to the bytes already encoded (ARCOUNT + 1) instead of encoding twice.
  const wire = Buffer.concat([unsigned, encodeRecord(tsig)]);
  wire.writeUInt16BE(unsigned.readUInt16BE(10) + 1, 10);
  return { wire, mac, timeSigned };
}

/** The message as it was before the TSIG was added: original ID, ARCOUNT - 1. */
export function unsignedPart(buf: Buffer, tsigOffset: number, t: TsigData): Buffer {
  const body = Buffer.from(buf.subarray(0, tsigOffset));
  body.writeUInt16BE(t.originalId, 0);
  body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
  return body;
}

/**
 * Verifies the MAC of a signed REQUEST (the server's side, RFC 8945 §5.2):
 * HMAC over the request without its TSIG plus the TSIG variables. The agent
 * never needs it; tests use it to check our TSIG encoding against requests
 * signed by BIND's nsupdate, and test servers may use it.
 */
export function verifyRequest(buf: Buffer, decoded: Decoded, key: TsigKey): boolean {
  if (decoded.tsigOffset === undefined) return false;
  const rr = decoded.message.additionals[decoded.message.additionals.length - 1]!;
  const t = rr.data as TsigData;
  if (rr.class !== 'ANY' || rr.ttl !== 0) return false;
  if (normalizeName(rr.name) !== normalizeName(key.name) || normalizeName(t.algorithm) !== key.algorithm) return false;
  const expected = hmac(key, [unsignedPart(buf, decoded.tsigOffset, t), tsigVariables(key.name, t)]);
  return t.mac.length === expected.length && timingSafeEqual(expected, t.mac);
}

export type TsigVerdict =
  | { kind: 'unsigned' } // no TSIG record at all
  | { kind: 'unsigned-error'; error: number } // BADSIG/BADKEY style: TSIG with an error and no MAC
  | { kind: 'bad' ; why: string } // a MAC that does not verify, wrong key or algorithm: treat as spoofed
  | { kind: 'ok'; tsig: TsigData; offsetSeconds: number; serverTime: number; timeOk: boolean; quirk?: MacQuirk };

/** A non-RFC MAC layout an answer verified with (GSS-TSIG from Samba: the request MAC without its length). */
export type MacQuirk = 'request-mac-without-length';

/**
 * The checks every signed answer gets before its MAC: the TSIG record's
 * place, class, TTL, key name and algorithm. Returns a final verdict, or the
 * TSIG whose MAC the caller checks.
 */
export function tsigToCheck(decoded: Decoded, keyName: string, algorithm: string): Exclude<TsigVerdict, { kind: 'ok' }> | { kind: 'check'; tsig: TsigData } {
  if (decoded.tsigOffset === undefined) return { kind: 'unsigned' };
  const rr = decoded.message.additionals[decoded.message.additionals.length - 1]!;
  const t = rr.data as TsigData;
  // RFC 8945 §4.2: CLASS ANY, TTL 0. The MAC covers constants in their place
  // (§4.3.3), so any other value would otherwise go unnoticed.
  if (rr.class !== 'ANY' || rr.ttl !== 0) return { kind: 'bad', why: `TSIG with class ${rr.class} TTL ${rr.ttl}` };
  if (t.mac.length === 0) {
    return t.error !== 0 ? { kind: 'unsigned-error', error: t.error } : { kind: 'bad', why: 'empty MAC' };
  }
  if (normalizeName(rr.name) !== normalizeName(keyName)) return { kind: 'bad', why: `signed with key ${rr.name}` };
  if (normalizeName(t.algorithm) !== normalizeName(algorithm)) return { kind: 'bad', why: `algorithm ${t.algorithm}` };
  return { kind: 'check', tsig: t };
}

/** The verdict on an answer whose MAC verified: the server's clock and our time check. */
export function verifiedVerdict(t: TsigData, nowSeconds: number, quirk?: MacQuirk): Extract<TsigVerdict, { kind: 'ok' }> {
  // BADTIME replies carry the server's own clock in Other Data (§5.2.3).
  const serverTime = t.error === RCODE.BADTIME && t.other.length === 6 ? t.other.readUIntBE(0, 6) : t.timeSigned;
  // TSIG time has one-second resolution: so does the offset.
  const offsetSeconds = Math.round(serverTime - nowSeconds);
  const v = { kind: 'ok' as const, tsig: t, offsetSeconds, serverTime, timeOk: Math.abs(t.timeSigned - nowSeconds) <= t.fudge };
  return quirk ? { ...v, quirk } : v;
}

/** u16 length of the request MAC, then the request MAC (RFC 8945 §4.3.1). */
export function requestMacPart(requestMac: Buffer): Buffer[] {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(requestMac.length, 0);
  return [prefix, requestMac];
}

/**
 * Verifies a response against the request MAC. `buf` is the raw response and
 * `decoded` its decoding (which located the TSIG record).
 */
export function verifyResponse(
  buf: Buffer,
  decoded: Decoded,
  key: TsigKey,
  requestMac: Buffer,
  nowSeconds: number,
): TsigVerdict {
  const c = tsigToCheck(decoded, key.name, key.algorithm);
  if (c.kind !== 'check') return c;
  const t = c.tsig;
  // RFC 8945 §5.2.2.1 allows truncated MACs; we require the full length: both
  // BIND and Knot send it, and accepting less only weakens the check.
  const mlen = HASH[key.algorithm] === 'sha256' ? 32 : 64;
  if (t.mac.length !== mlen) return { kind: 'bad', why: `MAC of ${t.mac.length} bytes` };

  const body = unsignedPart(buf, decoded.tsigOffset!, t);
  const expected = hmac(key, [...requestMacPart(requestMac), body, tsigVariables(key.name, t)]);
  if (!timingSafeEqual(expected, t.mac)) return { kind: 'bad', why: 'MAC does not verify' };
  return verifiedVerdict(t, nowSeconds);
}
