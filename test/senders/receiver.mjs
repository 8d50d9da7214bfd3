#!/usr/bin/env node
// A syslog receiver standing in for a site's collector (test/senders/, test/faults/): listens on
// UDP and TCP at --address:--port and writes one line per received syslog line to stdout:
// `<arrival ms since the epoch> <udp|tcp> <line>`, and `<ms> accept <peer>` per TCP connection. Prints `ready` once both listen. Ends on
// SIGTERM (closes its sockets) or when its stdout closes.
import dgram from 'node:dgram';
import net from 'node:net';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const address = arg('address', '127.0.0.1');
const port = Number(arg('port', '5514'));
const out = (proto, line) => {
  const text = line.replace(/[\r\n]+/g, ' ').trim();
  if (text) process.stdout.write(`${Date.now()} ${proto} ${text}\n`);
};

const udp = dgram.createSocket('udp4');
udp.on('message', (msg) => {
  for (const l of msg.toString('utf8').split('\n')) out('udp', l);
});
const conns = new Set();
const tcp = net.createServer((sock) => {
  conns.add(sock);
  process.stdout.write(`${Date.now()} accept ${sock.remoteAddress}:${sock.remotePort}\n`);
  let partial = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) out('tcp', l);
  });
  sock.on('error', () => undefined);
  sock.on('close', () => {
    if (partial) out('tcp', partial);
    conns.delete(sock);
  });
});
let up = 0;
const ready = () => {
  if (++up === 2) process.stdout.write('ready\n');
};
udp.bind(port, address, ready);
tcp.listen(port, address, ready);
process.on('SIGTERM', () => {
  udp.close();
  tcp.close();
  for (const s of conns) s.destroy();
  setTimeout(() => process.exit(0), 50);
});
process.stdout.on('error', () => process.exit(0));
