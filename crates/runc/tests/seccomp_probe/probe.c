/*
 * Tries the system calls podhost's RuntimeDefault seccomp profile must refuse, and a few
 * it must allow, and prints one line per call: "<name> ok" or "<name> <errno name>".
 * The tests build it statically with gcc (mod.rs) and run it in containers and exec'd
 * processes.
 * The arguments are chosen so that, without a filter, each call fails for a reason of
 * its own (EFAULT, EINVAL) or succeeds harmlessly: only the filter answers EPERM/ENOSYS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void report(const char *name, long ret, int err)
{
	const char *what = "ok";
	char buf[32];
	if (ret < 0) {
		switch (err) {
		case EPERM: what = "EPERM"; break;
		case ENOSYS: what = "ENOSYS"; break;
		default:
			snprintf(buf, sizeof buf, "errno%d", err);
			what = buf;
		}
	}
	printf("%s %s\n", name, what);
}

#define TRY(name, expr) do { errno = 0; long r_ = (long)(expr); report(name, r_, errno); } while (0)

/* A child that exits at once; the result is the clone's. */
static long try_clone(unsigned long flags)
{
	long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid((pid_t)pid, NULL, 0);
	return pid;
}

int main(void)
{
	/* NULL params: EFAULT without a filter. */
	TRY("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
	int s;
	TRY("socket_vsock", s = socket(AF_VSOCK, SOCK_STREAM, 0));
	if (s >= 0)
		close(s);
	TRY("socket_inet", s = socket(AF_INET, SOCK_STREAM, 0));
	if (s >= 0)
		close(s);
	TRY("personality_query", personality(0xffffffff));
	long old = personality(0xffffffff);
	TRY("personality_set", personality(PER_LINUX | ADDR_NO_RANDOMIZE));
	personality(old);
	/* NULL args, size 0: EINVAL without a filter. */
	TRY("clone3", syscall(SYS_clone3, NULL, 0));
	/* KEYCTL_GET_KEYRING_ID of the session keyring, not created. */
	TRY("keyctl", syscall(SYS_keyctl, 0, -3, 0));
	TRY("fork", try_clone(0));
	TRY("clone_newuser", try_clone(CLONE_NEWUSER));
	/* Last: it moves this process into the new namespace. */
	TRY("unshare_user", unshare(CLONE_NEWUSER));
	return 0;
}
