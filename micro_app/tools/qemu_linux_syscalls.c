/* Lets a bare-metal newlib binary (built for the Cortex-M4) run under
 * qemu-arm in Linux user mode, so benchmarks/micro_core_cost.py can count the
 * Thumb-2 instructions the board would execute. Provides the program entry
 * and the few newlib syscalls printf/exit need, on top of Linux EABI system
 * calls (svc 0, number in r7). Not part of the app. */
#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>

static long linux_syscall(long n, long a, long b, long c) {
  register long r0 __asm__("r0") = a;
  register long r1 __asm__("r1") = b;
  register long r2 __asm__("r2") = c;
  register long r7 __asm__("r7") = n;
  __asm__ volatile("svc 0" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r7) : "memory");
  return r0;
}

int _write(int fd, const char* buf, int n) { return (int)linux_syscall(4, fd, (long)buf, n); }
void _exit(int code) {
  for (;;) linux_syscall(1, code, 0, 0);
}
static char heap[1 << 16];
static size_t heap_used;
void* _sbrk(ptrdiff_t inc) {
  if (heap_used + inc > sizeof(heap)) {
    errno = ENOMEM;
    return (void*)-1;
  }
  void* p = heap + heap_used;
  heap_used += inc;
  return p;
}
int _close(int f) { (void)f; return -1; }
int _fstat(int f, struct stat* s) { (void)f; s->st_mode = S_IFCHR; return 0; }
int _isatty(int f) { (void)f; return 1; }
int _lseek(int f, int o, int w) { (void)f; (void)o; (void)w; return 0; }
int _read(int f, char* b, int n) { (void)f; (void)b; (void)n; return 0; }
int _kill(int p, int s) { (void)p; (void)s; return -1; }
int _getpid(void) { return 1; }

extern int main(void);
extern void __libc_init_array(void);
extern void exit(int);
void _init(void) {}
void _fini(void) {}
/* qemu has set up the stack and zeroed .bss, as Linux would. */
void _start(void) {
  __libc_init_array();
  exit(main());
}
