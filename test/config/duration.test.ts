import { describe, expect, test } from 'vitest';

import { DurationError, formatDuration, parseDuration } from '../../src/config/duration.js';

describe('parseDuration', () => {
  test.each([
    ['250ms', 250],
    ['10s', 10_000],
    ['5m', 300_000],
    ['24h', 86_400_000],
    ['1m30s', 90_000],
    ['1h2m3s4ms', 3_723_004],
    ['0s', 0],
    ['1.5s', 1500],
    [' 10s ', 10_000],
    ['720h', 2_592_000_000],
  ])('%j → %d ms', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  test.each([
    ['', /empty/],
    ['   ', /empty/],
    ['-5s', /negative/],
    ['10', /no unit.*"10s"/],
    ['1.5', /no unit/],
    ['10d', /unknown unit "d".*ms, s, m, h/],
    ['10sec', /unknown unit "sec"/],
    ['10S', /unknown unit "S"/],
    ['s', /invalid duration/],
    ['10 s', /invalid duration/],
    ['30s1m', /largest to smallest/],
    ['1s1s', /largest to smallest/],
    ['0.5ms', /whole number of milliseconds/],
    ['1e3s', /unknown unit "e"/],
  ])('rejects %j', (s, msg) => {
    expect(() => parseDuration(s)).toThrow(DurationError);
    expect(() => parseDuration(s)).toThrow(msg);
  });
});

test('formatDuration is the inverse on canonical forms', () => {
  for (const s of ['250ms', '10s', '1m30s', '24h', '1h2m3s4ms', '0s']) {
    expect(formatDuration(parseDuration(s))).toBe(s);
  }
});
