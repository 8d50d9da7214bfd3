/**
 * The signer port: how a request is signed and its answer verified, whatever
 * the MAC. HMAC TSIG (RFC 8945, a shared key file) and GSS-TSIG (RFC 3645, a
 * negotiated GSS-API context) sit behind it; the transport only sees this.
 */
import type { TsigKey } from '../config/keyfile.js';
import { DEFAULT_FUDGE, signRequest, verifyResponse, type SignedRequest, type TsigVerdict } from './tsig.js';
import type { Decoded, Message } from './wire.js';

export interface TsigSigner {
  /** The TSIG owner name: the key's name, or the name TKEY negotiated. */
  readonly keyName: string;
  /** 'hmac-sha256', 'hmac-sha512' or 'gss-tsig'. */
  readonly algorithm: string;
  /** GSS-TSIG: the Kerberos principal the server's update policy sees (named in refusals). */
  readonly principal?: string;
  /** Signs `message` (without a TSIG) at `nowSeconds`, the wall clock. */
  sign(message: Message, nowSeconds: number): SignedRequest;
  /** Verifies an answer against the MAC of the request it answers; never throws. */
  verify(buf: Buffer, decoded: Decoded, requestMac: Buffer, nowSeconds: number): TsigVerdict;
}

/**
 * A signer that changes over time (GSS-TSIG: a negotiated context, renewed and renegotiated). The
 * transport asks for the signer before each exchange and, when the server answers BADKEY or BADSIG
 * unsigned (it forgot the context), invalidates it and retries that request ONCE with a new one.
 */
export interface SignerSession {
  /** The principal refusals name. */
  readonly principal?: string;
  acquire(): Promise<TsigSigner>;
  /** The server refused `used`: drop it (no-op if already replaced). */
  invalidate(used: TsigSigner): void;
}

/** HMAC TSIG: exactly signRequest / verifyResponse. */
export function hmacSigner(key: TsigKey, fudge: number = DEFAULT_FUDGE): TsigSigner {
  return {
    keyName: key.name,
    algorithm: key.algorithm,
    sign: (message, nowSeconds) => signRequest(message, key, nowSeconds, fudge),
    verify: (buf, decoded, requestMac, nowSeconds) => verifyResponse(buf, decoded, key, requestMac, nowSeconds),
  };
}
