/* Thin syscall wrappers for pyruntime (see native.h). errno is read by Python through ffi.errno. */
#include <errno.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif

int pr_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}

int pr_umount2(const char *target, int flags) { return umount2(target, flags); }
int pr_unshare(int flags) { return unshare(flags); }
int pr_setns(int fd, int nstype) { return setns(fd, nstype); }

int pr_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int pr_openat2(int dirfd, const char *path, int flags, int mode, unsigned long long resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (unsigned long long)flags;
    how.mode = (unsigned long long)mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int pr_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

/* Bring up "lo" in the current network namespace. */
int pr_loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int pr_cap_ambient(int op, int cap) { return prctl(PR_CAP_AMBIENT, op, cap, 0, 0); }

long pr_join_session_keyring(const char *name)
{
    return syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name, 0, 0, 0);
}

int pr_personality(unsigned long persona) { return personality(persona); }

/* Mark every fd >= first close-on-exec, so only what the runtime chose survives execve. */
int pr_close_range_cloexec(unsigned int first)
{
    return (int)syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC);
}

/* Set the three capability sets exactly (libcap-free; the header gives the struct layout). */
int pr_capset(unsigned long long effective, unsigned long long permitted, unsigned long long inheritable)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
        data[i].effective = (unsigned int)(effective >> (32 * i));
        data[i].permitted = (unsigned int)(permitted >> (32 * i));
        data[i].inheritable = (unsigned int)(inheritable >> (32 * i));
    }
    return (int)syscall(SYS_capset, &hdr, data);
}
