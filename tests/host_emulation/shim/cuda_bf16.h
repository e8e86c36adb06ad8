// Host-emulation stand-in: bfloat16 as torch's CPU type, whose float conversion rounds to
// nearest even like __float2bfloat16_rn.
#pragma once
#include <c10/util/BFloat16.h>

using __nv_bfloat16 = c10::BFloat16;
inline float __bfloat162float(__nv_bfloat16 x) { return static_cast<float>(x); }
inline __nv_bfloat16 __float2bfloat16_rn(float x) { return __nv_bfloat16(x); }
