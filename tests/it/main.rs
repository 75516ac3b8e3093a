//! End-to-end tests against the real `imslab` binary.
