/**
 * keepalived beside the agent: Debian's keepalived (2.2.7 on Debian 12) running VRRP in the same
 * two site namespaces, configured as the original system was (router id 51, priority 100 on the
 * primary and 90 on the DR, advert_int 1), with unicast peers over the WAN (VRRP multicast does
 * not cross the router). Who holds the virtual IP is sampled at 10 Hz from outside.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { requireBinary } from '../fixtures/dns-servers.js';
import type { SiteRole } from './sites.js';

export const VIP = '198.18.9.100';

export interface VipSample {
  wallMs: number;
  /** which sites hold the VIP now */
  holders: Record<SiteRole, boolean>;
}

export interface KeepalivedSite {
  role: SiteRole;
  netns: string;
  address: string;
  peerAddress: string;
  /**
   * The seed's `track_script` (`killall -0 <collector>` every 2 s, fall 1): a cgroup.procs file of
   * this site's collector, checked for a process in it; none: no track script.
   */
  trackCgroup?: string;
}

function ip(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('ip', args, { timeout: 5000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
}

/** The interface that carries `address` in namespace `netns`. */
async function ifaceOf(netns: string, address: string): Promise<string> {
  const out = await ip(['-n', netns, '-o', '-4', 'addr', 'show']);
  const line = out.split('\n').find((l) => l.includes(` ${address}/`));
  const name = line?.split(/\s+/)[1];
  if (!name) throw new Error(`no interface with ${address} in ${netns}:\n${out}`);
  return name.replace(/@.*$/, '');
}

function config(s: KeepalivedSite, iface: string, script: string | null): string {
  const primary = s.role === 'primary';
  const track = script
    ? `vrrp_script chk_collector {
  script "${script}"
  interval 2
  fall 1
  rise 1
}
`
    : '';
  return `global_defs {
  router_id fa-${s.role}
  enable_script_security
  script_user root
}
${track}vrrp_instance VI_51 {
  state ${primary ? 'MASTER' : 'BACKUP'}
  interface ${iface}
  virtual_router_id 51
  priority ${primary ? 100 : 90}
  advert_int 1
  unicast_src_ip ${s.address}
  unicast_peer {
    ${s.peerAddress}
  }
  authentication {
    auth_type PASS
    auth_pass fa51
  }
  virtual_ipaddress {
    ${VIP}/32 dev ${iface}
  }
${script ? '  track_script {\n    chk_collector\n  }\n' : ''}}
`;
}

export interface Keepalived {
  /** host PIDs of this site's keepalived processes (the parent and its VRRP child) */
  pids(): number[];
  /** power cut: SIGKILL every keepalived process of the site (the VIP stays configured on the dead site's interface, as on a real dead host it would vanish with the host: removed here) */
  powerCut(): Promise<void>;
  stop(): Promise<void>;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

export async function startKeepalived(s: KeepalivedSite): Promise<Keepalived> {
  const bin = requireBinary('keepalived');
  // Not under /tmp: with enable_script_security keepalived refuses a script on a path others may write.
  fs.mkdirSync('/run/fa-keepalived', { recursive: true, mode: 0o755 });
  const dir = fs.mkdtempSync(path.join('/run/fa-keepalived', `${s.role}-`));
  fs.chmodSync(dir, 0o755);
  const iface = await ifaceOf(s.netns, s.address);
  let script: string | null = null;
  if (s.trackCgroup) {
    script = path.join(dir, 'chk-collector.sh');
    fs.writeFileSync(script, `#!/bin/sh\n# killall -0 on this site's collector: a process in its cgroup\ngrep -q . '${s.trackCgroup}'\n`, { mode: 0o755 });
  }
  fs.writeFileSync(path.join(dir, 'keepalived.conf'), config(s, iface, script));
  const logFile = fs.openSync(path.join(dir, 'keepalived.log'), 'a');
  // -n: stay in the foreground (the PID is the parent's), -l: log to the console, --vrrp: VRRP only.
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', s.netns, bin, '-n', '-l', '-D', '--vrrp', '-f', path.join(dir, 'keepalived.conf'), '-p', path.join(dir, 'k.pid'), '-r', path.join(dir, 'vrrp.pid')],
    { stdio: ['ignore', logFile, logFile] },
  );
  fs.closeSync(logFile);
  const parent = child.pid ?? 0;
  const pids = (): number[] => (parent ? [parent, ...childrenOf(parent)] : []);
  const removeVip = async (): Promise<void> => {
    await ip(['-n', s.netns, 'addr', 'del', `${VIP}/32`, 'dev', iface]).catch(() => undefined);
  };
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    pids,
    async powerCut() {
      for (const p of pids().reverse()) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await exited;
      await removeVip();
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null && parent) {
        process.kill(parent, 'SIGTERM');
        const t = setTimeout(() => {
          for (const p of pids()) {
            try {
              process.kill(p, 'SIGKILL');
            } catch {
              /* gone */
            }
          }
        }, 5000);
        await exited;
        clearTimeout(t);
      }
      await removeVip();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Who holds the VIP in each namespace (one `ip` per site). */
export async function sampleVip(sites: Record<SiteRole, string>): Promise<VipSample> {
  const wallMs = Date.now();
  const [p, d] = await Promise.all([sites.primary, sites.dr].map((ns) => ip(['-n', ns, '-o', '-4', 'addr', 'show']).catch(() => '')));
  return { wallMs, holders: { primary: p.includes(` ${VIP}/`), dr: d.includes(` ${VIP}/`) } };
}

/** Seconds both held the VIP; failover = fault → the DR alone holds it. */
export function vipFigures(samples: VipSample[], faultMs: number): { split_brain_s: number; failover_s: number | null } {
  let ms = 0;
  for (let i = 0; i + 1 < samples.length; i++) {
    if (samples[i].holders.primary && samples[i].holders.dr) ms += samples[i + 1].wallMs - samples[i].wallMs;
  }
  const f = samples.find((x) => x.wallMs >= faultMs && x.holders.dr && !x.holders.primary);
  return { split_brain_s: Math.round(ms / 100) / 10, failover_s: f ? Math.round((f.wallMs - faultMs) / 100) / 10 : null };
}

