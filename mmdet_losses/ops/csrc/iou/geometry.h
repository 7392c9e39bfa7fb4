// The geometry of an aligned box pair, written once over a scalar, a pack or a dual number
// (box_math.h, dual.h, included before this file, inside the includer's namespace): what the
// fused IoU-family losses (variant_kernels.h) and DIoU-NMS (diou_nms.cpp) compute from, with
// the formulas and eps placement of the pure-PyTorch reference, BoxPair in
// mmdet_losses/boxes.py. (iou_loss.cpp keeps its own hand-derived forward and backward of the
// IoU, GIoU, DIoU and CIoU losses. Against the dual-number form of the same loss (Alpha-IoU at
// alpha 1 over that base), 1M pairs fwd+bwd on the 2-core CPU, the hand-derived IoU, GIoU and
// DIoU were 15-35% faster (IoU 32.9/39.1 and 14.8/22.5 ms, GIoU 31.1/36.8, DIoU 36.0/43.1 and
// 17.0/24.1 ms); CIoU was at parity in one run (41.4/41.9 ms), slower in the other
// (52.9/44.9 ms), and stays there for its IoU gate, which only that kernel has.)
#pragma once

using namespace ad;

// The terms every variant combines (mmdet_losses/boxes.py, BoxPair): a is pred, b target.
template <typename S>
struct Geometry {
  using T = scalar_t<S>;
  S x1a, y1a, x2a, y2a, x1b, y1b, x2b, y2b;
  S wa, ha, wb, hb;    // raw sides, negative for an inverted box
  S inter, uni;        // relu sides; areas of clamped sides
  S ew, eh;            // enclosing box, clamped sides
  S dx, dy;            // centre offset, target minus pred

  IOU_INLINE Geometry(const S* a, const S* b)
      : x1a(a[0]), y1a(a[1]), x2a(a[2]), y2a(a[3]), x1b(b[0]), y1b(b[1]), x2b(b[2]),
        y2b(b[3]), wa(x2a - x1a), ha(y2a - y1a), wb(x2b - x1b), hb(y2b - y1b),
        inter(relu(minimum(x2a, x2b) - maximum(x1a, x1b)) *
              relu(minimum(y2a, y2b) - maximum(y1a, y1b))),
        uni(clamp_min(wa, lit<T>(0)) * clamp_min(ha, lit<T>(0)) + clamp_min(wb, lit<T>(0)) * clamp_min(hb, lit<T>(0)) -
            inter),
        ew(clamp_min(maximum(x2a, x2b) - minimum(x1a, x1b), lit<T>(0))),
        eh(clamp_min(maximum(y2a, y2b) - minimum(y1a, y1b), lit<T>(0))),
        dx((x1b + x2b - x1a - x2a) / lit<T>(2)),
        dy((y1b + y2b - y1a - y2a) / lit<T>(2)) {}

  IOU_INLINE S rho2() const { return square(dx) + square(dy); }
  IOU_INLINE S c2() const { return square(ew) + square(eh); }
  IOU_INLINE S iou(T eps) const { return inter / (uni + eps); }
  // IoU with the union floored at eps (BoxPair.iou_clamped): DIoU-NMS's overlap.
  IOU_INLINE S iou_clamped(T eps) const { return inter / clamp_min(uni, eps); }
  IOU_INLINE S giou(T eps) const {
    const S u = clamp_min(uni, eps), e = clamp_min(ew * eh, eps);
    return inter / u - (e - u) / e;
  }
  IOU_INLINE S distance_ratio(T eps) const {
    return clamp_max(rho2() / (c2() + eps), lit<T>(1));
  }
  IOU_INLINE S diou(T eps) const { return iou(eps) - distance_ratio(eps); }
  IOU_INLINE S aspect_v() const {
    const S gap = angle_gap(clamp_min(wa, lit<T>(0)), clamp_min(ha, lit<T>(0)), clamp_min(wb, lit<T>(0)),
                            clamp_min(hb, lit<T>(0)));
    return lit<T>(box_math::kCIoUFactor) * square(gap);
  }
  // CIoU's alpha = v / (clamp(1 - IoU, 0) + v + eps), no gradient, no gate.
  IOU_INLINE T ciou_alpha(const S& v, T eps) const {
    return value(v) / (clamp_min(lit<T>(1) - value(iou(eps)), lit<T>(0)) + value(v) + eps);
  }
  IOU_INLINE S ciou(T eps) const {
    const S v = aspect_v();
    return diou(eps) - ciou_alpha(v, eps) * v;
  }
  // Both boxes scaled by `ratio` about their centres (Inner-IoU's auxiliary boxes).
  IOU_INLINE Geometry scaled(T ratio) const {
    const T half = ratio / lit<T>(2), two = lit<T>(2);
    const S cxa = (x1a + x2a) / two, cya = (y1a + y2a) / two;
    const S cxb = (x1b + x2b) / two, cyb = (y1b + y2b) / two;
    const S hwa = wa * half, hha = ha * half, hwb = wb * half, hhb = hb * half;
    const S a[4] = {cxa - hwa, cya - hha, cxa + hwa, cya + hha};
    const S b[4] = {cxb - hwb, cyb - hhb, cxb + hwb, cyb + hhb};
    return Geometry(a, b);
  }
};

