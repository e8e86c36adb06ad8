// Function multi-versioning for the hot loops: one clone for AVX2+FMA CPUs (x86-64-v3), one for
// the baseline, chosen at load time. The build stays portable (no -march=native) yet fast.
// Results can differ in the last bit between the two clones (FMA contraction), never between
// runs on the same machine.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define SIRENPOSE_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SIRENPOSE_SIMD_CLONES
#endif
