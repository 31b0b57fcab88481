// Property access on a session, for the habits of express-session (`req.session.views = n`) and koa-session
// (`ctx.session.views = n`): a Proxy over the session in which every name that is not one of the session's
// own members is a session key. Reading one is `get`, assigning is `set` (checked, saved, merged per key),
// `delete` is `delete`, and `Object.keys` lists the keys. The session's members stay what they are, and
// assigning to one is refused with an error that names the method to use instead.

import type { Session } from "./session.ts";

/** An extra member of the proxy, beside the session's own (express-session's `cookie`, koa-session's `maxAge`). */
export interface ExtraMember {
  get(session: Session): unknown;
  /** Absent: the member is read-only. */
  set?(session: Session, value: unknown): void;
}

/**
 * Members of `Session` that are session keys through the Express and Koa proxies: `userId` (the login
 * binding, `Session.userId`) is the key express-session and koa-session apps keep their user under
 * (`req.session.userId = user.id`), so there it stays their key: assigning and deleting it change the key,
 * and reading it answers the key when the session has one, else the user `logIn()` bound.
 */
export const PROXY_DATA_KEYS: readonly string[] = ["userId"];

/** Answers, through the proxy, the session behind it. */
const TARGET: unique symbol = Symbol("session");

/** Every name a `Session` answers itself, up its prototype chain (`Object.prototype` included). */
function memberNames(proto: object | null): Set<PropertyKey> {
  const names = new Set<PropertyKey>();
  for (let p = proto; p !== null; p = Object.getPrototypeOf(p)) {
    for (const name of Reflect.ownKeys(p)) names.add(name);
  }
  return names;
}

function refuse(prop: string, action: string, extra: boolean): TypeError {
  return new TypeError(
    `Cannot ${action} session property "${prop}": it is ${
      extra ? "a property" : "a method or property"
    } of the session itself, not a session key; to keep a value under this name use session.set("${prop}", value) and session.get("${prop}")`,
  );
}

/**
 * A proxy handler for sessions with `extras`. Made once per adapter, shared by
 * all its sessions: no closure is made per request. `dataKeys`: names of the
 * session's own members that the proxy treats as session keys instead.
 */
export function sessionPropertyHandler(
  sessionClass: { prototype: object },
  extras: Readonly<Record<string, ExtraMember>> = {},
  dataKeys: readonly string[] = [],
): ProxyHandler<Session> {
  const members = memberNames(sessionClass.prototype);
  // Names the session has but the apps of these adapters use as keys (express-session's
  // `req.session.userId = user.id`): through the proxy they are keys, as they were there, and read as the
  // session's own member only while no such key is set.
  for (const name of dataKeys) members.delete(name);
  const shared = new Set<PropertyKey>(dataKeys);
  const isMember = (prop: PropertyKey) =>
    typeof prop === "symbol" || members.has(prop) || Object.hasOwn(extras, prop);
  // The session's methods, each made once per handler: called on the proxy, a method runs on the session
  // behind it (found through the TARGET trap), since a proxy cannot be `this` for private fields. Binding
  // per request instead (a bound function, and a map of them per session) allocated on every request that
  // called a method; forwarding gave Express +3.4% req/s on reads and +3.3% on writes in one paired run
  // (bench/results/2026-11-29-express-proxy-methods.md).
  type Method = (this: unknown, ...args: unknown[]) => unknown;
  const forwarders = new Map<Method, Method>();
  const forwarder = (method: Method): Method => {
    let forward = forwarders.get(method);
    if (forward === undefined) {
      forward = function (this: unknown, ...args: unknown[]): unknown {
        const session = typeof this === "object" && this !== null
          ? (this as { [TARGET]?: Session })[TARGET]
          : undefined;
        return Reflect.apply(method, session ?? this, args);
      };
      forwarders.set(method, forward);
    }
    return forward;
  };
  return {
    get(session, prop) {
      if (prop === TARGET) return session;
      if (typeof prop === "string" && Object.hasOwn(extras, prop)) return extras[prop].get(session);
      if (shared.has(prop) && !session.has(prop as string)) return Reflect.get(session, prop, session);
      if (!isMember(prop)) return session.get(prop as string);
      const value = Reflect.get(session, prop, session);
      if (typeof value !== "function" || prop === "constructor") return value;
      return forwarder(value as Method);
    },
    set(session, prop, value) {
      if (typeof prop === "string" && Object.hasOwn(extras, prop)) {
        const extra = extras[prop];
        if (extra.set === undefined) throw refuse(prop, "assign", true);
        extra.set(session, value);
        return true;
      }
      if (isMember(prop)) throw refuse(String(prop), "assign", false);
      session.set(prop as string, value);
      return true;
    },
    deleteProperty(session, prop) {
      if (isMember(prop)) throw refuse(String(prop), "delete", Object.hasOwn(extras, prop));
      session.delete(prop as string);
      return true;
    },
    has(session, prop) {
      return isMember(prop) || session.has(prop as string);
    },
    ownKeys(session) {
      return session.keys();
    },
    getOwnPropertyDescriptor(session, prop) {
      if (isMember(prop) || !session.has(prop as string)) return undefined;
      return { value: session.get(prop as string), writable: true, enumerable: true, configurable: true };
    },
    defineProperty(_session, prop) {
      throw new TypeError(
        `Cannot define session property "${String(prop)}": assign it (session.${
          String(prop)
        } = value) or use session.set`,
      );
    },
  };
}

/**
 * Makes the function that puts a session on a request or context as its `session` property (`req.session`,
 * `ctx.session`), a property that cannot be replaced or deleted: assigning it anything but the session itself
 * throws a `TypeError` naming what to call instead, and so does `delete` (in strict code; elsewhere it
 * answers `false`). koa-session's `ctx.session = null` is its logout, and express-session's `req.session =
 * null` drops the request's changes (a logout with its `unset: "destroy"`); here the commit uses the session
 * the middleware loaded, so such an assignment would be silently ignored and could leave the user logged in.
 * Refusing it makes a migrated app fail loudly instead.
 *
 * One getter and setter per adapter, reading a symbol slot: no closure is made per request. A middleware
 * that runs twice on one request (an app's and a router's) only fills the slot again.
 *
 * @param path How the app reaches it, for the error message: `"req.session"` or `"ctx.session"`.
 */
export function sessionProperty(path: string): (target: object, session: object) => void {
  const slot = Symbol(path);
  const refusal = `${path} cannot be replaced: to log out, call "await ${path}.destroy()"; to drop this ` +
    `request's changes, "await ${path}.reload()"`;
  const descriptor: PropertyDescriptor = {
    configurable: false,
    enumerable: true,
    get(this: Record<symbol, unknown>) {
      return this[slot];
    },
    set(this: Record<symbol, unknown>, value: unknown) {
      if (value !== this[slot]) throw new TypeError(refusal);
    },
  };
  return (target, session) => {
    const exposed = slot in target;
    (target as Record<symbol, unknown>)[slot] = session;
    if (!exposed) Object.defineProperty(target, "session", descriptor);
  };
}
