/**
 * RFC 2136 prerequisite and update records, named for what they mean.
 * (§2.4 prerequisites, §2.5 updates; the class/TTL/rdata encodings are the RFC's.)
 */
import type { RData, ResourceRecord, RRType } from './wire.js';

type Typed = { name: string; type: RRType };
type Valued = Typed & { data: RData };

export const prereq = {
  /** RRset exists (value independent): class ANY, empty rdata. */
  rrsetExists: ({ name, type }: Typed): ResourceRecord => ({ name, type, class: 'ANY', ttl: 0, data: null }),
  /** RRset exists (value dependent): one record per value; together they must equal the whole RRset. */
  rrsetEquals: ({ name, type }: Typed, values: RData[]): ResourceRecord[] =>
    values.map((data) => ({ name, type, class: 'IN', ttl: 0, data })),
  /** RRset does not exist: class NONE, empty rdata. */
  rrsetAbsent: ({ name, type }: Typed): ResourceRecord => ({ name, type, class: 'NONE', ttl: 0, data: null }),
  /** Name is in use: type ANY, class ANY. */
  nameInUse: (name: string): ResourceRecord => ({ name, type: 'ANY', class: 'ANY', ttl: 0, data: null }),
  /** Name is not in use: type ANY, class NONE. */
  nameNotInUse: (name: string): ResourceRecord => ({ name, type: 'ANY', class: 'NONE', ttl: 0, data: null }),
};

export const change = {
  /** Add an RR to an RRset. */
  add: ({ name, type, data }: Valued, ttl: number): ResourceRecord => ({ name, type, class: 'IN', ttl, data }),
  /** Delete an RRset: class ANY, empty rdata. */
  deleteRrset: ({ name, type }: Typed): ResourceRecord => ({ name, type, class: 'ANY', ttl: 0, data: null }),
  /** Delete all RRsets from a name: type ANY, class ANY. */
  deleteName: (name: string): ResourceRecord => ({ name, type: 'ANY', class: 'ANY', ttl: 0, data: null }),
  /** Delete one RR from an RRset: class NONE, TTL 0. */
  deleteRr: ({ name, type, data }: Valued): ResourceRecord => ({ name, type, class: 'NONE', ttl: 0, data }),
};
