// A table of kernel ids: the names of the losses a kernel dispatches on, whose position is
// their id. Each table is the one definition of its ids: the kernels read the ids as
// compile-time constants (id_of), the dispatch bounds as the table's size, and the bindings
// export the table (to_dict) so that mmdet_losses/ops/*.py build their dicts from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace id_table {

template <std::size_t N>
constexpr int64_t id_of(const std::string_view (&names)[N], std::string_view name) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<int64_t>(i);
  }
  throw "id_table: unknown name";  // not a constant expression: a compile error
}

template <std::size_t N>
constexpr int64_t size(const std::string_view (&)[N]) {
  return static_cast<int64_t>(N);
}

#ifdef PYBIND11_VERSION_MAJOR
// {name: id} of a table, for the bindings.
template <std::size_t N>
pybind11::dict to_dict(const std::string_view (&names)[N]) {
  pybind11::dict out;
  for (std::size_t i = 0; i < N; ++i) out[pybind11::str(names[i].data(), names[i].size())] = i;
  return out;
}
#endif

}  // namespace id_table
