//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the files of `migrations/` at compile time, but
//! stable Rust cannot tell it that the folder gained a file.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
