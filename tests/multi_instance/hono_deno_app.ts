// Instance B of the multi-instance suite: Hono on Deno (`deno run -A`), served by Deno.serve.
// Prints "READY <port>" once it listens on a free loopback port.
import { Hono } from "hono";
import { session } from "../../src/adapters/hono.ts";
import { errorResponse, handle, handleControl, SECRET } from "./_routes.ts";
import { storeFromEnvironment } from "./_store.ts";

const store = await storeFromEnvironment();
const app = new Hono();
app.use(async (c, next) => {
  const control = handleControl(new URL(c.req.url));
  if (control) return c.text(control.body, control.status as 200);
  await next();
});
app.use(session({ store, secret: SECRET }));
app.onError((error, c) => {
  const { status, body } = errorResponse(error);
  return c.text(body, status as 500);
});
app.all("*", async (c) => {
  const { status, body } = await handle(c.get("session"), new URL(c.req.url));
  return c.text(body, status as 200);
});
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`READY ${port}`),
}, app.fetch);
