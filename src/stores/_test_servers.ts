/**
 * Test helper: real `redis-server` and `webdis` processes on free loopback
 * ports, one set per test file, stopped by pid when the tests end. Runs under
 * Node and Deno (node:child_process, node:net only).
 *
 * `REDIS_URL` / `WEBDIS_URL` point the tests at existing servers instead.
 * Without the binaries, tests are skipped with a hint, or fail when `CI=true`.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import { after, test } from "node:test";

/** A server process this helper started, or an existing one from the environment. */
export interface TestServer {
  /** Host to connect to. */
  host: string;
  /** TCP port. */
  port: number;
  /** `redis://host:port` or `http://host:port/`. */
  url: string;
  /** Process id, when this helper started the process. */
  pid?: number;
  /** Stops the process (no-op for an existing server). Idempotent. */
  stop(): Promise<void>;
}

const INSTALL_HINT = "apt-get install redis-server webdis";
const started = new Map<number, { child: ChildProcess; dir: string }>();
let cleanupRegistered = false;

/** Kills what is still running when the test process ends: Node fires "exit", Deno fires "unload". */
function registerCleanup(): void {
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  const cleanup = () => {
    for (const [pid, { dir }] of started) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    }
    started.clear();
  };
  process.on("exit", cleanup);
  if (!("Deno" in globalThis)) {
    // Node skips "exit" handlers when a signal ends the process (a timed-out or interrupted run).
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        cleanup();
        process.exit(1);
      });
    }
  }
  (globalThis as { addEventListener?: (type: string, listener: () => void) => void }).addEventListener?.(
    "unload",
    cleanup,
  );
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Whether `binary` is an executable on the PATH. Looked up rather than run:
 * `webdis --version` takes "--version" for a config file and starts serving.
 */
function available(binary: string): boolean {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends one inline command over a fresh connection and resolves to the first reply line. */
function inlineCommand(host: string, port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let buffer = "";
    const timer = setTimeout(() => socket.destroy(new Error("timeout")), timeoutMs);
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("data", (chunk) => {
      buffer += chunk.toString("latin1");
      const end = buffer.indexOf("\r\n");
      if (end >= 0) {
        clearTimeout(timer);
        socket.destroy();
        resolve(buffer.slice(0, end));
      }
    });
    socket.connect(port, host, () => socket.write(`${command}\r\n`));
  });
}

/** Sends one HTTP request over a raw socket (fetch keeps connections alive, which Deno's test sanitizers dislike). */
function httpGet(host: string, port: number, path: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let buffer = "";
    const timer = setTimeout(() => socket.destroy(new Error("timeout")), timeoutMs);
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("data", (chunk) => (buffer += chunk.toString("latin1")));
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(buffer);
    });
    socket.connect(port, host, () => socket.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
  });
}

async function waitUntil(what: string, child: ChildProcess, logFile: string, probe: () => Promise<boolean>) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    if (await probe().catch(() => false)) return;
    await sleep(25);
  }
  let log = "";
  try {
    log = readFileSync(logFile, "utf8").split("\n").slice(-10).join("\n");
  } catch {
    // no log written
  }
  throw new Error(`${what} did not start: ${log || "no log output"}`);
}

function track(child: ChildProcess, dir: string): number {
  registerCleanup();
  // Unreferenced, so a test process whose tests are done can exit; cleanup then kills the server.
  child.unref();
  started.set(child.pid!, { child, dir });
  return child.pid!;
}

function stopper(pid: number): () => Promise<void> {
  return async () => {
    const entry = started.get(pid);
    if (entry === undefined) return;
    started.delete(pid);
    const { child, dir } = entry;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

/**
 * Starts a `redis-server` on a free loopback port (or on `port`), without
 * persistence, with extra command-line `args` (e.g. `--requirepass`), and
 * waits until it answers.
 */
export function startRedis(options: { port?: number; args?: string[] } = {}): Promise<TestServer> {
  return options.port === undefined
    ? withPortRetries(async () => spawnRedis(await freePort(), options.args))
    : spawnRedis(options.port, options.args);
}

/**
 * Another process may take a free port between the check and the bind
 * (test files of other modules run at the same time): try a few ports.
 */
async function withPortRetries(start: () => Promise<TestServer>): Promise<TestServer> {
  for (let attempt = 1;; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

async function spawnRedis(listenPort: number, args: string[] = []): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "sessions-redis-"));
  const logFile = join(dir, "redis.log");
  const child = spawn("redis-server", [
    "--port",
    String(listenPort),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    "--logfile",
    logFile,
    ...args,
  ], { stdio: "ignore" });
  child.once("error", () => {});
  const pid = track(child, dir);
  const stop = stopper(pid);
  try {
    await waitUntil(
      "redis-server",
      child,
      logFile,
      // Our own log saying "ready" proves the answer comes from this process, not from another one on the
      // port; with --requirepass the answer is -NOAUTH, and any RESP reply will do.
      async () =>
        readFileSync(logFile, "utf8").includes("Ready to accept connections") &&
        /^[+-]/.test(await inlineCommand("127.0.0.1", listenPort, "PING")),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { host: "127.0.0.1", port: listenPort, url: `redis://127.0.0.1:${listenPort}`, pid, stop };
}

/**
 * Starts `webdis` on a free loopback port in front of the given Redis, with
 * extra config keys (e.g. `acl`), and waits until it answers.
 */
export function startWebdis(
  redis: { host: string; port: number },
  extraConfig: Record<string, unknown> = {},
): Promise<TestServer> {
  return withPortRetries(async () => spawnWebdis(redis, extraConfig, await freePort()));
}

async function spawnWebdis(
  redis: { host: string; port: number },
  extraConfig: Record<string, unknown>,
  port: number,
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "sessions-webdis-"));
  const logFile = join(dir, "webdis.log");
  const configFile = join(dir, "webdis.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      redis_host: redis.host,
      redis_port: redis.port,
      http_host: "127.0.0.1",
      http_port: port,
      daemonize: false,
      logfile: logFile,
      ...extraConfig,
    }),
  );
  const child = spawn("webdis", [configFile], { stdio: "ignore" });
  child.once("error", () => {});
  const pid = track(child, dir);
  const stop = stopper(pid);
  try {
    // Any HTTP answer will do: with a restrictive ACL or Redis down, PING may be refused.
    await waitUntil(
      "webdis",
      child,
      logFile,
      async () => (await httpGet("127.0.0.1", port, "/PING")).startsWith("HTTP/"),
    );
    // Webdis logs nothing when it is up, and exits at once when its port is taken: a process that survives
    // its start-up is the one answering, not another server that held the port.
    await sleep(150);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`webdis did not start: ${readFileSync(logFile, "utf8").trim() || "it exited"}`);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { host: "127.0.0.1", port, url: `http://127.0.0.1:${port}/`, pid, stop };
}

function fromUrl(value: string, kind: "redis" | "webdis"): TestServer {
  const url = new URL(value);
  const port = Number(url.port) || (kind === "redis" ? 6379 : url.protocol === "https:" ? 443 : 80);
  return { host: url.hostname, port, url: value, stop: () => Promise.resolve() };
}

/** Servers for one test file, or the reason there are none. */
export type TestServers =
  | { unavailable: string; redis?: undefined; webdis?: undefined; canSpawn: false }
  | { unavailable?: undefined; redis: TestServer; webdis?: TestServer; canSpawn: boolean };

/**
 * Starts (or finds in `REDIS_URL` / `WEBDIS_URL`) the servers a test file needs.
 *
 * @param options `webdis: true` to start a webdis in front of the Redis too.
 */
export async function testServers(options: { webdis?: boolean } = {}): Promise<TestServers> {
  const env = process.env;
  const binaries = ["redis-server", ...(options.webdis ? ["webdis"] : [])];
  const missing: string[] = [];
  for (const binary of binaries) if (!available(binary)) missing.push(binary);
  const canSpawn = missing.length === 0;
  const redisFromEnv = env.REDIS_URL ? fromUrl(env.REDIS_URL, "redis") : undefined;
  const webdisFromEnv = options.webdis && env.WEBDIS_URL ? fromUrl(env.WEBDIS_URL, "webdis") : undefined;
  if (webdisFromEnv && !redisFromEnv) {
    // The tests watch Redis directly (MONITOR, PTTL): they need the server behind that Webdis.
    return {
      unavailable: "WEBDIS_URL is set without REDIS_URL: set REDIS_URL to the Redis behind it",
      canSpawn: false,
    };
  }
  if (redisFromEnv && (!options.webdis || webdisFromEnv)) {
    return { redis: redisFromEnv, webdis: webdisFromEnv, canSpawn };
  }
  if (!canSpawn) {
    return {
      unavailable: `${missing.join(" and ")} not found: ${INSTALL_HINT}, or set REDIS_URL${
        options.webdis ? " and WEBDIS_URL" : ""
      }`,
      canSpawn: false,
    };
  }
  const redis = redisFromEnv ?? await startRedis();
  const webdis = options.webdis ? webdisFromEnv ?? await startWebdis(redis) : undefined;
  // Node runs this after the file's tests and reaps the processes; Deno skips top-level hooks and relies on "unload".
  after(async () => {
    await webdis?.stop();
    await redis.stop();
  });
  return { redis, webdis, canSpawn };
}

/**
 * Registers the place-holder test when servers are unavailable: skipped with
 * the install hint, or failing when `CI=true`, so CI never passes by skipping.
 */
export function reportUnavailable(name: string, reason: string): void {
  if (process.env.CI === "true") {
    test(`${name}: servers available`, {}, () => {
      throw new Error(`${name} tests need their servers (CI=true forbids skipping): ${reason}`);
    });
  } else {
    test(`${name}: servers available`, { skip: reason }, () => {});
  }
}

/** One command as MONITOR reports it. */
export interface MonitoredCommand {
  /** `"lua"` for commands a script ran, else the client's address. */
  client: string;
  /** Command name and arguments, decoded from MONITOR's escaped form. */
  args: string[];
}

function unescapeMonitorArgument(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char !== "\\") {
      bytes.push(char.charCodeAt(0)); // the text was read as latin1: one character per byte
      continue;
    }
    const next = text[++i];
    const simple: Record<string, number> = { n: 10, r: 13, t: 9, a: 7, b: 8, "\\": 92, '"': 34 };
    if (next === "x") {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(simple[next] ?? next.charCodeAt(0));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

function parseMonitorLine(line: string): MonitoredCommand | undefined {
  const match = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
  if (!match) return undefined;
  const args = [...match[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => unescapeMonitorArgument(m[1]));
  return { client: match[1], args };
}

/**
 * Watches every command a Redis server receives (MONITOR), to count round
 * trips and to prove that nothing else reached the server.
 */
export class RedisMonitor {
  #socket = new Socket();
  #buffer = "";
  #lines: string[] = [];
  #waiters: Array<() => void> = [];
  #server: { host: string; port: number };

  private constructor(server: { host: string; port: number }) {
    this.#server = server;
  }

  /** Connects and starts monitoring. */
  static async open(server: { host: string; port: number }): Promise<RedisMonitor> {
    const monitor = new RedisMonitor(server);
    await new Promise<void>((resolve, reject) => {
      monitor.#socket.once("error", reject);
      monitor.#socket.connect(server.port, server.host, () => resolve());
    });
    monitor.#socket.on("data", (chunk) => {
      monitor.#buffer += chunk.toString("latin1");
      let end;
      while ((end = monitor.#buffer.indexOf("\r\n")) >= 0) {
        monitor.#lines.push(monitor.#buffer.slice(0, end));
        monitor.#buffer = monitor.#buffer.slice(end + 2);
      }
      for (const wake of monitor.#waiters.splice(0)) wake();
    });
    monitor.#socket.write("MONITOR\r\n");
    await monitor.#until((line) => line === "+OK");
    monitor.#lines.length = 0;
    return monitor;
  }

  async #until(found: (line: string) => boolean): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!this.#lines.some(found)) {
      if (Date.now() > deadline) throw new Error("MONITOR did not report the expected command");
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /**
   * The commands received since the last call, in order. An ECHO sent over
   * another connection marks the end: MONITOR reports commands in the order the
   * server ran them, so everything that ran before the marker is included.
   */
  async commands(): Promise<MonitoredCommand[]> {
    const marker = `monitor-marker-${Math.random().toString(36).slice(2)}`;
    await inlineCommand(this.#server.host, this.#server.port, `ECHO ${marker}`);
    await this.#until((line) => line.includes(marker));
    const end = this.#lines.findIndex((line) => line.includes(marker));
    const lines = this.#lines.splice(0, end + 1).slice(0, -1);
    return lines.map(parseMonitorLine).filter((command) => command !== undefined);
  }

  /** Stops monitoring. */
  close(): void {
    this.#socket.destroy();
  }
}

/** Runs one command on a Redis server over a short-lived connection; resolves to the RESP reply's first line. */
export function redisCommand(server: { host: string; port: number }, command: string): Promise<string> {
  return inlineCommand(server.host, server.port, command);
}

/**
 * A `plantCorrupt` for the store suite: writes a session hash whose `meta`
 * field is not JSON, under `keyPrefix + key`, with a native expiry.
 */
export function plantCorruptHash(
  server: { host: string; port: number },
  keyPrefix: string,
): (store: unknown, key: string) => Promise<void> {
  return async (_store, key) => {
    const name = `${keyPrefix}${key}`;
    await redisCommand(server, `HSET ${name} meta {truncated`);
    await redisCommand(server, `PEXPIREAT ${name} ${Date.now() + 60_000}`);
  };
}

/**
 * A `dump` for the store suite: every key under `keyPrefix` with all its hash
 * fields and values, read with node-redis behind the store's back.
 */
export function dumpRedis(server: { url: string }, keyPrefix: string): () => Promise<string> {
  return async () => {
    const { createClient } = await import("redis");
    const client = await createClient({ url: server.url }).connect();
    try {
      const lines: string[] = [];
      for (const key of await client.keys(`${keyPrefix}*`)) {
        lines.push(key, JSON.stringify(await client.hGetAll(key)));
      }
      return lines.join("\n");
    } finally {
      client.destroy();
    }
  };
}
