// Helpers for the Node interop tests: build the signet binary, run a real server on a free loopback
// port with a throw-away data directory, and drive the CLI against the same data directory.
//
// Environment:
//   SIGNET_BIN       use this binary instead of building ./cmd/signet
//   SIGNET_TEST_LOG  set to 1 to stream the server's output to stderr while the tests run

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

/** The repository root: this file lives in <root>/test/node/. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Runs a command and resolves with its stdout; rejects with stdout and stderr in the message. */
function run(file, args, { cwd, timeout = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, timeout, maxBuffer: 16 << 20, env: process.env }, (err, stdout, stderr) => {
      if (err) {
        const how = err.killed ? `killed after ${timeout} ms` : `exit code ${err.code}`;
        reject(new Error(`${file} ${args.join(' ')} failed (${how})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
      resolve(stdout);
    });
  });
}

/** Builds the server binary into dir (or returns $SIGNET_BIN). */
export async function buildSignet(dir) {
  if (process.env.SIGNET_BIN) return path.resolve(process.env.SIGNET_BIN);
  const bin = path.join(dir, process.platform === 'win32' ? 'signet.exe' : 'signet');
  await run('go', ['build', '-o', bin, './cmd/signet'], { cwd: repoRoot, timeout: 240_000 });
  return bin;
}

/** Finds a free TCP port on 127.0.0.1 by listening on port 0 and closing again. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/**
 * Starts `signet serve` with a fresh data directory and waits until GET /ready answers 200.
 * Returns { issuer, bin, dataDir, cli(args), createClient(name, extraArgs), logs(), stop() }.
 */
export async function startSignet({ readyTimeoutMs = 30_000 } = {}) {
  const work = await mkdtemp(path.join(tmpdir(), 'signet-node-'));
  const dataDir = path.join(work, 'data');
  let child;
  let output = '';
  const logs = () => output;

  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const ac = new AbortController();
      const killed = await Promise.race([
        exited.then(() => false),
        delay(10_000, true, { signal: ac.signal }).catch(() => false),
      ]);
      ac.abort();
      if (killed) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    await rm(work, { recursive: true, force: true, maxRetries: 3 });
  };

  try {
    const bin = await buildSignet(work);
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;

    child = spawn(bin, ['serve', '--data-dir', dataDir, '--addr', `127.0.0.1:${port}`, '--issuer', issuer], {
      cwd: work,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const capture = (chunk) => {
      const s = chunk.toString();
      output += s;
      if (process.env.SIGNET_TEST_LOG === '1') process.stderr.write(s);
    };
    child.stdout.on('data', capture);
    child.stderr.on('data', capture);
    const exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve(`signet serve exited early (code ${code}, signal ${signal})`));
      child.once('error', (err) => resolve(`signet serve could not start: ${err.message}`));
    });

    // Readiness: poll GET /ready until it answers 200, the process dies, or the deadline passes.
    const deadline = Date.now() + readyTimeoutMs;
    let last = 'no answer yet';
    let early;
    exited.then((why) => { early = why; });
    for (;;) {
      if (early) throw new Error(`${early}\n--- server output ---\n${output}`);
      if (Date.now() > deadline) {
        throw new Error(`${issuer}/ready did not answer 200 within ${readyTimeoutMs} ms (last: ${last})\n--- server output ---\n${output}`);
      }
      try {
        const res = await fetch(`${issuer}/ready`, { signal: AbortSignal.timeout(2_000) });
        last = `status ${res.status}: ${(await res.text()).slice(0, 200)}`;
        if (res.status === 200) break;
      } catch (err) {
        last = err.cause?.code ?? err.message;
      }
      await delay(100);
    }

    /** Runs the CLI against the server's data directory (global flags after the subcommand). */
    const cli = (args) => run(bin, [...args, '--data-dir', dataDir]);

    /** `signet client create --name <name> [extra] --json`, parsed; asserts client_id and client_secret. */
    const createClient = async (name, extra = []) => {
      const out = await cli(['client', 'create', '--name', name, ...extra, '--json']);
      let c;
      try {
        c = JSON.parse(out);
      } catch (err) {
        throw new Error(`client create --json did not print JSON: ${err.message}\n${out}`);
      }
      if (typeof c.client_id !== 'string' || !c.client_id || typeof c.client_secret !== 'string' || !c.client_secret) {
        throw new Error(`client create --json lacks client_id/client_secret: ${out}`);
      }
      return c;
    };

    return { issuer, bin, dataDir, cli, createClient, logs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** HTTP Basic value per RFC 6749 §2.3.1: base64(urlencode(id) ":" urlencode(secret)). */
export function basic(id, secret) {
  return 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64');
}

/** POSTs a form (URLSearchParams) like a TypeScript backend with plain fetch; returns status, headers, text, json. */
export async function postForm(url, params, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { accept: 'application/json', ...headers },
    body: new URLSearchParams(params),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Decodes one base64url JSON segment of a compact JWS. */
export function decodeSegment(seg) {
  return JSON.parse(Buffer.from(seg, 'base64url').toString('utf8'));
}
