import { describe, expect, it } from 'vitest';
import { formatLease, LeaseFormatError, parseLease, renewed, transferred } from '../../src/lease/lease.js';
import { siteOf } from '../../src/lease/witness.js';

describe('lease TXT', () => {
  it('formats and parses the exact SPEC form', () => {
    const l = { holder: 'dr' as const, epoch: 5, seq: 42, at: 1795300000 };
    const text = formatLease(l);
    expect(text).toBe('v=1 holder=dr epoch=5 seq=42 at=1795300000');
    expect(parseLease(text)).toEqual(l);
  });

  it('reads other spacing as the written form (the one-match path and the general one agree)', () => {
    const l = { holder: 'primary' as const, epoch: 7, seq: 0, at: 999999999999999 };
    expect(parseLease(' v=1  holder=primary\tepoch=7 seq=0 at=999999999999999 ')).toEqual(l);
    expect(parseLease(formatLease(l))).toEqual(l);
    expect(() => parseLease('v=1 holder=primary epoch=7 seq=0 at=1000000000000000')).toThrowError('at must be');
  });

  it.each([
    ['', 'expected 5 fields'],
    ['v=1 holder=primary epoch=1 seq=0', 'expected 5 fields'],
    ['v=2 holder=primary epoch=1 seq=0 at=0', 'unsupported version'],
    ['v=1 holder=both epoch=1 seq=0 at=0', 'holder must be'],
    ['v=1 holder=primary epoch=-1 seq=0 at=0', 'epoch must be'],
    ['v=1 holder=primary epoch=1.5 seq=0 at=0', 'epoch must be'],
    ['v=1 holder=primary epoch=1 seq=99999999999999999 at=0', 'seq must be'],
    ['v=1 epoch=1 holder=primary seq=0 at=0', 'field 2 must be holder='],
    ['v=1 holder=primary epoch=1 seq=0 at=0 extra=1', 'expected 5 fields'],
    ['v=1 holder=primary epoch= seq=0 at=0', 'epoch must be'],
  ])('rejects %j', (text, why) => {
    expect(() => parseLease(text)).toThrowError(LeaseFormatError);
    expect(() => parseLease(text)).toThrowError(why);
  });

  it('renewal raises seq only; a transfer raises epoch and seq and changes holder', () => {
    const l = { holder: 'primary' as const, epoch: 3, seq: 10, at: 1 };
    expect(renewed(l, 100.7)).toEqual({ holder: 'primary', epoch: 3, seq: 11, at: 100 });
    expect(transferred(l, 'dr', 200)).toEqual({ holder: 'dr', epoch: 4, seq: 11, at: 200 });
  });

  it('siteOf names a site only for its exact address', () => {
    const sites = { primary: '10.10.10.10', dr: '10.20.20.20' };
    expect(siteOf('10.10.10.10', sites)).toBe('primary');
    expect(siteOf('10.20.20.20', sites)).toBe('dr');
    expect(siteOf('10.30.30.30', sites)).toBeUndefined();
    expect(siteOf(undefined, sites)).toBeUndefined();
  });
});
