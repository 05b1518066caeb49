//! SigV4 (placeholder until the verifier lands).
