// Lets node load kumo.js for the tests: its `wasi:` imports (which exist
// only inside a component) resolve to wasi-stubs.mjs.
import { register } from "node:module";

register(
  "data:text/javascript," +
    encodeURIComponent(`
      export async function resolve(specifier, context, next) {
        if (specifier.startsWith("wasi:")) {
          return { url: ${JSON.stringify(new URL("./wasi-stubs.mjs", import.meta.url).href)}, shortCircuit: true };
        }
        return next(specifier, context);
      }`),
);
