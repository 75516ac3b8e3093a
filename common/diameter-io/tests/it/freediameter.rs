//! Real-peer tests against freeDiameterd (added with the real-peer step).
