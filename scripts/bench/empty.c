/* A shared library that does nothing, preloaded by bench.py into /bin/true
 * and into a curl process asking nginx: what ld.so's load of any
 * LD_PRELOAD library costs a process before the library does anything,
 * the floor under libintercept.so's own start-up figures. */
void intercept_bench_empty(void) {}
