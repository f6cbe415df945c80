/* Forking straight into a cgroup (pyruntime/process/spawn.py, setns_init via exec_.py): clone3 with
 * CLONE_INTO_CGROUP, with the interpreter's fork hooks run as os.fork runs them. */

int pr_fork_into_cgroup(int cgroup_fd);
