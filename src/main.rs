//! The imslab binary.
fn main() {}
