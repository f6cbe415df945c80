/* A hostile program run inside test containers (built static by tests/security/conftest.py).
 *
 *   attacker scan SECONDS [MARKER]  for SECONDS, look at every process this container can see and try to
 *                               get a writable handle on its /proc/<pid>/exe and /proc/<pid>/map_files entries:
 *                               open(O_WRONLY|O_APPEND) at once, and O_PATH handles kept and reopened
 *                               for writing at the end (the CVE-2019-5736 pattern). Writes nothing:
 *                               a writable open is the escape. Prints one line per distinct finding.
 *   attacker fds                print "fd -> target" for every fd this process was started with
 *   attacker dumpable           print PR_GET_DUMPABLE
 *   attacker writeself          try to write into /proc/self/exe (read one byte, write it back)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELD 4096
static int held[MAX_HELD];
static char held_what[MAX_HELD][520];
static int nheld;

#define MAX_SEEN 8192
static char seen[MAX_SEEN][600];
static int nseen;

static void report(const char *line)
{
    for (int i = 0; i < nseen; i++)
        if (strcmp(seen[i], line) == 0)
            return;
    if (nseen < MAX_SEEN)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", line);
    printf("%s\n", line);
    fflush(stdout);
}

/* "dev:ino target" of what an fd names, so the test can tell the container's own files from the host's. */
static void describe(int fd, const char *target, char *out, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) == 0)
        snprintf(out, len, "%lu:%lu %s", (unsigned long)st.st_dev, (unsigned long)st.st_ino, target);
    else
        snprintf(out, len, "?:? %s", target);
}

/* A memfd (the runtime's init stub) is not a host file: try a real, content-preserving write. */
static void try_memfd_write(const char *path, const char *what)
{
    char line[700];
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(line, sizeof(line), "MEMFD-OPEN-DENIED %s %s", what, strerror(errno));
        report(line);
        return;
    }
    char c;
    if (pread(fd, &c, 1, 0) == 1 && pwrite(fd, &c, 1, 0) == 1)
        snprintf(line, sizeof(line), "MEMFD-WRITTEN %s", what);
    else
        snprintf(line, sizeof(line), "MEMFD-WRITE-DENIED %s %s", what, strerror(errno));
    close(fd);
    report(line);
}

static void attack_link(const char *link, const char *kind)
{
    char target[400] = "", what[500], line[700];
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0) {
        snprintf(line, sizeof(line), "DENIED %s %s", kind, strerror(errno));
        report(line);
        return;
    }
    target[n] = 0;
    int pfd = open(link, O_PATH | O_CLOEXEC);
    if (pfd < 0) {
        snprintf(line, sizeof(line), "DENIED %s %s %s", kind, target, strerror(errno));
        report(line);
        return;
    }
    /* Name what we actually hold: the process may have exec'd between the readlink and the open
     * (a Python runtime process becoming the init stub's memfd), and the name must match the file. */
    char held_link[64];
    snprintf(held_link, sizeof(held_link), "/proc/self/fd/%d", pfd);
    n = readlink(held_link, target, sizeof(target) - 1);
    if (n >= 0)
        target[n] = 0;
    describe(pfd, target, what, sizeof(what));
    if (strncmp(target, "/memfd:", 7) == 0)
        try_memfd_write(held_link, what);
    int fd = open(held_link, O_WRONLY | O_APPEND | O_CLOEXEC);  /* the very file described above */
    if (fd >= 0) {
        snprintf(line, sizeof(line), "WRITABLE %s %s", kind, what);
        close(fd);
    } else {
        snprintf(line, sizeof(line), "NOWRITE %s %s %s", kind, what, strerror(errno));
    }
    report(line);
    int dup = 0;
    for (int i = 0; i < nheld && !dup; i++)
        dup = strcmp(held_what[i] + strlen(kind) + 1, what) == 0 && strncmp(held_what[i], kind, strlen(kind)) == 0;
    if (!dup && nheld < MAX_HELD) {
        held[nheld] = pfd;
        snprintf(held_what[nheld++], sizeof(held_what[0]), "%s %s", kind, what);
    } else {
        close(pfd);
    }
}

/* "CAPPRM <hex>" of every process we can see: one holding capabilities beyond the container's
 * bounding set is a process a CAP_SYS_PTRACE container could hijack for them. */
static void report_caps(const char *status_path)
{
    FILE *f = fopen(status_path, "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "CapPrm:", 7) == 0) {
            char out[300];
            line[strcspn(line, "\n")] = 0;
            snprintf(out, sizeof(out), "CAPPRM %s", line + 7 + strspn(line + 7, " \t"));
            report(out);
        }
    fclose(f);
}

/* scan MARKER: an absolute host path (and, for cwd, its basename relative to the runtime's cwd) that
 * no process of the container should ever reach. */
static const char *marker, *marker_name;

static void scan_once(void)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return;
    struct dirent *d;
    pid_t self = getpid();
    while ((d = readdir(proc))) {
        char *end;
        long pid = strtol(d->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self)
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        report_caps(path);
        snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
        attack_link(path, "exe");
        if (marker)
            for (int k = 0; k < 2; k++) {  /* a host directory as the root or cwd of a process we can see */
                const char *what = k ? "cwd" : "root";
                char probe[700], line[800];
                snprintf(probe, sizeof(probe), "/proc/%ld/%s%s", pid, what, k ? marker_name : marker);
                if (access(probe, F_OK) == 0) {
                    snprintf(line, sizeof(line), "HOST-VISIBLE %s %s", what, probe);
                    report(line);
                } else if (errno == EACCES || errno == EPERM) {
                    snprintf(line, sizeof(line), "DENIED %s %s", what, strerror(errno));
                    report(line);
                }
            }
        snprintf(path, sizeof(path), "/proc/%ld/map_files", pid);
        DIR *mf = opendir(path);
        if (!mf) {
            char line[600];
            snprintf(line, sizeof(line), "DENIED map_files %s", strerror(errno));
            report(line);
            continue;
        }
        struct dirent *m;
        while ((m = readdir(mf))) {
            if (m->d_name[0] == '.')
                continue;
            char link[600];
            snprintf(link, sizeof(link), "%s/%s", path, m->d_name);
            attack_link(link, "map_files");
        }
        closedir(mf);
    }
    closedir(proc);
}

static void reopen_held(void)
{
    for (int i = 0; i < nheld; i++) {
        char path[64], line[700];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", held[i]);
        if (strstr(held_what[i], " /memfd:"))
            try_memfd_write(path, held_what[i]);
        int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd >= 0) {
            snprintf(line, sizeof(line), "REOPENED-WRITABLE %s", held_what[i]);
            close(fd);
        } else {
            snprintf(line, sizeof(line), "REOPEN-DENIED %s %s", held_what[i], strerror(errno));
        }
        report(line);
    }
}

static int cmd_scan(double seconds)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("SCANNING\n");
    fflush(stdout);
    do {  /* until SECONDS have passed or the test says stop (a file /stop-scan) */
        scan_once();
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds && access("/stop-scan", F_OK) != 0);
    reopen_held();
    printf("DONE\n");
    return 0;
}

static int cmd_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        perror("opendir /proc/self/fd");
        return 1;
    }
    int skip = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == skip)
            continue;
        char path[300], target[400] = "";
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n >= 0)
            target[n] = 0;
        printf("%s -> %s\n", e->d_name, target);
    }
    closedir(d);
    return 0;
}

static int cmd_writeself(void)
{
    int fd = open("/proc/self/exe", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        printf("open-denied %s\n", strerror(errno));
        return 0;
    }
    char c;
    if (pread(fd, &c, 1, 0) != 1 || pwrite(fd, &c, 1, 0) != 1)
        printf("write-denied %s\n", strerror(errno));
    else
        printf("WRITTEN\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "scan") == 0) {
        if (argc >= 4) {
            marker = argv[3];
            marker_name = strrchr(marker, '/');
        }
        return cmd_scan(argc >= 3 ? atof(argv[2]) : 3.0);
    }
    if (argc >= 2 && strcmp(argv[1], "fds") == 0)
        return cmd_fds();
    if (argc >= 2 && strcmp(argv[1], "dumpable") == 0) {
        printf("dumpable=%d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "writeself") == 0)
        return cmd_writeself();
    fprintf(stderr, "usage: attacker scan SECONDS | fds | dumpable | writeself\n");
    return 2;
}
