#!/usr/bin/env node
// The checker's eye on the witness: asks the DNS server for the failover record every 100 ms
// and the lease (TXT `_lease.<name>`, its seq: each renewal applied raises it) every 100 ms (RD=0,
// over UDP, unsigned: reading needs no key) and prints one line per round,
// `<wallMs> <address|-> <seq|->`, `-` for what did not answer within 90 ms. Run inside the WAN
// namespace, whose own traffic is not subject to the link faults (they act on forwarded packets).
//
//   node record-probe.mjs --server 198.18.3.2 --name syslog.example.test [--hz 10]
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';

const { values } = parseArgs({ options: { server: { type: 'string' }, name: { type: 'string' }, hz: { type: 'string', default: '10' }, port: { type: 'string', default: '53' } } });
if (!values.server || !values.name) {
  console.error('usage: record-probe.mjs --server ADDR --name NAME [--hz N]');
  process.exit(2);
}
const periodMs = 1000 / Number(values.hz);
const sock = dgram.createSocket('udp4');
let id = 1;
let waiting = null; // { ids: {a, txt}, sentMs, timer, a, seq }
const done = () => {
  clearTimeout(waiting.timer);
  process.stdout.write(`${waiting.sentMs} ${waiting.a ?? '-'} ${waiting.seq ?? '-'}\n`);
  waiting = null;
};
sock.on('message', (msg) => {
  let p;
  try {
    p = dnsPacket.decode(msg);
  } catch {
    return;
  }
  if (!waiting) return;
  if (p.id === waiting.ids.a) {
    waiting.a = p.answers.find((r) => r.type === 'A')?.data ?? '-';
  } else if (p.id === waiting.ids.txt) {
    const t = p.answers.find((r) => r.type === 'TXT');
    const text = t ? [].concat(t.data).map(String).join('') : '';
    waiting.seq = /\bseq=(\d+)/.exec(text)?.[1] ?? '-';
  } else return;
  if (waiting.a !== undefined && waiting.seq !== undefined) done();
});
function ask() {
  if (waiting) return; // the previous one is still within its 90 ms
  const next = () => (id = (id % 65535) + 1);
  const ids = { a: next(), txt: next() };
  const sentMs = Date.now();
  const q = (qid, type, name) => dnsPacket.encode({ type: 'query', id: qid, flags: 0, questions: [{ type, name }] });
  const timer = setTimeout(() => done(), Math.min(90, periodMs * 0.9));
  waiting = { ids, sentMs, timer, a: undefined, seq: undefined };
  sock.send(q(ids.a, 'A', values.name), Number(values.port), values.server);
  sock.send(q(ids.txt, 'TXT', `_lease.${values.name}`), Number(values.port), values.server);
}
sock.bind(0, () => {
  console.log('ready');
  setInterval(ask, periodMs);
});
process.on('SIGTERM', () => process.exit(0));
