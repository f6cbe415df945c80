/* cgroup v2 device filter (see ebpf.h). Rules are checked last to first, the first match decides
 * (so a later rule overrides an earlier one, as writing them in order to the v1 controller does);
 * no match denies. Opcodes, the context layout and the attach API all come from <linux/bpf.h>. */
#include <errno.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PR_DEV_R 1
#define PR_DEV_W 2
#define PR_DEV_M 4

struct pr_dev_rule {
    int type;
    long long major;
    long long minor;
    unsigned int access;
    int allow;
};

#define PR_INSN(c, d, s, o, i) \
    ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define PR_LDX_W(dst, src, off) PR_INSN(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
#define PR_ALU32_IMM(op, dst, imm) PR_INSN(BPF_ALU | (op) | BPF_K, dst, 0, 0, imm)
#define PR_MOV64_IMM(dst, imm) PR_INSN(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define PR_JMP_IMM(op, dst, imm, off) PR_INSN(BPF_JMP | (op) | BPF_K, dst, 0, off, imm)
#define PR_EXIT() PR_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* registers after the prologue: r2 device type, r3 requested access, r4 major, r5 minor */
enum { PR_BR0 = 0, PR_BR1 = 1, PR_BR2 = 2, PR_BR3 = 3, PR_BR4 = 4, PR_BR5 = 5 };

static unsigned int kernel_access(unsigned int access)
{
    unsigned int k = 0;
    if (access & PR_DEV_R) k |= BPF_DEVCG_ACC_READ;
    if (access & PR_DEV_W) k |= BPF_DEVCG_ACC_WRITE;
    if (access & PR_DEV_M) k |= BPF_DEVCG_ACC_MKNOD;
    return k;
}

static int emit_rule(struct bpf_insn *out, const struct pr_dev_rule *r)
{
    const unsigned int all = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
    unsigned int acc = kernel_access(r->access);
    int n = 0;
    /* count the conditional jumps first: each one skips to the end of this block */
    int has_type = r->type != 'a', has_acc = acc != all, has_major = r->major >= 0, has_minor = r->minor >= 0;
    int checks = has_type + has_acc + has_major + has_minor;
    int len = checks + 2, j = 0;
#define SKIP (len - (++j))  /* offset from the jump at index j-1 to the end of the block */
    if (has_type) {
        int t = r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
        out[n++] = PR_JMP_IMM(BPF_JNE, PR_BR2, t, SKIP);
    }
    if (has_acc)  /* the request asks for something this rule does not cover */
        out[n++] = PR_JMP_IMM(BPF_JSET, PR_BR3, (int)(all & ~acc), SKIP);
    if (has_major)
        out[n++] = PR_JMP_IMM(BPF_JNE, PR_BR4, (int)r->major, SKIP);
    if (has_minor)
        out[n++] = PR_JMP_IMM(BPF_JNE, PR_BR5, (int)r->minor, SKIP);
#undef SKIP
    out[n++] = PR_MOV64_IMM(PR_BR0, r->allow ? 1 : 0);
    out[n++] = PR_EXIT();
    return n;
}

int pr_devcg_prog_load(const struct pr_dev_rule *rules, int n, char *log, unsigned int log_size)
{
    if (n < 0 || n > 100000) {
        errno = EINVAL;
        return -1;
    }
    struct bpf_insn *insns = calloc((size_t)n * 6 + 8, sizeof(*insns));
    if (!insns)
        return -1;
    int c = 0;
    const short acc_off = offsetof(struct bpf_cgroup_dev_ctx, access_type);
    insns[c++] = PR_LDX_W(PR_BR2, PR_BR1, acc_off);
    insns[c++] = PR_ALU32_IMM(BPF_AND, PR_BR2, 0xFFFF);      /* low 16 bits: BPF_DEVCG_DEV_* */
    insns[c++] = PR_LDX_W(PR_BR3, PR_BR1, acc_off);
    insns[c++] = PR_ALU32_IMM(BPF_RSH, PR_BR3, 16);          /* high 16 bits: BPF_DEVCG_ACC_* */
    insns[c++] = PR_LDX_W(PR_BR4, PR_BR1, (short)offsetof(struct bpf_cgroup_dev_ctx, major));
    insns[c++] = PR_LDX_W(PR_BR5, PR_BR1, (short)offsetof(struct bpf_cgroup_dev_ctx, minor));
    int terminal = 0;
    for (int i = n - 1; i >= 0 && !terminal; i--) {
        int len = emit_rule(insns + c, &rules[i]);
        c += len;
        terminal = len == 2;  /* a rule without conditions matches everything: nothing after it runs */
    }
    if (!terminal) {  /* the verifier rejects unreachable instructions, so only when reachable */
        insns[c++] = PR_MOV64_IMM(PR_BR0, 0);
        insns[c++] = PR_EXIT();
    }

    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = (uint32_t)c;
    attr.license = (uint64_t)(uintptr_t)"Apache";
    int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    if (fd < 0 && log && log_size > 0) {  /* retry once with the verifier log, for the error message */
        int saved = errno;
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        attr.log_level = 1;
        log[0] = 0;
        fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
        if (fd < 0)
            errno = saved;
    }
    free(insns);
    return fd;
}

int pr_devcg_attach(int cgroup_fd, int prog_fd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    return (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr));
}
