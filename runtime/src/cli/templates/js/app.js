// {{name}}: a Kumo function in JavaScript.
//
// The handler gets every request to the function's routes as a fetch
// `Request`; what it returns is the answer (a string, bytes, an object as
// JSON, a `Response` ...). See kumo.js, or docs/languages.md in the Kumo
// repository.

import { serve, log } from "./kumo.js";

export const incomingHandler = serve(async (request) => {
  const url = new URL(request.url);
  log.info(`${request.method} ${url.pathname}`);
  const name = url.searchParams.get("name") ?? "world";
  return `Hello, ${name}, from {{name}} in JavaScript!\n`;
});
