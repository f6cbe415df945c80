/* Process attributes (see procattr.h): one syscall each, structs from the kernel's uapi headers. */
#include <errno.h>
#include <linux/ioprio.h>
#include <linux/keyctl.h>
#include <linux/mempolicy.h>
/* glibc's <sched.h> already defines struct sched_param: keep the kernel's out of the way. */
#define sched_param pr_kernel_sched_param
#include <linux/sched/types.h>
#undef sched_param
#include <sched.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

/* <linux/sched.h> clashes with glibc's <sched.h>; its SCHED_FLAG_* values are in <linux/sched/types.h>'s
 * companion header only, so take them from there when glibc did not already. */
#ifndef SCHED_FLAG_RESET_ON_FORK
#include <linux/sched.h>
#endif

#ifdef SCHED_DEADLINE
#define PR_SCHED_DEADLINE SCHED_DEADLINE
#else
#define PR_SCHED_DEADLINE -1
#endif
#ifdef SCHED_ISO
#define PR_SCHED_ISO SCHED_ISO
#else
#define PR_SCHED_ISO -1 /* reserved by the kernel, never implemented */
#endif
#define PR_SCHED_FLAG_RESET_ON_FORK SCHED_FLAG_RESET_ON_FORK
#define PR_SCHED_FLAG_RECLAIM SCHED_FLAG_RECLAIM
#define PR_SCHED_FLAG_DL_OVERRUN SCHED_FLAG_DL_OVERRUN
#ifdef SCHED_FLAG_KEEP_POLICY
#define PR_SCHED_FLAG_KEEP_POLICY SCHED_FLAG_KEEP_POLICY
#define PR_SCHED_FLAG_KEEP_PARAMS SCHED_FLAG_KEEP_PARAMS
#else
#define PR_SCHED_FLAG_KEEP_POLICY -1
#define PR_SCHED_FLAG_KEEP_PARAMS -1
#endif
#ifdef SCHED_FLAG_UTIL_CLAMP_MIN
#define PR_SCHED_FLAG_UTIL_CLAMP_MIN SCHED_FLAG_UTIL_CLAMP_MIN
#define PR_SCHED_FLAG_UTIL_CLAMP_MAX SCHED_FLAG_UTIL_CLAMP_MAX
#else
#define PR_SCHED_FLAG_UTIL_CLAMP_MIN -1
#define PR_SCHED_FLAG_UTIL_CLAMP_MAX -1
#endif

/* Memory policies are an enum in the uapi header, so newer ones cannot be tested with #ifdef:
 * MPOL_MAX tells how many this header knows. */
#define PR_MPOL_DEFAULT MPOL_DEFAULT
#define PR_MPOL_PREFERRED MPOL_PREFERRED
#define PR_MPOL_BIND MPOL_BIND
#define PR_MPOL_INTERLEAVE MPOL_INTERLEAVE
#define PR_MPOL_LOCAL MPOL_LOCAL
#define PR_MPOL_PREFERRED_MANY (MPOL_LOCAL + 1 < MPOL_MAX ? MPOL_LOCAL + 1 : -1)
#define PR_MPOL_WEIGHTED_INTERLEAVE (MPOL_LOCAL + 2 < MPOL_MAX ? MPOL_LOCAL + 2 : -1)
#define PR_MPOL_F_STATIC_NODES MPOL_F_STATIC_NODES
#define PR_MPOL_F_RELATIVE_NODES MPOL_F_RELATIVE_NODES
#ifdef MPOL_F_NUMA_BALANCING
#define PR_MPOL_F_NUMA_BALANCING MPOL_F_NUMA_BALANCING
#else
#define PR_MPOL_F_NUMA_BALANCING -1
#endif

int pr_sched_setattr(int pid, unsigned int policy, unsigned long long flags, int nice, unsigned int priority,
                     unsigned long long runtime, unsigned long long deadline, unsigned long long period)
{
    struct sched_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.sched_policy = policy;
    attr.sched_flags = flags;
    attr.sched_nice = nice;
    attr.sched_priority = priority;
    attr.sched_runtime = runtime;
    attr.sched_deadline = deadline;
    attr.sched_period = period;
    return (int)syscall(SYS_sched_setattr, pid, &attr, 0);
}

int pr_ioprio_set(int which, int who, int ioclass, int level)
{
    return (int)syscall(SYS_ioprio_set, which, who, IOPRIO_PRIO_VALUE(ioclass, level));
}

int pr_ioprio_get(int which, int who) { return (int)syscall(SYS_ioprio_get, which, who); }
int pr_ioprio_class(int value) { return IOPRIO_PRIO_CLASS(value); }
int pr_ioprio_level(int value) { return IOPRIO_PRIO_DATA(value); }

long pr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    return syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}

long pr_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode)
{
    return syscall(SYS_get_mempolicy, mode, nodemask, maxnode, NULL, 0);
}

int pr_ulong_bits(void) { return (int)(8 * sizeof(unsigned long)); }
long pr_personality_get(void) { return personality(0xffffffff); }

/* Keyrings (tests make a session keyring visible to its possessor only, to tell whose it is). */
long pr_keyctl_setperm(int id, unsigned int perm) { return syscall(SYS_keyctl, KEYCTL_SETPERM, id, perm); }
