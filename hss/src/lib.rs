//! HSS: the Cx server over the subscriber store
#![forbid(unsafe_code)]
