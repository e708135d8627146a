//! `sqlx::migrate!` embeds the migrations when this crate compiles, and
//! cargo does not know it reads them: without this, a migration added or
//! changed was left out of the binary until some Rust file changed too.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
