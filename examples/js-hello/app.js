// js-hello: the smallest Kumo function in JavaScript.
//
// Answers `Hello from Kumo in JavaScript` (or `?name=` instead of Kumo);
// `/js-hello/fail` throws, to show that an error answers 500 and leaves its
// stack in `kumo logs js-hello`, not in the answer.

import { serve } from "../../sdk/js/kumo.js";

export const incomingHandler = serve((request) => {
  const url = new URL(request.url);
  if (url.pathname.endsWith("/fail")) throw new Error("js-hello was asked to fail");
  return `Hello from ${url.searchParams.get("name") ?? "Kumo"} in JavaScript\n`;
});
