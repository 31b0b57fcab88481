// The PostgreSQL the Postgres contenders share: the machine's own server (BENCH_POSTGRES_URL, default
// postgres://postgres@127.0.0.1:5432/test, trust auth), in a schema of this run's own that is dropped at
// the end. Unlike redis-server it is not started here: a database server belongs to the machine.
import postgres from "postgres";

export const DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test";

/** Connects and creates the run's schema; answers `{ unavailable }` when the server cannot be reached. */
export async function preparePostgres(url = process.env.BENCH_POSTGRES_URL ?? DEFAULT_POSTGRES_URL) {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  let version;
  try {
    [{ version }] = await sql`SELECT current_setting('server_version') AS version`;
  } catch (error) {
    await sql.end({ timeout: 0 });
    return { unavailable: `no PostgreSQL at ${new URL(url).host}: ${error.message}` };
  }
  const schema = `bench_${Date.now().toString(36)}_${process.pid}`;
  await sql.unsafe(`CREATE SCHEMA "${schema}"`);
  return {
    url,
    schema,
    version: `PostgreSQL ${version}`,
    async stop() {
      try {
        await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  };
}

/** Statements the server's PostgreSQL client has sent so far (its own count, from /__pg_statements). */
export async function statementCount(port) {
  const response = await fetch(`http://127.0.0.1:${port}/__pg_statements`);
  const text = await response.text();
  const count = Number(text);
  if (response.status !== 200 || !Number.isInteger(count)) {
    throw new Error(`/__pg_statements answered ${response.status} "${text.slice(0, 100)}"`);
  }
  return count;
}
