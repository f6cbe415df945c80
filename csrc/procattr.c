/* Process attributes (see procattr.h): one syscall each, structs from the kernel's uapi headers. */
#include <errno.h>
#include <linux/capability.h>
#include <linux/ioprio.h>
#include <linux/keyctl.h>
#include <linux/mempolicy.h>
#if !(defined(__GLIBC__) && __GLIBC_PREREQ(2, 41)) /* glibc 2.41 declares struct sched_attr itself */
/* glibc's <sched.h> already defines struct sched_param: keep the kernel's out of the way. */
#define sched_param pr_kernel_sched_param
#include <linux/sched/types.h>
#undef sched_param
#endif
#include <sched.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The SCHED_FLAG_* values live in <linux/sched.h> (glibc >= 2.41 has them itself). */
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


long pr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    return syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}

int pr_ulong_bits(void) { return (int)(8 * sizeof(unsigned long)); }

/* Keyrings (tests make a session keyring visible to its possessor only, to tell whose it is). */
long pr_keyctl_setperm(int id, unsigned int perm) { return syscall(SYS_keyctl, KEYCTL_SETPERM, id, perm); }

/* The number <linux/capability.h> gives a capability name, or -1 (checks pyruntime's own table). */
int pr_cap_value(const char *name)
{
#ifdef CAP_CHOWN
    if (strcmp(name, "CAP_CHOWN") == 0)
        return CAP_CHOWN;
#endif
#ifdef CAP_DAC_OVERRIDE
    if (strcmp(name, "CAP_DAC_OVERRIDE") == 0)
        return CAP_DAC_OVERRIDE;
#endif
#ifdef CAP_DAC_READ_SEARCH
    if (strcmp(name, "CAP_DAC_READ_SEARCH") == 0)
        return CAP_DAC_READ_SEARCH;
#endif
#ifdef CAP_FOWNER
    if (strcmp(name, "CAP_FOWNER") == 0)
        return CAP_FOWNER;
#endif
#ifdef CAP_FSETID
    if (strcmp(name, "CAP_FSETID") == 0)
        return CAP_FSETID;
#endif
#ifdef CAP_KILL
    if (strcmp(name, "CAP_KILL") == 0)
        return CAP_KILL;
#endif
#ifdef CAP_SETGID
    if (strcmp(name, "CAP_SETGID") == 0)
        return CAP_SETGID;
#endif
#ifdef CAP_SETUID
    if (strcmp(name, "CAP_SETUID") == 0)
        return CAP_SETUID;
#endif
#ifdef CAP_SETPCAP
    if (strcmp(name, "CAP_SETPCAP") == 0)
        return CAP_SETPCAP;
#endif
#ifdef CAP_LINUX_IMMUTABLE
    if (strcmp(name, "CAP_LINUX_IMMUTABLE") == 0)
        return CAP_LINUX_IMMUTABLE;
#endif
#ifdef CAP_NET_BIND_SERVICE
    if (strcmp(name, "CAP_NET_BIND_SERVICE") == 0)
        return CAP_NET_BIND_SERVICE;
#endif
#ifdef CAP_NET_BROADCAST
    if (strcmp(name, "CAP_NET_BROADCAST") == 0)
        return CAP_NET_BROADCAST;
#endif
#ifdef CAP_NET_ADMIN
    if (strcmp(name, "CAP_NET_ADMIN") == 0)
        return CAP_NET_ADMIN;
#endif
#ifdef CAP_NET_RAW
    if (strcmp(name, "CAP_NET_RAW") == 0)
        return CAP_NET_RAW;
#endif
#ifdef CAP_IPC_LOCK
    if (strcmp(name, "CAP_IPC_LOCK") == 0)
        return CAP_IPC_LOCK;
#endif
#ifdef CAP_IPC_OWNER
    if (strcmp(name, "CAP_IPC_OWNER") == 0)
        return CAP_IPC_OWNER;
#endif
#ifdef CAP_SYS_MODULE
    if (strcmp(name, "CAP_SYS_MODULE") == 0)
        return CAP_SYS_MODULE;
#endif
#ifdef CAP_SYS_RAWIO
    if (strcmp(name, "CAP_SYS_RAWIO") == 0)
        return CAP_SYS_RAWIO;
#endif
#ifdef CAP_SYS_CHROOT
    if (strcmp(name, "CAP_SYS_CHROOT") == 0)
        return CAP_SYS_CHROOT;
#endif
#ifdef CAP_SYS_PTRACE
    if (strcmp(name, "CAP_SYS_PTRACE") == 0)
        return CAP_SYS_PTRACE;
#endif
#ifdef CAP_SYS_PACCT
    if (strcmp(name, "CAP_SYS_PACCT") == 0)
        return CAP_SYS_PACCT;
#endif
#ifdef CAP_SYS_ADMIN
    if (strcmp(name, "CAP_SYS_ADMIN") == 0)
        return CAP_SYS_ADMIN;
#endif
#ifdef CAP_SYS_BOOT
    if (strcmp(name, "CAP_SYS_BOOT") == 0)
        return CAP_SYS_BOOT;
#endif
#ifdef CAP_SYS_NICE
    if (strcmp(name, "CAP_SYS_NICE") == 0)
        return CAP_SYS_NICE;
#endif
#ifdef CAP_SYS_RESOURCE
    if (strcmp(name, "CAP_SYS_RESOURCE") == 0)
        return CAP_SYS_RESOURCE;
#endif
#ifdef CAP_SYS_TIME
    if (strcmp(name, "CAP_SYS_TIME") == 0)
        return CAP_SYS_TIME;
#endif
#ifdef CAP_SYS_TTY_CONFIG
    if (strcmp(name, "CAP_SYS_TTY_CONFIG") == 0)
        return CAP_SYS_TTY_CONFIG;
#endif
#ifdef CAP_MKNOD
    if (strcmp(name, "CAP_MKNOD") == 0)
        return CAP_MKNOD;
#endif
#ifdef CAP_LEASE
    if (strcmp(name, "CAP_LEASE") == 0)
        return CAP_LEASE;
#endif
#ifdef CAP_AUDIT_WRITE
    if (strcmp(name, "CAP_AUDIT_WRITE") == 0)
        return CAP_AUDIT_WRITE;
#endif
#ifdef CAP_AUDIT_CONTROL
    if (strcmp(name, "CAP_AUDIT_CONTROL") == 0)
        return CAP_AUDIT_CONTROL;
#endif
#ifdef CAP_SETFCAP
    if (strcmp(name, "CAP_SETFCAP") == 0)
        return CAP_SETFCAP;
#endif
#ifdef CAP_MAC_OVERRIDE
    if (strcmp(name, "CAP_MAC_OVERRIDE") == 0)
        return CAP_MAC_OVERRIDE;
#endif
#ifdef CAP_MAC_ADMIN
    if (strcmp(name, "CAP_MAC_ADMIN") == 0)
        return CAP_MAC_ADMIN;
#endif
#ifdef CAP_SYSLOG
    if (strcmp(name, "CAP_SYSLOG") == 0)
        return CAP_SYSLOG;
#endif
#ifdef CAP_WAKE_ALARM
    if (strcmp(name, "CAP_WAKE_ALARM") == 0)
        return CAP_WAKE_ALARM;
#endif
#ifdef CAP_BLOCK_SUSPEND
    if (strcmp(name, "CAP_BLOCK_SUSPEND") == 0)
        return CAP_BLOCK_SUSPEND;
#endif
#ifdef CAP_AUDIT_READ
    if (strcmp(name, "CAP_AUDIT_READ") == 0)
        return CAP_AUDIT_READ;
#endif
#ifdef CAP_PERFMON
    if (strcmp(name, "CAP_PERFMON") == 0)
        return CAP_PERFMON;
#endif
#ifdef CAP_BPF
    if (strcmp(name, "CAP_BPF") == 0)
        return CAP_BPF;
#endif
#ifdef CAP_CHECKPOINT_RESTORE
    if (strcmp(name, "CAP_CHECKPOINT_RESTORE") == 0)
        return CAP_CHECKPOINT_RESTORE;
#endif
    return -1;
}
