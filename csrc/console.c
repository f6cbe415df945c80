/* Terminal helpers for pyruntime/console.py (see console.h). */
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <termios.h>

/* Unlock the pty whose master is `master` and open its peer through the master itself, so no path
 * in the container (/dev/pts/N) is ever looked up. */
int pr_pty_peer(int master, int flags)
{
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return -1;
    return ioctl(master, TIOCGPTPEER, flags);
}

int pr_set_winsize(int fd, unsigned int rows, unsigned int cols)
{
    struct winsize ws = {0};
    ws.ws_row = (unsigned short)rows;
    ws.ws_col = (unsigned short)cols;
    return ioctl(fd, TIOCSWINSZ, &ws);
}

/* rows << 16 | cols, or -1. */
long pr_get_winsize(int fd)
{
    struct winsize ws = {0};
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
        return -1;
    return ((long)ws.ws_row << 16) | ws.ws_col;
}

int pr_set_ctty(int fd) { return ioctl(fd, TIOCSCTTY, 0); }

/* f_type of the filesystem fd is on (to check that a pty master really comes from a devpts). */
long long pr_fs_type(int fd)
{
    struct statfs sfs;
    if (fstatfs(fd, &sfs) < 0)
        return -1;
    return (long long)sfs.f_type;
}
