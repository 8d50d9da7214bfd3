import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';

import type { AdminResult, AgentStatus, ControlResponse, ControlService } from '../../src/control/protocol.js';
import { callAgent, socketPath } from '../../src/control/client.js';
import { ControlServer, MAX_REQUEST_BYTES, parseRequest } from '../../src/control/server.js';
import { AgentError } from '../../src/errors.js';
import { converse as raw } from '../fixtures/control-raw.js';
import { fakeStatus } from '../fixtures/status.js';
import { nullLogger } from '../../src/log/logger.js';


function adminResult(op: 'failback' | 'switchover', opts: { force: boolean; dryRun: boolean }): AdminResult {
  return {
    op,
    done: !opts.dryRun,
    dryRun: opts.dryRun,
    forced: opts.force,
    refused: null,
    plan: [`${op} to the other site`],
    preconditions: [{ name: 'lease readable', ok: true, detail: 'epoch 4' }],
    via: 'agent',
  };
}

/** A handler that records admin calls and can be told to fail. */
function fakeHandler(): ControlService & { calls: { op: string; opts: { force: boolean; dryRun: boolean } }[]; fail?: unknown } {
  const h = {
    calls: [] as { op: string; opts: { force: boolean; dryRun: boolean } }[],
    fail: undefined as unknown,
    status: () => fakeStatus(),
    admin: async (op: 'failback' | 'switchover', opts: { force: boolean; dryRun: boolean }) => {
      h.calls.push({ op, opts });
      if (h.fail !== undefined) throw h.fail;
      return adminResult(op, opts);
    },
    sync: async () => {
      h.calls.push({ op: 'sync', opts: { force: false, dryRun: false } });
      return { report: null, status: null, gate: { ready: true, detail: 'vmsync disabled: no data gate' } };
    },
    reload: async () => {
      h.calls.push({ op: 'reload', opts: { force: false, dryRun: false } });
      if (h.fail !== undefined) throw h.fail;
      return { file: '/etc/failover-agent/primary.toml', applied: ['lease.ttl'] };
    },
  };
  return h;
}

let dir: string;
let servers: ControlServer[] = [];
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fa-ctl-'));
});
afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
  await fs.rm(dir, { recursive: true, force: true });
});

async function startServer(handler: ControlService = fakeHandler(), name = 'dr.sock', extra: { idleTimeoutMs?: number } = {}) {
  const p = path.join(dir, name);
  const server = new ControlServer({ path: p, handler, logger: nullLogger(), ...extra });
  servers.push(server);
  await server.start();
  return { server, path: p };
}

describe('round trips', () => {
  test('status', async () => {
    const { path: p } = await startServer();
    const res = await callAgent(p, { cmd: 'status' });
    expect(res).toEqual({ ok: true, result: fakeStatus() });
  });

  test('failback / switchover with args passed through', async () => {
    const h = fakeHandler();
    const { path: p } = await startServer(h);
    const a = await callAgent(p, { cmd: 'failback', args: { force: true, dryRun: true } });
    expect(a).toEqual({ ok: true, result: adminResult('failback', { force: true, dryRun: true }) });
    const b = await callAgent(p, { cmd: 'switchover' });
    expect(b.ok && (b.result as AdminResult).op).toBe('switchover');
    expect(h.calls).toEqual([
      { op: 'failback', opts: { force: true, dryRun: true } },
      { op: 'switchover', opts: { force: false, dryRun: false } },
    ]);
  });

  test('sync reaches the handler and returns its result', async () => {
    const h = fakeHandler();
    const { path: p } = await startServer(h);
    const r = await callAgent(p, { cmd: 'sync' });
    expect(r).toEqual({ ok: true, result: { report: null, status: null, gate: { ready: true, detail: 'vmsync disabled: no data gate' } } });
    expect(h.calls.map((c) => c.op)).toEqual(['sync']);
  });

  test('handler errors keep code and exitCode; other errors become INTERNAL / 1', async () => {
    const h = fakeHandler();
    const { path: p } = await startServer(h);
    h.fail = new AgentError('DNS_TIMEOUT', 'the DNS server did not answer', 69);
    expect(await callAgent(p, { cmd: 'failback' })).toEqual({
      ok: false,
      error: { code: 'DNS_TIMEOUT', message: 'the DNS server did not answer', exitCode: 69 },
    });
    h.fail = new Error('boom');
    expect(await callAgent(p, { cmd: 'switchover' })).toEqual({ ok: false, error: { code: 'INTERNAL', message: 'boom', exitCode: 1 } });
  });

  test('a status() that throws is an error response, not a dead connection', async () => {
    const h = fakeHandler();
    h.status = () => {
      throw new AgentError('NOT_READY', 'no status yet', 69);
    };
    const { path: p } = await startServer(h);
    expect(await callAgent(p, { cmd: 'status' })).toEqual({ ok: false, error: { code: 'NOT_READY', message: 'no status yet', exitCode: 69 } });
  });

  test('a bigint in the status survives the wire', async () => {
    const h = fakeHandler();
    h.status = () => {
      const s = fakeStatus();
      (s.lease as { epoch: unknown }).epoch = 4n;
      return s;
    };
    const { path: p } = await startServer(h);
    const res = await callAgent(p, { cmd: 'status' });
    expect(res.ok && (res.result as AgentStatus).lease.epoch).toBe(4);
  });
});

describe('strict requests: anything not fully understood is refused', () => {
  // Each line must be refused naming the offending field; none may reach the handler.
  const refused: [string, RegExp][] = [
    ['{"cmd":"switchover","dry_run":true}', /request: unknown field "dry_run"/],
    ['{"cmd":"failback","force":true}', /request: unknown field "force"/],
    ['{"cmd":"failback","args":{"dry_run":true}}', /args: unknown field "dry_run"/],
    ['{"cmd":"failback","args":{"dryRun":true,"forse":true}}', /args: unknown field "forse"/],
    ['{"cmd":"failback","args":{"force":"yes"}}', /args\.force must be true or false/],
    ['{"cmd":"failback","args":null}', /args must be an object/],
    ['{"cmd":"failback","args":[]}', /args must be an object/],
    ['{"cmd":"switchover","dry_run":true,"args":{"x":1}}', /args: unknown field "x"; request: unknown field "dry_run"/],
    ['{"cmd":"status","args":{}}', /request: unknown field "args"/],
    ['{"cmd":"reload","args":{"force":true}}', /request: unknown field "args"/],
    ['{"cmd":"sync","verbose":1}', /request: unknown field "verbose"/],
    ['{"cmd":"reboot"}', /unknown command "reboot"/],
    ['{"cmd":"Status"}', /unknown command "Status"/],
    ['{"command":"status"}', /unknown command undefined/],
    ['{}', /unknown command undefined/],
    ['[]', /a request is a JSON object/],
    ['"status"', /a request is a JSON object/],
    ['null', /a request is a JSON object/],
    ['{not json', /not JSON/],
  ];
  test.each(refused)('%s', async (line, why) => {
    expect(() => parseRequest(line)).toThrow(why);
    const h = fakeHandler();
    const { path: p } = await startServer(h);
    const { lines } = await raw(p, line + '\n', 1);
    const r = JSON.parse(lines[0]!) as ControlResponse;
    expect(r).toMatchObject({ ok: false, error: { code: 'CONTROL_BAD_REQUEST', exitCode: 1 } });
    expect(!r.ok && r.error.message).toMatch(why);
    expect(h.calls).toEqual([]);
  });

  test('every well-formed request is accepted as written', () => {
    expect(parseRequest('{"cmd":"status"}')).toEqual({ cmd: 'status' });
    expect(parseRequest('{"cmd":"reload"}')).toEqual({ cmd: 'reload' });
    expect(parseRequest('{"cmd":"failback","args":{"force":true,"dryRun":false}}')).toEqual({ cmd: 'failback', args: { force: true, dryRun: false } });
    expect(parseRequest('{"cmd":"switchover","args":{}}')).toEqual({ cmd: 'switchover', args: {} });
  });

  test('reload reaches the handler; its refusal keeps code and exit code', async () => {
    const h = fakeHandler();
    const { path: p } = await startServer(h);
    expect(await callAgent(p, { cmd: 'reload' })).toEqual({ ok: true, result: { file: '/etc/failover-agent/primary.toml', applied: ['lease.ttl'] } });
    h.fail = new AgentError('RELOAD_REFUSED', 'cannot change dns.server by reload', 78);
    expect(await callAgent(p, { cmd: 'reload' })).toEqual({ ok: false, error: { code: 'RELOAD_REFUSED', message: 'cannot change dns.server by reload', exitCode: 78 } });
  });
});

describe('protocol', () => {
  test('several requests on one connection are answered in order', async () => {
    const h = fakeHandler();
    // The first request is slow; its answer must still come first.
    let first = true;
    h.admin = async (op, opts) => {
      if (first) {
        first = false;
        await new Promise((r) => setTimeout(r, 100));
      }
      return adminResult(op, opts);
    };
    const { path: p } = await startServer(h);
    const { lines } = await raw(p, '{"cmd":"failback","args":{"dryRun":true}}\n{"cmd":"status"}\n\n{"cmd":"switchover"}\n', 3);
    const res = lines.map((l) => JSON.parse(l) as ControlResponse);
    expect(res.map((r) => r.ok && ('op' in r.result ? r.result.op : 'status'))).toEqual(['failback', 'status', 'switchover']);
  });

  test('bad JSON, unknown command, bad args → CONTROL_BAD_REQUEST; the connection stays usable', async () => {
    const { path: p } = await startServer();
    const { lines } = await raw(
      p,
      ['{not json', '{"cmd":"reboot"}', '[]', '{"cmd":"failback","args":{"force":"yes"}}', '{"cmd":"failback","args":{"x":true}}', '{"cmd":"status"}']
        .map((l) => l + '\n')
        .join(''),
      6,
    );
    const res = lines.map((l) => JSON.parse(l) as ControlResponse);
    for (const r of res.slice(0, 5)) {
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('CONTROL_BAD_REQUEST');
        expect(r.error.exitCode).toBe(1);
        expect(typeof r.error.message).toBe('string');
      }
    }
    expect(res[1]!.ok === false && res[1]!.error.message).toContain('reboot');
    expect(res[5]!.ok).toBe(true);
  });

  test('a final request without newline before half-close is answered', async () => {
    const { path: p } = await startServer();
    const res = await new Promise<string>((resolve, reject) => {
      const s = net.createConnection({ path: p, allowHalfOpen: true });
      let buf = '';
      s.on('connect', () => s.end('{"cmd":"status"}'));
      s.on('data', (c) => (buf += String(c)));
      s.on('end', () => resolve(buf));
      s.on('error', reject);
    });
    expect(JSON.parse(res)).toMatchObject({ ok: true, result: { instance: 'primary' } });
  });

  test(`a request line over ${MAX_REQUEST_BYTES} bytes closes the connection`, async () => {
    const { path: p } = await startServer();
    const big = Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x61); // no newline at all
    const { lines, closed } = await raw(p, big, 99);
    expect(closed).toBe(true);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ ok: false, error: { code: 'CONTROL_BAD_REQUEST' } });
    // The server is fine afterwards.
    expect((await callAgent(p, { cmd: 'status' })).ok).toBe(true);
  });

  test('idle connections are closed; a slow request is not cut off', async () => {
    const h = fakeHandler();
    h.admin = async (op, opts) => {
      await new Promise((r) => setTimeout(r, 300));
      return adminResult(op, opts);
    };
    const { path: p } = await startServer(h, 'dr.sock', { idleTimeoutMs: 100 });
    const idle = await raw(p, '', 1);
    expect(idle.closed).toBe(true);
    const slow = await callAgent(p, { cmd: 'failback' });
    expect(slow.ok).toBe(true);
  });
});

describe('socket file', () => {
  test('mode 0660 by default, custom mode honoured', async () => {
    const { path: p } = await startServer();
    const st = await fs.stat(p);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    const q = path.join(dir, 'other.sock');
    const s2 = new ControlServer({ path: q, handler: fakeHandler(), logger: nullLogger(), mode: 0o600, group: 'no-such-group-xyz' });
    servers.push(s2);
    await s2.start();
    expect((await fs.stat(q)).mode & 0o777).toBe(0o600);
  });

  test('a stale socket file (nobody listening) is replaced', async () => {
    const p = path.join(dir, 'dr.sock');
    await makeDeadSocket(p);
    expect((await fs.lstat(p)).isSocket()).toBe(true);
    await startServer(fakeHandler(), 'dr.sock');
    expect((await callAgent(p, { cmd: 'status' })).ok).toBe(true);
  });

  test('a second server on a live path → CONTROL_IN_USE (69); the first keeps working', async () => {
    const { path: p } = await startServer();
    const second = new ControlServer({ path: p, handler: fakeHandler(), logger: nullLogger() });
    await expect(second.start()).rejects.toMatchObject({ code: 'CONTROL_IN_USE', exitCode: 69 });
    expect((await callAgent(p, { cmd: 'status' })).ok).toBe(true);
  });

  test('a regular file at the path is not removed', async () => {
    const p = path.join(dir, 'dr.sock');
    await fs.writeFile(p, 'keep me');
    const s = new ControlServer({ path: p, handler: fakeHandler(), logger: nullLogger() });
    await expect(s.start()).rejects.toMatchObject({ code: 'CONTROL_LISTEN' });
    expect(await fs.readFile(p, 'utf8')).toBe('keep me');
  });

  test('stop() removes the socket file and drops connections', async () => {
    const { server, path: p } = await startServer();
    const s = net.createConnection({ path: p });
    await new Promise<void>((r) => s.once('connect', () => r()));
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    await server.stop();
    await closed;
    expect(await exists(p)).toBe(false);
    await server.stop(); // twice is fine
  });
});

describe('client', () => {
  test('missing socket → AGENT_NOT_RUNNING, exit 69, message names the path', async () => {
    const p = path.join(dir, 'nobody.sock');
    const err = await callAgent(p, { cmd: 'status' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ code: 'AGENT_NOT_RUNNING', exitCode: 69 });
    expect((err as Error).message).toBe(`the agent is not running (no socket at ${p})`);
  });

  test('dead socket file → AGENT_NOT_RUNNING', async () => {
    const p = path.join(dir, 'dead.sock');
    await makeDeadSocket(p);
    await expect(callAgent(p, { cmd: 'status' })).rejects.toMatchObject({ code: 'AGENT_NOT_RUNNING', exitCode: 69 });
  });

  test('no permission → CONTROL_DENIED, exit 77, mentions the group', async () => {
    const { path: p } = await startServer();
    let err: unknown;
    if (process.getuid?.() === 0) {
      // root connects anyway: ask as nobody, through the bundled client, with the default 0660 mode.
      await fs.chmod(dir, 0o755);
      err = await callAsNobody(p);
    } else {
      await fs.chmod(p, 0o000);
      err = await callAgent(p, { cmd: 'status' }).catch((e: unknown) => e);
    }
    expect(err).toMatchObject({ code: 'CONTROL_DENIED', exitCode: 77 });
    expect((err as Error).message).toContain('failover-agent group');
  });

  test('no answer in time → CONTROL_TIMEOUT', async () => {
    const h = fakeHandler();
    h.admin = () => new Promise(() => {});
    const { path: p } = await startServer(h);
    await expect(callAgent(p, { cmd: 'failback' }, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'CONTROL_TIMEOUT', exitCode: 69 });
  });

  test('a peer that is not the agent → CONTROL_BAD_RESPONSE / CONTROL_CLOSED', async () => {
    const p = path.join(dir, 'fake.sock');
    const mode = { reply: 'hello\n' };
    const fake = net.createServer((s) => {
      s.once('data', () => (mode.reply ? s.end(mode.reply) : s.end()));
    });
    await new Promise<void>((r) => fake.listen(p, () => r()));
    try {
      await expect(callAgent(p, { cmd: 'status' })).rejects.toMatchObject({ code: 'CONTROL_BAD_RESPONSE' });
      mode.reply = '{"ok":false}\n';
      await expect(callAgent(p, { cmd: 'status' })).rejects.toMatchObject({ code: 'CONTROL_BAD_RESPONSE' });
      mode.reply = '';
      await expect(callAgent(p, { cmd: 'status' })).rejects.toMatchObject({ code: 'CONTROL_CLOSED', exitCode: 69 });
    } finally {
      await new Promise<void>((r) => fake.close(() => r()));
    }
  });
});

describe('socketPath (SPEC §8)', () => {
  test('RUNTIME_DIRECTORY when set', () => {
    expect(socketPath('dr', { RUNTIME_DIRECTORY: '/run/failover-agent' })).toBe('/run/failover-agent/dr.sock');
    expect(socketPath('primary', { RUNTIME_DIRECTORY: '/tmp/rt' })).toBe('/tmp/rt/primary.sock');
  });

  test('the first entry of a colon-separated list', () => {
    expect(socketPath('dr', { RUNTIME_DIRECTORY: '/run/a:/run/b' })).toBe('/run/a/dr.sock');
  });

  test('/run/failover-agent otherwise (unset or empty)', () => {
    expect(socketPath('dr', {})).toBe('/run/failover-agent/dr.sock');
    expect(socketPath('dr', { RUNTIME_DIRECTORY: '' })).toBe('/run/failover-agent/dr.sock');
  });

  test('defaults to process.env', () => {
    const saved = process.env.RUNTIME_DIRECTORY;
    try {
      process.env.RUNTIME_DIRECTORY = '/x/y';
      expect(socketPath('i')).toBe('/x/y/i.sock');
    } finally {
      if (saved === undefined) delete process.env.RUNTIME_DIRECTORY;
      else process.env.RUNTIME_DIRECTORY = saved;
    }
  });
});

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/**
 * A socket file nobody listens on, as a crashed agent leaves it: a child process binds the path and
 * is killed with SIGKILL (no cleanup runs), so the file stays and connecting gets ECONNREFUSED.
 */
async function makeDeadSocket(p: string): Promise<void> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(p)}, () => process.stdout.write('up'))`,
  ]);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`helper exited ${code}`)));
  });
  child.kill('SIGKILL');
  await new Promise<void>((r) => child.once('exit', () => r()));
}

/** callAgent run in a child process as uid/gid 65534 (root only); returns the error it threw. */
async function callAsNobody(sock: string): Promise<{ code: string; exitCode: number; message: string }> {
  const { build } = await import('esbuild');
  const { execFile } = await import('node:child_process');
  const out = path.join(dir, 'client.mjs');
  await build({
    entryPoints: [fileURLToPath(new URL('../../src/control/client.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: out,
    logLevel: 'silent',
  });
  await fs.chmod(out, 0o644);
  const script =
    `const { callAgent } = await import(${JSON.stringify(out)});` +
    `try { await callAgent(${JSON.stringify(sock)}, { cmd: 'status' }); console.log('{}'); }` +
    `catch (e) { console.log(JSON.stringify({ code: e.code, exitCode: e.exitCode, message: e.message })); }`;
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, cwd: '/' }, (e, so) =>
      e ? reject(e) : resolve(so),
    );
  });
  return JSON.parse(stdout) as { code: string; exitCode: number; message: string };
}
