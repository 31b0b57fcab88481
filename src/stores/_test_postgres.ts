/**
 * Test helper: the PostgreSQL this machine runs (127.0.0.1:5432, trust auth,
 * database `test`), or `TEST_POSTGRES_URL`, with a schema of its own per test
 * run (random suffix) that the caller drops at the end; and a loopback TCP
 * proxy in front of it that counts round trips and can cut or freeze the
 * connection. Runs under Node and Deno (node:net only, plus postgres.js).
 *
 * @module
 */

import { createServer, type Server, Socket } from "node:net";
import process from "node:process";
import postgres from "postgres";

/** Where the tests look for PostgreSQL unless `TEST_POSTGRES_URL` says otherwise. */
export const DEFAULT_TEST_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test";

/** A postgres.js client for the tests' own statements (setup, dumps, checks). */
export type AdminSql = ReturnType<typeof postgres>;

/** One test run's corner of the database. */
export interface TestDatabase {
  /** The connection URL. */
  url: string;
  /** Host and port of the server, for the proxy. */
  host: string;
  port: number;
  /** The run's own schema (`sessions_test_<time>_<random>`), created empty. */
  schema: string;
  /** A client for the tests' own statements. */
  sql: AdminSql;
  /** Drops the schema with everything in it and closes `sql`. Idempotent. */
  drop(): Promise<void>;
}

/** A random schema name whose middle part tells when it was made. */
function schemaName(): string {
  const random = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `sessions_test_${Date.now().toString(36)}_${random}`;
}

/**
 * Connects to the test database and creates a fresh schema, or answers why it
 * cannot. Schemas of earlier runs older than an hour (a run killed before its
 * cleanup) are dropped on the way.
 */
export async function testDatabase(): Promise<TestDatabase | { unavailable: string }> {
  const url = process.env.TEST_POSTGRES_URL ?? DEFAULT_TEST_POSTGRES_URL;
  const parsed = new URL(url);
  const sql = postgres(url, { max: 2, connect_timeout: 3, onnotice: () => {}, idle_timeout: 5 });
  try {
    await sql`SELECT 1`;
  } catch (error) {
    await sql.end({ timeout: 0 });
    return {
      unavailable: `PostgreSQL at ${parsed.host} (${
        (error as Error).message
      }): start it (${"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"}) or set TEST_POSTGRES_URL`,
    };
  }
  const stale = await sql<{ name: string }[]>`
    SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE 'sessions\\_test\\_%'`;
  for (const { name } of stale) {
    const made = parseInt(name.split("_")[2] ?? "", 36);
    if (Number.isFinite(made) && Date.now() - made > 3_600_000) {
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${name}" CASCADE`).catch(() => {});
    }
  }
  const schema = schemaName();
  await sql.unsafe(`CREATE SCHEMA "${schema}"`);
  let dropped = false;
  return {
    url,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    schema,
    sql,
    async drop() {
      if (dropped) return;
      dropped = true;
      try {
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  };
}

/**
 * A TCP proxy on a free loopback port in front of PostgreSQL. It counts round
 * trips: a *flight* is data the client sends after the server last spoke (or
 * first) on one connection, so a pipelined batch counts once and a statement
 * that waits for a server answer before its next message counts twice.
 */
export class CountingProxy {
  readonly port: number;
  #server: Server;
  #pairs = new Set<{ client: Socket; upstream: Socket }>();
  #flights = 0;
  #mode: "pass" | "down" | "hang" = "pass";
  #held = new Set<Socket>();

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  /** Starts a proxy to `host:port`. */
  static start(host: string, port: number): Promise<CountingProxy> {
    let proxy: CountingProxy;
    const server = createServer((client) => proxy.#accept(client, host, port));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        proxy = new CountingProxy(server, typeof address === "object" && address ? address.port : 0);
        resolve(proxy);
      });
    });
  }

  #accept(client: Socket, host: string, port: number): void {
    client.on("error", () => {});
    if (this.#mode === "hang") return void this.#held.add(client);
    const upstream = new Socket();
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    const pair = { client, upstream };
    this.#pairs.add(pair);
    let serverSpoke = true;
    client.on("data", (chunk) => {
      if (this.#mode === "hang") return;
      if (serverSpoke) this.#flights++;
      serverSpoke = false;
      upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (this.#mode === "hang") return;
      serverSpoke = true;
      client.write(chunk);
    });
    const close = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", close);
    upstream.on("close", close);
    upstream.connect(port, host);
  }

  /** Round trips since the last call (and resets the count). */
  takeFlights(): number {
    const flights = this.#flights;
    this.#flights = 0;
    return flights;
  }

  /** Drops every connection and stops listening, so new ones are refused: the server looks down. */
  cut(): Promise<void> {
    if (this.#mode === "down") return Promise.resolve();
    this.#mode = "down";
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Keeps connections open but passes nothing on, either way: the server looks hung. */
  hang(): void {
    this.#mode = "hang";
  }

  /**
   * Passes traffic again, listening on the same port after {@linkcode cut}.
   * Connections held or frozen before are dropped: their streams lost bytes.
   */
  async restore(): Promise<void> {
    for (const socket of this.#held) socket.destroy();
    this.#held.clear();
    if (this.#mode === "hang") {
      for (const { client, upstream } of this.#pairs) {
        client.destroy();
        upstream.destroy();
      }
      this.#pairs.clear();
    }
    if (this.#mode === "down") {
      await new Promise<void>((resolve, reject) => {
        this.#server.once("error", reject);
        this.#server.listen(this.port, "127.0.0.1", () => resolve());
      });
    }
    this.#mode = "pass";
  }

  /** Stops the proxy and drops every connection. */
  async close(): Promise<void> {
    for (const socket of this.#held) socket.destroy();
    this.#held.clear();
    await this.cut();
  }
}
