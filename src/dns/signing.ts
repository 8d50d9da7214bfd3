/**
 * How the agent and failoverctl sign their DNS messages, from `dns.auth` (SPEC §2a): HMAC TSIG
 * with the key file, or GSS-TSIG with the Kerberos principal and keytab of `[dns.gss]` through the
 * gss addon. Loaded before anything talks to the server; what cannot be loaded is an error with
 * its exit status (a missing addon: GSS_ADDON_UNAVAILABLE, 78). Never a fallback to unsigned.
 */
import { checkKeytab, loadKeyFile, type TsigKey } from '../config/keyfile.js';
import type { Config, GssConfig } from '../config/schema.js';
import { loadGssAddon, type GssApi } from './gss/addon.js';

export type DnsSigning = { auth: 'tsig'; key: TsigKey; file: string } | { auth: 'gss-tsig'; gss: GssApi; config: GssConfig };

export interface SigningDeps {
  /** The addon loader (a fake or a failing one in tests). */
  loadAddon?: () => GssApi;
}

/**
 * The key file (KeyFileError: 77 for its mode, 78 for its content), or the keytab's checks (the
 * same) and the addon (GSS_ADDON_UNAVAILABLE, 78).
 */
export function loadSigning(config: Pick<Config, 'dns'>, deps: SigningDeps = {}): DnsSigning {
  const { dns } = config;
  if (dns.auth === 'tsig') return { auth: 'tsig', key: loadKeyFile(dns.key_file!), file: dns.key_file! };
  const gss = dns.gss!;
  checkKeytab(gss.keytab);
  return { auth: 'gss-tsig', gss: (deps.loadAddon ?? loadGssAddon)(), config: gss };
}

/** One line: which way requests are signed (check-config, the agent's start). */
export function describeSigning(s: DnsSigning): string {
  if (s.auth === 'tsig') return `TSIG key ${s.key.name} ${s.key.algorithm} (${s.file})`;
  const target = s.config.server_principal ?? 'DNS/<SOA MNAME>';
  return `GSS-TSIG as ${s.config.principal} (keytab ${s.config.keytab}) to ${target}`;
}
