/**
 * The GSS-API addon (native/gss/gss.c over the system's MIT libgssapi_krb5),
 * typed. Loaded only when GSS-TSIG is configured: a host without the library
 * keeps running HMAC TSIG. It cannot load → GSS_ADDON_UNAVAILABLE (exit 78),
 * never a fallback to unsigned.
 *
 * Where the .node file is: next to the bundle when packaged (the bundles are
 * CommonJS in /usr/lib/failover-agent), else the node-gyp build in the tree.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { AgentError, ExitCode } from '../../errors.js';

/** Opaque handles: only the addon can make or read them. */
export interface GssCredentials {
  readonly __gss: 'credentials';
}
export interface GssContext {
  readonly __gss: 'context';
}

export type GssMech = 'krb5' | 'spnego';

export interface InitStep {
  /** The token to send to the acceptor (may be empty once complete). */
  outputToken: Buffer;
  complete: boolean;
  /** Seconds the context stays valid (Infinity for GSS_C_INDEFINITE). */
  expiresInSeconds: number;
}

export interface GssApi {
  /** Initiator credentials for `principal` from `keytab`, into a private MEMORY: cache (may reach the KDC). */
  acquireCredentials(principal: string, keytab: string): Promise<GssCredentials>;
  /** Frees the credentials and destroys their in-memory cache now (else the GC does). */
  releaseCredentials(cred: GssCredentials): void;
  createContext(mech: GssMech): GssContext;
  /** One init step: flags MUTUAL, REPLAY, INTEG only (may reach the KDC). */
  initSecContext(cred: GssCredentials, ctx: GssContext, target: string, input: Buffer | null): Promise<InitStep>;
  getMic(ctx: GssContext, message: Buffer): Buffer;
  /** Throws a GssError unless the MIC verifies (a duplicate token fails too). */
  verifyMic(ctx: GssContext, message: Buffer, mic: Buffer): void;
  deleteContext(ctx: GssContext): void;
}

/** KRB5_KDC_UNREACH as the unsigned minor status the krb5 mechanism returns. */
const KDC_UNREACHABLE = 0x96c73a9c;

/** A GSS-API failure: `message` holds the major and minor status in words. */
export class GssError extends AgentError {
  readonly major: number;
  readonly minor: number;
  constructor(message: string, major: number, minor: number, options?: { cause?: unknown }) {
    // No KDC is an outage (69); anything else is an authentication problem (77).
    super('GSS_ERROR', message, minor === KDC_UNREACHABLE ? ExitCode.UNAVAILABLE : ExitCode.NOPERM, options);
    this.major = major;
    this.minor = minor;
  }
}

/** The raw addon as gss.c defines it. */
interface NativeGss {
  acquireCredentials(principal: string, keytab: string): Promise<GssCredentials>;
  releaseCredentials(cred: GssCredentials): void;
  createContext(mech: GssMech): GssContext;
  initSecContext(
    cred: GssCredentials,
    ctx: GssContext,
    target: string,
    input: Buffer | null,
  ): Promise<{ context: GssContext; outputToken: Buffer; complete: boolean; contextExpiresSeconds: number }>;
  getMic(ctx: GssContext, message: Buffer): Buffer;
  verifyMic(ctx: GssContext, message: Buffer, mic: Buffer): void;
  deleteContext(ctx: GssContext): void;
}

const INDEFINITE = 0xffffffff;

function translate(err: unknown): unknown {
  if (err instanceof Error && (err as { code?: unknown }).code === 'GSS_ERROR') {
    const e = err as Error & { major?: number; minor?: number };
    return new GssError(e.message, e.major ?? 0, e.minor ?? 0, { cause: err });
  }
  return err;
}

function sync<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw translate(err);
  }
}

/** Where the .node file may be: next to the bundle, then the tree's build (from dist/ or from src/dns/gss/). */
export function defaultAddonPaths(dir: string = __dirname): string[] {
  const built = 'native/gss/build/Release/gss.node';
  return [path.join(dir, 'gss.node'), path.resolve(dir, '..', built), path.resolve(dir, '../../..', built)];
}

const REQUIRED = ['acquireCredentials', 'releaseCredentials', 'createContext', 'initSecContext', 'getMic', 'verifyMic', 'deleteContext'] as const;

/** Loads the addon; throws AgentError GSS_ADDON_UNAVAILABLE (exit 78) saying why. */
export function loadGssAddon(paths: string[] = defaultAddonPaths(), req: (id: string) => unknown = createRequire(__filename)): GssApi {
  const file = paths.find((p) => existsSync(p));
  if (file === undefined) {
    throw new AgentError('GSS_ADDON_UNAVAILABLE', `GSS-TSIG needs the gss addon, not found at ${paths.join(' or ')}`, ExitCode.CONFIG);
  }
  let mod: Partial<NativeGss>;
  try {
    mod = req(file) as Partial<NativeGss>;
  } catch (err) {
    // A Node of another ABI, or libgssapi_krb5 missing: dlopen says which.
    const why = (err as Error).message.split('\n')[0];
    throw new AgentError('GSS_ADDON_UNAVAILABLE', `GSS-TSIG: the gss addon ${file} does not load: ${why}`, ExitCode.CONFIG, { cause: err });
  }
  const missing = REQUIRED.filter((k) => typeof mod[k] !== 'function');
  if (missing.length > 0) {
    throw new AgentError('GSS_ADDON_UNAVAILABLE', `GSS-TSIG: the gss addon ${file} lacks ${missing.join(', ')}`, ExitCode.CONFIG);
  }
  const n = mod as NativeGss;
  return {
    acquireCredentials: (principal, keytab) => n.acquireCredentials(principal, keytab).catch((err: unknown) => Promise.reject(translate(err))),
    releaseCredentials: (cred) => sync(() => n.releaseCredentials(cred)),
    createContext: (mech) => sync(() => n.createContext(mech)),
    initSecContext: async (cred, ctx, target, input) => {
      try {
        const r = await n.initSecContext(cred, ctx, target, input);
        const s = r.contextExpiresSeconds;
        return { outputToken: r.outputToken, complete: r.complete, expiresInSeconds: s === INDEFINITE ? Infinity : s };
      } catch (err) {
        throw translate(err);
      }
    },
    getMic: (ctx, message) => sync(() => n.getMic(ctx, message)),
    verifyMic: (ctx, message, mic) => sync(() => n.verifyMic(ctx, message, mic)),
    deleteContext: (ctx) => sync(() => n.deleteContext(ctx)),
  };
}
