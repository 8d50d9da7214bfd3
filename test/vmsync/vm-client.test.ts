/**
 * VmClient against local HTTP stub servers: URL building (path prefixes), error codes, bounded
 * retries, and that export→import streams (no buffering, gzip passed through compressed).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { afterEach, describe, expect, test } from 'vitest';

import { ExitCode } from '../../src/errors.js';
import { nullLogger } from '../../src/log/logger.js';
import { VmClient, VmError } from '../../src/vmsync/vm-client.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

const servers: http.Server[] = [];
const clients: VmClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((r) => {
          s.closeAllConnections();
          s.close(() => r());
        }),
    ),
  );
});

/** A stub that hands each request (after reading its body) to `handler`. */
async function stub(handler: Handler): Promise<{ url: string; requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[] }> {
  const requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
  const srv = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks)));
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, requests };
}

function client(url: string, opts: Partial<ConstructorParameters<typeof VmClient>[1]> = {}): VmClient {
  const c = new VmClient(url, { timeoutMs: 2_000, retries: 2, logger: nullLogger(), backoffMs: 10, ...opts });
  clients.push(c);
  return c;
}

const MATRIX = JSON.stringify({
  status: 'success',
  data: { resultType: 'matrix', result: [{ metric: {}, values: [[1700000040, '8'], [1700000100, '7']] }] },
});

async function rejection(p: Promise<unknown>): Promise<VmError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(VmError);
    return err as VmError;
  }
  throw new Error('expected a rejection');
}

describe('queryRange', () => {
  test('path prefix kept; nocache=1, seconds, step; points in ms', async () => {
    const s = await stub((_q, res) => res.end(MATRIX));
    const c = client(`${s.url}/select/0/prometheus/`);
    const r = await c.queryRange('sum(x)', 1700000040_000, 1700000100_000, 60_000);
    expect(r).toEqual([{ metric: {}, values: [[1700000040_000, 8], [1700000100_000, 7]] }]);
    const u = new URL(s.requests[0].url, 'http://x');
    expect(u.pathname).toBe('/select/0/prometheus/api/v1/query_range');
    expect(Object.fromEntries(u.searchParams)).toEqual({ query: 'sum(x)', start: '1700000040', end: '1700000100', step: '60s', nocache: '1' });
  });

  test('500: VM_HTTP with status and body excerpt, exit code 69, retried retries+1 times', async () => {
    const s = await stub((_q, res) => {
      res.statusCode = 500;
      res.end('storage is on fire '.repeat(100));
    });
    const e = await rejection(client(s.url).queryRange('q', 0, 60_000, 60_000));
    expect(e.code).toBe('VM_HTTP');
    expect(e.status).toBe(500);
    expect(e.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(e.message).toContain('HTTP 500');
    expect(e.message).toContain('storage is on fire');
    expect(e.message.length).toBeLessThan(600);
    expect(s.requests).toHaveLength(3);
  });

  test('4xx (a bad query) is not retried', async () => {
    const s = await stub((_q, res) => {
      res.statusCode = 422;
      res.end('{"status":"error","errorType":"422","error":"cannot parse query"}');
    });
    const e = await rejection(client(s.url).queryRange('q', 0, 60_000, 60_000));
    expect(e.code).toBe('VM_HTTP');
    expect(e.message).toContain('cannot parse query');
    expect(s.requests).toHaveLength(1);
  });

  test.each([
    ['not JSON', 'garbage <html>'],
    ['JSON of the wrong shape', '{"status":"success","data":{"resultType":"vector","result":[]}}'],
    ['a bad point', '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}'],
    ['status error', '{"status":"error","error":"boom"}'],
  ])('%s: VM_BAD_RESPONSE, retried', async (_name, body) => {
    const s = await stub((_q, res) => res.end(body));
    const e = await rejection(client(s.url, { retries: 1 }).queryRange('q', 0, 60_000, 60_000));
    expect(e.code).toBe('VM_BAD_RESPONSE');
    expect(s.requests).toHaveLength(2);
  });

  test('no answer: VM_TIMEOUT', async () => {
    const s = await stub(() => {
      /* never answers */
    });
    const t0 = Date.now();
    const e = await rejection(client(s.url, { timeoutMs: 300, retries: 1 }).queryRange('q', 0, 60_000, 60_000));
    expect(e.code).toBe('VM_TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(s.requests).toHaveLength(2);
  });

  test('nobody listening: VM_UNREACHABLE', async () => {
    const s = await stub(() => {});
    const url = s.url;
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const e = await rejection(client(url, { retries: 0 }).queryRange('q', 0, 60_000, 60_000));
    expect(e.code).toBe('VM_UNREACHABLE');
    expect(e.message).toContain('ECONNREFUSED');
  });
});

describe('export → import', () => {
  test('streams: the import receives the first bytes before the export has produced the rest; gzip passed through', async () => {
    const part1 = zlib.gzipSync(Buffer.from('{"metric":{"__name__":"a"},"values":[1],"timestamps":[1000]}\n'));
    const part2 = Buffer.from('tail-bytes');
    let importSaw = 0;
    let firstChunkAt: (() => void) | null = null;
    const firstChunk = new Promise<void>((r) => (firstChunkAt = r));
    const received: Buffer[] = [];
    let importHeaders: http.IncomingHttpHeaders = {};

    const src = await stub((req, res) => {
      expect(req.headers['accept-encoding']).toContain('gzip');
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'application/stream+json' });
      res.write(part1);
      // The rest only once the importer has seen the first part: a buffering client deadlocks here.
      void firstChunk.then(() => res.end(part2));
    });
    const dstSrv = http.createServer((req, res) => {
      importHeaders = req.headers;
      req.on('data', (c: Buffer) => {
        received.push(c);
        importSaw += c.length;
        if (importSaw >= part1.length) firstChunkAt?.();
      });
      req.on('end', () => {
        res.statusCode = 204;
        res.end();
      });
    });
    servers.push(dstSrv);
    await new Promise<void>((r) => dstSrv.listen(0, '127.0.0.1', r));
    const dstUrl = `http://127.0.0.1:${(dstSrv.address() as AddressInfo).port}/insert/0/prometheus`;

    const reader = client(`${src.url}/select/0/prometheus`);
    const writer = client('http://127.0.0.1:1', { writeUrl: dstUrl });
    const body = await reader.exportStream('{__name__!=""}', 1_000, 61_000, 'json');
    expect(body.gzip).toBe(true);
    const { bytes } = await writer.import(body, 'json');
    expect(bytes).toBe(part1.length + part2.length);
    expect(Buffer.concat(received)).toEqual(Buffer.concat([part1, part2]));
    expect(importHeaders['content-encoding']).toBe('gzip');
    const u = new URL(src.requests[0].url, 'http://x');
    expect(u.pathname).toBe('/select/0/prometheus/api/v1/export');
    // (start, end]: VM's bounds are inclusive, so the start goes out 1 ms later
    expect(Object.fromEntries(u.searchParams)).toEqual({ 'match[]': '{__name__!=""}', start: '1.001', end: '61' });
  });

  test('native format uses /export/native and /import/native', async () => {
    const seen: string[] = [];
    const s = await stub((req, res) => {
      seen.push(`${req.method} ${new URL(req.url!, 'http://x').pathname}`);
      if (req.method === 'GET') res.end('native-bytes');
      else {
        res.statusCode = 204;
        res.end();
      }
    });
    const c = client(s.url);
    const body = await c.exportStream('{__name__!=""}', 0, 60_000, 'native');
    expect(body.gzip).toBe(false);
    await c.import(body, 'native');
    expect(seen).toEqual(['GET /api/v1/export/native', 'POST /api/v1/import/native']);
    expect(s.requests[1].headers['content-encoding']).toBeUndefined();
  });

  test('import refused: VM_HTTP; force_flush 400 (vminsert has none) resolves false', async () => {
    const s = await stub((req, res) => {
      res.statusCode = req.url!.includes('force_flush') ? 400 : 503;
      res.end('nope');
    });
    const c = client(s.url);
    const e = await rejection(c.import(Readable.from([Buffer.from('x')]), 'json'));
    expect(e.code).toBe('VM_HTTP');
    expect(e.status).toBe(503);
    expect(await c.forceFlush()).toBe(false);
  });

  test('export that dies mid-stream fails the import', async () => {
    const src = await stub((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/stream+json' });
      res.write('{"metric":{}');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const dst = await stub((_q, res) => {
      res.statusCode = 204;
      res.end();
    });
    const body = await client(src.url).exportStream('{__name__!=""}', 0, 60_000, 'json');
    const e = await rejection(client(dst.url).import(body, 'json'));
    expect(['VM_UNREACHABLE', 'VM_TIMEOUT']).toContain(e.code);
  });
});
