// Which build of a kernel runs on this CPU: the one CPU-feature check and the one switch for
// every kernel with a CPU-specific build. Those kernels (the IoU-family variant kernels,
// csrc/iou/iou_variants.cpp and iou_variants_avx2.cpp; the focal loss, csrc/focal/focal.cpp)
// compile their loops twice, for any x86-64 CPU ("generic") and for AVX2 + FMA ("avx2"), and
// call the AVX2 build where the CPU has both, unless MMDET_LOSSES_GENERIC is set (to anything
// but "" or "0"): then every kernel runs its generic build, as on a CPU without AVX2 (the tests
// compare the builds so). MMDET_LOSSES_IOU_GENERIC, its former name, is an alias. The
// variables are read once per extension, when it first asks (the IoU extension: at import).
// Each extension reports its choice: cpu_build() -> "avx2" or "generic".
//
// An ordinary header: include it at file scope, before any ISA-specific pragma (the check
// itself must run on any CPU).
#pragma once

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
// The kernels with a CPU-specific build compile it (GCC's target pragma, x86-64 only).
#define MMDET_LOSSES_AVX2_BUILD 1
#endif

namespace cpu_features {

// The switch, and its former name (the IoU variant kernels' own switch), an alias.
inline constexpr const char* kGenericVariable = "MMDET_LOSSES_GENERIC";
inline constexpr const char* kGenericAlias = "MMDET_LOSSES_IOU_GENERIC";

// Whether the environment variable `name` is set to anything but "" or "0".
inline bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

// Whether the generic build is forced for every kernel (read once).
inline bool generic_forced() {
  static const bool forced = env_flag(kGenericVariable) || env_flag(kGenericAlias);
  return forced;
}

// Whether this CPU has AVX2 and FMA (and this compiler built for them).
inline bool has_avx2_fma() {
#ifdef MMDET_LOSSES_AVX2_BUILD
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

// Whether the kernels run their AVX2 + FMA build: the CPU has it and it is not switched off.
inline bool use_avx2() { return has_avx2_fma() && !generic_forced(); }

// The name of the build that runs, as the extensions report it (cpu_build()).
inline const char* build_name() { return use_avx2() ? "avx2" : "generic"; }

}  // namespace cpu_features
