/**
 * The store both app instances of the multi-instance suite build, from the
 * JSON in the `MULTI_INSTANCE_STORE` environment variable. One case per store
 * kind: a new kind (Redis Cluster, ...) adds a case here and a variant in
 * tests/multi_instance_node_test.ts.
 *
 * @module
 */

import process from "node:process";
import type { Store } from "../../src/store.ts";
import { PostgresStore } from "../../src/stores/postgres.ts";
import { RedisStore } from "../../src/stores/redis.ts";

/** What both instances are told about the shared store. */
export type StoreConfig =
  | { kind: "postgres"; url: string; tableName: string }
  | { kind: "redis-cluster"; rootNodes: Array<{ url: string }>; keyPrefix: string; waitForReplicas: number };

/** The environment variable carrying the {@linkcode StoreConfig} as JSON. */
export const STORE_CONFIG_VARIABLE = "MULTI_INSTANCE_STORE";

/** Builds (and connects) the store the environment describes. */
export async function storeFromEnvironment(): Promise<Store> {
  const json = process.env[STORE_CONFIG_VARIABLE];
  if (!json) throw new Error(`${STORE_CONFIG_VARIABLE} is not set`);
  const config = JSON.parse(json) as StoreConfig;
  switch (config.kind) {
    case "postgres": {
      const store = new PostgresStore({ url: config.url, tableName: config.tableName });
      await store.init();
      return store;
    }
    case "redis-cluster": {
      const store = new RedisStore({
        cluster: { rootNodes: config.rootNodes },
        keyPrefix: config.keyPrefix,
        waitForReplicas: config.waitForReplicas,
      });
      await store.init();
      return store;
    }
    default:
      throw new Error(`unknown store kind ${(config as { kind: string }).kind}`);
  }
}
