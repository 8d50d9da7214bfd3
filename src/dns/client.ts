/**
 * Authoritative reads and RFC 2136 updates against one server, TSIG-signed.
 *
 * Reads go with RD=0 and must come back with AA: we read the witness itself,
 * never a cache. Every rcode that is not success becomes a DnsError with a
 * stable code; prerequisite failures (someone else moved first) are
 * DNS_PREREQ_FAILED and are never retried here: the caller must re-read.
 */
import { DnsError, type DnsErrorCode } from './errors.js';
import { DnsTransport, type DnsServer, type Exchange, type TransportOptions } from './transport.js';
import { NO_FLAGS, RCODE, normalizeName, rcodeName, type Message, type RData, type ResourceRecord, type RRType, type SoaData } from './wire.js';

export type ClientOptions = TransportOptions;

export interface ReadResult {
  name: string;
  type: RRType;
  /** The RRset's values (empty when the name or type does not exist). */
  values: RData[];
  ttl?: number;
  rcode: 'NOERROR' | 'NXDOMAIN';
  /** The zone apex named by the SOA in the authority section of a negative answer. */
  zone?: string;
  authenticated: boolean;
  /** Server clock minus ours (s) from the answer's TSIG time, taken at receipt: the server's clock is at least this far ahead. */
  offsetSeconds?: number;
  /** The exchange's round trip, retries included (ms): the server's clock may be up to this much (and the 1 s TSIG floors) further ahead. */
  rttMs?: number;
}

export interface UpdateResult {
  authenticated: boolean;
  offsetSeconds?: number;
  rttMs: number;
  attempts: number;
  transport: 'udp' | 'tcp';
}

const PREREQ_RCODES = new Set<number>([RCODE.NXRRSET, RCODE.YXRRSET, RCODE.NXDOMAIN, RCODE.YXDOMAIN]);

const RCODE_ERRORS: Record<number, DnsErrorCode> = {
  [RCODE.FORMERR]: 'DNS_FORMERR',
  [RCODE.SERVFAIL]: 'DNS_SERVFAIL',
  [RCODE.NOTIMP]: 'DNS_NOTIMP',
  [RCODE.REFUSED]: 'DNS_REFUSED',
  [RCODE.NOTAUTH]: 'DNS_NOTAUTH',
  [RCODE.NOTZONE]: 'DNS_NOTZONE',
};

export class DnsClient {
  private readonly transport: DnsTransport;
  /** Server clock minus ours (s) from the last verified response. */
  lastOffsetSeconds: number | undefined;

  constructor(readonly options: ClientOptions) {
    this.transport = new DnsTransport(options);
  }

  get server(): DnsServer {
    return this.options.server;
  }

  private async exchange(request: Message): Promise<Exchange> {
    const ex = await this.transport.exchange(request);
    if (ex.offsetSeconds !== undefined) this.lastOffsetSeconds = ex.offsetSeconds;
    if (ex.tsigError === RCODE.BADTIME) {
      throw new DnsError(
        'DNS_TSIG_BADTIME',
        `TSIG BADTIME: our clock is ${-(ex.offsetSeconds ?? 0)} s off the server's (server time ${ex.serverTime}); fix NTP`,
        { rcode: rcodeName(ex.response.rcode), authenticated: ex.authenticated, offsetSeconds: ex.offsetSeconds, serverTime: ex.serverTime },
      );
    }
    if (ex.tsigError !== 0) {
      const code = ex.tsigError === RCODE.BADSIG ? 'DNS_TSIG_BADSIG' : ex.tsigError === RCODE.BADKEY ? 'DNS_TSIG_BADKEY' : 'DNS_TSIG_BADTRUNC';
      throw new DnsError(code, `TSIG error ${rcodeName(ex.tsigError)} from the server`, {
        rcode: rcodeName(ex.response.rcode),
        authenticated: ex.authenticated,
      });
    }
    return ex;
  }

  private rcodeError(ex: Exchange, what: string): DnsError {
    const rc = ex.response.rcode;
    const name = rcodeName(rc);
    const detail = { rcode: name, authenticated: ex.authenticated, offsetSeconds: ex.offsetSeconds };
    // Who was refused: with GSS-TSIG the policy names a Kerberos principal, not a key the operator wrote.
    const principal = this.options.session?.principal ?? this.options.signer?.principal;
    const who = principal !== undefined && (rc === RCODE.REFUSED || rc === RCODE.NOTAUTH) ? ` to ${principal} (GSS-TSIG)` : '';
    return new DnsError(RCODE_ERRORS[rc] ?? 'DNS_RCODE', `${what}: server answered ${name}${who}`, detail);
  }

  /** Authoritative read of one RRset. */
  async read(name: string, type: RRType): Promise<ReadResult> {
    const qname = normalizeName(name);
    const ex = await this.exchange({
      id: 0,
      opcode: 'QUERY',
      flags: NO_FLAGS, // RD=0: ask the authority, not a resolver
      rcode: 0,
      questions: [{ name: qname, type, class: 'IN' }],
      answers: [],
      authorities: [],
      additionals: [],
    });
    const m = ex.response;
    if (m.rcode !== RCODE.NOERROR && m.rcode !== RCODE.NXDOMAIN) throw this.rcodeError(ex, `read ${qname} ${type}`);
    if (!m.flags.aa) {
      throw new DnsError('DNS_NOT_AUTHORITATIVE', `read ${qname} ${type}: answer without AA (is ${this.server.host} authoritative for the zone?)`, {
        authenticated: ex.authenticated,
      });
    }
    const rrs = m.answers.filter((rr: ResourceRecord) => normalizeName(rr.name) === qname && rr.type === type && rr.class === 'IN');
    const soa = m.authorities.find((rr) => rr.type === 'SOA');
    const result: ReadResult = {
      name: qname,
      type,
      values: rrs.map((rr) => rr.data),
      rcode: m.rcode === RCODE.NXDOMAIN ? 'NXDOMAIN' : 'NOERROR',
      authenticated: ex.authenticated,
    };
    if (rrs[0]) result.ttl = rrs[0].ttl;
    if (soa) result.zone = normalizeName(soa.name);
    if (ex.offsetSeconds !== undefined) {
      result.offsetSeconds = ex.offsetSeconds;
      result.rttMs = ex.rttMs;
    }
    return result;
  }

  /** The zone's SOA (read at the apex). */
  async soa(zone: string): Promise<SoaData> {
    const r = await this.read(zone, 'SOA');
    const soa = r.values[0];
    if (!soa || typeof soa !== 'object' || Buffer.isBuffer(soa) || Array.isArray(soa)) {
      throw new DnsError('DNS_NOTZONE', `${zone} has no SOA at ${this.server.host}:${this.server.port}: not a zone apex`, {
        authenticated: r.authenticated,
      });
    }
    return soa as SoaData;
  }

  /** Finds the zone that holds `name` by asking the server (the SOA in a negative answer names the apex). */
  async findZone(name: string): Promise<string> {
    const r = await this.read(name, 'SOA');
    if (r.values.length > 0) return normalizeName(name);
    if (r.zone) return r.zone;
    throw new DnsError('DNS_NOTZONE', `cannot find the zone of ${name}: no SOA in the answer`);
  }

  /**
   * One RFC 2136 UPDATE message: all prerequisites and all changes apply
   * atomically or not at all. Resolves only on a NOERROR answer.
   */
  async update(zone: string, prerequisites: ResourceRecord[], updates: ResourceRecord[]): Promise<UpdateResult> {
    const ex = await this.exchange({
      id: 0,
      opcode: 'UPDATE',
      flags: NO_FLAGS,
      rcode: 0,
      questions: [{ name: normalizeName(zone), type: 'SOA', class: 'IN' }],
      answers: prerequisites,
      authorities: updates,
      additionals: [],
    });
    const rc = ex.response.rcode;
    if (PREREQ_RCODES.has(rc)) {
      throw new DnsError('DNS_PREREQ_FAILED', `update of ${zone} not applied: prerequisite failed (${rcodeName(rc)}); re-read before acting`, {
        rcode: rcodeName(rc),
        authenticated: ex.authenticated,
        offsetSeconds: ex.offsetSeconds,
      });
    }
    if (rc !== RCODE.NOERROR) throw this.rcodeError(ex, `update of ${zone}`);
    const result: UpdateResult = { authenticated: ex.authenticated, rttMs: ex.rttMs, attempts: ex.attempts, transport: ex.transport };
    if (ex.offsetSeconds !== undefined) result.offsetSeconds = ex.offsetSeconds;
    return result;
  }
}
