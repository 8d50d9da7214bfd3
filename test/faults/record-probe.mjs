#!/usr/bin/env node
// The checker's eye on the witness: asks the DNS server for the failover record every 100 ms
// (RD=0, over UDP, unsigned: reading needs no key) and prints one line per answer,
// `<wallMs> <address>` or `<wallMs> -` when no answer came within 90 ms. Run inside the WAN
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
let waiting = null; // { id, sentMs, timer }
sock.on('message', (msg) => {
  let p;
  try {
    p = dnsPacket.decode(msg);
  } catch {
    return;
  }
  if (!waiting || p.id !== waiting.id) return;
  clearTimeout(waiting.timer);
  const a = p.answers.find((r) => r.type === 'A');
  process.stdout.write(`${waiting.sentMs} ${a ? a.data : '-'}\n`);
  waiting = null;
});
function ask() {
  if (waiting) return; // the previous one is still within its 90 ms
  id = (id % 65535) + 1;
  const sentMs = Date.now();
  const q = dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type: 'A', name: values.name }] });
  const timer = setTimeout(() => {
    process.stdout.write(`${sentMs} -\n`);
    waiting = null;
  }, Math.min(90, periodMs * 0.9));
  waiting = { id, sentMs, timer };
  sock.send(q, Number(values.port), values.server);
}
sock.bind(0, () => {
  console.log('ready');
  setInterval(ask, periodMs);
});
process.on('SIGTERM', () => process.exit(0));
