/**
 * GSS-TSIG (RFC 3645 §3.2): TSIG with algorithm `gss-tsig.` whose MAC is
 * gss_get_mic over the very digest input HMAC TSIG uses (RFC 8945 §4.3), and
 * whose answers are checked with gss_verify_mic on the negotiated context.
 *
 * Samba's internal DNS computes its answers' MAC over the request MAC WITHOUT
 * its 2-byte length prefix (issue 22). The RFC layout is tried first; the
 * Samba one only when the first failed as a bad signature, so a replayed or
 * expired token is never retried into acceptance, and both layouts carry the
 * request MAC: nothing unverified is accepted either way.
 */
import { DEFAULT_FUDGE, requestMacPart, signWith, tsigToCheck, tsigVariables, unsignedPart, verifiedVerdict, type TsigVerdict } from '../tsig.js';
import type { TsigSigner } from '../signer.js';
import { GssError } from './addon.js';

export const GSS_TSIG = 'gss-tsig';

/** The context's MIC calls (GssApi's bound to one established context; a fake in unit tests). */
export interface MicPort {
  getMic(message: Buffer): Buffer;
  /** Throws (a GssError from the addon) unless `mic` verifies. */
  verifyMic(message: Buffer, mic: Buffer): void;
}

/** GSS_S_BAD_SIG: the routine error of a MIC that does not match the message. */
const GSS_S_BAD_SIG = 6 << 16;
const routineError = (major: number): number => major & 0x00ff0000;

export function gssTsigSigner(keyName: string, mic: MicPort, opts: { principal?: string; fudge?: number } = {}): TsigSigner {
  const fudge = opts.fudge ?? DEFAULT_FUDGE;
  const verifies = (parts: Buffer[], mac: Buffer): { ok: true } | { ok: false; badSig: boolean; why: string } => {
    try {
      mic.verifyMic(Buffer.concat(parts), mac);
      return { ok: true };
    } catch (err) {
      const badSig = err instanceof GssError && routineError(err.major) === GSS_S_BAD_SIG;
      return { ok: false, badSig, why: err instanceof Error ? err.message : String(err) };
    }
  };
  return {
    keyName,
    algorithm: GSS_TSIG,
    ...(opts.principal !== undefined ? { principal: opts.principal } : {}),
    sign: (message, nowSeconds) => signWith(message, keyName, GSS_TSIG, nowSeconds, fudge, (parts) => mic.getMic(Buffer.concat(parts))),
    verify(buf, decoded, requestMac, nowSeconds): TsigVerdict {
      const c = tsigToCheck(decoded, keyName, GSS_TSIG);
      if (c.kind !== 'check') return c;
      const t = c.tsig;
      const body = unsignedPart(buf, decoded.tsigOffset!, t);
      const vars = tsigVariables(keyName, t);
      // An unsigned request (TKEY's) has no request MAC to chain, not an empty one (RFC 8945 §4.3.1).
      const rfc = requestMac.length > 0 ? [...requestMacPart(requestMac), body, vars] : [body, vars];
      const first = verifies(rfc, t.mac);
      if (first.ok) return verifiedVerdict(t, nowSeconds);
      if (!first.badSig || requestMac.length === 0) return { kind: 'bad', why: first.why };
      const samba = verifies([requestMac, body, vars], t.mac);
      if (samba.ok) return verifiedVerdict(t, nowSeconds, 'request-mac-without-length');
      return { kind: 'bad', why: first.why };
    },
  };
}
