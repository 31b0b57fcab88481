// Instance A of the multi-instance suite: Express 5 on Node (run with `node --import tsx`).
// Prints "READY <port>" once it listens on a free loopback port.
import express from "express";
import type { ErrorRequestHandler } from "express";
import { session } from "../../src/adapters/express.ts";
import { errorResponse, handle, handleControl, SECRET } from "./_routes.ts";
import { storeFromEnvironment } from "./_store.ts";

const store = await storeFromEnvironment();
const app = express();
app.set("env", "test");
app.use((req, res, next) => {
  const control = handleControl(new URL(req.originalUrl, "http://localhost"));
  if (control) res.status(control.status).type("text").send(control.body);
  else next();
});
// The Express drop-in defaults to express-session's cookie (connect.sid, browser-session); share Hono's.
app.use(session({ store, secret: SECRET, name: "sid", cookie: { persistent: true } }));
app.use((req, res, next) => {
  handle(req.session, new URL(req.originalUrl, "http://localhost")).then(
    ({ status, body }) => res.status(status).type("text").send(body),
    next,
  );
});
const onError: ErrorRequestHandler = (error, _req, res, _next) => {
  const { status, body } = errorResponse(error);
  res.status(status).type("text").send(body);
};
app.use(onError);
const server = app.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(`READY ${typeof address === "object" && address ? address.port : 0}`);
});
