// Imported dynamically by notify.ts (the systemd-notify fallback only): bundled, this is a lazily
// initialised module of the bundle, not an import() of a built-in, which the agent's code-cache
// loader (src/agent/boot.ts runs the bundle as a vm.Script) could not serve.
export { execFile } from 'node:child_process';
