//! 3GPP AKA: Milenage, authentication vectors, IMS digest (AKAv1/AKAv2/MD5), SQN management and the USIM model
#![forbid(unsafe_code)]
