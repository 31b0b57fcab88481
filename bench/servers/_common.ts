// Shared by every benchmark server: configuration from the environment, the fixed secrets, the response
// bodies, and the READY/exit protocol the orchestrator (bench/run.mjs) relies on. Runs under Node and Deno.
import process from "node:process";

/** Fixed so runs are comparable; 48 bytes, above the library's 32-byte minimum. */
export const SECRET = "bench-secret-0123456789abcdef-0123456789abcdef-xx";
/** @hono/session wants 32 bytes as 64 hex digits; same entropy budget as SECRET. */
export const HEX_SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
export const COOKIE_NAME = "sid";
/** Matches the library's default idle timeout, so every contender slides the same window. */
export const IDLE_SECONDS = 86_400;
export const ABSOLUTE_SECONDS = 604_800;

export interface BenchConfig {
  contender: string;
  port: number;
  redisPort: number | undefined;
  /** The harness's PostgreSQL and the run's schema in it (bench/lib/postgres.mjs). */
  postgres: { url: string; schema: string } | undefined;
}

export function readConfig(): BenchConfig {
  const contender = process.env.BENCH_CONTENDER ?? "";
  const port = Number(process.env.BENCH_PORT ?? "0");
  const redis = process.env.BENCH_REDIS_PORT;
  if (!contender) throw new Error("BENCH_CONTENDER is not set");
  const pgUrl = process.env.BENCH_POSTGRES_URL;
  const pgSchema = process.env.BENCH_POSTGRES_SCHEMA;
  return {
    contender,
    port,
    redisPort: redis ? Number(redis) : undefined,
    postgres: pgUrl && pgSchema ? { url: pgUrl, schema: pgSchema } : undefined,
  };
}

export function requirePostgres(config: BenchConfig): { url: string; schema: string } {
  if (config.postgres === undefined) {
    throw new Error(`${config.contender} needs BENCH_POSTGRES_URL and BENCH_POSTGRES_SCHEMA`);
  }
  return config.postgres;
}

export function requireRedis(config: BenchConfig): number {
  if (config.redisPort === undefined) throw new Error(`${config.contender} needs BENCH_REDIS_PORT`);
  return config.redisPort;
}

/**
 * Every contender answers with the same few bytes, so response size never explains a difference.
 * Baselines answer as if the counter were 0 (read) or 1 (new, write).
 */
export function body(n: number): string {
  return `n=${n}`;
}

export const BARE_BODY = "ok";

/**
 * A `Set-Cookie` value with the shape and length of ours for a new session (a 76-character signed id, a
 * 24-hour Max-Age, Path, HttpOnly, SameSite=Lax), different for every `n`: what the cookie floors send.
 */
export function cookieLike(n: number): string {
  const id = String(n).padStart(32, "0");
  return `${COOKIE_NAME}=${id}.${"s".repeat(43)}; Max-Age=${IDLE_SECONDS}; Path=/; HttpOnly; SameSite=Lax`;
}

/** The orchestrator waits for this line on stdout before loading the server. */
export function announce(port: number): void {
  console.log(`READY ${port}`);
}

/**
 * Exits cleanly on SIGTERM/SIGINT, after `cleanup`: a normal exit is what makes `node --cpu-prof`
 * write its profile, and it lets Redis clients close their sockets.
 */
export function exitOnSignal(cleanup: () => Promise<unknown> | unknown = () => {}): void {
  let exiting = false;
  const stop = async () => {
    if (exiting) return;
    exiting = true;
    try {
      await cleanup();
    } catch {
      // Exiting anyway: a failed close must not keep the benchmark waiting.
    }
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/**
 * Loads a library module by path at run time. A computed specifier keeps type checkers from resolving
 * it, so a module that another engineer has not written yet (the Express adapter) does not break
 * `deno check bench`.
 */
// deno-lint-ignore no-explicit-any
export async function importOptional(relativeToBench: string): Promise<any | undefined> {
  // Under Node the harness runs a transpiled copy of the tree (bench/lib/build.mjs), where it is .js.
  const path = import.meta.url.endsWith(".js") ? relativeToBench.replace(/\.ts$/, ".js") : relativeToBench;
  const url = new URL(`../../${path}`, import.meta.url);
  try {
    return await import(url.href);
  } catch (error) {
    if (isMissingModule(error)) return undefined;
    throw error;
  }
}

function isMissingModule(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  const message = String((error as Error)?.message ?? error);
  return code === "ERR_MODULE_NOT_FOUND" || /Module not found|Cannot find module/i.test(message);
}
