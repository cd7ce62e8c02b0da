// Stand-ins for the WASI interfaces kumo.js imports, for tests on node.
export const environment = [["GREETING", "hi"], ["EMPTY", ""]];
export function getEnvironment() {
  return environment;
}
export function getDirectories() {
  return [];
}
// wasi:http/types: only reached by `serve`'s export, which these tests
// do not call.
export class Fields {}
export class IncomingBody {}
export class OutgoingBody {}
export class OutgoingResponse {}
export class ResponseOutparam {}
