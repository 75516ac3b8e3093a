//! Typed, strict YAML configuration for every imslab function, with documented defaults
#![forbid(unsafe_code)]
