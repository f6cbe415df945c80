/* seccomp (see seccomp.h). The filter is compiled by libseccomp in the runtime (before any fork) and
 * exported as classic BPF; the init loads those bytes with one seccomp(2) call, so nothing of
 * libseccomp runs inside the container and every spec flag (even ones this libseccomp predates, like
 * WAIT_KILLABLE_RECV) is passed straight to the kernel. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <asm/unistd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef SECCOMP_FILTER_FLAG_TSYNC
#define PR_SECCOMP_FILTER_FLAG_TSYNC SECCOMP_FILTER_FLAG_TSYNC
#else
#define PR_SECCOMP_FILTER_FLAG_TSYNC 0
#endif
#ifdef SECCOMP_FILTER_FLAG_LOG
#define PR_SECCOMP_FILTER_FLAG_LOG SECCOMP_FILTER_FLAG_LOG
#else
#define PR_SECCOMP_FILTER_FLAG_LOG 0
#endif
#ifdef SECCOMP_FILTER_FLAG_SPEC_ALLOW
#define PR_SECCOMP_FILTER_FLAG_SPEC_ALLOW SECCOMP_FILTER_FLAG_SPEC_ALLOW
#else
#define PR_SECCOMP_FILTER_FLAG_SPEC_ALLOW 0
#endif
#ifdef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define PR_SECCOMP_FILTER_FLAG_NEW_LISTENER SECCOMP_FILTER_FLAG_NEW_LISTENER
#else
#define PR_SECCOMP_FILTER_FLAG_NEW_LISTENER 0
#endif
#ifdef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define PR_SECCOMP_FILTER_FLAG_TSYNC_ESRCH SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#else
#define PR_SECCOMP_FILTER_FLAG_TSYNC_ESRCH 0
#endif
#ifdef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define PR_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#else
#define PR_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV 0
#endif

uint32_t pr_scmp_act_errno(uint32_t err) { return SCMP_ACT_ERRNO(err); }
uint32_t pr_scmp_act_trace(uint32_t msg) { return SCMP_ACT_TRACE(msg); }
uint32_t pr_scmp_arch_resolve(const char *name) { return seccomp_arch_resolve_name(name); }
int pr_scmp_resolve_syscall(const char *name) { return seccomp_syscall_resolve_name(name); }
unsigned int pr_scmp_api_level(void) { return seccomp_api_get(); }

unsigned long pr_scmp_version(void)
{
    const struct scmp_version *v = seccomp_version();
    return v ? v->major * 1000000UL + v->minor * 1000UL + v->micro : 0;
}

void *pr_scmp_new(uint32_t default_action)
{
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (ctx == NULL) {
        errno = EINVAL;
        return NULL;
    }
    /* We load the exported BPF ourselves; these only keep libseccomp from touching the process. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    return ctx;
}

void pr_scmp_release(void *ctx) { seccomp_release(ctx); }

/* libseccomp returns -errno; turn it into -1/errno for ffi.errno. */
static int neg_errno(int rc)
{
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return rc;
}

int pr_scmp_arch_add(void *ctx, uint32_t arch)
{
    int rc = seccomp_arch_add(ctx, arch);
    return rc == -EEXIST ? 0 : neg_errno(rc);
}

int pr_scmp_rule_add(void *ctx, uint32_t action, int syscall, unsigned int n, const int *ops,
                     const unsigned int *index, const uint64_t *value, const uint64_t *value_two)
{
    struct scmp_arg_cmp cmps[6];
    if (n > 6) {
        errno = EINVAL;
        return -1;
    }
    for (unsigned int i = 0; i < n; i++) {
        cmps[i].arg = index[i];
        cmps[i].op = (enum scmp_compare)ops[i];
        cmps[i].datum_a = value[i];
        cmps[i].datum_b = value_two[i];
    }
    /* Not the _exact variant: libseccomp may rewrite the rule for each architecture (socketcall...). */
    return neg_errno(seccomp_rule_add_array(ctx, action, syscall, n, cmps));
}

int pr_scmp_export_bpf(void *ctx, int fd) { return neg_errno(seccomp_export_bpf(ctx, fd)); }

int pr_scmp_resolve_syscall_arch(uint32_t arch, const char *name)
{
    return seccomp_syscall_resolve_name_arch(arch, name);
}

/* runc's -ENOSYS stub, prepended to the exported filter: on each architecture of the profile, a
 * syscall numbered above the largest one the profile names is newer than the profile, and gets
 * ENOSYS (so that libc falls back, e.g. clone3 -> clone) instead of the default action. arches are
 * libseccomp's SCMP_ARCH_* values, which are the kernel's AUDIT_ARCH_* ones except for x32 (whose
 * syscalls the kernel reports as x86_64 ones with __X32_SYSCALL_BIT set, and which libseccomp
 * numbers with that bit). Sections fall through to one another, then to the filter; only "above
 * the largest" jumps to the ENOSYS return. Returns the size written, or -1 (errno) if it does not fit. */
int pr_scmp_enosys_stub(const uint32_t *arches, const uint32_t *maxes, int n, void *out, size_t cap)
{
    struct sock_filter prog[256];
    int len = 0, jgt_at[64];
    if (n > 64) {
        errno = E2BIG;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        uint32_t audit = arches[i];
        int x32 = 0, x86_64 = 0;
#ifdef __X32_SYSCALL_BIT
        x32 = arches[i] == SCMP_ARCH_X32;
        x86_64 = arches[i] == SCMP_ARCH_X86_64;
        if (x32)
            audit = AUDIT_ARCH_X86_64;
#else
        if (arches[i] == SCMP_ARCH_X32) {
            jgt_at[i] = -1;
            continue;
        }
#endif
        int body = 2 + ((x32 || x86_64) ? 1 : 0); /* instructions after the arch test */
        if (len + 1 + body + 2 > (int)(sizeof prog / sizeof prog[0])) {
            errno = E2BIG;
            return -1;
        }
        prog[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
        prog[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, audit, 0, (unsigned char)body);
        prog[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __X32_SYSCALL_BIT
        if (x86_64) /* an x32 syscall: not this section's */
            prog[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, __X32_SYSCALL_BIT, 1, 0);
        if (x32) /* an x86_64 syscall: not this section's */
            prog[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, __X32_SYSCALL_BIT, 0, 1);
#endif
        jgt_at[i] = len;
        prog[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, maxes[i], 0, 0);
    }
    prog[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA | BPF_K, 1, 0, 0); /* on to the filter */
    int enosys = len;
    prog[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
    for (int i = 0; i < n; i++) {
        if (jgt_at[i] < 0)
            continue;
        int jump = enosys - jgt_at[i] - 1;
        if (jump > 255) {
            errno = E2BIG;
            return -1;
        }
        prog[jgt_at[i]].jt = (unsigned char)jump;
    }
    if ((size_t)len * sizeof prog[0] > cap) {
        errno = ENOSPC;
        return -1;
    }
    memcpy(out, prog, (size_t)len * sizeof prog[0]);
    return (int)(len * (int)sizeof prog[0]);
}

/* Load a classic BPF program (size in bytes). Returns the listener fd with NEW_LISTENER, else 0. */
long pr_seccomp_load_bpf(const void *insns, size_t size, unsigned long flags)
{
    struct sock_fprog prog;
    if (size == 0 || size % sizeof(struct sock_filter) != 0 || size / sizeof(struct sock_filter) > 0xffff) {
        errno = EINVAL;
        return -1;
    }
    prog.len = (unsigned short)(size / sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)insns;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

int pr_seccomp_notif_recv(int fd, uint64_t *id, uint32_t *pid, int *nr, uint32_t *arch, uint64_t *args)
{
    struct seccomp_notif req;
    memset(&req, 0, sizeof(req));
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
        return -1;
    *id = req.id;
    *pid = req.pid;
    *nr = req.data.nr;
    *arch = req.data.arch;
    for (int i = 0; i < 6; i++)
        args[i] = req.data.args[i];
    return 0;
}

int pr_seccomp_notif_respond(int fd, uint64_t id, int64_t val, int32_t error, uint32_t flags)
{
    struct seccomp_notif_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.id = id;
    resp.val = val;
    resp.error = error;
    resp.flags = flags;
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

