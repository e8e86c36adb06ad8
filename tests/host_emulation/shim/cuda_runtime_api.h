// Host-emulation stand-in (see cuda_runtime.h next to it).
#pragma once
#include "cuda_runtime.h"
