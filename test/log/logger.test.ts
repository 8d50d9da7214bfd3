import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';

import { createLogger, formatEvent, nullLogger, PRIORITY, SYSLOG_LEVELS, type Logger } from '../../src/log/logger.js';

/** A stream that keeps what is written, split into lines. */
function capture(): { stream: Writable; lines: () => string[]; raw: () => string } {
  let buf = '';
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      buf += String(chunk);
      cb();
    },
  });
  return { stream, raw: () => buf, lines: () => buf.split('\n').slice(0, -1) };
}

/** Winston hands lines to the transport synchronously once flowing; one tick makes that certain. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function logAll(log: Logger): void {
  for (const level of SYSLOG_LEVELS) log[level](`at ${level}`);
}

describe('journal format', () => {
  test('priority prefix for each level, no timestamp', async () => {
    const out = capture();
    logAll(createLogger({ level: 'debug', journal: true, stream: out.stream }));
    await settle();
    expect(out.lines()).toEqual([
      '<0>at emerg',
      '<1>at alert',
      '<2>at crit',
      '<3>at error',
      '<4>at warning',
      '<5>at notice',
      '<6>at info',
      '<7>at debug',
    ]);
  });

  test('fields', async () => {
    const out = capture();
    const log = createLogger({ level: 'info', journal: true, stream: out.stream });
    log.notice('takeover', { event: 'takeover', epoch: 5, forced: false, ip: '10.20.20.20' });
    await settle();
    expect(out.lines()).toEqual(['<5>takeover event=takeover epoch=5 forced=false ip=10.20.20.20']);
  });

  test('JOURNAL_STREAM selects the journal format by default', async () => {
    const saved = process.env.JOURNAL_STREAM;
    try {
      process.env.JOURNAL_STREAM = '8:12345';
      const a = capture();
      createLogger({ level: 'info', stream: a.stream }).info('x');
      delete process.env.JOURNAL_STREAM;
      const b = capture();
      createLogger({ level: 'info', stream: b.stream }).info('x');
      await settle();
      expect(a.lines()).toEqual(['<6>x']);
      expect(b.lines()[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info x$/);
    } finally {
      if (saved === undefined) delete process.env.JOURNAL_STREAM;
      else process.env.JOURNAL_STREAM = saved;
    }
  });
});

describe('text format', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-11-21T23:19:04.123Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  test('timestamp, level, message, fields', async () => {
    const out = capture();
    const log = createLogger({ level: 'info', journal: false, stream: out.stream });
    log.warning('lease lost', { epoch: 4, seq: 17 });
    log.info('plain');
    await settle();
    expect(out.lines()).toEqual([
      '2026-11-21T23:19:04.123Z warning lease lost epoch=4 seq=17',
      '2026-11-21T23:19:04.123Z info plain',
    ]);
  });
});

describe('level filtering', () => {
  test.each([
    ['emerg', 1],
    ['error', 4],
    ['warning', 5],
    ['info', 7],
    ['debug', 8],
  ])('level %s lets %i of 8 levels through', async (level, n) => {
    const out = capture();
    logAll(createLogger({ level, journal: true, stream: out.stream }));
    await settle();
    expect(out.lines()).toHaveLength(n);
    expect(out.lines().map((l) => Number(l.slice(1, 2)))).toEqual([...Array(n).keys()]);
  });

  test('setLevel (a config reload) changes the level of the logger and of its children made before', async () => {
    const out = capture();
    const log = createLogger({ level: 'notice', journal: true, stream: out.stream });
    const child = log.child({ loop: 'x' });
    child.debug('hidden');
    log.setLevel('debug');
    child.debug('shown');
    log.setLevel('error');
    child.warning('hidden');
    await settle();
    expect(out.lines()).toEqual(['<7>shown loop=x']);
  });

  test('an unknown level is a configuration error', () => {
    expect(() => createLogger({ level: 'warn', journal: true })).toThrow(
      expect.objectContaining({ code: 'LOG_LEVEL_INVALID', exitCode: 78 }),
    );
  });

  test('PRIORITY is the syslog numbering', () => {
    expect(PRIORITY).toEqual({ emerg: 0, alert: 1, crit: 2, error: 3, warning: 4, notice: 5, info: 6, debug: 7 });
  });
});

describe('child loggers', () => {
  test('add their fields; the event wins on a clash; the parent is unchanged', async () => {
    const out = capture();
    const root = createLogger({ level: 'info', journal: true, stream: out.stream });
    const dns = root.child({ component: 'dns', server: '10.10.1.53' });
    const upd = dns.child({ op: 'update' });
    upd.error('refused', { rcode: 'NOTAUTH', server: 'other' });
    root.info('root');
    await settle();
    expect(out.lines()).toEqual(['<3>refused component=dns server=other op=update rcode=NOTAUTH', '<6>root']);
  });

  test('fields named level or message do not clobber the event', async () => {
    const out = capture();
    createLogger({ level: 'info', journal: true, stream: out.stream }).info('m', { level: 'debug', message: 'other' });
    await settle();
    expect(out.lines()).toEqual(['<6>m level=debug message=other']);
  });
});

describe('values', () => {
  const f = (fields: Record<string, unknown>) => formatEvent('msg', fields);

  test('numbers, booleans, bigint raw', () => {
    expect(f({ a: 1, b: -2.5, c: true, d: 12345678901234567890n, e: NaN })).toBe('msg a=1 b=-2.5 c=true d=12345678901234567890 e=NaN');
  });

  test('strings quoted only when needed, JSON escaping', () => {
    expect(f({ plain: 'abc', path: '/var/lib/x', url: 'http://h:1/p?q' })).toBe('msg plain=abc path=/var/lib/x url=http://h:1/p?q');
    expect(f({ empty: '' })).toBe('msg empty=""');
    expect(f({ space: 'a b' })).toBe('msg space="a b"');
    expect(f({ eq: 'a=b' })).toBe('msg eq="a=b"');
    expect(f({ q: 'say "hi"' })).toBe('msg q="say \\"hi\\""');
    expect(f({ nl: 'line1\nline2' })).toBe('msg nl="line1\\nline2"');
    expect(f({ tab: 'a\tb', bs: 'a\\b' })).toBe('msg tab="a\\tb" bs="a\\\\b"');
    expect(f({ u: 'ünïcode' })).toBe('msg u=ünïcode');
  });

  test('null, undefined, dates', () => {
    expect(f({ n: null, u: undefined, d: new Date('2026-01-02T03:04:05.006Z') })).toBe('msg n=null d=2026-01-02T03:04:05.006Z');
  });

  test('errors: message, plus code', () => {
    const e = Object.assign(new Error('connect ECONNREFUSED 10.10.1.53:53'), { code: 'ECONNREFUSED' });
    expect(f({ err: e })).toBe('msg err="connect ECONNREFUSED 10.10.1.53:53" err_code=ECONNREFUSED');
    expect(f({ err: new Error('boom') })).toBe('msg err=boom');
  });

  test('objects and arrays as compact JSON, cycles cut', () => {
    expect(f({ o: { a: 1, b: [1, 'x y'], n: 2n } })).toBe('msg o={"a":1,"b":[1,"x y"],"n":"2"}');
    expect(f({ list: ['a', 'b'] })).toBe('msg list=["a","b"]');
    const c: Record<string, unknown> = { a: 1 };
    c.self = c;
    const shared = { z: 1 };
    expect(f({ c, s: [shared, shared] })).toBe('msg c={"a":1,"self":"[circular]"} s=[{"z":1},{"z":1}]');
    expect(f({ o: { s: 'multi\nline' } })).toBe('msg o={"s":"multi\\nline"}');
  });

  test('newlines in the message never split the line', async () => {
    const out = capture();
    createLogger({ level: 'info', journal: true, stream: out.stream }).info('one\ntwo\r\nthree', { v: 'a\nb' });
    await settle();
    expect(out.raw()).toBe('<6>one\\ntwo\\r\\nthree v="a\\nb"\n');
  });

  test('odd keys are made safe', () => {
    expect(f({ 'a b': 1, 'x=y': 2, '': 3, 'dns.rcode': 'NOERROR' })).toBe('msg a_b=1 x_y=2 _=3 dns.rcode=NOERROR');
  });
});

test('nullLogger drops everything', () => {
  const l = nullLogger();
  expect(() => {
    logAll(l);
    l.child({ a: 1 }).info('x');
  }).not.toThrow();
});
