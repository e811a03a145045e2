//! The migrations are embedded at compile time (`embed_migrations!`): without this a new
//! migration directory would not rebuild the crate, and the binary would run without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
