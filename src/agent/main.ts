/**
 * The agent process: wiring only. Loads config and key, builds the ports,
 * starts the engine and the listeners, and handles signals:
 * SIGTERM/SIGINT stop cleanly (an in-flight CAS is finished, so its outcome
 * is known), SIGHUP reloads the config (an invalid file is logged and the old
 * config keeps running).
 */
import { loadConfig } from '../config/load.js';
import { loadKeyFile } from '../config/keyfile.js';
import { configPathForInstance, type Config } from '../config/schema.js';
import { NoCollector, type CollectorPort } from '../collector/port.js';
import { socketPath } from '../control/client.js';
import { ControlServer } from '../control/server.js';
import { AgentError, ExitCode, exitCodeOf } from '../errors.js';
import { createHealthChecker } from '../health/checks.js';
import { HttpServer } from '../http/server.js';
import { Metrics } from '../http/metrics.js';
import { openWitness } from '../lease/open.js';
import { createLogger, type Logger } from '../log/logger.js';
import { Engine } from './engine.js';

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

function collectorFor(config: Config): CollectorPort {
  if (config.collector.control === 'none') return new NoCollector();
  throw new AgentError(
    'COLLECTOR_UNSUPPORTED',
    `${config.file}: collector.control = "systemd" is not available in this build yet; set collector.control = "none"`,
    ExitCode.CONFIG,
  );
}

async function main(argv: string[]): Promise<number> {
  const file = configFile(argv);
  let config = loadConfig(file);
  const logger: Logger = createLogger({ level: config.log.level });
  const key = loadKeyFile(config.dns.key_file);
  const collector = collectorFor(config);
  const opened = await openWitness(config, key);
  const server = `${opened.server.host}:${opened.server.port}`;
  let engine!: Engine;
  const metrics = new Metrics({ instance: config.instance, role: config.role }, () => engine.status());
  engine = new Engine({
    config,
    witness: opened.witness,
    server,
    zone: opened.zone,
    health: config.role === 'dr' ? createHealthChecker(config.health) : null,
    collector,
    logger,
    observer: {
      dnsRequest: (kind, s) => metrics.dnsRequest(kind, s),
      dnsError: (code) => metrics.dnsError(code),
      write: (op, r) => metrics.write(op, r),
      healthCheck: (ok) => metrics.healthCheck(ok),
      notify: (event, text) => logger.notice(text, { event: `notify_${event}` }),
    },
  });
  logger.notice('starting', { event: 'start', instance: config.instance, role: config.role, server, zone: opened.zone, record: config.dns.record });

  const http = config.http.listen ? new HttpServer({ listen: config.http.listen, status: () => engine.status(), metrics, logger }) : null;
  const control = new ControlServer({ path: socketPath(config.instance), handler: engine, logger });
  await http?.start();
  await control.start();
  await engine.start();
  logger.notice(engine.hasVerifiedRead() ? 'running' : 'running; DNS not readable yet', { event: 'ready', ...engine.status().dns });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.notice(`stopping on ${signal}`, { event: 'stop', signal });
      void (async () => {
        await engine.stop();
        await control.stop();
        await http?.stop();
        resolve(ExitCode.OK);
      })();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        const next = loadConfig(file);
        engine.reload(next);
        config = next;
        logger.notice('configuration reloaded', { event: 'reload', file });
      } catch (err) {
        logger.error(`reload rejected, keeping the running configuration: ${(err as Error).message}`, {
          event: 'reload_failed',
          code: err instanceof AgentError ? err.code : 'INTERNAL',
        });
      }
    });
  });
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
