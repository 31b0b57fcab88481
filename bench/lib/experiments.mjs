// Optimisation experiments: patches applied to the run's snapshot of src/ (never to src/ itself), so
// the report can state a proposal's gain as a measurement. A patch whose anchor text is gone (src/
// moved on) is reported as not applied, and its contender is skipped.

/**
 * hono-inplace-cookie: the Hono adapter appends Set-Cookie to the response it already has instead of
 * assigning c.res, whose setter rebuilds the Response (body stream, header copy) and loses
 * @hono/node-server's fast path.
 */
const honoInPlace = {
  id: "hono-inplace-cookie",
  file: "src/adapters/hono.ts",
  apply(text) {
    const anchor = "c.res = withSetCookie(c.res, setCookie);";
    if (!text.includes(anchor)) return undefined;
    return text.replace(
      anchor,
      "{ const benchRes = withSetCookie(c.res, setCookie); if (benchRes !== c.res) c.res = benchRes; }",
    );
  },
};

export const PATCHES = { [honoInPlace.id]: honoInPlace };
