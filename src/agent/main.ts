/**
 * The agent process: wiring only. Loads config and key, builds the ports,
 * starts the engine and the listeners, and handles signals:
 * SIGTERM/SIGINT stop cleanly, from before the engine starts (an in-flight CAS
 * is finished, so its outcome is known), SIGHUP reloads the config once READY
 * (an invalid file is logged and the old config keeps running).
 */
import { buildInfo, versionLine } from '../build-info.js';
import { systemClock, type Clock } from '../clock.js';
import { loadConfig } from '../config/load.js';
import { configPathForInstance, type Config } from '../config/schema.js';
import { NoCollector, type CollectorPort } from '../collector/port.js';
import { SystemdCollector } from '../collector/systemd.js';
import { DbusSystemd } from '../collector/systemd-bus.js';
import { socketPath } from '../control/client.js';
import { ControlServer } from '../control/server.js';
import { AgentError, ExitCode, exitCodeOf } from '../errors.js';
import type { HealthCheckConfig, HealthChecker } from '../health/checks.js';
import type { PeerPort } from '../health/peer.js';
import { HttpServer } from '../http/server.js';
import { Metrics } from '../http/metrics.js';
import { openWitness } from '../lease/open.js';
import { describeSigning, loadSigning } from '../dns/signing.js';
import { openPropagation } from '../propagation/open.js';
import { createLogger, type Logger } from '../log/logger.js';
import { createNotifier, watchdogUsec } from '../notify/notify.js';
import { LivenessTracker, WatchdogPinger, type LoopDeadlines } from '../notify/watchdog.js';
import { stateDir } from '../state/atomic.js';
import { Engine } from './engine.js';
import { CODE_CACHE_ENV } from './code-cache.js';
import { fileLeaseStore } from './lease-state.js';
import type { AgentStatus } from '../control/protocol.js';

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i >= 0) return argv[i + 1];
  return argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

function configFile(argv: string[]): string {
  const file = argValue(argv, '--config');
  const instance = argValue(argv, '--instance');
  if (file) return file;
  if (instance) return configPathForInstance(instance);
  throw new AgentError('USAGE', 'usage: agent.js --config FILE | --instance NAME', ExitCode.CONFIG);
}

function collectorFor(config: Config, logger: Logger, clock: Clock): CollectorPort {
  if (config.collector.control === 'none') return new NoCollector();
  return new SystemdCollector({ unit: config.collector.unit, bus: new DbusSystemd(), logger, clock });
}

/**
 * A port loaded at its first use, not at start: the DR's health checks of the primary and the
 * other site's readiness (undici with them) cost a site nothing before it asks
 * (docs/PERFORMANCE.md). Closed before it loaded, it closes what loads.
 */
function lazyPort<P extends { close(): Promise<void> }, R>(load: () => Promise<P>, ask: (port: P) => Promise<R>): { ask(): Promise<R>; close(): Promise<void> } {
  let real: Promise<P> | undefined;
  let closed = false;
  return {
    ask: async () => {
      const port = await (real ??= load());
      if (closed) await port.close();
      return ask(port);
    },
    close: async () => {
      closed = true;
      if (real) await (await real).close();
    },
  };
}

function lazyHealthChecker(cfg: HealthCheckConfig, clock: Clock): HealthChecker {
  const p = lazyPort(() => import('../health/checks.js').then((m) => m.createHealthChecker(cfg, { clock })), (c) => c.check());
  return { check: p.ask, close: p.close };
}

function lazyPeerChecker(targets: string[], timeoutMs: number, clock: Clock): PeerPort {
  const p = lazyPort(() => import('../health/peer.js').then((m) => m.createPeerChecker(targets, timeoutMs, { clock })), (c) => c.check());
  return { check: p.ask, close: p.close };
}

const COLLECTOR_JOB_MS = 30_000;

/** How long each loop may go without completing an iteration before the watchdog stops. */
function deadlines(c: Config): LoopDeadlines {
  const dnsBudget = c.dns.timeout * (c.dns.retries + 1);
  const tick = Math.max(c.lease.renew_interval, c.health.interval);
  const d: LoopDeadlines = { decide: 2 * tick + 2 * dnsBudget + c.health.timeout + 5000 };
  if (c.collector.control !== 'none') d.collector = 2 * c.collector.interval + COLLECTOR_JOB_MS + 5000;
  return d;
}

/** The one-line STATUS= of SPEC §7. */
export function statusLine(s: AgentStatus): string {
  const lease = s.lease.holder ? `${s.lease.holder}/epoch ${s.lease.epoch}` : 'none';
  const collector = s.collector.control === 'none' ? 'uncontrolled' : (s.collector.state ?? 'unknown');
  return `role=${s.role} state=${s.phase} dns=${s.dns.addresses.join(',') || 'none'} lease=${lease} collector=${collector}${s.healthy ? '' : ` unhealthy: ${s.unhealthyReason}`}`;
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--version')) {
    process.stdout.write(`${versionLine('failover-agent')}\n`);
    return ExitCode.OK;
  }
  const file = configFile(argv);
  let config = loadConfig(file);
  const logger: Logger = createLogger({ level: config.log.level });
  // The key file, or the keytab and the gss addon (GSS_ADDON_UNAVAILABLE: exit 78, never unsigned).
  const signing = loadSigning(config);
  const notifier = createNotifier(process.env, {
    fallback: { onError: (err) => logger.error(`sd_notify through systemd-notify failed: ${err.message}`, { event: 'notify_failed' }) },
  });
  const build = buildInfo(notifier.path);
  // Once, so an operator sees which path a package built for another Node takes.
  logger.notice(`sd_notify via ${notifier.path}${notifier.fallbackReason ? ` (the sd-notify addon does not load into node ${process.version}: ${notifier.fallbackReason})` : ''}`, {
    event: 'notify_path',
    path: notifier.path,
    node: process.version,
    version: build.version,
  });
  // The one clock of this process: every loop, timer, deadline and stamp below reads or waits on it.
  const clock = systemClock;
  const collector = collectorFor(config, logger, clock);
  const opened = await openWitness(config, signing, {
    clock,
    onGssEvent: (e) =>
      e.kind === 'negotiated'
        ? logger.info(`GSS-TSIG context ${e.keyName} negotiated (${e.why}) in ${Math.round(e.tookMs)} ms, valid ${Math.round(e.lifetimeMs / 1000)} s`, {
            event: 'gss_negotiated',
            why: e.why,
            key_name: e.keyName,
          })
        : logger.warning(`GSS-TSIG negotiation (${e.why}) failed: ${e.error.message}`, { event: 'gss_failed', why: e.why, code: (e.error as { code?: string }).code ?? 'INTERNAL' }),
  });
  const tracker = new LivenessTracker(deadlines(config), clock);
  const server = `${opened.server.host}:${opened.server.port}`;
  // Loaded only when configured: they bring undici, which a site without them never needs.
  const webhook = config.notify.webhook ? new (await import('../vmsync/notify.js')).Webhook(config.notify.webhook, { logger, clock }) : null;
  const vmsync = config.vmsync.enabled
    ? new (await import('../vmsync/sync.js')).VmSync({ config: config.vmsync, stateDir: stateDir(config.instance), logger, webhook, site: config.instance, clock })
    : null;
  /** Notifications: logged, and sent to the webhook when there is one. */
  const notify = (event: string, text: string): void => {
    logger.notice(text, { event: `notify_${event}` });
    webhook?.send(event, `${config.instance}: ${text}`);
  };
  const propagation = openPropagation(config, opened, { clock, logger, notify });
  let engine!: Engine;
  const metrics = new Metrics({ instance: config.instance, role: config.role }, () => engine.status(), {
    webhook: webhook ? () => webhook.stats() : undefined,
    liveness: () => tracker.check(),
  });
  engine = new Engine({
    config,
    witness: opened.witness,
    server,
    zone: opened.zone,
    health: config.role === 'dr' ? lazyHealthChecker(config.health, clock) : null,
    peer: config.collector.control === 'systemd' && config.collector.handover ? lazyPeerChecker(config.health.peer_targets, config.health.timeout, clock) : null,
    probe: config.collector.probe ? lazyHealthChecker({ targets: [config.collector.probe], require: 'any', timeout: config.health.timeout }, clock) : null,
    collector,
    logger,
    clock,
    leaseStore: fileLeaseStore(stateDir(config.instance), logger),
    vmsync,
    build,
    observer: {
      dnsRequest: (kind, s) => metrics.dnsRequest(kind, s),
      dnsError: (code) => metrics.dnsError(code),
      write: (op, r) => metrics.write(op, r),
      healthCheck: (ok) => metrics.healthCheck(ok),
      progress: (loop, at) => tracker.progress(loop, at),
      notify,
    },
    propagation,
    signing: opened.gss ?? null,
  });
  logger.notice('starting', {
    event: 'start',
    instance: config.instance,
    role: config.role,
    server,
    zone: opened.zone,
    record: config.dns.record,
    signing: describeSigning(signing),
    // how agent.js ran this bundle: with its V8 code cache (used), or compiled it (src/agent/boot.ts)
    code_cache: process.env[CODE_CACHE_ENV] ?? 'off',
  });

  const http = config.http.listen ? new HttpServer({ listen: config.http.listen, status: () => engine.status(), metrics, logger }) : null;
  /** SIGHUP and the control socket's `reload` (what ExecReload waits for): all or nothing. */
  const reload = (): string[] => {
    const next = loadConfig(file);
    const applied = engine.reload(next);
    config = next;
    logger.setLevel(next.log.level);
    tracker.setDeadlines(deadlines(next));
    logger.notice(`configuration reloaded${applied.length ? `: ${applied.join(', ')} changed` : ' (no change)'}`, { event: 'reload', file, changed: applied.join(',') });
    return applied;
  };
  let ready = false;
  const reloadReporting = (): string[] => {
    // Before READY, RELOADING=1/READY=1 would tell systemd a start had finished that has not.
    if (!ready) throw new AgentError('RELOAD_NOT_READY', 'the agent is still starting: reload once it runs', ExitCode.UNAVAILABLE);
    notifier.reloading();
    try {
      return reload();
    } catch (err) {
      logger.error(`reload rejected, keeping the running configuration: ${(err as Error).message}`, {
        event: 'reload_failed',
        code: err instanceof AgentError ? err.code : 'INTERNAL',
      });
      throw err;
    } finally {
      notifier.ready(statusLine(engine.status()));
    }
  };
  const control = new ControlServer({
    path: socketPath(config.instance),
    handler: {
      status: () => engine.status(),
      admin: (op, opts) => engine.admin(op, opts),
      sync: () => engine.sync(),
      reload: async () => ({ file, applied: reloadReporting() }),
    },
    logger,
  });
  // Signals are ours from before the engine starts: its first decision may already write (a
  // takeover), and a SIGTERM then must let that CAS finish, not kill it (the default action, which
  // also hit a stop in the instant between READY and handlers installed after it). A SIGHUP before
  // READY is refused as a reload over the socket is, instead of killing the agent.
  let stopRequested: string | null = null;
  const stopSignal = new Promise<string>((resolve) => {
    const onStop = (signal: string): void => {
      stopRequested ??= signal;
      resolve(stopRequested);
    };
    process.on('SIGTERM', () => onStop('SIGTERM'));
    process.on('SIGINT', () => onStop('SIGINT'));
  });
  process.on('SIGHUP', () => {
    if (!ready) {
      logger.notice('SIGHUP ignored: the agent is still starting (reload once it runs)', { event: 'reload_not_ready' });
      return;
    }
    try {
      reloadReporting();
    } catch {
      // Logged by reloadReporting; the running configuration stays.
    }
  });

  await http?.start();
  await control.start();
  propagation.start();
  await engine.start();
  // READY only once config, key, bus and a verified DNS read all worked (SPEC §7).
  // Polled every 10 ms (READY as soon as it holds, not up to 100 ms late); STATUS= every 5 s.
  for (let i = 0; stopRequested === null && !(engine.hasVerifiedRead() && collector.state() !== 'unknown'); i++) {
    if (i % 500 === 0) notifier.status(`starting: ${statusLine(engine.status())}`);
    await delay(10);
  }
  let pinger: WatchdogPinger | null = null;
  let statusTimer: NodeJS.Timeout | undefined;
  if (stopRequested === null) {
    notifier.ready(statusLine(engine.status()));
    ready = true;
    logger.notice('running', { event: 'ready', ...engine.status().dns });

    const usec = watchdogUsec();
    pinger = usec
      ? new WatchdogPinger(usec, tracker, () => notifier.watchdog(), (l) =>
          logger.crit('a loop is wedged: withholding WATCHDOG=1 so systemd restarts the agent', {
            event: 'watchdog_stale',
            loops: l.stale.map((x) => `${x.loop}:${Math.round(x.sinceMs)}ms>${x.deadlineMs}ms`).join(','),
          }),
          clock,
        )
      : null;
    pinger?.start();
    let lastStatus = '';
    // STATUS= follows the state within a second; without systemd there is nobody to tell.
    statusTimer = notifier.enabled
      ? setInterval(() => {
          const line = statusLine(engine.status());
          if (line !== lastStatus) notifier.status((lastStatus = line));
        }, 1000)
      : undefined;
  }

  const signal = await stopSignal;
  logger.notice(`stopping on ${signal}`, { event: 'stop', signal });
  notifier.stopping();
  pinger?.stop();
  clearInterval(statusTimer);
  await engine.stop();
  await propagation.stop();
  await control.stop();
  await http?.stop();
  await webhook?.close();
  await notifier.flush();
  return ExitCode.OK;
}

// Exit explicitly: keep-alive sockets or timers of libraries must not keep a
// stopped agent alive (stdout/stderr writes to pipes and files are synchronous on Linux).
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`failover-agent: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(exitCodeOf(err));
  },
);
