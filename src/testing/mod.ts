/**
 * Conformance suites and fault injection for session stores and framework
 * adapters, public so that third-party stores and adapters can prove they
 * behave like the built-in ones.
 *
 * @example Checking a store
 * ```ts ignore
 * import { test } from "node:test";
 * import { storeConformanceSuite } from "./mod.ts";
 * import { MemoryStore } from "../stores/memory.ts";
 *
 * storeConformanceSuite(test, { name: "MemoryStore", createStore: () => new MemoryStore() });
 * ```
 *
 * @module
 */

export { createWrite, HOSTILE_CHARACTERS, storeConformanceSuite, updateWrite } from "./store_suite.ts";
export type { StoreCapability, StoreSuiteOptions, TestFunction, WriteTiming } from "./store_suite.ts";
export { cookieStoreSuite } from "./cookie_suite.ts";
export { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "./adapter_suite.ts";
export type {
  AdapterSuiteOptions,
  SuiteApp,
  SuiteFrameworkOptions,
  SuiteRouteResult,
  SuiteStore,
} from "./adapter_suite.ts";
export { FaultyStore } from "./faulty_store.ts";
export { asTls, serveNodeHandler } from "./node_server.ts";
export type { StoreMethod } from "./faulty_store.ts";
