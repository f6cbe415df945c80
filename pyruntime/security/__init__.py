"""Confining the container's process: capabilities, seccomp, rlimits, no_new_privs, LSM labels."""
