import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, test } from 'vitest';

import { createHealthChecker, MAX_BODY_BYTES, type HealthCheckConfig, type HealthChecker } from '../../src/health/checks.js';
import { systemClock } from '../../src/clock.js';

// ---------------------------------------------------------------------------------------------
// Real servers on 127.0.0.1, stopped after each test

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  // Checkers first (they release their sockets), then the servers.
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Resolves with `p`, or rejects when it takes longer than `ms` (every wait here is bounded). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

interface TestServer {
  /** `http://127.0.0.1:PORT` + path. */
  url(p?: string): string;
  port: number;
  /** Requests received. */
  requests: http.IncomingMessage[];
  /** Every connection accepted, in order. */
  sockets: net.Socket[];
  /** Resolves on the next request to arrive. */
  nextRequest(): Promise<http.IncomingMessage>;
}

async function startHttp(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void, opts: { tls?: { key: string; cert: string }; port?: number } = {}): Promise<TestServer> {
  const requests: http.IncomingMessage[] = [];
  const sockets: net.Socket[] = [];
  const waiters: ((r: http.IncomingMessage) => void)[] = [];
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    // The checker hangs up on purpose (timeouts, long bodies): resets are expected here.
    req.on('error', () => {});
    res.on('error', () => {});
    requests.push(req);
    for (const w of waiters.splice(0)) w(req);
    handler(req, res);
  };
  const server = opts.tls ? https.createServer(opts.tls, onRequest) : http.createServer(onRequest);
  server.on('connection', (s: net.Socket) => {
    s.on('error', () => {});
    sockets.push(s);
  });
  server.on('secureConnection', (s: net.Socket) => sockets.push(s));
  server.on('tlsClientError', () => {}); // the checker refusing our certificate is what we test
  server.listen(opts.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  cleanups.push(async function closeServer() {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const scheme = opts.tls ? 'https' : 'http';
  return {
    url: (p = '/healthz') => `${scheme}://127.0.0.1:${port}${p}`,
    port,
    requests,
    sockets,
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
  };
}

async function startTcp(): Promise<{ port: number; accepted: net.Socket[] }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => {
    accepted.push(s);
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const s of accepted) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, accepted };
}

/** A TCP proxy to `port` that holds every chunk `oneWayMs` in each direction (a long path; loopback has no netem). */
async function startDelayProxy(port: number, oneWayMs: number): Promise<{ port: number; connections(): number }> {
  let n = 0;
  const sockets: net.Socket[] = [];
  const relay = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), oneWayMs));
    from.on('end', () => setTimeout(() => to.end(), oneWayMs));
    from.on('error', () => to.destroy());
  };
  const server = net.createServer((client) => {
    n++;
    const upstream = net.connect({ host: '127.0.0.1', port });
    sockets.push(client, upstream);
    relay(client, upstream);
    relay(upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, connections: () => n };
}

/** A port that was just listened on and closed: connecting to it is refused. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function checker(cfg: Partial<HealthCheckConfig> & { targets: string[] }, now?: () => number): HealthChecker {
  const c = createHealthChecker({ require: 'any', timeout: 2000, ...cfg }, now ? { clock: { ...systemClock, monotonicMs: now } } : {});
  cleanups.push(() => c.close());
  return c;
}

/** Resolves when the socket has closed (an ECONNRESET on the way is fine: the peer hung up). */
function socketClosed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.closed) resolve();
    else s.once('close', () => resolve());
  });
}

const ok200 = (body = 'ok\n') => (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(body);
};

/** Time one check, in ms by a monotonic clock. */
async function timed<T>(p: () => Promise<T>): Promise<{ value: T; elapsed: number }> {
  const t0 = performance.now();
  const value = await p();
  return { value, elapsed: performance.now() - t0 };
}

// ---------------------------------------------------------------------------------------------

describe('http(s) targets', () => {
  test('200 is healthy', async () => {
    const srv = await startHttp(ok200());
    const r = await checker({ targets: [srv.url()] }).check();
    expect(r.ok).toBe(true);
    expect(r.results).toHaveLength(1);
    expect(r.results[0]).toMatchObject({ target: srv.url(), ok: true });
    expect(r.results[0].detail).toMatch(/^200 in \d+ ms$/);
    expect(r.detail).toMatch(new RegExp(`^1/1 targets healthy: ${srv.url()} 200 in \\d+ ms$`));
    expect(srv.requests[0].method).toBe('GET');
    expect(srv.requests[0].url).toBe('/healthz');
  });

  test('any 2xx is healthy (204 without a body)', async () => {
    const srv = await startHttp((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    const r = await checker({ targets: [srv.url()] }).check();
    expect(r.results[0]).toMatchObject({ ok: true });
    expect(r.results[0].detail).toMatch(/^204 in \d+ ms$/);
  });

  test('500 is unhealthy; the start of its body is in the detail', async () => {
    const srv = await startHttp((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('collector\ninactive\n');
    });
    const r = await checker({ targets: [srv.url()] }).check();
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toMatch(/^500 in \d+ ms: "collector inactive"$/);
    expect(r.detail).toMatch(new RegExp(`^1/1 targets failed: ${srv.url()} 500 in \\d+ ms: "collector inactive"$`));
  });

  test('a 3xx is unhealthy and not followed', async () => {
    const srv = await startHttp((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(301, { location: '/elsewhere' });
        res.end();
      } else ok200()(req, res);
    });
    const r = await checker({ targets: [srv.url()] }).check();
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toMatch(/^301 in \d+ ms: redirect to \/elsewhere not followed$/);
    expect(srv.requests.map((q) => q.url)).toEqual(['/healthz']);
  });

  test('expect: the body must contain the substring', async () => {
    const srv = await startHttp(ok200('{"active": true, "phase": "active"}'));
    const good = await checker({ targets: [srv.url()], expect: '"active": true' }).check();
    expect(good.ok).toBe(true);
    expect(good.results[0].detail).toMatch(/^200 in \d+ ms$/);

    const bad = await checker({ targets: [srv.url()], expect: 'ok' }).check();
    expect(bad.ok).toBe(false);
    expect(bad.results[0].detail).toMatch(/^200 in \d+ ms, body lacks "ok"$/);

    // "" means no body check.
    expect((await checker({ targets: [srv.url()], expect: '' }).check()).ok).toBe(true);
  });

  test('only the first 64 KiB of a body are read: a long body is cut off, not waited for', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 'x');
    const srv = await startHttp((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(big);
      res.end('MARKER'); // beyond the first 64 KiB
    });
    const plain = await checker({ targets: [srv.url()] }).check();
    expect(plain.ok).toBe(true);

    const r = await checker({ targets: [srv.url()], expect: 'MARKER' }).check();
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toMatch(new RegExp(`^200 in \\d+ ms, body lacks "MARKER" in its first ${MAX_BODY_BYTES} bytes$`));
    // The checker hung up rather than read 4 MiB.
    await within(socketClosed(srv.sockets[1]), 2000, 'server socket closed');
  });

  test('a server that accepts and never answers fails AT the timeout', async () => {
    const srv = await startHttp(() => {
      /* never answers */
    });
    const c = checker({ targets: [srv.url()], timeout: 300 });
    const { value: r, elapsed } = await timed(() => c.check());
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toBe('timeout after 300 ms waiting for response (new connection)');
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(800);
    expect(r.results[0].ms).toBeGreaterThanOrEqual(300);
    expect(srv.requests).toHaveLength(1);
    // The checker dropped the connection: nothing lingers until undici's own timeouts.
    await within(socketClosed(srv.sockets[0]), 1000, 'server socket closed');
  });

  test('a server that sends headers and then hangs the body fails AT the timeout', async () => {
    const srv = await startHttp((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial'); // headers and a first chunk go out; the body never ends
    });
    const c = checker({ targets: [srv.url()], timeout: 300, expect: 'never' });
    const { value: r, elapsed } = await timed(() => c.check());
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toBe('timeout after 300 ms reading body (HTTP 200)');
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(800);
    await within(socketClosed(srv.sockets[0]), 1000, 'server socket closed');
  });

  test('a hung body fails even without expect (the whole body is within the timeout)', async () => {
    const srv = await startHttp((_req, res) => {
      res.writeHead(200);
      res.write('partial');
    });
    const { value: r, elapsed } = await timed(() => checker({ targets: [srv.url()], timeout: 300 }).check());
    expect(r.results[0].detail).toBe('timeout after 300 ms reading body (HTTP 200)');
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(800);
  });

  test('connection refused fails fast', async () => {
    const port = await closedPort();
    const { value: r, elapsed } = await timed(() => checker({ targets: [`http://127.0.0.1:${port}/healthz`], timeout: 2000 }).check());
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toMatch(/ECONNREFUSED/);
    expect(elapsed).toBeLessThan(1000);
  });

  test('keep-alive: checks reuse one connection (no handshake per check)', async () => {
    const srv = await startHttp(ok200());
    const c = checker({ targets: [srv.url()] });
    for (let i = 0; i < 5; i++) expect((await c.check()).ok).toBe(true);
    expect(srv.requests).toHaveLength(5);
    expect(srv.sockets).toHaveLength(1);
    expect(srv.requests[0].headers.connection).not.toBe('close');
  });

  test('a dead peer on the kept connection fails at the timeout, and the connection is dropped', async () => {
    let answer = true;
    const srv = await startHttp((req, res) => {
      if (answer) ok200()(req, res);
    });
    const c = checker({ targets: [srv.url()], timeout: 300 });
    expect((await c.check()).ok).toBe(true);
    answer = false; // the peer stops answering (hung, or gone without a reset)
    const r = await c.check();
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toBe('timeout after 300 ms waiting for response (kept-alive connection)');
    await within(socketClosed(srv.sockets[0]), 1000, 'kept connection dropped');
    answer = true;
    expect((await c.check()).ok).toBe(true);
    expect(srv.sockets).toHaveLength(2);
  });

  test('a kept connection reset under the check: asked once more on a new connection, the verdict is the peer\'s', async () => {
    let n = 0;
    const srv = await startHttp((req, res) => {
      n++;
      if (n === 2) req.socket.destroy(); // the old socket goes away as the request arrives
      else ok200(`answer ${n}`)(req, res);
    });
    const c = checker({ targets: [srv.url()], timeout: 1000, expect: 'answer' });
    expect((await c.check()).ok).toBe(true);
    const r = await c.check();
    expect(r.ok).toBe(true);
    expect(srv.requests).toHaveLength(3);
    expect(srv.sockets).toHaveLength(2);
  });

  test('a replaced peer (another server on the address) is checked, not the old socket', async () => {
    const a = await startHttp(ok200('I am A'));
    const c = checker({ targets: [a.url()], expect: 'I am B' });
    expect((await c.check()).results[0].detail).toMatch(/body lacks "I am B"/);
    expect((await c.check()).ok).toBe(false); // still A, on the kept connection
    // A goes away (its sockets closed), B takes its port.
    const port = a.port;
    await cleanups.splice(cleanups.findIndex((f) => f.name === 'closeServer'), 1)[0]!();
    const b = await startHttp(ok200('I am B'), { port });
    const r = await c.check();
    expect(r.ok).toBe(true);
    expect(b.requests).toHaveLength(1);
  });

  test('a 200 ms round-trip path: a 500 ms timeout holds for every check, one connection for all', async () => {
    const srv = await startHttp(ok200());
    const proxy = await startDelayProxy(srv.port, 100); // 100 ms each way
    const c = checker({ targets: [`http://127.0.0.1:${proxy.port}/healthz`], timeout: 500 });
    const details: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await c.check();
      details.push(r.results[0].detail);
      expect(r.ok).toBe(true);
    }
    expect(proxy.connections()).toBe(1);
    // Each check is one round trip: about 200 ms, never a handshake first.
    for (const d of details.slice(1)) expect(Number(/in (\d+) ms/.exec(d)![1])).toBeLessThan(400);
  });

  const hasOpenssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  test.skipIf(!hasOpenssl)('https: certificates are verified (a self-signed one is refused)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fa-health-'));
    try {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      ], { stdio: 'ignore' });
      const srv = await startHttp(ok200(), { tls: { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') } });
      const r = await checker({ targets: [srv.url()] }).check();
      expect(r.ok).toBe(false);
      expect(r.results[0].detail).toMatch(/self[- ]signed|SELF_SIGNED/i);
      expect(srv.requests).toHaveLength(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tcp targets', () => {
  test('an open port is healthy; the connection is dropped at once', async () => {
    const srv = await startTcp();
    const r = await checker({ targets: [`tcp://127.0.0.1:${srv.port}`] }).check();
    expect(r.ok).toBe(true);
    expect(r.results[0].detail).toMatch(/^connected in \d+ ms$/);
    await within(
      (async () => {
        while (srv.accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
        await socketClosed(srv.accepted[0]);
      })(),
      1000,
      'tcp connection closed by the checker',
    );
  });

  test('a closed port is unhealthy', async () => {
    const port = await closedPort();
    const { value: r, elapsed } = await timed(() => checker({ targets: [`tcp://127.0.0.1:${port}`] }).check());
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toMatch(/ECONNREFUSED/);
    expect(elapsed).toBeLessThan(1000);
  });

  // A listener that never accepts (full backlog / SYN black hole) cannot be made portably on
  // loopback; the timer that bounds it is the one the http hang tests above exercise.
});

describe('require = any | all', () => {
  test('mixed targets: any is healthy, all is not; targets run in parallel', async () => {
    const srv = await startHttp(ok200());
    const hung = await startHttp(() => {});
    const port = await closedPort();
    const targets = [srv.url(), `tcp://127.0.0.1:${port}`, hung.url()];

    const { value: any, elapsed } = await timed(() => checker({ targets, require: 'any', timeout: 300 }).check());
    expect(any.ok).toBe(true);
    expect(any.results.map((r) => [r.target, r.ok])).toEqual([[targets[0], true], [targets[1], false], [targets[2], false]]);
    expect(any.detail).toMatch(
      new RegExp(`^1/3 targets healthy \\(require any\\); failed: tcp://127\\.0\\.0\\.1:${port} .*ECONNREFUSED.*; ${hung.url()} timeout after 300 ms waiting for response \\(new connection\\)$`),
    );
    // In parallel: one timeout, not the sum.
    expect(elapsed).toBeLessThan(800);

    const all = await checker({ targets, require: 'all', timeout: 300 }).check();
    expect(all.ok).toBe(false);
    expect(all.detail).toMatch(/^2\/3 targets failed \(require all\): tcp:/);

    const tcp = await startTcp();
    const allGood = await checker({ targets: [srv.url(), `tcp://127.0.0.1:${tcp.port}`], require: 'all' }).check();
    expect(allGood.ok).toBe(true);
    expect(allGood.detail).toMatch(/^2\/2 targets healthy: /);

    const noneGood = await checker({ targets: [targets[1], targets[2]], require: 'any', timeout: 300 }).check();
    expect(noneGood.ok).toBe(false);
    expect(noneGood.detail).toMatch(/^2\/2 targets failed: /);
  });
});

describe('the checker', () => {
  test('overlapping calls share one check (one request server-side)', async () => {
    const held: http.ServerResponse[] = [];
    const srv = await startHttp((_req, res) => held.push(res));
    const c = checker({ targets: [srv.url()], timeout: 5000 });

    const first = c.check();
    await within(srv.nextRequest(), 2000, 'first request');
    const second = c.check();
    expect(second).toBe(first);

    held[0].writeHead(200);
    held[0].end('ok');
    const [a, b] = await within(Promise.all([first, second]), 2000, 'shared check');
    expect(a).toBe(b);
    expect(a.ok).toBe(true);
    expect(srv.requests).toHaveLength(1);

    // Once it is over, the next call starts a new check.
    const third = c.check();
    expect(third).not.toBe(first);
    await within(srv.nextRequest(), 2000, 'second request');
    held[1].writeHead(200);
    held[1].end('ok');
    expect((await third).ok).toBe(true);
    expect(srv.requests).toHaveLength(2);
  });

  test('close() cancels a running check and releases its connection', async () => {
    const srv = await startHttp(() => {});
    const c = createHealthChecker({ targets: [srv.url()], require: 'any', timeout: 10_000 });
    const running = c.check();
    await within(srv.nextRequest(), 2000, 'request');

    const { elapsed } = await timed(() => within(c.close(), 1000, 'close()'));
    expect(elapsed).toBeLessThan(500);
    const r = await within(running, 100, 'cancelled check');
    expect(r.ok).toBe(false);
    expect(r.results[0].detail).toBe('cancelled: health checker closed');
    await within(socketClosed(srv.sockets[0]), 1000, 'server socket closed');

    // Closed: checks answer at once, unhealthy, without touching the network; close() again is fine.
    const after = await c.check();
    expect(after).toMatchObject({ ok: false, detail: 'health checker closed' });
    expect(srv.requests).toHaveLength(1);
    await c.close();
  });

  test('close() on an idle checker, and on one never used', async () => {
    const srv = await startHttp(ok200());
    const c = createHealthChecker({ targets: [srv.url()], require: 'any', timeout: 1000 });
    expect((await c.check()).ok).toBe(true);
    await within(c.close(), 1000, 'close()');
    await within(createHealthChecker({ targets: [srv.url()], require: 'all', timeout: 1000 }).close(), 1000, 'close() unused');
  });

  test('never throws: bad targets are failed results', async () => {
    const r = await checker({ targets: ['udp://127.0.0.1:53', 'tcp://127.0.0.1', 'http://[::1', 'tcp://[zz]:80'] }).check();
    expect(r.ok).toBe(false);
    expect(r.results.map((x) => x.ok)).toEqual([false, false, false, false]);
    expect(r.results[0].detail).toMatch(/^unsupported target "udp:\/\/127\.0\.0\.1:53"/);
    expect(r.results[1].detail).toMatch(/needs a port/);
    expect(r.results[2].detail).toMatch(/^invalid URL/);
    expect(r.results[3].detail).toMatch(/^invalid tcp target/);

    const none = await checker({ targets: [] }).check();
    expect(none).toEqual({ ok: false, detail: 'no health targets configured', results: [] });
  });

  test('an unresolvable host name fails with the resolver error', async () => {
    const r = await checker({ targets: ['http://does-not-exist.invalid/healthz', 'tcp://does-not-exist.invalid:80'], timeout: 3000 }).check();
    expect(r.ok).toBe(false);
    for (const x of r.results) expect(x.detail).toMatch(/ENOTFOUND|EAI_AGAIN|timeout after 3000 ms/);
  });

  test("reported times come from the injected clock's monotonicMs", async () => {
    const srv = await startHttp(ok200());
    let calls = 0;
    const r = await checker({ targets: [srv.url()] }, () => (calls++ === 0 ? 1000 : 1042)).check();
    expect(r.results[0]).toEqual({ target: srv.url(), ok: true, detail: '200 in 42 ms', ms: 42 });
  });
});
