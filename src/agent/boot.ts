/**
 * The agent's entry point (dist/agent.js): runs the agent bundle (agent-main.js beside it) with a
 * V8 code cache in systemd's CacheDirectory= (src/agent/code-cache.ts), plainly without one.
 */
import path from 'node:path';
import { CODE_CACHE_ENV, runWithCodeCache } from './code-cache.js';

/** By then the start (config, witness, bus, READY) has run, so its code is in the cache. */
const WRITE_CACHE_AFTER_MS = 10_000;

runWithCodeCache(path.join(__dirname, 'agent-main.js'), process.env.CACHE_DIRECTORY?.split(':')[0] || undefined, WRITE_CACHE_AFTER_MS, {
  // for the agent's first log line (src/agent/main.ts)
  onCache: (cache) => {
    process.env[CODE_CACHE_ENV] = cache;
  },
});
