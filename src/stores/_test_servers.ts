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

import { Buffer } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import { after, test } from "node:test";
import assert from "node:assert/strict";

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

/**
 * A tiny HTTP server on a free loopback port that answers every request with `handler`, to inject faults
 * Webdis itself never makes (or makes only by chance). `close()` ends its connections too.
 */
export async function faultServer(
  handler: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Runs one command on a Redis server over a short-lived connection; resolves to the RESP reply's first line,
 * or rejects after `timeoutMs` (default 1000).
 */
export function redisCommand(
  server: { host: string; port: number },
  command: string,
  timeoutMs?: number,
): Promise<string> {
  return inlineCommand(server.host, server.port, command, timeoutMs);
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
 * fields and values (a user's index: its members and scores), read with
 * node-redis behind the store's back.
 */
export function dumpRedis(server: { url: string }, keyPrefix: string): () => Promise<string> {
  return async () => {
    const { createClient } = await import("redis");
    const client = await createClient({ url: server.url }).connect();
    try {
      const lines: string[] = [];
      for (const key of await client.keys(`${keyPrefix}*`)) lines.push(key, await dumpValue(client, key));
      return lines.join("\n");
    } finally {
      client.destroy();
    }
  };
}

/** Sends one inline command over a fresh connection and resolves to its reply as text (a bulk string's content). */
export function redisText(
  server: { host: string; port: number },
  command: string,
  timeoutMs = 2000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error(`timeout: ${command}`)), timeoutMs);
    const done = (value: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf("\r\n");
      if (end < 0) return;
      const head = buffer.subarray(0, end).toString("latin1");
      if (!head.startsWith("$")) return done(head);
      const length = Number(head.slice(1));
      if (length < 0) return done("");
      if (buffer.length >= end + 2 + length) {
        done(buffer.subarray(end + 2, end + 2 + length).toString("utf8"));
      }
    });
    socket.connect(server.port, server.host, () => socket.write(`${command}\r\n`));
  });
}

/** One line of `CLUSTER NODES`. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  flags: string[];
  /** The master's id, for a replica. */
  masterId?: string;
  /** Slot ranges, e.g. `["0-5460"]`, for a master. */
  slots: string[];
}

/** Parses the answer of `CLUSTER NODES`. */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text.trim().split("\n").filter((line) => line !== "").map((line) => {
    const [id, address, flags, master, , , , , ...slots] = line.trim().split(" ");
    return {
      id,
      port: Number(/:(\d+)@/.exec(address)?.[1]),
      flags: flags.split(","),
      masterId: master === "-" ? undefined : master,
      slots,
    };
  });
}

/** A Redis Cluster this helper started: its nodes' processes on free loopback ports. */
export interface TestCluster {
  /** Every node, masters and replicas as created. */
  nodes: TestServer[];
  /** `{ url }` of every node, for `rootNodes`. */
  rootNodes: Array<{ url: string }>;
  /** The node listening on `port`. */
  node(port: number): TestServer;
  /** `CLUSTER NODES` as a node that is up sees it. */
  topology(): Promise<ClusterNodeInfo[]>;
  /** Stops every node. Idempotent. */
  stop(): Promise<void>;
}

/** Cluster settings every test node runs with. */
const CLUSTER_ARGS = [
  "--cluster-enabled",
  "yes",
  // A master is taken for failed after 1 s without an answer, and its replica is elected about 1 s later.
  "--cluster-node-timeout",
  "1000",
  // Replicas sync at once (the default waits 5 s for more replicas to share one transfer).
  "--repl-diskless-sync-delay",
  "0",
];

async function spawnClusterNode(args: string[]): Promise<TestServer> {
  return await withPortRetries(async () =>
    spawnRedis(await freePort(), [...CLUSTER_ARGS, "--cluster-port", String(await freePort()), ...args])
  );
}

function runRedisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("redis-cli", args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    child.stderr!.on("data", (chunk) => (output += chunk));
    child.once("error", reject);
    child.once(
      "close",
      (code) =>
        code === 0
          ? resolve(output)
          : reject(new Error(`redis-cli ${args.join(" ")} failed: ${output.slice(-2000)}`)),
    );
  });
}

/** Polls `probe` every 25 ms until it answers true, for at most `ms`. */
export async function waitFor(what: string, probe: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Whether every node that is up is in state ok and every replica's link to its master is up. */
export async function clusterSettled(cluster: TestCluster, alive = cluster.nodes): Promise<boolean> {
  for (const node of alive) {
    if (!(await redisText(node, "CLUSTER INFO")).includes("cluster_state:ok")) return false;
    const replication = await redisText(node, "INFO replication");
    if (replication.includes("role:slave") && !replication.includes("master_link_status:up")) return false;
  }
  return true;
}

/**
 * Starts a Redis Cluster on free loopback ports: `masters` masters (3 or
 * more), `replicas` replicas of each, and `spareReplicas` more replicas that
 * `redis-cli --cluster create` gives to some masters (so Redis can migrate
 * one to a master left without replicas after a failover). Waits until every
 * node agrees the cluster is ok and every replica is in sync. `args` go to
 * every node (e.g. `--min-replicas-to-write`).
 */
export async function startCluster(
  options: { masters?: number; replicas?: number; spareReplicas?: number; args?: string[] } = {},
): Promise<TestCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 0;
  const count = masters * (1 + replicas) + (options.spareReplicas ?? 0);
  const nodes: TestServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    for (
      const started of await Promise.allSettled(
        Array.from({ length: count }, () => spawnClusterNode(options.args ?? [])),
      )
    ) {
      if (started.status === "fulfilled") nodes.push(started.value);
      else throw started.reason;
    }
    await runRedisCli([
      "--cluster",
      "create",
      ...nodes.map((node) => `${node.host}:${node.port}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]);
    const cluster: TestCluster = {
      nodes,
      rootNodes: nodes.map((node) => ({ url: node.url })),
      node(port) {
        const found = nodes.find((node) => node.port === port);
        if (found === undefined) throw new Error(`no cluster node on port ${port}`);
        return found;
      },
      async topology() {
        for (const node of nodes) {
          try {
            return parseClusterNodes(await redisText(node, "CLUSTER NODES"));
          } catch {
            // that node is down: ask the next
          }
        }
        throw new Error("no cluster node answers");
      },
      stop,
    };
    await waitFor("the cluster to settle", () => clusterSettled(cluster));
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A cluster for one test file, or the reason there is none. */
export type TestClusterResult = { cluster: TestCluster; unavailable?: undefined } | { unavailable: string };

/**
 * Starts the Redis Cluster a test file needs (see {@linkcode startCluster}),
 * stopped when the tests end; or says why it cannot (no `redis-server` or
 * `redis-cli`: pass the reason to {@linkcode reportUnavailable}, which fails
 * under `CI=true`).
 */
export async function testCluster(
  options: Parameters<typeof startCluster>[0] = {},
): Promise<TestClusterResult> {
  const missing = ["redis-server", "redis-cli"].filter((binary) => !available(binary));
  if (missing.length > 0) return { unavailable: `${missing.join(" and ")} not found: ${INSTALL_HINT}` };
  const cluster = await startCluster(options);
  // Node runs this after the file's tests; Deno skips top-level hooks and relies on "unload".
  after(() => cluster.stop());
  return { cluster };
}

/** A node-redis cluster client on `cluster`, for the tests' own commands; `destroy()` it after use. */
export async function adminCluster(cluster: { rootNodes: Array<{ url: string }> }) {
  const { createCluster } = await import("redis");
  const client = createCluster({ rootNodes: cluster.rootNodes });
  client.on("error", () => {});
  return await client.connect();
}

/** Every key under `pattern` on every master of a cluster, with the master's node client. */
async function clusterKeys(cluster: { rootNodes: Array<{ url: string }> }, pattern: string) {
  const admin = await adminCluster(cluster);
  const keys: Array<{ key: string; node: DumpClient }> = [];
  for (const master of admin.masters) {
    const node = await admin.nodeClient(master);
    for (const key of await node.keys(pattern)) keys.push({ key, node });
  }
  return { admin, keys };
}

/** What a node client the dumps use can do. */
interface DumpClient {
  type(key: string): Promise<string>;
  hGetAll(key: string): Promise<Record<string, string>>;
  sendCommand(args: string[]): Promise<unknown>;
}

/** One key's value as JSON text: a session hash's fields, or a user index's members and scores. */
async function dumpValue(client: DumpClient, key: string): Promise<string> {
  const type = await client.type(key);
  if (type === "zset") {
    return JSON.stringify(await client.sendCommand(["ZRANGE", key, "0", "-1", "WITHSCORES"]));
  }
  return JSON.stringify(await client.hGetAll(key));
}

/** A `dump` for the store suite on a cluster: every key under `keyPrefix` with its hash fields, from every master. */
export function dumpCluster(
  cluster: { rootNodes: Array<{ url: string }> },
  keyPrefix: string,
): () => Promise<string> {
  return async () => {
    const { admin, keys } = await clusterKeys(cluster, `${keyPrefix}*`);
    try {
      const lines: string[] = [];
      for (const { key, node } of keys) lines.push(key, await dumpValue(node, key));
      return lines.join("\n");
    } finally {
      admin.destroy();
    }
  };
}

/**
 * How many sessions under `keyPrefix` have not expired by `now`, on every
 * master of a cluster (records Redis still keeps past the suite's moved clock
 * do not count).
 */
export async function countClusterSessions(
  cluster: { rootNodes: Array<{ url: string }> },
  keyPrefix: string,
  now: number,
): Promise<number> {
  const { admin, keys } = await clusterKeys(cluster, `${keyPrefix}*`);
  try {
    let live = 0;
    for (const { key, node } of keys) {
      if (await node.type(key) !== "hash") continue; // a user's index
      const meta = (await node.hGetAll(key)).meta;
      if (meta === undefined) continue;
      const { expiresAt, absoluteExpiresAt } = JSON.parse(meta);
      if (expiresAt > now && absoluteExpiresAt > now) live++;
    }
    return live;
  } finally {
    admin.destroy();
  }
}

/** A `plantCorrupt` for the store suite on a cluster: a hash whose `meta` is not JSON under the Redis key `keyOf(key)`. */
export function plantCorruptClusterHash(
  cluster: { rootNodes: Array<{ url: string }> },
  keyOf: (key: string) => string,
): (store: unknown, key: string) => Promise<void> {
  return async (_store, key) => {
    const admin = await adminCluster(cluster);
    try {
      await admin.hSet(keyOf(key), "meta", "{truncated");
      await admin.pExpireAt(keyOf(key), Date.now() + 60_000);
    } finally {
      admin.destroy();
    }
  };
}

/** Asserts that `promise` rejects with an `Error` within `ms` and resolves to the error. */
export async function rejectsWithin(promise: Promise<unknown>, ms: number): Promise<Error> {
  const started = Date.now();
  const error = await promise.then(
    () => assert.fail("expected a rejection"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof Error, "rejects with an Error");
  assert.ok(Date.now() - started < ms, `rejected after ${Date.now() - started} ms, limit ${ms} ms`);
  return error;
}
