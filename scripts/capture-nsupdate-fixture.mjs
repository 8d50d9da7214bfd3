#!/usr/bin/env node
// Captures the RFC 2136 UPDATE messages that BIND's own client (nsupdate)
// sends, one message per prerequisite / update kind, so the unit tests can
// compare our encoder with a reference implementation record by record and
// check our TSIG code against BIND's MACs.
//
//   node scripts/capture-nsupdate-fixture.mjs [OUT]   (default test/dns/fixtures/nsupdate-capture.json)
//
// Needs nsupdate and tsig-keygen (bind9-utils / bind9-dnsutils). Only
// loopback is used: a UDP listener on 127.0.0.1 with a random port plays the
// server. Every request is answered with a proper TSIG-signed UPDATE
// response (NOERROR, request MAC chained, RFC 8945 §5.3), so nsupdate moves
// on at once and exits 0 -- which also proves that the response signing
// procedure written below (and mirrored in test/dns/tsig.test.ts) is the one
// BIND accepts. The responses are stored beside the requests.
//
// The keys are fresh random test keys made for this fixture; they protect
// nothing and are committed on purpose.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const OUT = process.argv[2] ?? 'test/dns/fixtures/nsupdate-capture.json';
const ZONE = 'example.test';
const NAME = 'syslog.example.test';
const LEASE = '_lease.syslog.example.test';
const TXT = 'v=1 holder=primary epoch=1 seq=0 at=0';
const TXT_NEXT = 'v=1 holder=primary epoch=1 seq=1 at=1700000000';

/** One UPDATE message per kind: the nsupdate commands between `zone` and `send`. */
const KINDS = [
  { kind: 'prereq-yxrrset', lines: [`prereq yxrrset ${NAME} A`] },
  { kind: 'prereq-yxrrset-value', lines: [`prereq yxrrset ${NAME} A 10.10.10.10`] },
  { kind: 'prereq-nxrrset', lines: [`prereq nxrrset ${NAME} A`] },
  { kind: 'prereq-yxdomain', lines: [`prereq yxdomain ${NAME}`] },
  { kind: 'prereq-nxdomain', lines: [`prereq nxdomain ${NAME}`] },
  { kind: 'update-add-a', lines: [`update add ${NAME} 30 A 10.10.10.10`] },
  { kind: 'update-add-txt', lines: [`update add ${LEASE} 30 TXT "${TXT}"`] },
  { kind: 'update-delete-rrset', lines: [`update delete ${NAME} A`] },
  { kind: 'update-delete-name', lines: [`update delete ${NAME}`] },
  { kind: 'update-delete-rr', lines: [`update delete ${NAME} A 10.10.10.10`] },
  // Exactly what src/lease/witness.ts sends for a renewal: prerequisites on
  // the A and TXT values last read, then delete RRset + add for both.
  {
    kind: 'cas',
    lines: [
      `prereq yxrrset ${NAME} A 10.10.10.10`,
      `prereq yxrrset ${LEASE} TXT "${TXT}"`,
      `update delete ${NAME} A`,
      `update add ${NAME} 30 A 10.10.10.10`,
      `update delete ${LEASE} TXT`,
      `update add ${LEASE} 30 TXT "${TXT_NEXT}"`,
    ],
  },
  // The same CAS signed with hmac-sha512 (SPEC §2: "sha512 nice").
  { kind: 'cas-sha512', algorithm: 'hmac-sha512', lines: [] },
];
KINDS[KINDS.length - 1].lines = KINDS[KINDS.length - 2].lines;

// ------------------------------------------------------------- wire helpers

/** Skips a (possibly compressed) name; returns the offset after it. */
function skipName(buf, pos) {
  for (;;) {
    const len = buf[pos];
    if (len === undefined) throw new Error('truncated name');
    if ((len & 0xc0) === 0xc0) return pos + 2;
    if (len === 0) return pos + 1;
    pos += 1 + len;
  }
}

/** Uncompressed wire form of a name, lowercase (RFC 8945 §4.3.3: canonical). */
function wireName(name) {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
}

/** Finds the request's zone section end and its TSIG MAC (last additional record). */
function parseRequest(buf) {
  const counts = [4, 6, 8, 10].map((o) => buf.readUInt16BE(o));
  if (counts[0] !== 1 || counts[3] < 1) throw new Error(`unexpected counts ${counts}`);
  const questionEnd = skipName(buf, 12) + 4;
  let pos = questionEnd;
  const total = counts[1] + counts[2] + counts[3];
  for (let i = 0; i < total - 1; i++) {
    pos = skipName(buf, pos);
    pos += 10 + buf.readUInt16BE(pos + 8);
  }
  pos = skipName(buf, pos);
  if (buf.readUInt16BE(pos) !== 250) throw new Error('last record is not a TSIG');
  pos += 10;
  pos = skipName(buf, pos); // algorithm
  const time = buf.readUIntBE(pos, 6);
  const macLen = buf.readUInt16BE(pos + 8);
  const mac = buf.subarray(pos + 10, pos + 10 + macLen);
  return { questionEnd, time, mac };
}

/** A NOERROR UPDATE response to `req`, TSIG-signed with the request MAC chained in. */
function signedResponse(req, key) {
  const { questionEnd, mac: requestMac } = parseRequest(req);
  const body = Buffer.from(req.subarray(0, questionEnd));
  const id = body.readUInt16BE(0);
  body.writeUInt16BE(0x8000 | (5 << 11), 2); // QR, opcode UPDATE, NOERROR
  body.writeUInt16BE(1, 4);
  body.writeUInt16BE(0, 6);
  body.writeUInt16BE(0, 8);
  body.writeUInt16BE(0, 10); // ARCOUNT without the TSIG
  const time = Math.floor(Date.now() / 1000);
  const fudge = 300;
  const timeFudge = Buffer.alloc(8);
  timeFudge.writeUIntBE(time, 0, 6);
  timeFudge.writeUInt16BE(fudge, 6);
  const variables = Buffer.concat([
    wireName(key.name),
    Buffer.from([0, 255, 0, 0, 0, 0]), // class ANY, TTL 0
    wireName(key.algorithm),
    timeFudge,
    Buffer.from([0, 0, 0, 0]), // error 0, other length 0
  ]);
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(requestMac.length);
  const hash = key.algorithm === 'hmac-sha512' ? 'sha512' : 'sha256';
  const mac = createHmac(hash, Buffer.from(key.secret, 'base64')).update(prefix).update(requestMac).update(body).update(variables).digest();

  const macLen = Buffer.alloc(2);
  macLen.writeUInt16BE(mac.length);
  const tail = Buffer.alloc(6);
  tail.writeUInt16BE(id, 0); // original ID, error 0, other length 0
  const rdata = Buffer.concat([wireName(key.algorithm), timeFudge, macLen, mac, tail]);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(250, 0);
  fixed.writeUInt16BE(255, 2);
  fixed.writeUInt16BE(rdata.length, 8);
  const out = Buffer.concat([body, wireName(key.name), fixed, rdata]);
  out.writeUInt16BE(1, 10);
  return { wire: out, time };
}

// ------------------------------------------------------------------ capture

function makeKey(dir, algorithm) {
  const name = `failover-test-${algorithm.slice(5)}`;
  const text = execFileSync('tsig-keygen', ['-a', algorithm, name], { encoding: 'utf8' });
  const file = path.join(dir, `${name}.key`);
  fs.writeFileSync(file, text, { mode: 0o600 });
  const secret = /secret\s+"([^"]+)"/.exec(text)?.[1];
  if (!secret) throw new Error(`no secret in tsig-keygen output:\n${text}`);
  return { name, algorithm, secret, file, text };
}

function runNsupdate(keyFile, script) {
  return new Promise((resolve, reject) => {
    // -t: overall timeout, -u: UDP retry interval, -r 0: no UDP retries.
    const child = spawn('nsupdate', ['-k', keyFile, '-t', '3', '-u', '1', '-r', '0'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
    child.stdin.end(script);
  });
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsupdate-capture-'));
  const sock = dgram.createSocket('udp4');
  try {
    const keys = { 'hmac-sha256': makeKey(dir, 'hmac-sha256'), 'hmac-sha512': makeKey(dir, 'hmac-sha512') };
    let current; // { key, requests: Buffer[], responses: Buffer[] }
    sock.on('message', (msg, rinfo) => {
      if (!current) return;
      current.requests.push(Buffer.from(msg));
      try {
        const { wire } = signedResponse(msg, current.key);
        current.responses.push(wire);
        sock.send(wire, rinfo.port, rinfo.address);
      } catch (err) {
        current.error = err;
      }
    });
    await new Promise((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const port = sock.address().port;

    const packets = [];
    for (const k of KINDS) {
      const key = keys[k.algorithm ?? 'hmac-sha256'];
      const script = [`zone ${ZONE}`, ...k.lines, 'send'].join('\n');
      current = { key, requests: [], responses: [] };
      const run = await runNsupdate(key.file, `server 127.0.0.1 ${port}\n${script}\n`);
      if (current.error) throw current.error;
      if (current.requests.length !== 1) {
        throw new Error(`${k.kind}: expected 1 request, captured ${current.requests.length}\n${run.out}`);
      }
      if (run.code !== 0) throw new Error(`${k.kind}: nsupdate exited ${run.code ?? run.signal}:\n${run.out}`);
      packets.push({
        kind: k.kind,
        key: key.name,
        script,
        hex: current.requests[0].toString('hex'),
        response: current.responses[0].toString('hex'),
      });
      process.stderr.write(`captured ${k.kind} (${current.requests[0].length} bytes)\n`);
    }

    const v = spawnSync('nsupdate', ['-V'], { encoding: 'utf8' }); // prints on stderr
    const version = `${v.stdout}${v.stderr}`.trim();
    const fixture = {
      comment:
        'Generated by scripts/capture-nsupdate-fixture.mjs: UPDATE requests as sent by nsupdate (hex), one per kind, ' +
        'and the TSIG-signed NOERROR responses the capture server sent back, which nsupdate accepted (exit 0). ' +
        'The keys are random test keys made for this fixture.',
      nsupdate: version,
      zone: ZONE,
      keys: Object.values(keys).map(({ name, algorithm, secret }) => ({ name, algorithm, secret })),
      packets,
    };
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, `${JSON.stringify(fixture, null, 2)}\n`);
    process.stderr.write(`wrote ${packets.length} packets to ${OUT}\n`);
  } finally {
    sock.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
