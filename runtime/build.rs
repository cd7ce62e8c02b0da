//! Rebuilds the crate when a database migration changes: `sqlx::migrate!`
//! embeds `migrations/` at compile time, and stable Rust cannot track it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
