import { AgentError, ExitCode } from '../errors.js';

/**
 * Stable DNS error codes. Callers branch on `code`, never on messages.
 *
 * `authenticated` says whether the answer that produced the error was
 * TSIG-verified. An unauthenticated error (BADSIG/BADKEY replies are unsigned
 * by design, a timeout has no answer at all) tells us nothing about the data
 * on the server: the caller must treat the outcome as unknown.
 */
export type DnsErrorCode =
  | 'DNS_TIMEOUT' // no acceptable answer within timeout × (retries + 1)
  | 'DNS_UNREACHABLE' // socket error (TCP connection refused, network down)
  | 'DNS_MALFORMED' // a message that does not parse
  | 'DNS_ENCODE' // we were asked to build something unencodable
  | 'DNS_PREREQ_FAILED' // NXRRSET / YXRRSET / NXDOMAIN / YXDOMAIN on an UPDATE: someone moved first
  | 'DNS_REFUSED' // REFUSED: not allowed by the server's policy
  | 'DNS_NOTAUTH' // NOTAUTH without a TSIG error: not authoritative / not allowed
  | 'DNS_NOTZONE' // a name outside the zone
  | 'DNS_NOT_AUTHORITATIVE' // a read without AA
  | 'DNS_SERVFAIL'
  | 'DNS_FORMERR'
  | 'DNS_NOTIMP'
  | 'DNS_RCODE' // any other rcode
  | 'DNS_TSIG_BADSIG'
  | 'DNS_TSIG_BADKEY'
  | 'DNS_TSIG_BADTIME'
  | 'DNS_TSIG_BADTRUNC'
  | 'DNS_TSIG_UNSIGNED' // the server answered a signed request without a valid signature
  | 'DNS_UNSIGNED_ERROR' // an error rcode echoing OUR request's signature (Samba's AD DNS): proves nothing, outcome unknown
  | 'DNS_NO_SERVER'; // no server configured and none found from the SOA

const EXIT: Record<DnsErrorCode, ExitCode> = {
  DNS_TIMEOUT: ExitCode.UNAVAILABLE,
  DNS_UNREACHABLE: ExitCode.UNAVAILABLE,
  DNS_MALFORMED: ExitCode.UNAVAILABLE,
  DNS_ENCODE: ExitCode.REFUSED,
  DNS_PREREQ_FAILED: ExitCode.REFUSED,
  DNS_REFUSED: ExitCode.NOPERM,
  DNS_NOTAUTH: ExitCode.NOPERM,
  DNS_NOTZONE: ExitCode.CONFIG,
  DNS_NOT_AUTHORITATIVE: ExitCode.UNAVAILABLE,
  DNS_SERVFAIL: ExitCode.UNAVAILABLE,
  DNS_FORMERR: ExitCode.UNAVAILABLE,
  DNS_NOTIMP: ExitCode.UNAVAILABLE,
  DNS_RCODE: ExitCode.UNAVAILABLE,
  DNS_TSIG_BADSIG: ExitCode.NOPERM,
  DNS_TSIG_BADKEY: ExitCode.NOPERM,
  DNS_TSIG_BADTIME: ExitCode.NOPERM,
  DNS_TSIG_BADTRUNC: ExitCode.NOPERM,
  DNS_TSIG_UNSIGNED: ExitCode.NOPERM,
  DNS_UNSIGNED_ERROR: ExitCode.UNAVAILABLE,
  DNS_NO_SERVER: ExitCode.UNAVAILABLE,
};

/** Every DNS error code (the keys of the exit table, so none can be missing). */
export const DNS_ERROR_CODES = Object.keys(EXIT) as DnsErrorCode[];

export interface DnsErrorDetail {
  rcode?: string;
  authenticated?: boolean;
  /** For BADTIME: the server's clock minus ours, in seconds. */
  offsetSeconds?: number;
  serverTime?: number;
}

export class DnsError extends AgentError {
  declare readonly code: DnsErrorCode;
  readonly rcode: string | undefined;
  readonly authenticated: boolean;
  readonly offsetSeconds: number | undefined;
  readonly serverTime: number | undefined;
  constructor(code: DnsErrorCode, message: string, detail: DnsErrorDetail = {}, options?: { cause?: unknown }) {
    super(code, message, EXIT[code], options);
    this.rcode = detail.rcode;
    this.authenticated = detail.authenticated ?? false;
    this.offsetSeconds = detail.offsetSeconds;
    this.serverTime = detail.serverTime;
  }
}
