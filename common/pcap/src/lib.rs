//! pcap writer for the signalling every imslab function sends and receives
#![forbid(unsafe_code)]
