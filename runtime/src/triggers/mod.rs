//! What invokes a function. Triggers turn an outside event into an
//! invocation and hand it to the engine; they never touch wasmtime types.
//!
//! Only HTTP routes exist today ([`http`]); storage, watched-folder and
//! timer triggers are not built yet.

pub mod http;
