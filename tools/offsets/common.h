#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#define P(name, v) printf("%s = %zu\n", name, (size_t)(v))
#define O(name, T, f) P(name, offsetof(T, f))
#define A(name) printf("%s = absent\n", name)
#define NOTE(name, s) printf("%s = %s\n", name, s)
/* bit position (lowest) and width of a bitfield inside a 32-bit word at offset off */
static unsigned word_at(const void *p, size_t off){ uint32_t w; memcpy(&w,(const char*)p+off,4); return w; }
static int lowbit(unsigned w){ for(int i=0;i<32;i++) if(w>>i&1) return i; return -1; }
#define BITPOS(T, statefield, f, outpos, outw) do { T o; memset(&o,0,sizeof o); o.statefield.f = 1; \
   outpos = lowbit(word_at(&o, offsetof(T, statefield))); memset(&o,0,sizeof o); o.statefield.f = ~0u; \
   outw = __builtin_popcount(word_at(&o, offsetof(T, statefield))); } while(0)
#define UNICODE_BITS(T, fields...) /* unused */
