/**
 * Whether this site may change the names that already exist at the witness (the record, the lease,
 * the control record), for `failoverctl init` and, with GSS-TSIG, `check-config`: asked by an update
 * that changes nothing (Witness.writeAccess). In a zone that takes only secure updates, Active
 * Directory makes the account that created a record its owner and answers any other account's
 * change with SERVFAIL, unsigned; BIND refuses what its update policy does not grant (REFUSED,
 * signed). Either way the refusal is said in words and exits 77, as a refused key does.
 */
import type { Config } from '../config/schema.js';
import type { DnsSigning } from '../dns/signing.js';
import { AgentError, ExitCode } from '../errors.js';
import type { Snapshot, Witness, WriteAccess } from '../lease/witness.js';

/** Who signs, as a refusal names it. */
export function signerName(signing: DnsSigning): string {
  return signing.auth === 'gss-tsig' ? signing.config.principal : `the key ${signing.key.name}`;
}

/**
 * The names of `seen` this site may not change, as an AgentError (exit 77) saying why and what to
 * do; null when it may change all that exist (or none exist yet).
 */
export async function writeAccessRefusal(witness: Pick<Witness, 'writeAccess'>, seen: Snapshot, config: Pick<Config, 'dns'>, signing: DnsSigning): Promise<AgentError | null> {
  const denied = (await witness.writeAccess(seen)).filter((a): a is Extract<WriteAccess, { ok: false }> => !a.ok);
  if (denied.length === 0) return null;
  const who = signerName(signing);
  const names = denied.map((d) => `${d.name} (${d.type})`).join(', ');
  const owned = denied.filter((d) => d.error.code === 'DNS_UNSIGNED_ERROR');
  if (owned.length > 0) {
    const zone = config.dns.zone ?? owned[0]!.name.split('.').slice(1).join('.');
    const dns = (name: string): string => {
      const rel = name.endsWith(`.${zone}`) ? name.slice(0, -zone.length - 1) : name;
      return `DC=${rel},DC=${zone},CN=MicrosoftDNS,DC=DomainDnsZones,${zone.split('.').map((l) => `DC=${l}`).join(',')}`;
    };
    return new AgentError(
      'DNS_RECORD_NOT_OURS',
      `${names} exist${denied.length === 1 ? 's' : ''} and ${who} may not change ${denied.length === 1 ? 'it' : 'them'}: the server answered ` +
        `${owned[0]!.error.rcode} without a signature to an update that changes nothing, as Active Directory answers an account that does not own ` +
        `the record. The record is owned by another account: both sites must sign as one account (one principal, its keytab copied to both ` +
        `sites), or grant a group of both accounts full control on the record, the lease and the control record with samba-tool dsacl set, ` +
        `once per name, e.g. samba-tool dsacl set --objectdn='${dns(owned[0]!.name)}' --sddl='(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;<the group's SID>)' ` +
        `(on Windows: the record's Security tab in DNS Manager); the members' next tickets carry the group`,
      ExitCode.NOPERM,
    );
  }
  return new AgentError(
    'DNS_REFUSED',
    `${names} exist${denied.length === 1 ? 's' : ''} and the server refuses ${who} any change to ${denied.length === 1 ? 'it' : 'them'} ` +
      `(${denied[0]!.error.rcode ?? denied[0]!.error.code}): its update policy must grant ${who} the record, the lease and the control record ` +
      `(failoverctl setup prints the server side)`,
    ExitCode.NOPERM,
  );
}
