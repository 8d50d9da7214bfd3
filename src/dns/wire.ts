/**
 * DNS message codec: the one place that knows the wire format.
 *
 * Built on dns-packet's name and rdata codecs, but with our own message
 * framing because dns-packet cannot express what RFC 2136 and RFC 8945 need:
 * class NONE (254), records with empty rdata (RRset deletes and
 * value-independent prerequisites), TSIG and TKEY records, and TXT strings over 255
 * bytes (which it truncates silently: we refuse them instead).
 *
 * The decoder is defensive: every length is bounds-checked, every rdata must
 * consume exactly its rdlength, and any inconsistency is a DnsError with code
 * DNS_MALFORMED, never an uncaught RangeError.
 */
import dnsPacketModule from 'dns-packet';
import { DnsError } from './errors.js';

/** The parts of dns-packet we use; its published types omit the per-type codecs. */
interface Codec<T> {
  encode: ((data: T, buf?: Buffer, offset?: number) => Buffer) & { bytes: number };
  decode: ((buf: Buffer, offset?: number) => T) & { bytes: number };
}
const dnsPacket = dnsPacketModule as unknown as {
  name: Codec<string>;
  a: Codec<string>;
  aaaa: Codec<string>;
  txt: Codec<Buffer[]>;
  soa: Codec<SoaData>;
};

export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export type RRClass = keyof typeof CLASS;

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  TXT: 16,
  AAAA: 28,
  OPT: 41,
  TKEY: 249,
  TSIG: 250,
  ANY: 255,
} as const;
export type RRType = keyof typeof TYPE;

export const OPCODE = { QUERY: 0, UPDATE: 5 } as const;
export type Opcode = keyof typeof OPCODE;

/** RCODEs including the TSIG extended errors (RFC 8945 §3). */
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  YXDOMAIN: 6,
  YXRRSET: 7,
  NXRRSET: 8,
  NOTAUTH: 9,
  NOTZONE: 10,
  BADSIG: 16,
  BADKEY: 17,
  BADTIME: 18,
  BADTRUNC: 22,
} as const;
export type RcodeName = keyof typeof RCODE;

export function rcodeName(code: number): string {
  for (const [name, value] of Object.entries(RCODE)) if (value === code) return name;
  return `RCODE${code}`;
}

export interface SoaData {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

export interface TsigData {
  algorithm: string;
  /** 48-bit seconds since the epoch. */
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

/** TKEY modes (RFC 2930 §2.5); GSS-TSIG negotiates with GSSAPI (RFC 3645 §3.1). */
export const TKEY_MODE = { SERVER_ASSIGNED: 1, DH: 2, GSSAPI: 3, RESOLVER_ASSIGNED: 4, DELETE: 5 } as const;

/** TKEY rdata (RFC 2930 §2); with GSS-API the key data is the context token. */
export interface TkeyData {
  algorithm: string;
  /** 32-bit seconds since the epoch (serial-number arithmetic, RFC 2930 §2.3). */
  inception: number;
  expiration: number;
  mode: number;
  error: number;
  key: Buffer;
  other: Buffer;
}

/** Typed rdata by record type; `null` is an empty rdata (rdlength 0). */
export type RData = string | string[] | SoaData | TsigData | TkeyData | Buffer | null;

export interface ResourceRecord {
  name: string;
  type: RRType | number;
  class: RRClass | number;
  ttl: number;
  /** A/AAAA/NS/CNAME: string, TXT: string[], SOA: SoaData, TSIG: TsigData, TKEY: TkeyData, other: raw Buffer, empty: null. */
  data: RData;
}

export interface Question {
  name: string;
  type: RRType | number;
  class: RRClass | number;
}

export interface Flags {
  qr: boolean;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
}

/**
 * One message. Section names follow RFC 1035; for UPDATE (RFC 2136 §2) they
 * are read as zone / prerequisite / update / additional.
 */
export interface Message {
  id: number;
  opcode: Opcode | number;
  flags: Flags;
  rcode: number;
  questions: Question[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
}

/** Where the TSIG record starts in a decoded buffer (needed to verify a MAC). */
export interface Decoded {
  message: Message;
  /** Byte offset of the last additional record if it is a TSIG, else undefined. */
  tsigOffset?: number;
}

export const NO_FLAGS: Flags = { qr: false, aa: false, tc: false, rd: false, ra: false };

/** Lowercase, no trailing dot: the form names are compared in. */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') && n.length > 1 ? n.slice(0, -1) : n;
}

function codeOf<T extends Record<string, number>>(table: T, value: keyof T | number, what: string): number {
  if (typeof value === 'number') return value;
  const code = table[value];
  if (code === undefined) throw new DnsError('DNS_ENCODE', `unknown ${what} ${String(value)}`);
  return code;
}

const REVERSE = new Map<object, Map<number, string>>();

/** code -> name through a reverse map built once per table (decoding is on every reply's path). */
function nameOf<T extends Record<string, number>>(table: T, code: number): keyof T | number {
  let rev = REVERSE.get(table);
  if (!rev) REVERSE.set(table, (rev = new Map(Object.entries(table).map(([k, v]) => [v, k]))));
  return (rev.get(code) as keyof T | undefined) ?? code;
}

// ---------------------------------------------------------------- encoding

/** Canonical (uncompressed, lowercase) wire form of a name, as TSIG requires. */
// The same dozen names go into every message: encode each once. Callers only
// concatenate the returned buffers, never modify them.
const NAME_CACHE = new Map<string, Buffer>();
const NAME_CACHE_MAX = 512;

export function encodeName(name: string): Buffer {
  const cached = NAME_CACHE.get(name);
  if (cached) return cached;
  const wire = encodeNameUncached(name);
  if (NAME_CACHE.size >= NAME_CACHE_MAX) NAME_CACHE.clear();
  NAME_CACHE.set(name, wire);
  return wire;
}

function encodeNameUncached(name: string): Buffer {
  const n = normalizeName(name);
  for (const label of n === '.' ? [] : n.split('.')) {
    if (label.length === 0 || Buffer.byteLength(label) > 63) {
      throw new DnsError('DNS_ENCODE', `invalid name ${JSON.stringify(name)}`);
    }
  }
  const wire = dnsPacket.name.encode(n);
  // RFC 1035 §3.1: at most 255 bytes on the wire (servers answer FORMERR, our decoder refuses it).
  if (wire.length > 255) throw new DnsError('DNS_ENCODE', `name of ${wire.length} bytes exceeds 255: ${JSON.stringify(name)}`);
  return wire;
}

function encodeTxt(strings: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const s of strings) {
    const b = Buffer.from(s, 'utf8');
    // dns-packet writes the length into one byte and corrupts longer strings.
    if (b.length > 255) throw new DnsError('DNS_ENCODE', `TXT string of ${b.length} bytes exceeds 255`);
    parts.push(Buffer.from([b.length]), b);
  }
  return Buffer.concat(parts);
}

export function encodeTsigRdata(t: TsigData): Buffer {
  const alg = encodeName(t.algorithm);
  const fixed = Buffer.alloc(10);
  fixed.writeUIntBE(t.timeSigned, 0, 6);
  fixed.writeUInt16BE(t.fudge, 6);
  fixed.writeUInt16BE(t.mac.length, 8);
  const tail = Buffer.alloc(6);
  tail.writeUInt16BE(t.originalId, 0);
  tail.writeUInt16BE(t.error, 2);
  tail.writeUInt16BE(t.other.length, 4);
  return Buffer.concat([alg, fixed, t.mac, tail, t.other]);
}

export function encodeTkeyRdata(t: TkeyData): Buffer {
  if (t.key.length > 65535 || t.other.length > 65535) throw new DnsError('DNS_ENCODE', 'TKEY key or other data over 65535 bytes');
  const fixed = Buffer.alloc(14);
  fixed.writeUInt32BE(t.inception >>> 0, 0);
  fixed.writeUInt32BE(t.expiration >>> 0, 4);
  fixed.writeUInt16BE(t.mode, 8);
  fixed.writeUInt16BE(t.error, 10);
  fixed.writeUInt16BE(t.key.length, 12);
  const otherLen = Buffer.alloc(2);
  otherLen.writeUInt16BE(t.other.length, 0);
  return Buffer.concat([encodeName(t.algorithm), fixed, t.key, otherLen, t.other]);
}

/** rdata without its length prefix. */
function encodeRdata(type: number, data: RData): Buffer {
  if (data === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(data)) return data;
  const strip = (b: Buffer): Buffer => b.subarray(2);
  switch (type) {
    case TYPE.A:
      return strip(dnsPacket.a.encode(data as string));
    case TYPE.AAAA:
      return strip(dnsPacket.aaaa.encode(data as string));
    case TYPE.NS:
    case TYPE.CNAME:
      return encodeName(data as string);
    case TYPE.TXT:
      return encodeTxt(Array.isArray(data) ? data : [data as string]);
    case TYPE.SOA:
      return strip(dnsPacket.soa.encode(data as SoaData));
    case TYPE.TSIG:
      return encodeTsigRdata(data as TsigData);
    case TYPE.TKEY:
      return encodeTkeyRdata(data as TkeyData);
    default:
      throw new DnsError('DNS_ENCODE', `no encoder for type ${type}; pass rdata as a Buffer`);
  }
}

export function encodeRecord(rr: ResourceRecord): Buffer {
  const type = codeOf(TYPE, rr.type, 'type');
  const rdata = encodeRdata(type, rr.data);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(codeOf(CLASS, rr.class, 'class'), 2);
  fixed.writeUInt32BE(rr.ttl >>> 0, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(rr.name), fixed, rdata]);
}

export function encodeHeader(m: Pick<Message, 'id' | 'opcode' | 'flags' | 'rcode'>, counts: number[]): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(m.id, 0);
  const f = m.flags;
  const opcode = codeOf(OPCODE, m.opcode, 'opcode');
  const bits =
    (f.qr ? 0x8000 : 0) |
    ((opcode & 0xf) << 11) |
    (f.aa ? 0x0400 : 0) |
    (f.tc ? 0x0200 : 0) |
    (f.rd ? 0x0100 : 0) |
    (f.ra ? 0x0080 : 0) |
    (m.rcode & 0xf);
  h.writeUInt16BE(bits, 2);
  counts.forEach((c, i) => h.writeUInt16BE(c, 4 + 2 * i));
  return h;
}

/** Encodes a message; names are never compressed (servers accept both). */
export function encodeMessage(m: Message): Buffer {
  const parts: Buffer[] = [
    encodeHeader(m, [m.questions.length, m.answers.length, m.authorities.length, m.additionals.length]),
  ];
  for (const q of m.questions) {
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(codeOf(TYPE, q.type, 'type'), 0);
    tail.writeUInt16BE(codeOf(CLASS, q.class, 'class'), 2);
    parts.push(encodeName(q.name), tail);
  }
  for (const rr of [...m.answers, ...m.authorities, ...m.additionals]) parts.push(encodeRecord(rr));
  const out = Buffer.concat(parts);
  if (out.length > 65535) throw new DnsError('DNS_ENCODE', `message of ${out.length} bytes is too large`);
  return out;
}

// ---------------------------------------------------------------- decoding

class Reader {
  constructor(
    readonly buf: Buffer,
    public pos = 0,
  ) {}
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw malformed(`truncated at byte ${this.pos}`);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  name(): string {
    try {
      const n = dnsPacket.name.decode(this.buf, this.pos);
      this.pos += dnsPacket.name.decode.bytes;
      return normalizeName(n);
    } catch (err) {
      throw malformed(`bad name at byte ${this.pos}: ${(err as Error).message}`);
    }
  }
}

function malformed(why: string): DnsError {
  return new DnsError('DNS_MALFORMED', `malformed DNS message: ${why}`);
}

function decodeTsigRdata(r: Reader, end: number): TsigData {
  const algorithm = r.name();
  r.need(10);
  const timeSigned = r.buf.readUIntBE(r.pos, 6);
  r.pos += 6;
  const fudge = r.u16();
  const macLen = r.u16();
  r.need(macLen);
  const mac = Buffer.from(r.buf.subarray(r.pos, r.pos + macLen));
  r.pos += macLen;
  const originalId = r.u16();
  const error = r.u16();
  const otherLen = r.u16();
  r.need(otherLen);
  const other = Buffer.from(r.buf.subarray(r.pos, r.pos + otherLen));
  r.pos += otherLen;
  if (r.pos > end) throw malformed('TSIG rdata overruns its length');
  return { algorithm, timeSigned, fudge, mac, originalId, error, other };
}

function decodeTkeyRdata(r: Reader, end: number): TkeyData {
  const algorithm = r.name();
  const inception = r.u32();
  const expiration = r.u32();
  const mode = r.u16();
  const error = r.u16();
  const keyLen = r.u16();
  r.need(keyLen);
  const key = Buffer.from(r.buf.subarray(r.pos, r.pos + keyLen));
  r.pos += keyLen;
  const otherLen = r.u16();
  r.need(otherLen);
  const other = Buffer.from(r.buf.subarray(r.pos, r.pos + otherLen));
  r.pos += otherLen;
  if (r.pos > end) throw malformed('TKEY rdata overruns its length');
  return { algorithm, inception, expiration, mode, error, key, other };
}

function decodeRdata(r: Reader, type: number, rdlength: number): RData {
  const start = r.pos; // at the rdata, after the rdlength field
  const end = start + rdlength;
  r.need(rdlength);
  if (rdlength === 0) {
    // Empty rdata is for RFC 2136 deletes and prerequisites; a TSIG or TKEY always has rdata.
    if (type === TYPE.TSIG) throw malformed('TSIG record without rdata');
    if (type === TYPE.TKEY) throw malformed('TKEY record without rdata');
    return null;
  }
  let data: RData;
  // dns-packet's rdata decoders start at the rdlength field.
  const viaPacket = <T>(codec: Codec<T>): T => {
    try {
      const v = codec.decode(r.buf, start - 2);
      r.pos = start - 2 + codec.decode.bytes;
      return v;
    } catch (err) {
      throw malformed(`bad rdata at byte ${start}: ${(err as Error).message}`);
    }
  };
  switch (type) {
    case TYPE.A:
      if (rdlength !== 4) throw malformed('A rdata is not 4 bytes');
      data = viaPacket(dnsPacket.a);
      break;
    case TYPE.AAAA:
      if (rdlength !== 16) throw malformed('AAAA rdata is not 16 bytes');
      data = viaPacket(dnsPacket.aaaa);
      break;
    case TYPE.NS:
    case TYPE.CNAME:
      data = r.name();
      break;
    case TYPE.TXT:
      data = viaPacket(dnsPacket.txt).map((b) => b.toString('utf8'));
      break;
    case TYPE.SOA: {
      const soa = viaPacket(dnsPacket.soa);
      data = { ...soa, mname: normalizeName(soa.mname), rname: normalizeName(soa.rname) };
      break;
    }
    case TYPE.TSIG:
      data = decodeTsigRdata(r, end);
      break;
    case TYPE.TKEY:
      data = decodeTkeyRdata(r, end);
      break;
    default:
      data = Buffer.from(r.buf.subarray(start, end));
      r.pos = end;
  }
  if (r.pos !== end) throw malformed(`rdata of type ${type} does not fill its ${rdlength} bytes`);
  return data;
}

function decodeRecord(r: Reader): ResourceRecord {
  const name = r.name();
  const type = r.u16();
  const klass = r.u16();
  const ttl = r.u32();
  const rdlength = r.u16();
  const data = decodeRdata(r, type, rdlength);
  return { name, type: nameOf(TYPE, type), class: nameOf(CLASS, klass), ttl, data };
}

/** Decodes a message; throws DnsError DNS_MALFORMED on anything inconsistent. */
export function decodeMessage(buf: Buffer): Decoded {
  const r = new Reader(buf);
  const id = r.u16();
  const bits = r.u16();
  const counts = [r.u16(), r.u16(), r.u16(), r.u16()];
  const message: Message = {
    id,
    opcode: nameOf(OPCODE, (bits >> 11) & 0xf),
    flags: {
      qr: (bits & 0x8000) !== 0,
      aa: (bits & 0x0400) !== 0,
      tc: (bits & 0x0200) !== 0,
      rd: (bits & 0x0100) !== 0,
      ra: (bits & 0x0080) !== 0,
    },
    rcode: bits & 0xf,
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
  };
  // Each record takes at least 11 bytes: reject absurd counts before looping.
  if (counts[0]! * 5 + (counts[1]! + counts[2]! + counts[3]!) * 11 > buf.length - 12) {
    throw malformed('section counts exceed the message size');
  }
  for (let i = 0; i < counts[0]!; i++) {
    const name = r.name();
    const type = r.u16();
    const klass = r.u16();
    message.questions.push({ name, type: nameOf(TYPE, type), class: nameOf(CLASS, klass) });
  }
  for (let i = 0; i < counts[1]!; i++) message.answers.push(decodeRecord(r));
  for (let i = 0; i < counts[2]!; i++) message.authorities.push(decodeRecord(r));
  let tsigOffset: number | undefined;
  for (let i = 0; i < counts[3]!; i++) {
    const at = r.pos;
    const rr = decodeRecord(r);
    if (rr.type === 'TSIG') {
      // RFC 8945 §5.2: a TSIG anywhere but last is a FORMERR.
      if (i !== counts[3]! - 1) throw malformed('TSIG record is not the last record');
      tsigOffset = at;
    }
    message.additionals.push(rr);
  }
  // An OPT record may carry the upper 8 bits of an extended RCODE.
  const opt = message.additionals.find((rr) => rr.type === 'OPT');
  if (opt) message.rcode |= ((opt.ttl >>> 24) & 0xff) << 4;
  if (r.pos !== buf.length) throw malformed(`${buf.length - r.pos} trailing bytes`);
  return tsigOffset === undefined ? { message } : { message, tsigOffset };
}
