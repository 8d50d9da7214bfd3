import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';

import type { AgentStatus } from '../../src/control/protocol.js';
import { AgentError } from '../../src/errors.js';
import { Metrics } from '../../src/http/metrics.js';
import { HttpServer } from '../../src/http/server.js';
import { fakeStatus } from '../fixtures/status.js';
import { nullLogger, type LogFields, type Logger } from '../../src/log/logger.js';


interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, method: string, path: string, agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A logger that keeps error lines (to check that failures are logged). */
function recordingLogger(): Logger & { errors: { msg: string; fields?: LogFields }[] } {
  const errors: { msg: string; fields?: LogFields }[] = [];
  const base = nullLogger();
  const l = { ...base, errors, error: (msg: string, fields?: LogFields) => void errors.push({ msg, fields }), child: () => l };
  return l;
}

let servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});

async function startServer(
  provider: () => AgentStatus,
  logger: Logger = nullLogger(),
  metrics = new Metrics({ instance: 'primary', role: 'primary' }, provider),
): Promise<{ server: HttpServer; port: number; metrics: Metrics }> {
  const server = new HttpServer({ listen: { host: '127.0.0.1', port: 0 }, status: provider, metrics, logger });
  servers.push(server);
  await server.start();
  const addr = server.address();
  if (!addr) throw new Error('no address');
  return { server, port: addr.port, metrics };
}

describe('/healthz', () => {
  test('200 with the status as JSON when healthy', async () => {
    const { port } = await startServer(() => fakeStatus());
    const r = await request(port, 'GET', '/healthz');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const body = JSON.parse(r.body);
    expect(body).toMatchObject({
      healthy: true,
      reason: null,
      instance: 'primary',
      role: 'primary',
      phase: 'active',
      active: true,
      decision: 'renew',
      reason_detail: 'the record names us and our lease is valid',
      lease: { holder: 'primary', epoch: 7, seq: 12, unchanged_seconds: 3, own_age_seconds: 4.5, error: null },
      collector: { control: 'systemd', unit: 'otelcol-contrib.service', desired: 'running', state: 'active', last_error: null },
      dns: { record: 'syslog.example.com', addresses: ['10.10.10.10'], consecutive_failures: 0 },
      build: { version: '0.1.0', node: 'v18.19.0', notify: 'addon' },
      takeovers: 2,
    });
  });

  test('503 with the reason when unhealthy', async () => {
    const { port } = await startServer(() =>
      fakeStatus({ healthy: false, unhealthyReason: 'lease lost', phase: 'fenced', active: false, decision: 'fenced' }),
    );
    const r = await request(port, 'GET', '/healthz');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toMatchObject({ healthy: false, reason: 'lease lost', phase: 'fenced', active: false });
  });

  test('reads the status on every request', async () => {
    let healthy = true;
    const { port } = await startServer(() => fakeStatus({ healthy, unhealthyReason: healthy ? null : 'x' }));
    expect((await request(port, 'GET', '/healthz')).status).toBe(200);
    healthy = false;
    expect((await request(port, 'GET', '/healthz')).status).toBe(503);
  });

  test('a bigint in the status does not break the JSON', async () => {
    const s = fakeStatus();
    (s.lease as { epoch: unknown }).epoch = 7n;
    (s as { takeovers: unknown }).takeovers = 2n ** 64n;
    const { port } = await startServer(() => s, nullLogger(), new Metrics({ instance: 'p', role: 'primary' }, () => fakeStatus()));
    const r = await request(port, 'GET', '/healthz');
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body);
    expect(body.lease.epoch).toBe(7);
    expect(body.takeovers).toBe('18446744073709551616');
  });

  test('a status provider that throws gives 500 with the message, logged; the server keeps serving', async () => {
    let fail = true;
    const log = recordingLogger();
    const { port } = await startServer(() => {
      if (fail) throw new Error('engine not ready');
      return fakeStatus();
    }, log);
    const r = await request(port, 'GET', '/healthz');
    expect(r.status).toBe(500);
    expect(r.body).toContain('engine not ready');
    expect(JSON.parse(r.body).healthy).toBe(false);
    const m = await request(port, 'GET', '/metrics');
    expect(m.status).toBe(500);
    expect(m.body).toContain('engine not ready');
    expect(log.errors.length).toBe(2);
    fail = false;
    expect((await request(port, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('/metrics', () => {
  test('Prometheus text with the documented names and values from the status', async () => {
    const { port } = await startServer(() => fakeStatus());
    const r = await request(port, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const lines = r.body.split('\n');
    for (const line of [
      'failover_info{instance="primary",role="primary"} 1',
      'failover_build_info{version="0.1.0",node="v18.19.0",notify="addon"} 1',
      'failover_active 1',
      'failover_phase{phase="active"} 1',
      'failover_phase{phase="standby"} 0',
      'failover_phase{phase="fenced"} 0',
      'failover_lease_epoch 7',
      'failover_lease_seq 12',
      'failover_lease_unchanged_seconds 3',
      'failover_lease_own_age_seconds 4.5',
      'failover_dns_read_age_seconds 1.5',
      'failover_dns_consecutive_failures 0',
      'failover_dns_clock_offset_seconds -0.25',
      'failover_health_failure_threshold 3',
      'failover_takeovers_total 2',
      'failover_collector_desired_running 1',
      'failover_collector_state{state="active"} 1',
      'failover_collector_state{state="failed"} 0',
      'failover_last_decision_info{decision="renew"} 1',
      'failover_healthy 1',
      'failover_dns_writes_total{op="renew",result="ok"} 0',
      'failover_health_checks_total{result="failed"} 0',
    ]) {
      expect(lines, line).toContain(line);
    }
    // One-hot: exactly one phase is 1.
    expect(lines.filter((l) => /^failover_phase\{.*\} 1$/.test(l))).toHaveLength(1);
    // Null in the status → absent, not NaN (health failures are null on the primary).
    expect(r.body).not.toMatch(/^failover_health_consecutive_failures /m);
    expect(r.body).not.toContain('NaN');
    // Default process metrics on our own registry.
    expect(r.body).toMatch(/^process_cpu_user_seconds_total /m);
    expect(r.body).toMatch(/^process_start_time_seconds /m);
  });

  test('nulls leave series out; values follow the status between scrapes', async () => {
    let s = fakeStatus();
    const { port } = await startServer(() => s);
    expect((await request(port, 'GET', '/metrics')).body).toMatch(/^failover_lease_epoch 7$/m);
    s = fakeStatus({
      phase: 'starting',
      active: false,
      decision: 'start',
      healthy: false,
      unhealthyReason: 'no DNS read yet',
      dns: { ...fakeStatus().dns, readAgeSeconds: null, offsetSeconds: null, consecutiveFailures: 4 },
      lease: { holder: null, epoch: null, seq: null, unchangedSeconds: null, ownAgeSeconds: null, error: 'no lease' },
      health: { consecutiveFailures: 2, threshold: 3, last: 'timeout' },
      collector: { control: 'none', unit: '', desired: null, state: null, lastError: null },
    });
    const body = (await request(port, 'GET', '/metrics')).body;
    for (const name of [
      'failover_lease_epoch',
      'failover_lease_seq',
      'failover_lease_unchanged_seconds',
      'failover_lease_own_age_seconds',
      'failover_dns_read_age_seconds',
      'failover_dns_clock_offset_seconds',
      'failover_collector_desired_running',
      'failover_collector_state',
    ]) {
      expect(body, name).not.toMatch(new RegExp(`^${name}[ {]`, 'm'));
    }
    expect(body).toMatch(/^failover_phase\{phase="starting"\} 1$/m);
    expect(body).toMatch(/^failover_phase\{phase="active"\} 0$/m);
    expect(body).toMatch(/^failover_active 0$/m);
    expect(body).toMatch(/^failover_healthy 0$/m);
    expect(body).toMatch(/^failover_dns_consecutive_failures 4$/m);
    expect(body).toMatch(/^failover_health_consecutive_failures 2$/m);
    expect(body).toMatch(/^failover_last_decision_info\{decision="start"\} 1$/m);
    expect(body).not.toContain('decision="renew"');
    expect(body).not.toContain('NaN');
  });

  test('event metrics: histogram buckets, errors, writes, health checks', async () => {
    const { port, metrics } = await startServer(() => fakeStatus());
    metrics.dnsRequest('read', 0.003);
    metrics.dnsRequest('read', 0.2);
    metrics.dnsRequest('update', 1.2);
    metrics.dnsRequest('update', Number.NaN); // ignored
    metrics.dnsError('DNS_TIMEOUT');
    metrics.dnsError('DNS_TIMEOUT');
    metrics.write('takeover', 'conflict');
    metrics.write('renew', 'ok');
    metrics.healthCheck(true);
    metrics.healthCheck(false);
    metrics.healthCheck(false);
    const lines = (await request(port, 'GET', '/metrics')).body.split('\n');
    for (const line of [
      'failover_dns_request_duration_seconds_bucket{le="0.001",kind="read"} 0',
      'failover_dns_request_duration_seconds_bucket{le="0.005",kind="read"} 1',
      'failover_dns_request_duration_seconds_bucket{le="0.25",kind="read"} 2',
      'failover_dns_request_duration_seconds_bucket{le="5",kind="read"} 2',
      'failover_dns_request_duration_seconds_bucket{le="+Inf",kind="read"} 2',
      'failover_dns_request_duration_seconds_count{kind="read"} 2',
      'failover_dns_request_duration_seconds_bucket{le="1",kind="update"} 0',
      'failover_dns_request_duration_seconds_bucket{le="2.5",kind="update"} 1',
      'failover_dns_request_duration_seconds_count{kind="update"} 1',
      'failover_dns_request_duration_seconds_sum{kind="update"} 1.2',
      'failover_dns_errors_total{code="DNS_TIMEOUT"} 2',
      'failover_dns_writes_total{op="takeover",result="conflict"} 1',
      'failover_dns_writes_total{op="renew",result="ok"} 1',
      'failover_health_checks_total{result="ok"} 1',
      'failover_health_checks_total{result="failed"} 2',
    ]) {
      expect(lines, line).toContain(line);
    }
  });

  test('two Metrics objects in one process do not share series', async () => {
    const a = new Metrics({ instance: 'a', role: 'primary' }, () => fakeStatus(), { defaultMetrics: false });
    const b = new Metrics({ instance: 'b', role: 'dr' }, () => fakeStatus({ role: 'dr' }), { defaultMetrics: false });
    a.dnsError('X');
    const ra = await a.render();
    const rb = await b.render();
    expect(ra.body).toContain('failover_dns_errors_total{code="X"} 1');
    expect(rb.body).not.toContain('code="X"');
    expect(rb.body).toContain('failover_info{instance="b",role="dr"} 1');
    expect(rb.body).not.toContain('process_cpu');
  });

  test('render() reads the status once per scrape', async () => {
    let calls = 0;
    const m = new Metrics({ instance: 'a', role: 'primary' }, () => (calls++, fakeStatus()), { defaultMetrics: false });
    await m.render();
    expect(calls).toBe(1);
  });
});

describe('routing', () => {
  test('HEAD: headers and no body', async () => {
    const { port } = await startServer(() => fakeStatus({ healthy: false, unhealthyReason: 'x' }));
    const h = await request(port, 'HEAD', '/healthz');
    expect(h.status).toBe(503);
    expect(h.body).toBe('');
    expect(Number(h.headers['content-length'])).toBeGreaterThan(0);
    const m = await request(port, 'HEAD', '/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toBe('');
    expect(m.headers['content-type']).toMatch(/^text\/plain/);
  });

  test('unknown path 404, other methods 405 with Allow, query strings ignored', async () => {
    const { port } = await startServer(() => fakeStatus());
    expect((await request(port, 'GET', '/')).status).toBe(404);
    expect((await request(port, 'GET', '/healthzz')).status).toBe(404);
    const p = await request(port, 'POST', '/healthz');
    expect(p.status).toBe(405);
    expect(p.headers.allow).toBe('GET, HEAD');
    expect((await request(port, 'DELETE', '/metrics')).status).toBe(405);
    expect((await request(port, 'GET', '/healthz?verbose=1')).status).toBe(200);
  });

  test('a malformed request does not take the server down', async () => {
    const { port } = await startServer(() => fakeStatus());
    const garbage = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('NOT HTTP AT ALL\r\n\r\n'));
      let got = '';
      s.on('data', (c) => (got += String(c)));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    expect((await request(port, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('lifecycle', () => {
  test('start() on a port in use rejects with AgentError HTTP_LISTEN (exit 69)', async () => {
    const { port } = await startServer(() => fakeStatus());
    const second = new HttpServer({
      listen: { host: '127.0.0.1', port },
      status: () => fakeStatus(),
      metrics: new Metrics({ instance: 'p', role: 'primary' }, () => fakeStatus(), { defaultMetrics: false }),
      logger: nullLogger(),
    });
    const err = await second.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ code: 'HTTP_LISTEN', exitCode: 69 });
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as Error).message).toContain('already in use');
    expect(second.address()).toBeNull();
    await second.stop(); // a no-op
  });

  test('start() on an address this host does not have → HTTP_LISTEN', async () => {
    const server = new HttpServer({
      listen: { host: '192.0.2.123', port: 0 },
      status: () => fakeStatus(),
      metrics: new Metrics({ instance: 'p', role: 'primary' }, () => fakeStatus(), { defaultMetrics: false }),
      logger: nullLogger(),
    });
    await expect(server.start()).rejects.toMatchObject({ code: 'HTTP_LISTEN', exitCode: 69 });
  });

  test('stop() closes idle keep-alive connections and resolves promptly', async () => {
    const { server, port } = await startServer(() => fakeStatus());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const r = await request(port, 'GET', '/healthz', agent);
      expect(r.status).toBe(200);
      const [sock] = Object.values(agent.freeSockets).flat();
      expect(sock).toBeDefined();
      const closed = new Promise<void>((resolve) => sock!.once('close', () => resolve()));
      const t0 = Date.now();
      await server.stop();
      await closed;
      expect(Date.now() - t0).toBeLessThan(1500);
      expect(server.address()).toBeNull();
      await expect(request(port, 'GET', '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      agent.destroy();
    }
  });

  test('stop() is bounded even with a connection stuck mid-request', async () => {
    const provider = () => fakeStatus();
    const server = new HttpServer({
      listen: { host: '127.0.0.1', port: 0 },
      status: provider,
      metrics: new Metrics({ instance: 'p', role: 'primary' }, provider, { defaultMetrics: false }),
      logger: nullLogger(),
      stopGraceMs: 200,
    });
    servers.push(server);
    await server.start();
    const port = server.address()!.port;
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // headers never finished
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.on('error', () => {});
    const t0 = Date.now();
    await server.stop();
    await closed;
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});
