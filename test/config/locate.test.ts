import { parse } from 'smol-toml';
import { describe, expect, test } from 'vitest';

import { KeyLocator } from '../../src/config/locate.js';

const TEXT = [
  '# comment with key = value and [table]', //    1
  'role = "dr" # trailing = comment', //           2
  '', //                                           3
  '[sites] # the sites', //                        4
  '"primary" = "10.10.10.10"', //                  5
  "'dr' = '10.20.20.20'", //                       6
  '', //                                           7
  '[ dns ]', //                                    8
  'record = "a#b = c"', //                         9
  'notes = """', //                               10
  'fake = "inside a string"', //                  11
  '[not.a.table]', //                             12
  '"""', //                                       13
  'raw = \'\'\'', //                              14
  'also = fake', //                               15
  '\'\'\'', //                                    16
  'timeout = "2s"', //                            17
  '', //                                          18
  '[health]', //                                  19
  'targets = [ # comment', //                     20
  '  "http://a", # first', //                     21
  '', //                                          22
  '  # comment line', //                          23
  '  "tcp://b:1",', //                            24
  ']', //                                         25
  'nested = [[1, 2], [3]]', //                    26
  'inline = { a = 1, b.c = { d = "}" } }', //      27
  'deep.dotted.key = true', //                    28
  '"quoted.dot" = 1', //                          29
  '', //                                          30
  '[[things]]', //                                31
  'x = 1', //                                     32
  '[[things]]', //                                33
  'x = 2', //                                     34
  '[a."b.c".d]', //                               35
  'e = 1979-05-27 07:32:00Z', //                  36
  'f = "\\"quoted\\" = x"', //                    37
  'g = 1', //                                     38
  '',
].join('\n');

describe('KeyLocator', () => {
  test('the fixture is valid TOML (the locator is tested on what smol-toml accepts)', () => {
    expect(() => parse(TEXT)).not.toThrow();
  });

  const loc = new KeyLocator(TEXT);

  test.each([
    [['role'], 2],
    [['sites'], 4],
    [['sites', 'primary'], 5],
    [['sites', 'dr'], 6],
    [['dns'], 8],
    [['dns', 'record'], 9],
    [['dns', 'notes'], 10],
    [['dns', 'raw'], 14],
    [['dns', 'timeout'], 17],
    [['health', 'targets'], 20],
    [['health', 'targets', 0], 21],
    [['health', 'targets', 1], 24],
    [['health', 'nested', 1], 26],
    [['health', 'nested', 1, 0], 26],
    [['health', 'inline', 'b', 'c', 'd'], 27],
    [['health', 'deep', 'dotted', 'key'], 28],
    [['health', 'deep'], 28],
    [['health', 'quoted.dot'], 29],
    [['things', 0, 'x'], 32],
    [['things', 1, 'x'], 34],
    [['things', 1], 33],
    [['a', 'b.c', 'd', 'e'], 36],
    [['a', 'b.c', 'd', 'f'], 37],
    [['a', 'b.c', 'd', 'g'], 38],
  ] as const)('%j is on line %i', (path, line) => {
    expect(loc.exact(path)).toBe(line);
  });

  test('keys inside strings are not keys', () => {
    expect(loc.exact(['dns', 'fake'])).toBeUndefined();
    expect(loc.exact(['not'])).toBeUndefined();
    expect(loc.exact(['dns', 'also'])).toBeUndefined();
  });

  test('a missing key falls back to its table, then nothing', () => {
    expect(loc.exact(['dns', 'zone'])).toBeUndefined();
    expect(loc.line(['dns', 'zone'])).toBe(8);
    expect(loc.line(['health', 'targets', 7])).toBe(20);
    expect(loc.line(['vmsync', 'enabled'])).toBeUndefined();
  });

  test('CRLF line endings', () => {
    const l = new KeyLocator('a = 1\r\n[t]\r\nb = [\r\n  1,\r\n  2,\r\n]\r\nc = "x"\r\n');
    expect([l.exact(['a']), l.exact(['t']), l.exact(['t', 'b', 1]), l.exact(['t', 'c'])]).toEqual([1, 2, 5, 7]);
  });

  test('garbage does not throw and does not stop the scan', () => {
    const l = new KeyLocator('a = 1\n= = =\n[[[\nfoo bar\n"unterminated\nb = "x\n[t]\nc = 2\n');
    expect(l.exact(['a'])).toBe(1);
    expect(l.exact(['t', 'c'])).toBe(8);
  });
});
