"""Signing keys: the process's key ring, compact JWS, and the cluster-wide key
administration (first keys, rotation, revocation)."""
