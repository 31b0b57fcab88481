// Cookie header shapes that a parser could take quadratic time on, shared by the security suite, the core's
// linearity test and bench/cookie_shapes.ts.

/** One shape of `Cookie` header. */
export interface CookieShape {
  /** What the header looks like. */
  name: string;
  /**
   * A header of about `size` characters (never more) that ends with the cookie `sid=<sid>` (`sid` defaults
   * to `"x"`).
   */
  build(size: number, sid?: string): string;
  /** Whether a parser still finds `sid` at the end (false when the header already holds 8 `sid` values). */
  findsSession: boolean;
}

/** `unit` repeated to fill `size` characters minus the tail, then the tail. */
function fill(unit: string, size: number, tail: string): string {
  const room = Math.max(0, size - tail.length);
  return unit.repeat(Math.floor(room / unit.length)) + tail;
}

/** The shapes: ordinary pairs first (the baseline), then the hostile ones. */
export const COOKIE_SHAPES: readonly CookieShape[] = [
  {
    name: "ordinary pairs `a0=1; a1=1; …`",
    build(size, sid = "x") {
      const tail = `sid=${sid}`;
      const parts: string[] = [];
      let length = tail.length;
      for (let i = 0; length + `a${i}=1; `.length <= size; i++) {
        parts.push(`a${i}=1; `);
        length += `a${i}=1; `.length;
      }
      return parts.join("") + tail;
    },
    findsSession: true,
  },
  { name: "only `;`", build: (size, sid = "x") => fill(";", size, `sid=${sid}`), findsSession: true },
  {
    name: "names without `=` `a;a;…`",
    build: (size, sid = "x") => fill("a;", size, `sid=${sid}`),
    findsSession: true,
  },
  { name: "spaces `; ; …`", build: (size, sid = "x") => fill(" ;", size, ` sid=${sid}`), findsSession: true },
  {
    name: "empty names `=;=;…`",
    build: (size, sid = "x") => fill("=;", size, `sid=${sid}`),
    findsSession: true,
  },
  {
    name: 'open quotes `a=";…`',
    build: (size, sid = "x") => fill('a=";', size, `sid=${sid}`),
    findsSession: true,
  },
  {
    name: "one long name without `=`",
    build: (size, sid = "x") => fill("a", size, `;sid=${sid}`),
    findsSession: true,
  },
  {
    name: "one long value",
    build: (size, sid = "x") => "sid=" + fill("a", size - 4, `;sid=${sid}`),
    findsSession: true,
  },
  {
    name: "`=` without `;` `a=a=a=…`",
    build: (size, sid = "x") => fill("a=", size, `;sid=${sid}`),
    findsSession: true,
  },
  {
    name: "blanks around names `\\t \\t=;…`",
    build: (size, sid = "x") => fill(" \t \t=1;", size, `sid=${sid}`),
    findsSession: true,
  },
  {
    name: "a run of blanks before `sid =`",
    build: (size, sid = "x") => fill(" ", size, `sid  =  ${sid}`),
    findsSession: true,
  },
  {
    name: "many `sid=` values",
    build: (size, sid = "x") => fill("sid=y;", size, `sid=${sid}`),
    findsSession: false,
  },
];
