/* cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program built from device rules
 * (cffi declarations; the instruction encoding lives in ebpf.c, from <linux/bpf.h>). */

/* One rule: type 'a' (all), 'b' or 'c'; major/minor -1 = any; access bits PR_DEV_R|W|M. */
struct pr_dev_rule {
    int type;
    long long major;
    long long minor;
    unsigned int access;
    int allow;
};

#define PR_DEV_R ...
#define PR_DEV_W ...
#define PR_DEV_M ...

int pr_devcg_prog_load(const struct pr_dev_rule *rules, int n, char *log, unsigned int log_size);
int pr_devcg_attach(int cgroup_fd, int prog_fd);
