// Host-emulation stand-in for the CUDA runtime header: just enough for the kernels'
// host+device code (csrc/**/*_items.cuh and what they include) to compile with g++.
#pragma once

#define __host__
#define __device__
#define __forceinline__ inline

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
typedef struct CUstream_st* cudaStream_t;
