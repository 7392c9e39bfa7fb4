// The ids of the IoU-family kernels, defined once: a name's id is its position in its table.
// iou_loss.cpp exports the tables as _iou.ids(); mmdet_losses/ops/iou_kernels.py builds
// FUSED_MODES, FUSED_VARIANTS and FUSED_BASES from them. A new variant is one entry here (at
// the end), its maths in variant_kernels.h (variant_loss), its plain element in
// mmdet_losses/functional/iou.py, a loss class and a test row.
#pragma once

#include <cstdint>
#include <string_view>

#include "../common/id_table.h"

namespace iou_ids {

// iou_loss.cpp: IoULoss's three modes (1 - IoU, 1 - IoU^2, -log IoU) and GIoU, DIoU, CIoU.
inline constexpr std::string_view kModeNames[] = {"iou",  "giou",       "diou",
                                                  "ciou", "iou_square", "iou_log"};
// variant_kernels.h: the variants.
inline constexpr std::string_view kVariantNames[] = {
    "eiou", "siou", "wiou", "alpha_iou", "mpdiou", "inner_iou", "focaler_iou", "shape_iou", "nwd"};
// The base losses of Alpha-IoU (the first four), Inner- and Focaler-IoU.
inline constexpr std::string_view kBaseNames[] = {"iou", "giou", "diou", "ciou", "siou", "eiou"};

inline constexpr int64_t kNumModes = id_table::size(kModeNames);
inline constexpr int64_t kNumVariants = id_table::size(kVariantNames);
inline constexpr int64_t kNumBases = id_table::size(kBaseNames);

namespace mode {
inline constexpr int64_t kIoU = id_table::id_of(kModeNames, "iou");
inline constexpr int64_t kGIoU = id_table::id_of(kModeNames, "giou");
inline constexpr int64_t kDIoU = id_table::id_of(kModeNames, "diou");
inline constexpr int64_t kCIoU = id_table::id_of(kModeNames, "ciou");
inline constexpr int64_t kIoUSquare = id_table::id_of(kModeNames, "iou_square");
inline constexpr int64_t kIoULog = id_table::id_of(kModeNames, "iou_log");
}  // namespace mode

namespace variant {
inline constexpr int64_t kEIoU = id_table::id_of(kVariantNames, "eiou");
inline constexpr int64_t kSIoU = id_table::id_of(kVariantNames, "siou");
inline constexpr int64_t kWIoU = id_table::id_of(kVariantNames, "wiou");
inline constexpr int64_t kAlphaIoU = id_table::id_of(kVariantNames, "alpha_iou");
inline constexpr int64_t kMPDIoU = id_table::id_of(kVariantNames, "mpdiou");
inline constexpr int64_t kInnerIoU = id_table::id_of(kVariantNames, "inner_iou");
inline constexpr int64_t kFocalerIoU = id_table::id_of(kVariantNames, "focaler_iou");
inline constexpr int64_t kShapeIoU = id_table::id_of(kVariantNames, "shape_iou");
inline constexpr int64_t kNWD = id_table::id_of(kVariantNames, "nwd");
}  // namespace variant

namespace base {
inline constexpr int64_t kIoU = id_table::id_of(kBaseNames, "iou");
inline constexpr int64_t kGIoU = id_table::id_of(kBaseNames, "giou");
inline constexpr int64_t kDIoU = id_table::id_of(kBaseNames, "diou");
inline constexpr int64_t kCIoU = id_table::id_of(kBaseNames, "ciou");
inline constexpr int64_t kSIoUBase = id_table::id_of(kBaseNames, "siou");
inline constexpr int64_t kEIoUBase = id_table::id_of(kBaseNames, "eiou");
}  // namespace base

}  // namespace iou_ids
