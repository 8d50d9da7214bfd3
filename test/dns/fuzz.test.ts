/**
 * Decoder fuzz: whatever arrives on the socket, decodeMessage either returns
 * or throws DnsError DNS_MALFORMED, and what the transport does next with a
 * decoded reply (verifyResponse) never throws. Anything else -- a RangeError
 * from a Buffer read, a TypeError, a hang -- is a crash of the agent's DNS
 * path by one datagram.
 *
 * Deterministic: a seeded xorshift PRNG. The seed is printed with every
 * failure; reproduce with FUZZ_SEED=<seed> npx vitest run test/dns/fuzz.test.ts.
 */
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TsigKey } from '../../src/config/keyfile.js';
import { DnsError } from '../../src/dns/errors.js';
import { signRequest, verifyResponse } from '../../src/dns/tsig.js';
import { change, prereq } from '../../src/dns/update.js';
import { decodeMessage, encodeMessage, encodeName, NO_FLAGS, RCODE, type Message, type ResourceRecord } from '../../src/dns/wire.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_2136) >>> 0 || 1;
const T = 1_700_000_000;
const KEY: TsigKey = { name: 'failover-agent.example.test', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 0x42) };
const KEY512: TsigKey = { name: 'failover-agent.example.test', algorithm: 'hmac-sha512', secret: Buffer.alloc(64, 0x17) };

// ------------------------------------------------------------------- PRNG

/** xorshift32: tiny, fast, and the same sequence everywhere for a seed. */
function xorshift(seed: number): { u32(): number; int(n: number): number; byte(): number; chance(p: number): boolean } {
  let s = seed >>> 0 || 1;
  const u32 = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    u32,
    int: (n: number) => (n <= 0 ? 0 : u32() % n),
    byte: () => u32() & 0xff,
    chance: (p: number) => u32() / 0x1_0000_0000 < p,
  };
}

// ----------------------------------------------------------------- corpus

const a = { name: 'syslog.example.test', type: 'A' as const };
const lease = { name: '_lease.syslog.example.test', type: 'TXT' as const };
const LEASE_TXT = 'v=1 holder=primary epoch=4 seq=17 at=1700000000';

function message(m: Partial<Message>): Message {
  return { id: 0x4242, opcode: 'QUERY', flags: NO_FLAGS, rcode: 0, questions: [], answers: [], authorities: [], additionals: [], ...m };
}

const soa: ResourceRecord = {
  name: 'example.test',
  type: 'SOA',
  class: 'IN',
  ttl: 3600,
  data: { mname: 'ns1.example.test', rname: 'hostmaster.example.test', serial: 2024010101, refresh: 3600, retry: 600, expire: 86400, minimum: 30 },
};

const casUpdate = message({
  opcode: 'UPDATE',
  questions: [{ name: 'example.test', type: 'SOA', class: 'IN' }],
  answers: [...prereq.rrsetEquals(a, ['10.10.10.10']), ...prereq.rrsetEquals(lease, [[LEASE_TXT]])],
  authorities: [
    change.deleteRrset(a),
    change.add({ ...a, data: '10.20.20.20' }, 30),
    change.deleteRrset(lease),
    change.add({ ...lease, data: ['v=1 holder=dr epoch=5 seq=18 at=1700000100'] }, 30),
  ],
});

/** The request the signed responses below answer. */
const request = signRequest(casUpdate, KEY, T);

/** A response signed as a server signs it, chained to `request`. */
function signedResponse(m: Message, key: TsigKey, error = 0, other = Buffer.alloc(0)): Buffer {
  const body = encodeMessage(m);
  const alg = encodeName(key.algorithm);
  const timeFudge = Buffer.alloc(8);
  timeFudge.writeUIntBE(T, 0, 6);
  timeFudge.writeUInt16BE(300, 6);
  const errOther = Buffer.alloc(4);
  errOther.writeUInt16BE(error, 0);
  errOther.writeUInt16BE(other.length, 2);
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(request.mac.length);
  const vars = Buffer.concat([encodeName(key.name), Buffer.from([0, 255, 0, 0, 0, 0]), alg, timeFudge, errOther, other]);
  const mac = createHmac(key.algorithm.slice(5), key.secret).update(prefix).update(request.mac).update(body).update(vars).digest();
  const tsig: ResourceRecord = {
    name: key.name,
    type: 'TSIG',
    class: 'ANY',
    ttl: 0,
    data: { algorithm: key.algorithm, timeSigned: T, fudge: 300, mac, originalId: m.id, error, other },
  };
  return encodeMessage({ ...m, additionals: [...m.additionals, tsig] });
}

const responseHeader = { opcode: 'UPDATE' as const, flags: { ...NO_FLAGS, qr: true }, questions: casUpdate.questions };
const readHeader = { flags: { ...NO_FLAGS, qr: true, aa: true } };

interface Named {
  label: string;
  wire: Buffer;
}

function corpus(): Named[] {
  const out: Named[] = [
    { label: 'query', wire: encodeMessage(message({ questions: [{ name: 'syslog.example.test', type: 'A', class: 'IN' }] })) },
    { label: 'signed query', wire: signRequest(message({ questions: [{ name: '_lease.syslog.example.test', type: 'TXT', class: 'IN' }] }), KEY, T).wire },
    { label: 'signed CAS update', wire: request.wire },
    { label: 'signed CAS update sha512', wire: signRequest(casUpdate, KEY512, T).wire },
    { label: 'signed NOERROR update response', wire: signedResponse(message({ ...responseHeader }), KEY) },
    { label: 'signed NXRRSET update response', wire: signedResponse(message({ ...responseHeader, rcode: RCODE.NXRRSET }), KEY) },
    {
      label: 'signed BADTIME response',
      wire: signedResponse(message({ ...responseHeader, rcode: RCODE.NOTAUTH }), KEY, RCODE.BADTIME, Buffer.from([0, 0, 0x65, 0x53, 0xf1, 0x00])),
    },
    {
      label: 'unsigned BADSIG response',
      wire: encodeMessage(
        message({
          ...responseHeader,
          rcode: RCODE.NOTAUTH,
          additionals: [
            { name: KEY.name, type: 'TSIG', class: 'ANY', ttl: 0, data: { algorithm: KEY.algorithm, timeSigned: T, fudge: 300, mac: Buffer.alloc(0), originalId: 0x4242, error: RCODE.BADSIG, other: Buffer.alloc(0) } },
          ],
        }),
      ),
    },
    {
      label: 'signed read: A + lease TXT + SOA',
      wire: signedResponse(
        message({
          ...readHeader,
          questions: [{ name: 'syslog.example.test', type: 'A', class: 'IN' }],
          answers: [
            { ...a, class: 'IN', ttl: 30, data: '10.10.10.10' },
            { ...lease, class: 'IN', ttl: 30, data: [LEASE_TXT, 'second string'] },
            { name: 'syslog.example.test', type: 'AAAA', class: 'IN', ttl: 30, data: '2001:db8::10' },
          ],
          authorities: [soa, { name: 'example.test', type: 'NS', class: 'IN', ttl: 3600, data: 'ns1.example.test' }],
        }),
        KEY,
      ),
    },
    {
      label: 'NXDOMAIN with SOA, CNAME, unknown type and OPT',
      wire: encodeMessage(
        message({
          ...readHeader,
          rcode: RCODE.NXDOMAIN,
          questions: [{ name: 'nope.example.test', type: 'TXT', class: 'IN' }],
          answers: [
            { name: 'alias.example.test', type: 'CNAME', class: 'IN', ttl: 60, data: 'syslog.example.test' },
            { name: 'raw.example.test', type: 65280, class: 'IN', ttl: 60, data: Buffer.from([1, 2, 3, 4, 5]) },
          ],
          authorities: [soa],
          additionals: [{ name: '.', type: 'OPT', class: 1232, ttl: 0x01000000, data: null }],
        }),
      ),
    },
  ];
  // nsupdate's messages: BIND's name compression, pointers everywhere.
  const fixture = JSON.parse(fs.readFileSync(new URL('./fixtures/nsupdate-capture.json', import.meta.url), 'utf8')) as {
    packets: { kind: string; hex: string; response: string }[];
  };
  for (const p of fixture.packets) {
    out.push({ label: `nsupdate ${p.kind}`, wire: Buffer.from(p.hex, 'hex') });
    out.push({ label: `nsupdate ${p.kind} response`, wire: Buffer.from(p.response, 'hex') });
  }
  return out;
}

/** Offsets where a name starts (owner names, and names at the start of NS/CNAME/SOA/TSIG rdata). */
function nameOffsets(buf: Buffer): number[] {
  const skip = (pos: number): number => {
    for (;;) {
      const len = buf[pos]!;
      if ((len & 0xc0) === 0xc0) return pos + 2;
      if (len === 0) return pos + 1;
      pos += len + 1;
    }
  };
  const offsets = [];
  let pos = 12;
  for (let i = 0; i < buf.readUInt16BE(4); i++) {
    offsets.push(pos);
    pos = skip(pos) + 4;
  }
  const records = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  for (let i = 0; i < records; i++) {
    offsets.push(pos);
    pos = skip(pos);
    const type = buf.readUInt16BE(pos);
    const rdlength = buf.readUInt16BE(pos + 8);
    if (rdlength > 0 && [2, 5, 6, 250].includes(type)) offsets.push(pos + 10);
    pos += 10 + rdlength;
  }
  return offsets;
}

// ---------------------------------------------------------------- harness

interface Failure {
  seed: number;
  group: string;
  iteration: number;
  hex: string;
  error: string;
}

const describeError = (err: unknown): string =>
  err instanceof Error ? `${err.constructor.name}${err instanceof DnsError ? ` ${err.code}` : ''}: ${err.message}\n${err.stack ?? ''}` : String(err);

/** 'decoded' or 'rejected' when the input was handled as it must be, else why not. */
function check(buf: Buffer): { ok: 'decoded' | 'rejected' } | { why: string } {
  let decoded;
  try {
    decoded = decodeMessage(buf);
  } catch (err) {
    if (err instanceof DnsError && err.code === 'DNS_MALFORMED') return { ok: 'rejected' };
    return { why: `decodeMessage threw ${describeError(err)}` };
  }
  // What the transport does with a decoded reply: TSIG verification, with both key sizes.
  for (const key of [KEY, KEY512]) {
    try {
      const v = verifyResponse(buf, decoded, key, request.mac, T);
      if (!['ok', 'bad', 'unsigned', 'unsigned-error'].includes(v.kind)) return { why: `verifyResponse returned ${JSON.stringify(v)}` };
    } catch (err) {
      return { why: `verifyResponse threw ${describeError(err)}` };
    }
  }
  const m = decoded.message;
  const counts = [m.questions.length, m.answers.length, m.authorities.length, m.additionals.length];
  for (let i = 0; i < 4; i++) {
    const header = buf.readUInt16BE(4 + 2 * i);
    if (counts[i] !== header) return { why: `section ${i} has ${counts[i]} entries, header says ${header}` };
  }
  return { ok: 'decoded' };
}

class Fuzzer {
  readonly rng = xorshift(SEED);
  readonly failures: Failure[] = [];
  readonly counts = new Map<string, number>();
  decoded = 0;

  run(group: string, buf: Buffer): void {
    const n = this.counts.get(group) ?? 0;
    this.counts.set(group, n + 1);
    const result = check(buf);
    if ('ok' in result) {
      // Count inputs that made it through, to show the fuzz is not all rejects.
      if (result.ok === 'decoded') this.decoded++;
      return;
    }
    if (this.failures.length < 20) this.failures.push({ seed: SEED, group, iteration: n, hex: buf.toString('hex'), error: result.why });
  }

  randomBuffer(len: number): Buffer {
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = this.rng.byte();
    return b;
  }

  /** 1..8 random byte changes: random values, single bit flips, or interesting values. */
  mutate(src: Buffer): Buffer {
    const b = Buffer.from(src);
    const n = 1 + this.rng.int(8);
    for (let k = 0; k < n && b.length > 0; k++) {
      const at = this.rng.int(b.length);
      switch (this.rng.int(4)) {
        case 0:
          b[at] = this.rng.byte();
          break;
        case 1:
          b[at]! ^= 1 << this.rng.int(8);
          break;
        case 2:
          b[at] = [0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff][this.rng.int(8)]!;
          break;
        default:
          // A 16-bit field (count, type, class, rdlength) set to an edge value.
          if (at + 1 < b.length) b.writeUInt16BE([0, 1, 2, 0xff, 0x100, 0x7fff, 0xffff][this.rng.int(7)]!, at);
      }
    }
    return b;
  }
}

// ------------------------------------------------------------------ tests

describe(`decoder fuzz (seed ${SEED})`, () => {
  it('>= 100,000 inputs: decodeMessage returns or throws DNS_MALFORMED, verifyResponse never throws', () => {
    const started = performance.now();
    const f = new Fuzzer();
    const { rng } = f;
    const seeds = corpus();

    // Every corpus message is valid to begin with (and the signed responses verify).
    for (const s of seeds) {
      expect(() => decodeMessage(s.wire), s.label).not.toThrow();
    }
    const ok = seeds.find((s) => s.label === 'signed read: A + lease TXT + SOA')!;
    expect(verifyResponse(ok.wire, decodeMessage(ok.wire), KEY, request.mac, T).kind).toBe('ok');

    // 1. Pure random buffers of 0..600 bytes.
    for (let i = 0; i < 25_000; i++) f.run('random', f.randomBuffer(rng.int(601)));

    // 2. Random bodies behind a plausible header (small counts), so the record
    //    decoders see the garbage instead of the count check.
    for (let i = 0; i < 20_000; i++) {
      const b = f.randomBuffer(12 + rng.int(589));
      for (let s = 0; s < 4; s++) b.writeUInt16BE(rng.int(4), 4 + 2 * s);
      f.run('random body', b);
    }

    // 3. Every valid message truncated at every length (and with one byte of garbage appended).
    for (const s of seeds) {
      for (let len = 0; len < s.wire.length; len++) f.run('truncated', s.wire.subarray(0, len));
      f.run('extended', Buffer.concat([s.wire, Buffer.from([rng.byte()])]));
    }

    // 4. Valid messages with 1..8 random byte changes.
    for (let i = 0; i < 45_000; i++) f.run('mutated', f.mutate(seeds[rng.int(seeds.length)]!.wire));

    // 5. Compression pointers at name positions: to itself, forward, into the
    //    header, past the end, mutual loops, reserved label types 0x40/0x80,
    //    and random targets.
    for (const s of seeds) {
      const names = nameOffsets(s.wire);
      for (const at of names) {
        const targets = [at, at + 1, at + 2, s.wire.length - 1, s.wire.length, s.wire.length + 100, 0, 5, 11, 0x3fff];
        for (const to of targets) {
          const b = Buffer.from(s.wire);
          b.writeUInt16BE(0xc000 | (to & 0x3fff), at);
          f.run('pointer', b);
        }
        for (const reserved of [0x40, 0x80]) {
          const b = Buffer.from(s.wire);
          b[at] = reserved | (b[at]! & 0x3f);
          f.run('reserved label type', b);
        }
        // Every later name pointing at this one, this one pointing at the last: a loop if followed.
        const loop = Buffer.from(s.wire);
        for (const other of names) if (other > at + 1) loop.writeUInt16BE(0xc000 | at, other);
        loop.writeUInt16BE(0xc000 | (names[names.length - 1]! & 0x3fff), at);
        f.run('pointer loop', loop);
      }
      for (let i = 0; i < 300; i++) {
        const b = Buffer.from(s.wire);
        const at = names[rng.int(names.length)]!;
        b.writeUInt16BE(0xc000 | rng.int(0x4000 > b.length * 2 ? b.length * 2 : 0x4000), at);
        if (rng.chance(0.5)) {
          const second = names[rng.int(names.length)]!;
          if (second !== at && second + 1 < b.length) b.writeUInt16BE(0xc000 | rng.int(b.length + 4), second);
        }
        f.run('random pointer', b);
      }
    }

    // 6. Splices: a slice of one valid message over a slice of another.
    for (let i = 0; i < 10_000; i++) {
      const x = seeds[rng.int(seeds.length)]!.wire;
      const y = seeds[rng.int(seeds.length)]!.wire;
      const cut = rng.int(x.length);
      const from = rng.int(y.length);
      f.run('spliced', Buffer.concat([x.subarray(0, cut), y.subarray(from, from + rng.int(y.length - from + 1))]));
    }

    const total = [...f.counts.values()].reduce((s, n) => s + n, 0);
    const seconds = (performance.now() - started) / 1000;
    if (f.failures.length > 0) {
      console.error(`fuzz seed ${SEED}: ${f.failures.length} failure(s); first:\n${JSON.stringify(f.failures[0], null, 2)}`);
    }
    expect(f.failures, `seed ${SEED} (FUZZ_SEED=${SEED} to reproduce)`).toEqual([]);
    expect(total).toBeGreaterThanOrEqual(100_000);
    // The mutations must reach past the header checks: a good share decodes.
    expect(f.decoded).toBeGreaterThan(10_000);
    console.log(
      `fuzz seed ${SEED}: ${total} inputs in ${seconds.toFixed(1)} s, ${f.decoded} decoded; ` +
        [...f.counts].map(([g, n]) => `${g}=${n}`).join(' '),
    );
  });
});
