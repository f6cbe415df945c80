/* hardening.h: constants only; pr_fs_type (console.c) reads a filesystem's f_type. */
#include <linux/magic.h>
